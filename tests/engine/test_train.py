"""The training stage: CREAM's loss by hand, exactness against stock TRL at C = 1, the weighted
loss against an independent computation, and `train_dpo` end to end on the tiny model."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest
import torch

from cream_engine import losses
from cream_engine import trainer as TR
from cream_engine.config import TrainConfig
from cream_engine.losses import cream_loss, log_ratio_margin
from cream_engine.stages import train as T

ENGINE = Path(T.__file__).resolve().parents[1]

BETA = 0.1
WEIGHTS = [1.0, 0.0, 0.5, 0.9, 0.2, 0.75, 0.3, 1.3]  # C is not clipped: 1.3 is allowed


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _pairs(weights: list[float]) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}],
             "chosen": f"It is {2 * i}.", "rejected": f"Maybe {2 * i + 1}, or not at all.",
             "weight": w} for i, w in enumerate(weights)]


def _load(folder: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)


def _tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


@torch.no_grad()
def _perturb(*models, seed: int = 1, scale: float = 0.05) -> None:
    """The same seeded noise added to every model's parameters (in place, so h != 0)."""
    g = torch.Generator().manual_seed(seed)
    for params in zip(*(m.parameters() for m in models)):
        noise = scale * torch.randn(params[0].shape, generator=g)
        for p in params:
            p.add_(noise)


