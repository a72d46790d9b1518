"""The compare screen: the config diff shows only the keys that differ; τ and evaluation
scores per iteration are overlaid (evaluation once a run has it)."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable

from cream_tui.screens.compare import CompareScreen
from tests.tui.fixtures import RUNS
from tests.tui.helpers import make_app, screen_text, wait_loaded


async def test_config_diff_and_overlaid_curves(tui_home: Path) -> None:
    app = make_app(tui_home)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        app.open_compare([RUNS.done, RUNS.failed, RUNS.running])
        await wait_loaded(pilot)
        assert isinstance(app.screen, CompareScreen)
        table = app.screen.query_one("#config-diff", DataTable)
        rows = {str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)[1:]]
                for i in range(table.row_count)}
        assert rows == {"run.iterations": ["3", "3", "4"],
                        "run.method": ["cream", "srlm", "scir"],
                        "run.name": ["cream-a", "srlm-b", "scir-c"],
                        "train.beta": ["0.1", "0.3", "0.1"]}
        data = app.screen.last_shown
        assert dict(data.tau) == {"cream-a": ((1.0, 0.31), (2.0, 0.47)),
                                  "srlm-b": ((1.0, -0.05),),
                                  "scir-c": ((1.0, 0.22), (2.0, 0.36))}
        assert data.eval_key == "sets.arith.gen_acc"   # the first set's accuracy, by model
        assert dict(data.evaluation)["cream-a"] == ((0.0, 0.29 / 4), (1.0, 0.31 / 4),
                                                    (2.0, 0.34 / 4), (3.0, 0.36 / 4))
        text = screen_text(app)
        assert "4 keys differ between cream-a, srlm-b, scir-c" in text
        assert "mean τ per iteration" in text and "evaluation: sets.arith.gen_acc" in text
        # e steps through the other metrics: accuracies first, item counts never
        keys = [key for key, _ in data.evaluations]
        assert keys[:4] == ["sets.arith.gen_acc", "sets.mc.gen_acc", "sets.mc.ll_acc",
                            "win.win_rate"]
        assert "sets.mc.n" not in keys and "judge_score" in keys
        assert dict(dict(data.evaluations)["win.win_rate"])["cream-a"] == (
            (1.0, 0.40), (2.0, 0.40 + 0.04), (3.0, 0.40 + 0.04 * 2))   # no win for M0
        await pilot.press("e")
        await pilot.pause()
        assert "evaluation: sets.mc.gen_acc" in screen_text(app)


async def test_same_configs_and_no_evaluation(tui_home: Path) -> None:
    app = make_app(tui_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        app.open_compare([RUNS.running, RUNS.running])
        await wait_loaded(pilot)
        text = screen_text(app)
        assert "(same config)" in text and "evaluation: none yet" in text
        assert "scir-c (0c03)" in text           # same names get their id's tail


async def test_unknown_run_in_compare(tui_home: Path) -> None:
    app = make_app(tui_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        app.open_compare([RUNS.done, "ghost"])
        await wait_loaded(pilot)
        assert "No such run: ghost" in screen_text(app)
