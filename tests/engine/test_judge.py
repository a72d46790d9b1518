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
    assert RUBRIC.count("1 more point") == 4 and '"Score: <points>"' in RUBRIC


# each clause of the additive rubric (Yuan et al. 2024, in our words), by its key phrases
@pytest.mark.parametrize("clause, phrases", [
    ("point 1", ["relevant", "some information", "even when it is incomplete",
                 "irrelevant material"]),
    ("point 2", ["substantial part of the user's question", "does not fully resolve the query",
                 "direct answer"]),
    ("point 3", ["basic elements of the question in a useful way", "as if an AI wrote it",
                 "typical of blogs or search results"]),
    ("point 4", ["clearly written from an AI assistant's point of view",
                 "directly and comprehensively", "well organised and helpful",
                 "clearer, more concise or more focused"]),
    ("point 5", ["impeccably tailored to the question", "no extraneous information",
                 "expert knowledge", "high-quality, engaging and insightful"]),
    ("justification", ["at most 100 words"]),
    ("perspective", ["from the AI assistant's perspective", "web search knowledge"]),
])
def test_rubric_has_every_clause(clause: str, phrases: list[str]) -> None:
    text = " ".join(RUBRIC.split())  # (a phrase may wrap across lines)
    missing = [p for p in phrases if p not in text]
    assert not missing, f"{clause}: {missing}"


def test_rubric_ends_with_the_score_line_both_modes_read(tiny_model_dir: Path) -> None:
    """The last instruction names the line `parse` reads and `expected` appends; the prompt
    itself holds no score, so a judge that echoes it is not scored by the echo."""
    import re

    from transformers import AutoTokenizer

    from cream_engine.stages.score import digit_tokens

    last = RUBRIC.rstrip().splitlines()[-1]
    [line] = re.findall(r'"(Score: <points>)"', last)
    assert RUBRIC.rstrip().endswith("from 0 to 5.")
    assert parse_score(line.replace("<points>", "4")) == 4.0
    prefix, _ = digit_tokens(AutoTokenizer.from_pretrained(tiny_model_dir))
    assert line.startswith(prefix)  # expected mode appends the same words
    assert parse_score(RUBRIC) is None
    [msg] = judge_messages("Name a colour.", "Blue.")  # the two inputs are the only fields
    assert "{" not in msg["content"] and parse_score(msg["content"]) is None


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
