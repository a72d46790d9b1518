"""Preference losses, each written once with the papers' symbols (torch; heavy layer).

Notation (ALGORITHMS.md): h = [log π_θ(y⁺|x) − log π_ref(y⁺|x)] − [log π_θ(y⁻|x) − log π_ref(y⁻|x)],
L_DPO(y⁺, y⁻) = −log σ(β·h).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F


def log_ratio_margin(policy_chosen: Any, policy_rejected: Any, ref_chosen: Any,
                     ref_rejected: Any) -> Any:
    """h: the chosen response's log-ratio minus the rejected one's (sums over tokens). Pure
    arithmetic: tensors in the training step, floats where a margin is measured."""
    return (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)


def cream_loss(h: Any, beta: float, c: Any) -> Any:
    """CREAM's consistency-regularized DPO loss, per pair:

        L = C · L_DPO(y⁺, y⁻) + (1 − C) · L_DPO(y⁻, y⁺)
          = −C · log σ(β·h) − (1 − C) · log σ(−β·h)

    C = 1 is plain DPO (TRL's sigmoid loss); C = ½ has zero gradient at h = 0, so a pair whose
    ranking is a coin flip teaches nothing. C is not clipped (below ½ the reversed pair wins).
    """
    return -c * F.logsigmoid(beta * h) - (1.0 - c) * F.logsigmoid(-beta * h)


# -- SCIR (Zhou et al., arXiv 2502.08922): our formulation of the paper's mechanism ----------
# P_I: the implicit (DPO) RM's probability that y1 ≻ y2; P_G: the pairwise judge's (see
# judges/pairwise.py). Both are Bernoulli distributions over "y1 ≻ y2".

EPS = 1e-6  # probabilities are clamped to [EPS, 1 − EPS] before any log: no NaN/inf at 0 or 1


def implicit_preference(h: Any, beta: float) -> Any:
    """P_I(y1 ≻ y2) = σ(β·h), h the log-ratio margin of y1 over y2."""
    return torch.sigmoid(beta * h)


def bernoulli_kl(p: Any, q: Any, eps: float = EPS) -> Any:
    """KL(Bern(p) ‖ Bern(q)) = p·log(p/q) + (1−p)·log((1−p)/(1−q)), clamped."""
    p, q = p.clamp(eps, 1 - eps), q.clamp(eps, 1 - eps)
    return p * (p.log() - q.log()) + (1 - p) * ((1 - p).log() - (1 - q).log())


def bernoulli_entropy(p: Any, eps: float = EPS) -> Any:
    """H(Bern(p)) = −p·log p − (1−p)·log(1−p), clamped (so ≈ 1.5e-5, not 0, at p ∈ {0, 1})."""
    p = p.clamp(eps, 1 - eps)
    return -p * p.log() - (1 - p) * (1 - p).log()


def consistency_loss(p_i: Any, p_g: Any, lambda_h: float, eps: float = EPS) -> Any:
    """SCIR's consistency loss per pair: symmetric KL between the two RMs plus a confidence
    term that penalises indecision:

        L_con = ½[KL(P_I ‖ P_G) + KL(P_G ‖ P_I)] + λ_H·[H(P_I) + H(P_G)]
    """
    p_i, p_g = p_i.float(), p_g.float()
    sym_kl = 0.5 * (bernoulli_kl(p_i, p_g, eps) + bernoulli_kl(p_g, p_i, eps))
    return sym_kl + lambda_h * (bernoulli_entropy(p_i, eps) + bernoulli_entropy(p_g, eps))


def scir_selection(p_i: Any, p_g: Any, margin: float) -> tuple[Any, Any]:
    """Dynamic selection: (selected, sign) per pair. A pair is selected when both RMs prefer
    the same response with probability above ½ + margin (strictly); that response is chosen:
    sign = +1 for y1, −1 for y2 (meaningless where not selected). With margin = 0 the fraction
    selected is the agreement rate of the two RMs."""
    hi, lo = 0.5 + margin, 0.5 - margin
    first = (p_i > hi) & (p_g > hi)
    second = (p_i < lo) & (p_g < lo)
    sign = torch.where(first, 1.0, -1.0).to(p_i.dtype)
    return first | second, sign


class ScirLoss(NamedTuple):
    loss: Any        # L = mean_selected L_DPO + α·mean_all L_con (the training objective)
    dpo: Any         # mean over the selected pairs of L_DPO, oriented by the selection (0 if none)
    con: Any         # mean over all pairs of L_con
    selected: Any    # bool per pair, at the configured margin
    agree: Any       # bool per pair: both RMs on the same side of ½ (margin 0)


def scir_loss(h: Any, beta: float, p_g: Any, *, alpha: float, lambda_h: float,
              margin: float) -> ScirLoss:
    """SCIR's step loss on unlabeled pairs (y1, y2), h = margin of y1 over y2:

        P_I = σ(β·h);  s = ±1, the response both RMs prefer (selection above)
        L = mean_{selected} −log σ(β·s·h) + α · mean_{all} L_con(P_I, P_G)

    The selection is recomputed every step (no gradient through it). With nothing selected
    the DPO term is a zero that stays in the graph."""
    h = h.float()
    p_i = implicit_preference(h, beta)
    with torch.no_grad():
        selected, sign = scir_selection(p_i, p_g, margin)
        agree, _ = scir_selection(p_i, p_g, 0.0)
    per_pair_dpo = -F.logsigmoid(beta * sign * h)
    dpo = torch.where(selected, per_pair_dpo, torch.zeros_like(per_pair_dpo)).sum() \
        / selected.sum().clamp(min=1)
    con = consistency_loss(p_i, p_g, lambda_h).mean()
    return ScirLoss(dpo + alpha * con, dpo, con, selected, agree)
