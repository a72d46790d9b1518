"""The evaluation stage's scoring: option log-likelihood picks what a hand-built model prefers,
generative accuracy counts unparsable replies, the win rate needs both presentation orders."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from cream_engine.config import ExperimentConfig
from cream_engine.evalsets import EvalItem, EvalSet
from cream_engine.stages.evaluate import Parts, metric_values, outcome, score_generative
from cream_engine.stages.loglik import option_logliks, score_loglik

COLOURS = ("red", "blue", "green", "yellow")


class _Bar:
    def advance(self, n: int = 1) -> None:
        pass


def fake_ctx() -> SimpleNamespace:
    """What the scoring functions read of a run: the config, the device, a progress bar."""
    return SimpleNamespace(config=ExperimentConfig(), device="cpu",
                           progress=lambda *a, **k: contextlib.nullcontext(_Bar()))


def prefers(tokenizer, word: str):
    """A hand-built 'model' whose next-token distribution puts almost all mass on the tokens
    of ` word`, whatever the context."""
    import torch

    liked = tokenizer(" " + word, add_special_tokens=False)["input_ids"]

    class Prefers(torch.nn.Module):
        def forward(self, input_ids, attention_mask=None):
            logits = torch.zeros(*input_ids.shape, len(tokenizer))
            logits[..., liked] = 12.0
            return SimpleNamespace(logits=logits)

    return Prefers()


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.mark.parametrize("liked", ["blue", "yellow"])
def test_loglik_picks_the_option_the_model_prefers(tokenizer, liked: str) -> None:
    items = tuple(EvalItem(f"q{g}", f"Which colour is number {g}?", COLOURS, g)
                  for g in range(4))
    rows = option_logliks(Parts(fake_ctx(), 0, "evaluate", 16), prefers(tokenizer, liked),
                          tokenizer, EvalSet("colours", "test", "arc", items))
    assert [len(r["logp"]) for r in rows] == [4] * 4
    picked = {max(range(4), key=lambda i: r["logp"][i]) for r in rows}
    assert picked == {COLOURS.index(liked)}
    # one item of four has the liked colour as its answer
    assert score_loglik(items, rows) == {"ll_acc": 0.25, "ll_acc_norm": 0.25,
                                         "ll_acc_bytes": 0.25}


def test_generative_accuracy_counts_unparsable_as_wrong() -> None:
    mc = EvalItem("m", "Pick one.", ("cat", "dog", "cow", "hen"), 2)
    num = EvalItem("n", "How many?", (), "1234")
    items = (mc, mc, mc, num, num, num, num)
    replies = ["Let me think. Answer: C", "Answer: (A)", "I am not sure.",
               "So the total is 1,234.\nAnswer: $1,234.00", "Answer: 1235", "the end",
               "Answer: 1000 + 234 = 1234"]  # the expression's result, not its first number
    rows = [{"reply": r} for r in replies]
    assert score_generative(items, rows) == {"gen_acc": 3 / 7, "gen_unparsable": 2}
    assert [r["pred"] for r in rows] == [2, 0, None, "1234", "1235", None, "1234"]


@pytest.mark.parametrize(("p1", "p2", "same", "expected"), [
    (0.9, 0.8, False, "win"), (0.1, 0.3, False, "loss"),
    (0.9, 0.2, False, "tie"),      # position bias: each order prefers whatever came first
    (0.5, 0.9, False, "tie"), (0.9, 0.9, True, "tie"),
])
def test_win_needs_both_orders(p1: float, p2: float, same: bool, expected: str) -> None:
    assert outcome("same reply" if same else "new", "same reply", p1, p2) == expected


def test_metric_names() -> None:
    info = {"model": "M1", "sets": {"mc": {"n": 4, "gen_acc": 0.5, "ll_acc": None,
                                           "ll_acc_norm": 0.25, "ll_acc_bytes": 0.75}},
            "win": {"vs": "M0", "n": 4, "win_rate": 0.25}, "judge_score": 2.5,
            "mean_length": 40}
    assert metric_values(info) == {"eval/mc/gen_acc": 0.5, "eval/mc/ll_acc_norm": 0.25,
                                   "eval/mc/ll_acc_bytes": 0.75, "eval/win_rate": 0.25,
                                   "eval/judge_score": 2.5, "eval/mean_length": 40.0}
