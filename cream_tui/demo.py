"""`cream demo`: the first-run experience. Queues a small `cream` run and the matching `srlm`
run on the bundled SmolLM2-135M-Instruct (`--tiny`: the random tiny model, about a minute),
starts the worker if none is running, and opens the dashboard on them; once both have ended,
the comparison shows their per-iteration consistency and evaluation side by side.

Everything heavy happens in child processes (`python -m cream_engine ...`, the worker), so the
CLI process never imports torch. Running the demo again picks up the unfinished demo runs of
the same config (queueing them to resume), or starts new ones once they are done.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

from cream_engine import paths, queue, results
from cream_engine.compare import compare
from cream_engine.config import ExperimentConfig, from_dict, to_toml
from cream_engine.daemon import LOG_FILE, daemon_pid, start_daemon, stop_daemon
from cream_engine.files import write_atomic
from cream_engine.gpu import read_gpus
from cream_engine.store import Store
from cream_engine.worker import WorkerOptions
from cream_tui import tables

METHODS = ("cream", "srlm")


def demo_config(method: str, tiny: bool) -> ExperimentConfig:
    """One demo run, sized so that both methods finish on 2 CPU cores in about 15 minutes
    (`tiny`: about a minute): 2 iterations of 8 prompts x 4 responses, each model evaluated on
    12 items of each bundled set and 8 held-out prompts."""
    model = "bundled:tiny-random" if tiny else "bundled:smollm2-135m-instruct"
    return from_dict({
        "run": {"name": f"demo-{method}" + ("-tiny" if tiny else ""), "method": method,
                "model": model, "iterations": 2},
        "data": {"prompts_per_iteration": 8},
        "generate": {"n": 4, "max_new_tokens": 24 if tiny else 64},
        "judge": {"samples": 1, "max_new_tokens": 0},
        "train": {"learning_rate": 5e-6, "batch_size": 2},
        "eval": {"max_items": 8 if tiny else 12, "max_new_tokens": 16 if tiny else 128,
                 "win_rate_prompts": 8},
    })


def say(message: str) -> None:
    typer.echo(f"cream demo: {message}", err=True)


def run_demo(home: Path, tiny: bool, tui: bool) -> int:
    configs = [demo_config(m, tiny) for m in METHODS]
    model = configs[0].run.model
    say(f"preparing {model} under {home} (the first time converts the bundled GGUF once; "
        "later runs reuse the folder)")
    proc = subprocess.run([sys.executable, "-m", "cream_engine", "--home", str(home),
                           "prepare-model", model], stdout=subprocess.DEVNULL)
    if proc.returncode != 0:
        return proc.returncode
    store = Store.open(home)
    assert store is not None
    run_ids = []
    for config in configs:
        path = home / "demo" / f"{config.run.name}.toml"
        write_atomic(path, to_toml(config, comments=True))
        run_id, how = queue.submit_or_resume(store, home, config)
        run_ids.append(run_id)
        say(f"{how} {run_id}: method {config.run.method}, {config.run.iterations} iterations x "
            f"{config.data.prompts_per_iteration} prompts x {config.generate.n} responses "
            f"(config {path})")

    started_worker = False
    pid = daemon_pid(home)
    if pid is None:
        # without a GPU both runs share the CPU cores side by side, each with half of them
        slots = 1 if read_gpus().gpus else len(configs)
        pid, started_worker = start_daemon(home, WorkerOptions(home, cpu_slots=slots).to_args())
        say(f"started the worker (pid {pid}; log {home / LOG_FILE})")
    else:
        say(f"the worker (pid {pid}) runs the demo's jobs")

    if tui and sys.stdin.isatty() and sys.stderr.isatty():  # the dashboard draws on stderr
        from cream_tui.app import run_app  # textual only when the dashboard opens

        run_app(home)
        if not all(queue.run_ended(store, r)[0] for r in run_ids):
            say("the runs go on in the background worker: `cream tui` to watch them again, "
                f"`cream compare {' '.join(run_ids)}` once they are done")
            return 0
    else:
        results.wait_for_runs(store, run_ids, ended=lambda r, status: say(f"{r}: {status}"),
                              moved=lambda s: say(f"{s.id}: {s.where}"))
        others = [j for j in queue.jobs(store, include_ended=False) if j["run_id"] not in run_ids]
        if started_worker and not others:
            stop_daemon(home, pid, timeout=30)
            say(f"stopped the worker it started (pid {pid})")
    tables.print_compare(compare(store, run_ids))
    failed = [store.require_run(r) for r in run_ids]
    failed = [run for run in failed if run["status"] != "done"]
    for run in failed:
        say(f"run {run['id']} {run['status']}: {run['error'] or 'see its log'} "
            f"({paths.job_log(store.run_path(run))})")
    return 1 if failed else 0
