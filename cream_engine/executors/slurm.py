"""Slurm: a run as one `sbatch` job, its state read from Slurm in bulk.

1. Submit: `sbatch --test-only` first, so an unknown partition or an impossible `--gres` is
   refused before anything is recorded; then the run is created, its batch script written to
   `<run>/slurm/job.sbatch` and submitted with `sbatch --parsable`. A failure there removes the
   run again: nothing is recorded as submitted.
2. The job runs `python -m cream_engine run RUN_DIR` (stage-level resume and the trainer's
   checkpoints make it restartable) with `--requeue` and `--signal=B:USR1@<s>`: the script turns
   that warning before the time limit into a graceful stop (SIGTERM to the engine) and a
   `scontrol requeue` of itself. A preempted or requeued job starts again under the same id
   and resumes where the engine stopped. Its output goes to the run's `logs/job.log`.
3. State: `sync` asks `squeue` once for all of the user's jobs (`--states=all`: finished jobs
   stay listed for MinJobAge; `sacct` for those gone since, where accounting runs; else the
   end the engine recorded) at most every `poll_seconds`, whoever asks (the dashboard,
   `cream queue ls`, `cream status`, the worker), and maps Slurm's state onto the job and its
   run. Slurm unreachable: the jobs show "unknown (slurmctld unreachable)", nothing changes.
4. Cancel is `scancel`; retry submits the same script again; `--after RUN` is
   `--dependency=afterok:<its job id>` (with `--kill-on-invalid-dep=yes`).

Light layer: standard library + the store.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cream_engine import paths, queue
from cream_engine.config import ExperimentConfig
from cream_engine.errors import (
    CreamError,
    QueueError,
    SlurmError,
    SlurmResourceError,
    SlurmUnreachable,
)
from cream_engine.executors.sbatch import SlurmOptions, batch_script
from cream_engine.files import write_atomic
from cream_engine.runs import create_run, delete_run
from cream_engine.store import RUN_ENDED, Store
from cream_engine.userconfig import slurm_defaults

SCRIPT = "job.sbatch"
POLLED_KEY = "slurm.polled_at"
TIMEOUT_S = 30.0
# Slurm's job states -> the store's job status (anything not named here is a failure)
QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD",
          "SPECIAL_EXIT", "PREEMPTED"}   # (preempted: pending again once Slurm requeues it)
RUNNING = {"RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "STAGE_OUT", "SIGNALING",
           "STOPPED", "RESIZING"}
UNREACHABLE = "slurmctld unreachable"


# -- the commands ------------------------------------------------------------------------------


def slurm_command(args: list[str], timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """One Slurm client command; not installed and no answer are errors of their own."""
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        raise SlurmError(f"Slurm is not installed here: {args[0]} not found on PATH") from None
    except subprocess.TimeoutExpired:
        raise SlurmUnreachable(f"{args[0]}: no answer from Slurm in {timeout:.0f}s "
                               f"({UNREACHABLE}?)") from None


def _error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
    line = lines[-1] if lines else f"exit code {proc.returncode}"
    for prefix in ("sbatch: error: ", "scancel: error: ", "squeue: error: ", "error: "):
        line = line.removeprefix(prefix)
    return line


def _unreachable(text: str) -> bool:
    text = text.lower()
    return any(s in text for s in ("unable to contact slurm controller", "connection refused",
                                   "socket timed out", "connect failure", "zero bytes were"))


def _refusal(proc: subprocess.CompletedProcess, what: str) -> CreamError:
    """A failed sbatch as one line: unreachable (1), impossible resources (3), else usage (2)."""
    line = _error_line(proc)
    if _unreachable(proc.stderr or ""):
        return SlurmUnreachable(f"{what}: {UNREACHABLE} ({line})")
    low = line.lower()
    if any(s in low for s in ("gres", "node configuration is not available", "node count",
                              "more processors than", "too many", "requested node config")):
        return SlurmResourceError(f"{what}: Slurm cannot give this job what it asks: {line}")
    return SlurmError(f"{what}: {line}")


def check_request(opts: SlurmOptions) -> None:
    """`sbatch --test-only` of the resources asked: refused here, nothing is submitted."""
    proc = slurm_command(["sbatch", "--test-only", *opts.resources(), "--wrap=true"])
    if proc.returncode != 0:
        raise _refusal(proc, " ".join(["sbatch", *opts.resources()]))


# -- submitting --------------------------------------------------------------------------------


def require_slurm() -> None:
    if shutil.which("sbatch") is None:
        raise SlurmError("Slurm is not installed here: sbatch not found on PATH "
                         "(submit from a login node, or use the local worker)")


def dependency(store: Store, after: str | None) -> tuple[str | None, list[str]]:
    """(the run waited for, its sbatch options): afterok on its Slurm job; none once done."""
    if not after:
        return None, []
    run = store.find_run(after)
    if run is None:
        raise QueueError(f"--after {after}: no such run")
    if run["status"] == "done":
        return run["id"], []
    job = queue.latest_job(store, run["id"])
    if job is None or job["executor"] != "slurm" or job["status"] in queue.JOB_ENDED:
        raise QueueError(f"--after {after}: run {run['id']} is not a queued or running Slurm "
                         "job (a Slurm job can wait only for one)")
    return run["id"], [f"--dependency=afterok:{job['slurm_id']}", "--kill-on-invalid-dep=yes"]


def submit(store: Store, home: Path, config: ExperimentConfig, opts: SlurmOptions, *,
           after: str | None = None, cwd: Path | None = None) -> tuple[str, str]:
    """Create the run and submit its job; returns (run id, Slurm job id)."""
    require_slurm()
    after_id, depend = dependency(store, after)
    check_request(opts)
    run_id = create_run(store, home, config, status="queued", cwd=cwd)
    try:
        slurm_id = _sbatch(home, run_id, config.run.name, opts, depend)
        queue.add_slurm_job(store, run_id, slurm_id, opts.to_json(), gpus=opts.gpus(),
                            after_run=after_id)
    except BaseException:
        delete_run(store, home, run_id)
        raise
    store.add_event("job.queued", f"run {run_id} submitted to Slurm as job {slurm_id}",
                    run_id=run_id)
    return run_id, slurm_id


def _sbatch(home: Path, run_id: str, name: str, opts: SlurmOptions, extra: list[str]) -> str:
    run_dir = paths.run_dir(home, run_id)
    script = run_dir / "slurm" / SCRIPT
    script.parent.mkdir(parents=True, exist_ok=True)
    paths.job_log(run_dir).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(script, batch_script(run_dir, home, name, opts))
    proc = slurm_command(["sbatch", "--parsable", *extra, str(script)])
    if proc.returncode != 0:
        raise _refusal(proc, f"sbatch {script}")
    return proc.stdout.strip().split(";")[0]


def resubmit(store: Store, home: Path, job: dict) -> str:
    """A new sbatch of a failed or cancelled Slurm run (it resumes); returns the new job id."""
    run = store.require_run(job["run_id"])
    opts = SlurmOptions.from_json(job["slurm_options"])
    latest = queue.latest_job(store, run["id"])
    if latest is not None and latest["status"] not in queue.JOB_ENDED:
        raise QueueError(f"run {run['id']}: already {latest['status']}")
    if run["status"] == "done":
        raise QueueError(f"run {run['id']}: already done")
    slurm_id = _sbatch(home, run["id"], run["name"], opts, [])
    with store.atomic():
        queue.add_slurm_job(store, run["id"], slurm_id, job["slurm_options"],
                            gpus=opts.gpus(), attempts=job["attempts"] or 0)
        store.set_run_status(run["id"], "queued")
    store.add_event("job.queued", f"run {run['id']} resubmitted to Slurm as job {slurm_id}",
                    run_id=run["id"])
    return slurm_id


def cancel(store: Store, job: dict) -> dict:
    """`scancel` the job; Slurm's answer (CANCELLED) reaches the store with the next sync."""
    proc = slurm_command(["scancel", job["slurm_id"]])
    if proc.returncode != 0:
        raise _refusal(proc, f"scancel {job['slurm_id']}")
    store.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", [job["id"]])
    store.add_event("job.cancel", f"run {job['run_id']}: scancel {job['slurm_id']}",
                    run_id=job["run_id"])
    return {**job, "cancel_requested": 1}


