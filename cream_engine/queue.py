"""The job queue in the store: submit, claim (atomic), cancel, retry/resume, priorities, drain,
and what the worker records about itself and its jobs. Every statement on the `jobs` and
`workers` tables lives here, behind a name.

A job is one attempt at running a run; a run can have several (a retry adds a job that
resumes the run from its last finished stage). Job statuses: queued → running → done | failed |
cancelled. Claiming happens inside a `BEGIN IMMEDIATE` transaction, so two workers racing for
the queue never start the same job.

Light layer: standard library + the store.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from cream_engine.config import ExperimentConfig
from cream_engine.errors import QueueError
from cream_engine.runs import create_run, find_resumable
from cream_engine.store import RUN_ENDED, Store

JOB_ENDED = ("done", "failed", "cancelled")
DRAIN_KEY = "queue.drain"


# -- submitting --------------------------------------------------------------------------------


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


def submit_or_resume(store: Store, home: Path, config: ExperimentConfig) -> tuple[str, str]:
    """The unfinished run of exactly this config (queued again if it failed or was cancelled),
    else a new run in the queue. Returns (run id, what was done: queued, resuming, already …)."""
    existing = find_resumable(store, config)
    if existing is None:
        return submit(store, home, config), "queued"
    job = latest_job(store, existing["id"])
    if job is None or job["status"] in JOB_ENDED:
        retry(store, existing["id"])
        return existing["id"], "resuming"
    return existing["id"], f"already {job['status']}"


def _add_job(store: Store, run_id: str, *, priority: int, gpus: int | None,
             min_free_mem_gb: float, after_run: str | None, attempts: int = 0) -> int:
    cur = store.execute(
        "INSERT INTO jobs (run_id, status, priority, gpus, min_free_mem_gb, after_run, "
        "attempts, created_at) VALUES (?, 'queued', ?, ?, ?, ?, ?, ?)",
        [run_id, priority, -1 if gpus is None else gpus, min_free_mem_gb, after_run, attempts,
         time.time()])
    return int(cur.lastrowid)


def add_slurm_job(store: Store, run_id: str, slurm_id: str, options: str, *, gpus: int,
                  after_run: str | None = None, attempts: int = 0) -> int:
    """A job submitted to Slurm (pending there): the worker never claims it; `executors.slurm`
    mirrors Slurm's state onto it."""
    cur = store.execute(
        "INSERT INTO jobs (run_id, status, priority, gpus, after_run, attempts, created_at, "
        "executor, slurm_id, slurm_state, slurm_options) "
        "VALUES (?, 'queued', 0, ?, ?, ?, ?, 'slurm', ?, 'PENDING', ?)",
        [run_id, gpus, after_run, attempts, time.time(), slurm_id, options])
    return int(cur.lastrowid)


def active_slurm_jobs(store: Store) -> list[dict]:
    """Slurm jobs not yet ended (as last seen), oldest first."""
    return store.query("SELECT * FROM jobs WHERE executor = 'slurm' AND status IN "
                       "('queued', 'running') ORDER BY id")


def set_slurm_view(store: Store, job_id: int, **fields: Any) -> None:
    """What Slurm said of a job (state, reason, node, elapsed, and the status it maps to)."""
    allowed = {"status", "slurm_state", "slurm_reason", "node", "elapsed_s", "started_at",
               "ended_at", "exit_code", "polled_at", "attempts"}
    bad = set(fields) - allowed
    if bad:
        raise ValueError(f"not a Slurm view field: {sorted(bad)}")
    store.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                  [*fields.values(), job_id])


def job_gpus(job: dict, gpus_on_machine: int) -> int:
    """GPUs a job needs: its request, or (auto, stored as -1) one when the machine has any."""
    return (1 if gpus_on_machine else 0) if job["gpus"] < 0 else job["gpus"]


# -- reading -----------------------------------------------------------------------------------


