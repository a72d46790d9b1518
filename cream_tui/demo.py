"""`cream demo`: the first-run experience. Queues a small `cream` run and the matching `srlm`
run on the bundled SmolLM2-135M-Instruct (`--tiny`: the random tiny model, about a minute),
starts the worker if none is running, and opens the dashboard on them; once both have ended,
`cream compare` shows their per-iteration consistency and evaluation side by side.

Everything heavy happens in child processes (`python -m cream_engine ...`, the worker), so the
CLI process never imports torch. Running the demo again picks up the unfinished demo runs of
the same config (queueing them to resume), or starts new ones once they are done.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cream_engine.config import ExperimentConfig, from_dict, to_toml

if TYPE_CHECKING:
    from cream_engine.store import Store

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


def run_demo(home: Path, tiny: bool, tui: bool) -> int:
    from cream_engine.store import open_store
    from cream_tui.gpu import read_gpus
    from cream_tui.worker import daemon_pid, start_daemon, stop_daemon

    say = lambda m: typer.echo(f"cream demo: {m}", err=True)  # noqa: E731
    configs = [demo_config(m, tiny) for m in METHODS]
    model = configs[0].run.model
    say(f"preparing {model} under {home} (the first time converts the bundled GGUF once; "
        "later runs reuse the folder)")
    proc = subprocess.run([sys.executable, "-m", "cream_engine", "--home", str(home),
                           "prepare-model", model], stdout=subprocess.DEVNULL)
    if proc.returncode != 0:
        return proc.returncode
    store = open_store(home)
    run_ids = []
    for config in configs:
        path = home / "demo" / f"{config.run.name}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_toml(config, comments=True), encoding="utf-8")
        run_id, how = queue_run(store, home, config)
        run_ids.append(run_id)
        say(f"{how} {run_id}: method {config.run.method}, {config.run.iterations} iterations x "
            f"{config.data.prompts_per_iteration} prompts x {config.generate.n} responses "
            f"(config {path})")

    started_worker = False
    pid = daemon_pid(home)
    if pid is None:
        gpus = read_gpus().gpus
        # without a GPU both runs share the CPU cores side by side, each with half of them
        pid = start_daemon(home, [] if gpus else ["--cpu-slots", str(len(configs))])
        started_worker = True
        say(f"started the worker (pid {pid}; log {home / 'worker.log'})")
    else:
        say(f"the worker (pid {pid}) runs the demo's jobs")

    if tui and sys.stdin.isatty() and sys.stderr.isatty():  # the dashboard draws on stderr
        from cream_tui.app import run_app

        run_app(home)
        if not all(_ended(store, r) for r in run_ids):
            say("the runs go on in the background worker: `cream tui` to watch them again, "
                f"`cream compare {' '.join(run_ids)}` once they are done")
            return 0
    else:
        _wait(store, run_ids, say)
        if started_worker and not _other_jobs(store, run_ids):
            stop_daemon(home, pid, timeout=30)
            say(f"stopped the worker it started (pid {pid})")
    from cream_tui.cli import app

    app(["--home", str(home), "compare", *run_ids], standalone_mode=False)
    failed = [r for r in run_ids if store.get_run(r)["status"] != "done"]
    for r in failed:
        run = store.get_run(r)
        say(f"run {r} {run['status']}: {run['error'] or 'see its log'} "
            f"({Path(run['run_dir']) / 'logs' / 'job.log'})")
    return 1 if failed else 0


def queue_run(store: Store, home: Path, config: ExperimentConfig) -> tuple[str, str]:
    """The unfinished demo run of this config (queued again if it failed or was cancelled),
    else a new run in the queue. Returns (run id, what was done)."""
    from cream_engine.queue import JOB_ENDED, latest_job, retry, submit
    from cream_engine.runs import find_resumable

    existing = find_resumable(store, config)
    if existing is None:
        return submit(store, home, config), "queued"
    job = latest_job(store, existing["id"])
    if job is None or job["status"] in JOB_ENDED:
        retry(store, existing["id"])
        return existing["id"], "resuming"
    return existing["id"], f"already {job['status']}:"


def _ended(store: Store, run_id: str) -> bool:
    from cream_engine.queue import run_ended

    return run_ended(store, run_id)[0]


def _other_jobs(store: Store, run_ids: list[str]) -> bool:
    from cream_engine.queue import jobs

    return any(j["run_id"] not in run_ids for j in jobs(store, include_ended=False))


def _wait(store: Store, run_ids: list[str], say: Callable[[str], None]) -> None:
    """Until both runs end: a line on stderr whenever a run moves to another stage."""
    shown: dict[str, str] = {}
    while not all(_ended(store, r) for r in run_ids):
        for r in run_ids:
            line = _where(store, r)
            if shown.get(r) != line:
                shown[r] = line
                say(f"{r}: {line}")
        time.sleep(1.0)
    for r in run_ids:
        say(f"{r}: {store.get_run(r)['status']}")


def _where(store: Store, run_id: str) -> str:
    run = store.get_run(run_id)
    stages = store.stages(run_id)
    running = [s for s in stages if s["status"] == "running"]
    if not running:
        return run["status"]
    s = running[-1]
    return f"iteration {s['iteration']} {s['stage']}"
