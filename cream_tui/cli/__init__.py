"""`cream`: the command line. Thin commands over the engine's light layer, one module per noun
(runs, plan, queue, worker, results, dashboard), printed by `cream_tui.tables`.

Results go to stdout, diagnostics to stderr. A command that cannot do what it was asked raises
a `CreamError`; `main` prints its one line and exits with its code (0 ok, 1 a run or job
failed, 2 usage or config error, 3 no GPU fits). The file system failing (a full disk, a
read-only one, no permission, too many open files) is one line too (`errors.disk_error`),
exit 2, its traceback in the crash log when that can still be written. Anything else is a
bug: one line here, the traceback in `<home>/logs/cli-errors.log`. Nothing here imports
torch, transformers, trl or vllm, and the dashboard (textual) only when it opens.

Every command runs with the data home's umask (`paths.set_home_umask`: what it and its
children create is private to the user, or to a group with `CREAM_HOME_GROUP=1`).
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from cream_engine import paths
from cream_engine.errors import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_USAGE,
    CreamError,
    DiskError,
    disk_error,
    internal_error,
)
from cream_tui.cli import dashboard, plan, queue, results, runs, show, worker
from cream_tui.cli.common import HomeOpt, current, notes

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


for command in (runs.init, runs.validate, plan.plan, runs.run, runs.status, queue.submit,
                runs.logs, results.gpus, results.compare, results.export, show.show,
                dashboard.demo,
                dashboard.tui, dashboard.feed):
    app.command()(command)
app.add_typer(queue.queue_app, name="queue")
app.add_typer(worker.worker_app, name="worker")


def crash_log(error: BaseException) -> Path | None:
    """Write the traceback of an unexpected error under the data home (else the temp folder);
    returns where, or None when it could not be written (a full or read-only disk, no file
    descriptor left: the one line on stderr is all there is then)."""
    try:
        import tempfile  # (only on this path: with traceback, 0.02 s every command would pay)
        import traceback

        home = current.get("home") or paths.data_home()
        folder = home / "logs" if home.is_dir() else Path(tempfile.gettempdir())
        path = folder / "cli-errors.log"
        folder.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} cream {' '.join(sys.argv[1:])}\n")
            fh.write("".join(traceback.format_exception(error)))
        return path
    except Exception:  # noqa: BLE001 - never a second error over the first
        return None


def fail(line: str, code: int) -> None:
    typer.echo(f"cream: {line}", err=True)
    sys.exit(code)


def main() -> None:
    umask = paths.set_home_umask()
    notes.clear()
    try:
        app()
    except SystemExit as e:  # (how Typer ends every command)
        if e.code in (0, None) and notes:
            typer.echo(notes[0], err=True)
        raise
    except CreamError as e:  # a DiskError here is a command refused: exit 2, as any other
        fail(f"error: {e.line}", EXIT_USAGE if isinstance(e, DiskError) else e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as e:
        found = disk_error(e, current.get("home"))
        if found is not None:  # a full disk, a read-only one…: the traceback only in the log
            crash_log(e)
            fail(f"error: {found.line}", EXIT_USAGE)
        if isinstance(e, sqlite3.OperationalError):  # the store stayed locked past its timeout
            fail(f"error: the store is busy or unreadable ({e})", EXIT_FAILED)
        log = crash_log(e)  # a bug: one line here, the traceback in a file
        fail(internal_error(e) + (f" (traceback in {log})" if log else ""), EXIT_FAILED)
    finally:
        os.umask(umask)