def jobs(store: Store, include_ended: bool = True) -> list[dict]:
    """Jobs with their run's name, method and status: running, then queued (by priority),
    then ended."""
    where, args = ("", []) if include_ended else (
        f"WHERE j.status NOT IN ({','.join('?' * len(JOB_ENDED))})", list(JOB_ENDED))
    return store.query(
        "SELECT j.*, r.name, r.method, r.status AS run_status FROM jobs j "
        f"JOIN runs r ON r.id = j.run_id {where} ORDER BY "
        "CASE j.status WHEN 'running' THEN 0 WHEN 'queued' THEN 1 ELSE 2 END, "
        "j.priority DESC, j.id", args)


def jobs_of_run(store: Store, run_id: str) -> list[dict]:
    return store.query("SELECT * FROM jobs WHERE run_id = ? ORDER BY id", [run_id])


def latest_job(store: Store, run_id: str) -> dict | None:
    rows = store.query("SELECT * FROM jobs WHERE run_id = ? ORDER BY id DESC LIMIT 1", [run_id])
    return rows[0] if rows else None


def latest_jobs(store: Store, run_id: str | None = None) -> dict[str, dict]:
    """The newest job of every run (or of one run), by run id."""
    where, args = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
    return {j["run_id"]: j for j in store.query(
        f"SELECT * FROM jobs WHERE id IN (SELECT MAX(id) FROM jobs {where} GROUP BY run_id)",
        args)}


def running_jobs(store: Store) -> list[dict]:
    """The worker's running jobs (Slurm's are Slurm's business)."""
    return store.query("SELECT * FROM jobs WHERE status = 'running' AND executor = 'local' "
                       "ORDER BY id")


def running_pids(store: Store) -> dict[int, str]:
    """{engine pid: run id} of the running jobs."""
    return {r["pid"]: r["run_id"] for r in store.query(
        "SELECT pid, run_id FROM jobs WHERE status = 'running' AND pid IS NOT NULL")}


def has_queued(store: Store) -> bool:
    return bool(store.query("SELECT 1 FROM jobs WHERE status = 'queued' AND executor = 'local' "
                            "LIMIT 1"))


def drained(store: Store) -> bool:
    return store.get_setting(DRAIN_KEY) == "1"


def run_ended(store: Store, run_id: str) -> tuple[bool, str | None]:
    """(has the run ended, its status): ended and no job of it left queued or running."""
    run = store.require_run(run_id)
    job = latest_job(store, run["id"])
    ended = run["status"] in RUN_ENDED and (job is None or job["status"] in JOB_ENDED)
    return ended, run["status"]


def summary(job: dict[str, Any]) -> dict[str, Any]:
    """A job as `cream queue ls --json` prints it."""
    keys = ("id", "run_id", "name", "method", "status", "priority", "gpus", "min_free_mem_gb",
            "after_run", "worker", "pid", "gpu_uuids", "attempts", "exit_code",
            "created_at", "started_at", "ended_at", "cancel_requested", "executor",
            "slurm_id", "slurm_state", "slurm_reason", "node", "elapsed_s")
    out = {k: job.get(k) for k in keys}
    out["gpus"] = None if job["gpus"] < 0 else job["gpus"]
    return out


# -- what users ask of the queue ---------------------------------------------------------------


def cancel(store: Store, ref: str) -> dict:
    """Cancel a run's job: a queued one at once; a running one is flagged for its worker
    (SIGTERM to the process group, SIGKILL after the grace period). Returns the job. Read and
    written in one transaction: a worker cannot claim the job in between."""
    run = store.require_run(ref)
    with store.immediate():
        job = latest_job(store, run["id"])
        if job is None or job["status"] in JOB_ENDED:
            raise QueueError(f"run {run['id']}: nothing to cancel (no queued or running job)")
        if job["status"] == "queued":
            store.execute("UPDATE jobs SET status = 'cancelled', ended_at = ? WHERE id = ?",
                          [time.time(), job["id"]])
            store.set_run_status(run["id"], "cancelled", error="cancelled before it started")
        else:
            store.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", [job["id"]])
    store.add_event("job.cancel", f"run {run['id']}: cancel requested", run_id=run["id"])
    return {**job, "cancel_requested": 1}