@torch.no_grad()
def _sequence_logps(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed response log-probs from plain logits (no TRL code): (chosen, rejected)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    tokens = logp.gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    return (tokens * batch["completion_mask"][:, 1:]).sum(dim=1).chunk(2)


# -- the loss by hand ---------------------------------------------------------------------


def test_cream_loss_matches_the_formula_by_hand() -> None:
    pc, pr, rc, rr = -10.0, -14.0, -11.0, -12.5  # h = (−10 + 11) − (−14 + 12.5) = 2.5
    h = log_ratio_margin(*(torch.tensor([v]) for v in (pc, pr, rc, rr)))
    assert h.item() == pytest.approx(2.5)
    for c in (1.0, 0.9, 0.5, 0.2, 0.0, 1.3):
        expected = -c * math.log(_sigmoid(BETA * 2.5)) - (1 - c) * math.log(_sigmoid(-BETA * 2.5))
        assert cream_loss(h, BETA, c).item() == pytest.approx(expected, abs=1e-6)
    # C = 1 is DPO, −log σ(βh); C = 0 is DPO on the reversed pair (h' = −h)
    assert cream_loss(h, BETA, 1.0).item() == pytest.approx(-math.log(_sigmoid(0.25)), abs=1e-7)
    h_reversed = log_ratio_margin(*(torch.tensor([v]) for v in (pr, pc, rr, rc)))
    assert cream_loss(h, BETA, 0.0).item() == pytest.approx(
        cream_loss(h_reversed, BETA, 1.0).item(), abs=1e-7)
    # per pair, with a tensor of C
    c = torch.tensor([1.0, 0.5, 0.0])
    got = cream_loss(torch.tensor([2.5, 2.5, 2.5]), BETA, c)
    assert got.tolist() == pytest.approx(
        [cream_loss(h, BETA, float(ci)).item() for ci in c], abs=1e-7)


def test_cream_loss_at_half_teaches_nothing_at_h_zero() -> None:
    h = torch.zeros(3, requires_grad=True)
    loss = cream_loss(h, BETA, 0.5).sum()
    loss.backward()
    assert loss.item() == pytest.approx(3 * math.log(2))
    assert h.grad.abs().max().item() == 0.0
    # elsewhere dL/dh = −β (C − σ(βh)): at h = 0 and C = 0.9, −0.04
    h = torch.zeros(1, requires_grad=True)
    cream_loss(h, BETA, 0.9).sum().backward()
    assert h.grad.item() == pytest.approx(-BETA * (0.9 - 0.5), abs=1e-7)


def test_pairs_are_checked() -> None:
    with pytest.raises(T.TrainingError, match="no pairs"):
        T.preference_rows([])
    with pytest.raises(T.TrainingError, match="pair 1: weight = nan"):
        T.preference_rows(_pairs([1.0, float("nan")]))
    with pytest.raises(T.TrainingError, match="pair 0: missing weight"):
        T.preference_rows([{"messages": [], "chosen": "a", "rejected": "b"}])
    row = T.preference_rows(_pairs([0.7]))[0]
    assert row["prompt"][0]["role"] == "user" and row["weight"] == 0.7
    assert row["chosen"] == [{"role": "assistant", "content": "It is 0."}]


def _imports(path: Path) -> set[str]:
    """Every module a source file imports, at its top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_trl_stays_in_the_trainer_modules_which_only_their_stages_import() -> None:
    """TRL's DPO in trainer.py, its SFT in sft_trainer.py (which borrows trainer.py's
    precision and LoRA settings), each imported by its own stage only."""
    uses_trl, uses_trainer = set(), set()
    for path in ENGINE.rglob("*.py"):
        imported = _imports(path)
        name = path.relative_to(ENGINE).as_posix()
        if any(m == "trl" or m.startswith("trl.") for m in imported):
            uses_trl.add(name)
        if "cream_engine.trainer" in imported:
            uses_trainer.add(name)
    assert uses_trl == {"trainer.py", "sft_trainer.py"}
    assert uses_trainer == {"stages/train.py", "sft_trainer.py", "stages/sft.py"}


# -- the trainer against TRL and against an independent computation ----------------------


def _args(tmp_path: Path, **overrides):
    config = TrainConfig(learning_rate=1e-3, batch_size=4, warmup_ratio=0.0, beta=BETA)
    args = TR.dpo_args(config, output_dir=tmp_path / "trainer", seed=0, device="cpu",
                       max_steps=2)
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_weight_one_is_exactly_stock_trl_sigmoid(tiny_model_dir: Path, tmp_path: Path) -> None:
    from datasets import Dataset
    from trl import DPOTrainer

    tokenizer = _tokenizer(tiny_model_dir)
    rows = T.preference_rows(_pairs([1.0] * 8))
    ours = TR.make_trainer(_load(tiny_model_dir), tokenizer, rows, _args(tmp_path / "a"))
    with TR.quiet():
        stock = DPOTrainer(model=_load(tiny_model_dir), ref_model=None,
                           args=_args(tmp_path / "b"), processing_class=tokenizer,
                           train_dataset=Dataset.from_list(
                               [{k: v for k, v in r.items() if k != "weight"} for r in rows]))
    batches = []
    for trainer in (ours, stock):
        torch.manual_seed(0)
        batches.append(next(iter(trainer.get_train_dataloader())))
    assert "weight" in batches[0] and "weight" not in batches[1]
    assert torch.equal(batches[0]["input_ids"], batches[1]["input_ids"])

    _perturb(ours.model, stock.model)  # the references stay M_t: h != 0
    ours.model.train(), stock.model.train()
    loss_ours = ours.compute_loss(ours.model, batches[0])
    loss_stock = stock.compute_loss(stock.model, batches[1])
    assert abs(loss_ours.item() - math.log(2)) > 1e-3
    assert abs(loss_ours.item() - loss_stock.item()) <= 1e-6

    # and two optimizer steps later: same logged losses, same weights
    for trainer in (ours, stock):
        trainer._metrics["train"].clear()
        with TR.quiet():
            trainer.train()
    logged = [[h["loss"] for h in t.state.log_history if "loss" in h] for t in (ours, stock)]
    assert len(logged[0]) == 2 and logged[0] == pytest.approx(logged[1], abs=1e-6)
    diff = max((a - b).abs().max().item()
               for a, b in zip(ours.model.parameters(), stock.model.parameters()))
    assert diff <= 1e-6


def test_weighted_loss_matches_an_independent_computation(tiny_model_dir: Path,
                                                          tmp_path: Path) -> None:
    trainer = TR.make_trainer(_load(tiny_model_dir), _tokenizer(tiny_model_dir),
                              T.preference_rows(_pairs(WEIGHTS)), _args(tmp_path))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(WEIGHTS))])
    assert batch["weight"].tolist() == pytest.approx(WEIGHTS)

    # the reference is M_t: TRL's precomputed log-probs agree with plain logits of a fresh copy
    ref_chosen, ref_rejected = _sequence_logps(_load(tiny_model_dir), batch)
    assert torch.allclose(ref_chosen, batch["ref_chosen_logps"], atol=1e-4)
    assert torch.allclose(ref_rejected, batch["ref_rejected_logps"], atol=1e-4)

    policy = _load(tiny_model_dir)
    _perturb(trainer.model, policy)
    chosen, rejected = _sequence_logps(policy, batch)
    h = log_ratio_margin(chosen, rejected, ref_chosen, ref_rejected)
    assert h.abs().min().item() > 1e-2
    expected = cream_loss(h, BETA, batch["weight"]).mean()

    seen_kwargs: list[set] = []
    hook = trainer.model.register_forward_pre_hook(
        lambda _m, _a, kwargs: seen_kwargs.append(set(kwargs)), with_kwargs=True)
    trainer.model.train()
    got = trainer.compute_loss(trainer.model, batch)
    hook.remove()
    assert abs(got.item() - expected.item()) <= 1e-5
    assert seen_kwargs and all("weight" not in kw for kw in seen_kwargs)
    assert trainer._metrics["train"]["consistency"] == [pytest.approx(sum(WEIGHTS) / 8)]


def test_unsupported_trl_options_are_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported: loss_type"):
        TR.make_trainer(_load(tiny_model_dir), _tokenizer(tiny_model_dir),
                        T.preference_rows(_pairs([1.0, 0.5])),
                        _args(tmp_path, loss_type=["hinge"], loss_weights=[1.0]))


# -- train_dpo end to end -----------------------------------------------------------------


def _train(tiny_model_dir: Path, out_dir: Path, **config) -> tuple[dict, list, list]:
    metrics: list[tuple[int, dict]] = []
    progress: list[tuple[int, int]] = []
    train = TrainConfig(**{"learning_rate": 1e-3, "batch_size": 2, **config})
    summary = T.train_dpo(policy_path=str(tiny_model_dir), pairs=_pairs(WEIGHTS),
                          out_dir=out_dir, train=train, seed=7, device="cpu",
                          on_metrics=lambda step, values: metrics.append((step, values)),
                          on_progress=lambda step, total: progress.append((step, total)),
                          work_dir=out_dir.parent / "work")
    return summary, metrics, progress


@pytest.fixture(scope="module")
def full_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out_dir = tmp_path_factory.mktemp("full") / "iter-1" / "model"
    return (out_dir, *_train(tiny_model_dir, out_dir))


def test_train_dpo_streams_every_metric_every_step(full_run) -> None:
    _, summary, metrics, progress = full_run
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [step for step, _ in metrics] == [1, 2, 3, 4]
    for _, values in metrics:
        assert set(values) == set(TR.METRIC_NAMES)
        assert all(math.isfinite(v) for v in values.values())
    # consistency is the mean C of each step's two pairs; every pair is seen once an epoch
    assert sum(v["consistency"] for _, v in metrics) * 2 == pytest.approx(sum(WEIGHTS))
    assert summary["steps"] == 4 and summary["pairs"] == 8
    assert summary["final_loss"] == metrics[-1][1]["loss"]
    assert summary["seconds"] > 0 and summary["seconds_per_step"] == pytest.approx(
        summary["seconds"] / 4)


def test_train_dpo_saves_a_plain_changed_model(full_run, tiny_model_dir: Path) -> None:
    out_dir = full_run[0]
    assert sorted(p.name for p in out_dir.parent.iterdir()) == ["model", "work"]  # no .tmp
    model = _load(out_dir)
    assert type(model).__name__ == "LlamaForCausalLM"
    config = json.loads((out_dir / "config.json").read_text())
    assert "quantization_config" not in config and config["use_cache"] is True
    assert not (out_dir / "adapter_config.json").exists()
    assert _tokenizer(out_dir).chat_template
    before, after = _weights(tiny_model_dir), _weights(out_dir)
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_train_dpo_is_deterministic(full_run, tiny_model_dir: Path, tmp_path: Path) -> None:
    out_dir, _, metrics, _ = full_run
    _, again, _ = _train(tiny_model_dir, tmp_path / "model")
    first, second = _weights(out_dir), _weights(tmp_path / "model")
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert [v for _, v in again] == [v for _, v in metrics]


def test_train_dpo_lora_merges_into_a_plain_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    summary, metrics, _ = _train(tiny_model_dir, tmp_path / "model", lora=True, lora_rank=4,
                                 lora_alpha=8, learning_rate=1e-2)
    assert summary["steps"] == 4 and all(set(v) == set(TR.METRIC_NAMES) for _, v in metrics)
    assert not (tmp_path / "model" / "adapter_config.json").exists()
    assert type(_load(tmp_path / "model")).__name__ == "LlamaForCausalLM"
    before, after = _weights(tiny_model_dir), _weights(tmp_path / "model")
    assert before.keys() == after.keys()  # no lora_A / lora_B left
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any("q_proj" in k for k in changed) and any("down_proj" in k for k in changed)
    assert "model.embed_tokens.weight" not in changed  # LoRA touches the linear layers only


def test_train_dpo_stops_at_a_nan_loss(tiny_model_dir: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = losses.cream_loss

    def nan_from_third_step(h, beta, c):
        calls.append(1)
        loss = real(h, beta, c)
        return loss * float("nan") if len(calls) >= 3 else loss

    monkeypatch.setattr(losses, "cream_loss", nan_from_third_step)
    out_dir = tmp_path / "model"
    metrics: list = []
    progress: list = []
    with pytest.raises(T.TrainingError, match=r"^NaN loss at step 3$"):
        T.train_dpo(policy_path=str(tiny_model_dir), pairs=_pairs(WEIGHTS), out_dir=out_dir,
                    train=TrainConfig(learning_rate=1e-3, batch_size=2), seed=0, device="cpu",
                    on_metrics=lambda s, v: metrics.append(s),
                    on_progress=lambda s, n: progress.append(s), work_dir=tmp_path / "work")
    assert len(calls) == 3  # training stopped at the NaN step
    assert metrics == [1, 2] and progress == [1, 2]
    assert not out_dir.exists() and not list(tmp_path.glob(".model*"))  # no temp folder left


def test_train_dpo_refuses_when_no_prompt_fits(tiny_model_dir: Path, tmp_path: Path) -> None:
    pairs = [{"messages": [{"role": "user", "content": "word " * 40}], "chosen": "a",
              "rejected": "b", "weight": 1.0}]
    with pytest.raises(T.TrainingError, match="no pair fits max_length = 16"):
        T.train_dpo(policy_path=str(tiny_model_dir), pairs=pairs, out_dir=tmp_path / "model",
                    train=TrainConfig(max_length=16), seed=0, device="cpu",
                    on_metrics=lambda s, v: None, work_dir=tmp_path / "work")
    assert not (tmp_path / "model").exists()
