"""The per-prompt drill-down: reached with p from the run screen (or enter on its iteration
table), the prompts of an iteration with its summary, glossary and histograms, sorting by τ,
searching, one prompt's responses with rewards, ranks and the pair, and back with escape;
`cream show` (table, --prompt, --json, errors); the feed's "prompts" request; SVG snapshots of
the list and of one prompt at 80×24 and 160×48."""

from __future__ import annotations

import io
import json
import os
import shlex
import sys
import time
from pathlib import Path

import pytest

from cream_engine import hosts
from cream_engine.hosts import HostLink, HostSpec
from cream_tui.data import DataSource
from cream_tui.feed import Feed
from cream_tui.prompt_data import detail_from_json, iteration_from_json
from cream_tui.remote import MultiSource
from cream_tui.screens.drilldown import DrilldownScreen, PromptScreen
from cream_tui.screens.run import RunScreen
from cream_tui.widgets.histogram import histogram_line
from cream_tui.widgets.iteration_table import IterationTable
from tests.conftest import run_cli
from tests.tui.fixtures import NOW, RUNS, no_gpu, write_store
from tests.tui.helpers import TMUX, Pane, make_app, screen_text, wait_loaded, wait_until
from tests.tui.prompt_fixtures import write_iteration_files

SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])


@pytest.fixture
def drill_home(tui_home: Path) -> Path:
    write_iteration_files(tui_home)
    return tui_home


def _rows(app) -> list[list[str]]:
    table = app.screen.query_one("#drill-table")
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def _until_screen(pilot, kind) -> None:
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, kind), what=kind.__name__)
    await wait_loaded(pilot)


# -- the dashboard ----------------------------------------------------------------------------


async def test_from_the_run_screen_to_the_prompts_and_back(drill_home: Path) -> None:
    """p opens the newest iteration; enter a prompt, escape back; t sorts by τ, / searches,
    [ steps to the iteration before; enter on the run screen's iteration table opens that
    iteration."""
    app = make_app(drill_home, run=RUNS.done)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_loaded(pilot)
        text = screen_text(app)
        assert "mean C = (τ+1)/2, CREAM's pair weight" in text      # the table's glossary
        assert "p: the prompts" in text
        await pilot.press("p")
        await _until_screen(pilot, DrilldownScreen)
        data = app.screen.last_shown
        assert data.problem is None and data.iteration == 2 and data.iterations == (0, 1, 2)
        text = screen_text(app)
        assert "cream-a · iteration 2 · cream, pairs by implicit reward" in text
        assert "8 prompts × 4" in text and "7 pairs (1 without: 1 tied)" in text
        assert "agree: judge and r_t pick alike" in text              # its glossary
        assert "reward r_t" in text and "margin" in text and "C_j" in text
        assert "n=32" in text and "n=7" in text and "n=8" in text     # the histograms' n
        rows = _rows(app)
        assert [r[0] for r in rows] == ["p06", "p07", "p08", "p09", "p00", "p01", "p02", "p03"]
        assert rows[-1][4] == "✗ tied" and rows[0][4].startswith("✓ w 0.")
        assert all(r[3] == "–" for r in rows)                         # CREAM: no judge
        taus = [r[1] for r in rows]

        await pilot.press("enter")                                    # p06 in full
        await _until_screen(pilot, PromptScreen)
        detail = app.screen.last_shown.detail
        pair = detail.summary.pair
        text = screen_text(app)
        assert "prompt p06 · cream-a iteration 2 · cream" in text
        assert "Summarise the plot of Hamlet in one paragraph." in text
        assert f"#{pair.chosen + 1} ✓ chosen" in text and f"#{pair.rejected + 1} ✗ rejected" in text
        assert "r_t−1" in text and "(rank 1/4)" in text and "tokens" in text
        ranks = [r.rank("implicit") for r in detail.responses]
        assert ranks[pair.chosen] == 1 and ranks[pair.rejected] == 4
        await pilot.press("escape")
        await _until_screen(pilot, DrilldownScreen)

        await pilot.press("t")                                        # τ lowest first
        await wait_until(pilot, lambda: [r[1] for r in _rows(app)] == sorted(taus, key=float),
                         what="sorted by τ")
        await pilot.press("t")                                        # then highest first
        await wait_until(pilot, lambda: [r[1] for r in _rows(app)] == sorted(
            taus, key=float, reverse=True), what="sorted by τ, highest first")
        assert "sorted: τ highest" in screen_text(app)
        await pilot.press("slash", *"hello")
        await wait_until(pilot, lambda: [r[0] for r in _rows(app)] == ["p03"], what="search")
        assert "search 'hello': 1 shown" in screen_text(app)
        await pilot.press("enter", "enter")         # keep the search, open its one prompt
        await _until_screen(pilot, PromptScreen)
        text = screen_text(app)
        assert "no pair: tied: all 4 implicit rewards are" in text
        assert "✓ chosen" not in text and text.count("Hello! How can I help you today?") == 4
        await pilot.press("escape")
        await _until_screen(pilot, DrilldownScreen)
        await pilot.press("escape")                 # clears the search first
        await wait_until(pilot, lambda: len(_rows(app)) == 8, what="all rows again")
        await pilot.press("left_square_bracket")    # [ : the iteration before
        await wait_until(pilot, lambda: app.screen.last_shown.iteration == 1, what="it 1")
        assert _rows(app)[0][0] == "p03"            # (its slice)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), what="the run")

        table = app.screen.query_one("#iterations", IterationTable)
        assert table.current_iteration == 2 and not table.show_cursor
        table.focus()
        await pilot.pause()
        assert table.show_cursor and table.current_iteration == 0   # the cursor's row
        await pilot.press("enter")
        await _until_screen(pilot, DrilldownScreen)
        assert app.screen.last_shown.iteration == 0
        assert "mean τ - (no previous model)" in screen_text(app)
        await pilot.press("left_square_bracket")    # none before 0: it stays
        await pilot.pause(0.2)
        assert app.screen.iteration == 0


