"""Evaluation sets: the loaders on each public layout, one-line errors for bad files, reading a
reply's answer, and the shipped sets (right answers, balanced, reproducible)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from cream_engine.errors import DataError
from cream_engine.evalsets import (
    BUNDLED_EVAL_SETS,
    EvalItem,
    gsm8k_answer,
    load_eval_set,
    loglik_context,
    mc_prompt,
    number_prompt,
    numbers_equal,
    parse_number,
    prompt_for,
)
from cream_engine.files import read_jsonl
from cream_engine.paths import bundled_data

REPO = Path(__file__).resolve().parents[2]

ARC_HF = [  # digit labels and 3 options, as some ARC items have
    {"id": "Mercury_7", "question": "Which gas do plants take in?",
     "choices": {"text": ["oxygen", "carbon dioxide", "helium"], "label": ["1", "2", "3"]},
     "answerKey": "2"},
    {"id": "MCAS_2000_4_6", "question": "Which is a mammal?",
     "choices": {"text": ["shark", "trout", "eel", "frog", "whale"],
                 "label": ["A", "B", "C", "D", "E"]}, "answerKey": "E"},
]
ARC_AI2 = [{"id": "Mercury_SC_415702", "question": {
    "stem": "George wants to warm his hands quickly by rubbing them. Which skin surface will "
            "produce the most heat?",
    "choices": [{"text": "dry palms", "label": "A"}, {"text": "wet palms", "label": "B"},
                {"text": "palms covered with oil", "label": "C"},
                {"text": "palms covered with lotion", "label": "D"}]}, "answerKey": "A"}]
OPENBOOKQA = [{"id": "7-980", "question_stem": "The sun is responsible for",
               "choices": {"text": ["puppies learning new tricks",
                                    "children growing up and getting old",
                                    "flowers wilting in a vase",
                                    "plants sprouting, blooming and wilting"],
                           "label": ["A", "B", "C", "D"]},
               "answerKey": "D"}]
SIQA = [{"context": "Cameron decided to have a barbecue and gathered her friends together.",
         "question": "How would Others feel as a result?", "answerA": "like attending",
         "answerB": "like staying home", "answerC": "a good friend to have", "label": "1"},
        {"context": "Jan needed to give out jobs for an upcoming project at work.",
         "question": "What will Others want to do next?", "answerA": "disagree with Jan",
         "answerB": "get to work", "answerC": "argue with the assignments", "label": "2"}]
GSM8K = [{"question": "Natalia sold clips to 48 of her friends in April, and then she sold half "
                      "as many clips in May. How many clips did she sell altogether?",
          "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = "
                    "<<48+24=72>>72 clips altogether in April and May.\n#### 72"},
         {"question": "A shop sells 1,000 pens a day for 1.5 days. How many pens?",
          "answer": "1000 * 1.5 = 1500\n#### 1,500"}]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# -- loaders --------------------------------------------------------------------------------


def test_arc_hf_with_digit_labels_and_three_or_five_options(tmp_path: Path) -> None:
    s = load_eval_set(str(write_jsonl(tmp_path / "ARC-Challenge.jsonl", ARC_HF)))
    assert (s.name, s.format, s.kind) == ("ARC-Challenge", "arc", "mc")
    first, second = s.items
    assert first == EvalItem("Mercury_7", "Which gas do plants take in?",
                             ("oxygen", "carbon dioxide", "helium"), 1)
    assert first.letters == ("A", "B", "C")  # letters shown, whatever the file's labels
    assert second.gold == 4 and second.letters[-1] == "E"


def test_arc_original_ai2_layout(tmp_path: Path) -> None:
    (item,) = load_eval_set(str(write_jsonl(tmp_path / "arc.jsonl", ARC_AI2))).items
    assert item.question.startswith("George wants") and item.gold == 0
    assert item.choices[3] == "palms covered with lotion" and item.kind == "mc"


def test_openbookqa(tmp_path: Path) -> None:
    s = load_eval_set(str(write_jsonl(tmp_path / "obqa.jsonl", OPENBOOKQA)))
    assert s.format == "openbookqa" and s.items[0].id == "7-980" and s.items[0].gold == 3
    assert s.items[0].question == "The sun is responsible for"


def test_siqa_joins_context_and_question_and_reads_one_based_labels(tmp_path: Path) -> None:
    s = load_eval_set(str(write_jsonl(tmp_path / "siqa-dev.jsonl", SIQA)))
    assert s.format == "siqa" and [i.gold for i in s.items] == [0, 1]
    assert s.items[0].question == ("Cameron decided to have a barbecue and gathered her friends "
                                   "together. How would Others feel as a result?")
    assert s.items[1].choices == ("disagree with Jan", "get to work",
                                  "argue with the assignments")
    assert [i.id for i in s.items] == ["siqa-dev-1", "siqa-dev-2"]  # no ids in the file


def test_gsm8k_and_limit(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K)
    s = load_eval_set(str(path))
    assert (s.format, s.kind) == ("gsm8k", "number")
    assert [i.gold for i in s.items] == ["72", "1500"] and s.items[0].choices == ()
    assert load_eval_set(str(path), limit=1).items == s.items[:1]
    assert load_eval_set(str(path), limit=9).items == s.items


def test_json_array_file(tmp_path: Path) -> None:
    path = tmp_path / "obqa.json"
    path.write_text(json.dumps(OPENBOOKQA, indent=2), encoding="utf-8")
    assert load_eval_set(str(path)).items[0].gold == 3


@pytest.mark.parametrize("rows, fmt, gold", [(ARC_HF, "arc", [1, 4]), (GSM8K, "gsm8k",
                                                                       ["72", "1500"])])
def test_parquet(tmp_path: Path, rows: list, fmt: str, gold: list) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)  # choices become a struct column
    s = load_eval_set(str(path))
    assert s.format == fmt and [i.gold for i in s.items] == gold
    assert s.items == load_eval_set(str(write_jsonl(path.with_suffix(".jsonl"), rows))).items


def test_bundled_sets_and_unknown_names(tmp_path: Path) -> None:
    assert set(BUNDLED_EVAL_SETS) == {"bundled:mc", "bundled:arith"}
    mc, arith = load_eval_set("bundled:mc", limit=3), load_eval_set("bundled:arith")
    assert (mc.name, mc.format, mc.kind, len(mc.items)) == ("mc", "arc", "mc", 3)
    assert (arith.name, arith.format, arith.kind) == ("arith", "gsm8k", "number")
    with pytest.raises(DataError, match=r"^\[data\] eval_sets: bundled:arc: unknown bundled "
                                        r"set \(known: bundled:mc, bundled:arith\)$"):
        load_eval_set("bundled:arc")
    with pytest.raises(DataError, match=r"nope.jsonl: no such evaluation file$"):
        load_eval_set(str(tmp_path / "nope.jsonl"))


# -- bad files ------------------------------------------------------------------------------

BAD = [
    ("x.jsonl", b"", "x.jsonl: no items in the file"),
    ("x.jsonl", b"\n\n", "x.jsonl: no items in the file"),
    ("x.jsonl", '{"question": "caf\u00e9"}'.encode("latin-1"), "x.jsonl: not UTF-8 text"),
    ("x.jsonl", json.dumps(GSM8K[0]).encode() + b'\n{"question": \n', "x.jsonl:2: invalid JSON"),
    ("x.jsonl", b'{"prompt": "hi", "text": "x"}\n',
     "x.jsonl:1: unknown layout (keys: prompt, text); known: ARC, OpenBookQA, SIQA"),
    ("x.jsonl", json.dumps({**ARC_HF[0], "choices": {"text": list("abcd"), "label": list("ABCD")},
                            "answerKey": "E"}).encode(),
     "x.jsonl:1: answerKey 'E' is not one of the labels A, B, C, D"),
    ("x.jsonl", (json.dumps(ARC_HF[0]) + "\n\n" + json.dumps({**ARC_HF[1], "answerKey": "5"})
                 ).encode(), "x.jsonl:3: answerKey '5' is not one of the labels A, B, C, D, E"),
    ("x.jsonl", json.dumps({**ARC_HF[0], "choices": {"text": ["a", "b"], "label": ["1"]}}
                           ).encode(), "x.jsonl:1: expected choices with as many"),
    ("x.jsonl", json.dumps({**ARC_HF[0], "choices": {"text": ["a"], "label": ["1"]},
                            "answerKey": "1"}).encode(), "x.jsonl:1: expected 2 to 26 choices"),
    ("x.jsonl", json.dumps({**ARC_HF[0], "choices": ["a", "b"]}).encode(),
     "x.jsonl:1: expected 'choices' as"),
    ("x.jsonl", json.dumps({**ARC_AI2[0], "question": {"stem": "q", "choices": "abc"}}).encode(),
     "x.jsonl:1: expected question.choices as a list"),
    ("x.jsonl", (json.dumps(SIQA[0]) + "\n" + json.dumps({**SIQA[1], "label": "4"})).encode(),
     "x.jsonl:2: label '4' is not one of 1, 2, 3"),
    ("x.jsonl", json.dumps({**SIQA[0], "answerB": ""}).encode(),
     "x.jsonl:1: expected a non-empty string 'answerB'"),
    ("x.jsonl", json.dumps({"question": "q", "answer": "it is 4"}).encode(),
     "x.jsonl:1: answer has no final '#### <number>'"),
    ("x.jsonl", json.dumps({"question": " ", "answer": "#### 4"}).encode(),
     "x.jsonl:1: expected a non-empty string 'question'"),
    ("x.jsonl", (json.dumps({"id": 1, **GSM8K[0]}) + "\n" + json.dumps({"id": 1, **GSM8K[1]})
                 ).encode(), "x.jsonl:2: duplicate id '1'"),
    ("x.jsonl", json.dumps(GSM8K[0]).encode() + b"\n[1, 2]\n", "x.jsonl:2: expected a JSON object"),
    ("x.json", b'[{"question": "q", "answer": "#### 1"}, 7]',
     "x.json: item 2: expected a JSON object"),
    ("x.json", b'[{"question": "q",\n "answer": }]', "x.json:2: invalid JSON"),
    ("x.csv", b"question,answer\n", "x.csv: unsupported file type"),
    ("x.parquet", b"PAR1 not really", "x.parquet: not a readable Parquet file"),
]


@pytest.mark.parametrize("name, content, expected", BAD)
def test_bad_files_get_one_line_naming_file_and_line(tmp_path: Path, name: str, content: bytes,
                                                     expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_eval_set(str(path))
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(tmp_path))
    assert expected in message


def test_bad_parquet_row_and_missing_files(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [GSM8K[0], {"question": "q", "answer": "no number"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "g.parquet")
    with pytest.raises(DataError, match=r"g\.parquet: row 2: answer has no final"):
        load_eval_set(str(tmp_path / "g.parquet"))
    for name in ("missing.jsonl", "missing.parquet"):
        with pytest.raises(DataError, match=rf"{name}: no such evaluation file$"):
            load_eval_set(str(tmp_path / name))
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(DataError, match="dir.jsonl: is a folder"):
        load_eval_set(str(tmp_path / "dir.jsonl"))
    with pytest.raises(DataError, match=r"bundled:gsm8k: unknown bundled set \(known: "
                                        r"bundled:mc, bundled:arith\)$"):
        load_eval_set("bundled:gsm8k")


# -- numbers --------------------------------------------------------------------------------

NUMBER = EvalItem("q3", "How many?", (), "1234")


@pytest.mark.parametrize("text, expected", [
    ("1,234", "1234"), ("-5", "-5"), ("+5", "5"), ("3.50", "3.5"), ("12.", "12"),
    ("$1,200.00", "1200"), ("0.5", "0.5"), (".5", "0.5"), ("50%", "50"), ("-0", "0"),
    ("-0.0", "0"), ("100", "100"), ("1,234,567.8", "1234567.8"), ("\u22127", "-7"),
    ("-$5", "-5"), ("about 12 apples", "12"), ("abc", None), ("", None), ("x12", None),
])
def test_parse_number(text: str, expected: str | None) -> None:
    assert parse_number(text) == expected


def test_gsm8k_answer_and_numbers_equal() -> None:
    assert gsm8k_answer("so 1000 + 234\n#### 1,234") == "1234"
    assert numbers_equal(gsm8k_answer("#### 1,234"), "1234")
    assert gsm8k_answer("a #### 3\n#### -7") == "-7"  # the last marker counts
    assert gsm8k_answer("#### 0.5") == parse_number(".5") == "0.5"
    assert gsm8k_answer("the answer is 5") is None and gsm8k_answer("#### none") is None
    assert numbers_equal("3.50", "3.5") and numbers_equal("-0", "0")
    assert not numbers_equal("3.5", "3.05") and not numbers_equal("12", "-12")
    assert not numbers_equal(None, "1") and not numbers_equal("1", None)
    assert not numbers_equal("x", "1")


def test_prompts() -> None:
    item = EvalItem("i", "Which gas do plants take in?", ("oxygen", "carbon dioxide",
                                                          "helium"), 1)
    assert mc_prompt(item) == (
        "Which gas do plants take in?\n\nA. oxygen\nB. carbon dioxide\nC. helium\n\n"
        "Think step by step, then end your reply with a final line of the form \"Answer: X\", "
        "where X is the letter of the correct option.")
    assert number_prompt(NUMBER) == (
        "How many?\n\nThink step by step, then end your reply with a final line of the form "
        "\"Answer: N\", where N is the final number.")
    assert prompt_for(item) == mc_prompt(item) and prompt_for(NUMBER) == number_prompt(NUMBER)


def test_loglik_context_is_the_harness_template_per_format(tmp_path: Path) -> None:
    """lm-evaluation-harness's doc_to_text: arc_easy.yaml "Question: {{question}}\\nAnswer:",
    openbookqa.yaml `question_stem`, siqa.yaml "Q: {{context}} {{question}}\\nA:"."""
    arc = load_eval_set(str(write_jsonl(tmp_path / "arc.jsonl", ARC_HF)))
    obqa = load_eval_set(str(write_jsonl(tmp_path / "obqa.jsonl", OPENBOOKQA)))
    siqa = load_eval_set(str(write_jsonl(tmp_path / "siqa.jsonl", SIQA)))
    assert loglik_context(arc.items[0], arc.format) == (
        "Question: Which gas do plants take in?\nAnswer:")
    assert loglik_context(obqa.items[0], obqa.format) == "The sun is responsible for"
    assert loglik_context(siqa.items[0], siqa.format) == (
        "Q: Cameron decided to have a barbecue and gathered her friends together. How would "
        "Others feel as a result?\nA:")
    mc = load_eval_set("bundled:mc", limit=1)  # our set is in the ARC layout: ARC's template
    assert loglik_context(mc.items[0], mc.format) == f"Question: {mc.items[0].question}\nAnswer:"
    braces = EvalItem("b", "What is {x} in {0}?", ("1", "2"), 0)  # braces are not a template
    assert loglik_context(braces, "unknown") == "Question: What is {x} in {0}?\nAnswer:"


def test_module_imports_no_heavy_library() -> None:
    code = ("import json, sys, cream_engine.evalsets; print(json.dumps([m for m in ('torch', "
            "'transformers', 'pyarrow', 'datasets') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60, cwd=REPO)
    assert json.loads(out.stdout) == []


# -- the shipped sets -----------------------------------------------------------------------


def test_shipped_mc_set_is_well_formed_and_balanced() -> None:
    rows = read_jsonl(bundled_data(BUNDLED_EVAL_SETS["bundled:mc"]))
    assert len(rows) >= 120 and len(load_eval_set("bundled:mc").items) == len(rows)
    assert [r["id"] for r in rows] == [f"mc-{n:04d}" for n in range(1, len(rows) + 1)]
    assert len({r["question"].lower() for r in rows}) == len(rows)
    for r in rows:
        assert r["choices"]["label"] == ["A", "B", "C", "D"], r["id"]
        assert len(set(r["choices"]["text"])) == 4 and all(r["choices"]["text"]), r["id"]
    share = Counter(r["answerKey"] for r in rows)
    assert set(share) == set("ABCD")
    assert all(0.15 <= n / len(rows) <= 0.35 for n in share.values()), share
    categories = Counter(r["category"] for r in rows)
    assert len(categories) >= 8 and categories["knowledge"] <= 45


def test_shipped_arith_set_is_well_formed() -> None:
    rows = read_jsonl(bundled_data(BUNDLED_EVAL_SETS["bundled:arith"]))
    assert len(rows) >= 120
    assert [r["id"] for r in rows] == [f"arith-{n:04d}" for n in range(1, len(rows) + 1)]
    assert len({r["question"] for r in rows}) == len(rows)
    answers = [gsm8k_answer(r["answer"]) for r in rows]
    assert all(a is not None and a.isdigit() for a in answers)  # non-negative integers
    assert sum(int(a) >= 1000 for a in answers) >= 5
    assert all(re.search(r"\n#### \d+$", r["answer"]) for r in rows)  # no commas, as GSM8K


def _value(expr: str) -> float:
    """An arithmetic expression of integers and + - * /, evaluated without eval()."""
    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        ops = {ast.Add: float.__add__, ast.Sub: float.__sub__, ast.Mult: float.__mul__,
               ast.Div: float.__truediv__}
        assert isinstance(node, ast.BinOp) and type(node.op) in ops, expr
        return ops[type(node.op)](float(walk(node.left)), float(walk(node.right)))

    return walk(ast.parse(expr, mode="eval").body)


def test_shipped_arith_reasoning_checks_out() -> None:
    """Every "a op b = c" step is right, and the last step's result is the final answer."""
    for r in read_jsonl(bundled_data(BUNDLED_EVAL_SETS["bundled:arith"])):
        steps = re.findall(r"(\d+(?: [-+*/] \d+)+) = (\d+)", r["answer"])
        assert len(steps) >= 2, r["id"]
        for expr, result in steps:
            assert _value(expr) == int(result), (r["id"], expr, result)
        assert steps[-1][1] == gsm8k_answer(r["answer"]), r["id"]


DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = [datetime(2001, m, 1).strftime("%B").lower() for m in range(1, 13)]
PER = {("minutes", "hours"): 60, ("seconds", "minutes"): 60, ("hours", "days"): 24,
       ("days", "weeks"): 7, ("months", "years"): 12, ("centimeters", "meters"): 100,
       ("millimeters", "centimeters"): 10, ("grams", "kilograms"): 1000,
       ("meters", "kilometers"): 1000, ("milliliters", "liters"): 1000}
SIDES = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6, "heptagon": 7, "octagon": 8,
         "nonagon": 9, "decagon": 10}


def _recomputed(q: str, options: list[str]) -> str | None:
    """The answer to a computed question, worked out again here (None: not one of those)."""
    ints = [int(o) for o in options if o.isdigit()]
    if m := re.fullmatch(r"What is (\d+) ([-+×÷]) (\d+)\?", q):
        a, op, b = int(m[1]), m[2], int(m[3])
        return str({"+": a + b, "-": a - b, "×": a * b, "÷": a // b if a % b == 0 else None}[op])
    if m := re.fullmatch(r"Which of the numbers .* is the (largest|smallest)\?", q):
        return str(max(ints) if m[1] == "largest" else min(ints))
    if m := re.fullmatch(r"How many (\w+) are in (\d+) (\w+)\?", q):
        return str(int(m[2]) * PER[m[1], m[3]])
    if m := re.fullmatch(r"What day of the week comes (\d+) days? after (\w+)\?", q):
        return DAYS[(DAYS.index(m[2].lower()) + int(m[1])) % 7].title()
    if m := re.fullmatch(r"Which month comes (\d+) months? after (\w+)\?", q):
        return MONTHS[(MONTHS.index(m[2].lower()) + int(m[1])) % 12].title()
    if m := re.fullmatch(r'How many letters are in the word "(\w+)"\?', q):
        return str(len(m[1]))
    if m := re.fullmatch(r'How many times does the letter "(\w)" appear in the word "(\w+)"\?', q):
        return str(m[2].count(m[1]))
    if m := re.fullmatch(r"Which of the words .* comes (first|last) in alphabetical order\?", q):
        return sorted(options)[0 if m[1] == "first" else -1]
    if "is a prime number?" in q:
        primes = [n for n in ints if n > 1 and all(n % d for d in range(2, n))]
        return str(primes[0]) if len(primes) == 1 else None
    if m := re.fullmatch(r"Which of the numbers .* is (even|odd)\?", q):
        hits = [n for n in ints if n % 2 == (m[1] == "odd")]
        return str(hits[0]) if len(hits) == 1 else None
    if m := re.fullmatch(r"How many sides does an? (\w+) have\?", q):
        return str(SIDES[m[1]])
    if m := re.fullmatch(r"Which of these shapes has exactly (\d+) sides\?", q):
        return {v: k for k, v in SIDES.items()}[int(m[1])]
    if m := re.fullmatch(r"What number comes next in the sequence ([\d, ]+), \.\.\.\?", q):
        terms = [int(t) for t in m[1].split(", ")]
        steps = {b - a for a, b in pairwise(terms)}
        return str(terms[-1] + steps.pop()) if len(steps) == 1 else None
    if m := re.fullmatch(r"A film starts at (.+ [AP]M) and lasts (?:(\d+) hours?)?(?: and )?"
                         r"(?:(\d+) minutes)?\. At what time does it end\?", q):
        end = datetime.strptime(m[1], "%I:%M %p") + timedelta(hours=int(m[2] or 0),
                                                              minutes=int(m[3] or 0))
        return end.strftime("%I:%M %p").lstrip("0")
    return None


def test_shipped_mc_computed_answers_are_right() -> None:
    """Work every computed question out again by other code, and check the gold option."""
    checked = 0
    for r in read_jsonl(bundled_data(BUNDLED_EVAL_SETS["bundled:mc"])):
        options = r["choices"]["text"]
        expected = _recomputed(r["question"], options)
        if r["category"] == "knowledge":
            assert expected is None, r["id"]
            continue
        assert expected is not None, (r["id"], r["question"])
        assert options["ABCD".index(r["answerKey"])] == expected, (r["id"], r["question"])
        assert options.count(expected) == 1, r["id"]
        checked += 1
    assert checked >= 100


def test_generator_reproduces_the_shipped_files(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_eval_sets.py"), "--out",
                    str(tmp_path)], check=True, capture_output=True, timeout=60, cwd=REPO)
    for rel in BUNDLED_EVAL_SETS.values():
        name = Path(rel).name
        assert (tmp_path / name).read_bytes() == bundled_data(rel).read_bytes(), name
