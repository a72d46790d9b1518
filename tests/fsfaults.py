"""Real file-system faults for the tests, no mocks: a small tmpfs (a disk that fills up), the
same remounted read-only, a command run as another user, a low limit of open files, and a
snapshot of a tree to show that nothing in it changed.

Mounting needs root (and a kernel that lets this process mount): where it cannot, a test that
asks for a mount is skipped with the reason, never counted as passed. The mount points live in
a folder of their own under /tmp (0755), so another user can reach a home on them.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

OTHER_USER = "nobody"


@functools.cache
def cannot_mount() -> str | None:
    """Why this session cannot mount a tmpfs, or None when it can (tried once)."""
    if os.geteuid() != 0:
        return "needs root to mount a tmpfs (the session is not root)"
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "needs mount(8) and umount(8)"
    probe = Path(tempfile.mkdtemp(prefix="cream-mount-probe-"))
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            return f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}"
        subprocess.run(["umount", str(probe)], check=True)
        return None
    finally:
        probe.rmdir()


@functools.cache
def cannot_switch_user() -> str | None:
    """Why a command cannot be run as `OTHER_USER` here, or None."""
    if os.geteuid() != 0:
        return "needs root to run a command as another user"
    if shutil.which("setpriv") is None:
        return "needs setpriv(1) (util-linux) to run a command as another user"
    r = subprocess.run(as_other_user([sys.executable, "-c", "import cream_tui"]), cwd=REPO,
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return f"user {OTHER_USER} cannot run this Python: {r.stderr.strip()[-200:]}"
    return None


def as_other_user(argv: list[str]) -> list[str]:
    """`argv` run as `OTHER_USER` (its own group, no supplementary groups)."""
    return ["setpriv", f"--reuid={OTHER_USER}", "--regid=nogroup", "--clear-groups", *argv]


class Tmpfs:
    """A mounted tmpfs: a real disk of `size` that fills up, and can be remounted."""

    def __init__(self, path: Path):
        self.path = path

    def remount(self, *options: str) -> None:
        subprocess.run(["mount", "-o", ",".join(("remount", *options)), str(self.path)],
                       check=True, capture_output=True)

    def read_only(self) -> None:
        self.remount("ro")

    def writable(self) -> None:
        self.remount("rw")

    def fill(self, name: str = "ballast") -> Path:
        """Write a file until the disk is full (ENOSPC); returns it (delete it to free)."""
        ballast = self.path / name
        chunk = b"\0" * 65536
        with open(ballast, "wb", buffering=0) as fh:
            while True:
                try:
                    fh.write(chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    if len(chunk) == 1:
                        break
                    chunk = chunk[: len(chunk) // 2]
        assert shutil.disk_usage(self.path).free == 0
        return ballast


@contextlib.contextmanager
def mounted(size: str = "2m") -> Iterator[Tmpfs]:
    """A fresh tmpfs of `size` under /tmp, unmounted (and its folder removed) afterwards;
    the test is skipped where mounting is not allowed."""
    reason = cannot_mount()
    if reason:
        pytest.skip(reason)
    where = Path(tempfile.mkdtemp(prefix="cream-tmpfs-"))
    where.chmod(0o755)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                    str(where)], check=True, capture_output=True)
    try:
        yield Tmpfs(where)
    finally:
        # a process of the test may still hold a file there: lazy, so it goes once it ends
        if subprocess.run(["umount", str(where)], capture_output=True,
                          check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            where.rmdir()


def open_files_limit(n: int) -> Callable[[], None]:
    """A preexec_fn: the child may have `n` files open at once (RLIMIT_NOFILE)."""
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def snapshot(root: Path) -> dict[str, tuple]:
    """Every name under `root` with its kind, size, mtime and mode: equal snapshots mean
    nothing was added, removed, written or chmodded."""
    out = {}
    for path in sorted([root, *root.rglob("*")]):
        st = path.lstat()
        out[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_size,
                                            st.st_mtime_ns, stat.S_IMODE(st.st_mode))
    return out


def modes(root: Path) -> dict[str, str]:
    """The permission bits of every file and folder under `root` (itself included), octal."""
    return {str(p.relative_to(root)): oct(stat.S_IMODE(p.lstat().st_mode))
            for p in sorted([root, *root.rglob("*")])}


def home_with_runs(home: Path, model: Path) -> dict[str, str]:
    """A data home as a user leaves it: run `queued` waits in the queue, run `failed` failed
    (with its metrics and job log). Returns {name: run id}."""
    from cream_engine import queue
    from cream_engine.config import from_dict
    from cream_engine.store import Store
    from tests.engine.helpers import tiny_config

    store = Store.open(home)
    ids = {name: queue.submit(store, home, from_dict(tiny_config(model, run={"name": name})))
           for name in ("failed", "queued")}
    job = queue.claim_next_job(store, "w", lambda j: j["run_id"] == ids["failed"])
    assert job is not None
    queue.finish_job(store, job["id"], "failed", 1, "NaN loss at step 1")
    store.set_run_status(ids["failed"], "failed", error="NaN loss at step 1")
    store.log_metrics(ids["failed"], 0, "train", 1, {"loss": 0.69, "rewards/margins": 0.01})
    log = home / ids["failed"] / "logs" / "job.log"
    log.parent.mkdir()
    log.write_text("iter 0 generate: done\ncream: error: run failed: NaN loss at step 1\n")
    store.close()
    return ids
