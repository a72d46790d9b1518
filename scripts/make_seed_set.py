"""Write the bundled seed SFT set, `cream_engine/data/seed.jsonl`.

    python scripts/make_seed_set.py [--out FILE]

Both papers (CREAM; Self-Rewarding Language Models) fine-tune M0 on human-written seed data
before self-rewarding; this is ours, small and written for this project. One JSON object a line:

    {"id": "seed-0001", "kind": "arithmetic" | "mc" | "general", "category": ...,
     "messages": [{"role": "user", ...}, {"role": "assistant", ...}], "answer": "42" | "B"}

- arithmetic: word problems (addition, subtraction, multiplication, two-step, money, time) from
  templates; the reply reasons step by step ("a × b = c" equations, each checked here) and ends
  with "Answer: N", N computed by code.
- mc: multiple-choice questions (science, everyday reasoning, simple logic) with options A-D;
  the reply explains briefly and ends with "Answer: X", the gold letter drawn from a seeded
  balanced shuffle.
- general: hand-written instructions with concise answers (scripts/seed_general.py).
Prompts of the first two kinds mostly use the evaluation's own wording (evalsets.prompt_for),
so M1 learns the exact ending the evaluation reads (answers.extract_answer, checked here).

No overlap with what the runs evaluate on or generate for: every question is checked against
each item of the bundled evaluation sets and each bundled prompt (normalised text: neither
contains the other), and no seed question uses the same set of numbers as any of them.
Deterministic (a fixed seed), so a test can compare the shipped file with a fresh run.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # cream_engine: the evaluation's prompts and answer reader

from seed_arith import ARITHMETIC
from seed_general import GENERAL
from seed_mc import EVERYDAY, SCIENCE, Question, logic_questions

from cream_engine.answers import extract_answer
from cream_engine.config import BUNDLED_PROMPTS
from cream_engine.evalsets import (
    BUNDLED_EVAL_SETS,
    EvalItem,
    load_eval_set,
    mc_prompt,
    number_prompt,
    parse_number,
)
from cream_engine.prompts import load_prompts

SEED = 20250301
DEFAULT_OUT = ROOT / "cream_engine" / "data" / "seed.jsonl"
OPENERS = ["Let's work through it step by step.", "Let's solve this step by step.",
           "Step by step:", "Here is the reasoning, one step at a time."]
NUMBER_ASKS = [
    ("Please solve it step by step and finish with a final line \"Answer: N\", where N is the "
     "number."),
    "Show your working, then write the result on a last line as \"Answer: N\"."]
MC_ASK = ("Explain your choice briefly and end with a line \"Answer: X\" giving the letter of the "
          "correct option.")


def numbers(text: str) -> frozenset[Decimal]:
    """The numbers written in a text ("1,250" is one number, "9:05" two)."""
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    return frozenset(Decimal(n) for n in re.findall(r"\d+(?:\.\d+)?", text))


def arithmetic(rng: random.Random, taken: set[frozenset]) -> list[dict]:
    """Problems whose sets of numbers are new (`taken`: the evaluation's and earlier ones)."""
    rows = []
    for category, templates in ARITHMETIC.items():
        for make, count in templates:
            made = 0
            while made < count:
                question, steps, answer, closing = make(rng)
                if numbers(question) in taken:
                    continue
                taken.add(numbers(question))
                made += 1
                item = EvalItem("seed", question)
                prompt = (number_prompt(item) if rng.random() < 0.7
                          else f"{question}\n\n{rng.choice(NUMBER_ASKS)}")
                lines = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, start=1))
                reply = f"{rng.choice(OPENERS)}\n\n{lines}\n\n{closing}\n\nAnswer: {answer}"
                rows.append(row("arithmetic", category, prompt, reply, parse_number(str(answer))))
    return rows


# -- multiple choice --------------------------------------------------------------------------

CLOSINGS = ["So the correct option is {letter}: {text}.", "That makes {letter} ({text}) right.",
            "The best choice is {letter}, {text}."]


def multiple_choice(rng: random.Random) -> list[dict]:
    questions: list[tuple[str, Question]] = ([("science", q) for q in SCIENCE]
                                             + [("everyday", q) for q in EVERYDAY]
                                             + [("logic", q) for q in logic_questions(rng, 8)])
    positions = [n % 4 for n in range(len(questions))]  # each letter equally often
    rng.shuffle(positions)
    rows = []
    for (category, (question, correct, *wrong, explanation)), pos in zip(questions, positions):
        options = rng.sample(wrong, 3)
        options.insert(pos, correct)
        assert len(set(options)) == 4, question
        item = EvalItem("seed", question, tuple(options), pos)
        letter = item.letters[pos]
        if rng.random() < 0.7:
            prompt = mc_prompt(item)
        else:
            listed = "\n".join(f"{k}. {o}" for k, o in zip(item.letters, options))
            prompt = f"{question}\n\n{listed}\n\n{MC_ASK}"
        closing = rng.choice(CLOSINGS).format(letter=letter, text=correct)
        reply = f"{explanation} {closing}\n\nAnswer: {letter}"
        rows.append(row("mc", category, prompt, reply, letter))
    return rows


