"""A data home this process may not write: mounted read-only (a real tmpfs remounted `ro`), or
another user's (the CLI run as `nobody`). Commands that read work and say so on stderr;
commands that write refuse with one line naming the home, exit 2; nothing under the home
changes either way."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from cream_engine.config import from_dict, to_toml
from cream_engine.store import Store
from tests.conftest import REPO, run_cli
from tests.engine.helpers import tiny_config
from tests.fsfaults import (
    as_other_user,
    cannot_switch_user,
    home_with_runs,
    snapshot,
)

MOUNTED = "mounted read-only"
REMOUNT = "remount it read-write, or choose another data home with --home"
ASK_OWNER = "ask its owner for access, or choose a data home of your own with --home"


def note(home: Path, why: str) -> str:
    return (f"cream: note: {home} is read-only ({why}): showing what is there; commands that "
            "write to it are refused")


def refusal(home: Path, why: str, advice: str) -> str:
    return f"cream: error: {home}: read-only data home ({why}): this command writes to it; {advice}"


def one_line(r, code: int) -> str:
    """The one line a command left on stderr, having exited with `code` and no traceback."""
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert r.returncode == code and len(lines) == 1, (r.returncode, r.stderr)
    return lines[0]


@pytest.fixture
def ro_home(tmpfs, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    disk = tmpfs("8m")
    home = disk.path / "home"
    ids = home_with_runs(home, tmp_path / "model")
    disk.read_only()
    return home, ids


# -- mounted read-only --------------------------------------------------------------------


def test_reading_a_read_only_mount_works_and_says_so(ro_home) -> None:
    home, ids = ro_home
    before = snapshot(home)
    checks = {
        ("status",): ids["queued"],
        ("status", "failed"): "NaN loss at step 1",
        ("status", "--json"): ids["failed"],
        ("export", "failed", "--format", "csv"): "rewards/margins",
        ("compare", "failed", "queued"): ids["queued"],
        ("queue", "ls"): ids["queued"],
        ("logs", "failed"): "NaN loss at step 1",
        ("worker", "status"): "not running",
    }
    for args, shown in checks.items():
        r = run_cli(*args, home=home)
        assert one_line(r, 0) == note(home, MOUNTED), args
        assert shown in r.stdout, (args, r.stdout)
    assert {r["name"] for r in json.loads(run_cli("status", "--json", home=home).stdout)} == \
        {"failed", "queued"}
    assert snapshot(home) == before


def test_writing_to_a_read_only_mount_is_refused_in_one_line(
        ro_home, tmp_path: Path, tiny_model_dir: Path) -> None:
    home, _ = ro_home
    config = tmp_path / "exp.toml"
    config.write_text(to_toml(from_dict(tiny_config(tiny_model_dir))))
    before = snapshot(home)
    for args in (("run", str(config)), ("submit", str(config)), ("queue", "cancel", "queued"),
                 ("queue", "retry", "failed"), ("queue", "priority", "queued", "5"),
                 ("queue", "drain"), ("queue", "resume"), ("worker", "start"),
                 ("worker", "run", "--once")):
        r = run_cli(*args, home=home)
        line = one_line(r, 2)
        assert line == refusal(home, MOUNTED, REMOUNT), args
    assert snapshot(home) == before


def test_the_engine_refuses_a_run_on_a_read_only_mount(ro_home) -> None:
    home, ids = ro_home
    before = snapshot(home)
    r = subprocess.run([sys.executable, "-m", "cream_engine", "run", str(home / ids["queued"])],
                       capture_output=True, text=True, timeout=120, check=False)
    assert one_line(r, 2) == refusal(home, MOUNTED, REMOUNT)
    assert snapshot(home) == before


def test_changes_still_in_the_write_ahead_log_are_read(tmpfs, tmp_path: Path) -> None:
    """A home copied (or left by a crash) with its -wal and -shm: the rows only in the -wal
    are shown. Without the -shm they cannot be read without writing: refused, not misread."""
    live = tmp_path / "live"
    home_with_runs(live, tmp_path / "model")
    writer = Store.open(live)
    writer.conn.execute("PRAGMA wal_autocheckpoint = 0")
    writer.set_run_status(writer.require_run("queued")["id"], "cancelled", error="by hand")
    disk = tmpfs("8m")
    for with_shm, name in ((True, "home"), (False, "no-shm")):
        shutil.copytree(live, disk.path / name)  # (the writer keeps its -wal open)
        if not with_shm:
            (disk.path / name / "cream.db-shm").unlink()
    writer.close()
    assert (disk.path / "home" / "cream.db-wal").stat().st_size > 0
    disk.read_only()

    rows = json.loads(run_cli("status", "--json", home=disk.path / "home").stdout)
    assert {r["name"]: r["status"] for r in rows} == {"failed": "failed", "queued": "cancelled"}
    r = run_cli("status", home=disk.path / "no-shm")
    wal = disk.path / "no-shm" / "cream.db-wal"
    assert one_line(r, 2) == (f"cream: error: {wal}: holds changes not yet in the store, which "
                              "cannot be read where the home is read-only; open the home once "
                              "with write access")


def test_a_store_that_needs_an_upgrade_is_not_upgraded_read_only(tmpfs) -> None:
    disk = tmpfs("8m")
    with tarfile.open(REPO / "tests" / "fixtures" / "v0-home.tar.gz") as tar:
        tar.extractall(disk.path, filter="data")
    home = disk.path / "home"
    disk.read_only()
    before = snapshot(home)
    r = run_cli("status", home=home)
    assert one_line(r, 2) == (
        f"cream: error: {home / 'cream.db'}: written by an older cream (schema m002_queue) and "
        "read-only here; open it once with write access (any cream command upgrades it), "
        "then read it")
    assert snapshot(home) == before


# -- another user's home ------------------------------------------------------------------


@pytest.fixture
def shared_home(tmpfs, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A home its owner (root) made readable to everyone (chmod -R a+rX)."""
    reason = cannot_switch_user()
    if reason:
        pytest.skip(reason)
    home = tmpfs("8m").path / "home"
    ids = home_with_runs(home, tmp_path / "model")
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return home, ids


