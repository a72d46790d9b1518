"""The real worker against real tiny jobs: order, cancel, crash recovery, GPUs, alerts; one
worker per data home, and a dead one reported as gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cream_engine.config import from_dict, to_toml
from cream_engine.daemon import daemon_pid
from cream_engine.store import open_store
from tests.conftest import run_cli


def tiny_toml(path: Path, model_dir: Path, name: str, iterations: int = 1) -> Path:
    config = from_dict({
        "run": {"name": name, "method": "cream", "model": str(model_dir),
                "iterations": iterations},
        "data": {"prompts_per_iteration": 4},
        "generate": {"n": 2, "max_new_tokens": 8},
        "judge": {"samples": 1, "max_new_tokens": 0},
        "train": {"batch_size": 2},
        "eval": {"enabled": False}})
    path.write_text(to_toml(config))
    return path


def submit(home: Path, config: Path, *args: str) -> str:
    r = run_cli("submit", str(config), *args, home=home)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def wait_for(predicate, timeout: float = 180, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def daemon(tmp_path: Path):
    """Start/stop helpers for the worker daemon of a temporary home; always stopped after."""
    home = tmp_path / "home"

    def start(*args: str) -> int:
        r = run_cli("worker", "start", "--grace", "5", *args, home=home)
        assert r.returncode == 0, r.stderr
        return daemon_pid(home)

    yield home, start
    pid = daemon_pid(home)
    if pid:
        os.kill(pid, signal.SIGKILL)
    store = open_store(home, create=False)
    for job in (store.query("SELECT pid FROM jobs WHERE pid IS NOT NULL") if store else []):
        try:
            os.killpg(job["pid"], signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def test_priorities_decide_the_order(tmp_path: Path, tiny_model_dir: Path) -> None:
    home = tmp_path / "home"
    low = submit(home, tiny_toml(tmp_path / "a.toml", tiny_model_dir, "low"), "--priority", "1")
    high = submit(home, tiny_toml(tmp_path / "b.toml", tiny_model_dir, "high"),
                  "--priority", "5")
    r = run_cli("worker", "run", "--once", home=home, timeout=400)
    assert r.returncode == 0, r.stderr[-2000:]
    jobs = {j["run_id"]: j for j in open_store(home).query("SELECT * FROM jobs")}
    assert jobs[high]["started_at"] < jobs[low]["started_at"]
    assert jobs[high]["ended_at"] <= jobs[low]["started_at"]  # the CPU runs one at a time
    assert {j["status"] for j in jobs.values()} == {"done"}
    r = run_cli("queue", "wait", low, high, home=home)
    assert r.returncode == 0 and f"{high} done" in r.stdout
    log = run_cli("logs", high, home=home).stdout
    assert "done" in log and "iter 0 train" in log


def test_cancel_stops_a_running_job_within_the_grace_period(
        daemon, tmp_path: Path, tiny_model_dir: Path) -> None:
    home, start = daemon
    run_id = submit(home, tiny_toml(tmp_path / "c.toml", tiny_model_dir, "long", 6))
    start()
    store = open_store(home)
    wait_for(lambda: store.stage_status(run_id, 0, "generate") == "done", what="a stage")
    started = time.time()
    r = run_cli("queue", "cancel", run_id, home=home)
    assert r.returncode == 0, r.stderr
    assert time.time() - started < 5 + 3  # grace 5 s plus a poll or two
    job = store.query("SELECT * FROM jobs WHERE run_id = ?", [run_id])[-1]
    assert job["status"] == "cancelled"
    assert store.get_run(run_id)["status"] == "cancelled"
    assert store.stage_status(run_id, 0, "generate") == "done"   # finished work is kept
    assert not _alive_group(job["pid"])
    r = run_cli("queue", "wait", run_id, home=home)
    assert r.returncode == 1  # cancelled counts as not ok


def _alive_group(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _no_duplicates(home: Path, run_id: str, iterations: int) -> None:
    store = open_store(home)
    stages = store.stages(run_id)
    assert len(stages) == 5 * iterations and all(s["status"] == "done" for s in stages)
    for it in store.iterations(run_id):
        steps = -(-it["n_pairs"] // 2)
        n = store.query("SELECT COUNT(*) AS n FROM metrics WHERE run_id = ? AND iteration = ? "
                        "AND name = 'loss'", [run_id, it["iteration"]])[0]["n"]
        assert n == steps


@pytest.mark.parametrize("kill_engine_too", [False, True])
def test_worker_sigkill_then_start_finishes_the_job(
        daemon, tmp_path: Path, tiny_model_dir: Path, kill_engine_too: bool) -> None:
    home, start = daemon
    run_id = submit(home, tiny_toml(tmp_path / "k.toml", tiny_model_dir, "crash", 2))
    first = start()
    store = open_store(home)
    wait_for(lambda: store.stage_status(run_id, 0, "score") is not None, what="score")
    os.kill(first, signal.SIGKILL)
    job = store.query("SELECT * FROM jobs WHERE run_id = ?", [run_id])[0]
    if kill_engine_too:
        os.killpg(job["pid"], signal.SIGKILL)
    time.sleep(0.5)
    start()  # a new daemon: adopts the live engine, or re-queues the dead one
    r = run_cli("queue", "wait", run_id, "--timeout", "300", home=home, timeout=400)
    assert r.returncode == 0, r.stdout + r.stderr
    _no_duplicates(home, run_id, 2)
    kinds = [e["kind"] for e in store.events(run_id)]
    assert ("job.requeued" in kinds) == kill_engine_too
    assert "run.done" in kinds


def test_gpus_alerts_and_stalls(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Two (fake) GPUs: two jobs run at once, each on its own GPU by UUID; every end and
    stall produces an event and runs the notify command with the event as JSON."""
    home = tmp_path / "home"
    fake = tmp_path / "gpus.json"
    fake.write_text(json.dumps([{"uuid": "GPU-aaa", "memory_used_mb": 0,
                                 "memory_total_mb": 80000, "utilization": 0},
                                {"uuid": "GPU-bbb", "memory_used_mb": 0,
                                 "memory_total_mb": 80000, "utilization": 0}]))
    env = {"CREAM_FAKE_GPUS": str(fake)}
    a = run_cli("submit", str(tiny_toml(tmp_path / "a.toml", tiny_model_dir, "a")), home=home,
                env=env).stdout.strip()
    b = run_cli("submit", str(tiny_toml(tmp_path / "b.toml", tiny_model_dir, "b")), home=home,
                env=env).stdout.strip()
    events = tmp_path / "events.jsonl"
    r = run_cli("worker", "run", "--once", "--stall-minutes", "0.01",
                "--notify", f"cat >> {events}; echo >> {events}", home=home, env=env,
                timeout=400)
    assert r.returncode == 0, r.stderr[-2000:]
    store = open_store(home)
    jobs = {j["run_id"]: j for j in store.query("SELECT * FROM jobs")}
    assert {jobs[a]["gpu_uuids"], jobs[b]["gpu_uuids"]} == {"GPU-aaa", "GPU-bbb"}
    assert jobs[a]["started_at"] < jobs[b]["ended_at"] and \
        jobs[b]["started_at"] < jobs[a]["ended_at"]  # they overlapped
    samples = store.query("SELECT DISTINCT uuid FROM gpu_samples")
    assert {s["uuid"] for s in samples} == {"GPU-aaa", "GPU-bbb"}
    sent = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    kinds = sorted(e["kind"] for e in sent)
    assert kinds.count("run.done") == 2 and "run.stalled" in kinds
    assert {e["run_id"] for e in sent if e["kind"] == "run.done"} == {a, b}


