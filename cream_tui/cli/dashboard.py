"""`cream demo` (the first run) and `cream tui` (the dashboard)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from cream_tui.cli.common import HomeOpt, data_home


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
        run: Annotated[Optional[str], typer.Option("--run", help="Open this run directly.")]
        = None) -> None:
    """Open the dashboard (also `cream-tui`). Over SSH: `ssh -t host cream tui`."""
    from cream_tui.app import run_app  # textual only when the dashboard opens

    raise typer.Exit(run_app(data_home(ctx, home), run))
