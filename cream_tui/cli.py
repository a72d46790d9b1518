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
              "jobs": store.query("SELECT * FROM jobs WHERE run_id = ? ORDER BY id",
                                  [found["id"]]),
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


# -- the queue -----------------------------------------------------------------------------

queue_app = typer.Typer(no_args_is_help=True, help="The job queue: list, cancel, retry, "
                        "priorities, drain, wait.\n\n" + EXIT_CODES_HELP)
app.add_typer(queue_app, name="queue")
RunArg = Annotated[str, typer.Argument(help="Run id, id prefix or name.")]


def _queue_call(fn: Any, *args: Any) -> Any:
    from cream_engine.queue import QueueError

    try:
        return fn(*args)
    except QueueError as e:
        fail(str(e))


@app.command()
def submit(ctx: typer.Context,
           config: Annotated[Path, typer.Argument(help="Experiment TOML file.")],
           home: HomeOpt = None, set_: SetOpt = None,
           priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
           gpus: Annotated[Optional[int], typer.Option(
               help="GPUs for the job [default: 1 where there are GPUs, else the CPU].",
               show_default=False)] = None,
           min_free_mem: Annotated[float, typer.Option(
               "--min-free-mem", help="GB a GPU must have free to take the job.")] = 0.0,
           after: Annotated[Optional[str], typer.Option(
               help="Start only once this run has finished.")] = None,
           as_json: JsonOpt = False) -> None:
    """Queue a run for the worker; prints the run id.

    Validates the config, snapshots it (and the git commit of the current folder) into
    runs/<run-id>/, and adds a job that `cream worker` starts when a GPU (or the CPU) is free."""
    from cream_engine.queue import submit as submit_job
    from cream_tui.gpu import read_gpus

    cfg = _load(config, set_)
    if gpus:
        have = len(read_gpus().gpus)
        if gpus > have:
            fail(f"--gpus {gpus}: this machine has {have} GPU(s)", EXIT_NO_GPU)
    store = _store(ctx, home, create=True)
    run_id = _queue_call(lambda: submit_job(store, _home(ctx, home), cfg, priority=priority,
                                            gpus=gpus, min_free_mem_gb=min_free_mem,
                                            after=after))
    if as_json:
        typer.echo(json.dumps({"run_id": run_id, "run_dir": str(_home(ctx, home) / run_id)}))
    else:
        typer.echo(run_id)
    from cream_tui.worker import daemon_pid

    if daemon_pid(_home(ctx, home)) is None:
        info("no worker is running: start one with `cream worker start`")


@queue_app.command("ls")
def queue_ls(ctx: typer.Context, home: HomeOpt = None, as_json: JsonOpt = False,
             all_: Annotated[bool, typer.Option("--all", help="Include ended jobs.")] = False
             ) -> None:
    """List queued and running jobs (with --all: ended ones too)."""
    from cream_engine.queue import DRAIN_KEY, jobs, summary

    store = _store(ctx, home)
    rows = [summary(j) for j in jobs(store, include_ended=all_)] if store else []
    drained = bool(store) and store.get_setting(DRAIN_KEY) == "1"
    if as_json:
        typer.echo(json.dumps({"drained": drained, "jobs": rows}, indent=2))
        return
    if drained:
        info("the queue is drained: no new job starts (`cream queue resume` to undo)")
    if not rows:
        info("no jobs" + ("" if all_ else " queued or running") + "; add one with "
             "`cream submit CONFIG`")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for col in ("job", "run", "method", "status", "prio", "gpus", "pid", "started"):
        table.add_column(col)
    for j in rows:
        table.add_row(str(j["id"]), j["run_id"], j["method"], j["status"], str(j["priority"]),
                      "auto" if j["gpus"] is None else str(j["gpus"]), str(j["pid"] or "-"),
                      _fmt_time(j["started_at"]))
    Console().print(table)


