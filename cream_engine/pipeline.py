"""The self-rewarding loop, top to bottom: T iterations M_t → M_{t+1}.

    for t in 0..T-1:
        generate     N samples per prompt of this iteration's slice, from M_t
        reward       the method's internal reward models score them (judge / log-probs)
        consistency  Kendall's τ between M_t's and M_{t-1}'s rankings, C = (τ + 1)/2
        pairs        best vs worst per prompt, weighted by the method (SCIR: unlabeled)
        train        DPO from M_t (reference = M_t), CREAM's soft labels or SCIR's
                     consistency step, → iter-t/model
        evaluate     M_{t+1} on the evaluation sets, and its win rate over M_t
                     (iteration 0 first evaluates M0 itself: the `baseline` stage)

Every stage writes its artifact under `iter-<t>/` atomically, then marks itself done in the
store. A restarted run skips the stages that are done (and whose artifact is there) and starts
the unfinished one again from scratch; a restarted training stage replaces its metrics.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from cream_engine.context import PipelineError, RunContext
from cream_engine.data import read_jsonl
from cream_engine.stages import consistency, evaluate, generate, pairs, reward

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 143


class Cancelled(BaseException):
    """SIGTERM (a cancel from the queue) or Ctrl-C: stop now, keep what is finished."""


def train(ctx: RunContext, t: int) -> dict:
    """Stage 5: DPO from M_t on this iteration's pairs; the checkpoint becomes M_{t+1}.
    SCIR trains its unlabeled pairs with its own step, and measures the agreement of its two
    reward models on the pairs before (M_t) and after (M_{t+1}) training."""
    from cream_engine.methods import get_method
    from cream_engine.stages.train import train_dpo

    rows = read_jsonl(ctx.iter_dir(t) / pairs.ARTIFACT)
    scir = ctx.config.scir if get_method(ctx.config.run.method).pairwise_judge else None
    if scir is not None:
        from cream_engine.methods.scir import measure_agreement

        before = measure_agreement(ctx, t, rows, ctx.model_path(t), trained=False)
    ctx.release()  # the trainer loads its own copy of M_t
    with ctx.progress(t, "train", 1, "train") as bar:
        def on_progress(step: int, total: int) -> None:
            bar.set_total(total)
            bar.advance(step - bar.done)

        def on_metrics(step: int, values: dict[str, float]) -> None:
            ctx.store.log_metrics(ctx.run_id, t, "train", step, values)

        work_dir = ctx.iter_dir(t) / ".trainer"  # TRL's scratch space; gone once trained
        summary = train_dpo(policy_path=ctx.model_path(t), pairs=rows,
                            out_dir=ctx.iter_dir(t) / "model", train=ctx.config.train,
                            seed=ctx.seed(t, "train"), device=ctx.device,
                            on_metrics=on_metrics, on_progress=on_progress, work_dir=work_dir,
                            scir=scir)
    shutil.rmtree(work_dir, ignore_errors=True)
    if scir is not None:
        after = measure_agreement(ctx, t, rows, str(ctx.iter_dir(t) / "model"), trained=True)
        ctx.release()
        # step 0 = before the first optimizer step, the last step = after training
        ctx.store.log_metrics(ctx.run_id, t, "train", 0, {"scir/agreement_before": before})
        ctx.store.log_metrics(ctx.run_id, t, "train", summary["steps"],
                              {"scir/agreement_after": after})
        summary.update(scir_agreement_before=before, scir_agreement_after=after)
    return summary


# (stage name, function, the artifact whose presence proves the stage finished)
STAGES: list[tuple[str, Callable[[RunContext, int], dict], str]] = [
    ("generate", generate.run, generate.ARTIFACT),
    ("reward", reward.run, reward.ARTIFACT),
    ("consistency", consistency.run, consistency.ARTIFACT),
    ("pairs", pairs.run, pairs.ARTIFACT),
    ("train", train, "model"),
    ("evaluate", evaluate.run, evaluate.ARTIFACT),
]
BASELINE = ("baseline", evaluate.baseline, evaluate.BASELINE_ARTIFACT)


def stages_of(ctx: RunContext, t: int) -> list[tuple[str, Callable[[RunContext, int], dict], str]]:
    """The stages of iteration t: evaluation only when enabled, M0's baseline first in t = 0."""
    if not ctx.config.eval.enabled:
        return [s for s in STAGES if s[0] != "evaluate"]
    return ([BASELINE] if t == 0 else []) + STAGES


