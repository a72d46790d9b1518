"""`cream demo` (the first run) and `cream tui` (the dashboard)."""

from __future__ import annotations

from typing import Annotated

import typer

from cream_engine import hosts, userconfig
from cream_engine.errors import UsageError
from cream_tui.cli.common import HomeOpt, data_home, store_with
from cream_tui.terminal import no_terminal_line, not_a_terminal


def demo(ctx: typer.Context, home: HomeOpt = None,
         tiny: Annotated[bool, typer.Option("--tiny", help="Use bundled:tiny-random (fast).")]
         = False,
         no_tui: Annotated[bool, typer.Option("--no-tui", help="Do not open the dashboard: "
                                              "wait for both runs, print the comparison.")]
         = False) -> None:
    """The first run: a `cream` and an `srlm` run on the bundled SmolLM2-135M-Instruct, queued
    for the worker (started if none runs), watched in the dashboard, then compared."""
    from cream_tui.demo import run_demo  # the dashboard (textual) only when it is asked for

    raise typer.Exit(run_demo(data_home(ctx, home), tiny=tiny, tui=not no_tui))


def tui(ctx: typer.Context, home: HomeOpt = None,
        run: Annotated[str | None, typer.Option("--run", help="Open this run directly.")]
        = None,
        host: Annotated[list[str] | None, typer.Option(
            "--host", help="Show this box too (repeatable): a host named in the user config, "
            "an ssh destination, or `local` for this data home. [default: local and every "
            "configured host]", show_default=False)] = None) -> None:
    """Open the dashboard (also `cream-tui`), over several boxes when there are hosts.

    Each other box is read through your own `ssh` (your ~/.ssh/config, agent, ProxyJump,
    ControlMaster): one `ssh HOST cream feed` per host, kept open; no port is opened
    anywhere. On one box only, over SSH: `ssh -t host cream tui`."""
    missing = not_a_terminal()
    if missing:
        raise UsageError(no_terminal_line("cream tui", missing))
    from cream_tui.app import run_app  # textual only when the dashboard opens

    known = userconfig.host_specs()
    names = list(host or ([hosts.LOCAL, *known] if known else []))
    specs = [hosts.resolve(n, known) for n in dict.fromkeys(names)]
    if specs == [None]:  # (only this box: the dashboard over one data home)
        specs = []
    if run is not None and not specs:
        # a name, a name prefix or an id prefix, resolved as every command does: an unknown
        # or ambiguous one is one line here, not a blank run screen
        store = store_with(ctx, home, run)
        run = store.require_run(run)["id"]
        store.close()
    raise typer.Exit(run_app(data_home(ctx, home), run, hosts=specs))


def feed(ctx: typer.Context, home: HomeOpt = None,
         poll: Annotated[float, typer.Option(
             help="Seconds between reads of the store.", min=0.1)] = 1.0,
         gpu_every: Annotated[float, typer.Option(
             "--gpu-every", help="Seconds between GPU readings sent.", min=0.1)] = 1.0
         ) -> None:
    """Stream this data home as JSON lines on stdout, reading requests on stdin: what a
    dashboard on another box runs here over ssh (`cream tui --host`). Not for people.

    It sends the runs that changed, GPU readings at a fixed rate and a heartbeat, and ends
    when stdin closes."""
    from cream_tui.feed import serve

    raise typer.Exit(serve(data_home(ctx, home), poll, gpu_every))
