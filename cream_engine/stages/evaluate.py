"""Stage 6, evaluate: did the iteration make the model better? Run on M_{t+1} after training
(stage `evaluate` of iteration t), and once on M0 (stage `baseline`, first in iteration 0).

Per model, everything from the same frozen inputs, so models and runs compare on equal terms:
- every evaluation set (`[data] eval_sets`), first `[eval] max_items` items:
  - generatively, as the CREAM paper does: the greedy reply to the question with an instruction
    to think step by step and end with "Answer: X"; the letter or number after the last
    "Answer:" or "answer is" is the model's answer (answers.py). An unparsable reply counts
    as wrong, and is counted;
  - multiple choice also by option log-likelihood, as lm-evaluation-harness scores ARC,
    OpenBookQA and SIQA (loglik.py): the option with the highest Σ log p(" option" | the
    harness's context for the set) (ll_acc), and per character (ll_acc_norm) and per UTF-8
    byte (ll_acc_bytes) of the option. No chat template there.
- held-out prompts (`[eval] win_rate_prompts` of the prompt set that no iteration trains on):
  the greedy reply, its mean length in tokens, and the fixed judge's mean pointwise score
  (expected value of the digits 0-5 after "Score:", no written justification);
- the win rate of M_{t+1} over M_t on those prompts under the fixed judge (`[eval] judge`,
  the frozen M0 by default), asked pairwise in both presentation orders: a win when both orders
  prefer M_{t+1}, a loss when both prefer M_t, otherwise (including identical replies) a tie.

Writes `iter-<t>/eval.json` (the baseline: `iter-0/baseline.json`), and the per-item details
under `iter-<t>/eval/` (`iter-0/baseline/`). Each detail file is written atomically when its
part is done and reused by a restarted stage: greedy decoding of the same model gives the same
text, so a crash loses at most the part that was running.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cream_engine import paths
from cream_engine.answers import extract_answer
from cream_engine.backends import open_backend
from cream_engine.errors import JudgeError, PairwiseJudgeError, PipelineError
from cream_engine.evalsets import EvalItem, EvalSet, load_eval_set, numbers_equal, prompt_for
from cream_engine.files import read_jsonl, write_json, write_jsonl
from cream_engine.judges.pairwise import (
    collate_judge,
    encode_judge_prompt,
    judge_max_length,
    verdict_logits,
    verdict_tokens,
)
from cream_engine.judges.pointwise import expected_score, judge_messages
from cream_engine.models import resolve_model
from cream_engine.prompts import held_out_prompts
from cream_engine.stages import evalcache
from cream_engine.stages.generate import open_policy_backend
from cream_engine.stages.loglik import option_logliks, score_loglik
from cream_engine.stages.score import digit_tokens

JUDGE_ERRORS = (JudgeError, PairwiseJudgeError)


def run(ctx: Any, t: int) -> dict:
    """Evaluate the model iteration t trained (M_{t+1}; M_{t+2} after a seed SFT)."""
    return evaluate_model(ctx, t, "evaluate", ctx.policy(t) + 1, ctx.artifact(t, "evaluate"))


def sft_eval(ctx: Any, t: int) -> dict:
    """Evaluate M1, the seed SFT's model (stage `sft-eval` of iteration 0); shared through the
    cache as M0's is (runs that share M1 share its evaluation)."""
    return shared_evaluation(ctx, t, paths.SFT_EVAL, 1)


def baseline(ctx: Any, t: int) -> dict:
    """Evaluate M0, once per run, before the first iteration."""
    return shared_evaluation(ctx, t, paths.BASELINE, 0)


def shared_evaluation(ctx: Any, t: int, stage: str, k: int) -> dict:
    """Evaluate M_k before the loop (M0, or the seed SFT's M1): copied from the home's cache
    when another run evaluated the same model the same way (evalcache.py), else computed and
    kept there."""
    artifact, details = ctx.artifact(0, stage), details_dir(ctx, k)
    settings = evalcache.baseline_settings(
        ctx, load_sets(ctx.config.data.eval_sets, ctx.config.eval.max_items), held_out(ctx),
        judge_path(ctx), model=ctx.model_path(k),
        against=ctx.model_path(k - 1) if k else None)
    if settings is None:
        info = evaluate_model(ctx, t, stage, k, artifact)
        return {**info, "cache": "off (a model is not a local folder)"}
    with evalcache.one_at_a_time(ctx.home, settings):  # (a run evaluating it now: wait, copy)
        info = evalcache.restore(ctx.home, settings, ctx.run_id, artifact, details)
        if info is not None:
            ctx.store.log_metrics(ctx.run_id, t, stage, k, metric_values(info))
            return info
        info = evaluate_model(ctx, t, stage, k, artifact)
        note = evalcache.save(ctx.home, settings, ctx.run_id, artifact, details)
    return {**info, "cache": note or "stored", "cache_key": evalcache.key_of(settings)}


