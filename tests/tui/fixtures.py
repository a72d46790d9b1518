"""A realistic store for dashboard tests and the idle bench, with fixed timestamps.

Five runs: cream-a (done, 3 iterations, evaluation scores), srlm-b (failed in iteration 1's
training), scir-c (running: iteration 2 of 4, training 120/300 on GPU 0), dpo-d (queued,
priority 2) and cream-e (cancelled in its first score stage); about 20,000 metric rows; two
GPUs sampled for two minutes; a job log for scir-c. Everything is computed, nothing random, so
screenshots are the same on every machine.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from cream_engine.config import from_dict, to_toml
from cream_engine.gpu import GpuReport
from cream_engine.paths import STAGES
from cream_engine.store import Store, open_store

NOW = 1_767_225_600.0          # 2026-01-01 00:00:00 UTC: every timestamp is relative to it
METRICS = ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected")
GPU0, GPU1 = "GPU-0a1b2c3d-aaaa", "GPU-4e5f6a7b-bbbb"
ENGINE_PID = 4242


@dataclass(frozen=True)
class Runs:
    done: str = "20251231-200000-cream-a-0a01"
    failed: str = "20251231-210000-srlm-b-0b02"
    running: str = "20251231-220000-scir-c-0c03"
    queued: str = "20251231-230000-dpo-d-0d04"
    cancelled: str = "20251231-233000-cream-e-0e05"


RUNS = Runs()


def frozen_clock() -> float:
    return NOW


def no_gpu() -> GpuReport:
    return GpuReport([], "no GPU: NVIDIA driver not found (test)", time=NOW)


def _config(name: str, method: str, iterations: int, **train: float) -> str:
    return to_toml(from_dict({
        "run": {"name": name, "method": method, "model": "bundled:smollm2-135m-instruct",
                "iterations": iterations},
        "data": {"prompts_per_iteration": 64},
        "generate": {"n": 4, "max_new_tokens": 128},
        "train": {"batch_size": 2, **train}}))


def _run(store: Store, home: Path, run_id: str, name: str, method: str, status: str,
         iterations: int, created: float, started: float | None, ended: float | None,
         error: str | None = None, **train: float) -> Path:
    run_dir = home / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    config = _config(name, method, iterations, **train)
    (run_dir / "config.toml").write_text(config)
    store.execute(
        "INSERT INTO runs (id, name, method, model, status, iterations, run_dir, config_toml, "
        "config_hash, git_commit, error, created_at, started_at, ended_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [run_id, name, method, "bundled:smollm2-135m-instruct", status, iterations,
         str(run_dir), config, f"hash-{name}", "0123abcd", error, created, started, ended])
    return run_dir


def _job(store: Store, run_id: str, status: str, created: float, *, priority: int = 0,
         gpus: int = -1, pid: int | None = None, uuids: str | None = None,
         started: float | None = None, ended: float | None = None,
         exit_code: int | None = None) -> None:
    store.execute(
        "INSERT INTO jobs (run_id, status, priority, gpus, worker, pid, gpu_uuids, attempts, "
        "exit_code, heartbeat_at, created_at, started_at, ended_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [run_id, status, priority, gpus, "box:100" if started else None, pid, uuids,
         1 if started else 0, exit_code, NOW - 1 if status == "running" else None, created,
         started, ended])


def _stage(store: Store, run_id: str, t: int, stage: str, status: str, start: float,
           end: float | None, done: int, total: int) -> None:
    store.execute(
        "INSERT INTO stages (run_id, iteration, stage, status, done_items, total_items, "
        "started_at, ended_at, info) VALUES (?,?,?,?,?,?,?,?,?)",
        [run_id, t, stage, status, done, total, start, end,
         json.dumps({"seconds": round((end or NOW) - start, 2)}) if end else None])


def _train_metrics(store: Store, run_id: str, t: int, steps: int, start: float,
                   seed: float) -> None:
    """One logged step per optimizer step: loss falls from ln 2 with a wobble, margins rise,
    accuracy climbs towards ~0.8; a spike at step 37 of every iteration (downsampling must
    keep it)."""
    rows = []
    for step in range(1, steps + 1):
        progress = step / steps
        wobble = 0.04 * math.sin(step * 0.7 + seed) + 0.02 * math.sin(step * 0.13 + 2 * seed)
        loss = 0.693 * math.exp(-1.4 * progress) + 0.12 + wobble + (0.35 if step == 37 else 0)
        margin = 2.2 * (1 - math.exp(-2.0 * progress)) + 3 * wobble
        acc = min(1.0, max(0.0, 0.5 + 0.32 * (1 - math.exp(-3 * progress)) + 2 * wobble))
        chosen, rejected = -0.4 + margin / 2, -0.4 - margin / 2
        at = start + 6.0 * step
        for name, value in zip(METRICS, (loss, margin, acc, chosen, rejected)):
            rows.append((run_id, t, "train", step, name, round(value, 6), at))
    store.executemany("INSERT INTO metrics (run_id, iteration, stage, step, name, value, "
                      "time) VALUES (?,?,?,?,?,?,?)", rows)


def _iteration(store: Store, run_id: str, t: int, status: str, start: float,
               end: float | None, n_pairs: int | None, tau: float | None,
               agreement: float | None, length: float, evaluation: dict | None = None) -> None:
    summary = {s: json.dumps({"seconds": 500.0}) for s in STAGES} if status == "done" else None
    if summary is not None and evaluation:
        summary.update(evaluation)
    store.execute(
        "INSERT INTO iterations (run_id, iteration, status, started_at, ended_at, n_prompts, "
        "n_pairs, mean_tau, mean_consistency, std_consistency, agreement, "
        "mean_response_length, judge_unparsable, summary) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [run_id, t, status, start, end, 64, n_pairs, tau,
         None if tau is None else (tau + 1) / 2, None if tau is None else 0.11, agreement,
         length, 0, json.dumps(summary) if summary else None])


def _evaluation(k: int, acc: float, win: float | None) -> dict:
    """An evaluation summary as the engine writes it, for model M_k."""
    ev: dict = {"model": f"M{k}", "seconds": 95.0,
                "sets": {"mc": {"n": 100, "gen_acc": acc, "gen_unparsable": 12,
                                "ll_acc": acc + 0.05, "ll_acc_norm": acc + 0.06},
                         "arith": {"n": 100, "gen_acc": acc / 4, "gen_unparsable": 30}},
                "judge_score": 2.0 + acc, "mean_length": 80.0 + 10 * k}
    if win is not None:
        ev["win"] = {"vs": f"M{k - 1}", "n": 16, "win_rate": win, "tie_rate": 0.5,
                     "loss_rate": 0.5 - win}
    return ev


def _full_iteration(store: Store, run_id: str, t: int, start: float, steps: int,
                    tau: float | None, agreement: float, length: float,
                    evaluation: dict | None = None) -> float:
    """A finished iteration: six done stages, its metrics and its row. Returns its end."""
    clock = start
    for stage in STAGES:
        total = steps if stage == "train" else 64
        _stage(store, run_id, t, stage, "done", clock, clock + 500, total, total)
        if stage == "train":
            _train_metrics(store, run_id, t, steps, clock, seed=t + len(run_id))
        clock += 500
    _iteration(store, run_id, t, "done", start, clock, steps * 2 - 7, tau, agreement, length,
               evaluation)
    return clock


def write_store(home: Path, now: float = NOW) -> Runs:
    """Fill `home` with the five runs, GPU samples and a job log; returns the run ids.
    `now` moves every timestamp (the bench and the tmux test run on the real clock)."""
    home = home.absolute()      # like the real store: run folders are absolute
    store = open_store(home)
    r = RUNS
    # cream-a: done, three iterations, evaluation scores in each iteration's summary
    _run(store, home, r.done, "cream-a", "cream", "done", 3, NOW - 4 * 3600, NOW - 4 * 3600,
         NOW - 4 * 3600 + 9000, beta=0.1)
    _job(store, r.done, "done", NOW - 4 * 3600, started=NOW - 4 * 3600,
         ended=NOW - 4 * 3600 + 9000, exit_code=0)
    clock = NOW - 4 * 3600
    for t, (tau, acc) in enumerate([(None, 0.31), (0.31, 0.34), (0.47, 0.36)]):
        evaluation = {"evaluate": _evaluation(t + 1, acc, 0.40 + 0.04 * t)}
        if t == 0:
            evaluation["baseline"] = _evaluation(0, 0.29, None)
        clock = _full_iteration(store, r.done, t, clock, 500, tau, 0.62 + 0.05 * t,
                                212.0 - 9 * t, evaluation)
    # srlm-b: iteration 0 done, iteration 1 failed during training (NaN loss)
    start = NOW - 3 * 3600
    _run(store, home, r.failed, "srlm-b", "srlm", "failed", 3, start, start, start + 5400,
         error="NaN loss at step 121", beta=0.3)
    _job(store, r.failed, "failed", start, started=start, ended=start + 5400, exit_code=1)
    clock = _full_iteration(store, r.failed, 0, start, 400, None, 0.55, 230.0)
    for stage in STAGES[:4]:
        _stage(store, r.failed, 1, stage, "done", clock, clock + 500, 64, 64)
        clock += 500
    _stage(store, r.failed, 1, "train", "failed", clock, clock + 726, 121, 250)
    _train_metrics(store, r.failed, 1, 120, clock, seed=9.0)
    _iteration(store, r.failed, 1, "failed", clock - 2000, None, 243, -0.05, 0.48, 251.0)
    # scir-c: running, iteration 2 of 4, training 120/300 on GPU 0
    start = NOW - 2 * 3600
    _run(store, home, r.running, "scir-c", "scir", "running", 4, start, start, None, beta=0.1)
    _job(store, r.running, "running", start, pid=ENGINE_PID, uuids=GPU0, started=start,
         gpus=1)
    clock = start
    for t, tau in enumerate([None, 0.22]):
        clock = _full_iteration(store, r.running, t, clock, 300, tau, 0.58 + 0.08 * t,
                                198.0 + 4 * t)
    _iteration(store, r.running, 2, "running", clock, None, 121, 0.36, 0.71, 205.5)
    for stage in STAGES[:4]:
        _stage(store, r.running, 2, stage, "done", clock, clock + 120, 64, 64)
        clock += 120
    _stage(store, r.running, 2, "train", "running", clock, None, 120, 300)
    _train_metrics(store, r.running, 2, 120, clock, seed=4.0)
    # dpo-d: queued behind it with priority 2; cream-e: cancelled during its first score
    _run(store, home, r.queued, "dpo-d", "dpo", "queued", 2, NOW - 1800, None, None, beta=0.2)
    _job(store, r.queued, "queued", NOW - 1800, priority=2)
    start = NOW - 1500
    _run(store, home, r.cancelled, "cream-e", "cream", "cancelled", 2, start, start,
         start + 900, error="cancelled (SIGTERM)", beta=0.1, learning_rate=5e-6)
    _job(store, r.cancelled, "cancelled", start, started=start, ended=start + 900,
         exit_code=143)
    _stage(store, r.cancelled, 0, "generate", "done", start, start + 500, 64, 64)
    _stage(store, r.cancelled, 0, "score", "cancelled", start + 500, start + 900, 17, 64)
    _iteration(store, r.cancelled, 0, "running", start, None, None, None, None, 188.0)
    _gpu_samples(store)
    _job_log(home / r.running)
    if now != NOW:
        _shift(store, now - NOW)
    store.close()
    return r


TIME_COLUMNS = {"runs": ("created_at", "started_at", "ended_at"),
                "jobs": ("created_at", "started_at", "ended_at", "heartbeat_at"),
                "iterations": ("started_at", "ended_at"), "stages": ("started_at", "ended_at"),
                "metrics": ("time",), "gpu_samples": ("time",)}


def _shift(store: Store, seconds: float) -> None:
    with store.atomic():
        for table, cols in TIME_COLUMNS.items():
            sets = ", ".join(f"{c} = {c} + ?" for c in cols)
            store.execute(f"UPDATE {table} SET {sets}", [seconds] * len(cols))


def _gpu_samples(store: Store) -> None:
    samples = []
    for k in range(120):
        at = NOW - 119 + k
        samples.append({"time": at, "gpu_index": 0, "uuid": GPU0, "name": "NVIDIA H100 80GB HBM3",
                        "utilization": round(72 + 20 * math.sin(k / 9), 1),
                        "memory_used_mb": 38000 + 40 * k, "memory_total_mb": 81559,
                        "temperature_c": 61 + k % 5, "power_w": 310.5 + k % 7,
                        "processes": [{"pid": ENGINE_PID, "used_memory_mb": 36500.0,
                                       "job_id": 3, "run_id": RUNS.running}]})
        samples.append({"time": at, "gpu_index": 1, "uuid": GPU1, "name": "NVIDIA H100 80GB HBM3",
                        "utilization": 0.0 if k < 100 else 12.0, "memory_used_mb": 1210,
                        "memory_total_mb": 81559, "temperature_c": 34, "power_w": None,
                        "processes": [{"pid": 999, "used_memory_mb": 1200.0}]})
    store.add_gpu_samples(samples)


def _job_log(run_dir: Path) -> None:
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    lines = ["", ("== job 3 attempt 1 on box:100 at 2025-12-31 22:00:00 GPUs: "
                  f"{GPU0} ==")]
    for t in range(2):
        for stage in STAGES:
            lines.append(f"iter {t} {stage}: done in 500.0s")
    for stage in STAGES[:4]:
        lines.append(f"iter 2 {stage}: done in 120.0s")
    lines += [f"{{'loss': {0.6 - 0.002 * s:.4f}, 'rewards/margins': {0.01 * s:.4f}, "
              f"'step': {s}}}" for s in range(10, 121, 10)]
    lines.append("iter 2 train        ━━━━━━━━━━━━━━━━╸━━━━━━━━━━━━━━━━━━━━━━━ 120/300 "
                 "0.17/s 0:12:00 ETA 0:18:00")
    (logs / "job.log").write_text("\n".join(lines) + "\n")