def run_stage(ctx: RunContext, t: int, name: str, fn: Callable[[RunContext, int], dict],
              artifact: str) -> None:
    done = ctx.store.stage_status(ctx.run_id, t, name) == "done"
    if done and (ctx.iter_dir(t) / artifact).exists():
        return
    ctx.store.start_stage(ctx.run_id, t, name)
    started = time.time()
    try:
        info = fn(ctx, t)
    except Cancelled:
        ctx.store.finish_stage(ctx.run_id, t, name, status="cancelled")
        raise
    except BaseException:
        ctx.store.finish_stage(ctx.run_id, t, name, status="failed")
        raise
    info = {**(info or {}), "seconds": round(time.time() - started, 2)}
    ctx.store.finish_stage(ctx.run_id, t, name, info=info)
    print(f"iter {t} {name}: done in {info['seconds']:.1f}s "
          + " ".join(f"{k}={_short(v)}" for k, v in info.items() if k != "seconds"),
          file=sys.stderr, flush=True)


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def run_iteration(ctx: RunContext, t: int) -> None:
    """M_t → M_{t+1}."""
    ctx.store.upsert_iteration(ctx.run_id, t, status="running", started_at=time.time(),
                               n_prompts=len(ctx.prompts(t)))
    try:
        for name, fn, artifact in stages_of(ctx, t):
            run_stage(ctx, t, name, fn, artifact)
    except BaseException as e:  # the iteration says how it ended; a resume sets it running
        status = "cancelled" if isinstance(e, Cancelled) else "failed"
        ctx.store.upsert_iteration(ctx.run_id, t, status=status, ended_at=time.time())
        raise
    stages = {s["stage"]: s for s in ctx.store.stages(ctx.run_id) if s["iteration"] == t}
    ctx.store.upsert_iteration(ctx.run_id, t, status="done", ended_at=time.time(),
                               summary={k: json.loads(s["info"]) if s["info"] else None
                                        for k, s in stages.items()})


def run_experiment(run_dir: Path) -> int:
    """Run (or resume) every iteration of a run; the run's status and a one-line reason end up
    in the store, and the reason on stderr. Returns the process exit code."""
    from cream_engine.store import open_store

    run_dir = run_dir.absolute()
    store = open_store(run_dir.parent)
    if store.get_run(run_dir.name) is None:
        print(f"cream: error: {run_dir}: not a run of the store at {run_dir.parent}",
              file=sys.stderr)
        return 2

    lock = _lock_run(run_dir)
    if lock is None:
        print(f"cream: error: run {run_dir.name} is already running in another process",
              file=sys.stderr)
        return 2

    def on_signal(signum: int, frame: Any) -> None:
        raise Cancelled(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    run_id = run_dir.name
    store.set_run_status(run_id, "running")
    store.add_event("run.started", f"run {run_id} started", run_id=run_id)
    try:
        ctx = RunContext.open(run_dir, store)
        for t in range(ctx.config.run.iterations):
            run_iteration(ctx, t)
    except Cancelled as e:
        store.set_run_status(run_id, "cancelled", error=f"cancelled ({e})")
        store.add_event("run.cancelled", f"run {run_id} cancelled", run_id=run_id)
        print(f"cream: run {run_id} cancelled; finished stages are kept", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as e:  # every failure ends as one line in the store and on stderr
        reason = failure_reason(e)
        if not isinstance(e, known_errors()):
            traceback.print_exc(file=sys.stderr)
        store.set_run_status(run_id, "failed", error=reason)
        store.add_event("run.failed", reason, run_id=run_id)
        print(f"cream: error: run {run_id} failed: {reason}", file=sys.stderr)
        return EXIT_FAILED
    store.set_run_status(run_id, "done")
    store.add_event("run.done", f"run {run_id} finished", run_id=run_id)
    print(f"cream: run {run_id} done: {run_dir}", file=sys.stderr)
    return EXIT_OK


def _lock_run(run_dir: Path) -> Any:
    """An exclusive lock on the run held for the life of this process (the OS drops it when
    the process dies, even by SIGKILL): two engines never run the same run at once."""
    import fcntl

    handle = open(run_dir / ".lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def known_errors() -> tuple[type[BaseException], ...]:
    from cream_engine.backends import BackendError
    from cream_engine.config import ConfigError
    from cream_engine.judges.pairwise import PairwiseJudgeError
    from cream_engine.models import ModelError
    from cream_engine.stages.reward import JudgeError
    from cream_engine.stages.train import TrainingError

    return (ConfigError, ModelError, BackendError, JudgeError, PairwiseJudgeError,
            TrainingError, PipelineError)


def failure_reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, known_errors()):
        return text or type(e).__name__
    return f"internal error: {type(e).__name__}: {text}" if text else type(e).__name__
