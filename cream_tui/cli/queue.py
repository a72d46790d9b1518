"""The queue: `cream submit` and `cream queue ls|cancel|retry|resume|priority|drain|wait`."""

from __future__ import annotations

import time
from typing import Annotated, Optional

import typer

from cream_engine import queue, results
from cream_engine.daemon import daemon_pid
from cream_engine.errors import EXIT_CODES_HELP, EXIT_FAILED, CreamError, NoGpuError
from cream_engine.gpu import read_gpus
from cream_tui import tables
from cream_tui.cli.common import (
    ConfigArg,
    HomeOpt,
    JsonOpt,
    RunArg,
    SetOpt,
    checked_config,
    data_home,
    echo_json,
    info,
    open_store,
    store_with,
)

queue_app = typer.Typer(no_args_is_help=True, help="The job queue: list, cancel, retry, "
                        "priorities, drain, wait.\n\n" + EXIT_CODES_HELP)


def submit(ctx: typer.Context, config: ConfigArg, home: HomeOpt = None, set_: SetOpt = None,
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
    have = len(read_gpus().gpus)
    if gpus and gpus > have:
        raise NoGpuError(f"--gpus {gpus}: this machine has {have} GPU(s)")
    cfg = checked_config(ctx, config, set_, home, gpus=gpus or min(have, 1))
    home_dir = data_home(ctx, home)
    store = open_store(ctx, home, create=True)
    assert store is not None
    run_id = queue.submit(store, home_dir, cfg, priority=priority, gpus=gpus,
                          min_free_mem_gb=min_free_mem, after=after)
    if as_json:
        echo_json({"run_id": run_id, "run_dir": str(home_dir / run_id)}, indent=None)
    else:
        typer.echo(run_id)
    if daemon_pid(home_dir) is None:
        info("no worker is running: start one with `cream worker start`")


@queue_app.command("ls")
def queue_ls(ctx: typer.Context, home: HomeOpt = None, as_json: JsonOpt = False,
             all_: Annotated[bool, typer.Option("--all", help="Include ended jobs.")] = False
             ) -> None:
    """List queued and running jobs (with --all: ended ones too)."""
    store = open_store(ctx, home)
    rows = [queue.summary(j) for j in queue.jobs(store, include_ended=all_)] if store else []
    drained = store is not None and queue.drained(store)
    if as_json:
        echo_json({"drained": drained, "jobs": rows})
        return
    if drained:
        info("the queue is drained: no new job starts (`cream queue resume` to undo)")
    if not rows:
        info("no jobs" + ("" if all_ else " queued or running") + "; add one with "
             "`cream submit CONFIG`")
        return
    tables.print_jobs(rows)


@queue_app.command("cancel")
def queue_cancel(ctx: typer.Context, run: RunArg, home: HomeOpt = None,
                 wait: Annotated[bool, typer.Option(help="Wait until the job has stopped.")]
                 = True,
                 timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 60.0
                 ) -> None:
    """Cancel a run's job. A running one gets SIGTERM (its worker sends SIGKILL after the
    grace period); finished iterations stay usable and `cream queue retry` resumes."""
    store = store_with(ctx, home, run)
    job = queue.cancel(store, run)
    if job["status"] == "running" and wait:
        deadline = time.time() + timeout
        while queue.latest_job(store, job["run_id"])["status"] == "running":
            if time.time() > deadline:
                raise CreamError(f"run {job['run_id']}: still running after {timeout:.0f}s "
                                 "(is a worker running? `cream worker status`)")
            time.sleep(0.2)
    typer.echo(f"{job['run_id']} cancelled")


@queue_app.command("retry")
def queue_retry(ctx: typer.Context, run: RunArg, home: HomeOpt = None) -> None:
    """Queue a failed or cancelled run again; it resumes from its last finished stage."""
    typer.echo(queue.retry(store_with(ctx, home, run), run))


@queue_app.command("resume")
def queue_resume(ctx: typer.Context,
                 run: Annotated[Optional[str], typer.Argument(
                     help="A run to resume; without one, undo `cream queue drain`.")] = None,
                 home: HomeOpt = None) -> None:
    """Resume the queue after a drain, or (with RUN) queue a stopped run to resume."""
    if run is not None:
        typer.echo(queue.retry(store_with(ctx, home, run), run))
        return
    store = open_store(ctx, home, create=True)
    assert store is not None
    queue.set_drain(store, False)
    typer.echo("queue resumed")


@queue_app.command("priority")
def queue_priority(ctx: typer.Context, run: RunArg,
                   priority: Annotated[int, typer.Argument(help="New priority (higher first).")],
                   home: HomeOpt = None) -> None:
    """Change a queued job's priority."""
    queue.set_priority(store_with(ctx, home, run), run, priority)
    typer.echo(f"{run}: priority {priority}")


@queue_app.command("drain")
def queue_drain(ctx: typer.Context, home: HomeOpt = None) -> None:
    """Start no new job (running ones finish); `cream queue resume` undoes it."""
    store = open_store(ctx, home, create=True)
    assert store is not None
    queue.set_drain(store, True)
    typer.echo("queue drained")


@queue_app.command("wait")
def queue_wait(ctx: typer.Context,
               runs: Annotated[Optional[list[str]], typer.Argument(
                   help="Runs to wait for [default: every queued or running run].")] = None,
               home: HomeOpt = None,
               timeout: Annotated[Optional[float], typer.Option(
                   help="Give up after this many seconds (exit 1).")] = None) -> None:
    """Block until the runs end; exit 1 if any of them failed or was cancelled."""
    if runs:
        store = store_with(ctx, home, runs[0])
        ids = [store.require_run(ref)["id"] for ref in runs]
    else:
        store = open_store(ctx, home)
        if store is None:
            return
        ids = sorted({j["run_id"] for j in queue.jobs(store, include_ended=False)})
    statuses = results.wait_for_runs(store, ids, timeout, ended=lambda run_id, status:
                                     typer.echo(f"{run_id} {status}"))
    if any(s != "done" for s in statuses.values()):
        raise typer.Exit(EXIT_FAILED)
