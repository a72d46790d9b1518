"""CREAM (Wang et al., ICLR 2025): pairs from the current implicit reward, trained with the
soft label C, the consistency of rankings between this model and the previous one.

- average (the paper's main method): every pair weighs the iteration's mean C;
- dynamic: each pair weighs its own prompt's C_j (a prompt without one takes the mean).
C is not clipped. Without the seed SFT the first iteration's policy is M0 itself: there is no
previous model, hence no C, pairs weigh 1 (plain DPO) and τ is recorded as missing. With it
(`[sft] enabled`) the first policy is M1, ranked against M0's length-normalised likelihood,
and its C weighs the pairs as in every later iteration.
"""

from __future__ import annotations

from cream_engine.methods.base import Method


def pair_weight(c_j: float | None, c_mean: float | None, mode: str) -> float:
    if c_mean is None:
        return 1.0
    if mode == "dynamic" and c_j is not None:
        return c_j
    return c_mean


METHOD = Method(name="cream", uses_judge=False, pair_reward="implicit", pair_weight=pair_weight)
