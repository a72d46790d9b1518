"""What differs between methods, and nothing else: which reward ranks the responses into
pairs, whether the judge runs, and the weight (soft label) each pair trains with.
Generation, storage, checkpoints and the trainer loop are shared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Method:
    name: str
    uses_judge: bool        # the pointwise LLM-as-a-Judge scores every response
    pair_reward: str        # "judge" or "implicit": the reward that picks chosen/rejected
    # weight of one pair from its prompt's C_j, the iteration's mean C, and [consistency] mode
    pair_weight: Callable[[float | None, float | None, str], float]


def get_method(name: str) -> Method:
    from cream_engine.methods import cream, dpo, srlm

    methods = {m.METHOD.name: m.METHOD for m in (srlm, cream, dpo)}
    if name not in methods:
        raise ValueError(f"method {name!r} is not available (known: {', '.join(methods)})")
    return methods[name]