# -- reading Slurm's state ---------------------------------------------------------------------


@dataclass(frozen=True)
class SlurmJob:
    id: str
    state: str
    reason: str | None
    node: str | None
    elapsed_s: float | None


FORMAT = "%i|%T|%N|%M|%r"   # the reason last: %r may be a free-text description


def query_jobs() -> dict[str, SlurmJob]:
    """Every job of this user that slurmctld knows, finished ones included: one squeue."""
    user = pwd.getpwuid(os.getuid()).pw_name
    proc = slurm_command(["squeue", "--noheader", "--states=all", f"--user={user}",
                          f"--format={FORMAT}"])
    if proc.returncode != 0:
        line = _error_line(proc)
        raise SlurmUnreachable(f"squeue: {line}" if not _unreachable(proc.stderr or "")
                               else f"squeue: {UNREACHABLE} ({line})")
    found = {}
    for line in proc.stdout.splitlines():
        bits = line.strip().split("|", 4)
        if len(bits) != 5:
            continue
        job_id, state, node, elapsed, reason = bits
        found[job_id] = SlurmJob(job_id, _state(state),
                                 None if reason in ("None", "") else reason,
                                 None if node in ("", "(null)") else node,
                                 parse_elapsed(elapsed))
    return found


def _state(text: str) -> str:
    """A job state as squeue and sacct print it ("CANCELLED by 0", "RUNNING+"): the name."""
    return text.split()[0].rstrip("+")


