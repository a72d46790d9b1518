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
from cream_tui.demo import accuracy_lines
from tests.conftest import run_cli
from tests.tui.helpers import TMUX, Pane


@pytest.mark.slow  # (about a minute: two whole tiny runs; the default suite stays under 15)
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
    # the comparison printed at the end: both runs; M0, the seed SFT's M1 and the last model
    # evaluated ([eval] every = 2: M2 is not)
    assert "evaluation" in r.stdout and "demo-cream-tiny" in r.stdout
    data = json.loads(run_cli("compare", *(x["id"] for x in runs.values()), "--json",
                              home=home).stdout)
    assert data["config_diff"]["run.method"] == ["cream", "srlm"]
    models = [(row["run"], row["model"]) for row in data["rows"] if row["eval"]]
    assert models == [(x["id"], m) for x in runs.values() for m in ("M0", "M1", "M3")]
    assert all(row["eval"]["sets"]["mc"]["n"] == 8 for row in data["rows"] if row["eval"])
    # M1 and its evaluation were computed once, for both runs (the home's cache)
    infos = [json.loads(s["info"]) for x in runs.values() for s in store.stages(x["id"])
             if s["stage"] in ("sft", "sft-eval")]
    assert sorted(i["cache"] for i in infos) == ["hit", "hit", "stored", "stored"]
    # every accuracy with its n and 95% interval, one verdict per accuracy metric
    assert "demo-cream-tiny M3 mc gen_acc " in r.stdout and "(n = 8, 95% CI " in r.stdout
    verdicts = [ln.split(":")[0] for ln in r.stdout.splitlines() if ln.endswith(" noise.")]
    measured = sorted({f"{name} {k}" for row in data["rows"]
                       if row["eval"] for name, s in row["eval"]["sets"].items() for k in s
                       if k in ("gen_acc", "ll_acc", "ll_acc_norm") and s[k] is not None})
    assert sorted(verdicts) == measured and "mc ll_acc" in measured


def _row(run: str, model: str, mc: dict | None) -> dict:
    return {"run": run, "model": model, "eval": {"sets": {"mc": mc}} if mc else None}


def test_accuracy_lines_give_n_intervals_and_verdicts() -> None:
    """The closing comparison's accuracy lines, from what `compare()` returns (no demo run):
    3/12 vs 5/12 is within noise, 11/12 vs 1/12 is not (Wilson and Newcombe by hand in
    tests/engine/test_stats.py)."""
    data = {"runs": [{"id": "r1", "name": "demo-cream"}, {"id": "r2", "name": "demo-srlm"}],
            "rows": [_row("r1", "M0", {"n": 12, "gen_acc": 0.25, "ll_acc": 0.5}),
                     _row("r1", "M1", None),  # (not evaluated)
                     _row("r1", "M2", {"n": 12, "gen_acc": 3 / 12, "ll_acc": 11 / 12}),
                     _row("r2", "M2", {"n": 12, "gen_acc": 5 / 12, "ll_acc": 1 / 12,
                                       "ll_acc_norm": None})]}
    lines = accuracy_lines(data)
    assert lines[:6] == [
        "accuracy with its 95% interval (Wilson):",
        "demo-cream M0 mc gen_acc 0.250 (n = 12, 95% CI 0.09-0.53)",
        "demo-cream M0 mc ll_acc 0.500 (n = 12, 95% CI 0.25-0.75)",
        "demo-cream M2 mc gen_acc 0.250 (n = 12, 95% CI 0.09-0.53)",
        "demo-cream M2 mc ll_acc 0.917 (n = 12, 95% CI 0.65-0.99)",
        "demo-srlm M2 mc gen_acc 0.417 (n = 12, 95% CI 0.19-0.68)",
    ]
    verdicts = lines[8:]
    assert verdicts[0] == ("mc gen_acc: demo-cream M2 0.250 (n = 12) vs demo-srlm M2 0.417 "
                           "(n = 12): difference -0.167, 95% CI -0.48 to +0.19, within noise.")
    assert verdicts[1].startswith("mc ll_acc: demo-cream M2 0.917 (n = 12) vs demo-srlm M2 "
                                  "0.083") and verdicts[1].endswith("demo-cream M2 is higher, "
                                                                    "beyond noise.")
    assert len(verdicts) == 2  # (ll_acc_norm: measured on one side only)
    # a first run with no evaluation yet: the others are still compared
    unmeasured = {"runs": [{"id": "r0", "name": "demo-dpo"}, *data["runs"]],
                  "rows": [_row("r0", "M1", None), *data["rows"]]}
    assert accuracy_lines(unmeasured)[8:] == verdicts
    assert accuracy_lines({"runs": data["runs"], "rows": [_row("r1", "M0", None)]}) == []


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