def details_dir(ctx: Any, k: int) -> Path:
    """Where the per-item details of M_k's evaluation live."""
    if k == 0:
        return ctx.iter_dir(0) / "baseline"
    if k <= ctx.offset:
        return ctx.iter_dir(0) / paths.SFT_EVAL
    return ctx.iter_dir(k - 1 - ctx.offset) / "eval"


def evaluate_model(ctx: Any, t: int, stage: str, k: int, artifact: Path) -> dict:
    cfg = ctx.config.eval
    out = details_dir(ctx, k)
    sets = load_sets(ctx.config.data.eval_sets, cfg.max_items)
    held = held_out(ctx)
    info: dict[str, Any] = {"model": f"M{k}", "sets": {s.name: {"n": len(s.items)}
                                                        for s in sets}}
    notes: list[str] = []
    parts = Parts(ctx, t, stage, plan(cfg, sets, held, k))

    # 1. the policy generates: answers to every set, replies to the held-out prompts
    if (cfg.generative and sets) or held:
        backend = open_policy_backend(ctx, k)
        for s in sets if cfg.generative else []:
            rows = cached(out / f"{s.name}.generative.jsonl", lambda s=s: [
                {"id": i.id, "reply": r} for i, r in zip(s.items, greedy(
                    parts, backend, [prompt_for(i) for i in s.items],
                    cfg.max_new_tokens, f"eval {s.name}"))])
            info["sets"][s.name].update(score_generative(s.items, rows))
            parts.finished(len(s.items), "generative")
        if held:
            replies = held_replies(parts, backend, held, out / "heldout.jsonl")
            parts.finished(len(held), "held-out replies")

    # 2. option log-likelihood (multiple choice)
    if cfg.loglik and any(s.kind == "mc" for s in sets):
        model, tokenizer = ctx.load(ctx.model_path(k))
        for s in (s for s in sets if s.kind == "mc"):
            rows = cached(out / f"{s.name}.loglik.jsonl", lambda s=s: option_logliks(
                parts, model, tokenizer, s))
            info["sets"][s.name].update(score_loglik(s.items, rows))
            parts.finished(sum(len(i.choices) for i in s.items), "loglik")

    # 3. the fixed judge: length and score of the held-out replies, and the win rate over M_{k-1}
    if held:
        model, tokenizer = ctx.load(ctx.model_path(k))
        lengths = [len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in replies]
        info["mean_length"] = sum(lengths) / len(lengths)
        judge_model, judge_tok = ctx.load(judge_path(ctx))
        try:
            info["judge_score"] = judge_score(parts, judge_model, judge_tok, held, replies,
                                              out / "judge.jsonl")
        except JUDGE_ERRORS as e:  # a tokenizer the score cannot be read from: say so, go on
            notes.append(f"judge score skipped: {e}")
        parts.finished(len(held), "judge score")
        if k >= 1:
            previous = previous_replies(parts, k, held, out)
            try:
                info["win"] = win_rate(parts, judge_model, judge_tok, held, replies, previous,
                                       out / "win.jsonl", k)
            except JUDGE_ERRORS as e:
                notes.append(f"win rate skipped: {e}")
            parts.finished(2 * len(held), "win rate")
    elif cfg.win_rate_prompts:
        notes.append("no held-out prompts: the iterations' slices use the whole prompt set")
    # (the models stay loaded: the next iteration generates with M_{k} and scores against M0;
    # the context drops what no longer fits, and training releases everything first)
    if notes:
        info["notes"] = notes
    info["seconds_by_part"] = parts.seconds
    write_json(artifact, info)
    ctx.store.log_metrics(ctx.run_id, t, stage, k, metric_values(info))
    return info


class Parts:
    """The evaluation's progress counted as one whole in the store (so the dashboard shows the
    stage's progress), while each part has its own bar on stderr."""

    def __init__(self, ctx: Any, t: int, stage: str, total: int):
        self.ctx, self.t, self.stage, self.total, self.done = ctx, t, stage, total, 0
        self._clock, self._last = time.perf_counter, time.perf_counter()
        self.seconds: dict[str, float] = {}  # wall time per kind of part

    def bar(self, n: int, label: str) -> Any:
        return self.ctx.progress(self.t, self.stage, n, label, offset=self.done,
                                 overall=self.total)

    def finished(self, n: int, part: str) -> None:
        """A part of `n` items is done (computed now, or read back from an earlier attempt)."""
        now = self._clock()
        self.seconds[part] = round(self.seconds.get(part, 0.0) + now - self._last, 2)
        self._last = now
        self.done += n
        self.ctx.store.stage_progress(self.ctx.run_id, self.t, self.stage, self.done,
                                      self.total)


