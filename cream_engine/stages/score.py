"""Stage 2, score: score every response with the internal reward models.

- The implicit reward needs log π(y|x) of up to three models, one no-grad pass each:
  M_t (the policy), M_0 (the fixed rewarding reference, t ≥ 1) and M_{t-1} (the previous
  model, t ≥ 2; for t = 1 it is M_0 itself). The rewards are formed in the consistency stage.
  The models already in memory go first (M_t, left there by generate), so none is loaded
  twice. Each (prompt, response) is tokenised as TRL's DPOTrainer tokenises it
  (logprobs.encode_pair), so M_t's log-probs are the trainer's reference log-probs for the
  pairs (stages/pairs.py hands them over).
- The pointwise judge (methods that use it) grades each response K times with M_t.

Writes `scores.jsonl`: per prompt the log-probabilities per model, the token counts, where each
response starts in its sequence (`prompt_tokens`), the weights' dtype of the passes, and the
judge's scores, raw texts and confidences.
"""

from __future__ import annotations

from typing import Any

from cream_engine.errors import JudgeError
from cream_engine.files import read_jsonl, write_jsonl
from cream_engine.judges.pairwise import verdict_tokens
from cream_engine.judges.pointwise import expected_score, judge_messages, mean_score, parse_score
from cream_engine.logprobs import encode_pair, encoded_logprobs
from cream_engine.methods import get_method
from cream_engine.stages.generate import open_policy_backend
from cream_engine.stages.oracle import oracle_rewards

DIGITS = [str(k) for k in range(6)]


def digit_tokens(tokenizer: Any) -> tuple[str, list[int]]:
    """The text that precedes the score digit, and the token ids of the digits 0-5.

    BPE tokenizers often fold the space into the digit (" 3"); we use that form when each
    digit is one token, else "Score: " followed by bare digits. Any other case fails clearly."""
    for prefix, forms in (("Score:", [" " + d for d in DIGITS]), ("Score: ", DIGITS)):
        ids = [tokenizer(f, add_special_tokens=False)["input_ids"] for f in forms]
        if all(len(i) == 1 for i in ids) and len({i[0] for i in ids}) == 6:
            return prefix, [i[0] for i in ids]
    raise JudgeError("the judge's score digits 0-5 are not single tokens for this tokenizer; "
                     "use [judge] score_mode = 'parse'")


def _strip_score(text: str) -> str:
    """The justification without any score the judge already wrote."""
    cut = text.lower().rfind("score")
    return (text[:cut] if cut >= 0 else text).rstrip()


def judge_responses(ctx: Any, t: int, backend: Any, rows: list[dict]) -> list[dict]:
    """K judgments per response: {"scores": [[K]...], "mean": [...], "raw": [[K]...],
    "confidence": [[K]...] (expected mode)}, per prompt."""
    cfg = ctx.config.judge
    convs = [judge_messages(r["prompt"], y) for r in rows for y in r["responses"]]
    k = cfg.samples if cfg.max_new_tokens > 0 else 1  # no justification: one judgment suffices
    raws: list[list[str]] = [[""] * k for _ in convs]
    if cfg.max_new_tokens > 0:
        with ctx.progress(t, "score", len(convs), "judge") as bar:
            raws = backend.generate(convs, n=k, temperature=cfg.temperature, top_p=1.0,
                                    top_k=0, max_new_tokens=cfg.max_new_tokens,
                                    seed=ctx.seed(t, "score"), progress=bar.advance)
    flat_scores: list[list[float | None]] = []
    flat_conf: list[list[float | None]] = []
    if cfg.score_mode == "parse":
        flat_scores = [[parse_score(x) for x in texts] for texts in raws]
        flat_conf = [[None] * len(texts) for texts in raws]
    else:
        prefix, ids = digit_tokens(backend.tokenizer)
        texts = [backend.render(c) + (_strip_score(raw) + "\n" if raw else "") + prefix
                 for c, judged in zip(convs, raws) for raw in judged]
        with ctx.progress(t, "score", len(texts), "judge score") as bar:
            logps = backend.next_token_logprobs(texts, ids, progress=bar.advance)
        scored = [expected_score(lp) for lp in logps]
        flat_scores = [[s.score for s in scored[i * k:(i + 1) * k]] for i in range(len(convs))]
        flat_conf = [[s.confidence for s in scored[i * k:(i + 1) * k]]
                     for i in range(len(convs))]
    out, i = [], 0
    for r in rows:
        n = len(r["responses"])
        scores = flat_scores[i:i + n]
        out.append({"scores": scores, "mean": [mean_score(s) for s in scores],
                    "raw": raws[i:i + n], "confidence": flat_conf[i:i + n]})
        i += n
    total = sum(len(s) for o in out for s in o["scores"])
    missing = sum(1 for o in out for s in o["scores"] for x in s if x is None)
    if total and missing == total:
        raise JudgeError(f"the judge produced no parsable score in {total} judgments "
                         "(try [judge] score_mode = 'expected')")
    return out