@queue_app.command("cancel")
def queue_cancel(ctx: typer.Context, run: RunArg, home: HomeOpt = None,
                 wait: Annotated[bool, typer.Option(help="Wait until the job has stopped.")]
                 = True,
                 timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 60.0
                 ) -> None:
    """Cancel a run's job. A running one gets SIGTERM (its worker sends SIGKILL after the
    grace period); finished iterations stay usable and `cream queue retry` resumes."""
    from cream_engine.queue import cancel, latest_job

    store = _store(ctx, home)
    if store is None:
        fail(f"run {run!r}: no such run")
    job = _queue_call(cancel, store, run)
    if job["status"] == "running" and wait:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if latest_job(store, job["run_id"])["status"] != "running":
                break
            time.sleep(0.2)
        else:
            fail(f"run {job['run_id']}: still running after {timeout:.0f}s (is a worker "
                 "running? `cream worker status`)", EXIT_FAILED)
    typer.echo(f"{job['run_id']} cancelled")


@queue_app.command("retry")
def queue_retry(ctx: typer.Context, run: RunArg, home: HomeOpt = None) -> None:
    """Queue a failed or cancelled run again; it resumes from its last finished stage."""
    from cream_engine.queue import retry

    store = _store(ctx, home)
    if store is None:
        fail(f"run {run!r}: no such run")
    typer.echo(_queue_call(retry, store, run))


@queue_app.command("resume")
def queue_resume(ctx: typer.Context,
                 run: Annotated[Optional[str], typer.Argument(
                     help="A run to resume; without one, undo `cream queue drain`.")] = None,
                 home: HomeOpt = None) -> None:
    """Resume the queue after a drain, or (with RUN) queue a stopped run to resume."""
    from cream_engine.queue import retry, set_drain

    store = _store(ctx, home, create=run is None)
    if run is None:
        set_drain(store, False)
        typer.echo("queue resumed")
        return
    if store is None:
        fail(f"run {run!r}: no such run")
    typer.echo(_queue_call(retry, store, run))


@queue_app.command("priority")
def queue_priority(ctx: typer.Context, run: RunArg,
                   priority: Annotated[int, typer.Argument(help="New priority (higher first).")],
                   home: HomeOpt = None) -> None:
    """Change a queued job's priority."""
    from cream_engine.queue import set_priority

    store = _store(ctx, home)
    if store is None:
        fail(f"run {run!r}: no such run")
    _queue_call(set_priority, store, run, priority)
    typer.echo(f"{run}: priority {priority}")


@queue_app.command("drain")
def queue_drain(ctx: typer.Context, home: HomeOpt = None) -> None:
    """Start no new job (running ones finish); `cream queue resume` undoes it."""
    from cream_engine.queue import set_drain

    set_drain(_store(ctx, home, create=True), True)
    typer.echo("queue drained")


@queue_app.command("wait")
def queue_wait(ctx: typer.Context,
               runs: Annotated[Optional[list[str]], typer.Argument(
                   help="Runs to wait for [default: every queued or running run].")] = None,
               home: HomeOpt = None,
               timeout: Annotated[Optional[float], typer.Option(
                   help="Give up after this many seconds (exit 1).")] = None) -> None:
    """Block until the runs end; exit 1 if any of them failed or was cancelled."""
    from cream_engine.queue import jobs, run_ended

    store = _store(ctx, home)
    if store is None:
        if runs:
            fail(f"run {runs[0]!r}: no such run")
        return
    if runs:
        ids = []
        for ref in runs:
            found = store.find_run(ref)
            if found is None:
                fail(f"run {ref!r}: no such run")
            ids.append(found["id"])
    else:
        ids = sorted({j["run_id"] for j in jobs(store, include_ended=False)})
    deadline = None if timeout is None else time.time() + timeout
    pending = set(ids)
    statuses: dict[str, str] = {}
    while pending:
        for run_id in sorted(pending):
            ended, status = _queue_call(run_ended, store, run_id)
            if ended:
                statuses[run_id] = status
                pending.discard(run_id)
                typer.echo(f"{run_id} {status}")
        if pending:
            if deadline is not None and time.time() > deadline:
                fail(f"timed out waiting for {', '.join(sorted(pending))}", EXIT_FAILED)
            time.sleep(0.5)
    if any(s != "done" for s in statuses.values()):
        raise typer.Exit(EXIT_FAILED)


# -- the worker ----------------------------------------------------------------------------

worker_app = typer.Typer(no_args_is_help=True, help="The local GPU worker daemon that runs "
                         "queued jobs.\n\n" + EXIT_CODES_HELP)
