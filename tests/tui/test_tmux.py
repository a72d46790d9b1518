"""The real `cream tui` in a real terminal (tmux): it starts, shows the runs with the GPU strip,
the GPU panel, and a run's loss chart and consistency table, and quits on q.

Needs tmux (CI: `apt-get install -y tmux`); without it the test is skipped and says why."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tui.fixtures import write_store

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(
    TMUX is None, reason="tmux is not installed (CI: apt-get install -y tmux)")


class Pane:
    """One detached tmux session on a private server socket."""

    def __init__(self, socket: str, env: dict[str, str]):
        self.base = [TMUX, "-u", "-L", socket, "-f", "/dev/null"]
        self.env = env

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*self.base, *args], env=self.env, capture_output=True,
                              text=True, check=check, timeout=30)

    def start(self, command: str, width: int, height: int) -> None:
        self.tmux("new-session", "-d", "-s", "cream", "-x", str(width), "-y", str(height),
                  command)

    def capture(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "cream", check=False).stdout

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "cream", *keys)

    def wait_for(self, *texts: str, timeout: float = 30.0) -> str:
        deadline = time.time() + timeout
        while True:
            screen = self.capture()
            if all(t in screen for t in texts):
                return screen
            if time.time() > deadline:
                missing = [t for t in texts if t not in screen]
                raise AssertionError(f"not on screen: {missing}\n{screen}")
            time.sleep(0.2)

    def alive(self) -> bool:
        return self.tmux("has-session", "-t", "cream", check=False).returncode == 0


def test_cream_tui_in_a_real_terminal(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_store(home, now=time.time())       # fresh GPU samples: the worker "is" sampling
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREAM_", "TMUX"))}
    env.update(CREAM_HOME=str(home), TERM="xterm-256color", LANG="C.UTF-8",
               COLORTERM="truecolor")
    env.pop("NO_COLOR", None)
    pane = Pane(f"cream-test-{os.getpid()}", env)
    command = (f"env CREAM_HOME={shlex.quote(str(home))} "
               f"{shlex.quote(sys.executable)} -m cream_tui.cli tui")
    pane.start(command, 120, 40)
    try:
        pane.wait_for("scir-c", "srlm-b", "queue accepting jobs", "GPU0 util", "GPU1 util")
        pane.send("g")                                           # the GPU panel
        pane.wait_for("GPU0 NVIDIA H100 80GB HBM3", "pid 4242", "run scir-c", "power N/A")
        pane.send("Escape")
        pane.wait_for("queue accepting jobs")
        pane.send("Enter")                                       # scir-c, the running run
        screen = pane.wait_for("DPO loss", "reward margin / accuracy", "mean τ", "mean C",
                               "agree", "0.220", "it2 step 120")
        assert "Traceback" not in screen
        pane.send("q")
        deadline = time.time() + 15
        while pane.alive():
            assert time.time() < deadline, "q did not quit"
            time.sleep(0.2)
    finally:
        pane.tmux("kill-server", check=False)
