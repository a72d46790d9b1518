"""Fixtures for the dashboard tests: a data home filled with the fixed runs of
`tests/tui/fixtures.py`, as the relative path `home` (the working directory is the test's
temporary folder), so screenshots show the same path on every machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tui.fixtures import write_store


@pytest.fixture
def tui_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NO_COLOR", raising=False)
    for key in [k for k in os.environ if k.startswith("CREAM_")]:
        monkeypatch.delenv(key)
    return tmp_path


@pytest.fixture
def tui_home(tui_env: Path) -> Path:
    write_store(Path("home"))
    return Path("home")