async def test_what_is_missing_says_so(drill_home: Path) -> None:
    """A run without iteration files, a prompt not in the iteration, an empty response, and
    agree "—" for a method without a judge."""
    app = make_app(drill_home, run=RUNS.failed)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("p")
        await _until_screen(pilot, DrilldownScreen)
        assert "run srlm-b: iteration 1 has no responses, scores or pairs (iterations with " \
               "files: none yet" in screen_text(app)
        app.push_screen(PromptScreen(RUNS.done, 1, "p01"))          # not in iteration 1
        await _until_screen(pilot, PromptScreen)
        assert "iteration 1 has no prompt 'p01'" in screen_text(app)
        app.push_screen(PromptScreen(RUNS.done, 0, "p05"))
        await _until_screen(pilot, PromptScreen)
        assert "(empty response)" in screen_text(app)
        app.push_screen(RunScreen(RUNS.cancelled))    # cream-e: iteration 0, no agreement
        await _until_screen(pilot, RunScreen)
        table = app.screen.query_one("#iterations", IterationTable)
        assert [str(c) for c in table.get_row_at(0)][5] == "—"
        app.screen.query_one("#run-body").scroll_end(animate=False)
        await pilot.pause(0.2)
        assert "(— no judge: CREAM, DPO)" in screen_text(app)


def test_histogram_line() -> None:
    line = histogram_line("margin", [0.0, 1.0, 1.0, 4.0], 40).plain
    assert line == "margin    n=4 [0, 4] ▅ █    ▅"          # 8 bins of 0.5: 1, 2 and 1
    wide = histogram_line("margin", [k / 10 for k in range(400)], 60).plain
    assert len(wide) == 60 and set(wide.split("] ")[1]) == {"█"}   # room for 30 bins
    assert len(histogram_line("margin", [k / 10 for k in range(400)], 200).plain) < 100
    assert histogram_line("C_j", [], 40).plain == "C_j       n=0 (none yet)"
    assert histogram_line("C_j", [0.5, 0.5], 40).plain.endswith("[0.5, 0.5] █")


# -- the data source and the feed (a dashboard on another box) ---------------------------------


