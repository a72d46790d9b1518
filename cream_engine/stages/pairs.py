"""Stage 4, pairs: per prompt, chosen = highest reward, rejected = lowest (by the method's
pair reward); dropped when they tie or fewer than two responses have a reward. Each pair
carries the method's weight (CREAM's consistency C; 1 for SRLM and DPO). Methods with
unlabeled pairs (SCIR) pick their own (y1, y2) instead; chosen/rejected then hold y1/y2 and
`labeled` is false (the label is decided inside the training step).

Each pair also brings the trainer's reference log-probs, log π_{M_t} of its chosen and rejected
response (`ref_chosen_logps`, `ref_rejected_logps`), read from the score stage's "current" pass,
when they are the numbers TRL would compute (`reference_logps`); the trainer then skips its own
pass over the pairs with M_t.

Also measures the agreement of the judge and the implicit reward on the pairs (SCIR's measure)
wherever both were computed. Writes `pairs.jsonl`. Pure Python.
"""

from __future__ import annotations

import random
from typing import Any

from cream_engine.errors import PipelineError
from cream_engine.files import read_jsonl, write_jsonl
from cream_engine.methods import get_method
from cream_engine.methods.base import best_and_worst


def agreement(pairs: list[dict], other: str) -> float | None:
    """Fraction of pairs where the `other` reward also prefers the chosen response (for an
    unlabeled pair: the response the pair's own reward prefers; a tie there leaves it out)."""
    votes = []
    for p in pairs:
        o = p.get("other_rewards", {}).get(other)
        if not o or None in o:
            continue
        if p.get("labeled", True):
            votes.append(o[0] > o[1])
        elif None not in p["rewards"] and p["rewards"][0] != p["rewards"][1]:
            votes.append((o[0] > o[1]) == (p["rewards"][0] > p["rewards"][1]))
    return sum(votes) / len(votes) if votes else None


REF_FIELDS = ("ref_chosen_logps", "ref_rejected_logps")  # trainer.REF_COLUMNS


def reference_logps(ctx: Any, score: dict, i: int, j: int) -> dict[str, float]:
    """{ref_chosen_logps, ref_rejected_logps} of the pair (responses i, j) from the score
    record, or {} where TRL would compute something else:
    1. a score record written before the score stage tokenised as TRL does (no prompt_tokens);
    2. the two responses start at different tokens: TRL starts both where the earlier one
       starts (logprobs.encode_pair), so one of them would count other tokens;
    3. the prompt fills max_length: TRL drops the pair;
    4. the trainer computes in another precision than the score stage's passes did: it loads
       fp32 weights under bf16 autocast for `[train] dtype = "auto"` on a GPU (trainer.precision),
       while the passes ran on the dtype the models were loaded in."""
    starts = score.get("prompt_tokens")
    if starts is None or starts[i] != starts[j] or starts[i] >= ctx.config.train.max_length:
        return {}
    train_dtype = ctx.config.train.dtype
    if train_dtype == "auto":
        train_dtype = "float32" if ctx.device == "cpu" else None  # (None: mixed precision)
    if score.get("dtype") != train_dtype:
        return {}
    current = score["logp"]["current"]
    if current[i] is None or current[j] is None:
        return {}
    return dict(zip(REF_FIELDS, (float(current[i]), float(current[j]))))


def run(ctx: Any, t: int) -> dict:
    method = get_method(ctx.config.run.method)
    responses = {r["prompt_id"]: r for r in read_jsonl(ctx.artifact(t, "generate"))}
    scores = {r["prompt_id"]: r for r in read_jsonl(ctx.artifact(t, "score"))}
    rewards = read_jsonl(ctx.artifact(t, "consistency"))
    defined = [r["consistency"] for r in rewards if r["consistency"] is not None]
    c_mean = sum(defined) / len(defined) if defined else None
    pairs, dropped = [], 0
    for rec in rewards:
        primary = rec["rewards"][method.pair_reward]
        resp = responses[rec["prompt_id"]]
        if method.pick_pair is None:
            picked = best_and_worst(primary)
        else:  # seeded per prompt, so a restarted stage picks the same pairs
            rng = random.Random(f"{ctx.seed(t, 'pairs')}:{rec['prompt_id']}")
            picked = method.pick_pair(rec["rewards"], resp["responses"], ctx.config, rng)
        if picked is None:
            dropped += 1
            continue
        i, j = picked
        others = {name: [vals[i], vals[j]] for name, vals in rec["rewards"].items()
                  if name != method.pair_reward and vals is not None}
        pairs.append({
            "prompt_id": rec["prompt_id"], "prompt": resp["prompt"],
            "messages": resp["messages"], "chosen": resp["responses"][i],
            "rejected": resp["responses"][j], "chosen_index": i, "rejected_index": j,
            "weight": method.pair_weight(rec["consistency"], c_mean,
                                         ctx.config.consistency.mode),
            "rewards": [primary[i], primary[j]], "other_rewards": others,
            "tau": rec["tau"], "consistency": rec["consistency"], "labeled": method.labeled,
            **reference_logps(ctx, scores[rec["prompt_id"]], i, j),
        })
    if not pairs:
        why = (f"tied or had fewer than two {method.pair_reward} rewards" if method.labeled
               else "tied or had fewer than two distinct responses to pair")
        raise PipelineError(f"iteration {t}: no preference pairs: all {len(rewards)} prompts "
                            f"{why}")
    write_jsonl(ctx.artifact(t, "pairs"), pairs)
    other = "implicit" if method.pair_reward == "judge" else "judge"
    agree = agreement(pairs, other)
    ctx.store.upsert_iteration(ctx.run_id, t, n_pairs=len(pairs), agreement=agree)
    weights = [p["weight"] for p in pairs]
    return {"pairs": len(pairs), "dropped": dropped, "agreement": agree,
            "with_reference_logps": sum(1 for p in pairs if REF_FIELDS[0] in p),
            "mean_weight": sum(weights) / len(weights) if weights else None}
