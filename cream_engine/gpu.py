"""GPU readings through NVML (the `nvidia-ml-py` package, imported as `pynvml`).

"No GPU" is a state, not an exception: `read_gpus()` returns a `GpuReport` whose `gpus` list is
empty and whose `reason` says why. A reading NVML cannot give (power on some boards, processes
in a container) is None, shown as "N/A", never an error. The layer knows nothing of the UI.

Each process on a GPU carries what NVML says of it (pid, GPU memory, %SM where the board samples
it) and what the host says (user, command, CPU %, RSS: `cream_engine.processes`, read from
/proc; absent for a pid this machine cannot see, as in a container).

Tests and machines without a GPU can point `CREAM_FAKE_GPUS` at a JSON file (a list of GPU
dicts with the fields below; "processes" a list of `GpuProcess` dicts) to exercise the same
code paths that real readings take. A fake process's host details are read from /proc like a
real one's (a test can list its own pid), except those the file gives: fixed values keep a
screenshot the same on every machine.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cream_engine.processes import ProcessSampler

SM_WINDOW_S = 5.0    # %SM: NVML's per-process samples of the last few seconds, the newest
HOST_FIELDS = ("user", "command", "cpu_percent", "rss_mb")
_HOST = ProcessSampler()  # one per process: successive readings give each other CPU %


@dataclass
class GpuProcess:
    pid: int
    used_memory_mb: float | None = None
    sm_percent: float | None = None     # share of the SMs it kept busy, where NVML samples it
    user: str | None = None             # host details: None where /proc cannot tell
    command: str | None = None
    cpu_percent: float | None = None    # of one core, as `top` counts it
    rss_mb: float | None = None


@dataclass
class GpuInfo:
    index: int
    uuid: str
    name: str
    utilization: float | None = None      # percent
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    processes: list[GpuProcess] = field(default_factory=list)

    @property
    def memory_free_mb(self) -> float | None:
        if self.memory_used_mb is None or self.memory_total_mb is None:
            return None
        return self.memory_total_mb - self.memory_used_mb


@dataclass
class GpuReport:
    gpus: list[GpuInfo]
    reason: str = ""           # why there are none ("no GPU: ..."), empty when there are some
    driver: str | None = None
    time: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "driver": self.driver, "reason": self.reason or None,
                "gpus": [asdict(g) | {"memory_free_mb": g.memory_free_mb} for g in self.gpus]}

    def samples(self) -> list[dict[str, Any]]:
        """Rows for the store's gpu_samples table."""
        return [{"time": self.time, "gpu_index": g.index, "uuid": g.uuid, "name": g.name,
                 "utilization": g.utilization, "memory_used_mb": g.memory_used_mb,
                 "memory_total_mb": g.memory_total_mb, "temperature_c": g.temperature_c,
                 "power_w": g.power_w, "processes": [_compact(p) for p in g.processes]}
                for g in self.gpus]


def _compact(p: GpuProcess) -> dict[str, Any]:
    """A process for the store: pid and memory always, the other fields where known."""
    return {k: v for k, v in asdict(p).items()
            if v is not None or k in ("pid", "used_memory_mb")}


def _try(fn: Any, *args: Any) -> Any:
    """One NVML reading, or None when this board or driver does not provide it."""
    try:
        return fn(*args)
    except Exception:  # NVMLError_NotSupported, NoPermission, ...: a missing value
        return None


def _fake(path: str) -> GpuReport:
    try:
        listed = json.loads(Path(path).read_text())
        gpus = []
        for i, g in enumerate(listed):
            procs = [GpuProcess(**p) for p in g.get("processes", [])]
            gpus.append(GpuInfo(**{"index": i, "uuid": f"GPU-fake-{i}", "name": "Fake GPU",
                                   **{k: v for k, v in g.items() if k != "processes"}},
                                processes=procs))
    except (OSError, ValueError, TypeError, AttributeError) as e:
        return GpuReport([], f"no GPU: CREAM_FAKE_GPUS={path} cannot be read ({e})")
    return GpuReport(gpus, "" if gpus else "no GPU: the fake GPU file lists none",
                     driver="fake")


def read_gpus(*, cpu_window_s: float = 0.0) -> GpuReport:
    """Read every GPU once, with its processes' host details. Never raises: no driver, no GPU
    or a GPU that cannot be read are states of the report. `cpu_window_s`: how long to watch
    a process seen for the first time, for its CPU % (else None until the next reading)."""
    fake = os.environ.get("CREAM_FAKE_GPUS")
    report = _fake(fake) if fake else _read_nvml()
    _add_host_details(report, cpu_window_s)
    return report


