"""Consistency of rewards across iterations (CREAM's measure), for every method.

Per prompt j, the N responses are ranked twice: by the current model's implicit reward r_t and
by the previous model's r_{t-1} (ALGORITHMS.md). τ_j is Kendall's tau between the two
*ordinal* rankings, ties broken by response index, as the CREAM authors do. With ordinal
ranks there are no ties left, so τ-a and τ-b coincide; we use it because the rewards are
continuous log-probability sums (a real tie needs two identical responses, which both rankings
then order the same way), and because it keeps C_j = (τ_j + 1)/2 on the paper's grid
(steps of 0.1 for N = 5). Prompts with a missing reward are left out.

Pure Python: the stage reads the score stage's scores.jsonl and writes consistency.jsonl.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from cream_engine.files import read_jsonl, write_jsonl


def ordinal_ranks(values: Sequence[float]) -> list[int]:
    """Rank 0 = smallest; equal values ranked by their index (earlier = lower)."""
    order = sorted(range(len(values)), key=lambda i: (values[i], i))
    ranks = [0] * len(values)
    for rank, i in enumerate(order):
        ranks[i] = rank
    return ranks


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's τ between the ordinal rankings of `a` and `b`:
    (concordant − discordant) / (n choose 2)."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("kendall_tau needs two rankings of the same length >= 2")
    ra, rb = ordinal_ranks(a), ordinal_ranks(b)
    n = len(a)
    s = 0
    for i in range(n):
        for j in range(i + 1, n):
            s += 1 if (ra[i] - ra[j]) * (rb[i] - rb[j]) > 0 else -1
    return s / (n * (n - 1) / 2)


def consistency_rate(tau: float) -> float:
    """C_j = (τ_j + 1) / 2 ∈ [0, 1]."""
    return (tau + 1.0) / 2.0


def is_complete(values: Sequence[float | None] | None) -> bool:
    return values is not None and all(v is not None and math.isfinite(v) for v in values)


def per_prompt(current: Sequence[float | None], previous: Sequence[float | None] | None
               ) -> tuple[float | None, float | None]:
    """(τ_j, C_j) for one prompt, or (None, None) when a ranking is missing."""
    if previous is None or not is_complete(current) or not is_complete(previous):
        return None, None
    tau = kendall_tau(current, previous)  # type: ignore[arg-type]
    return tau, consistency_rate(tau)


def summarize(values: list[float | None]) -> dict[str, float | None]:
    """Mean and spread of the defined values (None when there are none)."""
    defined = [v for v in values if v is not None]
    return {"mean": statistics.fmean(defined) if defined else None,
            "std": statistics.pstdev(defined) if len(defined) > 1 else (0.0 if defined else None),
            "count": len(defined)}


# -- the stage -----------------------------------------------------------------------------


def implicit_rewards(rec: dict, t: int) -> tuple[list[float], list[float] | None]:
    """(r_t, r_{t-1}) for one prompt's responses, from the score stage's log-probabilities; t
    is k of the policy M_k (the iteration, plus 1 after a seed SFT).

    r_t = log π_t − log π_0. For t = 0 the policy *is* M_0, so (no reference exists) the
    length-normalised log-likelihood log π_0 / |y| stands in, and there is no previous model.
    For t = 1 the previous model is M_0, whose reward against itself is 0: its ranking uses
    log π_0 / |y|. For t ≥ 2, r_{t-1} = log π_{t-1} − log π_0."""
    lp, tokens = rec["logp"], rec["tokens"]
    normalised = [x / max(n, 1) for x, n in zip(lp.get("reference", lp["current"]), tokens)]
    if t == 0:
        return [x / max(n, 1) for x, n in zip(lp["current"], tokens)], None
    current = [c - r for c, r in zip(lp["current"], lp["reference"])]
    if t == 1:
        return current, normalised
    return current, [p - r for p, r in zip(lp["previous"], lp["reference"])]


def run(ctx: Any, t: int) -> dict:
    scores = read_jsonl(ctx.artifact(t, "score"))
    rows, taus, cs = [], [], []
    for rec in scores:
        current, previous = implicit_rewards(rec, ctx.policy(t))
        tau, c = per_prompt(current, previous)
        taus.append(tau)
        cs.append(c)
        rewards = {"implicit": current, "previous_implicit": previous}
        if "oracle" in rec:  # (method oracle: the external reward model's scores)
            rewards["oracle"] = rec["oracle"]
        row = {"prompt_id": rec["prompt_id"], "rewards": rewards, "tau": tau, "consistency": c}
        if "judge" in rec:
            rewards["judge"] = rec["judge"]["mean"]
            row["judge_raw"] = rec["judge"]["raw"]
            row["judge_scores"] = rec["judge"]["scores"]
            row["judge_unparsable"] = sum(1 for s in rec["judge"]["scores"] for x in s
                                          if x is None)
        rows.append(row)
    write_jsonl(ctx.artifact(t, "consistency"), rows)
    tau_s, c_s = summarize(taus), summarize(cs)
    ctx.store.upsert_iteration(ctx.run_id, t, mean_tau=tau_s["mean"],
                               mean_consistency=c_s["mean"], std_consistency=c_s["std"])
    return {"mean_tau": tau_s["mean"], "mean_consistency": c_s["mean"],
            "std_consistency": c_s["std"], "prompts_with_tau": tau_s["count"]}
