"""Seed SFT data: the bundled set (right answers in the evaluation's "Answer: X" form, nothing
shared with the evaluation sets or the bundled prompts, reproducible) and the reader's one-line
errors for bad files."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from cream_engine.answers import extract_answer
from cream_engine.config import BUNDLED_PROMPTS
from cream_engine.errors import ConfigError, DataError
from cream_engine.evalsets import BUNDLED_EVAL_SETS, EvalItem, load_eval_set, mc_prompt
from cream_engine.paths import bundled_data
from cream_engine.prompts import load_prompts
from cream_engine.seeds import read_seed_file, seed_digest

REPO = Path(__file__).resolve().parent.parent.parent
NEAR = 0.75  # word-set Jaccard similarity from which two questions count as one


def bundled_rows() -> list[dict]:
    return [json.loads(line) for line in bundled_data("seed.jsonl").read_text().splitlines()]


def question_of(row: dict) -> str:
    """The question alone: the user turn before its first blank line (options, instruction)."""
    return row["messages"][0]["content"].split("\n\n")[0]


def normalise(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.casefold()))


def numbers(text: str) -> list[Decimal]:
    """The numbers written in a text, in order ("1,250" is one number, "9:05" two)."""
    return [Decimal(n) for n in re.findall(r"\d+(?:\.\d+)?",
                                           re.sub(r"(?<=\d),(?=\d{3})", "", text))]


def similarity(a: str, b: str) -> float:
    x, y = set(normalise(a).split()), set(normalise(b).split())
    return len(x & y) / len(x | y)


def evaluated_texts() -> list[str]:
    """Every question of the bundled evaluation sets and every bundled prompt."""
    texts = [item.question for spec in BUNDLED_EVAL_SETS for item in load_eval_set(spec).items]
    return texts + [p.text for p in load_prompts(BUNDLED_PROMPTS)]


def overlaps(row: dict, evaluated: list[str]) -> list[str]:
    """The evaluated texts this seed example shares its question (or its numbers) with."""
    whole, question = normalise(row["messages"][0]["content"]), normalise(question_of(row))
    mine = set(numbers(question_of(row)))
    found = []
    for text in evaluated:
        other = normalise(text)
        if (other in whole or question in other
                or similarity(question_of(row), text) >= NEAR
                or (len(mine) >= 2 and mine == set(numbers(text)))):
            found.append(text)
    return found


# -- the bundled set ------------------------------------------------------------------------


def test_the_bundled_set_reads_and_has_every_kind() -> None:
    rows = bundled_rows()
    examples = read_seed_file("bundled:seed")
    assert len(examples) == len(rows) >= 150
    kinds = Counter(r["kind"] for r in rows)
    assert kinds["arithmetic"] >= 55 and kinds["mc"] >= 45 and kinds["general"] >= 50, kinds
    assert [r["id"] for r in rows] == [f"seed-{n:04d}" for n in range(1, len(rows) + 1)]
    assert all([t["role"] for t in e] == ["user", "assistant"] for e in examples)
    categories = {r["category"] for r in rows if r["kind"] == "arithmetic"}
    assert {"addition", "subtraction", "multiplication", "two-step", "money",
            "time"} <= categories
    prompts = [normalise(r["messages"][0]["content"]) for r in rows]
    assert len(set(prompts)) == len(prompts)
    assert len({r["kind"] for r in rows[:20]}) == 3  # shuffled: a prefix mixes the kinds


_EQUATION = re.compile(r"(\d+(?:\.\d+)?(?:\s*[-+×÷]\s*\d+(?:\.\d+)?)+)\s*=\s*(\d+(?:\.\d+)?)")


def calculate(expression: str) -> Decimal:
    """Numbers joined by + - × ÷, × and ÷ first."""
    tokens = re.findall(r"\d+(?:\.\d+)?|[-+×÷]", expression)
    total, term = Decimal(0), Decimal(tokens[0])
    for op, value in zip(tokens[1::2], map(Decimal, tokens[2::2])):
        if op in "×÷":
            term = term * value if op == "×" else term / value
        else:
            total, term = total + term, value if op == "+" else -value
    return total + term


def test_every_arithmetic_reply_recomputes_to_its_answer() -> None:
    """Each step's equation holds, uses only numbers from the problem or from earlier steps,
    and the last one's result is the final "Answer: N", as the evaluation reads it."""
    rows = [r for r in bundled_rows() if r["kind"] == "arithmetic"]
    for r in rows:
        prompt, reply = (m["content"] for m in r["messages"])
        question = question_of(r)
        assert reply.splitlines()[-1].startswith("Answer: "), r["id"]
        equations = list(_EQUATION.finditer(reply))
        assert equations, r["id"]
        for eq in equations:
            left, result = eq.groups()
            assert calculate(left) == Decimal(result), (r["id"], eq.group(0))
            known = set(numbers(question)) | set(numbers(reply[:eq.start()]))
            assert set(numbers(left)) <= known, (r["id"], eq.group(0))
        assert Decimal(equations[-1].group(2)) == Decimal(r["answer"]), r["id"]
        assert extract_answer(reply, EvalItem(r["id"], question)) == r["answer"], r["id"]
        assert set(numbers(question)) <= set(numbers(reply)), r["id"]
        assert "Answer: N" in prompt, r["id"]


