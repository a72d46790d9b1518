"""A data home is private to its user: what cream's processes create there is 0700 (folders)
or 0600 (files: the store and its -wal/-shm, the worker's pid, lock and log, run folders,
exports), or 0770 + setgid and 0660 with `CREAM_HOME_GROUP=1`. A home that exists keeps the
modes it has: cream never chmods what it did not create."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cream_engine.config import from_dict, to_toml
from tests.conftest import run_cli
from tests.engine.helpers import tiny_config
from tests.fsfaults import modes


@pytest.fixture
def worker_running():
    """Start the worker of a home (`start(home, env)`); it is stopped after the test."""
    started = []

    def start(home: Path, env: dict | None = None) -> None:
        r = run_cli("worker", "start", home=home, env=env)
        assert r.returncode == 0, r.stderr
        started.append((home, env))

    yield start
    for home, env in started:
        run_cli("worker", "stop", home=home, env=env)


def only(found: dict[str, str], folders: str, files: str, home: Path) -> list[str]:
    """Entries whose mode is not the one expected."""
    return [f"{name} {mode}" for name, mode in found.items()
            if mode != (folders if (home / name).is_dir() else files)]


def test_a_new_home_is_private(tmp_path: Path, tiny_model_dir: Path, worker_running) -> None:
    home = tmp_path / "home"
    config = tmp_path / "exp.toml"
    config.write_text(to_toml(from_dict(tiny_config(tiny_model_dir))))
    submitted = run_cli("submit", str(config), "--json", home=home)
    assert submitted.returncode == 0, submitted.stderr
    assert run_cli("queue", "drain", home=home).returncode == 0  # (the job waits)
    worker_running(home)
    run_id = next(p.name for p in home.iterdir() if p.is_dir())
    assert run_cli("export", run_id, "-o", str(home / "export.json"), home=home).returncode == 0
    found = modes(home)
    for name in ("cream.db", "cream.db-wal", "cream.db-shm", "worker.pid", "worker.lock",
                 "worker.log", run_id, f"{run_id}/config.toml", "export.json"):
        assert name in found, sorted(found)
    assert only(found, "0o700", "0o600", home) == []


def test_a_home_shared_with_a_group(tmp_path: Path, worker_running) -> None:
    home = tmp_path / "home"
    env = {"CREAM_HOME_GROUP": "1"}
    assert run_cli("queue", "drain", home=home, env=env).returncode == 0
    worker_running(home, env)
    found = modes(home)
    assert {"cream.db", "cream.db-wal", "cream.db-shm", "worker.pid", "worker.log"} <= set(found)
    assert only(found, "0o2770", "0o660", home) == []
    assert home.stat().st_gid == tmp_path.stat().st_gid  # (the group: `chgrp` it to share)


def test_an_existing_home_keeps_its_modes(tmp_path: Path, worker_running) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    old = os.umask(0o022)
    try:  # a home made before, or opened up on purpose by its owner
        import sqlite3

        sqlite3.connect(home / "cream.db").close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((home / "cream.db").stat().st_mode) == 0o644
    assert run_cli("queue", "drain", home=home).returncode == 0
    worker_running(home)
    found = modes(home)
    assert found.pop(".") == "0o755" and found.pop("cream.db") == "0o644"
    # SQLite gives its -wal and -shm the store's own mode; what cream makes is private
    assert found.pop("cream.db-wal") == found.pop("cream.db-shm") == "0o644"
    assert set(found) == {"worker.pid", "worker.lock", "worker.log"}
    assert only(found, "0o700", "0o600", home) == []
