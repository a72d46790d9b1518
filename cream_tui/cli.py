"""`cream`: the command line. Thin commands over the config, the store and the engine.

Results go to stdout, diagnostics to stderr. Exit codes: 0 ok, 1 a run or job failed,
2 usage or config error, 3 no GPU fits. Heavy modules (torch, transformers, trl, vllm) and even
sqlite-utils are imported inside the commands that need them, so `cream --help` stays fast.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_GPU = 0, 1, 2, 3
EXIT_CODES_HELP = "Exit codes: 0 ok, 1 run/job failed, 2 usage or config error, 3 no GPU fits."

app = typer.Typer(
    name="cream", no_args_is_help=True, add_completion=False,
    help="Self-rewarding LM experiments (SRLM, CREAM, SCIR) on your own GPU box.\n\n"
         + EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)

HomeOpt = Annotated[Optional[Path], typer.Option(
    "--home", envvar="CREAM_HOME", help="Data home: runs, store, models (default ./runs).",
    show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
SetOpt = Annotated[Optional[list[str]], typer.Option(
    "--set", help="Override a config value: section.key=value (repeatable).")]


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One line on stderr, then exit with `code`."""
    typer.echo(f"cream: error: {message}", err=True)
    raise typer.Exit(code)


def info(message: str) -> None:
    typer.echo(message, err=True)


def _home(ctx: typer.Context, home: Path | None) -> Path:
    from cream_engine import paths

    return paths.data_home(home if home is not None else (ctx.obj or {}).get("home"))


def _store(ctx: typer.Context, home: Path | None, create: bool = False) -> Any:
    from cream_engine.store import StoreError, open_store

    try:
        return open_store(_home(ctx, home), create=create)
    except StoreError as e:
        fail(str(e))


def _load(path: Path, overrides: list[str] | None) -> Any:
    """Load a config and check what it points at; a config error exits 2 with one line."""
    from cream_engine.config import ConfigError, load_config
    from cream_engine.data import check_inputs

    try:
        config = load_config(path, overrides)
        check_inputs(config)
    except ConfigError as e:
        fail(str(e))
    return config


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


# -- configs -------------------------------------------------------------------------------


@app.command()
def init(path: Annotated[Path, typer.Argument(help="Where to write the example config.")] =
         Path("experiment.toml"),
         force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")]
         = False) -> None:
    """Write a commented example experiment config (every key with its default and help)."""
    from cream_engine.config import ExperimentConfig, to_toml

    if path.exists() and not force:
        fail(f"{path}: already exists (use --force to overwrite)")
    try:
        path.write_text(to_toml(ExperimentConfig(), comments=True), encoding="utf-8")
    except OSError as e:
        fail(f"{path}: cannot write ({e.strerror})")
    info(f"wrote {path}; check it with `cream validate {path}`")