def _add_host_details(report: GpuReport, window_s: float) -> None:
    """Fill each process's user, command, CPU % and RSS from /proc (those not already set)."""
    pids = {p.pid for g in report.gpus for p in g.processes
            if any(getattr(p, k) is None for k in HOST_FIELDS)}
    if not pids:
        return
    found = _HOST.read(pids, window_s)
    for p in (p for g in report.gpus for p in g.processes):
        info = found.get(p.pid)
        for key in HOST_FIELDS if info is not None else ():
            if getattr(p, key) is None:
                setattr(p, key, getattr(info, key))


def _read_nvml() -> GpuReport:
    try:
        import pynvml
    except ImportError:
        return GpuReport([], "no GPU: nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        return GpuReport([], f"no GPU: NVIDIA driver not found ({e})")
    try:
        driver = _try(pynvml.nvmlSystemGetDriverVersion)
        count = _try(pynvml.nvmlDeviceGetCount)
        if count is None:
            return GpuReport([], "no GPU: the driver cannot count its GPUs")
        gpus = [_read_one(pynvml, i) for i in range(count)]
    finally:
        _try(pynvml.nvmlShutdown)
    return GpuReport(gpus, "" if gpus else "no GPU: the driver reports none",
                     driver=driver if isinstance(driver, str) else None)


def _read_one(nv: Any, index: int) -> GpuInfo:
    h = _try(nv.nvmlDeviceGetHandleByIndex, index)
    if h is None:  # fallen off the bus, or no permission: a GPU with no readings
        return GpuInfo(index=index, uuid=f"GPU-{index}", name="N/A (cannot be read)")
    util = _try(nv.nvmlDeviceGetUtilizationRates, h)
    mem = _try(nv.nvmlDeviceGetMemoryInfo, h)
    power = _try(nv.nvmlDeviceGetPowerUsage, h)
    temp = _try(nv.nvmlDeviceGetTemperature, h, 0)  # NVML_TEMPERATURE_GPU
    listed = (_try(nv.nvmlDeviceGetComputeRunningProcesses, h) or []) + \
        (_try(nv.nvmlDeviceGetGraphicsRunningProcesses, h) or [])
    procs: dict[int, Any] = {}
    for p in listed:                  # a process both computing and drawing: listed once
        procs.setdefault(p.pid, p)
    sm = _sm_percent(nv, h)
    mb = 1024 * 1024
    return GpuInfo(
        index=index, uuid=str(_try(nv.nvmlDeviceGetUUID, h) or f"GPU-{index}"),
        name=str(_try(nv.nvmlDeviceGetName, h) or "GPU"),
        utilization=float(util.gpu) if util is not None else None,
        memory_used_mb=mem.used / mb if mem is not None else None,
        memory_total_mb=mem.total / mb if mem is not None else None,
        temperature_c=float(temp) if temp is not None else None,
        power_w=power / 1000 if power is not None else None,
        processes=[GpuProcess(p.pid, (p.usedGpuMemory or 0) / mb
                              if getattr(p, "usedGpuMemory", None) is not None else None,
                              sm_percent=None if sm is None else sm.get(p.pid, 0.0))
                   for p in procs.values()],
    )


def _sm_percent(nv: Any, h: Any) -> dict[int, float | None] | None:
    """{pid: %SM} from NVML's samples of the last seconds (a pid with none was idle: 0), or
    None where the board or driver does not sample processes."""
    since = int((time.time() - SM_WINDOW_S) * 1_000_000)       # NVML counts microseconds
    try:
        samples = nv.nvmlDeviceGetProcessUtilization(h, since)
    except (nv.NVMLError, AttributeError) as e:  # "not found": none sampled lately; else
        # the board, driver or library does not sample processes
        no_sample = (getattr(nv, "NVML_SUCCESS", 0), getattr(nv, "NVML_ERROR_NOT_FOUND", 6))
        return {} if getattr(e, "value", None) in no_sample else None
    newest: dict[int, Any] = {}
    for s in samples:
        if s.pid not in newest or s.timeStamp > newest[s.pid].timeStamp:
            newest[s.pid] = s
    # a few drivers answer UINT_MAX for "no value": out of range is no reading
    return {pid: float(s.smUtil) if 0 <= s.smUtil <= 100 else None
            for pid, s in newest.items()}
