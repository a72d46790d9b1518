"""Views that stay where the user looks: the home list keeps its order as runs start and end
(marks and the cursor stay on their runs when a new run pushes rows down), and the log tail,
while following, shows its newest line, long lines wrapped, after updates and resizes."""

from __future__ import annotations

from pathlib import Path

from rich.cells import cell_len

from cream_engine.store import open_store
from cream_tui.widgets.log_tail import LogTail
from cream_tui.widgets.runs_table import RunsTable
from tests.tui.fixtures import NOW, RUNS
from tests.tui.helpers import make_app, screen_text, wait_loaded, wait_until


def rows(table: RunsTable) -> list[tuple[str, str, str]]:
    """(mark, name, status) of every row, top to bottom."""
    cells = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
    return [(c[0], c[1], c[3]) for c in cells]


async def test_marks_and_the_cursor_stay_on_their_runs(tui_home: Path) -> None:
    app = make_app(tui_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        table = app.screen.query_one("#runs", RunsTable)
        assert [r[1] for r in rows(table)] == ["cream-e", "dpo-d", "scir-c", "srlm-b",
                                               "cream-a"]       # newest first
        await pilot.press("down", "space", "down", "space")     # mark dpo-d and scir-c
        assert table.current_run == RUNS.running
        store = open_store(tui_home)
        store.set_run_status(RUNS.running, "done")              # scir-c ends,
        store.set_run_status(RUNS.queued, "running")            # dpo-d starts,
        store.create_run("20260101-000100-fresh-0f06", name="fresh", method="srlm", model="m",
                         iterations=1, run_dir=str(tui_home.absolute() / "fresh"),
                         config_toml="")                        # and a new run comes first
        store.execute("UPDATE runs SET created_at = ? WHERE name = 'fresh'", [NOW + 60])
        await wait_until(pilot, lambda: table.row_count == 6, what="the new run")
        assert rows(table) == [("", "fresh", "queued"), ("", "cream-e", "cancelled"),
                               ("●", "dpo-d", "running"), ("●", "scir-c", "done"),
                               ("", "srlm-b", "failed"), ("", "cream-a", "done")]
        assert table.current_run == RUNS.running and table.cursor_row == 3
        await pilot.press("space")                              # the run under the cursor
        assert app.screen.marked == {RUNS.queued}
        await wait_until(pilot, lambda: rows(table)[3][0] == "", what="the mark to go")
        assert "1 marked (m compares)" in screen_text(app)


async def test_in_a_long_list_the_cursor_keeps_its_line_of_the_screen(tui_env: Path) -> None:
    home = Path("home")
    store = open_store(home)
    for k in range(30):
        run_id = f"20251231-{k:06d}-run-{k:02d}-0000"
        store.create_run(run_id, name=f"run-{k:02d}", method="srlm", model="m", iterations=1,
                         run_dir=str(home.absolute() / run_id), config_toml="")
        store.execute("UPDATE runs SET created_at = ? WHERE id = ?", [NOW - 1000 + k, run_id])
    app = make_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        table = app.screen.query_one("#runs", RunsTable)
        await pilot.press(*["down"] * 20, *["up"] * 5)          # scrolled, cursor mid-screen
        await pilot.pause(0.2)
        run, line = table.current_run, table.cursor_row - table.scroll_y
        assert table.scroll_y > 0 and 0 < line
        store.set_run_status("20251231-000003-run-03-0000", "running")   # a row changes
        await wait_until(pilot, lambda: "running" in str(table.get_row_at(26)[3]),
                         what="the change")
        await pilot.pause(0.2)
        assert table.current_run == run and table.cursor_row - table.scroll_y == line
        store.create_run("20260101-000100-fresh-0f06", name="fresh", method="srlm", model="m",
                         iterations=1, run_dir=str(home.absolute() / "fresh"), config_toml="")
        store.execute("UPDATE runs SET created_at = ? WHERE name = 'fresh'", [NOW + 60])
        await wait_until(pilot, lambda: table.row_count == 31, what="the new run")
        await pilot.pause(0.2)                    # a new run on top: the list scrolls by one
        assert table.current_run == run and table.cursor_row - table.scroll_y == line


def long_line() -> str:
    """A trainer's dict of metrics: one 700-character line."""
    return "{" + ", ".join(f"'metric_{k}': {k / 8:.4f}" for k in range(40)) + "}"


async def test_the_log_tail_follows_its_newest_line_with_long_lines_wrapped(
        tui_home: Path) -> None:
    app = make_app(tui_home, run=RUNS.running)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_loaded(pilot)
        log = app.screen.query_one("#log", LogTail)
        assert log.styles.overflow_x == "hidden"        # no scrollbar row to hide a line
        with (tui_home / RUNS.running / "logs" / "job.log").open("a") as fh:
            fh.write(long_line() + "\nthe newest line\n")
        await wait_until(pilot, lambda: log.lines[-1] == "the newest line", what="the lines")
        for size in ((160, 48), (100, 30)):                   # wide, then the narrow layout
            await pilot.resize_terminal(*size)
            await wait_loaded(pilot)
            width = log.scrollable_content_region.width
            assert 0 < width < 700 and log.lines[-1] == "the newest line", size
            assert all(cell_len(line) <= width for line in log.lines), size
            # the long line is all there, over several rows, and nothing is cut off
            joined = " ".join(log.lines)
            assert "'metric_0': 0.0000," in joined and "'metric_39': 4.8750}" in joined, size
            assert log.scroll_y == log.max_scroll_y > 0, size   # at the end: the newest line
        app.screen.query_one("#run-body").scroll_end(animate=False)
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "the newest line" in text and "'metric_39': 4.8750}" in text