@app.command()
def validate(config: Annotated[Path, typer.Argument(help="Experiment TOML file.")],
             set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Check a config and the files it points at; print the resolved config."""
    from cream_engine.config import to_toml

    cfg = _load(config, set_)
    if as_json:
        typer.echo(json.dumps(cfg.to_dict(), indent=2))
    else:
        typer.echo(to_toml(cfg), nl=False)
        info(f"{config}: ok ({cfg.run.method}, {cfg.run.iterations} iterations, "
             f"model {cfg.run.model})")


# -- runs ----------------------------------------------------------------------------------


def spawn_engine(run_dir: Path) -> int:
    """Run the engine in a child process (torch never enters this one); its exit code."""
    import subprocess

    try:
        return subprocess.call([sys.executable, "-m", "cream_engine", "run", str(run_dir)])
    except KeyboardInterrupt:  # the child got the Ctrl-C too and marks the run cancelled
        return 130


@app.command()
def run(ctx: typer.Context,
        config: Annotated[Path, typer.Argument(help="Experiment TOML file.")],
        home: HomeOpt = None, set_: SetOpt = None,
        new: Annotated[bool, typer.Option("--new", help="Start a new run even when an "
                                          "unfinished run of this config exists.")] = False
        ) -> None:
    """Run an experiment in the foreground (progress on stderr).

    Running the same command again resumes the newest unfinished run of the same config:
    finished stages are skipped, the interrupted one starts again."""
    cfg = _load(config, set_)
    run_id, code = run_foreground(_store(ctx, home, create=True), _home(ctx, home), cfg, new)
    typer.echo(run_id)
    raise typer.Exit(code)


def run_foreground(store: Any, home: Path, cfg: Any, new: bool = False) -> tuple[str, int]:
    """Create (or resume) a run of `cfg` and run the engine in a child process."""
    from cream_engine.runs import create_or_resume

    run_id, resumed = create_or_resume(store, home, cfg, new=new)
    run = store.get_run(run_id)
    info(f"resuming run {run_id} (was {run['status']})" if resumed else f"run {run_id}")
    store.close()
    return run_id, spawn_engine(Path(run["run_dir"]))



def _run_summary(store: Any, run: dict) -> dict:
    iters = store.iterations(run["id"])
    stages = store.stages(run["id"])
    current = next((s for s in reversed(stages) if s["status"] == "running"), None)
    done = sum(1 for i in iters if i["status"] == "done")
    end = run["ended_at"] or time.time()
    return {
        "id": run["id"], "name": run["name"], "method": run["method"], "model": run["model"],
        "status": run["status"], "iteration": done, "iterations": run["iterations"],
        "stage": current["stage"] if current else None,
        "stage_progress": [current["done_items"], current["total_items"]] if current else None,
        "created_at": run["created_at"],
        "elapsed_s": round(end - run["started_at"], 1) if run["started_at"] else None,
        "error": run["error"], "run_dir": run["run_dir"],
    }


@app.command()
def status(ctx: typer.Context,
           run: Annotated[Optional[str], typer.Argument(help="Run id, id prefix or name.")]
           = None, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """List runs, or show one run with its iterations, stages and latest metrics."""
    store = _store(ctx, home)
    if store is None:
        if run:
            fail(f"run {run!r}: no such run (no store at {_home(ctx, home)})")
        if as_json:
            typer.echo("[]")
        else:
            info(f"no runs yet under {_home(ctx, home)}: write a config with `cream init`, "
                 "then `cream run CONFIG`")
        return
    if run is None:
        rows = [_run_summary(store, r) for r in store.list_runs()]
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
        elif not rows:
            info("no runs yet: write a config with `cream init`, then `cream run CONFIG`")
        else:
            _print_runs(rows)
        return
    found = store.find_run(run)
    if found is None:
        fail(f"run {run!r}: no such run")
    detail = {**_run_summary(store, found), "iterations_detail": store.iterations(found["id"]),
              "stages": store.stages(found["id"]),
              "latest_metrics": store.latest_metrics(found["id"]),
              "git_commit": found["git_commit"]}
    if as_json:
        typer.echo(json.dumps(detail, indent=2))
    else:
        _print_run(detail)


def _fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def _print_runs(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for col in ("run", "method", "status", "iter", "stage", "created"):
        table.add_column(col)
    for r in rows:
        stage = r["stage"] or "-"
        if r["stage_progress"] and r["stage_progress"][1]:
            stage += f" {r['stage_progress'][0]}/{r['stage_progress'][1]}"
        table.add_row(r["id"], r["method"], r["status"], f"{r['iteration']}/{r['iterations']}",
                      stage, _fmt_time(r["created_at"]))
    Console().print(table)


def _print_run(d: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{d['id']}[/]  {d['method']} on {d['model']}  status {d['status']}  "
                  f"iteration {d['iteration']}/{d['iterations']}")
    if d["error"]:
        console.print(f"[red]error:[/] {d['error']}")
    table = Table(box=None, header_style="bold", title="iterations", title_justify="left")
    for col in ("t", "status", "pairs", "mean τ", "mean C", "agreement", "resp len"):
        table.add_column(col)

    def num(v: Any, f: str = "{:.3f}") -> str:
        return f.format(v) if isinstance(v, (int, float)) else "-"

    for it in d["iterations_detail"]:
        table.add_row(str(it["iteration"]), it["status"], num(it["n_pairs"], "{}"),
                      num(it["mean_tau"]), num(it["mean_consistency"]), num(it["agreement"]),
                      num(it["mean_response_length"], "{:.1f}"))
    console.print(table)
    if d["latest_metrics"]:
        console.print("latest: " + "  ".join(f"{k}={v:.4g}" for k, v in
                                             sorted(d["latest_metrics"].items())
                                             if v is not None))


# -- GPUs ----------------------------------------------------------------------------------


@app.command()
def gpus(as_json: JsonOpt = False) -> None:
    """Show the GPUs NVML sees (utilisation, memory, temperature, power, processes).

    With no GPU it says so and exits 0: runs then use the CPU."""
    from cream_tui.gpu import read_gpus

    report = read_gpus()
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    if not report.gpus:
        typer.echo(f"{report.reason}; runs use the CPU")
        return

    def na(v: Any, f: str) -> str:
        return f.format(v) if v is not None else "N/A"

    for g in report.gpus:
        typer.echo(f"[{g.index}] {g.name}  {na(g.utilization, '{:.0f}%')} util  "
                   f"{na(g.memory_used_mb, '{:.0f}')}/{na(g.memory_total_mb, '{:.0f}')} MiB  "
                   f"{na(g.temperature_c, '{:.0f}C')}  {na(g.power_w, '{:.0f} W')}  "
                   f"{len(g.processes)} procs  {g.uuid}")


# -- the demo and the dashboard ------------------------------------------------------------


@app.command()
def demo(ctx: typer.Context, home: HomeOpt = None,
         tiny: Annotated[bool, typer.Option("--tiny", help="Use bundled:tiny-random (fast).")]
         = False,
         no_tui: Annotated[bool, typer.Option("--no-tui", help="Do not open the dashboard.")]
         = False) -> None:
    """The first run: a small real experiment on the bundled SmolLM2-135M-Instruct."""
    from cream_tui import demo as demo_mod

    code = demo_mod.run_demo(_home(ctx, home), tiny=tiny, tui=not no_tui)
    raise typer.Exit(code)


@app.command()
def tui(ctx: typer.Context, home: HomeOpt = None,
        run: Annotated[Optional[str], typer.Option("--run", help="Open this run directly.")]
        = None) -> None:
    """Open the dashboard (also `cream-tui`). Over SSH: `ssh -t host cream tui`."""
    from cream_tui.app import run_app

    raise typer.Exit(run_app(_home(ctx, home), run))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("cream: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
