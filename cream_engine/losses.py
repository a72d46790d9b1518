"""Preference losses, each written once with the papers' symbols (torch; heavy layer).

Notation (ALGORITHMS.md): h = [log π_θ(y⁺|x) − log π_ref(y⁺|x)] − [log π_θ(y⁻|x) − log π_ref(y⁻|x)],
L_DPO(y⁺, y⁻) = −log σ(β·h).
"""

from __future__ import annotations

from typing import Any


def log_ratio_margin(policy_chosen: Any, policy_rejected: Any, ref_chosen: Any,
                     ref_rejected: Any) -> Any:
    """h: the chosen response's log-ratio minus the rejected one's (sums over tokens)."""
    return (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)


def cream_loss(h: Any, beta: float, c: Any) -> Any:
    """CREAM's consistency-regularized DPO loss, per pair:

        L = C · L_DPO(y⁺, y⁻) + (1 − C) · L_DPO(y⁻, y⁺)
          = −C · log σ(β·h) − (1 − C) · log σ(−β·h)

    C = 1 is plain DPO (TRL's sigmoid loss); C = ½ has zero gradient at h = 0, so a pair whose
    ranking is a coin flip teaches nothing. C is not clipped (below ½ the reversed pair wins).
    """
    import torch.nn.functional as F

    return -c * F.logsigmoid(beta * h) - (1.0 - c) * F.logsigmoid(-beta * h)