def row(kind: str, category: str, prompt: str, reply: str, answer: str | None) -> dict:
    out = {"id": "", "kind": kind, "category": category,
           "messages": [{"role": "user", "content": prompt},
                        {"role": "assistant", "content": reply}]}
    if answer is not None:
        out["answer"] = answer
    return out


# -- checks -----------------------------------------------------------------------------------

_EQUATION = re.compile(r"(\d+(?:\.\d+)?(?:\s*[-+×÷]\s*\d+(?:\.\d+)?)+)\s*=\s*(\d+(?:\.\d+)?)")


def evaluate(expression: str) -> Decimal:
    """A chain of numbers and + - × ÷, with × and ÷ before + and -."""
    tokens = re.findall(r"\d+(?:\.\d+)?|[-+×÷]", expression)
    terms: list[Decimal] = [Decimal(tokens[0])]
    for op, value in zip(tokens[1::2], map(Decimal, tokens[2::2])):
        if op == "×":
            terms[-1] *= value
        elif op == "÷":
            terms[-1] /= value
        else:
            terms.append(value if op == "+" else -value)
    return sum(terms, Decimal(0))


def question_of(example: dict) -> str:
    """The question alone: the user turn before its first blank line (options, instruction)."""
    return example["messages"][0]["content"].split("\n\n")[0]


def normalise(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.casefold()))


NEAR = 0.75  # word-set Jaccard similarity from which two questions count as the same one


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of the two texts' sets of words (a renamed copy scores high)."""
    x, y = set(normalise(a).split()), set(normalise(b).split())
    return len(x & y) / len(x | y)


def check(rows: list[dict], evaluated: list[str]) -> None:
    """Each answer right and readable; nothing shared with what runs evaluate or prompt on."""
    for r in rows:
        prompt, reply = (m["content"] for m in r["messages"])
        if r["kind"] == "arithmetic":
            found = _EQUATION.findall(reply)
            assert found, r["id"]
            for left, result in found:
                assert evaluate(left) == Decimal(result), (r["id"], left, result)
            assert Decimal(found[-1][1]) == Decimal(r["answer"]), r["id"]
            assert extract_answer(reply, EvalItem(r["id"], prompt)) == r["answer"], r["id"]
        elif r["kind"] == "mc":
            options = re.findall(r"^[A-D]\. (.*)$", prompt, re.MULTILINE)
            item = EvalItem(r["id"], question_of(r), tuple(options), "ABCD".index(r["answer"]))
            assert len(options) == 4 and extract_answer(reply, item) == item.gold, r["id"]
    prompts = [r["messages"][0]["content"] for r in rows]
    assert len(set(map(normalise, prompts))) == len(rows), "a seed prompt repeats"
    theirs = [normalise(t) for t in evaluated]
    taken = {numbers(t) for t in evaluated if len(numbers(t)) >= 2}
    for r in rows:
        whole, question = normalise(r["messages"][0]["content"]), normalise(question_of(r))
        for other, text in zip(theirs, evaluated):
            assert other not in whole and question not in other, (r["id"], other)
            assert similarity(question_of(r), text) < NEAR, (r["id"], text)
        mine = numbers(question_of(r))
        assert len(mine) < 2 or mine not in taken, (r["id"], sorted(mine))


def evaluated_texts() -> list[str]:
    """Every question of the bundled evaluation sets and every bundled prompt."""
    texts = [item.question for spec in BUNDLED_EVAL_SETS for item in load_eval_set(spec).items]
    return texts + [p.text for p in load_prompts(BUNDLED_PROMPTS)]


# -- writing ----------------------------------------------------------------------------------


def build() -> list[dict]:
    evaluated = evaluated_texts()
    taken = {numbers(t) for t in evaluated if len(numbers(t)) >= 2}
    rng = random.Random(SEED)
    rows = arithmetic(rng, taken) + multiple_choice(rng)
    rows += [row("general", kind, prompt, reply, None) for kind, prompt, reply in GENERAL]
    rng.shuffle(rows)  # a prefix (max_examples) is then a mix of kinds
    for n, r in enumerate(rows, start=1):
        r["id"] = f"seed-{n:04d}"
    check(rows, evaluated)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output file")
    args = parser.parse_args(argv)
    rows = build()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    args.out.write_bytes(text.encode("utf-8"))
    counts = Counter(r["kind"] for r in rows)
    print(f"wrote {len(rows)} examples to {args.out} ("
          + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) + ")")


if __name__ == "__main__":
    main()
