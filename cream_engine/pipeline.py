"""The self-rewarding loop, top to bottom: T iterations M_t → M_{t+1}.

    before iteration 0: M0's evaluation, and with [sft] the seed SFT M0 -> M1 (the loop then
    starts from M1, M0 stays the rewarding reference) and M1's evaluation
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
there) and starts the unfinished one again from scratch, except training, which resumes from
its last checkpoint (`[train] save_every`), each step's metrics written once. A full disk (or
one that turned read-only) ends the run with one line naming the path and what to free: the
artifact being written is dropped whole, the finished ones and the store stay as they were,
and the same command resumes once there is room.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sqlite3
import sys
import time
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
    disk_error,
    internal_error,
)
from cream_engine.files import append_traceback
from cream_engine.stages import consistency, evaluate, generate, pairs, score, sft, train
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
    """The stages of iteration t. Iteration 0 begins with M0's evaluation (`baseline`), then,
    with `[sft] enabled`, the seed SFT (M0 -> M1) and M1's evaluation. Evaluation runs only
    when enabled, and the model iteration t trained is evaluated every `[eval] every`
    iterations ((t + 1) % every == 0) and after the last one."""
    cfg = ctx.config
    first: list[tuple[str, Stage]] = []
    if t == 0:
        first = [(paths.BASELINE, evaluate.baseline), (paths.SFT, sft.run),
                 (paths.SFT_EVAL, evaluate.sft_eval)]
        first = [(name, fn) for name, fn in first
                 if (cfg.sft.enabled or name not in (paths.SFT, paths.SFT_EVAL))
                 and (cfg.eval.enabled or name == paths.SFT)]
    last = t == cfg.run.iterations - 1
    evaluated = cfg.eval.enabled and ((t + 1) % cfg.eval.every == 0 or last)
    return first + [(name, fn) for name, fn in STAGES.items()
                    if name != "evaluate" or evaluated]


def run_stage(ctx: RunContext, t: int, name: str, fn: Stage) -> None:
    done = ctx.store.stage_status(ctx.run_id, t, name) == "done"
    if done and ctx.artifact(t, name).exists():
        return
    ctx.store.start_stage(ctx.run_id, t, name)
    started = time.time()
    try:
        info = fn(ctx, t)
    except Cancelled:
        best_effort(ctx.store.finish_stage, ctx.run_id, t, name, status="cancelled")
        raise
    except BaseException:
        best_effort(ctx.store.finish_stage, ctx.run_id, t, name, status="failed")
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
        best_effort(ctx.store.upsert_iteration, ctx.run_id, t, status=status,
                    ended_at=time.time())
        raise
    stages = {s["stage"]: s for s in ctx.store.stages(ctx.run_id) if s["iteration"] == t}
    ctx.store.upsert_iteration(ctx.run_id, t, status="done", ended_at=time.time(),
                               summary={k: json.loads(s["info"]) if s["info"] else None
                                        for k, s in stages.items()})


# -- the run: the one place the engine's errors are caught ---------------------------------


def run_experiment(run_dir: Path) -> int:
    """Run (or resume) every iteration of a run; returns the process exit code.

    1. Refused at the door (not a run, already running, a read-only home): `cream: error: …`,
       exit 2.
    2. A `CreamError` (a model that does not load, a NaN loss…): the run fails with its one
       line, in the store and on stderr; exit 1. Finished stages are kept for a retry.
    3. The file system failing (a full disk…, `errors.disk_error`): the same, with the path
       and what to free in the line and the traceback in the job log.
    4. Anything else is a bug: the same one line, and the traceback in the run's job log.

    What it (and its children) create is private to the user (`paths.set_home_umask`: the
    CLI and the worker set it too; this is for an engine started by hand)."""
    umask = paths.set_home_umask()
    try:
        return _run(run_dir.absolute())
    finally:
        os.umask(umask)


def _run(run_dir: Path) -> int:
    try:
        store, _lock = _open_run(run_dir)  # the lock is held until this process ends
    except Exception as e:
        refused = e if isinstance(e, CreamError) else disk_error(e, run_dir.parent)
        if refused is None:
            raise
        print(f"cream: error: {refused.line}", file=sys.stderr)
        return refused.exit_code

    def on_signal(signum: int, frame: Any) -> None:
        # once: a second SIGTERM (Slurm signals every process of the job, and its batch script
        # passes the signal on too) must not interrupt the stop that records what is finished
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
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
        with store.atomic():  # (done and its event together: a kill between leaves neither)
            store.set_run_status(run_id, "done")
            store.add_event("run.done", f"run {run_id} finished", run_id=run_id)
    except Cancelled as e:
        best_effort(_record, store, run_id, "cancelled", f"cancelled ({e})", "run.cancelled",
                    f"run {run_id} cancelled")
        print(f"cream: run {run_id} cancelled; finished stages are kept", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as e:
        reason, tail = _failure(e, run_dir)
        # on a full disk this may not be written either: the run then still says running,
        # and the next `cream run` (or a worker's retry) resumes it all the same
        best_effort(_record, store, run_id, "failed", reason, "run.failed", reason)
        print(f"cream: error: run {run_id} failed: {reason}{tail}", file=sys.stderr)
        return EXIT_FAILED
    print(f"cream: run {run_id} done: {run_dir}", file=sys.stderr)
    return EXIT_OK


def _failure(e: Exception, run_dir: Path) -> tuple[str, str]:
    """(the run's one-line error, what follows it on stderr) for an error that ended a run."""
    if isinstance(e, CreamError):
        return e.line, ""
    found = disk_error(e, run_dir.parent)
    if found is not None:  # not a bug: the line says what to do; the traceback is for the curious
        log_traceback(run_dir)
        return found.line, ""
    log = log_traceback(run_dir)
    return internal_error(e), f"; traceback in {log}" if log else ""


def _record(store: Store, run_id: str, status: str, error: str, kind: str,
            message: str) -> None:
    store.set_run_status(run_id, status, error=error)
    store.add_event(kind, message, run_id=run_id)


def best_effort(write: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """A store write that says how something ended, while an error is on its way up: on a full
    disk it fails too, and must not hide the error that matters."""
    try:
        write(*args, **kwargs)
    except (sqlite3.Error, OSError):
        pass


def _open_run(run_dir: Path) -> tuple[Store, IO]:
    """The store of the run's home, and an exclusive lock on the run held for the life of this
    process (the OS drops it when the process dies, even by SIGKILL): two engines never run
    the same run at once."""
    store = open_store(run_dir.parent, create=False, write=True)
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


def log_traceback(run_dir: Path) -> Path | None:
    """Write the exception being handled, with its traceback, to the run's job log, once:
    under the worker stderr already is that file; in the foreground (`cream run`) stderr is the
    user's terminal, which gets one line, so the traceback goes to the file only. Returns the
    log, or None when it could not be written (a full disk)."""
    return append_traceback(paths.job_log(run_dir), f"run {run_dir.name}")
