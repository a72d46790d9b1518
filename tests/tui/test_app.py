"""The home screen and its keys, driven with Pilot against the fixed store: the runs table,
empty and broken stores, and every queue action (which really changes the store)."""

from __future__ import annotations

from pathlib import Path

from cream_engine.config import from_dict, to_toml
from cream_engine.store import open_store
from cream_tui.screens.compare import CompareScreen
from cream_tui.screens.gpus import GpuScreen
from cream_tui.screens.help import HelpScreen
from cream_tui.screens.home import HomeScreen
from cream_tui.screens.prompts import ConfirmScreen, FilePromptScreen
from cream_tui.screens.run import RunScreen
from cream_tui.widgets.runs_table import RunsTable
from tests.tui.fixtures import RUNS
from tests.tui.helpers import make_app, screen_text, wait_actions, wait_loaded, wait_until


def job(home: Path, run_id: str) -> dict:
    return open_store(home).query("SELECT * FROM jobs WHERE run_id = ? ORDER BY id DESC",
                                  [run_id])[0]


async def test_empty_home_says_how_to_submit(tui_env: Path) -> None:
    app = make_app(Path("nothing-here"))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        text = screen_text(app)
        assert "No runs in nothing-here yet" in text
        assert "cream submit exp.toml" in text and "cream run exp.toml" in text
        assert not app.screen.query_one("#runs").display
        await pilot.press("q")
    assert not Path("nothing-here").exists()   # reading never creates the home


async def test_a_store_without_runs_is_the_empty_state_too(tui_env: Path) -> None:
    open_store(Path("home")).close()
    app = make_app(Path("home"))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        assert "cream submit" in screen_text(app)


async def test_newer_schema_is_a_clear_message_not_a_traceback(tui_env: Path) -> None:
    s = open_store(Path("home"))
    s.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
              "VALUES ('cream', 'm999_future', 'now')")
    s.close()
    app = make_app(Path("home"))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        text = screen_text(app)
        assert "Cannot read the store" in text and "newer cream" in text
        assert "upgrade cream" in text
        await pilot.press("enter", "c", "r")     # keys on an empty table do nothing harmful
        assert isinstance(app.screen, HomeScreen)


async def test_runs_are_listed_newest_first(tui_home: Path) -> None:
    app = make_app(tui_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        table = app.screen.query_one("#runs", RunsTable)
        order = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        # by creation only: a run keeps its row as it starts and ends (test_stable_views.py)
        assert order == ["cream-e", "dpo-d", "scir-c", "srlm-b", "cream-a"]
        assert [str(c) for c in table.get_row_at(2)[2:]] == [
            "scir", "running", "2/4", "train 40%", "0", "2h00m", "1h16m"]
        text = screen_text(app)
        assert "queued p2" in text and "failed" in text and "score ✗" in text
        # dpo-d's shape never ran here: the queue's end is unknown, not guessed
        assert "5 runs · 1 running · 1 queued · queue accepting jobs" in text
        assert "GPU0 util  84%" in text and "GPU1" in text        # the GPU strip


async def test_enter_opens_the_run_and_escape_comes_back(tui_home: Path) -> None:
    app = make_app(tui_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("down", "down", "down", "enter")    # srlm-b
        await wait_loaded(pilot)
        assert isinstance(app.screen, RunScreen) and app.screen.ref == RUNS.failed
        assert "error: NaN loss at step 121" in screen_text(app)
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)


async def test_run_option_opens_a_run_directly(tui_home: Path) -> None:
    app = make_app(tui_home, run="scir-c")      # by name, as `cream tui --run` allows
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        assert isinstance(app.screen, RunScreen)
        assert "scir-c · scir on bundled:smollm2-135m-instruct · running" in screen_text(app)
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)


