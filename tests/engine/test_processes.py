"""Per-process host detail read from /proc (user, command, RSS, CPU %), as the GPU view shows
it for the processes on a GPU; and how a GPU report carries it."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cream_engine.gpu import read_gpus
from cream_engine.processes import ProcessSampler, read_processes

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
ME = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def sleeper():
    child = subprocess.Popen(["sleep", "30"])
    yield child
    child.kill()
    child.wait()


@pytest.fixture
def busy():
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield child
    child.kill()
    child.wait()


def test_own_process_and_a_child(sleeper: subprocess.Popen) -> None:
    found = read_processes([os.getpid(), sleeper.pid], window_s=0.05)
    me, child = found[os.getpid()], found[sleeper.pid]
    assert me.user == ME and child.user == ME
    assert child.command == "sleep 30"                # argv, its program as a base name
    assert os.path.basename(sys.executable) in me.command and "pytest" in me.command
    assert me.rss_mb and me.rss_mb > 10 and child.rss_mb and child.rss_mb > 0
    assert child.ppid == os.getpid() and me.pgid == os.getpgid(0)


def test_cpu_percent_of_a_busy_child_and_an_idle_one(busy: subprocess.Popen,
                                                     sleeper: subprocess.Popen) -> None:
    found = read_processes([busy.pid, sleeper.pid], window_s=0.3)
    assert found[busy.pid].cpu_percent > 20       # one core nearly busy (a shared box: less)
    assert found[sleeper.pid].cpu_percent < 5


def test_cpu_percent_comes_from_the_previous_reading(busy: subprocess.Popen) -> None:
    sampler = ProcessSampler()
    assert sampler.read([busy.pid])[busy.pid].cpu_percent is None     # one reading: none yet
    time.sleep(0.2)
    assert sampler.read([busy.pid])[busy.pid].cpu_percent > 20


def test_a_pid_that_vanished_is_skipped(sleeper: subprocess.Popen) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()                               # reaped: its pid names no process now
    found = ProcessSampler().read([gone.pid, sleeper.pid, 0, -5], window_s=0.05)
    assert list(found) == [sleeper.pid]


def test_a_gpu_report_carries_host_details_and_keeps_given_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeper: subprocess.Popen) -> None:
    fake = tmp_path / "gpus.json"
    fake.write_text(json.dumps([{"memory_total_mb": 81559, "processes": [
        {"pid": sleeper.pid, "used_memory_mb": 900.0},
        {"pid": sleeper.pid + 4_000_000, "user": "bob", "command": "fixed", "cpu_percent": 3.0,
         "rss_mb": 64.0, "sm_percent": 41}]}]))
    monkeypatch.setenv("CREAM_FAKE_GPUS", str(fake))
    report = read_gpus(cpu_window_s=0.05)
    real, fixed = report.gpus[0].processes
    assert (real.user, real.command, real.sm_percent) == (ME, "sleep 30", None)
    assert real.rss_mb > 0 and real.cpu_percent is not None
    assert (fixed.user, fixed.command, fixed.cpu_percent, fixed.rss_mb, fixed.sm_percent) == \
        ("bob", "fixed", 3.0, 64.0, 41)
    # the store's samples keep pid and memory always, the rest where known
    stored = report.samples()[0]["processes"]
    assert stored[0]["user"] == ME and "sm_percent" not in stored[0]
    assert stored[1]["sm_percent"] == 41
