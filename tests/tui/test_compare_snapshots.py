"""SVG snapshots of the compare screen over three evaluated runs (tests/tui/compare_fixtures.py)
at 80×24 and 160×48: the verdicts first, the table of final models with 95% intervals and n,
the DPO loss overlaid over ln 2, τ per iteration, and the evaluation per model.

Update after an intended change with
    .venv/bin/python -m pytest tests/tui/test_compare_snapshots.py --snapshot-update
and look at the SVGs under __snapshots__/ before committing them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.compare_fixtures import write_compare_store
from tests.tui.helpers import make_app, wait_loaded


def opening_compare(ids: list[str], charts: bool = False):
    async def run_before(pilot) -> None:
        await wait_loaded(pilot)
        pilot.app.open_compare(ids)
        await wait_loaded(pilot)
        if charts:
            pilot.app.screen.query_one("#compare-plots").scroll_visible(animate=False,
                                                                         top=True)
            await wait_loaded(pilot)

    return run_before


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_compare_evaluated(snap_compare, tui_env: Path, size) -> None:
    ids = write_compare_store(Path("home"))
    assert snap_compare(make_app(Path("home")), terminal_size=size,
                        run_before=opening_compare(ids))


def test_compare_evaluated_charts(snap_compare, tui_env: Path) -> None:
    """At 80×24 the charts are further down: scrolled to them."""
    ids = write_compare_store(Path("home"))
    assert snap_compare(make_app(Path("home")), terminal_size=(80, 24),
                        run_before=opening_compare(ids, charts=True))
