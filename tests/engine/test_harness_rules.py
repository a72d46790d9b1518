"""Option log-likelihood scored by lm-evaluation-harness's rules (stages/loglik.py), on fixed
log-likelihoods whose picks are worked out by hand: acc (the sum), acc_norm (per character of
the option) and acc_bytes (per UTF-8 byte of the option), neither counting the " " before it;
and each set's options scored after the harness's context for that set."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest

from cream_engine.config import ExperimentConfig
from cream_engine.evalsets import EvalItem, EvalSet
from cream_engine.stages import evalcache, loglik
from cream_engine.stages.loglik import option_logliks, picks, score_loglik

# 0: "a"         1 char,  1 byte
# 1: "ééééé"     5 chars, 10 bytes (é is two bytes in UTF-8)
# 2: "abcdefgh"  8 chars, 8 bytes
THREE_WAY = ("a", "\u00e9" * 5, "abcdefgh")
THREE_WAY_LOGP = [-1.0, -4.0, -4.4]
# acc:       max(-1.0, -4.0, -4.4)                 = -1.0  -> 0
# acc_norm:  -1.0/1 = -1.0, -4.0/5 = -0.8, -4.4/8 = -0.55 -> 2
# acc_bytes: -1.0/1 = -1.0, -4.0/10 = -0.4, -4.4/8 = -0.55 -> 1


def test_the_three_rules_pick_three_different_options() -> None:
    assert picks(THREE_WAY_LOGP, THREE_WAY) == {"ll_acc": 0, "ll_acc_norm": 2,
                                                "ll_acc_bytes": 1}
    items = tuple(EvalItem(f"q{g}", "?", THREE_WAY, g) for g in range(3))
    rows = [{"logp": THREE_WAY_LOGP} for _ in items]
    # each rule is right on exactly the item whose gold is its pick
    assert score_loglik(items, rows) == pytest.approx(
        {"ll_acc": 1 / 3, "ll_acc_norm": 1 / 3, "ll_acc_bytes": 1 / 3})
    only_bytes = (EvalItem("q", "?", THREE_WAY, 1),)
    assert score_loglik(only_bytes, rows[:1]) == {"ll_acc": 0.0, "ll_acc_norm": 0.0,
                                                  "ll_acc_bytes": 1.0}


def test_lengths_leave_out_the_leading_space() -> None:
    # "a" vs "abcd", LL -1.0 vs -3.5
    # per character (harness): -1.0/1 = -1.0 vs -3.5/4 = -0.875 -> "abcd"
    # per byte of " " + option (our old rule): -1.0/2 = -0.5 vs -3.5/5 = -0.7 -> "a"
    assert picks([-1.0, -3.5], ("a", "abcd")) == {"ll_acc": 0, "ll_acc_norm": 1,
                                                 "ll_acc_bytes": 1}


def test_characters_and_bytes_differ_on_non_ascii_options() -> None:
    # "café" 4 chars / 5 bytes, "tea" 3 / 3; LL -3.0 vs -2.5
    # per character: -0.75 vs -0.833 -> "café"; per byte: -0.6 vs -0.833 -> "café"
    # "naïveté" 7 chars / 9 bytes vs "plain" 5 / 5; LL -6.6 vs -4.5
    # per character: -0.943 vs -0.9 -> "plain"; per byte: -0.733 vs -0.9 -> "naïveté"
    assert picks([-3.0, -2.5], ("caf\u00e9", "tea")) == {"ll_acc": 1, "ll_acc_norm": 0,
                                                        "ll_acc_bytes": 0}
    assert picks([-6.6, -4.5], ("na\u00efvet\u00e9", "plain")) == {
        "ll_acc": 1, "ll_acc_norm": 1, "ll_acc_bytes": 0}


def test_a_tie_goes_to_the_first_option_as_numpy_argmax() -> None:
    assert picks([-2.0, -2.0, -4.0], ("ab", "cd", "efgh")) == {
        "ll_acc": 0, "ll_acc_norm": 0, "ll_acc_bytes": 0}
    assert score_loglik((), []) == {"ll_acc": None, "ll_acc_norm": None,
                                    "ll_acc_bytes": None}


class _Chars:
    """A tokenizer with one token per character, so the scored texts can be read back."""

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        return {"input_ids": [ord(c) for c in text]}


class _Bar:
    def advance(self, n: int = 1) -> None:
        pass


@pytest.mark.parametrize("fmt, question, context", [
    ("arc", "Which gas do plants take in?", "Question: Which gas do plants take in?\nAnswer:"),
    ("openbookqa", "The sun is responsible for", "The sun is responsible for"),
    ("siqa", "Jan gave out jobs. What will Others want to do next?",
     "Q: Jan gave out jobs. What will Others want to do next?\nA:"),
])
def test_options_are_scored_after_the_sets_harness_context(
        monkeypatch: pytest.MonkeyPatch, fmt: str, question: str, context: str) -> None:
    seen: list[tuple[str, str]] = []

    def fake_logprobs(model, tokenizer, encoded, **kwargs):
        for ids, start in encoded:
            text = "".join(map(chr, ids))
            seen.append((text[:start], text[start:]))
        return [SimpleNamespace(logp=-float(len(ids) - start)) for ids, start in encoded]

    monkeypatch.setattr(loglik, "encoded_logprobs", fake_logprobs)
    ctx = SimpleNamespace(config=ExperimentConfig(), device="cpu")
    parts = SimpleNamespace(ctx=ctx, bar=lambda *a: contextlib.nullcontext(_Bar()))
    item = EvalItem("i", question, ("yes", "no"), 1)
    rows = option_logliks(parts, None, _Chars(), EvalSet("s", "test", fmt, (item,)))
    assert seen == [(context, " yes"), (context, " no")]
    assert rows == [{"id": "i", "logp": [-4.0, -3.0]}]


def test_the_baseline_cache_does_not_reuse_numbers_scored_the_old_way() -> None:
    assert evalcache.VERSION >= 2  # 1 cached the old context, acc_norm and answer rules
    assert {"stages/loglik.py", "answers.py"} <= set(evalcache.CODE)
