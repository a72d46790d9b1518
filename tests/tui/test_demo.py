"""`cream demo --tiny`: a `cream` and an `srlm` run queued for a worker the demo starts, both
evaluated (M0, M1, M2), then compared; in a terminal the dashboard shows both runs."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path

import pytest

from cream_engine.daemon import daemon_pid
from cream_engine.store import open_store
from tests.conftest import run_cli
from tests.tui.helpers import TMUX, Pane


def test_demo_tiny_no_tui(tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = run_cli("demo", "--tiny", "--no-tui", home=home, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "started the worker" in r.stderr and "stopped the worker it started" in r.stderr
    assert daemon_pid(home) is None                  # it stopped the worker it started
    store = open_store(home)
    runs = {run["method"]: run for run in sorted(store.list_runs(),
                                                 key=lambda x: x["method"])}
    assert set(runs) == {"cream", "srlm"} and all(x["status"] == "done" for x in runs.values())
    # the two ran side by side on the CPU: each started before the other ended
    jobs = store.query("SELECT started_at, ended_at FROM jobs ORDER BY id")
    assert jobs[0]["started_at"] < jobs[1]["ended_at"] and jobs[1]["started_at"] < \
        jobs[0]["ended_at"]
    # the comparison printed at the end: both runs, every model evaluated
    assert "evaluation" in r.stdout and "demo-cream-tiny" in r.stdout
    data = json.loads(run_cli("compare", *(x["id"] for x in runs.values()), "--json",
                              home=home).stdout)
    assert data["config_diff"]["run.method"] == ["cream", "srlm"]
    models = [(row["run"], row["model"]) for row in data["rows"] if row["eval"]]
    assert models == [(x["id"], m) for x in runs.values() for m in ("M0", "M1", "M2")]
    assert all(row["eval"]["sets"]["mc"]["n"] == 8 for row in data["rows"])


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed (CI: apt-get install -y tmux)")
def test_demo_opens_the_dashboard_on_both_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREAM_", "TMUX"))}
    env.update(TERM="xterm-256color", LANG="C.UTF-8")
    pane = Pane(f"cream-demo-{os.getpid()}", env)
    # the dashboard draws on stderr: the demo's messages go to the terminal too
    pane.start(f"{shlex.quote(sys.executable)} -m cream_tui.cli --home {shlex.quote(str(home))}"
               f" demo --tiny; sleep 60", 120, 40)
    try:
        pane.wait_for("demo-cream-tiny", "demo-srlm-tiny", "running", timeout=120)
        pane.send("q")
        deadline = time.time() + 30
        while not any(t in pane.capture() for t in ("go on in the background worker",
                                                   "evaluation")):
            assert time.time() < deadline, pane.capture()
            time.sleep(0.2)
    finally:
        pane.tmux("kill-server", check=False)
        pid = daemon_pid(home)
        if pid:
            run_cli("worker", "stop", home=home, timeout=120)
