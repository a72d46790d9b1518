"""Where a job runs: `local` (the worker of this data home) or `slurm` (one sbatch job).

What users ask of a run's job, whatever its executor: cancel, retry, and `sync` (bring the
store up to date with what Slurm says; nothing to do for local jobs, whose worker writes their
state itself). The CLI and the dashboard call these, never `queue.cancel`/`queue.retry` for a
job that may be Slurm's.

Light layer: standard library + the store.
"""

from __future__ import annotations

from pathlib import Path

from cream_engine import queue
from cream_engine.executors import slurm
from cream_engine.store import Store

EXECUTORS = ("local", "slurm")


def cancel(store: Store, ref: str) -> dict:
    """Cancel a run's job: the worker's (queue.cancel), or Slurm's (scancel)."""
    run = store.require_run(ref)
    job = queue.latest_job(store, run["id"])
    if job is not None and job["executor"] == "slurm" and job["status"] not in queue.JOB_ENDED:
        return slurm.cancel(store, job)
    return queue.cancel(store, ref)


def retry(store: Store, home: Path, ref: str, priority: int | None = None) -> str:
    """Queue a failed or cancelled run again where it ran before; returns the run id."""
    run = store.require_run(ref)
    job = queue.latest_job(store, run["id"])
    if job is not None and job["executor"] == "slurm":
        slurm.resubmit(store, home, job)
        return run["id"]
    return queue.retry(store, ref, priority)


def sync(store: Store, *, min_interval: float | None = None) -> int:
    """Mirror Slurm's state onto its jobs (at most one squeue per interval, whoever asks);
    returns the number of Slurm queries made. A Slurm that cannot be asked is a state shown
    on its jobs, never an error here."""
    return slurm.sync(store, min_interval=min_interval)