def plan(cfg: Any, sets: list[EvalSet], held: list[Any], k: int) -> int:
    """Items the evaluation of M_k goes through: answers, held-out replies, options, judge
    scores and (k >= 1) both orders of each win-rate pair."""
    total = sum(len(s.items) for s in sets) if cfg.generative else 0
    if cfg.loglik:
        total += sum(len(i.choices) for s in sets if s.kind == "mc" for i in s.items)
    return total + len(held) * (2 + (2 if k >= 1 else 0))


# -- inputs ---------------------------------------------------------------------------------


def load_sets(specs: tuple[str, ...], limit: int) -> list[EvalSet]:
    """The evaluation sets, each named uniquely (two files with one stem get -2, -3…)."""
    sets, seen = [], set()
    for spec in specs:
        s = load_eval_set(spec, limit)
        name, n = s.name, 1
        while name in seen:
            n += 1
            name = f"{s.name}-{n}"
        seen.add(name)
        sets.append(dataclasses.replace(s, name=name))
    return sets


def held_out(ctx: Any) -> list[Any]:
    cfg = ctx.config
    if not cfg.eval.win_rate_prompts:
        return []
    return held_out_prompts(ctx.all_prompts(), cfg.run.iterations,
                            cfg.data.prompts_per_iteration, cfg.run.seed,
                            cfg.eval.win_rate_prompts)


def judge_path(ctx: Any) -> str:
    judge = ctx.config.eval.judge
    if judge == "initial":
        return ctx.model_path(0)
    return resolve_model(judge, ctx.home)


def cached(path: Path, compute: Callable[[], list[dict]]) -> list[dict]:
    """The rows in `path` if an earlier attempt finished them, else computed and written."""
    if path.exists():
        return read_jsonl(path)
    rows = compute()
    write_jsonl(path, rows)
    return rows


# -- generation -----------------------------------------------------------------------------


def greedy(parts: Parts, backend: Any, prompts: list[str], max_new_tokens: int,
           label: str) -> list[str]:
    """The greedy reply to each single-turn prompt, through the chat template."""
    with parts.bar(len(prompts), label) as bar:
        outs = backend.generate([[{"role": "user", "content": p}] for p in prompts], n=1,
                                temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens,
                                seed=0, progress=bar.advance)
    return [o[0] for o in outs]


def held_replies(parts: Parts, backend: Any, held: list[Any], path: Path) -> list[str]:
    """Greedy replies to the held-out prompts (with their full conversations)."""
    def compute() -> list[dict]:
        max_new = parts.ctx.config.generate.max_new_tokens
        with parts.bar(len(held), "eval held-out") as bar:
            outs = backend.generate([list(p.messages) for p in held], n=1, temperature=0.0,
                                    top_p=1.0, max_new_tokens=max_new, seed=0,
                                    progress=bar.advance)
        return [{**p.to_json(), "reply": o[0]} for p, o in zip(held, outs)]

    rows = cached(path, compute)
    if [r["prompt_id"] for r in rows] != [p.id for p in held]:
        raise PipelineError(f"{path}: held-out prompts differ from the run's; delete the file")
    return [r["reply"] for r in rows]


def previous_replies(parts: Parts, k: int, held: list[Any], out: Path) -> list[str]:
    """M_{k-1}'s held-out replies: from its own evaluation, else generated now."""
    path = details_dir(parts.ctx, k - 1) / "heldout.jsonl"
    if not path.exists():
        path = out / "heldout-previous.jsonl"
    if path.exists():
        return held_replies(parts, None, held, path)
    return held_replies(parts, open_policy_backend(parts.ctx, k - 1), held, path)


# -- scoring --------------------------------------------------------------------------------


def score_generative(items: tuple[EvalItem, ...], rows: list[dict]) -> dict:
    """Accuracy of the extracted answers; unparsable replies are wrong and counted."""
    correct = unparsable = 0
    for item, row in zip(items, rows):
        pred = extract_answer(row["reply"], item)
        row.update(pred=pred, gold=item.gold)
        if pred is None:
            unparsable += 1
        elif (pred == item.gold if item.kind == "mc" else numbers_equal(pred, item.gold)):
            correct += 1
    return {"gen_acc": correct / len(items) if items else None,
            "gen_unparsable": unparsable}


