"""The compare screen: verdicts and a table of the final models' results with n and 95%
intervals, the DPO loss of the runs overlaid (ln 2 drawn), τ per iteration and evaluation
scores per model overlaid (evaluation once a run has it), the config keys that differ."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable

from cream_tui.screens.compare import CompareScreen
from cream_tui.widgets.metric_chart import MetricChart
from tests.tui.compare_fixtures import write_compare_store
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
        assert rows == {"run.iterations": ["3", "3", "4"],       # (a name is no setting)
                        "run.method": ["cream", "srlm", "scir"],
                        "train.beta": ["0.1", "0.3", "0.1"]}
        data = app.screen.last_shown
        assert dict(data.tau) == {"cream-a": ((1.0, 0.31), (2.0, 0.47)),
                                  "srlm-b": ((1.0, -0.05),),
                                  "scir-c": ((1.0, 0.22), (2.0, 0.36))}
        assert data.eval_key == "sets.arith.gen_acc"   # the first set's accuracy, by model
        assert dict(data.evaluation)["cream-a"] == ((0.0, 0.29 / 4), (1.0, 0.31 / 4),
                                                    (2.0, 0.34 / 4), (3.0, 0.36 / 4))
        assert data.finals == ("M3", None, None)
        assert [m.verdict for m in data.metrics][:1] == ["only cream-a has it"]
        text = screen_text(app)
        assert "final models: cream-a M3, srlm-b (not evaluated), scir-c" in text
        assert "• multiple choice: accuracy (generative): only cream-a has it" in text
        assert "  generative acc.     0.36 (0.27–0.46)  -" in text
        app.screen.query_one("#compare-plots").scroll_visible(animate=False, top=True)
        await pilot.pause()
        text = screen_text(app)
        assert "mean τ per iteration" in text
        assert "arithmetic: accuracy (generati" in text        # (cut to the chart's width)
        app.screen.query_one("#config-diff").scroll_visible(animate=False)
        await pilot.pause()
        assert "3 keys differ between cream-a, srlm-b, scir-c (names aside)" in \
            screen_text(app)
        assert data.eval_spans[0][:2] == ("arithmetic: accuracy (generative)", "n = 100")
        # e steps through the other metrics: accuracies first, item counts never
        keys = [key for key, _ in data.evaluations]
        assert keys[:4] == ["sets.arith.gen_acc", "sets.mc.gen_acc", "sets.mc.ll_acc",
                            "win.win_rate"]
        assert "sets.mc.n" not in keys and "judge_score" in keys
        assert dict(dict(data.evaluations)["win.win_rate"])["cream-a"] == (
            (1.0, 0.40), (2.0, 0.40 + 0.04), (3.0, 0.40 + 0.04 * 2))   # no win for M0
        await pilot.press("e")
        app.screen.query_one("#compare-plots").scroll_visible(animate=False, top=True)
        await pilot.pause()
        assert "multiple choice: accuracy (g" in screen_text(app)


async def test_same_configs_and_no_evaluation(tui_home: Path) -> None:
    app = make_app(tui_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        app.open_compare([RUNS.running, RUNS.running])
        await wait_loaded(pilot)
        text = screen_text(app)
        assert "no evaluation yet: verdicts come with the runs' evaluations" in text
        assert "scir-c (0c03)" in text           # same names get their id's tail
        app.screen.query_one("#config-diff").scroll_visible(animate=False)
        await pilot.pause()
        text = screen_text(app)
        assert "(same config)" in text and "evaluation: none yet" in text


async def test_unknown_run_in_compare(tui_home: Path) -> None:
    app = make_app(tui_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        app.open_compare([RUNS.done, "ghost"])
        await wait_loaded(pilot)
        assert "No such run: ghost" in screen_text(app)


async def test_verdicts_table_and_overlaid_loss(tmp_path: Path, tui_env: Path) -> None:
    """Three evaluated runs: which did better beyond noise, which is within noise at n = 12,
    every value with its interval and n, the loss of the three runs over ln 2."""
    ids = write_compare_store(Path("home"))
    app = make_app(Path("home"))
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_loaded(pilot)
        app.open_compare(ids)
        await wait_loaded(pilot)
        text = screen_text(app)
        assert "final models: srlm-x M3, cream-y M3, scir-z M1" in text
        assert ("• multiple choice: accuracy (generative): cream-y M3 better: 0.620 vs scir-z "
                "M1 0.520, srlm-x M3 0.480 (n = 200; each difference beyond noise)") in text
        assert ("• arithmetic: accuracy (generative): within noise at n = 12: cream-y M3 "
                "0.167, scir-z M1 0.167, srlm-x M3 0.083") in text
        table = app.screen.query_one("#metrics", DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert ["multiple choice", "n = 200", "", ""] in rows
        assert ["  generative acc.", "0.48 (0.41–0.55)", "0.62 (0.55–0.68)",
                "0.52 (0.45–0.59)"] in rows
        assert ["held-out prompts", "n = 16", "", ""] in rows
        assert rows[-1][0] == "  length (tokens)" and "(no CI)" not in str(rows)
        data = app.screen.last_shown
        assert [label for label, _ in data.loss] == ["srlm-x", "cream-y", "scir-z"]
        assert all(len(points) == 120 for _, points in data.loss[:2])
        assert "ln 2" in text and "DPO loss, runs overlaid" in text
        loss = app.screen.query_one("#loss-chart", MetricChart)
        assert loss.references[0][1] == "ln 2" and loss.min_span > 0
        # the accuracy of 12 questions is charted on an axis at least as tall as its interval
        title, n, span, bounds = data.eval_spans[0]
        assert (title, n, bounds) == ("arithmetic: accuracy (generative)", "n = 12", (0.0, 1.0))
        assert span > 0.35
