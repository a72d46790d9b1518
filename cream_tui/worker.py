"""The local GPU worker: claims queued jobs, assigns GPUs, spawns the engine, watches it.

One loop, about once a second:
1. heartbeat (the worker's row and each running job's);
2. sample every GPU into `gpu_samples` (with retention), noting which job owns each process;
3. act on cancel requests: SIGTERM to the job's process group, SIGKILL after the grace period;
4. reap ended jobs (exit code → done / failed / cancelled, an event, the notify command);
5. flag stalled runs (no new metric or stage for `stall_minutes`);
6. claim and start jobs while GPUs (or, for jobs that ask for no GPU, the CPU slots) allow.

A job runs `python -m cream_engine run RUN_DIR` in its own process group with
`CUDA_DEVICE_ORDER=PCI_BUS_ID` and `CUDA_VISIBLE_DEVICES=<GPU UUIDs>`, its stdout and stderr in
`runs/<run-id>/logs/job.log`. If the worker dies, the engine goes on; a restarted worker adopts
a job whose process is still alive and re-queues one whose process is gone (the engine resumes
it from its last finished stage). Never imports torch.
"""

from __future__ import annotations

import argparse
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

from cream_engine import paths, queue
from cream_engine.store import Store, open_store
from cream_tui.gpu import GpuInfo, read_gpus

PID_FILE = "worker.pid"
LOG_FILE = "worker.log"


@dataclass
class WorkerOptions:
    home: Path
    notify: str | None = None          # shell command; gets each alert as JSON on stdin
    poll_s: float = 1.0
    grace_s: float = 10.0              # SIGTERM → SIGKILL
    stall_minutes: float = 30.0
    stale_s: float = 15.0              # a worker heartbeat older than this is dead
    max_utilization: float = 50.0      # a GPU busier than this (%) is not free
    gpu_retention_s: float = 24 * 3600
    max_jobs: int = 0                  # 0: as many as the GPUs (and CPU slots) allow
    cpu_slots: int = 1                 # CPU jobs at once; each gets cores / cpu_slots threads
    once: bool = False                 # exit when the queue is empty and nothing runs (tests)


@dataclass
class Running:
    job: dict
    proc: subprocess.Popen | None      # None for a job adopted from a dead worker
    pid: int
    gpu_uuids: list[str] = field(default_factory=list)
    term_sent_at: float | None = None


