"""SVG snapshots of the GPU screen on an 8-GPU box (fixed samples with fixed process details,
`tests/tui/gpu_fixtures.py`): every GPU visible at 80×24 and at 160×48, and the history of a
GPU with no room for it, on `h`. Update with
    .venv/bin/python -m pytest tests/tui/test_gpu_snapshots.py --snapshot-update
and look at the SVGs before committing them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.gpu_fixtures import write_eight_gpu_store
from tests.tui.helpers import make_app, wait_loaded

SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])


def pressing(*keys: str):
    async def run_before(pilot) -> None:
        await wait_loaded(pilot)
        for key in keys:
            await pilot.press(key)
            await wait_loaded(pilot)

    return run_before


@SIZES
def test_eight_gpus(snap_compare, tui_env: Path, size) -> None:
    home = write_eight_gpu_store(Path("home"))
    assert snap_compare(make_app(home), terminal_size=size, run_before=pressing("g"))


def test_eight_gpus_history_on_request(snap_compare, tui_env: Path) -> None:
    home = write_eight_gpu_store(Path("home"))
    assert snap_compare(make_app(home), terminal_size=(80, 24),
                        run_before=pressing("g", "down", "down", "h"))