def parse_elapsed(text: str) -> float | None:
    """squeue's %M: [days-][hours:]minutes:seconds."""
    days, _, clock = text.strip().rpartition("-")
    try:
        parts = [int(p) for p in clock.split(":")]
        seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
        return seconds + (int(days) * 86400 if days else 0)
    except ValueError:
        return None


def status_of(state: str) -> str:
    if state in QUEUED:
        return "queued"
    if state in RUNNING:
        return "running"
    return {"COMPLETED": "done", "CANCELLED": "cancelled"}.get(state, "failed")


def poll_due(store: Store, min_interval: float, now: float) -> bool:
    """Whether this caller is the one to ask Slurm now (one squeue per interval, whoever
    asks): claimed in one transaction."""
    with store.immediate():
        last = float(store.get_setting(POLLED_KEY) or 0.0)
        if now - last < min_interval:
            return False
        store.set_setting(POLLED_KEY, repr(now))
    return True


def sync(store: Store, *, min_interval: float | None = None, now: float | None = None) -> int:
    """Mirror Slurm's state onto the store's Slurm jobs; returns how many squeue calls were made
    (0 or 1). Nothing to do without an active Slurm job or on a read-only store."""
    if store.read_only or store.immutable:
        return 0
    active = queue.active_slurm_jobs(store)
    if not active:
        return 0
    now = time.time() if now is None else now
    if min_interval is None:
        try:
            min_interval = float(slurm_defaults().get("poll_seconds", 5))
        except CreamError:  # (a broken user config is reported where it is used)
            min_interval = 5.0
    if not poll_due(store, min_interval, now):
        return 0
    try:
        seen = query_jobs()
    except CreamError as e:  # unreachable, or Slurm gone from PATH: shown, nothing changed
        reason = UNREACHABLE if isinstance(e, SlurmUnreachable) and UNREACHABLE in str(e) \
            else e.line[:200]
        for job in active:
            queue.set_slurm_view(store, job["id"], slurm_state="UNKNOWN", slurm_reason=reason,
                                 polled_at=now)
        return 1
    missing = [j["slurm_id"] for j in active if j["slurm_id"] not in seen]
    if missing:  # purged from slurmctld's memory: accounting knows, where there is one
        seen.update(accounting(missing))
    for job in active:
        apply(store, job, seen.get(job["slurm_id"]), now)
    return 1


