"""Fixed data for the GPU view tests: an 8-GPU box with loads, memory and temperatures at
every colour level, and processes whose host details (user, command, CPU, RSS) are given, so a
screenshot is the same on every machine. The other pids are far above any real pid (Linux's
pid_max is at most 4,194,304), so nothing is read from /proc for them; pid 4242 is scir-c's
engine in the fixed store (`tests/tui/fixtures.ENGINE_PID`).

Two forms: a file for CREAM_FAKE_GPUS (`eight_gpus`), and two minutes of the worker's samples
of the same box in the fixed store (`write_eight_gpu_store`), for a history to draw."""

from __future__ import annotations

import json
import math
from pathlib import Path

from cream_engine.store import open_store
from tests.tui.fixtures import ENGINE_PID, NOW, RUNS, write_store

TOTAL_MB = 81559.0          # an H100 80GB as NVML counts it: 79.6 GiB


def _proc(pid: int, mem: float, user: str, command: str, cpu: float, rss: float,
          sm: float | None = None) -> dict:
    return {"pid": pid, "used_memory_mb": mem, "sm_percent": sm, "user": user,
            "command": command, "cpu_percent": cpu, "rss_mb": rss}


ENGINE = _proc(ENGINE_PID, 36500.0, "alice", "python -m cream_engine run runs/scir-c", 101.5,
               12800.0, sm=87)
VLLM = _proc(9_000_101, 70200.0, "bob", "python -m vllm.entrypoints.openai.api_server "
             "--model Qwen/Qwen2.5-7B-Instruct", 12.0, 9100.0)
NOTEBOOK = _proc(9_000_102, 512.0, "carol", "jupyter-lab --no-browser", 0.5, 310.0, sm=0)
RANKS = [_proc(9_000_200 + i, 30100.0, "alice",
               f"python -m cream_engine.train_rank --rank {i}", 99.0, 8200.0, sm=60)
         for i in range(3)]

# (utilisation %, memory used MiB, °C, W, processes): normal, moderate and heavy levels
EIGHT = [(87.0, 38000.0, 65.0, 311.0, [ENGINE]),       # util heavy, memory under 50 %
         (12.0, 1210.0, 34.0, None, [NOTEBOOK]),        # all normal, no power reading
         (55.0, 45000.0, 72.0, 250.0, [VLLM, NOTEBOOK]),  # moderate load and temperature
         (99.0, 76000.0, 84.0, 690.0, [RANKS[0]]),      # everything heavy
         (0.0, 0.0, 30.0, 70.0, []),                    # idle, no processes
         (None, None, None, None, []),                  # a board that gives nothing
         (64.0, 66000.0, 79.0, 402.0, [RANKS[1]]),      # memory heavy (81 %)
         (64.0, 66000.0, 80.0, 402.0, [RANKS[2]])]      # 80 °C: hot


def eight_gpus() -> list[dict]:
    return [{"uuid": f"GPU-{i}8c0ffee-{i:04d}", "name": "NVIDIA H100 80GB HBM3",
             "utilization": util, "memory_used_mb": used,
             "memory_total_mb": None if util is None else TOTAL_MB,
             "temperature_c": temp, "power_w": power,
             "processes": [dict(p) for p in procs]}        # copies: a test may add to them
            for i, (util, used, temp, power, procs) in enumerate(EIGHT)]


def write_fake_gpus(path: Path, gpus: list[dict]) -> Path:
    path.write_text(json.dumps(gpus))
    return path


def _wave(base: float | None, k: int, i: int, amplitude: float) -> float | None:
    """The reading `k` seconds into the two minutes: ending exactly at `base`."""
    if base is None or k == 119:
        return base
    return round(min(max(base + amplitude * math.sin(k / 9 + i), 0.0), 100.0), 1)


def eight_gpu_samples() -> list[dict]:
    """Two minutes of samples, one a second, as the worker stores them (its engine's process
    tagged with the run, as the worker does)."""
    samples = []
    for k in range(120):
        for i, g in enumerate(eight_gpus()):
            procs = [dict(p, **({"job_id": 3, "run_id": RUNS.running}
                                if p["pid"] == ENGINE_PID else {})) for p in g["processes"]]
            used = g["memory_used_mb"]
            mem_pct = _wave(None if used is None else 100 * used / TOTAL_MB, k, i, 4)
            samples.append({"time": NOW - 119 + k, "gpu_index": i, "uuid": g["uuid"],
                            "name": g["name"], "utilization": _wave(g["utilization"], k, i, 25),
                            "memory_used_mb": None if mem_pct is None else
                            round(mem_pct * TOTAL_MB / 100, 1) if k < 119 else used,
                            "memory_total_mb": g["memory_total_mb"],
                            "temperature_c": g["temperature_c"], "power_w": g["power_w"],
                            "processes": procs})
    return samples


def write_eight_gpu_store(home: Path) -> Path:
    """The fixed store (`tests/tui/fixtures.py`), its two GPUs' samples replaced by the eight's."""
    write_store(home)
    store = open_store(home)
    store.execute("DELETE FROM gpu_samples")
    store.add_gpu_samples(eight_gpu_samples())
    store.close()
    return home