def retry(store: Store, ref: str, priority: int | None = None) -> str:
    """Queue a new job for a failed or cancelled run: it resumes from the last finished stage."""
    run = store.require_run(ref)
    with store.immediate():  # two retries at once queue one job
        job = latest_job(store, run["id"])
        if job is not None and job["status"] not in JOB_ENDED:
            raise QueueError(f"run {run['id']}: already {job['status']}")
        if store.require_run(run["id"])["status"] == "done":
            raise QueueError(f"run {run['id']}: already done")
        _add_job(store, run["id"], priority=job["priority"] if priority is None and job else
                 (priority or 0), gpus=None if not job or job["gpus"] < 0 else job["gpus"],
                 min_free_mem_gb=job["min_free_mem_gb"] if job else 0.0,
                 after_run=None, attempts=job["attempts"] if job else 0)
        store.execute("UPDATE runs SET status = 'queued', error = NULL, ended_at = NULL "
                      "WHERE id = ?", [run["id"]])
    store.add_event("job.queued", f"run {run['id']} queued to resume", run_id=run["id"])
    return run["id"]


def set_priority(store: Store, ref: str, priority: int | None = None, *,
                 delta: int = 0) -> int:
    """Set a queued job's priority (or move it by `delta`); returns the new priority."""
    run = store.require_run(ref)
    with store.immediate():
        job = latest_job(store, run["id"])
        if job is None or job["status"] != "queued":
            raise QueueError(f"run {run['id']}: only a queued job's priority can change")
        if job["executor"] == "slurm":
            raise QueueError(f"run {run['id']}: its job waits in Slurm's queue, whose order "
                             f"is Slurm's (scontrol update jobid={job['slurm_id']} nice=…)")
        new = (job["priority"] if priority is None else priority) + delta
        store.execute("UPDATE jobs SET priority = ? WHERE id = ?", [new, job["id"]])
    return new


def set_drain(store: Store, drain: bool) -> None:
    """Drain: workers finish what runs but start nothing new (until resumed)."""
    store.set_setting(DRAIN_KEY, "1" if drain else "0")
    store.add_event("queue.drain" if drain else "queue.resume",
                    "queue drained" if drain else "queue resumed")


# -- what the worker records -------------------------------------------------------------------


