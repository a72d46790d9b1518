"""A GPU report's processes from NVML: GPU memory and %SM (the newest of NVML's per-process
samples; 0 for a process with none; "no reading" where the board does not sample processes),
one entry per pid. NVML itself is the real nvidia-ml-py module with its device functions
replaced: no GPU is needed."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pynvml
import pytest

from cream_engine.gpu import read_gpus

MiB = 1024 * 1024
A, B, C, D = 4_100_001, 4_100_002, 4_100_003, 4_100_004   # no such pids: no host details


@pytest.fixture
def three_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREAM_FAKE_GPUS", raising=False)
    compute = {0: [NS(pid=A, usedGpuMemory=2048 * MiB), NS(pid=B, usedGpuMemory=None),
                   NS(pid=C, usedGpuMemory=10 * MiB)],
               1: [NS(pid=D, usedGpuMemory=512 * MiB)], 2: [NS(pid=D, usedGpuMemory=MiB)]}
    graphics = {0: [NS(pid=A, usedGpuMemory=2048 * MiB)], 1: [], 2: []}

    def utilization(h: int, since: int) -> list:
        if h == 1:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)      # nothing ran lately
        if h == 2:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        assert since > 1_600_000_000 * 1_000_000                     # microseconds
        return [NS(pid=A, timeStamp=since + 1, smUtil=20), NS(pid=A, timeStamp=since + 9,
                                                              smUtil=55),
                NS(pid=C, timeStamp=since + 5, smUtil=4294967295)]   # "no value"

    fns = {"nvmlInit": lambda: None, "nvmlShutdown": lambda: None,
           "nvmlSystemGetDriverVersion": lambda: "560.35",
           "nvmlDeviceGetCount": lambda: 3, "nvmlDeviceGetHandleByIndex": lambda i: i,
           "nvmlDeviceGetUtilizationRates": lambda h: NS(gpu=30, memory=10),
           "nvmlDeviceGetMemoryInfo": lambda h: NS(used=4096 * MiB, total=81559 * MiB),
           "nvmlDeviceGetPowerUsage": lambda h: 250_000,
           "nvmlDeviceGetTemperature": lambda h, sensor: 60,
           "nvmlDeviceGetUUID": lambda h: f"GPU-{h}", "nvmlDeviceGetName": lambda h: "H100",
           "nvmlDeviceGetComputeRunningProcesses": lambda h: compute[h],
           "nvmlDeviceGetGraphicsRunningProcesses": lambda h: graphics[h],
           "nvmlDeviceGetProcessUtilization": utilization}
    for name, fn in fns.items():
        monkeypatch.setattr(pynvml, name, fn)


def test_memory_and_sm_per_process(three_gpus: None) -> None:
    report = read_gpus()
    first, idle, unsampled = (g.processes for g in report.gpus)
    assert [p.pid for p in first] == [A, B, C]         # A listed as compute and graphics: once
    assert [p.used_memory_mb for p in first] == [2048.0, None, 10.0]
    assert [p.sm_percent for p in first] == [55.0, 0.0, None]   # newest; none: idle; bogus
    assert idle[0].sm_percent == 0.0 and unsampled[0].sm_percent is None
    assert report.to_json()["gpus"][0]["processes"][0]["sm_percent"] == 55.0
