"""`cream gpus` for the shell: each GPU on a line, then its processes in the GPU screen's table
(same units, same colour levels: colours only on a terminal); and the same as JSON, each
process with the run it belongs to. A process belongs to a run when it is the run's engine or
in the engine's process group (the worker starts every job in a group of its own, so a
training rank or a vLLM worker counts too)."""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console
from rich.text import Text

from cream_engine import queue
from cream_engine.gpu import GpuInfo, GpuReport
from cream_engine.store import Store
from cream_tui import format as fmt
from cream_tui import gpu_levels as levels
from cream_tui.gpu_history import GpuRow, ProcRow
from cream_tui.widgets.gpu_detail import process_lines

INDENT = "    "


def running_runs(store: Store | None) -> tuple[dict[int, str], dict[str, str]]:
    """({engine pid: run id} of the running jobs, {run id: run name})."""
    if store is None:
        return {}, {}
    pids = queue.running_pids(store)
    return pids, {r["id"]: r["name"] for r in store.list_runs() if r["id"] in pids.values()}


def run_of(pid: int, job_pids: dict[int, str]) -> str | None:
    if pid in job_pids:
        return job_pids[pid]
    try:
        return job_pids.get(os.getpgid(pid))
    except OSError:         # gone, or not ours to ask about
        return None


def gpu_row(g: GpuInfo, job_pids: dict[int, str], names: dict[str, str]) -> GpuRow:
    """A reading as the screens' row (no history), its processes mapped to runs."""
    procs = []
    for p in g.processes:
        run = run_of(p.pid, job_pids)
        procs.append(ProcRow(p.pid, p.used_memory_mb, run, names.get(run) if run else None,
                             p.sm_percent, p.user, p.command, p.cpu_percent, p.rss_mb))
    return GpuRow(index=g.index, uuid=g.uuid, name=g.name, utilization=g.utilization,
                  memory_used_mb=g.memory_used_mb, memory_total_mb=g.memory_total_mb,
                  temperature_c=g.temperature_c, power_w=g.power_w, age_s=0.0,
                  util_history=(), mem_history=(), processes=tuple(procs))


def gpu_heading(g: GpuRow) -> Text:
    """`GPU0  NVIDIA H100 80GB HBM3  util 87%  mem 37.1/79.6 GiB 47%  temp 65°C  power …`"""
    text = Text(f"GPU{g.index}  {g.name}", style="bold")
    text.append("  util ")
    text.append_text(levels.percent(g.utilization, "{:.0f}%"))
    text.append(f"  mem {fmt.memory_pair(g.memory_used_mb, g.memory_total_mb)} ")
    text.append_text(levels.percent(g.memory_percent, "{:.0f}%"))
    text.append("  temp ")
    text.append_text(levels.temperature(g.temperature_c))
    text.append(f"  power {fmt.na(g.power_w, '{:.0f} W')}  ")
    text.append(g.uuid, style="dim")
    return text


def print_gpus(report: GpuReport, job_pids: dict[int, str], names: dict[str, str],
               console: Console | None = None) -> None:
    """Each GPU and its processes; a terminal cuts the lines to its width, a pipe gets them
    whole."""
    console = console or Console(soft_wrap=True)
    if not report.gpus:
        console.print(f"{report.reason}; runs use the CPU", markup=False, highlight=False)
        return
    width = console.width - len(INDENT) if console.is_terminal else 100_000
    for g in report.gpus:
        row = gpu_row(g, job_pids, names)
        console.print(gpu_heading(row), highlight=False)
        for line in process_lines(row, width):
            console.print(Text(INDENT) + line, highlight=False)


def gpus_json(report: GpuReport, job_pids: dict[int, str],
              names: dict[str, str]) -> dict[str, Any]:
    """The report's JSON, each process with `run_id` and `run` (its name), null when none."""
    data = report.to_json()
    for g in data["gpus"]:
        for p in g["processes"]:
            run = run_of(p["pid"], job_pids)
            p["run_id"], p["run"] = run, names.get(run) if run else None
    return data
