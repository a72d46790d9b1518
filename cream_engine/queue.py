"""The job queue in the store: submit, claim (atomic), cancel, retry/resume, priorities, drain.

A job is one attempt at running a run; a run can have several (a retry adds a job that
resumes the run from its last finished stage). Job statuses: queued → running → done | failed |
cancelled. Claiming happens inside a `BEGIN IMMEDIATE` transaction, so two workers racing for
the queue never start the same job.

Light layer: standard library + the store.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from cream_engine.config import ExperimentConfig
from cream_engine.runs import create_run
from cream_engine.store import Store

JOB_ENDED = ("done", "failed", "cancelled")
DRAIN_KEY = "queue.drain"


class QueueError(ValueError):
    """A queue request that cannot be done (no such run, nothing to retry…): one line."""


def submit(store: Store, home: Path, config: ExperimentConfig, *, priority: int = 0,
           gpus: int | None = None, min_free_mem_gb: float = 0.0, after: str | None = None,
           cwd: Path | None = None) -> str:
    """Snapshot the config into a new run and queue its first job; returns the run id.
    `gpus=None` means one GPU where the machine has some, else the CPU."""
    after_id = None
    if after:
        run = store.find_run(after)
        if run is None:
            raise QueueError(f"--after {after}: no such run")
        after_id = run["id"]
    run_id = create_run(store, home, config, status="queued", cwd=cwd)
    _add_job(store, run_id, priority=priority, gpus=gpus, min_free_mem_gb=min_free_mem_gb,
             after_run=after_id)
    store.add_event("job.queued", f"run {run_id} queued", run_id=run_id)
    return run_id


def _add_job(store: Store, run_id: str, *, priority: int, gpus: int | None,
             min_free_mem_gb: float, after_run: str | None, attempts: int = 0) -> int:
    cur = store.execute(
        "INSERT INTO jobs (run_id, status, priority, gpus, min_free_mem_gb, after_run, "
        "attempts, created_at) VALUES (?, 'queued', ?, ?, ?, ?, ?, ?)",
        [run_id, priority, -1 if gpus is None else gpus, min_free_mem_gb, after_run, attempts,
         time.time()])
    return int(cur.lastrowid)


def job_gpus(job: dict, gpus_on_machine: int) -> int:
    """GPUs a job needs: its request, or (auto, stored as -1) one when the machine has any."""
    return (1 if gpus_on_machine else 0) if job["gpus"] < 0 else job["gpus"]


def claim_next_job(store: Store, worker: str,
                   fits: Callable[[dict], bool] = lambda job: True) -> dict | None:
    """Atomically take the best queued job that `fits` (highest priority, then oldest) and
    whose `--after` run has finished; mark it running for `worker`. None when none can start."""
    if store.get_setting(DRAIN_KEY) == "1":
        return None
    with store.immediate():
        candidates = store.query(
            "SELECT j.* FROM jobs j LEFT JOIN runs a ON a.id = j.after_run "
            "WHERE j.status = 'queued' AND (j.after_run IS NULL OR a.status = 'done') "
            "ORDER BY j.priority DESC, j.id")
        for job in candidates:
            if fits(job):
                now = time.time()
                store.execute("UPDATE jobs SET status = 'running', worker = ?, started_at = ?, "
                              "heartbeat_at = ?, attempts = attempts + 1, pid = NULL, "
                              "exit_code = NULL WHERE id = ? AND status = 'queued'",
                              [worker, now, now, job["id"]])
                store.execute("UPDATE runs SET status = 'running' WHERE id = ?",
                              [job["run_id"]])
                return {**job, "status": "running", "worker": worker}
    return None


def jobs(store: Store, include_ended: bool = True) -> list[dict]:
    where = "" if include_ended else "WHERE j.status NOT IN ('done', 'failed', 'cancelled')"
    return store.query(
        "SELECT j.*, r.name, r.method, r.status AS run_status, r.run_dir FROM jobs j "
        f"JOIN runs r ON r.id = j.run_id {where} ORDER BY "
        "CASE j.status WHEN 'running' THEN 0 WHEN 'queued' THEN 1 ELSE 2 END, "
        "j.priority DESC, j.id")


def latest_job(store: Store, run_id: str) -> dict | None:
    rows = store.query("SELECT * FROM jobs WHERE run_id = ? ORDER BY id DESC LIMIT 1", [run_id])
    return rows[0] if rows else None


def _run(store: Store, ref: str) -> dict:
    run = store.find_run(ref)
    if run is None:
        raise QueueError(f"run {ref!r}: no such run")
    return run


def cancel(store: Store, ref: str) -> dict:
    """Cancel a run's job: a queued one at once; a running one is flagged for its worker
    (SIGTERM to the process group, SIGKILL after the grace period). Returns the job."""
    run = _run(store, ref)
    job = latest_job(store, run["id"])
    if job is None or job["status"] in JOB_ENDED:
        raise QueueError(f"run {run['id']}: nothing to cancel (no queued or running job)")
    with store.immediate():
        if job["status"] == "queued":
            store.execute("UPDATE jobs SET status = 'cancelled', ended_at = ? WHERE id = ?",
                          [time.time(), job["id"]])
            store.set_run_status(run["id"], "cancelled", error="cancelled before it started")
        else:
            store.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", [job["id"]])
    store.add_event("job.cancel", f"run {run['id']}: cancel requested", run_id=run["id"])
    return {**job, "cancel_requested": 1}


def finish_job(store: Store, job_id: int, status: str, exit_code: int | None,
               error: str | None = None) -> None:
    """Record how a job ended, and its run's status (unless the engine already set it)."""
    job = store.query("SELECT * FROM jobs WHERE id = ?", [job_id])[0]
    store.execute("UPDATE jobs SET status = ?, exit_code = ?, ended_at = ? WHERE id = ?",
                  [status, exit_code, time.time(), job_id])
    run = store.get_run(job["run_id"])
    if run and run["status"] in ("queued", "running"):
        store.set_run_status(job["run_id"], status, error=error)


