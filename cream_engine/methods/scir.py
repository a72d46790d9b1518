"""SCIR (Zhou et al., arXiv 2502.08922): the model's two internal reward models, the implicit
DPO reward (P_I) and the pairwise judge (P_G), are trained to agree, confidently, and a pair
trains the policy only in the steps where they agree. The exact formulas are this project's
formulation of the paper's mechanism (losses.py, judges/pairwise.py, README).

What this module decides: pairs are UNLABELED. One (y1, y2) per prompt, either the best and
worst by the pointwise judge ("judge-extremes") or two random distinct responses ("random",
seeded per prompt); chosen / rejected in pairs.jsonl hold y1 / y2 and `labeled` is false. The
label comes from the training step (trainer.py), and the train stage measures the agreement of
the two RMs before and after training (stages/train.py).
"""

from __future__ import annotations

import random
from typing import Any

from cream_engine.methods.base import Method, best_and_worst


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
    picked = best_and_worst(rewards.get("judge") or [])
    if picked is None or responses[picked[0]].strip() == responses[picked[1]].strip():
        return None
    return picked


METHOD = Method(name="scir", uses_judge=True, pair_reward="judge",
                pair_weight=lambda c_j, c_mean, mode: 1.0, labeled=False, pick_pair=pick_pair,
                pairwise_judge=True)