class Worker:
    def __init__(self, opts: WorkerOptions):
        self.opts = opts
        self.store: Store = open_store(opts.home)  # type: ignore[assignment]
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
        now = time.time()
        self.store.execute("INSERT OR REPLACE INTO workers (id, pid, host, status, started_at, "
                           "heartbeat_at, log_path) VALUES (?,?,?,?,?,?,?)",
                           [self.id, os.getpid(), socket.gethostname(), "running", now, now,
                            str(self.opts.home / LOG_FILE)])
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
        self.store.execute("UPDATE workers SET status = 'stopped', heartbeat_at = ? WHERE id = ?",
                           [time.time(), self.id])
        self._notifier.put(None)
        self._notify_thread.join(timeout=65)  # the last alerts still go out
        log(f"worker {self.id} stopped")

    def recover(self) -> None:
        """Jobs left 'running' by a dead worker: adopt the live ones, re-queue the others."""
        self._last_recover = time.time()
        live_workers = {w["id"] for w in self.store.query(
            "SELECT * FROM workers WHERE status = 'running'") if self._alive(w)}
        for job in self.store.query("SELECT * FROM jobs WHERE status = 'running'"):
            if job["worker"] in live_workers or job["id"] in self.running:
                continue
            run_dir = self.store.get_run(job["run_id"])["run_dir"]
            if queue.pid_alive(job["pid"]) and _is_engine_of(job["pid"], run_dir):
                self.store.execute("UPDATE jobs SET worker = ?, heartbeat_at = ? WHERE id = ?",
                                   [self.id, time.time(), job["id"]])
                uuids = [u for u in (job["gpu_uuids"] or "").split(",") if u]
                self.running[job["id"]] = Running({**job, "worker": self.id}, None,
                                                  job["pid"], uuids)
                log(f"adopted job {job['id']} (run {job['run_id']}, pid {job['pid']})")
            else:
                queue.requeue(self.store, job, "its worker died; re-queued to resume")
                log(f"re-queued job {job['id']} (run {job['run_id']}): its process is gone")

    def _alive(self, w: dict) -> bool:
        """A worker is alive if it is us, or its pid lives (same host), or (another host) its
        heartbeat is fresh."""
        if w["id"] == self.id:
            return True
        if w["host"] == socket.gethostname():
            return queue.pid_alive(w["pid"])
        return w["heartbeat_at"] > time.time() - self.opts.stale_s

    # -- one tick ------------------------------------------------------------------------

    def tick(self) -> None:
        now = time.time()
        self.store.execute("UPDATE workers SET heartbeat_at = ? WHERE id = ?", [now, self.id])
        if self.running:
            self.store.execute(
                f"UPDATE jobs SET heartbeat_at = ? WHERE id IN "
                f"({','.join('?' * len(self.running))})", [now, *self.running])
        if now - self._last_recover > 10:  # another worker may have died meanwhile
            self.recover()
        report = read_gpus()
        self._sample(report)
        self._cancels()
        self._reap()
        self._stalls()
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
        if not self.running:
            return
        flagged = {j["id"] for j in self.store.query(
            f"SELECT id FROM jobs WHERE cancel_requested = 1 AND id IN "
            f"({','.join('?' * len(self.running))})", list(self.running))}
        now = time.time()
        for job_id in flagged:
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
            code = r.proc.poll() if r.proc else (None if queue.pid_alive(r.pid) else -1)
            if code is None:
                continue
            del self.running[job_id]
            if requeue_on_exit and not r.job.get("cancel_requested"):
                queue.requeue(self.store, r.job, "worker stopped; re-queued to resume")
                continue
            run = self.store.get_run(r.job["run_id"])
            if r.job.get("cancel_requested"):
                status = "cancelled"
            elif r.proc is None:  # adopted: the engine recorded how the run ended
                status = run["status"] if run["status"] in queue.JOB_ENDED else "failed"
            else:
                status = "done" if code == 0 else "failed"
            error = None if status == "done" else (run["error"] or f"exit code {code}")
            queue.finish_job(self.store, job_id, status, code, error)
            if status == "cancelled" and run["status"] not in queue.JOB_ENDED:
                self.store.set_run_status(r.job["run_id"], "cancelled", error="cancelled")
            log(f"job {job_id} (run {r.job['run_id']}) {status}, exit code {code}")
            kind = {"done": "run.done", "failed": "run.failed"}.get(status, "run.cancelled")
            self.alert(kind, r.job["run_id"], {"status": status, "exit_code": code,
                                               "error": error if status != "done" else None})

    def _stalls(self) -> None:
        limit = self.opts.stall_minutes * 60
        for r in self.running.values():
            run_id = r.job["run_id"]
            last = self.store.query(
                "SELECT MAX(t) AS t FROM (SELECT MAX(time) AS t FROM metrics WHERE run_id = :r "
                "UNION ALL SELECT MAX(MAX(started_at), COALESCE(MAX(ended_at), 0)) FROM stages "
                "WHERE run_id = :r UNION ALL SELECT started_at FROM jobs WHERE id = :j)",
                {"r": run_id, "j": r.job["id"]})[0]["t"] or 0
            notified = self.store.query("SELECT stall_notified_at FROM jobs WHERE id = ?",
                                        [r.job["id"]])[0]["stall_notified_at"]
            if time.time() - last > limit and (notified is None or notified < last):
                self.store.execute("UPDATE jobs SET stall_notified_at = ? WHERE id = ?",
                                   [time.time(), r.job["id"]])
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
        return bool(self.store.query("SELECT 1 FROM jobs WHERE status = 'queued' LIMIT 1")) \
            and self.store.get_setting(queue.DRAIN_KEY) != "1"

    def _start_jobs(self, gpus: list[GpuInfo]) -> None:
        while not self.stopping:
            job = queue.claim_next_job(self.store, self.id, lambda j: self._fits(j, gpus))
            if job is None:
                return
            need = queue.job_gpus(job, len(gpus))
            chosen = sorted(self._free_gpus(gpus, job["min_free_mem_gb"] * 1024),
                            key=lambda g: (-(g.memory_free_mb or 0), g.utilization or 0))[:need]
            self._spawn(job, [g.uuid for g in chosen])

    def _spawn(self, job: dict, uuids: list[str]) -> None:
        run = self.store.get_run(job["run_id"])
        run_dir = Path(run["run_dir"])
        logs = paths.logs_dir(run_dir)
        logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
               "CUDA_VISIBLE_DEVICES": ",".join(uuids), "CREAM_HOME": str(self.opts.home),
               "PYTHONUNBUFFERED": "1"}
        if not uuids and self.opts.cpu_slots > 1 and "OMP_NUM_THREADS" not in os.environ:
            # CPU jobs side by side share the cores instead of each taking all of them
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.opts.cpu_slots))
        with open(logs / "job.log", "ab") as out:
            out.write(f"\n== job {job['id']} attempt {job['attempts'] + 1} on {self.id} "
                      f"at {time.strftime('%Y-%m-%d %H:%M:%S')} GPUs: "
                      f"{','.join(uuids) or 'none (CPU)'} ==\n".encode())
            out.flush()
            proc = subprocess.Popen([sys.executable, "-m", "cream_engine", "run", str(run_dir)],
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.store.execute("UPDATE jobs SET pid = ?, gpu_uuids = ? WHERE id = ?",
                           [proc.pid, ",".join(uuids), job["id"]])
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
                subprocess.run(self.opts.notify, shell=True, input=json.dumps(event),
                               text=True, timeout=60, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            except (OSError, subprocess.SubprocessError) as e:
                log(f"notify command failed: {e}")


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def _is_engine_of(pid: int, run_dir: str) -> bool:
    """Is `pid` our engine running `run_dir` (and not an unrelated process reusing the pid)?"""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().decode(errors="replace").split("\0")
    except OSError:
        return False
    return "cream_engine" in argv and run_dir in argv


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", file=sys.stderr, flush=True)


# -- the daemon ---------------------------------------------------------------------------


def pid_file(home: Path) -> Path:
    return home / PID_FILE


def daemon_pid(home: Path) -> int | None:
    """The pid of this home's running daemon, if any."""
    try:
        pid = int(pid_file(home).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if queue.pid_alive(pid) else None


def start_daemon(home: Path, args: list[str]) -> int:
    """Start `python -m cream_tui.worker` detached from the terminal (it survives the SSH
    session); returns its pid. Its log is `<home>/worker.log`."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOG_FILE, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cream_tui.worker", "--home", str(home),
                                 "--pid-file", *args], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 10
    while time.time() < deadline and daemon_pid(home) != proc.pid:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited at once (code {proc.returncode}); "
                               f"see {home / LOG_FILE}")
        time.sleep(0.05)
    return proc.pid


def stop_daemon(home: Path, pid: int, timeout: float = 60.0) -> bool:
    """SIGTERM to the daemon (it stops its jobs and queues them again); True once it is gone."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + timeout
    while daemon_pid(home) == pid and time.time() < deadline:
        time.sleep(0.1)
    return daemon_pid(home) != pid


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cream_tui.worker")
    ap.add_argument("--home", default=None)
    ap.add_argument("--notify", default=None)
    ap.add_argument("--grace", type=float, default=10.0)
    ap.add_argument("--stall-minutes", type=float, default=30.0)
    ap.add_argument("--poll", type=float, default=1.0)
    ap.add_argument("--max-jobs", type=int, default=0)
    ap.add_argument("--cpu-slots", type=int, default=1)
    ap.add_argument("--once", action="store_true")
    ap.add_argument("--pid-file", action="store_true", help="write <home>/worker.pid")
    a = ap.parse_args(argv)
    home = paths.data_home(a.home)
    opts = WorkerOptions(home=home, notify=a.notify, grace_s=a.grace, poll_s=a.poll,
                         stall_minutes=a.stall_minutes, max_jobs=a.max_jobs, once=a.once,
                         cpu_slots=max(1, a.cpu_slots))
    if a.pid_file:
        home.mkdir(parents=True, exist_ok=True)
        tmp = pid_file(home).with_suffix(".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.replace(pid_file(home))
    try:
        return Worker(opts).run()
    finally:
        if a.pid_file and daemon_pid(home) in (None, os.getpid()):
            pid_file(home).unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
