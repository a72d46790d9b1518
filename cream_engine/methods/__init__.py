"""What differs between methods, and nothing else: which reward ranks the responses into
pairs, whether the judge runs, and the weight (soft label) each pair trains with.
Generation, storage, checkpoints and the trainer loop are shared."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Method:
    name: str
    uses_judge: bool        # the pointwise LLM-as-a-Judge scores every response
    pair_reward: str        # "judge" or "implicit": the reward that picks chosen/rejected
    # weight of one pair from its prompt's C_j, the iteration's mean C, and [consistency] mode
    pair_weight: Callable[[float | None, float | None, str], float]
    # labeled pairs: chosen = best, rejected = worst by `pair_reward`. Unlabeled pairs (SCIR):
    # `pick_pair(rewards, responses, config, rng)` picks (y1, y2) or None, and the label is
    # decided inside each training step
    labeled: bool = True
    pick_pair: Callable[[dict, list[str], Any, random.Random], tuple[int, int] | None] | None \
        = None
    pairwise_judge: bool = False  # the training step reads the pairwise judge (P_G)


def get_method(name: str) -> Method:
    from cream_engine.methods import cream, dpo, scir, srlm

    methods = {m.METHOD.name: m.METHOD for m in (srlm, cream, dpo, scir)}
    if name not in methods:
        raise ValueError(f"method {name!r} is not available (known: {', '.join(methods)})")
    return methods[name]
