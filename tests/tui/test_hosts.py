"""Several boxes in one dashboard, over a real sshd (tests/sshd.py) on 127.0.0.1: each "host"
is a `Host` entry of a private ssh client config whose `SetEnv` gives it its own data home.

- `cream … --host B` is `ssh B cream …`: the same output and exit code;
- the dashboard (Pilot) lists two hosts' runs and GPUs, submits a run to host B that B's worker
  runs and the dashboard cancels there; B's sshd killed mid-session shows B down within
  seconds while A keeps updating, and B comes back by itself;
- the real `cream tui --host A --host B` in tmux shows both.
"""

from __future__ import annotations

import asyncio
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
    write_store(a, now=time.time())
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
    runs = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in json.loads(here.stdout)]
    assert runs == [{k: v for k, v in r.items() if k != "elapsed_s"}
                    for r in json.loads(there.stdout)]
    assert {r["name"] for r in runs} >= {"cream-a", "scir-c", "dpo-d"}
    here, there = both("compare", RUNS.done, RUNS.failed, "--json")
    assert here.stdout == there.stdout and "config_diff" in json.loads(here.stdout)
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


async def test_dashboard_over_two_hosts(sshd, tmp_path: Path, two_homes,
                                        tiny_model_dir: Path, monkeypatch) -> None:
    a, b, gpus = two_homes
    server_b = SshServer(tmp_path / "sshd-b").start()   # B's own sshd: killed alone below
    try:
        config = tmp_path / "ssh_config"
        config.write_text(
            sshd.write_client_config({"hostA": _env(a, CREAM_FAKE_GPUS=str(gpus))})
            .read_text() + "\n" + server_b.write_client_config({"hostB": _env(b)}).read_text())
        monkeypatch.setenv("CREAM_SSH_COMMAND", f"ssh -F {config}")
        exp = _tiny_config(tmp_path / "exp.toml", tiny_model_dir)
        app = make_app(tmp_path / "no-local", hosts=[HostSpec("hostA", "hostA", CREAM),
                                                     HostSpec("hostB", "hostB", CREAM)])
        async with app.run_test(size=(140, 44)) as pilot:
            await wait_until(pilot, lambda: "scir-c" in screen_text(app)
                             and "GPU1 util  91%" in screen_text(app)
                             and "hostB up" in screen_text(app), 30, "both hosts")
            text = screen_text(app)
            assert "hostA" in _row(app, "scir-c") and "hostA" in _row(app, "dpo-d")
            assert "hostB up" in text and "0 runs" in text and "no GPU" in text

            # submit to B from the dashboard; B's worker (started over ssh) runs it there
            await pilot.press("s")
            await pilot.pause()
            for key in f"hostB:{exp}":
                await pilot.press(key)
            await pilot.press("enter")
            await wait_actions(pilot)
            await wait_until(pilot, lambda: "sent-to-b" in screen_text(app), 30, "the run")
            assert "hostB" in _row(app, "sent-to-b") and "queued" in _row(app, "sent-to-b")
            store_b = Store.open(b, create=False)
            assert store_b is not None and [r["name"] for r in store_b.list_runs()] == \
                ["sent-to-b"]
            started = await asyncio.to_thread(
                subprocess.run, ["ssh", "-F", str(config), "hostB", CREAM, "worker", "start"],
                capture_output=True, text=True, timeout=60, check=False)
            assert started.returncode == 0, started.stderr
            await wait_until(pilot, lambda: "running" in _row(app, "sent-to-b"), 60,
                             "the run running on B")

            # cancel it from the dashboard: the action goes to B
            table = app.screen.query_one("#runs")
            keys = [k.value for k in table.rows]
            table.move_cursor(row=next(i for i, k in enumerate(keys) if k.startswith("hostB::")))
            await pilot.press("c")
            await pilot.press("y")
            await wait_actions(pilot)
            await wait_until(pilot, lambda: "cancelled" in _row(app, "sent-to-b"), 60,
                             "the run cancelled on B")
            assert store_b.list_runs()[0]["status"] == "cancelled"
            store_b.close()

            # a remote run's screen, and a compare across the two hosts
            def select(prefix: str, name: str) -> None:
                keys = [k.value for k in table.rows]
                table.move_cursor(row=next(i for i, k in enumerate(keys)
                                           if k.startswith(prefix) and name in _row_key(app, k)))

            select("hostA::", "scir-c")
            await pilot.press("enter")
            await wait_until(pilot, lambda: "DPO loss" in screen_text(app)
                             and "host hostA" in screen_text(app)
                             and "loss 0.2723" in screen_text(app), 30, "A's run screen")
            await pilot.press("escape")
            await pilot.pause()
            table = app.screen.query_one("#runs")
            select("hostA::", "cream-a")
            await pilot.press("space")
            select("hostB::", "sent-to-b")
            await pilot.press("space")
            await pilot.press("m")
            await wait_until(pilot, lambda: "cream-a@hostA" in screen_text(app)
                             and "sent-to-b@hostB" in screen_text(app), 30, "the compare")
            await pilot.press("escape")
            await pilot.pause()

            # B's sshd dies: B is down within seconds, A keeps updating
            server_b.kill()
            killed = time.monotonic()
            await wait_until(pilot, lambda: "hostB down" in screen_text(app), 10, "B down")
            assert time.monotonic() - killed < 5
            assert "✗" in _row(app, "sent-to-b")
            store_a = Store.open(a, create=False)
            store_a.execute("UPDATE jobs SET priority = 7 WHERE run_id = ?", [RUNS.queued])
            store_a.close()
            await wait_until(pilot, lambda: "queued p7" in _row(app, "dpo-d"), 15,
                             "A's update while B is down")
            assert "hostB down" in screen_text(app)

            # B comes back by itself
            server_b.start()
            await wait_until(pilot, lambda: "hostB up" in screen_text(app), 30, "B back")
            assert "cancelled" in _row(app, "sent-to-b")
    finally:
        await asyncio.to_thread(subprocess.run, [CREAM, "worker", "stop"], check=False,
                                env={**os.environ, "CREAM_HOME": str(b)},
                                capture_output=True, timeout=120)
        server_b.stop()


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
        pane.send("q")
        deadline = time.time() + 15
        while pane.alive():
            assert time.time() < deadline, "q did not quit"
            time.sleep(0.2)
    finally:
        pane.tmux("kill-server", check=False)