async def test_a_resize_keeps_polling_the_screen_in_front(tui_home: Path) -> None:
    """A resize reaches the screens underneath too: they must not take the poll over."""
    app = make_app(tui_home, run="scir-c")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        for size in ((120, 40), (100, 30), (80, 24)):
            await pilot.resize_terminal(*size)
            await wait_loaded(pilot)
            assert isinstance(app.screen, RunScreen) and app.poll_target is app.screen
        await pilot.press("escape")
        await wait_loaded(pilot)
        assert isinstance(app.poll_target, HomeScreen)


async def test_unknown_run_option_says_so(tui_home: Path) -> None:
    app = make_app(tui_home, run="nope")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        assert "Run 'nope': no such run" in screen_text(app)


async def test_cancel_asks_first(tui_home: Path) -> None:
    app = make_app(tui_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("down", "c")                          # dpo-d, queued
        assert isinstance(app.screen, ConfirmScreen)
        assert f"Cancel run {RUNS.queued}?" in screen_text(app)
        await pilot.press("n")
        await wait_actions(pilot)
        assert job(tui_home, RUNS.queued)["status"] == "queued"
        await pilot.press("c", "y")
        await wait_actions(pilot)
        assert job(tui_home, RUNS.queued)["status"] == "cancelled"
        table = app.screen.query_one("#runs", RunsTable)
        # cancelled, it keeps its row, and the cursor stays on it
        await wait_until(pilot, lambda: "cancelled" in str(table.get_row_at(1)[3]),
                         what="the new status")
        assert table.current_run == RUNS.queued and table.cursor_row == 1
        await pilot.press("down", "c", "enter")                 # scir-c: enter is not a yes
        await wait_actions(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_actions(pilot)
        assert job(tui_home, RUNS.running)["cancel_requested"] == 1


async def test_retry_priority_and_drain(tui_home: Path) -> None:
    app = make_app(tui_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("down", "plus")                       # dpo-d: 2 → 3
        await wait_actions(pilot)
        assert job(tui_home, RUNS.queued)["priority"] == 3
        await pilot.press("minus", "minus")
        await wait_actions(pilot)
        assert job(tui_home, RUNS.queued)["priority"] == 1
        await pilot.press("down", "plus")                       # running: refused, one line
        await wait_actions(pilot)
        assert any("only a queued job's priority" in n.message
                   for n in app._notifications)
        await pilot.press("down", "r")                          # srlm-b, failed → queued
        await wait_actions(pilot)
        assert job(tui_home, RUNS.failed)["status"] == "queued"
        assert open_store(tui_home).get_run(RUNS.failed)["status"] == "queued"
        await pilot.press("d")
        await wait_actions(pilot)
        assert open_store(tui_home).get_setting("queue.drain") == "1"
        await wait_until(pilot, lambda: "queue drained" in screen_text(app), what="drained")
        await pilot.press("d")
        await wait_actions(pilot)
        assert open_store(tui_home).get_setting("queue.drain") == "0"


async def test_submit_prompts_for_a_config(tui_home: Path, tiny_model_dir: Path) -> None:
    config = Path("exp.toml")
    config.write_text(to_toml(from_dict({"run": {"name": "fresh", "method": "srlm",
                                                 "model": str(tiny_model_dir)}})))
    app = make_app(tui_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("s")
        assert isinstance(app.screen, FilePromptScreen)
        await pilot.press("escape")                             # cancelled: nothing queued
        assert isinstance(app.screen, HomeScreen)
        await pilot.press("s", *"missing.toml", "enter")
        await wait_actions(pilot)
        assert any("missing.toml: no such file" in n.message for n in app._notifications)
        await pilot.press("s", *str(config), "enter")
        await wait_actions(pilot)
        runs = {r["name"]: r for r in open_store(tui_home).list_runs()}
        assert runs["fresh"]["status"] == "queued"
        await wait_until(pilot, lambda: app.screen.query_one("#runs", RunsTable).row_count == 6,
                         what="the new run")


async def test_filter_marks_and_compare(tui_home: Path) -> None:
    app = make_app(tui_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        table = app.screen.query_one("#runs", RunsTable)
        await pilot.press("slash", *"cream")
        await wait_until(pilot, lambda: table.row_count == 2, what="the filter")
        await pilot.press("enter")                              # keep the filter
        assert "filter 'cream': 2 shown" in screen_text(app)
        await pilot.press("down", "escape")                     # cream-a; clear the filter
        await wait_until(pilot, lambda: table.row_count == 5, what="all rows")
        await pilot.press("m")                                  # nothing marked yet
        assert isinstance(app.screen, HomeScreen)
        assert table.current_run == RUNS.done and table.cursor_row == 4   # stayed on its run
        await pilot.press("space", *["up"] * 4, "space")        # cream-a and cream-e
        assert "2 marked (m compares)" in screen_text(app)
        await pilot.press("m")
        await wait_loaded(pilot)
        assert isinstance(app.screen, CompareScreen)
        assert app.screen.run_ids == (RUNS.cancelled, RUNS.done)
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)


async def test_help_gpus_and_quit(tui_home: Path) -> None:
    app = make_app(tui_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "submit a config" in screen_text(app)
        await pilot.press("escape", "g")
        await wait_loaded(pilot)
        assert isinstance(app.screen, GpuScreen)
        await pilot.press("g", "escape")                        # g again does not stack
        assert isinstance(app.screen, HomeScreen)
        await pilot.press("q")
    assert app.return_code == 0


async def test_no_color_is_honoured(tui_home: Path, monkeypatch) -> None:
    from textual.filter import Monochrome, NoColor

    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(tui_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        assert app.no_color
        assert any(isinstance(f, (Monochrome, NoColor)) for f in app._filters)
        assert "scir-c" in screen_text(app)


def test_cream_tui_and_cream_tui_command_open_the_same_app(monkeypatch, tmp_path: Path) -> None:
    import pytest
    from typer.testing import CliRunner

    import cream_tui.app as app_module
    from cream_tui.cli import app as cli
    from cream_tui.cli import dashboard

    calls = []
    monkeypatch.setattr(app_module, "run_app", lambda *a, **k: calls.append((a, k)) or 0)
    # (CliRunner gives no terminal: test_cli_runs.py checks that `cream tui` refuses that)
    monkeypatch.setattr(dashboard, "not_a_terminal", lambda: None)
    monkeypatch.setattr(app_module, "not_a_terminal", lambda: None)
    monkeypatch.setenv("CREAM_USER_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setattr("sys.argv", ["cream-tui", "--home", str(tmp_path), "--run", "x",
                                     "--poll", "2"])
    with pytest.raises(SystemExit) as exit_:
        app_module.main()
    assert exit_.value.code == 0
    result = CliRunner().invoke(cli, ["tui", "--home", str(tmp_path), "--run", "x"])
    assert "run 'x': no such run" in str(result.exception)     # (main prints it, exit 2)
    store = open_store(tmp_path)
    store.create_run("20260101-000000-x-run-0001", name="x-run", method="srlm", model="m",
                     iterations=1, run_dir=str(tmp_path / "r"), config_toml="")
    store.close()
    result = CliRunner().invoke(cli, ["tui", "--home", str(tmp_path), "--run", "x"])
    assert result.exit_code == 0, result.output
    # (no [hosts] in the user config: the dashboard over this one data home; `cream tui`
    # resolves the run as every command does, here by a name prefix)
    assert calls == [((tmp_path, "x", 2.0), {}),
                     ((tmp_path, "20260101-000000-x-run-0001"), {"hosts": []})]


async def test_a_store_that_breaks_while_open_is_a_message(tui_home: Path) -> None:
    app = make_app(tui_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        for name in ("cream.db-wal", "cream.db-shm"):
            (tui_home / name).unlink(missing_ok=True)
        (tui_home / "cream.db").write_bytes(b"this is not sqlite" * 512)
        await wait_until(pilot, lambda: "Cannot read the store" in screen_text(app),
                         what="the message")
        assert "Traceback" not in screen_text(app)
