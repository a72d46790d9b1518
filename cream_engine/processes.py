"""Per-process detail for the GPU view: user, command, host CPU and RSS. Light layer.

Read from Linux's /proc with the standard library only (psutil is not a dependency): `stat` for
the parent, the process group and the CPU time, `status` for the user and the resident memory,
`cmdline` for the command. Elsewhere (no /proc) there is nothing to read and every process is
simply absent from the answer, as is one that ended meanwhile: a process is a value or nothing,
never an exception.

CPU % needs two readings of a process's CPU time (utime + stime) some time apart, so a
`ProcessSampler` keeps the last reading per pid: each `read()` gives the CPU % since the one
before, or waits `window_s` itself for a process it has not seen (a one-shot `cream gpus`).
Like `top`, 100 % is one core busy.
"""

from __future__ import annotations

import os
import pwd
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
FORGET_S = 300.0     # a CPU reading of a pid not asked about for this long is dropped


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    pgid: int
    user: str                   # the real user's name (its uid when the name is unknown)
    command: str                # the command line, its program as a base name
    rss_mb: float | None        # resident host memory, MiB; None for a kernel thread
    cpu_percent: float | None   # since the previous reading (of one core); None on the first


@dataclass(frozen=True)
class _Stat:
    ppid: int
    pgid: int
    comm: str
    cpu_s: float      # utime + stime
    start: int        # start time in ticks since boot: tells a reused pid from the old one


def _read_stat(pid: int) -> _Stat | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split at
    # the last ")"; fields after it count from 3 (state) as in proc(5)
    head, _, tail = raw.rpartition(")")
    fields = tail.split()
    try:
        return _Stat(ppid=int(fields[1]), pgid=int(fields[2]), comm=head.partition("(")[2],
                     cpu_s=(int(fields[11]) + int(fields[12])) / TICKS, start=int(fields[19]))
    except (IndexError, ValueError):
        return None


@lru_cache(maxsize=256)
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:      # a uid with no name here (a container's user): the number
        return str(uid)


def _status(pid: int) -> tuple[str, float | None] | None:
    """(user, RSS in MiB) from /proc/<pid>/status."""
    try:
        lines = (PROC / str(pid) / "status").read_text().splitlines()
    except (OSError, ValueError):
        return None
    user, rss = None, None
    for line in lines:
        key, _, value = line.partition(":")
        if key == "Uid":
            user = _user_name(int(value.split()[0]))
        elif key == "VmRSS":
            rss = int(value.split()[0]) / 1024        # kB
    return (user, rss) if user is not None else None


def _command(pid: int, comm: str) -> str:
    try:
        argv = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        argv = []
    words = [a.decode(errors="replace") for a in argv if a]
    if not words:                 # a kernel thread or a zombie: its name, as ps shows it
        return f"[{comm}]"
    return " ".join([os.path.basename(words[0]) or words[0], *words[1:]])


class ProcessSampler:
    """Reads processes and keeps each one's last CPU time, for the CPU % of the next read."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[int, float, float]] = {}  # pid: (start, cpu s, monotonic)
        self._lock = threading.Lock()

    def read(self, pids: Iterable[int], window_s: float = 0.0) -> dict[int, ProcessInfo]:
        """{pid: ProcessInfo} of those still running. With `window_s`, a pid never read
        before is read twice that far apart, so that it has a CPU %."""
        wanted = sorted({int(p) for p in pids if int(p) > 0})
        with self._lock:
            unseen = [p for p in wanted if p not in self._last]
        if window_s > 0 and unseen:
            for pid in unseen:
                self._cpu_percent(pid, _read_stat(pid))
            time.sleep(window_s)
        out = {}
        for pid in wanted:
            stat = _read_stat(pid)
            status = _status(pid) if stat is not None else None
            if stat is None or status is None:    # ended meanwhile (or never was): skipped
                continue
            out[pid] = ProcessInfo(pid=pid, ppid=stat.ppid, pgid=stat.pgid, user=status[0],
                                   command=_command(pid, stat.comm), rss_mb=status[1],
                                   cpu_percent=self._cpu_percent(pid, stat))
        self._forget()
        return out

    def _cpu_percent(self, pid: int, stat: _Stat | None) -> float | None:
        if stat is None:
            return None
        now = time.monotonic()
        with self._lock:
            before = self._last.get(pid)
            self._last[pid] = (stat.start, stat.cpu_s, now)
        if before is None or before[0] != stat.start or now - before[2] <= 0:
            return None                  # first reading, or a new process with an old pid
        return max(100 * (stat.cpu_s - before[1]) / (now - before[2]), 0.0)

    def _forget(self) -> None:
        cutoff = time.monotonic() - FORGET_S
        with self._lock:
            for pid in [p for p, (_, _, at) in self._last.items() if at < cutoff]:
                del self._last[pid]


def read_processes(pids: Iterable[int], window_s: float = 0.2) -> dict[int, ProcessInfo]:
    """One look at some processes, CPU % measured over `window_s`."""
    return ProcessSampler().read(pids, window_s)
