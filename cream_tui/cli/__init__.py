"""`cream`: the command line. Thin commands over the engine's light layer, one module per noun
(runs, queue, worker, results, dashboard), printed by `cream_tui.tables`.

Results go to stdout, diagnostics to stderr. A command that cannot do what it was asked raises
a `CreamError`; `main` prints its one line and exits with its code (0 ok, 1 a run or job
failed, 2 usage or config error, 3 no GPU fits). Anything else is a bug: one line here, the
traceback in `<home>/logs/cli-errors.log`. Nothing here imports torch, transformers, trl or
vllm, and the dashboard (textual) only when it opens.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from cream_engine import paths
from cream_engine.errors import EXIT_CODES_HELP, CreamError, internal_error
from cream_tui.cli import dashboard, queue, results, runs, worker
from cream_tui.cli.common import HomeOpt, current

app = typer.Typer(
    name="cream", no_args_is_help=True, add_completion=False,
    help="Self-rewarding LM experiments (SRLM, CREAM, SCIR) on your own GPU box.\n\n"
         + EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"cream {version('cream')}")
        except PackageNotFoundError:
            typer.echo("cream (not installed)")
        raise typer.Exit()


@app.callback()
def root(ctx: typer.Context, home: HomeOpt = None,
         version: Annotated[bool, typer.Option("--version", callback=_version,
                                               is_eager=True, help="Print the version.")] = False
         ) -> None:
    ctx.obj = {"home": home}
    current["home"] = paths.data_home(home)  # (a command's own --home replaces it)


for command in (runs.init, runs.validate, runs.run, runs.status, queue.submit, runs.logs,
                results.gpus, results.compare, results.export, dashboard.demo, dashboard.tui):
    app.command()(command)
app.add_typer(queue.queue_app, name="queue")
app.add_typer(worker.worker_app, name="worker")


def crash_log(error: BaseException) -> Path:
    """Write the traceback of an unexpected error under the data home (else the temp folder);
    returns where."""
    import tempfile  # (only on this path: with traceback, 0.02 s that every command would pay)
    import traceback

    home = current.get("home") or paths.data_home()
    folder = home / "logs" if home.is_dir() else Path(tempfile.gettempdir())
    path = folder / "cli-errors.log"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} cream {' '.join(sys.argv[1:])}\n")
            fh.write("".join(traceback.format_exception(error)))
    except OSError:
        pass
    return path


def main() -> None:
    try:
        app()
    except CreamError as e:
        typer.echo(f"cream: error: {e.line}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("cream: interrupted", err=True)
        sys.exit(130)
    except sqlite3.OperationalError as e:  # the store stayed locked past its busy timeout…
        typer.echo(f"cream: error: the store is busy or unreadable ({e})", err=True)
        sys.exit(1)
    except Exception as e:  # a bug: one line here, the traceback in a file
        typer.echo(f"cream: {internal_error(e)} (traceback in {crash_log(e)})", err=True)
        sys.exit(1)
