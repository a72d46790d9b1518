"""The self-rewarding loop, top to bottom: T iterations M_t → M_{t+1}.

    for t in 0..T-1:
        generate     N samples per prompt of this iteration's slice, from M_t
        score        the method's internal reward models score them (judge / log-probs)
        consistency  Kendall's τ between M_t's and M_{t-1}'s rankings, C = (τ + 1)/2
        pairs        best vs worst per prompt, weighted by the method (SCIR: unlabeled)
        train        DPO from M_t (reference = M_t), CREAM's soft labels or SCIR's
                     consistency step, → iter-t/model
        evaluate     M_{t+1} on the evaluation sets, and its win rate over M_t
                     (iteration 0 first evaluates M0 itself: the `baseline` stage)

Every stage writes its artifact (`paths.ARTIFACTS`) under `iter-<t>/` atomically, then marks
itself done in the store. A restarted run skips the stages that are done (and whose artifact is
there) and starts the unfinished one again from scratch; a restarted training stage replaces
its metrics.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from cream_engine import paths
from cream_engine.context import RunContext
from cream_engine.errors import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    CreamError,
    UsageError,
    internal_error,
)
from cream_engine.stages import consistency, evaluate, generate, pairs, score, train
from cream_engine.store import Store, open_store

Stage = Callable[[RunContext, int], dict]

# the stages of one iteration, in the order of paths.STAGES (a test holds them equal)
STAGES: dict[str, Stage] = {
    "generate": generate.run,
    "score": score.run,
    "consistency": consistency.run,
    "pairs": pairs.run,
    "train": train.run,
    "evaluate": evaluate.run,
}


class Cancelled(BaseException):
    """SIGTERM (a cancel from the queue) or Ctrl-C: stop now, keep what is finished."""


# -- one iteration -------------------------------------------------------------------------


def stages_of(ctx: RunContext, t: int) -> list[tuple[str, Stage]]:
    """The stages of iteration t: evaluation only when enabled, M0's baseline first in t = 0."""
    if not ctx.config.eval.enabled:
        return [(name, fn) for name, fn in STAGES.items() if name != "evaluate"]
    return ([(paths.BASELINE, evaluate.baseline)] if t == 0 else []) + list(STAGES.items())


def run_stage(ctx: RunContext, t: int, name: str, fn: Stage) -> None:
    done = ctx.store.stage_status(ctx.run_id, t, name) == "done"
    if done and ctx.artifact(t, name).exists():
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
        for name, fn in stages_of(ctx, t):
            run_stage(ctx, t, name, fn)
    except BaseException as e:  # the iteration says how it ended; a resume sets it running
        status = "cancelled" if isinstance(e, Cancelled) else "failed"
        ctx.store.upsert_iteration(ctx.run_id, t, status=status, ended_at=time.time())
        raise
    stages = {s["stage"]: s for s in ctx.store.stages(ctx.run_id) if s["iteration"] == t}
    ctx.store.upsert_iteration(ctx.run_id, t, status="done", ended_at=time.time(),
                               summary={k: json.loads(s["info"]) if s["info"] else None
                                        for k, s in stages.items()})


# -- the run: the one place the engine's errors are caught ---------------------------------


def run_experiment(run_dir: Path) -> int:
    """Run (or resume) every iteration of a run; returns the process exit code.

    1. Refused at the door (not a run, already running): `cream: error: …`, exit 2.
    2. A `CreamError` (a model that does not load, a NaN loss…): the run fails with its one
       line, in the store and on stderr; exit 1. Finished stages are kept for a retry.
    3. Anything else is a bug: the same one line, and the traceback in the run's job log."""
    run_dir = run_dir.absolute()
    try:
        store, _lock = _open_run(run_dir)  # the lock is held until this process ends
    except CreamError as e:
        print(f"cream: error: {e.line}", file=sys.stderr)
        return e.exit_code

    def on_signal(signum: int, frame: Any) -> None:
        raise Cancelled(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    run_id = run_dir.name
    try:
        store.set_run_status(run_id, "running")
        store.add_event("run.started", f"run {run_id} started", run_id=run_id)
        ctx = RunContext.open(run_dir, store)
        for t in range(ctx.config.run.iterations):
            run_iteration(ctx, t)
    except Cancelled as e:
        store.set_run_status(run_id, "cancelled", error=f"cancelled ({e})")
        store.add_event("run.cancelled", f"run {run_id} cancelled", run_id=run_id)
        print(f"cream: run {run_id} cancelled; finished stages are kept", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as e:
        if isinstance(e, CreamError):
            reason, tail = e.line, ""
        else:  # a bug
            reason, tail = internal_error(e), f"; traceback in {log_traceback(run_dir)}"
        store.set_run_status(run_id, "failed", error=reason)
        store.add_event("run.failed", reason, run_id=run_id)
        print(f"cream: error: run {run_id} failed: {reason}{tail}", file=sys.stderr)
        return EXIT_FAILED
    store.set_run_status(run_id, "done")
    store.add_event("run.done", f"run {run_id} finished", run_id=run_id)
    print(f"cream: run {run_id} done: {run_dir}", file=sys.stderr)
    return EXIT_OK


def _open_run(run_dir: Path) -> tuple[Store, IO]:
    """The store of the run's home, and an exclusive lock on the run held for the life of this
    process (the OS drops it when the process dies, even by SIGKILL): two engines never run
    the same run at once."""
    store = open_store(run_dir.parent, create=False)
    if store is None or store.get_run(run_dir.name) is None:
        raise UsageError(f"{run_dir}: not a run of the store at {run_dir.parent}")
    try:
        handle = open(run_dir / ".lock", "w")
    except OSError as e:
        raise UsageError(f"{run_dir}: cannot open the run's folder ({e.strerror})") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UsageError(f"run {run_dir.name} is already running in another process") from None
    return store, handle


def log_traceback(run_dir: Path) -> Path:
    """Write the exception being handled, with its traceback, to the run's job log, once:
    under the worker stderr already is that file; in the foreground (`cream run`) stderr is the
    user's terminal, which gets one line, so the traceback goes to the file only."""
    log = paths.job_log(run_dir)
    text = traceback.format_exc()
    try:
        same = os.path.samestat(os.fstat(2), log.stat())
    except OSError:  # no log yet, or no stderr
        same = False
    if same:
        sys.stderr.write(text)
        sys.stderr.flush()
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} run {run_dir.name}:\n{text}")
    return log
