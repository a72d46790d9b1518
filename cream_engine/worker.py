"""The local GPU worker: claims queued jobs, assigns GPUs, spawns the engine, watches it.

One loop, about once a second:
1. heartbeat (the worker's row and each running job's);
2. sample every GPU into `gpu_samples` (with retention), noting which job owns each process;
3. act on cancel requests: SIGTERM to the job's process group, SIGKILL after the grace period;
4. reap ended jobs (exit code → done / failed / cancelled, an event, the notify command);
5. flag stalled runs (no new metric or stage for `stall_minutes`);
6. claim and start jobs while GPUs (or, for jobs that ask for no GPU, the CPU slots) allow;
   a job that cannot fit the GPUs it would get fails with exit 3 and the reason, nothing
   started (admission.py asks `cream plan`'s question).

A job runs `python -m cream_engine run RUN_DIR` in its own process group with
`CUDA_DEVICE_ORDER=PCI_BUS_ID` and `CUDA_VISIBLE_DEVICES=<GPU UUIDs>`, its stdout and stderr in
`runs/<run-id>/logs/job.log`. If the worker dies, the engine goes on; a restarted worker adopts
a job whose process is still alive and re-queues one whose process is gone (the engine resumes
it from its last finished stage).

One worker per data home (`daemon.py`: the lock, the pid file, starting and stopping); a
worker whose process is gone (SIGKILL, a reboot) is reported as gone, and the next worker
adopts or re-queues its jobs. A home it may not write is refused (exit 2); a full disk stops
it with one line (exit 1), the traceback in `worker.log`, its jobs left for the next worker.

Light layer: standard library + the store; never imports torch.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue
from typing import Any

from cream_engine import executors, paths, queue
from cream_engine.admission import job_refusal, note_refusal
from cream_engine.daemon import (
    LOG_FILE,
    PID_FILE,
    daemon_pid,
    is_engine_of,
    liveness,
    pid_alive,
    take_lock,
)
from cream_engine.errors import EXIT_NO_GPU, EXIT_USAGE, CreamError, disk_error
from cream_engine.files import append_traceback, write_atomic
from cream_engine.gpu import GpuInfo, read_gpus
from cream_engine.paths import require_writable
from cream_engine.store import RUN_ENDED, Store
from cream_engine.worker_options import WorkerOptions  # (the CLI imports it from here)


@dataclass
class Running:
    job: dict
    proc: subprocess.Popen | None      # None for a job adopted from a dead worker
    pid: int
    gpu_uuids: list[str] = field(default_factory=list)
    term_sent_at: float | None = None


class Worker:
    def __init__(self, opts: WorkerOptions, store: Store):
        self.opts = opts
        self.store = store
        self.id = f"{socket.gethostname()}:{os.getpid()}"
        self.running: dict[int, Running] = {}
        self.stopping = False
        self._last_prune = 0.0
        self._last_recover = 0.0
        self._notifier: Queue[dict | None] = Queue()
        self._notify_thread = threading.Thread(target=self._notify_loop, daemon=True)
        self._notify_thread.start()

    # -- lifecycle -----------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        queue.register_worker(self.store, self.id, os.getpid(), socket.gethostname(),
                              str(self.opts.home / LOG_FILE))
        gpus = read_gpus()
        log(f"worker {self.id} started on {self.opts.home} "
            f"({len(gpus.gpus)} GPU(s)" + (f"; {gpus.reason}" if not gpus.gpus else "") + ")")
        self.recover()
        while not self.stopping:
            self.tick()
            if self.opts.once and not self.running and not self._startable():
                break
            time.sleep(self.opts.poll_s)
        self.shutdown()
        return 0

    def _on_stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def shutdown(self) -> None:
        """Stop: running jobs get SIGTERM (then SIGKILL) and go back to the queue to resume."""
        for r in list(self.running.values()):
            self._signal(r, signal.SIGTERM)
        deadline = time.time() + self.opts.grace_s
        while self.running and time.time() < deadline:
            self._reap(requeue_on_exit=True)
            time.sleep(0.2)
        for r in list(self.running.values()):
            self._signal(r, signal.SIGKILL)
        time.sleep(0.2)
        self._reap(requeue_on_exit=True)
        queue.heartbeat(self.store, self.id, [])
        queue.set_worker_status(self.store, self.id, "stopped")
        self._notifier.put(None)
        self._notify_thread.join(timeout=65)  # the last alerts still go out
        log(f"worker {self.id} stopped")

    def recover(self) -> None:
        """Workers that died without stopping are marked gone; the jobs they left running are
        adopted when their engine still runs, else re-queued (the engine resumes the run)."""
        self._last_recover = time.time()
        live = set()
        for w in queue.workers(self.store, status="running"):
            if w["id"] == self.id or liveness(w, self.opts.home, self.opts.stale_s) == "running":
                live.add(w["id"])
            else:
                queue.set_worker_status(self.store, w["id"], "gone")
                log(f"worker {w['id']} is gone (its process no longer runs)")
        for job in queue.running_jobs(self.store):
            if job["worker"] in live or job["id"] in self.running:
                continue
            run_dir = str(self._run_dir(job["run_id"]))
            if pid_alive(job["pid"]) and is_engine_of(job["pid"], run_dir):
                queue.adopt_job(self.store, job["id"], self.id)
                uuids = [u for u in (job["gpu_uuids"] or "").split(",") if u]
                self.running[job["id"]] = Running({**job, "worker": self.id}, None,
                                                  job["pid"], uuids)
                log(f"adopted job {job['id']} (run {job['run_id']}, pid {job['pid']})")
            else:
                queue.requeue(self.store, job, "its worker died; re-queued to resume")
                log(f"re-queued job {job['id']} (run {job['run_id']}): its process is gone")

    def _run_dir(self, run_id: str) -> Path:
        return paths.run_dir(self.opts.home, run_id)

    # -- one tick ------------------------------------------------------------------------

    def tick(self) -> None:
        queue.heartbeat(self.store, self.id, list(self.running))
        if time.time() - self._last_recover > 10:  # another worker may have died meanwhile
            self.recover()
        report = read_gpus()
        self._sample(report)
        self._cancels()
        self._reap()
        self._stalls()
        executors.sync(self.store)  # (runs on Slurm: this home's dashboards may all be closed)
        self._start_jobs(report.gpus)

    def _sample(self, report: Any) -> None:
        if not report.gpus:
            return
        pgids = {r.pid: r.job for r in self.running.values()}
        samples = report.samples()
        for s in samples:
            for p in s["processes"]:
                job = pgids.get(_pgid(p["pid"]))
                if job:
                    p["job_id"], p["run_id"] = job["id"], job["run_id"]
        self.store.add_gpu_samples(samples)
        if time.time() - self._last_prune > 60:
            self.store.prune_gpu_samples(self.opts.gpu_retention_s)
            self._last_prune = time.time()

    def _cancels(self) -> None:
        now = time.time()
        for job_id in queue.cancel_requested(self.store, list(self.running)):
            r = self.running[job_id]
            r.job["cancel_requested"] = 1
            if r.term_sent_at is None:
                log(f"cancel job {job_id}: SIGTERM to process group {r.pid}")
                self._signal(r, signal.SIGTERM)
                r.term_sent_at = now
            elif now - r.term_sent_at > self.opts.grace_s:
                log(f"cancel job {job_id}: grace period over, SIGKILL")
                self._signal(r, signal.SIGKILL)

    def _signal(self, r: Running, sig: int) -> None:
        try:
            os.killpg(r.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _reap(self, requeue_on_exit: bool = False) -> None:
        for job_id, r in list(self.running.items()):
            code = r.proc.poll() if r.proc else (None if pid_alive(r.pid) else -1)
            if code is None:
                continue
            del self.running[job_id]
            # stopped by the worker's own shutdown: back to the queue, unless it finished
            if requeue_on_exit and not r.job.get("cancel_requested") and code != 0 and \
                    queue.requeue(self.store, r.job, "worker stopped; re-queued to resume"):
                continue
            run = self.store.get_run(r.job["run_id"])
            if r.job.get("cancel_requested"):
                status = "cancelled"
            elif r.proc is None:  # adopted: the engine recorded how the run ended
                status = run["status"] if run["status"] in RUN_ENDED else "failed"
            else:
                status = "done" if code == 0 else "failed"
            error = None if status == "done" else (run["error"] or f"exit code {code}")
            queue.finish_job(self.store, job_id, status, code, error)
            if status == "cancelled" and run["status"] not in RUN_ENDED:
                self.store.set_run_status(r.job["run_id"], "cancelled", error="cancelled")
            log(f"job {job_id} (run {r.job['run_id']}) {status}, exit code {code}")
            kind = {"done": "run.done", "failed": "run.failed"}.get(status, "run.cancelled")
            self.alert(kind, r.job["run_id"], {"status": status, "exit_code": code,
                                               "error": error if status != "done" else None})

    def _stalls(self) -> None:
        limit = self.opts.stall_minutes * 60
        for r in self.running.values():
            run_id, job_id = r.job["run_id"], r.job["id"]
            last = queue.last_activity(self.store, run_id, job_id)
            notified = queue.stall_notified_at(self.store, job_id)
            if time.time() - last > limit and (notified is None or notified < last):
                queue.mark_stall_notified(self.store, job_id)
                minutes = (time.time() - last) / 60
                self.alert("run.stalled", run_id, {"idle_minutes": round(minutes, 1)})

    # -- starting jobs -------------------------------------------------------------------

    def _free_gpus(self, gpus: list[GpuInfo], min_free_mb: float) -> list[GpuInfo]:
        taken = {u for r in self.running.values() for u in r.gpu_uuids}
        return [g for g in gpus if g.uuid not in taken
                and (g.memory_free_mb is None or g.memory_free_mb >= min_free_mb)
                and (g.utilization is None or g.utilization <= self.opts.max_utilization)]

    def _fits(self, job: dict, gpus: list[GpuInfo]) -> bool:
        if self.opts.max_jobs and len(self.running) >= self.opts.max_jobs:
            return False
        need = queue.job_gpus(job, len(gpus))
        if need == 0:  # the CPU: `cpu_slots` jobs at a time
            return sum(1 for r in self.running.values() if not r.gpu_uuids) < \
                self.opts.cpu_slots
        return len(self._free_gpus(gpus, job["min_free_mem_gb"] * 1024)) >= need

    def _startable(self) -> bool:
        return queue.has_queued(self.store) and not queue.drained(self.store)

    def _start_jobs(self, gpus: list[GpuInfo]) -> None:
        while not self.stopping:
            job = queue.claim_next_job(self.store, self.id, lambda j: self._fits(j, gpus))
            if job is None:
                return
            need = queue.job_gpus(job, len(gpus))
            chosen = sorted(self._free_gpus(gpus, job["min_free_mem_gb"] * 1024),
                            key=lambda g: (-(g.memory_free_mb or 0), g.utilization or 0))[:need]
            reason = job_refusal(self._run_dir(job["run_id"]), chosen)
            if reason:
                self._refuse(job, reason)
            else:
                self._spawn(job, [g.uuid for g in chosen])

    def _refuse(self, job: dict, reason: str) -> None:
        """A job that cannot fit what it would get (admission.py): failed with exit 3 and the
        reason, its engine never started."""
        note_refusal(self._run_dir(job["run_id"]), job, self.id, reason)
        queue.finish_job(self.store, job["id"], "failed", EXIT_NO_GPU, reason)
        log(f"refused job {job['id']} (run {job['run_id']}): {reason}")
        self.alert("run.failed", job["run_id"], {"status": "failed", "exit_code": EXIT_NO_GPU,
                                                 "error": reason})

    def _spawn(self, job: dict, uuids: list[str]) -> None:
        run_dir = self._run_dir(job["run_id"])
        log_path = paths.job_log(run_dir)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
               "CUDA_VISIBLE_DEVICES": ",".join(uuids), "CREAM_HOME": str(self.opts.home),
               "PYTHONUNBUFFERED": "1"}
        if not uuids and self.opts.cpu_slots > 1 and "OMP_NUM_THREADS" not in os.environ:
            # CPU jobs side by side share the cores instead of each taking all of them
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.opts.cpu_slots))
        with open(log_path, "ab") as out:
            out.write(f"\n== job {job['id']} attempt {job['attempts'] + 1} on {self.id} "
                      f"at {time.strftime('%Y-%m-%d %H:%M:%S')} GPUs: "
                      f"{','.join(uuids) or 'none (CPU)'} ==\n".encode())
            out.flush()
            proc = subprocess.Popen([sys.executable, "-m", "cream_engine", "run", str(run_dir)],
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)
        queue.job_started(self.store, job["id"], proc.pid, uuids)
        self.running[job["id"]] = Running(job, proc, proc.pid, uuids)
        log(f"started job {job['id']} (run {job['run_id']}, pid {proc.pid}, "
            f"GPUs {','.join(uuids) or 'CPU'})")

    # -- alerts --------------------------------------------------------------------------

    def alert(self, kind: str, run_id: str, data: dict) -> None:
        run = self.store.get_run(run_id) or {}
        event = {"kind": kind, "run_id": run_id, "name": run.get("name"),
                 "method": run.get("method"), "time": time.time(), **data}
        message = f"run {run_id} " + kind.split(".")[-1]
        self.store.add_event(kind, message, run_id=run_id, data=event)
        if self.opts.notify:
            self._notifier.put(event)

    def _notify_loop(self) -> None:
        """Run the notify command for each alert, one at a time and in order, off the loop."""
        while True:
            event = self._notifier.get()
            if event is None:
                return
            try:
                subprocess.run(self.opts.notify, shell=True, input=json.dumps(event), check=False,
                               text=True, timeout=60, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            except (OSError, subprocess.SubprocessError) as e:
                log(f"notify command failed: {e}")


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def log(message: str) -> None:
    try:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", file=sys.stderr, flush=True)
    except OSError:  # worker.log on a full disk: the line is lost, the worker goes on
        pass


def main(argv: list[str] | None = None) -> int:
    """`python -m cream_engine.worker`: one worker in this process (what `cream worker run`
    and the daemon run)."""
    paths.set_home_umask()  # the jobs it spawns inherit it
    opts = WorkerOptions.from_args(argv)
    try:
        return _serve(opts)
    except Exception as e:  # expected, or a full disk… (exit 1, the traceback in worker.log)
        found = e if isinstance(e, CreamError) else disk_error(e, opts.home)
        if found is None:
            raise
        log(f"cream: error: {found.line}")
        if found is not e:
            append_traceback(opts.home / LOG_FILE, "worker")
        return found.exit_code


def _serve(opts: WorkerOptions) -> int:
    home = opts.home
    require_writable(home)
    lock = take_lock(home)
    if lock is None:
        pid = daemon_pid(home)
        log(f"cream: error: a worker already runs for {home}" + (f" (pid {pid})" if pid else "")
            + "; not starting another")
        return EXIT_USAGE
    try:
        store = Store.open(home)
        assert store is not None
        write_atomic(home / PID_FILE, str(os.getpid()))  # a worker that could open its store
        return Worker(opts, store).run()
    finally:
        try:
            if int((home / PID_FILE).read_text()) == os.getpid():
                (home / PID_FILE).unlink()
        except (OSError, ValueError):
            pass
        lock.close()


if __name__ == "__main__":
    sys.exit(main())
