"""Whether a job can run on what the worker would give it, asked before its engine starts: a
job that cannot fit fails at once with exit 3 and the reason (the run's error, a `run.failed`
event, a line in its job log) instead of running out of memory an hour into its first stage.

- On GPUs: the run's config is planned (plan.py) against the GPUs the worker chose, by their
  total memory (what other processes hold is `--min-free-mem`'s business). A plan that cannot
  be made (the model's shape not readable here, a GPU without a memory reading) refuses
  nothing: the engine will say what is wrong, if anything is.
- On the CPU: RAM is shared and nothing reserves it, so only `[train] processes` is checked,
  against the cores.

Light layer: standard library only.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from cream_engine import paths
from cream_engine.config import ExperimentConfig
from cream_engine.errors import CreamError
from cream_engine.gpu import GpuInfo
from cream_engine.plan import gpu_devices, make_plan
from cream_engine.runs import load_run_config


def refusal(config: ExperimentConfig, gpu_totals_mb: list[float | None],
            cpus: int | None = None) -> str | None:
    """Why `config` cannot run on GPUs of these total memories (none: the CPU), one line;
    None when it can, or when nothing can be known."""
    cpus = cpus or os.cpu_count() or 1
    if not gpu_totals_mb:
        processes = config.train.processes
        if isinstance(processes, int) and processes > cpus:
            return (f"[train] processes = {processes}: more than the {cpus} CPU cores of this "
                    "machine")
        return None
    totals = [m for m in gpu_totals_mb if m is not None]
    if len(totals) < len(gpu_totals_mb):
        return None
    try:
        return make_plan(config, gpu_devices(totals, "the job's GPUs", cpus)).reason
    except CreamError:  # the model's shape cannot be read here
        return None


def job_refusal(run_dir: Path, gpus: list[GpuInfo], cpus: int | None = None) -> str | None:
    """`refusal` for the run snapshot in `run_dir` on the GPUs a worker chose."""
    try:
        config = load_run_config(run_dir)
    except CreamError:  # (the engine reports a broken snapshot as the run's error)
        return None
    return refusal(config, [g.memory_total_mb for g in gpus], cpus)


def note_refusal(run_dir: Path, job: dict, worker: str, reason: str) -> None:
    """The refusal in the job log, where `cream logs` looks (best effort: the store has it)."""
    try:
        log = paths.job_log(run_dir)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"\n== job {job['id']} refused by {worker} at "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}, nothing started (exit 3) ==\n"
                      f"{reason}\n")
    except OSError:
        pass
