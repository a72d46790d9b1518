"""A tiny run SIGKILLed at random moments and re-run each time ends exactly as an uninterrupted
run: pairs, evaluations, checkpoints, store records, no duplicated metric rows, an intact
database (issue 12). A small sweep of bench/kill_sweep.py's, through the same code
(tests/engine/kill_sweep.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.kill_sweep import run_sweep

KILLS = 4


@pytest.mark.slow
@pytest.mark.parametrize("eval_on", [True, False], ids=["eval-on", "eval-off"])
def test_killed_and_rerun_ends_like_an_uninterrupted_run(eval_on: bool, tiny_model_dir: Path,
                                                         tmp_path: Path) -> None:
    report = run_sweep(tiny_model_dir, tmp_path, kills=KILLS, seed=12, eval_on=eval_on)
    landed = [f"{k.target} -> {k.landed} {k.note}" for k in report.kills]
    assert report.ok, "\n".join([*(f"{c.name}: {c.detail}" for c in report.checks if not c.ok),
                                 "kills:", *landed])
    # every kill was made (one aimed after the last stage may come too late: the run ended)
    assert len(report.kills) >= sum(not t.startswith("end") for t in report.targets), landed
