"""Looking at results: `cream compare`, `cream export`, `cream gpus`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cream_engine import compare as comparing
from cream_engine.errors import UsageError, disk_error
from cream_engine.export import export as export_text
from cream_engine.files import write_atomic
from cream_engine.gpu import read_gpus
from cream_tui import format as fmt
from cream_tui import tables
from cream_tui.cli.common import (
    HomeOpt,
    HostOpt,
    JsonOpt,
    RunArg,
    echo_json,
    info,
    on_host,
    store_with,
)


def compare(ctx: typer.Context,
            runs: Annotated[list[str], typer.Argument(
                help="Runs to compare: ids, id prefixes or names.", show_default=False)],
            home: HomeOpt = None, as_json: JsonOpt = False,
            host: HostOpt = None) -> None:
    """Runs side by side: the config keys that differ, then one row per model (M0, M1, ...)
    with pairs, mean τ, mean C, judge/implicit agreement and the evaluation results."""
    on_host(host)
    data = comparing.compare(store_with(ctx, home, runs[0]), runs)
    if as_json:
        echo_json(data)
    else:
        tables.print_compare(data)


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


def gpus(as_json: JsonOpt = False,
         watch: Annotated[float, typer.Option(
             "--watch", "-w", help="Refresh every this many seconds until Ctrl-C (0: once).")]
         = 0.0, host: HostOpt = None) -> None:
    """Show the GPUs NVML sees (utilisation, memory, temperature, power, processes).

    With no GPU it says so and exits 0: runs then use the CPU."""
    on_host(host)
    while True:
        report = read_gpus()
        if as_json:
            echo_json(report.to_json(), indent=None if watch else 2)
        else:
            if watch:
                typer.echo(f"-- {fmt.clock(report.time)} --")
            for line in tables.gpu_lines(report):
                typer.echo(line)
        if not watch:
            return
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            return
