from __future__ import annotations

import math
from pathlib import Path

import pytest

from cream_engine.judges.pointwise import (
    RUBRIC,
    expected_score,
    judge_messages,
    mean_score,
    parse_score,
)


@pytest.mark.parametrize("text, score", [
    ("Relevant and useful.\nScore: 4", 4.0),
    ("score: 3.5", 3.5),
    ("Score: 2 at first... on reflection, Score: 5", 5.0),
    ("**Score:** 3", 3.0),            # markdown bold around the label
    ("Score: **3**", 3.0),
    ("SCORE = 1", 1.0),
    ("Score: 4/5", 4.0),
    ("Score: 10", None),              # out of range, not "1"
    ("Score: 7", None),
    ("I would give it four points.", None),
    ("", None),
])
def test_parse_score_takes_the_last_valid_score(text: str, score: float | None) -> None:
    assert parse_score(text) == score


def test_expected_score_renormalises_over_the_digits() -> None:
    # p(0..5) = 0, 0, 0, .1, .3, .1 (mass .5): E = (3*.1 + 4*.3 + 5*.1)/.5 = 4.0
    lps = [-math.inf, -math.inf, -math.inf, math.log(.1), math.log(.3), math.log(.1)]
    s = expected_score(lps)
    assert s.score == pytest.approx(4.0) and s.confidence == pytest.approx(0.5)
    assert math.isnan(expected_score([-math.inf] * 6).score)
    with pytest.raises(ValueError):
        expected_score([0.0] * 5)


def test_mean_score_ignores_missing() -> None:
    assert mean_score([4.0, None, 2.0]) == 3.0
    assert mean_score([None, None]) is None


def test_prompt_is_our_rubric_with_the_inputs() -> None:
    [msg] = judge_messages("  Name a prime. ", "7 ")
    assert msg["role"] == "user"
    assert "[Request]\nName a prime.\n" in msg["content"] and "[Reply]\n7\n" in msg["content"]
    assert RUBRIC.count("1 more point") == 4 and '"Score: N"' in RUBRIC


def test_score_digits_are_single_tokens_for_smollm2(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    from cream_engine.stages.score import JudgeError, digit_tokens

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    prefix, ids = digit_tokens(tok)
    assert prefix.startswith("Score:") and len(set(ids)) == 6
    assert [tok.decode([i]).strip() for i in ids] == ["0", "1", "2", "3", "4", "5"]

    class Splitting:  # a tokenizer that splits every digit into two tokens
        def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
            return {"input_ids": [1, 2]}

    with pytest.raises(JudgeError, match="not single tokens"):
        digit_tokens(Splitting())
