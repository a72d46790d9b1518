"""`cream demo`: the first-run experience. Queues a small `cream` run and the matching `srlm`
run on the bundled SmolLM2-135M-Instruct (`--tiny`: the random tiny model, about a minute),
starts the worker if none is running, and opens the dashboard on them; once both have ended,
the comparison shows their per-iteration consistency and evaluation side by side, each
accuracy with its n and 95% interval and a verdict on whether the methods differ beyond noise.

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
from cream_engine.compare import compare, labels
from cream_engine.config import ExperimentConfig, from_dict, to_toml
from cream_engine.daemon import LOG_FILE, daemon_pid, start_daemon, stop_daemon
from cream_engine.files import write_atomic
from cream_engine.gpu import read_gpus
from cream_engine.stats import difference_verdict, proportion_interval
from cream_engine.store import Store
from cream_engine.worker import WorkerOptions
from cream_tui import tables

METHODS = ("cream", "srlm")


def demo_config(method: str, tiny: bool) -> ExperimentConfig:
    """One demo run, sized so that both methods finish on 2 quiet CPU cores in under 8
    minutes (`tiny`: about a minute): the seed SFT (M0 -> M1, 48 bundled seed examples, one
    epoch), then 2 iterations of 6 prompts x 4 responses; M0, M1 and the last model evaluated
    on 10 items of each bundled set and 4 held-out prompts. Both runs start from the same M0
    with the same SFT, so M0's evaluation, M1 and M1's evaluation are computed once and shared
    through the home's cache; the runs then go on side by side."""
    model = "bundled:tiny-random" if tiny else "bundled:smollm2-135m-instruct"
    return from_dict({
        "run": {"name": f"demo-{method}" + ("-tiny" if tiny else ""), "method": method,
                "model": model, "iterations": 2},
        # a demo-sized SFT: the papers' is 5 epochs at 5e-6 over thousands of examples
        "sft": {"enabled": True, "max_examples": 16 if tiny else 48, "epochs": 1,
                "learning_rate": 2e-5, "batch_size": 8, "max_length": 384},
        "data": {"prompts_per_iteration": 6},
        "generate": {"n": 4, "max_new_tokens": 24 if tiny else 56},
        "judge": {"samples": 1, "max_new_tokens": 0},
        "train": {"learning_rate": 5e-6, "batch_size": 2},
        "eval": {"max_items": 8 if tiny else 10, "max_new_tokens": 16 if tiny else 96,
                 "win_rate_prompts": 4, "every": 2},
    })


def say(message: str) -> None:
    typer.echo(f"cream demo: {message}", err=True)


def run_demo(home: Path, tiny: bool, tui: bool) -> int:
    configs = [demo_config(m, tiny) for m in METHODS]
    model = configs[0].run.model
    # built once under <home>/models: the first time it says so on stderr, with the time taken
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
    data = compare(store, run_ids)
    tables.print_compare(data)
    for line in accuracy_lines(data):
        typer.echo(line)
    failed = [store.require_run(r) for r in run_ids]
    failed = [run for run in failed if run["status"] != "done"]
    for run in failed:
        say(f"run {run['id']} {run['status']}: {run['error'] or 'see its log'} "
            f"({paths.job_log(store.run_path(run))})")
    return 1 if failed else 0


ACCURACIES = ("gen_acc", "ll_acc", "ll_acc_norm")


def accuracy_lines(data: dict) -> list[str]:
    """Every accuracy of the comparison (`compare()`'s rows) with its n and 95% Wilson
    interval, then per metric one sentence on whether the last model of the first run that
    has it and that of each other run differ by more than noise (Newcombe's interval,
    `cream_engine.stats`)."""
    names = dict(zip((r["id"] for r in data["runs"]), labels(data["runs"])))
    lines, last = [], {}  # last: (set, metric) -> {run: (model, k, n)}
    for row in data["rows"]:
        for name, scores in sorted(((row["eval"] or {}).get("sets") or {}).items()):
            n = scores.get("n") if isinstance(scores, dict) else None
            for metric in ACCURACIES:
                acc = scores.get(metric) if n else None
                if acc is None:
                    continue
                k = round(acc * n)  # (an accuracy is k/n over the set's n items)
                low, high = proportion_interval(k, n)
                lines.append(f"{names[row['run']]} {row['model']} {name} {metric} {acc:.3f} "
                             f"(n = {n}, 95% CI {low:.2f}-{high:.2f})")
                last.setdefault((name, metric), {})[row["run"]] = (row["model"], k, n)
    if not lines:
        return []
    lines.insert(0, "accuracy with its 95% interval (Wilson):")
    order = [r["id"] for r in data["runs"]]
    verdicts = []
    for (name, metric), per in last.items():
        measured = [r for r in order if r in per]  # the first such run against each other
        for other in measured[1:]:
            (m1, k1, n1), (m2, k2, n2) = per[measured[0]], per[other]
            verdicts.append(f"{name} {metric}: " + difference_verdict(
                k1, n1, k2, n2, labels=(f"{names[measured[0]]} {m1}", f"{names[other]} {m2}")))
    if verdicts:
        lines.append("the methods' last models, difference within noise or not (95% "
                     "interval, Newcombe):")
        lines += verdicts
    return lines
