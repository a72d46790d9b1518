"""SCIR: the pairwise judge probability, the consistency loss, the selection rule, gradients
through both reward models in the training step, unlabeled pairs, and a 2-iteration run."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest
import torch

from cream_engine import losses
from cream_engine import trainer as TR
from cream_engine.config import ScirConfig, TrainConfig, from_dict
from cream_engine.errors import CreamError
from cream_engine.files import read_jsonl
from cream_engine.judges import pairwise
from cream_engine.methods import get_method
from cream_engine.methods.scir import pick_pair
from cream_engine.stages import train as T
from cream_engine.stages.pairs import agreement
from cream_engine.store import open_store
from tests.engine.helpers import engine, finish, new_run, tiny_config

BETA = 0.1


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _pairs(n: int) -> list[dict]:
    return [{"prompt": f"What is {i} plus {i}?",
             "messages": [{"role": "user", "content": f"What is {i} plus {i}?"}],
             "chosen": f"It is {2 * i}.", "rejected": f"Maybe {2 * i + 1}, or not at all.",
             "weight": 1.0, "labeled": False} for i in range(n)]


def _load(folder: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)


def _tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


# -- the pairwise judge -----------------------------------------------------------------------


def test_pairwise_probability_formula_and_symmetry_by_construction() -> None:
    # P_G = ½[σ(l_A − l_B | y1 first) + σ(l_B − l_A | y2 first)]
    got = pairwise.pairwise_probability(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]]))
    assert got.item() == pytest.approx(0.5 * (_sigmoid(2.0) + _sigmoid(1.0)), abs=1e-7)
    # swapping y1 and y2 swaps the two orders: P(y2 ≻ y1) = 1 − P(y1 ≻ y2) for any logits
    g = torch.Generator().manual_seed(0)
    l12, l21 = 4 * torch.randn(16, 2, generator=g), 4 * torch.randn(16, 2, generator=g)
    total = pairwise.pairwise_probability(l12, l21) + pairwise.pairwise_probability(l21, l12)
    assert torch.allclose(total, torch.ones(16), atol=1e-6)


def test_judge_probabilities_on_the_model_are_symmetric_and_batch_exact(
        tiny_model_dir: Path) -> None:
    model, tok = _load(tiny_model_dir), _tokenizer(tiny_model_dir)
    ids = pairwise.verdict_tokens(tok)
    items = [(p["prompt"], p["chosen"], p["rejected"]) for p in _pairs(5)]
    items.append(("Name a colour.", "Blue.", "The sky is often described as blue or grey."))
    kw = {"verdict_ids": ids, "max_length": 256}
    forward = pairwise.judge_probabilities(model, tok, items, batch_size=8, **kw)
    swapped = pairwise.judge_probabilities(model, tok, [(x, b, a) for x, a, b in items],
                                           batch_size=8, **kw)
    assert [a + b for a, b in zip(forward, swapped)] == pytest.approx([1.0] * 6, abs=1e-6)
    assert max(abs(p - 0.5) for p in forward) > 1e-4  # the random model does have opinions
    # right padding changes nothing: one pair per batch gives the same probabilities
    single = pairwise.judge_probabilities(model, tok, items, batch_size=1, **kw)
    assert single == pytest.approx(forward, abs=1e-5)


class _FakeTokenizer:
    """Characters as tokens, except that `split` strings become two tokens and `fused`
    strings one (how a BPE folds " A" into a single token)."""

    def __init__(self, ending: str, split: tuple = (), fused: tuple = ()):
        self.ending, self.split, self.fused = ending, split, fused

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return "<user>" + messages[-1]["content"] + self.ending

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        pattern = "|".join(re.escape(f) for f in self.fused) + ("|" if self.fused else "") + "."
        ids: list[int] = []
        for piece in re.findall(pattern, text, flags=re.DOTALL):
            ids += [ord(piece), 0] if piece in self.split else \
                [1000 + self.fused.index(piece) if piece in self.fused else ord(piece)]
        return {"input_ids": ids}


def test_verdict_tokens_are_single_tokens_or_fail_in_one_line(tiny_model_dir: Path) -> None:
    tok = _tokenizer(tiny_model_dir)
    a, b = pairwise.verdict_tokens(tok)
    assert tok.decode([a]) == "A" and tok.decode([b]) == "B"
    # a template that ends in a word: only the leading-space forms are single tokens
    fake = _FakeTokenizer("\nAssistant:", split=("A", "B"), fused=(" A", " B"))
    assert pairwise.verdict_tokens(fake) == (1000, 1001)
    with pytest.raises(pairwise.PairwiseJudgeError, match=r"^[^\n]*not single tokens[^\n]*$"):
        pairwise.verdict_tokens(_FakeTokenizer("\nAssistant:", split=("A", "B")))
    error = pairwise.PairwiseJudgeError("x")
    assert isinstance(error, CreamError) and error.line == "x"  # a known, one-line error


def test_long_judge_prompts_cut_both_replies_and_keep_the_verdict_position(
        tiny_model_dir: Path) -> None:
    tok = _tokenizer(tiny_model_dir)
    long_a, long_b = "alpha " * 300, "beta " * 200
    cols = pairwise.judge_columns(tok, "Compare them.", long_a, long_b, max_length=200)
    for key in ("judge_12_ids", "judge_21_ids"):
        ids = cols[key]
        assert len(ids) <= 200
        assert tok.decode(ids).endswith("<|im_start|>assistant\n")
        assert "Answer with a single letter" in tok.decode(ids)
    assert abs(len(cols["judge_12_ids"]) - len(cols["judge_21_ids"])) <= 2


# -- the losses and the selection rule ---------------------------------------------------------


def test_consistency_loss_by_hand_zero_when_certain_and_equal_never_nan() -> None:
    p, q, lam = 0.8, 0.6, 0.1
    kl_pq = p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
    kl_qp = q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p))
    ent = sum(-x * math.log(x) - (1 - x) * math.log(1 - x) for x in (p, q))
    got = losses.consistency_loss(torch.tensor([p]), torch.tensor([q]), lam)
    assert got.item() == pytest.approx(0.5 * (kl_pq + kl_qp) + lam * ent, abs=1e-6)

    # P_I = P_G and both certain: 0 (up to the clamp at 1e-6)
    certain = torch.tensor([0.0, 1.0])
    zero = losses.consistency_loss(certain, certain.clone(), 0.1)
    assert torch.all(zero >= 0) and torch.all(zero < 1e-4)
    # positive otherwise: disagreement, or agreement without confidence (λ_H > 0)
    g = torch.Generator().manual_seed(1)
    p_i, p_g = torch.rand(32, generator=g), torch.rand(32, generator=g)
    assert torch.all(losses.consistency_loss(p_i, p_g, 0.1) > 1e-3)
    half = torch.tensor([0.5])
    assert losses.consistency_loss(half, half, 0.0).item() == pytest.approx(0.0, abs=1e-7)
    assert losses.consistency_loss(half, half, 0.1).item() == pytest.approx(0.2 * math.log(2))

    # no NaN or inf at 0 and 1, in the values or the gradients
    p_i = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.5], requires_grad=True)
    p_g = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0], requires_grad=True)
    value = losses.consistency_loss(p_i, p_g, 0.1)
    value.sum().backward()
    assert torch.isfinite(value).all() and value[0] > 10  # certain and opposite: large, finite
    assert torch.isfinite(p_i.grad).all() and torch.isfinite(p_g.grad).all()
    # through σ(βh) with |h| huge: P_I rounds to exactly 0 or 1
    h = torch.tensor([1e4, -1e4], requires_grad=True)
    out = losses.scir_loss(h, BETA, torch.tensor([0.0, 1.0]), alpha=1.0, lambda_h=0.1,
                           margin=0.0)
    out.loss.backward()
    assert math.isfinite(out.loss.item()) and torch.isfinite(h.grad).all()


def test_selection_follows_the_rule_with_the_margin() -> None:
    p_i = torch.tensor([0.9, 0.1, 0.9, 0.55, 0.5, 0.7, 0.3, 0.61])
    p_g = torch.tensor([0.8, 0.2, 0.2, 0.56, 0.9, 0.52, 0.45, 0.6])
    selected, sign = losses.scir_selection(p_i, p_g, 0.0)
    # both > ½ → y1; both < ½ → y2; opposite sides or exactly ½ → not selected
    assert selected.tolist() == [True, True, False, True, False, True, True, True]
    assert [s for s, k in zip(sign.tolist(), selected.tolist()) if k] == \
        [1.0, -1.0, 1.0, 1.0, -1.0, 1.0]
    # margin 0.1: both above 0.6 (strictly) or both below 0.4
    selected, sign = losses.scir_selection(p_i, p_g, 0.1)
    assert selected.tolist() == [True, True, False, False, False, False, False, False]
    assert sign[:2].tolist() == [1.0, -1.0]
    assert losses.scir_selection(torch.tensor([0.61]), torch.tensor([0.6000001]), 0.1)[0].item()


def test_scir_loss_by_hand_and_with_nothing_selected() -> None:
    h = torch.tensor([5.0, -8.0, 3.0, 0.0], requires_grad=True)
    p_g = torch.tensor([0.7, 0.2, 0.3, 0.9])  # pair 0 → y1, pair 1 → y2, 2 and 3 disagree
    out = losses.scir_loss(h, BETA, p_g, alpha=0.5, lambda_h=0.1, margin=0.0)
    assert out.selected.tolist() == [True, True, False, False]
    assert out.agree.tolist() == [True, True, False, False]
    dpo = 0.5 * (-math.log(_sigmoid(BETA * 5.0)) - math.log(_sigmoid(BETA * 8.0)))
    p_i = torch.sigmoid(BETA * h.detach())
    con = losses.consistency_loss(p_i, p_g, 0.1).mean().item()
    assert out.dpo.item() == pytest.approx(dpo, abs=1e-6)
    assert out.con.item() == pytest.approx(con, abs=1e-6)
    assert out.loss.item() == pytest.approx(dpo + 0.5 * con, abs=1e-6)
    # both terms reach h: the DPO term only on the selected pairs, L_con on all
    g_dpo, = torch.autograd.grad(out.dpo, h, retain_graph=True)
    g_con, = torch.autograd.grad(out.con, h)
    assert (g_dpo != 0).tolist() == [True, True, False, False]
    assert torch.all(g_con[:3] != 0)

    # nothing selected: the DPO term is a 0 that keeps the graph valid
    h = torch.tensor([2.0, -2.0], requires_grad=True)
    out = losses.scir_loss(h, BETA, torch.tensor([0.3, 0.8]), alpha=1.0, lambda_h=0.1,
                           margin=0.0)
    assert not out.selected.any() and out.dpo.item() == 0.0
    out.loss.backward()
    assert torch.isfinite(h.grad).all() and torch.all(h.grad != 0)


# -- the training step: gradients through both reward models ----------------------------------


def test_training_step_sends_gradients_through_both_reward_models(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tok = _tokenizer(tiny_model_dir)
    pairs = _pairs(8)
    rows = T.scir_rows(pairs, T.preference_rows(pairs), tok, max_length=128)
    args = TR.dpo_args(TrainConfig(batch_size=8, beta=BETA), output_dir=tmp_path / "trainer",
                       seed=0, device="cpu", max_steps=1)
    trainer = TR.make_trainer(_load(tiny_model_dir), tok, rows, args, scir=ScirConfig())
    assert type(trainer).__name__ == "ScirDPOTrainer"
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
    assert batch["judge_input_ids"].shape[0] == 16 and batch["judge_last"].shape == (16,)
    assert batch["judge_attention_mask"].sum(1).tolist() == (batch["judge_last"] + 1).tolist()

    # move the policy away from its reference (M_t) so that h != 0 and P_I != ½
    with torch.no_grad():
        g = torch.Generator().manual_seed(3)
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    model = trainer.model.train()
    seen: list = []
    real_loss = losses.scir_loss

    def grads(target: object, name: str, replacement) -> torch.Tensor:
        """Parameter gradients of one step's loss, with `target.name` replaced."""
        with monkeypatch.context() as m:
            m.setattr(target, name, replacement)
            model.zero_grad()
            trainer.compute_loss(model, dict(batch)).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    def spy(h, beta, p_g, **kw):
        out = real_loss(h, beta, p_g, **kw)
        seen.append(out)
        return out

    full = grads(losses, "scir_loss", spy)
    assert seen[-1].selected.any() and seen[-1].dpo.item() > 0  # both terms are in play
    real_p = pairwise.pairwise_probability
    implicit_only = grads(pairwise, "pairwise_probability",
                          lambda a, b: real_p(a, b).detach())
    judge_only = grads(losses, "scir_loss",
                       lambda h, beta, p_g, **kw: real_loss(h.detach(), beta, p_g, **kw))
    assert implicit_only.abs().max() > 0 and judge_only.abs().max() > 0
    # dL/dθ = ∂L/∂h·dh/dθ + ∂L/∂P_G·dP_G/dθ: the two paths add up to the full gradient
    assert torch.allclose(full, implicit_only + judge_only, atol=1e-6, rtol=1e-4)
    assert trainer._metrics["train"]["scir/selected"]
    assert "consistency" not in trainer._metrics["train"]


