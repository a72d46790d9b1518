"""The worker as a daemon: one per data home, started detached, stopped by SIGTERM, and known to
be alive or gone.

A worker holds an exclusive lock on `<home>/worker.lock` for its whole life, which the OS drops
when the process dies however it dies: a second worker started at the same moment finds the
lock taken and exits, and a reader asks the lock (not a pid that may have been reused) whether
a worker runs. `<home>/worker.pid` names the holder.

Light layer: standard library only.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from cream_engine.errors import WorkerError
from cream_engine.paths import make_home

PID_FILE = "worker.pid"
LOCK_FILE = "worker.lock"
LOG_FILE = "worker.log"
LOCK_WAIT_S = 2.0        # a starting worker retries the lock this long (readers take it briefly)
START_TIMEOUT_S = 10.0
STALE_S = 15.0           # a worker on another host whose heartbeat is older than this is gone


# -- processes --------------------------------------------------------------------------------


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


def _cmdline(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().decode(errors="replace").split("\0")
    except OSError:
        return None


def is_engine_of(pid: int, run_dir: str) -> bool:
    """Is `pid` our engine running `run_dir` (and not an unrelated process reusing the pid)?
    A run folder recorded on another machine matches by its run id."""
    argv = _cmdline(pid)
    if argv is None or "cream_engine" not in argv:
        return False
    return run_dir in argv or Path(run_dir).name in {Path(a).name for a in argv if a}


def liveness(worker: dict, home: Path, stale_s: float = STALE_S) -> str:
    """`running`, `stopped` or `gone`: a row that says running, whose process is dead. On this
    host the home's lock says which worker runs (a reused pid cannot fool it); a worker on
    another host sharing the store is gone when its heartbeat is stale."""
    if worker["status"] != "running":
        return worker["status"]
    if worker["host"] == socket.gethostname():
        return "running" if worker["pid"] == daemon_pid(home) else "gone"
    return "running" if worker["heartbeat_at"] > time.time() - stale_s else "gone"


# -- one worker per data home: the lock -----------------------------------------------------


def _lock_is_held(home: Path) -> bool:
    """Does some process hold this home's worker lock? (a shared lock taken for an instant:
    it fails while a worker holds the exclusive one)"""
    try:
        with open(home / LOCK_FILE, "rb") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False
    except FileNotFoundError:
        return False


def take_lock(home: Path, wait_s: float = LOCK_WAIT_S) -> IO | None:
    """The exclusive worker lock of `home`, held as long as the returned file stays open (and
    dropped by the OS when the process dies); None when another worker holds it."""
    make_home(home)
    handle = open(home / LOCK_FILE, "a+b")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                return None
            time.sleep(0.05)


def daemon_pid(home: Path) -> int | None:
    """The pid of this home's running worker (daemon or foreground), if any."""
    if not _lock_is_held(home):
        return None
    try:
        pid = int((home / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def start_daemon(home: Path, args: list[str]) -> tuple[int, bool]:
    """Start `python -m cream_engine.worker ARGS` detached from the terminal (it survives the
    SSH session; log: `<home>/worker.log`). Returns (pid, started): when another worker got the
    home first, (its pid, False)."""
    make_home(home)
    with open(home / LOG_FILE, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cream_engine.worker", *args],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.time() + START_TIMEOUT_S + LOCK_WAIT_S
    while time.time() < deadline:
        pid = daemon_pid(home)
        if pid == proc.pid:
            return pid, True
        if proc.poll() is not None:
            if pid is not None:  # another worker took the home first
                return pid, False
            raise WorkerError(f"the worker exited at once (code {proc.returncode}); "
                              f"see {home / LOG_FILE}")
        time.sleep(0.05)
    raise WorkerError(f"the worker did not start within {START_TIMEOUT_S:.0f}s; "
                      f"see {home / LOG_FILE}")


def stop_daemon(home: Path, pid: int, timeout: float = 60.0) -> bool:
    """SIGTERM to the worker (it stops its jobs and queues them again); True once it is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.time() + timeout
    while daemon_pid(home) == pid and time.time() < deadline:
        time.sleep(0.1)
    return daemon_pid(home) != pid