def test_data_source_and_the_feeds_prompts_reply_agree(drill_home: Path) -> None:
    source = DataSource(drill_home, no_gpu)
    try:
        local = source.prompts_data(RUNS.done, 1)
        one = source.prompt_detail(RUNS.done, 1, "p04")
        assert source.prompts_data("nope", 1).problem == "run 'nope': no such run"
    finally:
        source.close()
    feed = Feed(drill_home, io.BytesIO(), clock=lambda: NOW)
    try:
        feed._answer({"op": "prompts", "id": 7, "run": RUNS.done, "iteration": 1})
        feed._answer({"op": "prompts", "id": 8, "run": RUNS.done, "iteration": 1,
                      "prompt": "p04"})
        feed._answer({"op": "prompts", "id": 9, "run": RUNS.done, "iteration": 5})
    finally:
        feed.source.close()
    replies = {m["id"]: m for m in map(json.loads, feed.out.getvalue().splitlines())}
    assert replies[7]["ok"] and replies[7]["name"] == "cream-a"
    assert replies[7]["iterations"] == [0, 1, 2]
    assert iteration_from_json(replies[7]["data"]) == local.view      # the same values
    assert detail_from_json(replies[8]["data"]) == one.detail
    assert replies[9]["ok"] is False and "iteration 5 has no responses" in replies[9]["line"]


