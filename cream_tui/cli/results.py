"""Looking at results: `cream compare`, `cream export`, `cream gpus`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cream_engine import compare as comparing
from cream_engine.errors import CreamError, UsageError, disk_error
from cream_engine.export import export as export_text
from cream_engine.files import write_atomic
from cream_engine.gpu import read_gpus
from cream_tui import format as fmt
from cream_tui import gpu_report, tables
from cream_tui.cli.common import (
    HomeOpt,
    HostOpt,
    JsonOpt,
    RunArg,
    echo_json,
    info,
    on_host,
    open_store,
    store_with,
)
from cream_tui.compare_report import print_final_models


def compare(ctx: typer.Context,
            runs: Annotated[list[str], typer.Argument(
                help="Runs to compare: ids, id prefixes or names.", show_default=False)],
            home: HomeOpt = None, as_json: JsonOpt = False,
            host: HostOpt = None) -> None:
    """Runs side by side: the config keys that differ, then one row per model (M0, M1, ...)
    with pairs, mean τ, mean C, judge/implicit agreement and the evaluation results, then the
    final models' results with n and 95% interval, and a verdict per main metric (better
    beyond noise, or within noise at this n)."""
    on_host(host)
    data = comparing.compare(store_with(ctx, home, runs[0]), runs)
    if as_json:
        echo_json(data)
    else:
        console = Console()
        tables.print_compare(data, console)
        print_final_models(data, console)


def export(ctx: typer.Context, run: RunArg, home: HomeOpt = None,
           format_: Annotated[str, typer.Option(
               "--format", help="csv or json.")] = "json",
           table: Annotated[str | None, typer.Option(
               "--table", help="metrics or iterations (default: metrics for csv, both for "
               "json).", show_default=False)] = None,
           output: Annotated[Path | None, typer.Option(
               "-o", "--output", help="Write to this file (atomically) instead of stdout.")]
           = None, host: HostOpt = None) -> None:
    """Export one run: JSON (the run with its config, iterations and metrics) or CSV (one
    table: metrics, or iterations with the evaluation as `eval.*` / `baseline.*` columns)."""
    on_host(host)
    text = export_text(store_with(ctx, home, run), run, format_, table)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        write_atomic(output, text, parents=False)
    except OSError as e:  # a full disk…: what to free; a missing folder: as the system says
        raise disk_error(e, output) or UsageError(f"{output}: cannot write ({e.strerror})") from None
    info(str(output))


def gpus(ctx: typer.Context, as_json: JsonOpt = False,
         watch: Annotated[float, typer.Option(
             "--watch", "-w", help="Refresh every this many seconds until Ctrl-C (0: once).")]
         = 0.0, home: HomeOpt = None, host: HostOpt = None) -> None:
    """Show the GPUs NVML sees (utilisation, memory, temperature, power) and the processes on
    each: pid, user, GPU memory, %SM, host CPU % and memory, the run it belongs to, command.

    With no GPU it says so and exits 0: runs then use the CPU."""
    on_host(host)
    try:        # for the run each process belongs to; the GPUs are shown without it too
        store = open_store(ctx, home)
    except CreamError as e:
        info(f"cream: runs not shown: {e}")
        store = None
    try:
        while True:
            # a process seen for the first time is watched a moment, for its CPU %
            report = read_gpus(cpu_window_s=0.2)
            job_pids, names = gpu_report.running_runs(store)
            if as_json:
                echo_json(gpu_report.gpus_json(report, job_pids, names),
                          indent=None if watch else 2)
            else:
                if watch:
                    typer.echo(f"-- {fmt.clock(report.time)} --")
                gpu_report.print_gpus(report, job_pids, names)
            if not watch:
                return
            try:
                time.sleep(watch)
            except KeyboardInterrupt:
                return
    finally:
        if store is not None:
            store.close()
