"""Where things live under the data home (`./runs` unless `--home` or `CREAM_HOME` say otherwise).

    <home>/cream.db                 the store (SQLite, WAL)
    <home>/models/<name>/           converted bundled models (built once)
    <home>/<run-id>/config.toml     the resolved config of a run
    <home>/<run-id>/iter-<t>/       responses.jsonl, rewards.jsonl, pairs.jsonl, model/
    <home>/<run-id>/logs/           stdout/stderr of the job

Light layer: standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = "runs"
DB_NAME = "cream.db"


def data_home(home: str | Path | None = None) -> Path:
    """The data home: the explicit argument, else `$CREAM_HOME`, else `./runs`."""
    if home is None or str(home) == "":
        home = os.environ.get("CREAM_HOME") or DEFAULT_HOME
    return Path(home).expanduser().absolute()


def db_path(home: Path) -> Path:
    return home / DB_NAME


def models_dir(home: Path) -> Path:
    return home / "models"


def run_dir(home: Path, run_id: str) -> Path:
    return home / run_id


def iter_dir(run_path: Path, iteration: int) -> Path:
    return run_path / f"iter-{iteration}"


def logs_dir(run_path: Path) -> Path:
    return run_path / "logs"