def test_every_multiple_choice_reply_ends_with_its_letter() -> None:
    rows = [r for r in bundled_rows() if r["kind"] == "mc"]
    exact = 0
    for r in rows:
        prompt, reply = (m["content"] for m in r["messages"])
        options = re.findall(r"^([A-D])\. (.*)$", prompt, re.MULTILINE)
        assert [letter for letter, _ in options] == ["A", "B", "C", "D"], r["id"]
        texts = tuple(text for _, text in options)
        assert len(set(texts)) == 4, r["id"]
        item = EvalItem(r["id"], question_of(r), texts, "ABCD".index(r["answer"]))
        assert reply.splitlines()[-1] == f"Answer: {r['answer']}", r["id"]
        assert extract_answer(reply, item) == item.gold, r["id"]
        assert texts[item.gold] in reply, r["id"]  # the explanation names the right option
        exact += prompt == mc_prompt(item)
    letters = Counter(r["answer"] for r in rows)
    assert max(letters.values()) - min(letters.values()) <= 1, letters
    assert exact >= len(rows) // 2  # mostly the evaluation's own wording


def test_general_examples_are_plain_instructions() -> None:
    rows = [r for r in bundled_rows() if r["kind"] == "general"]
    assert len({r["category"] for r in rows}) >= 5
    for r in rows:
        prompt, reply = (m["content"] for m in r["messages"])
        assert "answer" not in r and "\n\n" not in prompt, r["id"]
        assert 10 <= len(reply) <= 1200, r["id"]


def test_no_seed_example_overlaps_the_evaluation_sets_or_the_bundled_prompts() -> None:
    evaluated = evaluated_texts()
    assert len(evaluated) > 500
    found = {r["id"]: overlaps(r, evaluated) for r in bundled_rows()}
    assert {k: v for k, v in found.items() if v} == {}


def test_the_overlap_check_catches_a_copy() -> None:
    """The check above is not vacuous: an evaluation question with the instruction added, a
    copy with one word changed and a problem that reuses an item's numbers are each caught."""
    evaluated = evaluated_texts()
    arith = load_eval_set("bundled:arith").items[0]
    wordy = max((i.question for i in load_eval_set("bundled:mc").items
                 if not numbers(i.question)), key=len)

    def seed(prompt: str) -> dict:
        return {"messages": [{"role": "user", "content": prompt},
                             {"role": "assistant", "content": "Answer: 1"}]}

    assert overlaps(seed(f"{arith.question}\n\nThink step by step."), evaluated)
    words = wordy.split()
    one_word_changed = " ".join(words[:1] + ["Zorblax"] + words[2:])
    assert normalise(one_word_changed) not in normalise(wordy)
    assert overlaps(seed(one_word_changed), evaluated)
    values = " and ".join(str(n) for n in numbers(arith.question))
    assert overlaps(seed(f"What do you get from {values}?"), evaluated)
    assert not overlaps(seed("Name a bird that cannot fly."), evaluated)


def test_the_generator_reproduces_the_shipped_file(tmp_path: Path) -> None:
    out = tmp_path / "seed.jsonl"
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_seed_set.py"), "--out",
                    str(out)], check=True, capture_output=True, timeout=120, cwd=REPO)
    assert out.read_bytes() == bundled_data("seed.jsonl").read_bytes()


# -- the reader -----------------------------------------------------------------------------

GOOD = {"messages": [{"role": "user", "content": "Hi?"},
                     {"role": "assistant", "content": "Hello!"}]}


def write_lines(path: Path, *lines: object) -> str:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n"
                            for x in lines))
    return str(path)