def test_another_users_home_is_read_and_never_written(shared_home) -> None:
    home, ids = shared_home
    why = "not writable by user nobody"
    nobody = as_other_user([])
    before = snapshot(home)
    for args in (("status", "--json"), ("queue", "ls", "--all", "--json"), ("export", "failed")):
        r = run_cli(*args, home=home, prefix=tuple(nobody), cwd=REPO)
        assert one_line(r, 0) == note(home, why), args
        assert ids["failed"] in r.stdout
    for args in (("queue", "cancel", "queued"), ("queue", "drain"), ("worker", "start")):
        r = run_cli(*args, home=home, prefix=tuple(nobody), cwd=REPO)
        assert one_line(r, 2) == refusal(home, why, ASK_OWNER), args
    assert snapshot(home) == before


def test_a_private_home_tells_another_user_permission_denied(tmpfs, tmp_path: Path) -> None:
    reason = cannot_switch_user()
    if reason:
        pytest.skip(reason)
    home = tmpfs("8m").path / "home"
    assert run_cli("queue", "drain", home=home).returncode == 0  # (makes the home, 0700)
    before = snapshot(home)
    r = run_cli("status", home=home, prefix=tuple(as_other_user([])), cwd=REPO)
    assert one_line(r, 2) == (f"cream: error: {home / 'cream.db'}: permission denied for user "
                              "nobody (ask its owner for access, or choose another data home "
                              "with --home)")
    assert snapshot(home) == before


# -- the dashboard --------------------------------------------------------------------------


async def test_the_dashboard_marks_a_read_only_home_and_refuses_actions(ro_home) -> None:
    from tests.tui.helpers import make_app, screen_text, wait_actions, wait_loaded

    home, _ = ro_home
    before = snapshot(home)
    app = make_app(home)
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_loaded(pilot)
        assert "cream [read-only]" in screen_text(app)
        assert "queued  cream   queued" in screen_text(app)
        await pilot.press("c", "y")       # cancel the selected run
        await wait_actions(pilot)
        messages = [n.message for n in app._notifications]
        assert f"{home} is read-only ({MOUNTED}): queue actions are refused" in messages
        assert refusal(home, MOUNTED, REMOUNT).removeprefix("cream: error: ") in messages
        await pilot.press("q")
    assert snapshot(home) == before
    with pytest.raises(sqlite3.OperationalError):  # (and the mount really is read-only)
        sqlite3.connect(home / "cream.db").execute("CREATE TABLE x (y)")
