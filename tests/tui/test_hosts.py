"""Several boxes in one dashboard, over a real sshd (tests/sshd.py) on 127.0.0.1: each "host"
is a `Host` entry of a private ssh client config whose `SetEnv` gives it its own data home.

- `cream … --host B` is `ssh B cream …`: the same output and exit code;
- the dashboard (Pilot) lists two hosts' runs and GPUs, routes an action to B, opens a remote
  run and compares across hosts; B's sshd killed mid-session shows B down within seconds while
  A keeps updating, and B comes back by itself; (slow) a run submitted to B from the dashboard
  is run there by B's worker and cancelled there from the dashboard;
- the real `cream tui --host A --host B` in tmux shows both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cream_engine.config import from_dict, to_toml
from cream_engine.hosts import HostSpec
from cream_engine.store import Store
from tests.conftest import run_cli
from tests.engine.helpers import tiny_config
from tests.sshd import SshServer
from tests.tui.fixtures import RUNS, write_store
from tests.tui.helpers import TMUX, Pane, make_app, screen_text, wait_actions, wait_until

CREAM = str(Path(sys.executable).parent / "cream")
FAKE_GPUS = [{"utilization": 37, "memory_used_mb": 30000, "memory_total_mb": 81559,
              "temperature_c": 55, "power_w": 310.5},
             {"utilization": 91, "memory_used_mb": 70000, "memory_total_mb": 81559,
              "temperature_c": 71, "power_w": 650.0}]


def _env(home: Path, **more: str) -> dict[str, str]:
    return {"CREAM_HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1", "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", **more}


@pytest.fixture
def two_homes(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Home A (the fixture store, fake GPUs), home B (empty), and the fake GPU file."""
    gpus = tmp_path / "gpus.json"
    gpus.write_text(json.dumps(FAKE_GPUS))
    a, b = tmp_path / "a", tmp_path / "b"
    # (two minutes old: its worker's GPU samples are stale, so the fake GPUs are read live)
    write_store(a, now=time.time() - 120)
    return a, b, gpus


def _user_config(path: Path, *names: str) -> Path:
    path.write_text("".join(f'[hosts.{n}]\ncommand = "{CREAM}"\n\n' for n in names))
    return path


def test_a_command_with_host_is_the_same_command_over_ssh(sshd, tmp_path: Path,
                                                          two_homes) -> None:
    a, _, _ = two_homes
    config = sshd.write_client_config({"hostA": _env(a)})
    env = {"CREAM_SSH_COMMAND": sshd.ssh_command,
           "CREAM_USER_CONFIG": str(_user_config(tmp_path / "user.toml", "hostA"))}

    def both(*args: str) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
        here = run_cli(*args, "--host", "hostA", env=env, home=tmp_path / "elsewhere")
        there = subprocess.run(["ssh", "-F", str(config), "hostA", CREAM, *args],
                               capture_output=True, text=True, timeout=60, check=False)
        return here, there

    here, there = both("status", RUNS.done, "--json")
    assert here.returncode == there.returncode == 0, here.stderr
    assert here.stdout == there.stdout and json.loads(here.stdout)["name"] == "cream-a"
    here, there = both("status", "--json")     # (elapsed of a running run moves on between)
    runs = [{k: v for k, v in r.items() if k not in ("elapsed_s", "eta_s")}
            for r in json.loads(here.stdout)]
    assert runs == [{k: v for k, v in r.items() if k not in ("elapsed_s", "eta_s")}
                    for r in json.loads(there.stdout)]
    assert {r["name"] for r in runs} >= {"cream-a", "scir-c", "dpo-d"}
    here, there = both("compare", RUNS.done, RUNS.failed, "--json")
    assert here.stdout == there.stdout and "config_diff" in json.loads(here.stdout)
    here, there = both("queue", "ls", "--all", "--json")
    assert here.returncode == 0 and json.loads(here.stdout) == json.loads(there.stdout) != []
    here, there = both("logs", RUNS.running, "-n", "5")
    assert here.returncode == 0 and here.stdout == there.stdout and here.stdout.count("\n") == 5
    here, there = both("status", "no-such-run")  # the far exit code and line come back
    assert here.returncode == there.returncode == 2
    assert "no-such-run" in here.stderr and here.stderr == there.stderr
    # the local data home (empty) is not where it looked
    assert run_cli("status", "--json", env=env, home=tmp_path / "elsewhere").stdout.strip() \
        == "[]"
    down = run_cli("status", "--host", "nowhere.invalid", env={**env}, timeout=60)
    assert down.returncode == 1 and "host nowhere.invalid: ssh nowhere.invalid failed" \
        in down.stderr


def _tiny_config(path: Path, model_dir: Path) -> Path:
    cfg = tiny_config(model_dir, run={"name": "sent-to-b", "iterations": 1},
                      data={"prompts_per_iteration": 64},
                      generate={"n": 4, "max_new_tokens": 48})
    path.write_text(to_toml(from_dict(cfg)))
    return path