app.add_typer(worker_app, name="worker")
NotifyOpt = Annotated[Optional[str], typer.Option(
    help="Shell command run for each alert (finished, failed, stalled) with the event as "
         "JSON on stdin, e.g. 'curl -d @- ntfy.sh/mytopic'.")]
GraceOpt = Annotated[float, typer.Option("--grace", help="Seconds between SIGTERM and SIGKILL "
                                         "when a job is cancelled.")]
StallOpt = Annotated[float, typer.Option("--stall-minutes", help="Alert when a run writes no "
                                         "metric and finishes no stage for this long.")]


CpuSlotsOpt = Annotated[int, typer.Option("--cpu-slots", min=1, help="Jobs run side by side "
                                          "on the CPU (jobs without a GPU); each gets an "
                                          "equal share of the cores.")]


def _worker_args(notify: str | None, grace: float, stall: float, cpu_slots: int) -> list[str]:
    args = ["--grace", str(grace), "--stall-minutes", str(stall), "--cpu-slots", str(cpu_slots)]
    return args + (["--notify", notify] if notify else [])


@worker_app.command("start")
def worker_start(ctx: typer.Context, home: HomeOpt = None, notify: NotifyOpt = None,
                 grace: GraceOpt = 10.0, stall_minutes: StallOpt = 30.0,
                 cpu_slots: CpuSlotsOpt = 1) -> None:
    """Start the worker as a daemon that survives the SSH session (log: <home>/worker.log)."""
    from cream_tui.worker import LOG_FILE, daemon_pid, start_daemon

    h = _home(ctx, home)
    pid = daemon_pid(h)
    if pid:
        typer.echo(f"worker already running (pid {pid})")
        return
    try:
        pid = start_daemon(h, _worker_args(notify, grace, stall_minutes, cpu_slots))
    except RuntimeError as e:
        fail(str(e), EXIT_FAILED)
    typer.echo(f"worker started (pid {pid}); log {h / LOG_FILE}")


@worker_app.command("stop")
def worker_stop(ctx: typer.Context, home: HomeOpt = None,
                timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 60.0
                ) -> None:
    """Stop the daemon: running jobs are stopped and queued again, to resume on next start."""
    from cream_tui.worker import daemon_pid, stop_daemon

    h = _home(ctx, home)
    pid = daemon_pid(h)
    if pid is None:
        typer.echo("no worker running")
        return
    if not stop_daemon(h, pid, timeout):
        fail(f"worker (pid {pid}) still running after {timeout:.0f}s", EXIT_FAILED)
    typer.echo(f"worker stopped (pid {pid})")


