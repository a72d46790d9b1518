"""The real `cream tui` in a real terminal (tmux): it starts, shows the runs with the GPU strip,
the GPU panel, and a run's loss chart and consistency table, and quits on q.

Needs tmux (CI: `apt-get install -y tmux`); without it the test is skipped and says why."""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import pytest

from tests.tui.fixtures import write_store
from tests.tui.helpers import TMUX, Pane

pytestmark = pytest.mark.skipif(
    TMUX is None, reason="tmux is not installed (CI: apt-get install -y tmux)")


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
        pane.wait_for("── GPU0 NVIDIA H100 80GB HBM3", "1 proc: scir-c", "35.6 GiB",
                      "util  84% history")
        pane.send("Escape")
        pane.wait_for("queue accepting jobs")
        pane.send("Down")                  # newest first: cream-e, dpo-d, then scir-c
        pane.send("Down")
        pane.send("Enter")                                       # scir-c, the running run
        screen = pane.wait_for("scir-c · scir", "DPO loss", "reward margin / accuracy",
                               "mean τ", "mean C", "agree", "0.220", "step 120 loss")
        assert "Traceback" not in screen
        pane.quit()
    finally:
        pane.tmux("kill-server", check=False)