def _row_key(app, key: str) -> str:
    """The name cell of the row with this key."""
    table = app.screen.query_one("#runs")
    return str(table.get_row(key)[2])


def _row(app, name: str) -> str:
    return next(line for line in screen_text(app).splitlines() if name in line)


@contextlib.contextmanager
def _two_hosts(sshd, tmp_path: Path, a: Path, b: Path, gpus: Path, monkeypatch):
    """The dashboard over hostA (the session's sshd, fake GPUs) and hostB (an sshd of its own,
    to be killed alone); yields (app, B's server, the ssh client config)."""
    server_b = SshServer(tmp_path / "sshd-b").start()
    try:
        config = tmp_path / "ssh_config"
        config.write_text(
            sshd.write_client_config({"hostA": _env(a, CREAM_FAKE_GPUS=str(gpus))})
            .read_text() + "\n" + server_b.write_client_config({"hostB": _env(b)}).read_text())
        monkeypatch.setenv("CREAM_SSH_COMMAND", f"ssh -F {config}")
        yield (make_app(tmp_path / "no-local", hosts=[HostSpec("hostA", "hostA", CREAM),
                                                      HostSpec("hostB", "hostB", CREAM)]),
               server_b, config)
    finally:
        server_b.stop()


def _select(app, prefix: str, name: str) -> None:
    """Put the cursor on the run of that host whose name has `name`."""
    table = app.screen.query_one("#runs")
    keys = [k.value for k in table.rows]
    table.move_cursor(row=next(i for i, k in enumerate(keys)
                               if k.startswith(prefix) and name in _row_key(app, k)))


def _host_row(app, host: str, name: str) -> str:
    """The screen line of that host's run (empty while it is not on screen)."""
    return next((line for line in screen_text(app).splitlines()
                 if f" {host}" in line and name in line), "")


async def test_dashboard_over_two_hosts(sshd, tmp_path: Path, two_homes, monkeypatch) -> None:
    a, b, gpus = two_homes
    write_store(b, now=time.time())
    with _two_hosts(sshd, tmp_path, a, b, gpus, monkeypatch) as (app, server_b, _):
        async with app.run_test(size=(140, 44)) as pilot:
            await wait_until(pilot, lambda: "GPU1 util  91%" in screen_text(app)
                             and "hostB up" in screen_text(app)
                             and "hostB" in _host_row(app, "hostB", "scir-c"), 30, "both")
            text = screen_text(app)
            assert "hostA" in _host_row(app, "hostA", "dpo-d") and "10 runs" in text
            assert "hostB up" in text and "hostA up" in text and "2 hosts" in text

            # an action on a run of B goes to B
            _select(app, "hostB::", "dpo-d")
            await pilot.press("plus")
            await wait_actions(pilot)
            await wait_until(pilot, lambda: "queued p3" in _host_row(app, "hostB", "dpo-d"),
                             15, "B's new priority")
            assert "queued p2" in _host_row(app, "hostA", "dpo-d")
            with contextlib.closing(Store.open(b, create=False)) as store_b:
                assert store_b.query("SELECT priority FROM jobs WHERE run_id = ?",
                                     [RUNS.queued])[0]["priority"] == 3

            # a remote run's screen, and a compare across the two hosts
            _select(app, "hostA::", "scir-c")
            await pilot.press("enter")
            await wait_until(pilot, lambda: "DPO loss" in screen_text(app)
                             and "host hostA" in screen_text(app)
                             and "loss 0.2723" in screen_text(app), 30, "A's run screen")
            await pilot.press("escape")
            await pilot.pause()
            _select(app, "hostA::", "cream-a")
            await pilot.press("space")
            _select(app, "hostB::", "srlm-b")
            await pilot.press("space")
            await pilot.press("m")
            await wait_until(pilot, lambda: "cream-a@hostA" in screen_text(app)
                             and "srlm-b@hostB" in screen_text(app), 30, "the compare")
            await pilot.press("escape")
            await pilot.pause()

            # B's sshd dies: B is down within seconds, A keeps updating
            server_b.kill()
            killed = time.monotonic()
            await wait_until(pilot, lambda: "hostB down" in screen_text(app)
                             and "hostB ✗" in _host_row(app, "hostB", "cream-a"), 10, "B down")
            assert time.monotonic() - killed < 5
            with contextlib.closing(Store.open(a, create=False)) as store_a:
                store_a.execute("UPDATE jobs SET priority = 7 WHERE run_id = ?", [RUNS.queued])
            await wait_until(pilot, lambda: "queued p7" in _host_row(app, "hostA", "dpo-d"),
                             15, "A's update while B is down")
            assert "hostB down" in screen_text(app)

            # B comes back by itself
            server_b.start()
            await wait_until(pilot, lambda: "hostB up" in screen_text(app)
                             and "hostB ✗" not in _host_row(app, "hostB", "cream-a")
                             and "hostB" in _host_row(app, "hostB", "cream-a"), 30, "B back")


