"""The run screen: charts with iteration boundaries, the per-iteration table and τ sparkline,
the stage timeline, the log tail with follow mode, and live updates from the store."""

from __future__ import annotations

from pathlib import Path

from cream_engine.store import open_store
from cream_tui.widgets.iteration_table import IterationTable
from cream_tui.widgets.log_tail import LogTail
from tests.tui.fixtures import RUNS
from tests.tui.helpers import make_app, screen_text, wait_loaded, wait_until


def table_rows(app) -> list[list[str]]:
    table = app.screen.query_one("#iterations", IterationTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_charts_table_and_timeline_of_a_running_run(tui_home: Path) -> None:
    app = make_app(tui_home, run=RUNS.running)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_loaded(pilot)
        data = app.screen.last_shown
        # 300 + 300 + 120 logged steps, laid end to end, boundaries where iterations start
        assert data.boundaries == ((300.0, 1), (600.0, 2))
        assert data.loss[0][0] == 1 and data.loss[-1][0] == 720
        buckets = app.screen.query_one("#loss-chart").buckets
        assert len(data.loss) <= 2 * buckets + 2 < 720
        assert max(y for _, y in data.loss) > 1.0      # the spike at step 37 survived
        assert data.accuracy and data.margins
        assert data.last[:2] == (2, 120)
        assert table_rows(app) == [
            ["0", "done", "593", "-", "-", "0.580", "-", "198.0"],
            ["1", "done", "593", "0.220", "0.610", "0.660", "-", "202.0"],
            ["2", "running", "121", "0.360", "0.680", "0.710", "-", "205.5"]]
        text = screen_text(app)
        assert "DPO loss" in text and "reward margin / accuracy" in text
        assert "it1" in text and "it2" in text            # boundaries on the x axis
        assert "τ by iteration" in text and "- → +0.22 → +0.36" in text
        assert "iteration 2 stages" in text
        assert "▶ train" in text and "120/300" in text and "12m00s" in text
        assert "✔ pairs" in text
        assert "elapsed 2h00m" in text and "ETA 1h16m" in text
        assert "it2 step 120 loss" in text
        assert f"log (following) {RUNS.running}/logs/job.log" in text
        assert "iter 2 pairs: done in 120.0s" in text


async def test_evaluation_scores_show_when_present(tui_home: Path) -> None:
    app = make_app(tui_home, run=RUNS.done)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_loaded(pilot)
        # the headline of M_t+1's evaluation: each set's accuracy (then the win rate, the score)
        assert [r[6] for r in table_rows(app)] == [
            f"arith {acc / 4:.2f} mc {acc:.2f}".replace("0.", ".")
            for acc in (0.31, 0.34, 0.36)]
        assert "no log yet" in screen_text(app)


async def test_new_points_and_log_lines_arrive_live(tui_home: Path) -> None:
    app = make_app(tui_home, run=RUNS.running)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        store = open_store(tui_home)
        store.log_metrics(RUNS.running, 2, "train", 121, {"loss": 0.25,
                                                          "rewards/margins": 1.5})
        store.stage_progress(RUNS.running, 2, "train", 121)
        await wait_until(pilot, lambda: "it2 step 121 loss 0.2500" in
                         " ".join(screen_text(app).split()), what="the new point")
        assert "121/300" in screen_text(app)
        log_file = tui_home / RUNS.running / "logs" / "job.log"
        log = app.screen.query_one("#log", LogTail)
        with log_file.open("a") as fh:
            fh.write("first new line\n")
        await wait_until(pilot, lambda: log.lines[-1] == "first new line", what="the log")
        await pilot.press("f")                                   # pause
        assert "log (paused: f follows)" in screen_text(app)
        with log_file.open("a") as fh:
            fh.write("second new line\n")
        await pilot.pause(0.5)
        assert log.lines[-1] == "first new line"                 # held while paused
        await pilot.press("f")                                   # follow again: caught up
        await wait_until(pilot, lambda: log.lines[-1] == "second new line", what="catch-up")
        assert "log (following)" in screen_text(app)


async def test_a_restarted_training_stage_replaces_its_points(tui_home: Path) -> None:
    app = make_app(tui_home, run=RUNS.running)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        assert app.screen.last_shown.last[:2] == (2, 120)
        store = open_store(tui_home)
        store.start_stage(RUNS.running, 2, "train")    # a retry: its old metrics are deleted
        store.log_metrics(RUNS.running, 2, "train", 1, {"loss": 0.7})
        await wait_until(pilot, lambda: app.screen.last_shown.last[:2] == (2, 1),
                         what="the restarted series")
        assert app.screen.last_shown.loss[-1] == (601.0, 0.7)


async def test_narrow_terminal_scrolls_to_everything(tui_home: Path) -> None:
    app = make_app(tui_home, run=RUNS.running)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        text = screen_text(app)
        assert "DPO loss" in text and "mean τ" in text           # both above the fold
        body = app.screen.query_one("#run-body")
        body.scroll_end(animate=False)
        await pilot.pause(0.2)
        assert "iter 2 train" in screen_text(app)                # the log tail, scrolled to
