"""The queue: `cream submit` and `cream queue ls|cancel|retry|resume|priority|drain|wait`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cream_engine import executors, queue, results
from cream_engine.daemon import daemon_pid
from cream_engine.errors import EXIT_CODES_HELP, EXIT_FAILED, CreamError, NoGpuError, UsageError
from cream_engine.executors import EXECUTORS, slurm
from cream_engine.gpu import read_gpus
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
    on_host,
    open_store,
    store_with,
)

queue_app = typer.Typer(no_args_is_help=True, help="The job queue: list, cancel, retry, "
                        "priorities, drain, wait.\n\n" + EXIT_CODES_HELP)


def submit(ctx: typer.Context, config: ConfigArg, home: HomeOpt = None, set_: SetOpt = None,
           priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
           gpus: Annotated[int | None, typer.Option(
               help="GPUs for the job [default: 1 where there are GPUs, else the CPU].",
               show_default=False)] = None,
           min_free_mem: Annotated[float, typer.Option(
               "--min-free-mem", help="GB a GPU must have free to take the job.")] = 0.0,
           after: Annotated[str | None, typer.Option(
               help="Start only once this run has finished.")] = None,
           executor: Annotated[str, typer.Option(
               help="local: this machine's worker; slurm: one sbatch job on the cluster.")]
           = "local",
           partition: Annotated[str | None, typer.Option(
               "--partition", "-p", help="Slurm partition.")] = None,
           gres: Annotated[str | None, typer.Option(
               help="Generic resources per node, e.g. gpu:8.")] = None,
           nodes: Annotated[int | None, typer.Option(
               "--nodes", "-N", help="Nodes (training spans them).", min=1)] = None,
           time_limit: Annotated[str | None, typer.Option(
               "--time", "-t", help="Time limit, e.g. 24:00:00.")] = None,
           account: Annotated[str | None, typer.Option(help="Account to charge.")] = None,
           qos: Annotated[str | None, typer.Option(help="Quality of service.")] = None,
           slurm_arg: Annotated[list[str] | None, typer.Option(
               "--slurm-arg", help="Any other sbatch option, e.g. --slurm-arg=--mem=200G "
               "(repeatable).")] = None,
           as_json: JsonOpt = False, host: HostOpt = None) -> None:
    """Queue a run for the worker, or submit it to Slurm; prints the run id.

    Validates the config, snapshots it (and the git commit of the current folder) into
    runs/<run-id>/, and adds a job that `cream worker` starts when a GPU (or the CPU) is free.
    With --executor slurm the job is one sbatch on the cluster instead (defaults for the
    Slurm options come from [slurm] in ~/.config/cream/config.toml)."""
    on_host(host)
    if executor not in EXECUTORS:
        raise UsageError(f"--executor {executor}: must be one of {', '.join(EXECUTORS)}")
    if executor == "slurm":
        _submit_slurm(ctx, config, home, set_, after, as_json, slurm.SlurmOptions.from_user(
            partition=partition, gres=gres, nodes=nodes, time=time_limit, account=account,
            qos=qos, sbatch=tuple(slurm_arg or ())))
        return
    slurm_only = {"--partition": partition, "--gres": gres, "--nodes": nodes,
                  "--time": time_limit, "--account": account, "--qos": qos,
                  "--slurm-arg": slurm_arg}
    given = [k for k, v in slurm_only.items() if v]
    if given:
        raise UsageError(f"{given[0]}: a Slurm option; add --executor slurm")
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


def _submit_slurm(ctx: typer.Context, config: Path, home: Path | None,
                  set_: list[str] | None, after: str | None, as_json: bool,
                  opts: slurm.SlurmOptions) -> None:
    """One sbatch job; checked before anything is recorded (Slurm there, the partition, the
    resources, the config)."""
    slurm.require_slurm()
    cfg = checked_config(ctx, config, set_, home, gpus=opts.gpus() * (opts.nodes or 1))
    home_dir = data_home(ctx, home)
    store = open_store(ctx, home, create=True)
    assert store is not None
    run_id, slurm_id = slurm.submit(store, home_dir, cfg, opts, after=after)
    if as_json:
        echo_json({"run_id": run_id, "run_dir": str(home_dir / run_id), "executor": "slurm",
                   "slurm_id": slurm_id}, indent=None)
    else:
        typer.echo(run_id)
    info(f"submitted to Slurm as job {slurm_id}; `cream queue ls` shows where it is")


@queue_app.command("ls")
def queue_ls(ctx: typer.Context, home: HomeOpt = None, as_json: JsonOpt = False,
             all_: Annotated[bool, typer.Option("--all", help="Include ended jobs.")] = False,
             host: HostOpt = None) -> None:
    """List queued and running jobs (with --all: ended ones too)."""
    on_host(host)
    store = open_store(ctx, home)
    if store is not None:
        executors.sync(store)
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
                 timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 60.0,
                 host: HostOpt = None) -> None:
    """Cancel a run's job. A running one gets SIGTERM (its worker sends SIGKILL after the
    grace period); finished iterations stay usable and `cream queue retry` resumes."""
    on_host(host)
    store = store_with(ctx, home, run)
    job = executors.cancel(store, run)
    slurm_job = job["executor"] == "slurm"
    if wait and (job["status"] == "running" or slurm_job):
        deadline = time.time() + timeout
        while queue.latest_job(store, job["run_id"])["status"] in ("running", "queued"):
            if time.time() > deadline:
                raise CreamError(f"run {job['run_id']}: still running after {timeout:.0f}s " +
                                 ("(Slurm has not ended it yet: `cream queue ls`)" if slurm_job
                                  else "(is a worker running? `cream worker status`)"))
            executors.sync(store, min_interval=1.0)
            time.sleep(0.2)
    typer.echo(f"{job['run_id']} cancelled")


@queue_app.command("retry")
def queue_retry(ctx: typer.Context, run: RunArg, home: HomeOpt = None,
                host: HostOpt = None) -> None:
    """Queue a failed or cancelled run again (a Slurm run: sbatch again); it resumes from its
    last finished stage."""
    on_host(host)
    typer.echo(executors.retry(store_with(ctx, home, run), data_home(ctx, home), run))


@queue_app.command("resume")
def queue_resume(ctx: typer.Context,
                 run: Annotated[str | None, typer.Argument(
                     help="A run to resume; without one, undo `cream queue drain`.")] = None,
                 home: HomeOpt = None, host: HostOpt = None) -> None:
    """Resume the queue after a drain, or (with RUN) queue a stopped run to resume."""
    on_host(host)
    if run is not None:
        typer.echo(executors.retry(store_with(ctx, home, run), data_home(ctx, home), run))
        return
    store = open_store(ctx, home, create=True)
    assert store is not None
    queue.set_drain(store, False)
    typer.echo("queue resumed")


@queue_app.command("priority")
def queue_priority(ctx: typer.Context, run: RunArg,
                   priority: Annotated[int, typer.Argument(help="New priority (higher first).")],
                   home: HomeOpt = None, host: HostOpt = None) -> None:
    """Change a queued job's priority."""
    on_host(host)
    store = store_with(ctx, home, run)
    run_id = store.require_run(run)["id"]  # (the line names the run a name or prefix meant)
    queue.set_priority(store, run_id, priority)
    typer.echo(f"{run_id}: priority {priority}")


@queue_app.command("drain")
def queue_drain(ctx: typer.Context, home: HomeOpt = None,
                host: HostOpt = None) -> None:
    """Start no new job (running ones finish); `cream queue resume` undoes it."""
    on_host(host)
    store = open_store(ctx, home, create=True)
    assert store is not None
    queue.set_drain(store, True)
    typer.echo("queue drained")


@queue_app.command("wait")
def queue_wait(ctx: typer.Context,
               runs: Annotated[list[str] | None, typer.Argument(
                   help="Runs to wait for [default: every queued or running run].")] = None,
               home: HomeOpt = None,
               timeout: Annotated[float | None, typer.Option(
                   help="Give up after this many seconds (exit 1).")] = None,
               host: HostOpt = None) -> None:
    """Block until the runs end; exit 1 if any of them failed or was cancelled."""
    on_host(host)
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
