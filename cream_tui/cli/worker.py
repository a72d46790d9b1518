"""`cream worker start|stop|status|run`: the local worker daemon (one per data home)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from cream_engine import queue
from cream_engine.daemon import LOG_FILE, daemon_pid, liveness, start_daemon, stop_daemon
from cream_engine.errors import EXIT_CODES_HELP, WorkerError
from cream_engine.paths import require_writable
from cream_engine.worker import WorkerOptions
from cream_engine.worker import main as worker_main
from cream_tui import tables
from cream_tui.cli.common import HomeOpt, JsonOpt, data_home, echo_json, open_store

worker_app = typer.Typer(no_args_is_help=True, help="The local GPU worker daemon that runs "
                         "queued jobs (one per data home).\n\n" + EXIT_CODES_HELP)

NotifyOpt = Annotated[str | None, typer.Option(
    help="Shell command run for each alert (finished, failed, stalled) with the event as "
         "JSON on stdin, e.g. 'curl -d @- ntfy.sh/mytopic'.")]
GraceOpt = Annotated[float, typer.Option("--grace", help="Seconds between SIGTERM and SIGKILL "
                                         "when a job is cancelled.")]
StallOpt = Annotated[float, typer.Option("--stall-minutes", help="Alert when a run writes no "
                                         "metric and finishes no stage for this long.")]
CpuSlotsOpt = Annotated[int, typer.Option("--cpu-slots", min=1, help="Jobs run side by side "
                                          "on the CPU (jobs without a GPU); each gets an "
                                          "equal share of the cores.")]
DEFAULT = WorkerOptions(home=None)  # type: ignore[arg-type]  # the defaults, in one place


@worker_app.command("start")
def worker_start(ctx: typer.Context, home: HomeOpt = None, notify: NotifyOpt = None,
                 grace: GraceOpt = DEFAULT.grace_s, stall_minutes: StallOpt =
                 DEFAULT.stall_minutes, cpu_slots: CpuSlotsOpt = DEFAULT.cpu_slots) -> None:
    """Start the worker as a daemon that survives the SSH session (log: <home>/worker.log)."""
    h = data_home(ctx, home)
    pid = daemon_pid(h)
    if pid:
        typer.echo(f"worker already running (pid {pid})")
        return
    require_writable(h)  # (before its log is opened there)
    opts = WorkerOptions(home=h, notify=notify, grace_s=grace, stall_minutes=stall_minutes,
                         cpu_slots=cpu_slots)
    pid, started = start_daemon(h, opts.to_args())
    if started:
        typer.echo(f"worker started (pid {pid}); log {h / LOG_FILE}")
    else:
        typer.echo(f"worker already running (pid {pid})")


@worker_app.command("stop")
def worker_stop(ctx: typer.Context, home: HomeOpt = None,
                timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 60.0
                ) -> None:
    """Stop the daemon: running jobs are stopped and queued again, to resume on next start."""
    h = data_home(ctx, home)
    pid = daemon_pid(h)
    if pid is None:
        typer.echo("no worker running")
        return
    if not stop_daemon(h, pid, timeout):
        raise WorkerError(f"worker (pid {pid}) still running after {timeout:.0f}s")
    typer.echo(f"worker stopped (pid {pid})")


@worker_app.command("status")
def worker_status(ctx: typer.Context, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Is a worker running, since when, and which jobs it runs; a worker that died without
    stopping (SIGKILL, a reboot) shows as gone."""
    store = open_store(ctx, home)
    h = data_home(ctx, home)
    workers = [{**w, "liveness": liveness(w, h)} for w in queue.workers(store)] if store else []
    data = {"daemon_pid": daemon_pid(h), "workers": workers,
            "running_jobs": [{k: j[k] for k in ("id", "run_id", "pid", "worker", "gpu_uuids")}
                             for j in queue.running_jobs(store)] if store else [],
            "time": time.time()}
    if as_json:
        echo_json(data)
    else:
        for line in tables.worker_lines(data):
            typer.echo(line)


@worker_app.command("run")
def worker_run(ctx: typer.Context, home: HomeOpt = None, notify: NotifyOpt = None,
               grace: GraceOpt = DEFAULT.grace_s, stall_minutes: StallOpt =
               DEFAULT.stall_minutes, cpu_slots: CpuSlotsOpt = DEFAULT.cpu_slots,
               once: Annotated[bool, typer.Option(
                   help="Exit when the queue is empty and no job runs.")] = False) -> None:
    """Run the worker in the foreground (Ctrl-C stops it and re-queues its jobs)."""
    require_writable(data_home(ctx, home))  # (the worker says so too, in its log's format)
    opts = WorkerOptions(home=data_home(ctx, home), notify=notify, grace_s=grace,
                         stall_minutes=stall_minutes, cpu_slots=cpu_slots, once=once)
    raise typer.Exit(worker_main(opts.to_args()))
