"""The file system failing under a command: a full disk (a real small tmpfs filled with a
ballast file), too many open files (a real RLIMIT_NOFILE). One line naming the path and what to
free or change, exit 2 for a command, exit 1 for the worker; no traceback on the terminal; the
store and what was there stay intact."""

from __future__ import annotations

import errno
import json
import sqlite3
from pathlib import Path

import pytest

from cream_engine.config import from_dict, to_toml
from cream_engine.errors import DiskError, disk_error
from cream_engine.files import write_atomic
from cream_engine.store import Store
from tests.conftest import run_cli
from tests.engine.helpers import tiny_config
from tests.fsfaults import home_with_runs, open_files_limit, snapshot

FREE = "free space on that disk, then run the same command again: finished work is kept"


def full(path: Path) -> str:
    return f"{path}: no space left on device ({FREE})"


def integrity(home: Path) -> str:
    """SQLite's own check of the store, once the ballast beside the home is gone."""
    (home.parent / "ballast").unlink(missing_ok=True)
    with sqlite3.connect(f"file:{home / 'cream.db'}?mode=ro", uri=True) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def last_line(r, code: int) -> str:
    """The line a command ended with (after any progress lines), having exited with `code`
    and printed no traceback anywhere."""
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert r.returncode == code and lines, (r.returncode, r.stderr)
    assert not any(line.startswith("cream: ") for line in lines[:-1]), r.stderr
    return lines[-1]


@pytest.fixture
def full_home(tmpfs, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A home with runs on a 4 MB disk that is full (a ballast file beside the home)."""
    disk = tmpfs("4m")
    home = disk.path / "home"
    ids = home_with_runs(home, tmp_path / "model")
    disk.fill()
    return home, ids


# -- the mapping, on real errors ------------------------------------------------------------


def test_real_file_system_errors_become_one_line(tmpfs, tmp_path: Path) -> None:
    disk = tmpfs("1m")
    store = Store.open(disk.path / "home")
    disk.fill()
    target = disk.path / "home" / "out.json"
    with pytest.raises(OSError) as written:
        write_atomic(target, "x" * 100_000)
    assert written.value.filename == str(target)           # named for the file, not its temp
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".")] == []
    found = disk_error(written.value)
    assert isinstance(found, DiskError) and found.errno == errno.ENOSPC
    assert found.line == full(target) and found.exit_code == 1

    with pytest.raises(sqlite3.OperationalError) as inserted:
        store.add_event("big", "x" * 2_000_000)
    assert disk_error(inserted.value, disk.path / "home").line == \
        full(disk.path / "home" / "cream.db")
    store.close()

    # a library's own error that only says it in words (safetensors' Rust I/O error)
    rust = RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert disk_error(rust, tmp_path).line == full(tmp_path)
    for other in (ValueError("no"), sqlite3.OperationalError("database is locked"),
                  OSError(errno.ENOENT, "No such file or directory", "x")):
        assert disk_error(other, tmp_path) is None


# -- commands on a full disk ------------------------------------------------------------------


def test_submit_on_a_full_disk_is_one_line_and_keeps_the_store(
        full_home, tmp_path: Path, tiny_model_dir: Path) -> None:
    home, ids = full_home
    config = tmp_path / "exp.toml"
    config.write_text(to_toml(from_dict(tiny_config(tiny_model_dir))))
    db = snapshot(home)["cream.db"]
    r = run_cli("submit", str(config), home=home)
    assert last_line(r, 2) == "cream: error: " + full(home / "cream.db")
    for args in (("queue", "drain"), ("queue", "cancel", "queued")):
        r = run_cli(*args, home=home)
        assert last_line(r, 2) == "cream: error: " + full(home / "cream.db"), args
        assert len(r.stderr.strip().splitlines()) == 1
    assert snapshot(home)["cream.db"] == db
    assert sorted(p.name for p in home.iterdir() if p.is_dir()) == sorted(ids.values())
    assert integrity(home) == "ok"


def test_reading_a_full_disk_still_works(full_home) -> None:
    home, ids = full_home
    r = run_cli("status", "--json", home=home)
    assert last_line(r, 0) == (f"cream: note: {home} is read-only (no space left on device): "
                               "showing what is there; commands that write to it are refused")
    assert {row["id"] for row in json.loads(r.stdout)} == set(ids.values())


def test_export_to_a_full_disk_names_the_file(full_home) -> None:
    home, _ = full_home
    out = home / "failed.csv"
    r = run_cli("export", "failed", "--format", "csv", "-o", str(out), home=home)
    assert last_line(r, 2) == "cream: error: " + full(out)
    assert not out.exists() and not list(home.glob(".failed.csv.*"))


def test_a_worker_on_a_full_disk_stops_with_one_line(full_home) -> None:
    home, _ = full_home
    r = run_cli("worker", "run", "--once", home=home)
    line = last_line(r, 1)
    assert line.endswith(" cream: error: " + full(home / "cream.db")), line  # (a log line)
    assert integrity(home) == "ok"


# -- too many open files ----------------------------------------------------------------------


def test_too_many_open_files_is_one_line(tmp_path: Path) -> None:
    """Where a command runs out of file descriptors depends on what it opens first (the store,
    a module it imports late): each limit that fails must fail in one line."""
    home = tmp_path / "home"
    home_with_runs(home, tmp_path / "model")
    failed = []
    for n in range(5, 12):  # (under 5 the interpreter itself cannot start)
        r = run_cli("status", home=home, preexec_fn=open_files_limit(n))
        if r.returncode == 0:
            continue
        line = last_line(r, 2)
        assert r.stderr.count("\n") == 1 and line.startswith("cream: error: /"), line
        assert line.endswith(f": too many open files (this process may open {n} at once: "
                             "raise the limit, e.g. `ulimit -n 4096`, then run the same "
                             "command again)"), line
        failed.append(n)
    assert failed, "no limit made `cream status` run out of file descriptors"
    assert run_cli("status", home=home).returncode == 0
