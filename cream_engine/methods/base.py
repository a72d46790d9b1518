"""What a method is: the few choices that differ between methods (which reward ranks the
responses into pairs, whether the judge runs, the weight each pair trains with, and for SCIR
unlabeled pairs judged inside the training step), and the rule shared by every labeled method:
the best response against the worst. Pure Python."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Method:
    name: str
    uses_judge: bool        # the pointwise LLM-as-a-Judge scores every response
    pair_reward: str        # "judge", "implicit" or "oracle": the reward that picks the pair
    # weight of one pair from its prompt's C_j, the iteration's mean C, and [consistency] mode
    pair_weight: Callable[[float | None, float | None, str], float]
    # labeled pairs: chosen = best, rejected = worst by `pair_reward`. Unlabeled pairs (SCIR):
    # `pick_pair(rewards, responses, config, rng)` picks (y1, y2) or None, and the label is
    # decided inside each training step
    labeled: bool = True
    pick_pair: Callable[[dict, list[str], Any, random.Random], tuple[int, int] | None] | None \
        = None
    pairwise_judge: bool = False  # the training step reads the pairwise judge (P_G)


def best_and_worst(rewards: list[float | None]) -> tuple[int, int] | None:
    """(argmax, argmin) over the responses that have a reward; None on a tie or < 2 rewards.
    Equal rewards resolve to the earliest index for the best and the latest for the worst."""
    valid = [(r, i) for i, r in enumerate(rewards) if r is not None and math.isfinite(r)]
    if len(valid) < 2:
        return None
    best = max(valid, key=lambda v: (v[0], -v[1]))
    worst = min(valid, key=lambda v: (v[0], -v[1]))
    if best[0] == worst[0]:
        return None
    return best[1], worst[1]