@pytest.mark.slow
async def test_a_run_submitted_from_the_dashboard_runs_on_that_host(
        sshd, tmp_path: Path, two_homes, tiny_model_dir: Path, monkeypatch) -> None:
    a, b, gpus = two_homes
    exp = _tiny_config(tmp_path / "exp.toml", tiny_model_dir)
    with _two_hosts(sshd, tmp_path, a, b, gpus, monkeypatch) as (app, _, config):
        try:
            async with app.run_test(size=(140, 44)) as pilot:
                await wait_until(pilot, lambda: "hostB up" in screen_text(app)
                                 and "scir-c" in screen_text(app), 30, "both hosts")
                assert "0 runs" in screen_text(app)
                # submit to B from the dashboard (host:path); B's worker runs it there
                await pilot.press("s")
                await wait_until(pilot, lambda: type(app.screen).__name__ == "FilePromptScreen"
                                 and app.focused is not None
                                 and type(app.focused).__name__ == "Input", 10, "the prompt")
                for key in f"hostB:{exp}":
                    await pilot.press(key)
                await pilot.press("enter")
                await wait_actions(pilot)
                # (the far side checks the config, tokenizer included: 6 s here, 20+ s on a
                # busy machine; the dashboard waits up to hosts.REPLY_S for the reply)
                await wait_until(pilot, lambda: "sent-to-b" in screen_text(app), 120, "the run")
                assert "hostB" in _row(app, "sent-to-b") and "queued" in _row(app, "sent-to-b")
                with contextlib.closing(Store.open(b, create=False)) as store_b:
                    assert [r["name"] for r in store_b.list_runs()] == ["sent-to-b"]
                with contextlib.closing(Store.open(a, create=False)) as store_a:
                    assert "sent-to-b" not in [r["name"] for r in store_a.list_runs()]
                started = await asyncio.to_thread(
                    subprocess.run, ["ssh", "-F", str(config), "hostB", CREAM, "worker",
                                     "start"], capture_output=True, text=True, timeout=60,
                    check=False)
                assert started.returncode == 0, started.stderr
                await wait_until(pilot, lambda: "running" in _row(app, "sent-to-b"), 60,
                                 "the run running on B")
                # cancel it from the dashboard: the action goes to B
                _select(app, "hostB::", "sent-to-b")
                await pilot.press("c")
                await pilot.press("y")
                await wait_actions(pilot)
                await wait_until(pilot, lambda: "cancelled" in _row(app, "sent-to-b"), 60,
                                 "the run cancelled on B")
                with contextlib.closing(Store.open(b, create=False)) as store_b:
                    assert store_b.list_runs()[0]["status"] == "cancelled"
        finally:
            await asyncio.to_thread(subprocess.run, [CREAM, "worker", "stop"], check=False,
                                    env={**os.environ, "CREAM_HOME": str(b)},
                                    capture_output=True, timeout=120)


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed (CI: apt-get install tmux)")
def test_cream_tui_over_two_hosts_in_a_real_terminal(sshd, tmp_path: Path, two_homes) -> None:
    a, _, gpus = two_homes
    b = tmp_path / "b2"
    write_store(b, now=time.time())
    config = sshd.write_client_config({"hostA": _env(a, CREAM_FAKE_GPUS=str(gpus)),
                                       "hostB": _env(b)})
    user = _user_config(tmp_path / "user.toml", "hostA", "hostB")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREAM_", "TMUX"))}
    env.update(TERM="xterm-256color", LANG="C.UTF-8", CREAM_USER_CONFIG=str(user),
               CREAM_SSH_COMMAND=f"ssh -F {config}", CREAM_HOME=str(tmp_path / "local"))
    pane = Pane(f"cream-hosts-{os.getpid()}", env)
    pane.start(" ".join(shlex.quote(w) for w in [CREAM, "tui", "--host", "hostA", "--host",
                                                 "hostB"]), 120, 40)
    try:
        screen = pane.wait_for("hostA up", "hostB up", "GPU1 util", "scir-c", "2 hosts")
        rows = [line for line in screen.splitlines() if "scir-c" in line]
        assert {h for h in ("hostA", "hostB") if any(h in r for r in rows)} == \
            {"hostA", "hostB"}, screen
        pane.send("h")                                   # the host filter: hostA only
        screen = pane.wait_for("host hostA")
        assert not [line for line in screen.splitlines() if "hostB" in line and "scir" in line]
        assert "Traceback" not in screen
        pane.quit()
    finally:
        pane.tmux("kill-server", check=False)