def test_submit_refuses_more_gpus_than_the_machine_has(tmp_path: Path,
                                                       tiny_model_dir: Path) -> None:
    r = run_cli("submit", str(tiny_toml(tmp_path / "a.toml", tiny_model_dir, "a")),
                "--gpus", "2", home=tmp_path / "home")
    assert r.returncode == 3 and "has 0 GPU(s)" in r.stderr
    assert not (tmp_path / "home").exists()


def test_worker_and_gpus_say_no_gpu(tmp_path: Path) -> None:
    r = run_cli("worker", "run", "--once", home=tmp_path / "home")
    assert r.returncode == 0 and "no GPU" in r.stderr


def _workers_of(home: Path) -> list[int]:
    """The pids of live `cream_engine.worker` processes serving `home`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            state = (proc / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if "cream_engine.worker" in argv and str(home) in argv and state != "Z":
            found.append(int(proc.name))
    return found


def test_two_worker_starts_at_once_leave_one_worker(daemon) -> None:
    home, _ = daemon
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREAM_")}
    env["CREAM_HOME"] = str(home)
    procs = [subprocess.Popen([sys.executable, "-m", "cream_tui.cli", "worker", "start"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    said = sorted(out.strip() for out, _ in outs)
    pid = daemon_pid(home)
    assert said[0].startswith(f"worker already running (pid {pid})"), said
    assert said[1].startswith(f"worker started (pid {pid})"), said
    assert _workers_of(home) == [pid]
    status = json.loads(run_cli("worker", "status", "--json", home=home).stdout)
    assert status["daemon_pid"] == pid
    assert [w["liveness"] for w in status["workers"]] == ["running"]
    r = run_cli("worker", "run", "--once", home=home)      # a third one, in the foreground
    assert r.returncode == 2 and "already runs" in r.stderr


def test_a_sigkilled_worker_shows_as_gone(daemon) -> None:
    home, start = daemon
    pid = start()
    wait_for(lambda: json.loads(run_cli("worker", "status", "--json", home=home).stdout)
             ["workers"], what="the worker's row")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _workers_of(home), timeout=10, what="the worker to die")
    status = json.loads(run_cli("worker", "status", "--json", home=home).stdout)
    assert status["daemon_pid"] is None
    assert [(w["pid"], w["liveness"]) for w in status["workers"]] == [(pid, "gone")]
    text = run_cli("worker", "status", home=home).stdout
    assert "daemon: not running" in text and f":{pid}: gone" in text
    second = start()   # the next worker records that the first one is gone
    store = open_store(home)
    wait_for(lambda: {w["pid"]: w["status"] for w in store.query(
        "SELECT pid, status FROM workers")} == {pid: "gone", second: "running"}, timeout=20,
        what="the first worker marked gone")


def test_liveness_asks_the_lock_not_the_pid(tmp_path: Path) -> None:
    """A worker row is running only while its pid holds the home's lock: a reused pid (here
    this test's own, a live process that is no worker) reads as gone."""
    import socket

    from cream_engine.daemon import PID_FILE, liveness, take_lock

    row = {"status": "running", "host": socket.gethostname(), "pid": os.getpid(),
           "heartbeat_at": time.time()}
    assert liveness(row, tmp_path) == "gone"
    lock = take_lock(tmp_path)
    assert lock is not None
    (tmp_path / PID_FILE).write_text(str(os.getpid()))
    assert liveness(row, tmp_path) == "running" and daemon_pid(tmp_path) == os.getpid()
    assert take_lock(tmp_path, wait_s=0.2) is None          # a second worker is refused
    lock.close()
    assert liveness(row, tmp_path) == "gone" and daemon_pid(tmp_path) is None
    away = {**row, "host": "another-box"}                    # a store shared over NFS
    assert liveness(away, tmp_path) == "running"
    assert liveness({**away, "heartbeat_at": time.time() - 60}, tmp_path) == "gone"
    assert liveness({**row, "status": "stopped"}, tmp_path) == "stopped"