@worker_app.command("status")
def worker_status(ctx: typer.Context, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Is a worker running, since when, and which jobs it runs."""
    from cream_tui.worker import daemon_pid

    h = _home(ctx, home)
    store = _store(ctx, home)
    workers = store.query("SELECT * FROM workers ORDER BY started_at DESC") if store else []
    running = store.query("SELECT id, run_id, pid, worker, gpu_uuids FROM jobs WHERE "
                          "status = 'running'") if store else []
    data = {"daemon_pid": daemon_pid(h), "workers": workers, "running_jobs": running}
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"daemon: {'pid ' + str(data['daemon_pid']) if data['daemon_pid'] else 'not running'}")
    for w in workers[:5]:
        typer.echo(f"worker {w['id']}: {w['status']}, heartbeat "
                   f"{time.time() - w['heartbeat_at']:.0f}s ago")
    for j in running:
        typer.echo(f"job {j['id']} run {j['run_id']} pid {j['pid']} on {j['worker']}")


@worker_app.command("run")
def worker_run(ctx: typer.Context, home: HomeOpt = None, notify: NotifyOpt = None,
               grace: GraceOpt = 10.0, stall_minutes: StallOpt = 30.0,
               cpu_slots: CpuSlotsOpt = 1,
               once: Annotated[bool, typer.Option(
                   help="Exit when the queue is empty and no job runs.")] = False) -> None:
    """Run the worker in the foreground (Ctrl-C stops it and re-queues its jobs)."""
    from cream_tui.worker import main as worker_main

    args = ["--home", str(_home(ctx, home)),
            *_worker_args(notify, grace, stall_minutes, cpu_slots)]
    raise typer.Exit(worker_main(args + (["--once"] if once else [])))


@app.command()
def logs(ctx: typer.Context, run: RunArg, home: HomeOpt = None,
         follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines "
                                              "until the run ends.")] = False,
         lines: Annotated[int, typer.Option("-n", help="Lines from the end to start with.")]
         = 40) -> None:
    """Print a run's job log (engine stdout and stderr); -f follows it."""
    store = _store(ctx, home)
    found = store.find_run(run) if store else None
    if found is None:
        fail(f"run {run!r}: no such run")
    path = Path(found["run_dir"]) / "logs" / "job.log"
    if not path.exists() and not follow:
        fail(f"run {found['id']}: no log yet ({path}); it has not been started by a worker",
             EXIT_FAILED)
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
            if store.get_run(found["id"])["status"] in ("done", "failed", "cancelled"):
                typer.echo(fh.read(), nl=False)
                break
            time.sleep(0.3)


# -- GPUs ----------------------------------------------------------------------------------


@app.command()
def gpus(as_json: JsonOpt = False,
         watch: Annotated[float, typer.Option(
             "--watch", "-w", help="Refresh every this many seconds until Ctrl-C (0: once).")]
         = 0.0) -> None:
    """Show the GPUs NVML sees (utilisation, memory, temperature, power, processes).

    With no GPU it says so and exits 0: runs then use the CPU."""
    from cream_tui.gpu import read_gpus

    while True:
        report = read_gpus()
        if as_json:
            typer.echo(json.dumps(report.to_json(), indent=None if watch else 2))
        else:
            if watch:
                typer.echo(f"-- {_fmt_time(report.time)} --")
            _print_gpus(report)
        if not watch:
            return
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            return


def _print_gpus(report: Any) -> None:
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


# -- results -------------------------------------------------------------------------------


def _compare_call(fn: Any, *args: Any) -> Any:
    from cream_tui.compare import CompareError

    try:
        return fn(*args)
    except CompareError as e:
        fail(str(e))


@app.command()
def compare(ctx: typer.Context,
            runs: Annotated[list[str], typer.Argument(
                help="Runs to compare: ids, id prefixes or names.", show_default=False)],
            home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Runs side by side: the config keys that differ, then one row per model (M0, M1, ...)
    with pairs, mean τ, mean C, judge/implicit agreement and the evaluation results."""
    from cream_tui import compare as results

    store = _store(ctx, home)
    if store is None:
        fail(f"run {runs[0]!r}: no such run (no store at {_home(ctx, home)})")
    data = _compare_call(results.compare, store, runs)
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))  # default: TOML dates
    else:
        results.print_compare(data)


@app.command()
def export(ctx: typer.Context, run: RunArg, home: HomeOpt = None,
           format_: Annotated[str, typer.Option(
               "--format", help="csv or json.")] = "json",
           table: Annotated[Optional[str], typer.Option(
               "--table", help="metrics or iterations (default: metrics for csv, both for "
               "json).", show_default=False)] = None,
           output: Annotated[Optional[Path], typer.Option(
               "-o", "--output", help="Write to this file (atomically) instead of stdout.")]
           = None) -> None:
    """Export one run: JSON (the run with its config, iterations and metrics) or CSV (one
    table: metrics, or iterations with the evaluation as `eval.*` / `baseline.*` columns)."""
    from cream_tui import compare as results

    store = _store(ctx, home)
    if store is None:
        fail(f"run {run!r}: no such run (no store at {_home(ctx, home)})")
    text = _compare_call(results.export, store, run, format_, table)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        results.write_atomic(output, text)
    except OSError as e:
        fail(f"{output}: cannot write ({e.strerror})")
    info(str(output))


# -- the demo and the dashboard ------------------------------------------------------------


@app.command()
def demo(ctx: typer.Context, home: HomeOpt = None,
         tiny: Annotated[bool, typer.Option("--tiny", help="Use bundled:tiny-random (fast).")]
         = False,
         no_tui: Annotated[bool, typer.Option("--no-tui", help="Do not open the dashboard: "
                                              "wait for both runs, print the comparison.")]
         = False) -> None:
    """The first run: a `cream` and an `srlm` run on the bundled SmolLM2-135M-Instruct, queued
    for the worker (started if none runs), watched in the dashboard, then compared."""
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