def test_unlabeled_pairs_are_refused_without_scir(tmp_path: Path) -> None:
    with pytest.raises(T.TrainingError, match="unlabeled"):
        T.train_dpo(policy_path="unused", pairs=_pairs(2), out_dir=tmp_path / "m",
                    train=TrainConfig(), seed=0, device="cpu", on_metrics=lambda s, v: None)


# -- unlabeled pairs ---------------------------------------------------------------------------


def test_pick_pair_judge_extremes_and_random() -> None:
    extremes = from_dict({"scir": {"pair_selection": "judge-extremes"}})
    rand = from_dict({"scir": {"pair_selection": "random"}})
    responses = ["a", "b", "c", "d"]
    rewards = {"judge": [2.0, 4.5, 1.0, 3.0], "implicit": [0.1, -0.2, 0.3, 0.0]}
    assert pick_pair(rewards, responses, extremes, random.Random(0)) == (1, 2)
    assert pick_pair({"judge": [3.0] * 4}, responses, extremes, random.Random(0)) is None
    assert pick_pair(rewards, ["a", "same", "same ", "b"], extremes, random.Random(0)) is None
    picks = [pick_pair(rewards, ["x", "x", "y", "z"], rand, random.Random(f"7:{k}"))
             for k in range(40)]
    assert all(i != j and {i, j} <= {0, 2, 3} for i, j in picks)  # distinct texts only
    assert len(set(picks)) > 2
    assert picks == [pick_pair(rewards, ["x", "x", "y", "z"], rand, random.Random(f"7:{k}"))
                     for k in range(40)]  # seeded
    assert pick_pair({}, ["x", "x "], rand, random.Random(0)) is None
    method = get_method("scir")
    assert not method.labeled and method.uses_judge and method.pairwise_judge
    assert get_method("cream").labeled and get_method("cream").pick_pair is None