def claim_next_job(store: Store, worker: str,
                   fits: Callable[[dict], bool] = lambda job: True) -> dict | None:
    """Atomically take the best queued job that `fits` (highest priority, then oldest) and
    whose `--after` run has finished; mark it running for `worker`. None when none can start."""
    if drained(store):
        return None
    with store.immediate():
        candidates = store.query(
            "SELECT j.* FROM jobs j LEFT JOIN runs a ON a.id = j.after_run "
            "WHERE j.status = 'queued' AND j.executor = 'local' "
            "AND (j.after_run IS NULL OR a.status = 'done') "
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


def job_started(store: Store, job_id: int, pid: int, gpu_uuids: list[str]) -> None:
    store.execute("UPDATE jobs SET pid = ?, gpu_uuids = ? WHERE id = ?",
                  [pid, ",".join(gpu_uuids), job_id])


def adopt_job(store: Store, job_id: int, worker: str) -> None:
    """A running job whose worker died, taken over by `worker` (its engine still runs)."""
    store.execute("UPDATE jobs SET worker = ?, heartbeat_at = ? WHERE id = ?",
                  [worker, time.time(), job_id])


def finish_job(store: Store, job_id: int, status: str, exit_code: int | None,
               error: str | None = None) -> None:
    """Record how a job ended, and its run's status (unless the engine already set it)."""
    with store.atomic():
        job = store.query("SELECT * FROM jobs WHERE id = ?", [job_id])[0]
        store.execute("UPDATE jobs SET status = ?, exit_code = ?, ended_at = ? WHERE id = ?",
                      [status, exit_code, time.time(), job_id])
        run = store.get_run(job["run_id"])
        if run and run["status"] not in RUN_ENDED:
            store.set_run_status(job["run_id"], status, error=error)


def requeue(store: Store, job: dict, reason: str) -> bool:
    """Put a running job whose process is gone back in the queue (the engine resumes its run);
    False, and nothing changed, when the job no longer runs or its run has ended."""
    with store.atomic():
        run = store.get_run(job["run_id"])
        if run is None or run["status"] in RUN_ENDED:
            return False
        cur = store.execute("UPDATE jobs SET status = 'queued', worker = NULL, pid = NULL, "
                            "heartbeat_at = NULL WHERE id = ? AND status = 'running'",
                            [job["id"]])
        if cur.rowcount != 1:
            return False
        store.execute("UPDATE runs SET status = 'queued' WHERE id = ?", [job["run_id"]])
        store.add_event("job.requeued", f"run {job['run_id']}: {reason}", run_id=job["run_id"])
    return True


def cancel_requested(store: Store, job_ids: list[int]) -> set[int]:
    """Which of these jobs a user asked to cancel."""
    if not job_ids:
        return set()
    return {j["id"] for j in store.query(
        f"SELECT id FROM jobs WHERE cancel_requested = 1 AND id IN "
        f"({','.join('?' * len(job_ids))})", job_ids)}


def last_activity(store: Store, run_id: str, job_id: int) -> float:
    """When a running job last showed life: its newest metric, stage start or end, or its own
    start."""
    return store.query(
        "SELECT MAX(t) AS t FROM (SELECT MAX(time) AS t FROM metrics WHERE run_id = :r "
        "UNION ALL SELECT MAX(MAX(started_at), COALESCE(MAX(ended_at), 0)) FROM stages "
        "WHERE run_id = :r UNION ALL SELECT started_at FROM jobs WHERE id = :j)",
        {"r": run_id, "j": job_id})[0]["t"] or 0.0


def stall_notified_at(store: Store, job_id: int) -> float | None:
    return store.query("SELECT stall_notified_at FROM jobs WHERE id = ?",
                       [job_id])[0]["stall_notified_at"]


def mark_stall_notified(store: Store, job_id: int) -> None:
    store.execute("UPDATE jobs SET stall_notified_at = ? WHERE id = ?", [time.time(), job_id])


def register_worker(store: Store, worker: str, pid: int, host: str, log_path: str) -> None:
    now = time.time()
    store.execute("INSERT OR REPLACE INTO workers (id, pid, host, status, started_at, "
                  "heartbeat_at, log_path) VALUES (?, ?, ?, 'running', ?, ?, ?)",
                  [worker, pid, host, now, now, log_path])


def heartbeat(store: Store, worker: str, job_ids: list[int]) -> None:
    """The worker and its running jobs are alive now."""
    now = time.time()
    with store.atomic():
        store.execute("UPDATE workers SET heartbeat_at = ? WHERE id = ?", [now, worker])
        if job_ids:
            store.execute(f"UPDATE jobs SET heartbeat_at = ? WHERE id IN "
                          f"({','.join('?' * len(job_ids))})", [now, *job_ids])


def set_worker_status(store: Store, worker: str, status: str) -> None:
    """`stopped` (it stopped itself) or `gone` (its process died without stopping)."""
    store.execute("UPDATE workers SET status = ? WHERE id = ?", [status, worker])


def workers(store: Store, status: str | None = None) -> list[dict]:
    """Workers, newest first (only those of `status` when given)."""
    if status is None:
        return store.query("SELECT * FROM workers ORDER BY started_at DESC")
    return store.query("SELECT * FROM workers WHERE status = ? ORDER BY started_at DESC",
                       [status])