def turns(*pairs: tuple[object, object]) -> dict:
    return {"messages": [{"role": r, "content": c} for r, c in pairs]}


@pytest.mark.parametrize("line, message", [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ({"prompt": "Hi?"}, "expected \"messages\": a non-empty list"),
    ({"messages": []}, "expected \"messages\": a non-empty list"),
    ({"messages": "Hi"}, "expected \"messages\": a non-empty list"),
    ({"messages": ["Hi"]}, "message 1: expected an object with string \"role\" and \"content\""),
    (turns(("user", 3), ("assistant", "4")), "message 1: expected an object"),
    (turns(("user", "Hi?")), "the last message is the user's"),
    (turns(("user", "Hi?"), ("assistant", "Hello"), ("user", "Bye")),
     "the last message is the user's"),
    (turns(("user", "Hi?"), ("assistant", "  \n")), "message 2 (assistant): empty content"),
    (turns(("user", ""), ("assistant", "Hello")), "message 1 (user): empty content"),
    (turns(("bot", "Hi?"), ("assistant", "Hello")), "message 1: unknown role 'bot'"),
    (turns(("system", "Be kind."), ("assistant", "Hello")), "no user message"),
])
def test_a_bad_line_is_one_error_naming_file_and_line(tmp_path: Path, line: object,
                                                      message: str) -> None:
    path = write_lines(tmp_path / "seed.jsonl", GOOD, line, GOOD)
    with pytest.raises(DataError) as e:
        read_seed_file(path)
    assert isinstance(e.value, ConfigError)
    assert str(e.value).startswith(f"{path}:2: ") and message in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_a_file_without_examples_is_an_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "seed.jsonl"
    path.write_text(text)
    with pytest.raises(DataError, match="no examples"):
        read_seed_file(str(path))


def test_missing_files_and_unknown_bundled_sets(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such seed file"):
        read_seed_file(str(tmp_path / "absent.jsonl"))
    with pytest.raises(DataError, match="no such seed file"):
        seed_digest(str(tmp_path / "absent.jsonl"))
    with pytest.raises(DataError, match="unknown bundled set .*bundled:seed"):
        read_seed_file("bundled:seeds")


def test_examples_keep_file_order_duplicates_and_only_role_and_content(tmp_path: Path) -> None:
    first = turns(("system", "Be brief."), ("user", "One?"), ("assistant", "1"))
    first["id"], first["answer"] = "a", "1"
    first["messages"][1]["name"] = "ignored"
    second = turns(("user", "Two?"), ("assistant", "2"))
    path = write_lines(tmp_path / "seed.jsonl", first, "", second, second)
    examples = read_seed_file(path)
    assert examples == [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "One?"},
         {"role": "assistant", "content": "1"}],
        [{"role": "user", "content": "Two?"}, {"role": "assistant", "content": "2"}],
        [{"role": "user", "content": "Two?"}, {"role": "assistant", "content": "2"}]]


def test_max_examples_keeps_the_first_ones_and_still_checks_the_file(tmp_path: Path) -> None:
    rows = [turns(("user", f"Q{n}?"), ("assistant", f"A{n}")) for n in range(3)]
    path = write_lines(tmp_path / "seed.jsonl", *rows)
    assert [e[0]["content"] for e in read_seed_file(path, max_examples=2)] == ["Q0?", "Q1?"]
    assert len(read_seed_file(path, max_examples=0)) == 3
    assert len(read_seed_file(path, max_examples=5)) == 3
    assert len(read_seed_file("bundled:seed", max_examples=7)) == 7
    bad = write_lines(tmp_path / "bad.jsonl", *rows, "{oops")
    with pytest.raises(DataError, match=r"bad\.jsonl:4: invalid JSON"):
        read_seed_file(bad, max_examples=1)


def test_seed_digest_is_the_sha256_of_the_file(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "seed.jsonl", GOOD)
    before = seed_digest(path)
    assert before == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    write_lines(tmp_path / "seed.jsonl", GOOD, GOOD)
    assert seed_digest(path) != before
    bundled = hashlib.sha256(bundled_data("seed.jsonl").read_bytes()).hexdigest()
    assert seed_digest("bundled:seed") == bundled


def test_the_reader_is_light() -> None:
    """The CLI checks seed files at submit: reading one must not load the training stack."""
    code = ("import sys, cream_engine.seeds; "
            "print(sorted(m for m in ('torch', 'transformers', 'trl', 'numpy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"
