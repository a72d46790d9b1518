"""Configs and runs in the foreground: `cream init`, `validate`, `run`, `status`, `logs`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from cream_engine import executors, paths, results
from cream_engine.config import ExperimentConfig, to_toml
from cream_engine.errors import CreamError, UsageError, disk_error
from cream_engine.files import write_atomic
from cream_engine.gpu import read_gpus
from cream_engine.presets import departures, preset, preset_toml
from cream_engine.runs import create_or_resume, load_checked
from cream_engine.store import RUN_ENDED
from cream_tui import tables
from cream_tui.cli.common import (
    ConfigArg,
    HomeOpt,
    HostOpt,
    JsonOpt,
    RunArg,
    SetOpt,
    checked_config,
    data_home,
    echo_json,
    info,
    interactive,
    on_host,
    open_store,
    store_with,
)


def init(path: Annotated[Path, typer.Argument(help="Where to write the example config.")] =
         Path("experiment.toml"),
         force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")]
         = False,
         method: Annotated[str | None, typer.Option(
             "--method", help="Write this method's paper settings (srlm, cream, scir, dpo, "
             "oracle), each cited beside its key.", show_default=False)] = None) -> None:
    """Write a commented example experiment config (every key with its default and help)."""
    if method is not None:
        preset(method)  # an unknown method is refused before anything is written
    if path.exists() and not force:
        raise UsageError(f"{path}: already exists (use --force to overwrite)")
    text = (to_toml(ExperimentConfig(), comments=True) if method is None
            else preset_toml(method))
    try:
        write_atomic(path, text, parents=False)
    except OSError as e:
        raise disk_error(e, path) or UsageError(f"{path}: cannot write ({e.strerror})") \
            from None
    info(f"wrote {path}; check it with `cream validate {path}`")


def validate(ctx: typer.Context, config: ConfigArg, set_: SetOpt = None, home: HomeOpt = None,
             as_json: JsonOpt = False) -> None:
    """Check a config and the files it points at; print the resolved config.

    Checks the prompt file (every line, duplicates, enough prompts for each iteration), the
    evaluation sets, local model folders (config.json, tokenizer, safetensors weights) and
    every prompt's length in tokens with the model's own tokenizer (a few seconds). A value
    that departs from the paper settings of the run's method is noted on stderr (still ok)."""
    cfg, prompts = load_checked(config, set_, data_home(ctx, home), note=info)
    departed = departures(cfg)
    if as_json:
        echo_json({**cfg.to_dict(), "prompts": {"used": len(prompts.prompts),
                                                "duplicates": prompts.duplicates,
                                                "too_long": prompts.too_long},
                   "departures": [d.to_json() for d in departed]})
    else:
        typer.echo(to_toml(cfg), nl=False)
    for d in departed:
        info(f"cream: note: {d.line}")
    info(f"{config}: ok ({cfg.run.method}, {cfg.run.iterations} iterations, "
         f"model {cfg.run.model}, {prompts.summary()})")


def run(ctx: typer.Context, config: ConfigArg, home: HomeOpt = None, set_: SetOpt = None,
        new: Annotated[bool, typer.Option("--new", help="Start a new run even when an "
                                          "unfinished run of this config exists.")] = False
        ) -> None:
    """Run an experiment in the foreground (progress on stderr).

    Running the same command again resumes the newest unfinished run of the same config:
    finished stages are skipped, the interrupted one starts again."""
    cfg = checked_config(ctx, config, set_, home, gpus=len(read_gpus().gpus))
    store = open_store(ctx, home, create=True)
    assert store is not None
    run_id, resumed = create_or_resume(store, data_home(ctx, home), cfg, new=new)
    run_row = store.require_run(run_id)
    info(f"resuming run {run_id} (was {run_row['status']})" if resumed else f"run {run_id}")
    run_dir = store.run_path(run_row)
    store.close()
    code = spawn_engine(run_dir)
    typer.echo(run_id)
    raise typer.Exit(code)


def spawn_engine(run_dir: Path) -> int:
    """Run the engine in a child process (torch never enters this one); its exit code."""
    try:
        return subprocess.call([sys.executable, "-m", "cream_engine", "run", str(run_dir)])
    except KeyboardInterrupt:  # the child got the Ctrl-C too and marks the run cancelled
        return 130


def status(ctx: typer.Context,
           run: Annotated[str | None, typer.Argument(help="Run id, id prefix or name.")]
           = None, home: HomeOpt = None, as_json: JsonOpt = False,
           host: HostOpt = None) -> None:
    """List runs, or show one run with its iterations, stages and latest metrics."""
    on_host(host)
    if run is not None:
        store = store_with(ctx, home, run)
        executors.sync(store)
        detail = results.run_detail(store, run)
        if as_json:
            echo_json(detail)
        else:
            tables.print_run(detail)
        return
    store = open_store(ctx, home)
    if store is not None:
        executors.sync(store)
    rows = results.run_summaries(store) if store else []
    if as_json:
        echo_json([r.to_json() for r in rows])
    elif rows:
        tables.print_runs(rows)
    else:
        info(f"no runs yet under {data_home(ctx, home)}: write a config with `cream init`, "
             "then `cream run CONFIG`")


def logs(ctx: typer.Context, run: RunArg, home: HomeOpt = None,
         follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines "
                                              "until the run ends.")] = False,
         lines: Annotated[int, typer.Option("-n", help="Lines from the end to start with.")]
         = 40, host: HostOpt = None) -> None:
    """Print a run's job log (engine stdout and stderr); -f follows it."""
    on_host(host, tty=follow and interactive())
    store = store_with(ctx, home, run)
    found = store.require_run(run)
    path = paths.job_log(store.run_path(found))
    if not path.exists() and not follow:
        raise CreamError(f"run {found['id']}: no log yet ({path}); it has not been started "
                         "by a worker")
    while not path.exists():
        time.sleep(0.5)
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh.readlines()[-lines:]:
            typer.echo(line, nl=False)
        while follow:
            line = fh.readline()
            if line:
                typer.echo(line, nl=False)
                continue
            if store.require_run(found["id"])["status"] in RUN_ENDED:
                typer.echo(fh.read(), nl=False)
                break
            time.sleep(0.3)