def run(ctx: Any, t: int) -> dict:
    rows = read_jsonl(ctx.artifact(t, "generate"))
    method = get_method(ctx.config.run.method)
    items = [(r["messages"], y) for r in rows for y in r["responses"]]
    loads_before = len(ctx.loads)

    judged = None
    if method.uses_judge:
        backend = open_policy_backend(ctx, ctx.policy(t))
        if method.pairwise_judge:  # fail now, not after generating and judging everything
            verdict_tokens(backend.tokenizer)
        judged = judge_responses(ctx, t, backend, rows)

    # the Oracle's external reward model (method oracle), before the run's models load
    oracle = oracle_rewards(ctx, t, items) if method.pair_reward == "oracle" else None

    # one pass per model: the policy M_k, M_0 (k >= 1), M_{k-1} (k >= 2), those in memory first
    k = ctx.policy(t)
    passes = {"current": ctx.model_path(k)}
    if k >= 1:
        passes["reference"] = ctx.model_path(0)
    if k >= 2:
        passes["previous"] = ctx.model_path(k - 1)
    order = sorted(passes, key=lambda role: not ctx.loaded(passes[role]))
    max_length = ctx.config.train.max_length
    encoded: list[tuple[list[int], int]] = []
    logps: dict[str, list] = {}
    for role in order:
        model, tokenizer = ctx.load(passes[role])
        if not encoded:  # (every M_k has M_0's tokenizer: each checkpoint saves it)
            encoded = [encode_pair(tokenizer, m, y, max_length) for m, y in items]
        with ctx.progress(t, "score", len(items), f"logp {role}") as bar:
            logps[role] = encoded_logprobs(
                model, tokenizer, encoded, batch_size=ctx.config.consistency.batch_size,
                device=ctx.device, progress=bar.advance)

    out, i = [], 0
    for j, r in enumerate(rows):
        n = len(r["responses"])
        rec: dict[str, Any] = {"prompt_id": r["prompt_id"],
                               "tokens": [s.tokens for s in logps["current"][i:i + n]],
                               "prompt_tokens": [start for _, start in encoded[i:i + n]],
                               "dtype": ctx.dtype,
                               "logp": {role: [s.logp for s in logps[role][i:i + n]]
                                        for role in passes}}
        if judged is not None:
            rec["judge"] = judged[j]
        if oracle is not None:
            rec["oracle"] = oracle[i:i + n]
        out.append(rec)
        i += n
    write_jsonl(ctx.artifact(t, "score"), out)
    lengths = [x for rec in out for x in rec["tokens"]]
    unparsable = (sum(1 for o in judged for s in o["scores"] for x in s if x is None)
                  if judged else None)
    summary = {"responses": len(items), "passes": order,
               "models_loaded": ctx.loads[loads_before:],
               "mean_response_length": sum(lengths) / len(lengths) if lengths else None,
               "judge_unparsable": unparsable}
    ctx.store.upsert_iteration(ctx.run_id, t, mean_response_length=summary[
        "mean_response_length"], judge_unparsable=unparsable)
    return summary
