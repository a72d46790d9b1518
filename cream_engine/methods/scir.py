"""SCIR (Zhou et al., arXiv 2502.08922): the model's two internal reward models, the implicit
DPO reward (P_I) and the pairwise judge (P_G), are trained to agree, confidently, and a pair
trains the policy only in the steps where they agree. The exact formulas are this project's
formulation of the paper's mechanism (losses.py, judges/pairwise.py, README).

What this module decides:
- pairs are UNLABELED: one (y1, y2) per prompt, either the best and worst by the pointwise judge
  ("judge-extremes") or two random distinct responses ("random", seeded per prompt); chosen /
  rejected in pairs.jsonl hold y1 / y2 and `labeled` is false. The label comes from the step.
- the agreement rate of the two RMs on the iteration's pairs, before and after training.
"""

from __future__ import annotations

import random
from typing import Any

from cream_engine.methods import Method


def pick_pair(rewards: dict, responses: list[str], config: Any,
              rng: random.Random) -> tuple[int, int] | None:
    """(y1, y2) indices for one prompt, or None (fewer than two distinct responses, or a
    judge tie). Identical texts are never paired: both RMs would be exactly ½ on them."""
    if config.scir.pair_selection == "random":
        first_of: dict[str, int] = {}
        for i, text in enumerate(responses):
            first_of.setdefault(text.strip(), i)
        distinct = sorted(first_of.values())
        if len(distinct) < 2:
            return None
        i, j = rng.sample(distinct, 2)
        return i, j
    from cream_engine.stages.pairs import best_and_worst

    picked = best_and_worst(rewards.get("judge") or [])
    if picked is None or responses[picked[0]].strip() == responses[picked[1]].strip():
        return None
    return picked


METHOD = Method(name="scir", uses_judge=True, pair_reward="judge",
                pair_weight=lambda c_j, c_mean, mode: 1.0, labeled=False, pick_pair=pick_pair,
                pairwise_judge=True)


# -- agreement of the two RMs, before and after an iteration's training -----------------------


def measure_agreement(ctx: Any, t: int, pairs: list[dict], model_path: str, *,
                      trained: bool) -> float | None:
    """Fraction of the pairs on which the implicit RM and the pairwise judge of one model prefer
    the same response (no gradients; the functions of the training step, margin 0).

    The implicit RM here is measured against the fixed rewarding reference M_0, as CREAM's
    rankings are: inside the step π_ref = M_t, so M_t's own implicit reward against it is
    identically 0 and "before" would be undefined. So:
    - before (M_t, `trained=False`): r_t = log π_t − log π_0 from the reward stage (for t = 0,
      where M_t is M_0, the length-normalised log-likelihood, as everywhere in the engine);
    - after (M_{t+1}, `trained=True`): log π_{t+1} − log π_0 (one no-grad pass; log π_0 from
      the reward stage). At t = 0 this is exactly the P_I the step trained.
    The judge P_G is read from the same model in both cases."""
    import torch

    from cream_engine import losses
    from cream_engine.data import read_jsonl
    from cream_engine.judges.pairwise import (
        judge_max_length,
        judge_probabilities,
        request_text,
        verdict_tokens,
    )
    from cream_engine.logprobs import sequence_logprobs

    model, tokenizer = ctx.load(model_path)
    cfg = ctx.config
    label = "agree after" if trained else "agree before"
    with ctx.progress(t, "train", len(pairs), f"{label} P_G") as bar:
        p_g = judge_probabilities(
            model, tokenizer, [(request_text(p), p["chosen"], p["rejected"]) for p in pairs],
            verdict_ids=verdict_tokens(tokenizer),
            max_length=judge_max_length(cfg.train.max_length),
            batch_size=cfg.consistency.batch_size, device=ctx.device, progress=bar.advance)
    if trained:
        items = [(p["messages"], y) for p in pairs for y in (p["chosen"], p["rejected"])]
        with ctx.progress(t, "train", len(items), f"{label} P_I") as bar:
            seq = sequence_logprobs(model, tokenizer, items,
                                    batch_size=cfg.consistency.batch_size,
                                    max_length=cfg.train.max_length, device=ctx.device,
                                    progress=bar.advance)
        scores = {r["prompt_id"]: r for r in read_jsonl(ctx.iter_dir(t) / "scores.jsonl")}
        margins: list[float | None] = []
        for k, p in enumerate(pairs):
            lp = scores[p["prompt_id"]]["logp"]
            base = lp.get("reference") or lp["current"]  # log π_0 (M_t is M_0 when t = 0)
            margins.append((seq[2 * k].logp - base[p["chosen_index"]])
                           - (seq[2 * k + 1].logp - base[p["rejected_index"]]))
    else:
        implicit = [p.get("other_rewards", {}).get("implicit") or [None, None] for p in pairs]
        margins = [None if None in r else r[0] - r[1] for r in implicit]
    keep = [k for k, m in enumerate(margins) if m is not None]
    if not keep:
        return None
    p_i = losses.implicit_preference(torch.tensor([margins[k] for k in keep]), cfg.train.beta)
    agree, _ = losses.scir_selection(p_i, torch.tensor([p_g[k] for k in keep]), 0.0)
    return float(agree.float().mean())
