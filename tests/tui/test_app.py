from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Static

from cream_engine.store import open_store
from cream_tui.app import CreamApp


async def test_empty_home_shows_how_to_start(tmp_path: Path) -> None:
    app = CreamApp(tmp_path / "nothing-here")
    async with app.run_test(size=(80, 24)) as pilot:
        text = str(app.query_one("#empty", Static).render())
        assert "No runs" in text and "cream init" in text
        await pilot.press("q")
    assert not (tmp_path / "nothing-here").exists()


async def test_runs_are_listed(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    s.create_run("r-1", name="a", method="srlm", model="bundled:tiny-random", iterations=2,
                 run_dir=str(tmp_path / "r-1"), config_toml="")
    s.close()
    app = CreamApp(tmp_path)
    async with app.run_test(size=(80, 24)):
        table = app.query_one("#runs", DataTable)
        assert table.row_count == 1
        assert table.get_row_at(0)[:2] == ["r-1", "srlm"]