@pytest.mark.slow   # (about 3 s: an sshd and a far `cream feed`)
def test_a_remote_runs_drill_down_comes_through_its_hosts_feed(sshd, tmp_path: Path,
                                                                monkeypatch) -> None:
    """MultiSource asks the far `cream feed` ("prompts") over a real ssh: the same values as
    a local read of that home."""
    for key in [k for k in os.environ if k.startswith("CREAM_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv(hosts.SSH_ENV, sshd.ssh_command)
    far = tmp_path / "far"
    write_store(far)
    write_iteration_files(far)
    sshd.write_client_config({"box": {"CREAM_HOME": str(far),
                                      "CREAM_FAKE_GPUS": str(tmp_path / "none.json")}})
    cream = str(Path(sys.executable).parent / "cream")
    source = MultiSource(None, [HostLink(HostSpec("box", "box", cream), poll_s=0.2)]).start()
    direct = DataSource(far, no_gpu)
    try:
        key = f"box::{RUNS.done}"
        deadline = time.monotonic() + 20
        while (remote := source.prompts_data(key, 1)).problem and time.monotonic() < deadline:
            time.sleep(0.2)                        # (the link connects first)
        assert remote.problem is None and remote.run_name == "cream-a"
        assert remote.view == direct.prompts_data(RUNS.done, 1).view
        assert remote.iterations == (0, 1, 2)
        one = source.prompt_detail(key, 1, "p04")
        assert one.detail == direct.prompt_detail(RUNS.done, 1, "p04").detail
        missing = source.prompt_detail(key, 1, "zz")
        assert missing.problem.startswith("box: run cream-a: iteration 1 has no prompt 'zz'")
        assert source.prompts_data("nowhere::x", 1).problem.startswith("no host 'nowhere'")
    finally:
        source.close()
        direct.close()
    # `cream show --host box` is `cream show` run there
    user = tmp_path / "user.toml"
    user.write_text(f'[hosts.box]\ncommand = "{cream}"\n')
    env = {hosts.SSH_ENV: sshd.ssh_command, "CREAM_USER_CONFIG": str(user)}
    here = run_cli("show", "cream-a", "-t", "1", "--prompt", "p04", "--json", "--host", "box",
                   env=env, home=tmp_path / "elsewhere")
    assert here.returncode == 0, here.stderr
    assert detail_from_json(json.loads(here.stdout)) == one.detail


# -- cream show ---------------------------------------------------------------------------------


def test_cream_show(drill_home: Path) -> None:
    home = drill_home.absolute()
    r = run_cli("show", "cream-a", "--iteration", "1", home=home)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("cream-a · iteration 1 · cream, pairs by implicit reward")
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["id", "τ", "C"])
    assert [line.split()[0] for line in lines[header + 1:header + 9]] == [
        "p03", "p04", "p05", "p06", "p07", "p08", "p09", "p00"]
    assert "✗ tied" in lines[header + 1] and "Say hello." in lines[header + 1]
    assert "p03: no pair: tied: all 4 implicit rewards are" in r.stdout

    r = run_cli("show", RUNS.done, "-t", "1", "--prompt", "p04", home=home)
    assert r.returncode == 0, r.stderr
    assert "Give three tips for a first marathon." in r.stdout
    assert "✓ chosen" in r.stdout and "✗ rejected" in r.stdout and "r_t−1" in r.stdout

    r = run_cli("show", "cream-a", "-t", "0", "--json", home=home)
    data = json.loads(r.stdout)
    assert data["summary"]["pairs"] == 7 and data["summary"]["mean_tau"] is None
    assert {p["prompt_id"]: p["reason_kind"] for p in data["prompts"]}["p03"] == "tied"
    for args, line in [
            (("cream-a", "-t", "7"), ("run cream-a: iteration 7 has no responses, scores or "
                                      "pairs (iterations with files: 0, 1, 2)")),
            (("cream-a", "-t", "1", "--prompt", "zz"),
             "run cream-a: iteration 1 has no prompt 'zz'"),
            (("nope", "-t", "1"), "run 'nope': no such run")]:
        r = run_cli("show", *args, home=home)
        assert r.returncode == 2 and r.stdout == "", (args, r.stderr)
        assert r.stderr.startswith(f"cream: error: {line}") and r.stderr.count("\n") == 1


def test_cream_show_help_has_examples() -> None:
    from typer.testing import CliRunner

    from cream_tui.cli import app

    result = CliRunner().invoke(app, ["show", "--help"])
    assert result.exit_code == 0
    assert "Examples" in result.output and "cream show cream-a -t 1 --prompt p03" in \
        result.output and "--host" in result.output


# -- snapshots ---------------------------------------------------------------------------------


def _opening(*keys: str):
    async def run_before(pilot) -> None:
        await wait_loaded(pilot)
        await pilot.press("p")
        await _until_screen(pilot, DrilldownScreen)
        if keys:
            await pilot.press(*keys)
            await _until_screen(pilot, PromptScreen)

    return run_before


@SIZES
def test_snapshot_prompts(snap_compare, drill_home: Path, size) -> None:
    assert snap_compare(make_app(drill_home, run=RUNS.done), terminal_size=size,
                        run_before=_opening())


@SIZES
def test_snapshot_one_prompt(snap_compare, drill_home: Path, size) -> None:
    assert snap_compare(make_app(drill_home, run=RUNS.done), terminal_size=size,
                        run_before=_opening("down", "enter"))


# -- the real `cream tui` in a terminal ---------------------------------------------------------


@pytest.mark.slow   # (about 4 s: the real dashboard in tmux)
@pytest.mark.skipif(TMUX is None, reason="tmux is not installed (CI: apt-get install -y tmux)")
def test_from_the_runs_to_one_prompt_and_back_in_a_real_terminal(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_store(home, now=time.time())
    write_iteration_files(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREAM_", "TMUX"))}
    env.update(CREAM_HOME=str(home), TERM="xterm-256color", LANG="C.UTF-8")
    env.pop("NO_COLOR", None)
    pane = Pane(f"cream-drill-{os.getpid()}", env)
    pane.start(f"{shlex.quote(sys.executable)} -m cream_tui.cli tui", 100, 30)
    try:
        pane.wait_for("cream-a", "queue accepting jobs")
        pane.send("/")
        pane.wait_for("filter runs (enter keeps it")              # (then the keys go there)
        pane.send("-l", "cream-a")                                # filter, keep it, open it
        pane.wait_for("filter 'cream-a': 1 shown")
        pane.send("Enter")
        pane.send("Enter")
        pane.wait_for("DPO loss", "p: the prompts", "0.470")     # (the table has its rows)
        pane.send("p")
        pane.wait_for("cream-a · iteration 2", "✗ tied", "Say hello.", "margin")
        pane.send("Enter")                                        # the first row: p06
        screen = pane.wait_for("prompt p06 · cream-a iteration 2", "✓ chosen", "✗ rejected",
                               "r_t−1")
        assert "Traceback" not in screen
        pane.send("Escape")
        pane.wait_for("✗ tied", "Sort by τ")
        pane.send("Escape")
        pane.wait_for("DPO loss")
        pane.send("Escape")
        pane.wait_for("queue accepting jobs")
        pane.quit()
    finally:
        pane.tmux("kill-server", check=False)