def accounting(job_ids: list[str]) -> dict[str, SlurmJob]:
    """How jobs no longer in squeue ended, from `sacct` (one call); {} without accounting
    (sacct needs slurmdbd) or when it does not answer."""
    try:
        proc = slurm_command(["sacct", "--noheader", "--parsable2", "--jobs",
                              ",".join(job_ids), "--format=JobID,State,NodeList,Elapsed"])
    except CreamError:
        return {}
    found = {}
    for line in proc.stdout.splitlines() if proc.returncode == 0 else []:
        bits = line.strip().split("|")
        if len(bits) == 4 and bits[0] in job_ids:  # (not its steps: 42.batch, 42.0)
            found[bits[0]] = SlurmJob(bits[0], _state(bits[1]), None,
                                      bits[2] or None, parse_elapsed(bits[3]))
    return found


def apply(store: Store, job: dict, seen: SlurmJob | None, now: float) -> None:
    """One job's new state, and its run's, from what squeue said (None: no longer listed)."""
    run = store.get_run(job["run_id"]) or {}
    if seen is None:  # purged from slurmctld's memory (MinJobAge): the run says how it ended
        ended = run.get("status") if run.get("status") in RUN_ENDED else None
        status = ended or "failed"
        error = None if status == "done" else run.get("error") or (
            f"Slurm job {job['slurm_id']} left the queue without a recorded end")
        _finish(store, job, status, error, {"slurm_state": "GONE"}, now)
        return
    status = status_of(seen.state)
    fields: dict[str, Any] = {"slurm_state": seen.state, "slurm_reason": seen.reason,
                              "node": seen.node, "elapsed_s": seen.elapsed_s, "polled_at": now}
    if status in ("queued", "running"):
        with store.atomic():
            if status == "running" and job["status"] != "running":
                fields["started_at"] = now
                if job["status"] == "queued":
                    fields["attempts"] = (job["attempts"] or 0) + 1
            queue.set_slurm_view(store, job["id"], status=status, **fields)
            # the engine marks its run cancelled on SIGTERM: a requeued job lives on
            if run.get("status") != status:
                store.execute("UPDATE runs SET status = ?, error = NULL, ended_at = NULL "
                              "WHERE id = ?", [status, job["run_id"]])
            if status != job["status"]:
                store.add_event(f"job.{status}", f"run {job['run_id']}: Slurm job "
                                f"{job['slurm_id']} {seen.state.lower()}"
                                + (f" on {seen.node}" if seen.node and status == "running"
                                   else f" ({seen.reason})" if seen.reason else ""),
                                run_id=job["run_id"])
        return
    error = None if status == "done" else run.get("error") if run.get("status") == status \
        else f"Slurm: {seen.state.lower()}" + (f" ({seen.reason})" if seen.reason else "")
    _finish(store, job, status, error, fields, now)


def _finish(store: Store, job: dict, status: str, error: str | None, fields: dict[str, Any],
            now: float) -> None:
    """An ended job (with what Slurm last said of it, `fields`) and its run."""
    state = fields["slurm_state"]
    with store.atomic():
        queue.set_slurm_view(store, job["id"], **{**fields, "status": status, "ended_at": now,
                                                  "polled_at": now})
        run = store.get_run(job["run_id"])
        if run and (run["status"] != status or status != "done"):
            store.set_run_status(job["run_id"], status, error=error)
        store.add_event(f"job.{status}",  # (the engine adds run.done itself)
                        f"run {job['run_id']}: Slurm job {job['slurm_id']} {state.lower()}",
                        run_id=job["run_id"])


def where(job: dict | None) -> str | None:
    """A job's place in Slurm as one short text: "slurm 42 pending (Priority)", "slurm 42 on
    node1 3m", "slurm 42 unknown (slurmctld unreachable)"; None for a local job."""
    if not job or job.get("executor") != "slurm":
        return None
    state = (job.get("slurm_state") or "?").lower()
    text = f"slurm {job['slurm_id']} {state}"
    if state == "unknown" or (job["status"] == "queued" and job.get("slurm_reason")):
        text += f" ({job.get('slurm_reason') or '?'})"
    if job.get("node") and job["status"] != "queued":
        text += f" on {job['node']}"
    return text
