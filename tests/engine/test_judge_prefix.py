"""SCIR's judge forward with the two presentation orders' common prefix computed once
(`pairwise.verdict_logits_both_orders`): the same verdict logits, probabilities and gradients
as one plain forward of both orders, fewer tokens through the model, and the plain forward
where the cache cannot be used (activation checkpointing)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cream_engine.judges import pairwise

ITEMS = [  # (request, y1, y2)
    ("What is 2 plus 2?", "It is 4.", "Maybe 5, or not at all."),
    ("Name a colour.", "Blue.", "The sky is often described as blue or grey, and so on."),
    ("Say hi.", "Hi.", "Hi."),  # identical replies: the orders are one sequence
    ("Explain rain.", "Water falls from clouds when droplets grow heavy enough to fall down.",
     "Clouds."),
    ("Count to three.", "1 2 3", "1 2 4"),  # differ in one late token
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def judge_batch(tok) -> dict:
    cols = [pairwise.judge_columns(tok, x, a, b, 512) for x, a, b in ITEMS]
    return pairwise.collate_judge([c["judge_12_ids"] for c in cols]
                                  + [c["judge_21_ids"] for c in cols], tok.pad_token_id)


def logits_and_grads(model, batch: dict, verdicts, fn) -> tuple[torch.Tensor, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    logits = fn(model, batch["input_ids"], batch["attention_mask"], batch["last"], verdicts)
    # a loss that reaches every verdict logit (as L_con does through P_G)
    (pairwise.pairwise_probability(*logits.chunk(2)) ** 2).sum().backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return logits.detach(), grads


def test_shared_prefix_gives_the_plain_forwards_numbers(tiny) -> None:
    model, tok = tiny
    model.train()
    batch, verdicts = judge_batch(tok), pairwise.verdict_tokens(tok)
    plain, g_plain = logits_and_grads(model, batch, verdicts, pairwise.verdict_logits)
    tokens: list[int] = []
    hook = model.register_forward_pre_hook(
        lambda _m, _a, kw: tokens.append(int(kw["attention_mask"][:, -kw["input_ids"].size(1):]
                                             .sum())), with_kwargs=True)
    try:
        shared, g_shared = logits_and_grads(model, batch, verdicts,
                                            pairwise.verdict_logits_both_orders)
    finally:
        hook.remove()
    assert len(tokens) == 2  # the first order in full, the second after the prefix
    assert sum(tokens) < int(batch["attention_mask"].sum())
    p_plain = pairwise.pairwise_probability(*plain.chunk(2))
    p_shared = pairwise.pairwise_probability(*shared.chunk(2))
    assert (p_plain - p_shared).abs().max().item() < 1e-5
    assert (plain - shared).abs().max().item() < 1e-4
    assert ((g_plain - g_shared).norm() / g_plain.norm()).item() < 1e-4
    assert p_shared[2].item() == pytest.approx(0.5, abs=1e-6)  # identical replies


def test_judge_probabilities_keep_their_values(tiny) -> None:
    model, tok = tiny
    verdicts = pairwise.verdict_tokens(tok)
    got = pairwise.judge_probabilities(model, tok, ITEMS, verdict_ids=verdicts,
                                       max_length=512, batch_size=2)
    batch = judge_batch(tok)
    with torch.no_grad():
        plain = pairwise.verdict_logits(model, batch["input_ids"], batch["attention_mask"],
                                        batch["last"], verdicts)
    want = pairwise.pairwise_probability(*plain.chunk(2)).tolist()
    assert got == pytest.approx(want, abs=1e-5)


def test_activation_checkpointing_takes_the_plain_forward(tiny) -> None:
    model, tok = tiny
    batch, verdicts = judge_batch(tok), pairwise.verdict_tokens(tok)
    model.train()
    plain, _ = logits_and_grads(model, batch, verdicts, pairwise.verdict_logits)
    # (transformers 5.2x's names; 5.19, vLLM's pin, has the gradient_* ones)
    enable = getattr(model, "activation_checkpointing_enable", None) \
        or model.gradient_checkpointing_enable
    disable = getattr(model, "activation_checkpointing_disable", None) \
        or model.gradient_checkpointing_disable
    enable()
    calls: list[int] = []
    hook = model.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        shared, _ = logits_and_grads(model, batch, verdicts,
                                     pairwise.verdict_logits_both_orders)
    finally:
        hook.remove()
        disable()
    assert len(calls) == 1
    assert (plain - shared).abs().max().item() < 1e-5
