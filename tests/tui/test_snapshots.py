"""SVG snapshots of every screen at 80×24 and 160×48, on the fixed store and the frozen clock
(textual is pinned exactly in pyproject: a new textual renders differently).

Update after an intended change with
    .venv/bin/python -m pytest tests/tui/test_snapshots.py --snapshot-update
and look at the report (snapshot_report.html) or the SVGs under __snapshots__/ before
committing them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.fixtures import RUNS
from tests.tui.helpers import make_app, wait_loaded

SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])


def keys_then_wait(*keys: str):
    async def run_before(pilot) -> None:
        await wait_loaded(pilot)
        if keys:
            await pilot.press(*keys)
        await wait_loaded(pilot)

    return run_before


def opening_compare(pilot):
    async def run_before(pilot) -> None:
        await wait_loaded(pilot)
        pilot.app.open_compare([RUNS.done, RUNS.failed, RUNS.running])
        await wait_loaded(pilot)

    return run_before(pilot)


@SIZES
def test_home(snap_compare, tui_home: Path, size) -> None:
    assert snap_compare(make_app(tui_home), terminal_size=size, run_before=keys_then_wait())


@SIZES
def test_run(snap_compare, tui_home: Path, size) -> None:
    assert snap_compare(make_app(tui_home), terminal_size=size,
                        run_before=keys_then_wait("down", "down", "enter"))   # scir-c


@SIZES
def test_failed_run(snap_compare, tui_home: Path, size) -> None:
    assert snap_compare(make_app(tui_home, run=RUNS.failed), terminal_size=size,
                        run_before=keys_then_wait())


@SIZES
def test_gpus(snap_compare, tui_home: Path, size) -> None:
    assert snap_compare(make_app(tui_home), terminal_size=size, run_before=keys_then_wait("g"))


@SIZES
def test_no_gpu(snap_compare, tui_env: Path, size) -> None:
    assert snap_compare(make_app(Path("home")), terminal_size=size,
                        run_before=keys_then_wait("g"))


@SIZES
def test_compare(snap_compare, tui_home: Path, size) -> None:
    assert snap_compare(make_app(tui_home), terminal_size=size, run_before=opening_compare)


@SIZES
def test_help(snap_compare, tui_home: Path, size) -> None:
    assert snap_compare(make_app(tui_home), terminal_size=size,
                        run_before=keys_then_wait("question_mark"))


@SIZES
def test_confirm_cancel(snap_compare, tui_home: Path, size) -> None:
    assert snap_compare(make_app(tui_home), terminal_size=size,
                        run_before=keys_then_wait("down", "down", "c"))      # scir-c


@SIZES
def test_submit_prompt(snap_compare, tui_home: Path, size) -> None:
    assert snap_compare(make_app(tui_home), terminal_size=size,
                        run_before=keys_then_wait("s", *"exp.toml"))


@SIZES
def test_empty_home(snap_compare, tui_env: Path, size) -> None:
    assert snap_compare(make_app(Path("home")), terminal_size=size,
                        run_before=keys_then_wait())
