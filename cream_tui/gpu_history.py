"""GPU readings for the dashboard: the worker's samples in the store (latest per GPU, with a
short history), else a live NVML reading of our own, else the plain reason there is none.

The worker samples every GPU about once a second while it runs. When it does not (no worker,
or it stopped a while ago) the dashboard reads NVML itself, at most every few seconds. Readings
are values or None ("N/A"); nothing here raises for a missing GPU.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cream_engine.store import Store

HISTORY = 240           # samples kept per GPU (about four minutes at the worker's pace)
HISTORY_S = 600.0       # how far back the first read looks
FRESH_S = 30.0          # samples older than this: the worker is not sampling, read live
LIVE_EVERY_S = 5.0      # our own NVML reading, at most this often
PROC_DETAILS = ("sm_percent", "user", "command", "cpu_percent", "rss_mb")  # ProcRow's tail


@dataclass(frozen=True)
class ProcRow:
    """A process on a GPU. The fields after `run_name` are optional, in the order a remote
    feed may send them (`ProcRow(*fields)`); None where nothing says ("—")."""
    pid: int
    used_memory_mb: float | None
    run_id: str | None
    run_name: str | None
    sm_percent: float | None = None
    user: str | None = None
    command: str | None = None
    cpu_percent: float | None = None
    rss_mb: float | None = None


@dataclass(frozen=True)
class GpuRow:
    index: int
    uuid: str
    name: str
    utilization: float | None
    memory_used_mb: float | None
    memory_total_mb: float | None
    temperature_c: float | None
    power_w: float | None
    age_s: float | None                       # how old the reading is
    util_history: tuple[float | None, ...]
    mem_history: tuple[float | None, ...]     # percent of the board's memory
    processes: tuple[ProcRow, ...]

    @property
    def memory_percent(self) -> float | None:
        if self.memory_used_mb is None or not self.memory_total_mb:
            return None
        return 100 * self.memory_used_mb / self.memory_total_mb


@dataclass(frozen=True)
class GpuState:
    gpus: tuple[GpuRow, ...] = ()
    reason: str = ""          # why there are none; empty when there are some
    live: bool = False        # read by the dashboard itself rather than from the worker


def _mem_pct(row: dict) -> float | None:
    used, total = row.get("memory_used_mb"), row.get("memory_total_mb")
    return None if used is None or not total else 100 * used / total


class GpuHistory:
    """Latest sample and history per GPU uuid, read incrementally (rows above the last id)."""

    def __init__(self, reader: Callable[[], Any]):
        self.reader = reader
        self.last_id = -1
        self.latest: dict[str, dict] = {}
        self.util: dict[str, deque] = {}
        self.mem: dict[str, deque] = {}
        self._live: tuple[float, Any] | None = None

    def fetch(self, store: Store) -> None:
        top = store.last_gpu_sample_id()
        if top <= self.last_id:
            return
        rows = store.gpu_samples(self.last_id, top, HISTORY_S)
        self.last_id = top
        for r in rows:
            uuid = r["uuid"]
            self.latest[uuid] = r
            self.util.setdefault(uuid, deque(maxlen=HISTORY)).append(r["utilization"])
            self.mem.setdefault(uuid, deque(maxlen=HISTORY)).append(_mem_pct(r))

    def state(self, store: Store | None, now: float, run_names: dict[str, str],
              job_pids: dict[int, str]) -> GpuState:
        if store is not None:
            self.fetch(store)
        newest = max((r["time"] for r in self.latest.values()), default=None)
        if newest is not None and now - newest <= FRESH_S:
            rows = sorted((r for r in self.latest.values() if newest - r["time"] <= FRESH_S),
                          key=lambda r: r["gpu_index"])
            return GpuState(tuple(self._row(r, now, run_names, job_pids) for r in rows))
        report, fresh = self._read_live()
        if not report.gpus:
            return GpuState(reason=report.reason or "no GPU on this machine")
        rows = []
        for s in report.samples():
            if fresh:
                self.util.setdefault(s["uuid"], deque(maxlen=HISTORY)).append(s["utilization"])
                self.mem.setdefault(s["uuid"], deque(maxlen=HISTORY)).append(_mem_pct(s))
            rows.append(self._row({**s, "time": report.time}, now, run_names, job_pids))
        return GpuState(tuple(rows), live=True)

    def _read_live(self) -> tuple[Any, bool]:
        """(report, whether it is a new reading)."""
        mono = time.monotonic()
        if self._live is None or mono - self._live[0] >= LIVE_EVERY_S:
            self._live = (mono, self.reader())
            return self._live[1], True
        return self._live[1], False

    def _row(self, r: dict, now: float, run_names: dict[str, str],
             job_pids: dict[int, str]) -> GpuRow:
        procs = r.get("processes")
        if isinstance(procs, str):
            try:
                procs = json.loads(procs)
            except ValueError:
                procs = []
        rows = []
        for p in procs or []:
            run_id = p.get("run_id") or job_pids.get(p.get("pid"))
            rows.append(ProcRow(int(p.get("pid") or 0), p.get("used_memory_mb"), run_id,
                                run_names.get(run_id) if run_id else None,
                                *(p.get(k) for k in PROC_DETAILS)))
        uuid = r["uuid"]
        return GpuRow(index=r["gpu_index"], uuid=uuid, name=r.get("name") or "GPU",
                      utilization=r.get("utilization"), memory_used_mb=r.get("memory_used_mb"),
                      memory_total_mb=r.get("memory_total_mb"),
                      temperature_c=r.get("temperature_c"), power_w=r.get("power_w"),
                      age_s=max(now - r["time"], 0.0) if r.get("time") else None,
                      util_history=tuple(self.util.get(uuid, ())),
                      mem_history=tuple(self.mem.get(uuid, ())), processes=tuple(rows))
