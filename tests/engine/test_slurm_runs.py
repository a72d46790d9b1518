"""Runs on a real Slurm cluster (the session's `slurm_cluster`: munged, slurmctld and slurmd
of Debian's slurm-wlm, started by tests/slurm_cluster.py): submitted with `cream submit
--executor slurm`, tracked through squeue, cancelled, retried, requeued, chained with --after,
and 20 at once followed with one squeue per poll."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from cream_engine import executors, queue
from cream_engine.config import from_dict, to_toml
from cream_engine.executors import slurm
from cream_engine.executors.sbatch import SlurmOptions
from cream_engine.store import Store, open_store
from tests.conftest import run_cli
from tests.engine.helpers import tiny_config


@pytest.fixture
def on_slurm(slurm_cluster, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """This test's data home, with every Slurm client (ours included) pointed at the cluster.
    Jobs a test left behind are cancelled after it."""
    for key, value in slurm_cluster.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CREAM_USER_CONFIG", str(tmp_path / "no-user-config.toml"))
    yield slurm_cluster
    store = open_store(home)
    for job in queue.active_slurm_jobs(store):
        slurm_cluster.run("scancel", job["slurm_id"])


def write_config(path: Path, model_dir: Path, **sections: dict) -> Path:
    cfg = tiny_config(model_dir, **{"run": {"iterations": 1}, "eval": {"enabled": False},
                                    **sections})
    path.write_text(to_toml(from_dict(cfg)))
    return path


def cli(home: Path, *args: str, timeout: float = 120, columns: int = 80):
    env = {k: v for k, v in os.environ.items() if k.startswith(("SLURM_", "CREAM_USER"))}
    return run_cli(*args, home=home, env={**env, "COLUMNS": str(columns)}, timeout=timeout)


def submit(home: Path, config: Path, *args: str) -> str:
    r = cli(home, "submit", str(config), "--executor", "slurm", "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["run_id"]


def wait_for(what, timeout: float = 240, every: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = what()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s")


def stage_running(home: Path, run_id: str, stage: str):
    def check():
        store = open_store(home)
        executors.sync(store, min_interval=1)
        return any(s["stage"] == stage and s["status"] == "running"
                   for s in store.stages(run_id))
    return check


def metric_keys(store: Store, run_id: str) -> list[tuple]:
    return [(m["iteration"], m["stage"], m["step"], m["name"]) for m in store.metric_rows(run_id)]


@pytest.mark.slow
def test_a_run_on_slurm_finishes_done_with_its_metrics_and_node(on_slurm, home: Path,
                                                                 tmp_path: Path,
                                                                 tiny_model_dir: Path) -> None:
    run_id = submit(home, write_config(tmp_path / "exp.toml", tiny_model_dir))
    r = cli(home, "queue", "wait", run_id, "--timeout", "300", timeout=320)
    assert r.returncode == 0, (r.stdout, r.stderr, on_slurm.log_tail("slurmd"))
    detail = json.loads(cli(home, "status", run_id, "--json").stdout)
    assert detail["status"] == "done" and detail["executor"] == "slurm"
    assert detail["slurm_state"] == "COMPLETED" and detail["node"] == socket.gethostname().split(
        ".")[0]
    assert detail["latest_metrics"].get("loss") is not None
    log = (Path(detail["run_dir"]) / "logs" / "job.log").read_text()
    assert f"== slurm job {detail['slurm_id']} restart 0 on" in log
    assert (Path(detail["run_dir"]) / "slurm" / "job.sbatch").is_file()


def test_bad_requests_are_one_line_and_record_nothing(on_slurm, home: Path, tmp_path: Path,
                                                      tiny_model_dir: Path) -> None:
    config = write_config(tmp_path / "exp.toml", tiny_model_dir)
    r = cli(home, "submit", str(config), "--executor", "slurm", "--partition", "nosuch")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("cream: error: sbatch --partition=nosuch")
    assert "invalid partition" in r.stderr.lower()
    r = cli(home, "submit", str(config), "--executor", "slurm", "--gres", "gpu:4")
    assert r.returncode == 3, r.stderr
    assert "Slurm cannot give this job what it asks" in r.stderr.strip().splitlines()[-1]
    store = open_store(home)
    assert store.list_runs() == [] and queue.jobs(store) == []
    assert [p.name for p in home.iterdir() if p.is_dir() and p.name != "models"] == []


def test_twenty_jobs_are_tracked_with_one_squeue_per_poll(on_slurm, home: Path,
                                                          tmp_path: Path, tiny_model_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """Held jobs (sbatch --hold) stay pending: 20 of them, then `cream queue ls` asks squeue
    once (a stand-in `squeue` first on PATH counts the calls and runs the real one)."""
    store = open_store(home)
    config = from_dict(tiny_config(tiny_model_dir, run={"iterations": 1}))
    opts = SlurmOptions(sbatch=("--hold",))
    ids = [slurm.submit(store, home, config, opts)[1] for _ in range(20)]
    assert len(set(ids)) == 20
    shim = tmp_path / "bin"
    shim.mkdir()
    calls = tmp_path / "squeue.calls"
    real = os.popen("command -v squeue").read().strip()
    (shim / "squeue").write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {real} "$@"\n')
    (shim / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")
    rows = json.loads(cli(home, "queue", "ls", "--json").stdout)["jobs"]
    assert len(calls.read_text().splitlines()) == 1
    assert len(rows) == 20 and {(j["executor"], j["status"], j["slurm_state"],
                                 j["slurm_reason"]) for j in rows} == {
        ("slurm", "queued", "PENDING", "JobHeldUser")}
    cli(home, "status", "--json")   # within the poll interval: no second query
    assert len(calls.read_text().splitlines()) == 1
    for job in queue.active_slurm_jobs(store):
        executors.cancel(store, job["run_id"])
    assert executors.sync(store, min_interval=0) == 1
    assert len(calls.read_text().splitlines()) == 2
    assert {j["status"] for j in queue.jobs(store)} == {"cancelled"}
    assert {r["status"] for r in store.list_runs()} == {"cancelled"}


def test_slurmctld_unreachable_is_shown_and_nothing_is_resubmitted(on_slurm, home: Path,
                                                                   tiny_model_dir: Path) -> None:
    store = open_store(home)
    config = from_dict(tiny_config(tiny_model_dir, run={"iterations": 1}))
    run_id, slurm_id = slurm.submit(store, home, config, SlurmOptions(sbatch=("--hold",)))
    on_slurm.stop_slurmctld()
    try:
        started = time.time()
        r = cli(home, "queue", "ls", columns=160)
        waited = time.time() - started
        assert r.returncode == 0, r.stderr
        assert f"unknown (slurmctld unreachable)  0     0     slurm {slurm_id} " in r.stdout, \
            r.stdout
        job = queue.latest_job(store, run_id)
        assert (job["status"], job["slurm_state"]) == ("queued", "UNKNOWN")
        r = cli(home, "queue", "retry", run_id)
        assert r.returncode == 2 and "already queued" in r.stderr
        assert len(queue.jobs_of_run(store, run_id)) == 1
    finally:
        on_slurm.start_slurmctld()
    executors.sync(store, min_interval=0)
    job = queue.latest_job(store, run_id)
    assert (job["slurm_id"], job["slurm_state"], job["slurm_reason"]) == (slurm_id, "PENDING",
                                                                          "JobHeldUser")
    assert waited < 60


@pytest.mark.slow
def test_cancel_during_training_then_retry_resumes(on_slurm, home: Path, tmp_path: Path,
                                                   tiny_model_dir: Path) -> None:
    config = write_config(tmp_path / "exp.toml", tiny_model_dir,
                          train={"epochs": 6, "learning_rate": 1e-3, "batch_size": 2})
    run_id = submit(home, config)
    wait_for(stage_running(home, run_id, "train"))
    r = cli(home, "queue", "cancel", run_id, "--timeout", "90", timeout=120)
    assert r.returncode == 0, r.stderr
    store = open_store(home)
    first = queue.latest_job(store, run_id)
    assert (first["status"], first["slurm_state"]) == ("cancelled", "CANCELLED")
    assert store.get_run(run_id)["status"] == "cancelled"
    before = {s["stage"]: s["started_at"] for s in store.stages(run_id) if s["status"] == "done"}
    assert "generate" in before and "train" not in before
    r = cli(home, "queue", "retry", run_id)
    assert r.returncode == 0, r.stderr
    r = cli(home, "queue", "wait", run_id, "--timeout", "300", timeout=320)
    assert r.returncode == 0, r.stderr
    jobs = queue.jobs_of_run(store, run_id)
    assert [j["status"] for j in jobs] == ["cancelled", "done"]
    assert jobs[0]["slurm_id"] != jobs[1]["slurm_id"]
    after = {s["stage"]: s["started_at"] for s in store.stages(run_id)}
    assert all(after[name] == started for name, started in before.items())  # not run again
    keys = metric_keys(store, run_id)
    assert len(keys) == len(set(keys))


@pytest.mark.slow
def test_a_requeued_job_resumes_without_duplicated_stages_or_metrics(
        on_slurm, home: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    """Requeued once training has a checkpoint: the same job id runs again, skips the
    finished stages, and training goes on from the checkpoint."""
    config = write_config(tmp_path / "exp.toml", tiny_model_dir,
                          train={"epochs": 6, "learning_rate": 1e-3, "batch_size": 2,
                                 "save_every": 2})
    run_id = submit(home, config)
    wait_for(stage_running(home, run_id, "train"))
    store = open_store(home)
    run_dir = store.run_path(store.require_run(run_id))
    wait_for(lambda: list(run_dir.glob("iter-0/.trainer/checkpoints/checkpoint-*/"
                                       "cream-complete")), every=0.2)
    job = queue.latest_job(store, run_id)
    before = {s["stage"]: s["started_at"] for s in store.stages(run_id) if s["status"] == "done"}
    r = on_slurm.run("scontrol", "requeue", job["slurm_id"])
    assert r.returncode == 0, r.stderr
    # Slurm holds a requeued job for cred_expire (120 s by default): let it start at once
    wait_for(lambda: on_slurm.job(job["slurm_id"]).get("JobState") == "PENDING", timeout=60)
    on_slurm.run("scontrol", "update", f"jobid={job['slurm_id']}", "StartTime=now")
    r = cli(home, "queue", "wait", run_id, "--timeout", "400", timeout=420)
    assert r.returncode == 0, (r.stderr, on_slurm.log_tail("slurmctld"))
    jobs = queue.jobs_of_run(store, run_id)
    assert len(jobs) == 1 and jobs[0]["status"] == "done" and jobs[0]["slurm_id"] == \
        job["slurm_id"]
    log = (store.run_path(store.require_run(run_id)) / "logs" / "job.log").read_text()
    assert "restart 0 on" in log and "restart 1 on" in log
    assert "train: resuming from checkpoint-" in log.split("restart 1 on")[1]
    after = {s["stage"]: s["started_at"] for s in store.stages(run_id)}
    assert all(after[name] == started for name, started in before.items())
    keys = metric_keys(store, run_id)
    assert len(keys) == len(set(keys))
    steps = sorted(k[2] for k in keys if k[1] == "train" and k[3] == "loss")
    assert steps == list(range(1, len(steps) + 1))


@pytest.mark.slow
def test_after_holds_the_second_run_until_the_first_is_done(on_slurm, home: Path,
                                                           tmp_path: Path,
                                                           tiny_model_dir: Path) -> None:
    first = submit(home, write_config(tmp_path / "a.toml", tiny_model_dir))
    second = submit(home, write_config(tmp_path / "b.toml", tiny_model_dir,
                                       run={"name": "second", "iterations": 1}),
                    "--after", first)
    store = open_store(home)
    executors.sync(store, min_interval=0)
    assert queue.latest_job(store, second)["slurm_reason"] == "Dependency"
    r = cli(home, "queue", "wait", first, second, "--timeout", "400", timeout=420)
    assert r.returncode == 0, r.stderr
    first_end = store.get_run(first)["ended_at"]
    second_start = min(s["started_at"] for s in store.stages(second))
    assert second_start >= first_end - 1.0


async def test_the_dashboard_shows_a_slurm_job_its_id_and_why_it_waits(
        on_slurm, home: Path, tiny_model_dir: Path) -> None:
    from cream_tui.screens.run import RunScreen
    from cream_tui.widgets.runs_table import RunsTable
    from tests.tui.helpers import make_app, screen_text, wait_loaded

    store = open_store(home)
    config = from_dict(tiny_config(tiny_model_dir, run={"iterations": 1}))
    run_id, slurm_id = slurm.submit(store, home, config, SlurmOptions(sbatch=("--hold",)))
    app = make_app(home)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_loaded(pilot)
        table = app.screen.query_one("#runs", RunsTable)
        row = [str(c) for c in table.get_row_at(0)]
        assert row[3] == "queued" and row[6] == f"S{slurm_id} JobHeldUser", row
        await pilot.press("enter")
        await wait_loaded(pilot)
        assert isinstance(app.screen, RunScreen)
        assert f"slurm {slurm_id} pending (JobHeldUser)" in screen_text(app)
    on_slurm.run("scontrol", "release", slurm_id)   # it runs: the node is shown
    wait_for(lambda: executors.sync(store, min_interval=0.5) is not None and
             queue.latest_job(store, run_id)["status"] == "running", timeout=60)
    app = make_app(home, run=run_id)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_loaded(pilot)
        node = socket.gethostname().split(".")[0]
        assert f"slurm {slurm_id} running on {node}" in screen_text(app)


@pytest.mark.slow
def test_training_ranks_start_with_srun_inside_the_job(on_slurm, home: Path, tmp_path: Path,
                                                       tiny_model_dir: Path) -> None:
    """`[train] launcher = "srun"`: the two DDP ranks are one srun step of the job (on its one
    node here; across nodes, the same command with --nodes K)."""
    config = write_config(tmp_path / "exp.toml", tiny_model_dir,
                          train={"processes": 2, "launcher": "srun", "batch_size": 2,
                                 "epochs": 2})
    run_id = submit(home, config, "--slurm-arg=--ntasks-per-node=2")
    r = cli(home, "queue", "wait", run_id, "--timeout", "400", timeout=420)
    store = open_store(home)
    log = (store.run_path(store.require_run(run_id)) / "logs" / "job.log").read_text()
    assert r.returncode == 0, log[-3000:]
    node = socket.gethostname().split(".")[0]
    assert f"train: 2 ranks with srun on 1 node(s) {node} (rendezvous {node}:" in log
    steps = [k[2] for k in metric_keys(store, run_id) if k[1] == "train" and k[3] == "loss"]
    assert steps == list(range(1, len(steps) + 1)) and steps
    train = next(s for s in store.stages(run_id) if s["stage"] == "train")
    assert json.loads(train["info"])["processes"] == 2
