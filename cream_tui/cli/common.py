"""What every command shares: the options, the data home and its store, loading a config,
and the one way a command prints an error (it raises a `CreamError`; `main` prints the line
and exits with its code)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cream_engine import hosts, paths, userconfig
from cream_engine.config import ExperimentConfig
from cream_engine.errors import RunNotFound
from cream_engine.runs import load_checked
from cream_engine.store import Store

HomeOpt = Annotated[Path | None, typer.Option(
    "--home", envvar="CREAM_HOME", help="Data home: runs, store, models (default ./runs).",
    show_default=False, readable=False)]  # (one line of ours, not click's box, if it is not)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a config value: section.key=value (repeatable).")]
ConfigArg = Annotated[Path, typer.Argument(help="Experiment TOML file.")]
RunArg = Annotated[str, typer.Argument(help="Run id, id prefix or name.")]
HostOpt = Annotated[str | None, typer.Option(
    "--host", help="Run this on another box over ssh: a host named in the user config "
    "(~/.config/cream/config.toml), or any ssh destination; its own data home, and paths "
    "are paths there.",
    show_default=False)]

# the data home of the command being run (set by the root callback; `main` writes a crash
# log there), and the note `main` prints once a command that read a read-only home succeeded
current: dict[str, Path] = {}
notes: list[str] = []


def info(message: str) -> None:
    """A diagnostic line on stderr (results go to stdout)."""
    typer.echo(message, err=True)


def echo_json(value: Any, indent: int | None = 2) -> None:
    typer.echo(json.dumps(value, indent=indent, default=str))  # default: TOML dates


def data_home(ctx: typer.Context, home: Path | None) -> Path:
    """`--home` of the command, else of the root (`cream --home DIR status`), else the
    environment or ./runs."""
    resolved = paths.data_home(home if home is not None else (ctx.obj or {}).get("home"))
    current["home"] = resolved
    return resolved


def open_store(ctx: typer.Context, home: Path | None, create: bool = False) -> Store | None:
    """The store of the data home; None when there is none yet and `create` is off (read-only
    commands then show an empty state and write nothing). `create` is for commands that
    write: on a home this process may not write they are refused (`ReadOnlyHome`, exit 2);
    the others read it read-only, and say so on stderr once they are done (a write through
    such a store is refused with the same one line)."""
    store = Store.open(data_home(ctx, home), create=create)
    if store is not None and store.read_only and not notes:
        notes.append(f"cream: note: {store.home} is read-only ({store.read_only}): showing "
                     "what is there; commands that write to it are refused")
    return store


def checked_config(ctx: typer.Context, config: Path, overrides: list[str] | None,
                   home: Path | None, gpus: int) -> ExperimentConfig:
    """The config of a command that queues or runs it on `gpus` GPUs (0: the CPU): the home
    is refused first when it is read-only (checking takes seconds), then the config and its
    inputs are checked and what will be used is said on stderr."""
    where = data_home(ctx, home)
    paths.require_writable(where)
    cfg, prompts = load_checked(config, overrides, where, note=info, gpus=gpus)
    info(f"{config}: {prompts.summary()}")
    return cfg


def store_with(ctx: typer.Context, home: Path | None, ref: str) -> Store:
    """The store, for a command about run `ref` (which cannot exist without a store)."""
    store = open_store(ctx, home)
    if store is None:
        raise RunNotFound(ref, f"no store at {data_home(ctx, home)}")
    return store




def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def without_host(argv: list[str]) -> list[str]:
    """The command line without its `--host NAME` (or `--host=NAME`)."""
    out, skip = [], False
    for i, word in enumerate(argv):
        if skip:
            skip = False
        elif word == "--host" and i + 1 < len(argv):
            skip = True
        elif not word.startswith("--host="):
            out.append(word)
    return out


def on_host(host: str | None, *, tty: bool = False) -> None:
    """With `--host`: run this very command on that box (`cream ARGS` over ssh, its output
    and exit code passed through) and exit; `--host local` and none: nothing."""
    if host is None:
        return
    spec = hosts.resolve(host, userconfig.host_specs())
    if spec is not None:
        raise typer.Exit(hosts.forward(spec, without_host(sys.argv[1:]), tty=tty))
