"""Reading a reply's final answer (answers.py): the last "Answer:" or "answer is" decides, an
expression's result after its last "=", letters for multiple choice, numbers for arithmetic;
a reply without a readable answer is unparsable (None)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cream_engine.answers import extract_answer, final_number
from cream_engine.evalsets import EvalItem

REPO = Path(__file__).resolve().parents[2]

CAPITAL = EvalItem("q1", "What is the capital of France?", ("London", "Paris", "Berlin",
                                                             "Madrid"), 1)
SEVENS = EvalItem("q2", "7 + 10 = ?", ("7", "17", "70", "77"), 1)
FIVE = EvalItem("q4", "Which is a mammal?", ("shark", "trout", "eel", "frog", "whale"), 4)
NUMBER = EvalItem("q3", "How many?", (), "1234")

# (item, reply, expected): an option index, a normalised number string, or None (unparsable)
REPLIES = [
    # -- multiple choice ---------------------------------------------------------------------
    (CAPITAL, "Paris is the capital of France.\nAnswer: B", 1),
    (CAPITAL, "Paris is the capital.\n\n**Answer:** B", 1),
    (CAPITAL, "**Answer**: (C)", 2),
    (CAPITAL, "Answer: B) Paris", 1),
    (CAPITAL, "Answer: **B**", 1),
    (CAPITAL, "Answer: **(D)**.", 3),
    (CAPITAL, "so the answer: b.", 1),
    (CAPITAL, "Answer: A\nHmm, wait. London is in England.\nAnswer: D", 3),
    (CAPITAL, "Answer: Paris", 1),
    (CAPITAL, "Answer: paris.", 1),
    (CAPITAL, "The answer is B.", 1),
    (CAPITAL, "The correct answer is: D", 3),
    (CAPITAL, "Answer: The answer is C", 2),  # the last marker decides
    (CAPITAL, "Answer: A\nOn reflection, the answer is B.", 1),  # "answer is" after "Answer:"
    (CAPITAL, "The answer is A.\nAnswer: B", 1),
    (CAPITAL, "Answer: B. This answer is correct because Paris is the capital.", 1),  # prose
    (CAPITAL, "Final Answer:\n\n**C**", 2),
    (CAPITAL, "Answer: [A]", 0),
    (CAPITAL, "Answer: I believe the correct option is D.", 3),
    (CAPITAL, "Answer: Option B, Paris", 1),
    (CAPITAL, "The final answer is $\\boxed{B}$.", 1),
    (CAPITAL, "I think it's Paris.", None),  # no marker: unparsable
    (CAPITAL, "Answer: E", None),  # not one of four options
    (CAPITAL, "Answer:", None),
    (CAPITAL, "Answer: a city in Europe", None),  # a lower-case article is no letter
    (CAPITAL, "Answer: Paris or London", None),  # two options named: ambiguous
    (FIVE, "Sharks are fish and whales are mammals.\nAnswer: E", 4),
    (SEVENS, "Answer: 17", 1),  # "7" inside "17" is not the option "7"
    (SEVENS, "Answer: 7", 0),
    # -- numbers -----------------------------------------------------------------------------
    (NUMBER, "2448 + 136 = 3724\nAnswer: 2448 + 136 = 3724", "3724"),  # the example
    (NUMBER, "Each has 38 cookies. The final answer is 38 + 38 = 76", "76"),  # the issue's
    (NUMBER, "Answer: 10 cookies\nThe final answer is 38 + 38 = 76", "76"),  # last marker
    (NUMBER, "Answer: The total is 2448 + 136 = 3724 dollars.", "3724"),
    (NUMBER, "Answer: 38 + 38 = **76**", "76"),
    (NUMBER, "Answer: (3 + 4) * 2 = 14", "14"),
    (NUMBER, "Answer: 5 x 3 = 15 apples", "15"),
    (NUMBER, "Answer: $12 - $20 = -$8", "-8"),
    (NUMBER, "Answer: 12 - 17 = -5.", "-5"),
    (NUMBER, "Answer: 12 apples, since 3 * 4 = 12", "12"),  # "=" not in the first expression
    (NUMBER, "Answer: 3724 (2448 + 136 = 3724)", "3724"),
    (NUMBER, "3 + 4 = 7\nAnswer: 7", "7"),
    (NUMBER, "Answer: $1,234.00", "1234"),
    (NUMBER, "Answer: -12", "-12"),
    (NUMBER, "Answer: 12 apples", "12"),
    (NUMBER, "Answer: 3.50", "3.5"),
    (NUMBER, "**Answer:** 42.", "42"),
    (NUMBER, "Answer: 1,500 meters.", "1500"),
    (NUMBER, "Answer: 10\nLet me check again.\nAnswer: 12", "12"),
    (NUMBER, "The answer is 1,000,000", "1000000"),
    (NUMBER, "answer:\n\n**0.5**", "0.5"),
    (NUMBER, "So the answer is $\\boxed{72}$.", "72"),
    (NUMBER, "Answer: 42. This answer is right because 6 * 7 = 42.", "42"),  # prose skipped
    (NUMBER, "Answer: 12 = ", "12"),  # nothing after "=": the first number
    (NUMBER, "So the total is 42.", None),  # no marker
    (NUMBER, "Answer: forty-two", None),
    (NUMBER, "The answer is forty-two.", None),
]


@pytest.mark.parametrize("item, reply, expected", REPLIES)
def test_extract_answer(item: EvalItem, reply: str, expected: int | str | None) -> None:
    assert extract_answer(reply, item) == expected


def test_the_table_covers_both_kinds_and_unparsable_replies() -> None:
    kinds = [item.kind for item, _, _ in REPLIES]
    assert len(REPLIES) >= 30 and kinds.count("mc") >= 15 and kinds.count("number") >= 15
    assert sum(expected is None for _, _, expected in REPLIES) >= 5


@pytest.mark.parametrize("line, expected", [
    ("2448 + 136 = 3724", "3724"), ("76", "76"), ("x = 7", "7"), ("1 = 1 = 2", "2"),
    ("-3 + 1 = -2", "-2"), (".5 + .5 = 1", "1"), ("twelve", None), ("", None),
])
def test_final_number(line: str, expected: str | None) -> None:
    assert final_number(line) == expected


def test_module_imports_no_heavy_library() -> None:
    code = ("import json, sys, cream_engine.answers; print(json.dumps([m for m in ('torch', "
            "'transformers', 'pyarrow', 'numpy') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60, cwd=REPO)
    assert json.loads(out.stdout) == []
