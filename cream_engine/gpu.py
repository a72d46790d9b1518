"""GPU readings through NVML (the `nvidia-ml-py` package, imported as `pynvml`).

"No GPU" is a state, not an exception: `read_gpus()` returns a `GpuReport` whose `gpus` list is
empty and whose `reason` says why. A reading NVML cannot give (power on some boards, processes
in a container) is None, shown as "N/A", never an error. The layer knows nothing of the UI.

Tests and machines without a GPU can point `CREAM_FAKE_GPUS` at a JSON file (a list of GPU
dicts with the fields below) to exercise the same code paths that real readings take.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class GpuProcess:
    pid: int
    used_memory_mb: float | None = None


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
                 "power_w": g.power_w, "processes": [asdict(p) for p in g.processes]}
                for g in self.gpus]


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


def read_gpus() -> GpuReport:
    """Read every GPU once. Never raises: no driver, no GPU or a GPU that cannot be read are
    states of the report."""
    fake = os.environ.get("CREAM_FAKE_GPUS")
    if fake:
        return _fake(fake)
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
    procs = (_try(nv.nvmlDeviceGetComputeRunningProcesses, h) or []) + \
        (_try(nv.nvmlDeviceGetGraphicsRunningProcesses, h) or [])
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
                              if getattr(p, "usedGpuMemory", None) is not None else None)
                   for p in procs],
    )