def judge_score(parts: Parts, model: Any, tokenizer: Any, held: list[Any],
                replies: list[str], path: Path) -> float | None:
    """The fixed judge's mean pointwise score (0-5, expected mode) of the replies."""
    def compute() -> list[dict]:
        ctx = parts.ctx
        backend = open_backend("hf", model_path="", model=model, tokenizer=tokenizer,
                               device=ctx.device, batch_size=ctx.config.eval.batch_size)
        prefix, ids = digit_tokens(tokenizer)
        texts = [backend.render(judge_messages(p.text, r)) + prefix
                 for p, r in zip(held, replies)]
        with parts.bar(len(texts), "eval judge") as bar:
            logps = backend.next_token_logprobs(texts, ids, progress=bar.advance)
        scores = [expected_score(lp).score for lp in logps]
        return [{"prompt_id": p.id, "score": s if math.isfinite(s) else None}
                for p, s in zip(held, scores)]

    scores = [r["score"] for r in cached(path, compute)
              if r["score"] is not None and math.isfinite(r["score"])]
    return sum(scores) / len(scores) if scores else None


def win_rate(parts: Parts, model: Any, tokenizer: Any, held: list[Any], new: list[str],
             old: list[str], path: Path, k: int) -> dict:
    """M_k against M_{k-1}, each held-out prompt judged in both presentation orders."""
    def compute() -> list[dict]:
        probs = order_probabilities(parts, model, tokenizer,
                                    [(p.text, a, b) for p, a, b in zip(held, new, old)])
        return [{"prompt_id": p.id, "p_new_first": p1, "p_new_second": p2,
                 "outcome": outcome(a, b, p1, p2)}
                for p, a, b, (p1, p2) in zip(held, new, old, probs)]

    rows = cached(path, compute)
    n = len(rows)
    count = {o: sum(1 for r in rows if r["outcome"] == o) for o in ("win", "tie", "loss")}
    return {"vs": f"M{k - 1}", "n": n, "win_rate": count["win"] / n,
            "tie_rate": count["tie"] / n, "loss_rate": count["loss"] / n,
            "p_new": sum(0.5 * (r["p_new_first"] + r["p_new_second"]) for r in rows) / n}


def outcome(new: str, old: str, p_new_first: float, p_new_second: float) -> str:
    """win: both orders prefer the new reply; loss: both prefer the old; else a tie."""
    if new.strip() == old.strip():
        return "tie"
    if p_new_first > 0.5 and p_new_second > 0.5:
        return "win"
    if p_new_first < 0.5 and p_new_second < 0.5:
        return "loss"
    return "tie"


def order_probabilities(parts: Parts, model: Any, tokenizer: Any,
                        triples: list[tuple[str, str, str]]) -> list[tuple[float, float]]:
    """Per (request, new, old): p(new better) with new shown as A, and with new shown as B."""
    ctx = parts.ctx
    verdicts = verdict_tokens(tokenizer)
    max_length = judge_max_length(ctx.config.train.max_length)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    seqs = []
    for x, new, old in triples:
        seqs += [encode_judge_prompt(tokenizer, x, new, old, max_length),
                 encode_judge_prompt(tokenizer, x, old, new, max_length)]
    probs: list[float] = []  # p(A) per sequence
    size = ctx.config.eval.batch_size
    model.eval()
    with parts.bar(len(seqs), "eval win rate") as bar:
        for start in range(0, len(seqs), size):
            batch = {k: v.to(ctx.device)
                     for k, v in collate_judge(seqs[start:start + size], pad).items()}
            with torch.no_grad():
                logits = verdict_logits(model, batch["input_ids"], batch["attention_mask"],
                                        batch["last"], verdicts)
            probs += torch.sigmoid(logits[:, 0] - logits[:, 1]).tolist()
            bar.advance(len(batch["last"]))
    return [(probs[2 * i], 1.0 - probs[2 * i + 1]) for i in range(len(triples))]


def metric_values(info: dict) -> dict[str, float]:
    """The numeric results as store metrics: eval/<set>/<score>, eval/win_rate, …"""
    values: dict[str, float] = {}
    for name, scores in info.get("sets", {}).items():
        for key, v in scores.items():
            if isinstance(v, (int, float)) and key != "n":
                values[f"eval/{name}/{key}"] = float(v)
    for key, v in (info.get("win") or {}).items():
        if isinstance(v, (int, float)) and key != "n":
            values[f"eval/{key}"] = float(v)
    for key in ("judge_score", "mean_length"):
        if isinstance(info.get(key), (int, float)):
            values[f"eval/{key}"] = float(info[key])
    return values