def requeue(store: Store, job: dict, reason: str) -> None:
    """Put a job whose process is gone back in the queue; the engine resumes its run."""
    store.execute("UPDATE jobs SET status = 'queued', worker = NULL, pid = NULL, "
                  "heartbeat_at = NULL WHERE id = ? AND status = 'running'", [job["id"]])
    store.execute("UPDATE runs SET status = 'queued' WHERE id = ?", [job["run_id"]])
    store.add_event("job.requeued", f"run {job['run_id']}: {reason}", run_id=job["run_id"])


def retry(store: Store, ref: str, priority: int | None = None) -> str:
    """Queue a new job for a failed or cancelled run: it resumes from the last finished stage."""
    run = _run(store, ref)
    job = latest_job(store, run["id"])
    if job is not None and job["status"] not in JOB_ENDED:
        raise QueueError(f"run {run['id']}: already {job['status']}")
    if run["status"] == "done":
        raise QueueError(f"run {run['id']}: already done")
    _add_job(store, run["id"], priority=job["priority"] if priority is None and job else
             (priority or 0), gpus=None if not job or job["gpus"] < 0 else job["gpus"],
             min_free_mem_gb=job["min_free_mem_gb"] if job else 0.0,
             after_run=None, attempts=job["attempts"] if job else 0)
    store.execute("UPDATE runs SET status = 'queued', error = NULL, ended_at = NULL "
                  "WHERE id = ?", [run["id"]])
    store.add_event("job.queued", f"run {run['id']} queued to resume", run_id=run["id"])
    return run["id"]


def set_priority(store: Store, ref: str, priority: int) -> None:
    run = _run(store, ref)
    job = latest_job(store, run["id"])
    if job is None or job["status"] != "queued":
        raise QueueError(f"run {run['id']}: only a queued job's priority can change")
    store.execute("UPDATE jobs SET priority = ? WHERE id = ?", [priority, job["id"]])


def set_drain(store: Store, drain: bool) -> None:
    """Drain: workers finish what runs but start nothing new (until resumed)."""
    store.set_setting(DRAIN_KEY, "1" if drain else "0")
    store.add_event("queue.drain" if drain else "queue.resume",
                    "queue drained" if drain else "queue resumed")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def run_ended(store: Store, run_id: str) -> tuple[bool, str | None]:
    run = store.get_run(run_id)
    if run is None:
        raise QueueError(f"run {run_id!r}: no such run")
    job = latest_job(store, run_id)
    ended = run["status"] in ("done", "failed", "cancelled") and (
        job is None or job["status"] in JOB_ENDED)
    return ended, run["status"]


def summary(job: dict[str, Any]) -> dict[str, Any]:
    """A job as `cream queue ls --json` prints it."""
    keys = ("id", "run_id", "name", "method", "status", "priority", "gpus", "min_free_mem_gb",
            "after_run", "worker", "pid", "gpu_uuids", "attempts", "exit_code",
            "created_at", "started_at", "ended_at", "cancel_requested")
    out = {k: job.get(k) for k in keys}
    out["gpus"] = None if job["gpus"] < 0 else job["gpus"]
    return out
