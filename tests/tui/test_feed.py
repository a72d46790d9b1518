"""`cream feed` and the dashboard's side of it: the feed in process (what changed, GPU
readings, the watched run, requests), its loop ending when stdin closes, the real `cream feed`
process, and `HostLink`/`MultiSource` over a real OpenSSH server (tests/sshd.py)."""

from __future__ import annotations

import io
import json
import os
import queue as queue_mod
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cream_engine import hosts, queue
from cream_engine.hosts import HostLink, HostSpec
from cream_engine.runs import delete_run
from cream_engine.store import Store, open_store
from cream_tui import gpu_history
from cream_tui.data import DataSource
from cream_tui.feed import Feed
from cream_tui.remote import MultiSource
from tests.tui.fixtures import NOW, RUNS, no_gpu, write_store

CREAM = Path(sys.executable).parent / "cream"     # this venv's console script, absolute
ALL_RUNS = set(RUNS.__dict__.values())
WATCHED_FIELDS = {"problem", "run", "iterations", "stage_iteration", "stages", "loss",
                  "loss_label", "margins", "accuracy", "boundaries", "last", "log_path",
                  "log_lines"}


def wait_for(predicate, timeout: float, what: str, step: float = 0.02):
    """Poll `predicate` until it is truthy (its value) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


class Lines:
    """The JSON lines a feed wrote to a BytesIO, read a batch at a time."""

    def __init__(self, out: io.BytesIO):
        self.out = out
        self.seen = 0

    def all(self) -> list[dict]:
        return [json.loads(line) for line in self.out.getvalue().splitlines()]

    def new(self) -> list[dict]:
        lines = self.all()
        fresh, self.seen = lines[self.seen:], len(lines)
        return fresh


@pytest.fixture
def feed_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in [k for k in os.environ if k.startswith("CREAM_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CREAM_FAKE_GPUS", str(tmp_path / "no-gpus.json"))  # (none, anywhere)
    home = tmp_path / "home"
    write_store(home)
    return home


@pytest.fixture
def feed(feed_home: Path):
    clock = [NOW]
    f = Feed(feed_home, io.BytesIO(), clock=lambda: clock[0])
    f.fake_clock = clock   # (the test moves it)
    f.lines = Lines(f.out)
    yield f
    f.source.close()


def _priority(home: Path, run_id: str) -> int:
    store = Store.open(home, create=False)
    try:
        return queue.latest_job(store, run_id)["priority"]
    finally:
        store.close()


# -- the feed in process ---------------------------------------------------------------------


def test_runs_first_all_then_only_what_changed(feed, feed_home):
    feed.poll_home(feed.fake_clock[0])
    [first] = feed.lines.new()
    assert first["t"] == "runs" and first["drained"] is False and "del" not in first
    assert {r["id"] for r in first["set"]} == ALL_RUNS
    running = next(r for r in first["set"] if r["id"] == RUNS.running)
    assert running["status"] == "running" and running["elapsed"] == 7200.0

    # later: only the running run's elapsed time and ETA moved, which the reader ages itself
    for later in (NOW + 5, NOW + 600):
        feed.fake_clock[0] = later
        feed.poll_home(later)
        assert feed.lines.new() == []

    store = open_store(feed_home)
    try:
        queue.set_priority(store, RUNS.queued, delta=1)
        feed.poll_home(NOW + 601)
        [changed] = feed.lines.new()
        assert set(changed) == {"t", "set"}
        assert [(r["id"], r["priority"]) for r in changed["set"]] == [(RUNS.queued, 3)]

        delete_run(store, feed_home, RUNS.queued)
        feed.poll_home(NOW + 602)
        assert feed.lines.new() == [{"t": "runs", "del": [RUNS.queued]}]

        queue.set_drain(store, True)
        feed.poll_home(NOW + 603)
        assert feed.lines.new() == [{"t": "runs", "drained": True}]
        queue.set_drain(store, False)
        feed.poll_home(NOW + 604)
        assert feed.lines.new() == [{"t": "runs", "drained": False}]
        feed.poll_home(NOW + 605)
        assert feed.lines.new() == []
    finally:
        store.close()


def test_a_home_without_a_store_sends_its_problem_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CREAM_FAKE_GPUS", str(tmp_path / "none.json"))
    f = Feed(tmp_path / "absent", io.BytesIO())
    lines = Lines(f.out)
    f.poll_home(NOW)
    [message] = lines.new()
    assert message["t"] == "runs" and "No runs in" in message["problem"]
    assert "set" not in message and "del" not in message
    f.poll_home(NOW + 1)
    assert lines.new() == []
    f.source.close()


def test_gpus_meta_once_then_readings(feed, tmp_path, monkeypatch):
    fake = tmp_path / "gpus.json"
    boards = [{"utilization": 40, "memory_used_mb": 1000.4, "memory_total_mb": 80000,
               "temperature_c": 50, "power_w": 200.04},
              {"utilization": 0, "memory_used_mb": 0, "memory_total_mb": 40000,
               "temperature_c": 30, "power_w": None}]
    fake.write_text(json.dumps(boards))
    monkeypatch.setenv("CREAM_FAKE_GPUS", str(fake))
    monkeypatch.setattr(gpu_history, "LIVE_EVERY_S", 0.0)   # a fresh reading every poll
    later = NOW + 3600   # (the store's worker samples are an hour old: the feed reads live)

    feed.poll_gpus(later)
    meta, reading = feed.lines.new()
    assert meta["t"] == "gm" and meta["reason"] == ""
    assert [(g["index"], g["uuid"], g["memory_total_mb"], g["processes"])
            for g in meta["gpus"]] == [(0, "GPU-fake-0", 80000, []), (1, "GPU-fake-1", 40000, [])]
    assert reading == {"t": "g", "r": [[0, 40, 1000, 50, 200.0], [1, 0, 0, 30, None]]}

    feed.poll_gpus(later + 1)
    assert feed.lines.new() == [reading]             # the same boards: readings only

    boards[0]["utilization"] = 90
    fake.write_text(json.dumps(boards))
    feed.poll_gpus(later + 2)
    [reading] = feed.lines.new()
    assert reading["t"] == "g" and reading["r"][0][1] == 90

    fake.write_text(json.dumps(boards[:1]))          # a board gone: the meta again
    feed.poll_gpus(later + 3)
    meta, reading = feed.lines.new()
    assert meta["t"] == "gm" and [g["index"] for g in meta["gpus"]] == [0]
    assert reading["t"] == "g" and len(reading["r"]) == 1


def test_no_gpu_sends_the_reason_once_and_no_readings(feed):
    feed.poll_gpus(NOW + 3600)
    [meta] = feed.lines.new()
    assert meta["t"] == "gm" and meta["gpus"] == [] and "CREAM_FAKE_GPUS" in meta["reason"]
    feed.poll_gpus(NOW + 3601)
    assert feed.lines.new() == []


def test_watched_run_all_fields_then_what_changed(feed, feed_home):
    feed.poll_watched(NOW)
    assert feed.lines.new() == []                     # nothing watched: nothing sent

    feed.handle({"op": "watch", "run": RUNS.running, "buckets": 40})
    feed.poll_watched(NOW)
    [first] = feed.lines.new()
    assert first["t"] == "run" and first["id"] == RUNS.running
    assert set(first) - {"t", "id"} == WATCHED_FIELDS
    assert first["run"]["id"] == RUNS.running and len(first["iterations"]) == 3
    assert 0 < len(first["loss"]) <= 2 * 40 + 2 < 720      # (downsampled: 720 steps logged)
    assert first["log_lines"]

    feed.poll_watched(NOW)
    assert feed.lines.new() == []                     # nothing changed

    feed.poll_watched(NOW + 60)                       # the clock: its elapsed time only
    [moved] = feed.lines.new()
    assert moved["id"] == RUNS.running and "loss" not in moved and "iterations" not in moved
    assert set(moved) - {"t", "id"} <= {"run", "stages"} and "run" in moved
    assert moved["run"]["elapsed"] == 7260.0

    store = open_store(feed_home)                     # a new training step: the curves
    try:
        store.execute("INSERT INTO metrics (run_id, iteration, stage, step, name, value, time)"
                      " VALUES (?,?,?,?,?,?,?)", [RUNS.running, 2, "train", 121, "loss", 0.25,
                                                  NOW + 30])
    finally:
        store.close()
    feed.poll_watched(NOW + 60)
    [step] = feed.lines.new()
    assert "loss" in step and step["last"] == [2, 121, 0.25]
    assert "run" not in step and "iterations" not in step

    feed.handle({"op": "watch", "run": RUNS.done, "buckets": 20})   # another run: all again
    feed.poll_watched(NOW + 60)
    [other] = feed.lines.new()
    assert other["id"] == RUNS.done and set(other) - {"t", "id"} == WATCHED_FIELDS

    feed.handle({"op": "watch", "run": None})
    store = open_store(feed_home)
    try:
        queue.set_priority(store, RUNS.queued, delta=1)
    finally:
        store.close()
    feed.poll_watched(NOW + 120)
    assert feed.lines.new() == []


def test_act_replies_with_the_line_or_the_error(feed, feed_home):
    feed._answer({"op": "act", "id": 7, "name": "priority", "args": [RUNS.queued, 1]})
    [reply] = feed.lines.new()
    assert reply == {"t": "reply", "id": 7, "ok": True, "line": f"{RUNS.queued}: priority 3"}
    assert _priority(feed_home, RUNS.queued) == 3

    feed._answer({"op": "act", "id": 8, "name": "priority", "args": ["no-such-run", 1]})
    [reply] = feed.lines.new()
    assert reply["id"] == 8 and reply["ok"] is False and "no-such-run" in reply["line"]

    feed._answer({"op": "act", "id": 9, "name": "priority", "args": [RUNS.done, 1]})
    [reply] = feed.lines.new()
    assert reply["ok"] is False and "only a queued job" in reply["line"]

    feed._answer({"op": "act", "id": 10, "name": "drain", "args": []})
    [reply] = feed.lines.new()
    assert reply["ok"] is True and "drained" in reply["line"]

    feed._answer({"op": "act", "id": 11, "name": "format-disk", "args": []})
    [reply] = feed.lines.new()
    assert reply["ok"] is False and "format-disk" in reply["line"] and "\n" not in reply["line"]


def test_requests_through_handle_are_answered_in_a_thread(feed):
    feed.handle({"op": "act", "id": 3, "name": "priority", "args": [RUNS.queued, -1]})
    feed.handle({"op": "nonsense", "id": 4})          # (ignored)
    reply = wait_for(lambda: [m for m in feed.lines.all() if m["t"] == "reply"], 10,
                     "the reply")
    assert reply == [{"t": "reply", "id": 3, "ok": True, "line": f"{RUNS.queued}: priority 1"}]
    assert feed.wake.is_set()                         # (the loop polls again at once)


def test_compare_replies_with_the_parts(feed):
    feed._answer({"op": "compare", "id": 5, "runs": [RUNS.done, RUNS.failed]})
    [reply] = feed.lines.new()
    assert reply["t"] == "reply" and reply["id"] == 5 and reply["ok"] is True
    parts = reply["runs"]
    assert [p["id"] for p in parts] == [RUNS.done, RUNS.failed]
    assert [p["name"] for p in parts] == ["cream-a", "srlm-b"]
    for part in parts:
        assert set(part) == {"id", "name", "config_toml", "tau", "evaluations", "samples",
                             "loss"}
        assert "[run]" in part["config_toml"]
    assert parts[0]["tau"] == [[1.0, 0.31], [2.0, 0.47]]
    assert set(parts[0]["evaluations"]) == {"0", "1", "2", "3"}
    assert parts[0]["samples"]["3"]["sets.mc.gen_acc"] == [100, None]   # n travels
    assert 0 < len(parts[0]["loss"]) <= 200

    feed._answer({"op": "compare", "id": 6, "runs": [RUNS.done, "nope"]})
    [reply] = feed.lines.new()
    assert reply["ok"] is False and "nope" in reply["line"]


# -- the loop --------------------------------------------------------------------------------


def test_run_ends_when_stdin_closes(feed, monkeypatch):
    monkeypatch.setattr(hosts, "HEARTBEAT_S", 0.2)
    feed.poll_s, feed.gpu_s = 0.1, 100.0    # (GPU readings once: then a quiet link)
    read_fd, write_fd = os.pipe()
    result: list[int] = []
    with os.fdopen(read_fd, "rb") as inp:
        thread = threading.Thread(target=lambda: result.append(feed.run(inp)), daemon=True)
        thread.start()
        try:
            wait_for(lambda: any(m["t"] == "runs" for m in feed.lines.all()), 10, "the runs")
            hello = feed.lines.all()[0]
            assert hello["t"] == "hello" and hello["protocol"] == hosts.PROTOCOL
            assert hello["home"] == str(feed.home)
            os.write(write_fd, b"not json\n" + json.dumps(
                {"op": "watch", "run": RUNS.queued, "buckets": 10}).encode() + b"\n")
            wait_for(lambda: any(m["t"] == "run" for m in feed.lines.all()), 10,
                     "the watched run")
            wait_for(lambda: any(m["t"] == "hb" for m in feed.lines.all()), 5,
                     "a heartbeat on a quiet link")
            assert thread.is_alive()
        finally:
            os.close(write_fd)
        thread.join(timeout=5)
    assert not thread.is_alive(), "Feed.run did not end when stdin closed"
    assert result == [0]


def test_run_ends_when_its_reader_goes(feed):
    class Gone(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, b) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    read_fd, write_fd = os.pipe()
    feed.out = Gone()
    inp = os.fdopen(read_fd, "rb")
    result: list[int] = []
    try:
        thread = threading.Thread(target=lambda: result.append(feed.run(inp)), daemon=True)
        thread.start()
        thread.join(timeout=5)
        assert not thread.is_alive(), "Feed.run went on writing to a closed stdout"
    finally:
        os.close(write_fd)   # (first: its request reader still blocks on stdin; EOF ends it)
        inp.close()
    assert result == [0]


# -- the real `cream feed` -------------------------------------------------------------------


def _reader(stream) -> queue_mod.Queue:
    lines: queue_mod.Queue = queue_mod.Queue()

    def read() -> None:
        for raw in stream:
            lines.put(json.loads(raw))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _feed_process(home: Path, tmp_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREAM_")}
    env["CREAM_FAKE_GPUS"] = str(tmp_path / "no-gpus.json")
    return subprocess.Popen([str(CREAM), "feed", "--home", str(home), "--poll", "0.2"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


def test_cream_feed_process(feed_home, tmp_path):
    proc = _feed_process(feed_home, tmp_path)
    try:
        lines = _reader(proc.stdout)
        hello = lines.get(timeout=30)
        assert hello["t"] == "hello" and hello["protocol"] == hosts.PROTOCOL
        assert hello["home"] == str(feed_home) and hello["version"] == hosts.version()
        runs = lines.get(timeout=10)
        assert runs["t"] == "runs" and {r["id"] for r in runs["set"]} == ALL_RUNS
        proc.stdin.close()
        code = proc.wait(timeout=5)
        assert (code, proc.stderr.read().decode()) == (0, "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if not stream.closed:
                stream.close()


# -- over a real sshd ------------------------------------------------------------------------


@pytest.fixture
def ssh_env(sshd, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """CREAM_SSH_COMMAND at the test sshd; `hosts({name: {ENV: value}})` writes its client
    config. The server is serving again after the test whatever the test did to it."""
    for key in [k for k in os.environ if k.startswith("CREAM_")]:
        monkeypatch.delenv(key)
    sshd.write_client_config({})
    monkeypatch.setenv(hosts.SSH_ENV, sshd.ssh_command)
    yield sshd
    if not sshd.running:
        sshd.start()


def _script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def _link(name: str, command: str, **kwargs) -> HostLink:
    return HostLink(HostSpec(name, name, command), **kwargs).start()


def test_link_protocol_mismatch_is_one_line_and_not_retried(ssh_env, tmp_path):
    ssh_env.write_client_config({"far": {}})
    count = tmp_path / "count"
    command = _script(tmp_path, "old-cream", f"echo x >> {count}\n"
                      'echo \'{"t":"hello","protocol":999,"version":"9.9.9"}\'\nsleep 5\n')
    link = _link("far", command, retry=(0.1,))
    try:
        wait_for(lambda: link.status()[0] == "mismatch", 15, "the mismatch")
        state, line = link.status()
        assert "\n" not in line and "far" in line
        assert "9.9.9" in line and "999" in line
        assert hosts.version() in line and f"protocol {hosts.PROTOCOL}" in line
        link._thread.join(timeout=5)
        assert not link._thread.is_alive(), "a mismatch must not be retried"
        assert count.read_text() == "x\n" and link.connects == 0 and link.runs == {}
        assert link.status() == (state, line)
    finally:
        link.close()


def test_link_command_not_found_is_down_and_retried(ssh_env, tmp_path):
    ssh_env.write_client_config({"far": {}})
    link = _link("far", str(tmp_path / "no-such-cream"), retry=(0.2,))
    try:
        wait_for(lambda: link.status()[0] == "down", 15, "down")
        state, line = link.status()
        assert state == "down"
        assert "not found on far" in line and "set [hosts.far] command or venv" in line
        assert "\n" not in line
        time.sleep(0.5)
        assert link._thread.is_alive()                # (it keeps trying)
    finally:
        link.close()
    assert not link._thread.is_alive()


def test_link_retries_with_backoff_then_its_last_wait(ssh_env, tmp_path):
    ssh_env.write_client_config({"far": {}})
    count = tmp_path / "count"
    command = _script(tmp_path, "gone-cream", f"echo x >> {count}\n"
                      "echo 'sh: 1: cream: not found' >&2\nexit 127\n")
    link = _link("far", command, retry=(5.0, 0.1, 30.0))  # (the first: after a link that held)
    try:
        wait_for(lambda: count.exists() and len(count.read_text().split()) >= 2, 10,
                 "a second attempt after 0.1 s")
        wait_for(lambda: link.status()[1].endswith("(retry in 30s)"), 5, "the last wait")
        state, line = link.status()
        assert state == "down" and "not found on far" in line
        time.sleep(0.5)
        assert len(count.read_text().split()) == 2
    finally:
        link.close()
    assert not link._thread.is_alive()


def test_link_to_a_cream_without_feed_is_a_mismatch(ssh_env, tmp_path):
    ssh_env.write_client_config({"far": {}})
    command = _script(tmp_path, "older-cream",
                      "echo \"Usage: cream [OPTIONS] COMMAND [ARGS]...\" >&2\n"
                      "echo \"Error: No such command 'feed'.\" >&2\nexit 2\n")
    link = _link("far", command, retry=(0.1,))
    try:
        wait_for(lambda: link.status()[0] == "mismatch", 15, "the mismatch")
        assert "has no `feed`" in link.status()[1]
        link._thread.join(timeout=5)
        assert not link._thread.is_alive()
    finally:
        link.close()


def test_link_silent_after_hello_is_slow(ssh_env, tmp_path, monkeypatch):
    ssh_env.write_client_config({"far": {}})
    command = _script(tmp_path, "quiet-cream", "echo '{\"t\":\"hello\",\"protocol\":"
                      f"{hosts.PROTOCOL},\"version\":\"0.0.1-other\"}}'\nsleep 5\n")
    monkeypatch.setattr(hosts, "SLOW_S", 0.5)
    link = _link("far", command)
    try:
        wait_for(lambda: link.connects == 1, 15, "the hello")
        assert link.state == "up" and "0.0.1-other there" in link.line
        wait_for(lambda: link.status()[0] == "slow", 5, "slow")
        assert link.status()[1].startswith("no data for")
    finally:
        link.close()


def test_link_to_a_real_feed_requests_and_reconnects(ssh_env, tmp_path):
    far = tmp_path / "far"
    write_store(far)
    ssh_env.write_client_config({"box": {"CREAM_HOME": str(far),
                                         "CREAM_FAKE_GPUS": str(tmp_path / "none.json")}})
    link = _link("box", str(CREAM), poll_s=0.2, retry=(0.5,))
    try:
        wait_for(lambda: set(link.runs) == ALL_RUNS, 20, "the far runs")
        assert link.status() == ("up", "up") and link.hello["home"] == str(far)
        assert link.runs[RUNS.queued]["priority"] == 2

        reply = link.request("act", name="priority", args=[RUNS.queued, 1], timeout=20)
        assert reply["ok"] is True and reply["line"] == f"{RUNS.queued}: priority 3"
        wait_for(lambda: link.runs[RUNS.queued]["priority"] == 3, 5, "the new priority")
        assert _priority(far, RUNS.queued) == 3
        bad = link.request("act", name="priority", args=["nope", 1], timeout=20)
        assert bad["ok"] is False and "nope" in bad["line"]

        link.watch(RUNS.running, 30)
        fields = wait_for(lambda: link.watched.get(RUNS.running), 10, "the watched run")
        assert fields["run"]["id"] == RUNS.running and fields["iterations"]

        ssh_env.kill()
        wait_for(lambda: link.status()[0] == "down", 3, "down after sshd died")
        assert "ssh box" in link.status()[1] or "feed ended" in link.status()[1]
        with pytest.raises(hosts.HostDown):
            link.request("act", name="priority", args=[RUNS.queued, 1], timeout=5)

        store = open_store(far)              # (a run goes while the link is down)
        try:
            delete_run(store, far, RUNS.queued)
        finally:
            store.close()
        ssh_env.start()
        wait_for(lambda: link.status()[0] == "up", 15, "up again after sshd restarted")
        assert link.connects == 2
        wait_for(lambda: link.runs, 10, "the runs again")
        assert set(link.runs) == ALL_RUNS - {RUNS.queued}   # (the rows of before: dropped)
    finally:
        link.close()
        if not ssh_env.running:
            ssh_env.start()
    assert not link._thread.is_alive()


def test_multisource_local_and_one_host(ssh_env, tmp_path):
    here, far = tmp_path / "here", tmp_path / "far"
    write_store(here)
    write_store(far)      # (the same run ids on both boxes: told apart by their host)
    ssh_env.write_client_config({"box": {"CREAM_HOME": str(far),
                                         "CREAM_FAKE_GPUS": str(tmp_path / "none.json")}})
    link = HostLink(HostSpec("box", "box", str(CREAM)), poll_s=0.2)
    source = MultiSource(DataSource(here, no_gpu), [link]).start()
    try:
        data = wait_for(lambda: (d := source.home_data(NOW)) and len(d.runs) == 10 and d, 20,
                        "both boxes' runs")
        assert data.problem is None
        assert sorted((r.host, r.id) for r in data.runs) == sorted(
            [("local", i) for i in ALL_RUNS] + [("box", i) for i in ALL_RUNS])
        assert [(v.name, v.state) for v in data.hosts] == [("local", "local"), ("box", "up")]

        key = f"box::{RUNS.running}"
        remote = wait_for(lambda: (d := source.run_data(key, NOW, 40)).run is not None and d,
                          15, "the far run's screen")
        assert remote.problem is None and remote.run.host == "box"
        assert remote.run.id == RUNS.running
        direct = DataSource(far, no_gpu)
        try:
            same = direct.run_data(RUNS.running, NOW, 40)
        finally:
            direct.close()
        for name in ("iterations", "stage_iteration", "loss", "loss_label", "margins",
                     "accuracy", "boundaries", "last", "log_path", "log_lines"):
            assert getattr(remote, name) == getattr(same, name), name
        local = source.run_data(f"local::{RUNS.running}", NOW, 40)
        assert local.run.host == "local" and local.run.id == RUNS.running

        line = source.act("box", "priority", RUNS.queued, 1)
        assert line == f"box: {RUNS.queued}: priority 3"
        assert _priority(far, RUNS.queued) == 3 and _priority(here, RUNS.queued) == 2
        assert source.act("local", "priority", RUNS.queued, -1) == \
            f"local: {RUNS.queued}: priority 1"
        assert _priority(here, RUNS.queued) == 1 and _priority(far, RUNS.queued) == 3

        compared = source.compare_data((f"local::{RUNS.done}", f"box::{RUNS.failed}"))
        assert compared.problem is None
        assert compared.labels == ("cream-a@local", "srlm-b@box")
        assert [label for label, _ in compared.tau] == ["cream-a@local", "srlm-b@box"]
        missing = source.compare_data((f"local::{RUNS.done}", "box::nope"))
        assert missing.problem is not None and "nope" in missing.problem
    finally:
        source.close()