def test_agreement_of_unlabeled_pairs_uses_their_own_reward() -> None:
    pairs = [{"labeled": False, "rewards": [1.0, 3.0], "other_rewards": {"implicit": [0, 2]}},
             {"labeled": False, "rewards": [3.0, 1.0], "other_rewards": {"implicit": [0, 2]}},
             {"labeled": False, "rewards": [2.0, 2.0], "other_rewards": {"implicit": [0, 2]}},
             {"labeled": False, "rewards": [None, 2.0], "other_rewards": {"implicit": [0, 2]}}]
    assert agreement(pairs, "implicit") == 0.5


# -- a run -------------------------------------------------------------------------------------

SCIR_STEP_METRICS = {"loss", "rewards/chosen", "rewards/rejected", "rewards/margins",
                     "rewards/accuracies", "scir/agreement", "scir/selected", "scir/l_con",
                     "scir/l_dpo"}


@pytest.mark.slow
def test_run_with_method_scir_completes_two_iterations(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the engine's torch: see conftest._one_torch_thread
    config = tiny_config(tiny_model_dir, run={"method": "scir"},
                         data={"prompts_per_iteration": 4},
                         generate={"n": 3, "max_new_tokens": 12},
                         train={"learning_rate": 1e-3, "batch_size": 1})
    run_dir = new_run(tmp_path / "home", config)
    code, err = finish(engine(run_dir))
    assert code == 0, err[-3000:]
    store = open_store(tmp_path / "home")
    iters = store.iterations(run_dir.name)
    assert [i["status"] for i in iters] == ["done", "done"]
    rows = store.query("SELECT iteration, name, step, value FROM metrics WHERE run_id = ? "
                       "AND stage = 'train'", [run_dir.name])
    for it in iters:
        t = it["iteration"]
        pairs = read_jsonl(run_dir / f"iter-{t}" / "pairs.jsonl")
        assert pairs and all(p["labeled"] is False and p["weight"] == 1.0 for p in pairs)
        assert set(pairs[0]) >= {"prompt_id", "prompt", "messages", "chosen", "rejected",
                                 "weight", "labeled"}
        mine = [r for r in rows if r["iteration"] == t]
        steps = len(pairs)  # batch size 1, one epoch
        for name in SCIR_STEP_METRICS:
            series = [r for r in mine if r["name"] == name]
            assert [r["step"] for r in series] == list(range(1, steps + 1)), name
            assert all(math.isfinite(r["value"]) for r in series), name
        for name, step in (("scir/agreement_before", 0), ("scir/agreement_after", steps)):
            (row,) = [r for r in mine if r["name"] == name]
            assert row["step"] == step and 0.0 <= row["value"] <= 1.0
        assert all(0 <= r["value"] <= 1 for r in mine
                   if r["name"] in ("scir/agreement", "scir/selected"))
        summary = json.loads(it["summary"])["train"]
        assert summary["scir_agreement_before"] == \
            next(r["value"] for r in mine if r["name"] == "scir/agreement_before")
        assert 0.0 <= summary["scir_agreement_after"] <= 1.0
