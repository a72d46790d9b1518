"""The score stage's log π_{M_t} is the trainer's reference: with `ref_chosen_logps` and
`ref_rejected_logps` on every pair, TRL's reference pass never runs and training is the same
as when TRL computes it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cream_engine.config import TrainConfig
from cream_engine.logprobs import sequence_logprobs
from cream_engine.models import load_model
from cream_engine.stages import train as T


def _pairs() -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"What is {i} times {i}?"}],
             "chosen": f"{i * i}.", "rejected": f"Perhaps {i * i + 3}, I am not sure.",
             "weight": 0.5 + i / 10} for i in range(6)]


def _train(model_dir: Path, out: Path, pairs: list[dict]) -> list[float]:
    losses: list[float] = []
    T.train_dpo(policy_path=str(model_dir), pairs=pairs, out_dir=out / "model",
                train=TrainConfig(batch_size=2, learning_rate=1e-3), seed=2, device="cpu",
                on_metrics=lambda step, v: losses.append(v["loss"]), work_dir=out / "work")
    return losses


def test_given_reference_logps_skip_trls_pass_and_train_the_same(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trl import DPOTrainer

    pairs = _pairs()
    model, tokenizer = load_model(str(tiny_model_dir), tmp_path, dtype="float32", device="cpu")
    with torch.no_grad():
        seq = sequence_logprobs(model, tokenizer, [(p["messages"], y) for p in pairs
                                                   for y in (p["chosen"], p["rejected"])],
                                max_length=512)
    given = [{**p, "ref_chosen_logps": seq[2 * i].logp, "ref_rejected_logps": seq[2 * i + 1].logp}
             for i, p in enumerate(pairs)]
    computed = _train(tiny_model_dir, tmp_path / "trl", pairs)

    def refused(*args, **kwargs):
        raise AssertionError("TRL's reference pass ran although the pairs bring it")

    monkeypatch.setattr(DPOTrainer, "_precompute_ref_logps", refused)
    reused = _train(tiny_model_dir, tmp_path / "ours", given)
    assert len(reused) == len(computed) == 3
    assert max(abs(a - b) for a, b in zip(reused, computed)) <= 1e-5
    # a pair without them: TRL computes them all (here: refused, so it shows)
    partial = [given[0], *pairs[1:]]
    with pytest.raises(AssertionError, match="reference pass ran"):
        _train(tiny_model_dir, tmp_path / "partial", partial)
