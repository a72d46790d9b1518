"""Files that appear whole or not at all: every artifact, config snapshot, model folder, export
and pid file is written beside its target and renamed over it, so a crash or a full disk at
any moment leaves the old file or the new one, never half of one. (A folder cannot be swapped
in one step: a crash between moving the old one aside and renaming the new one in leaves the
old one beside its place, as `.<name>.<pid>.old`.)

Temp names carry the writer's pid, so two writers never share one; what a killed writer left
behind is removed by the next write of the same target.

Light layer: standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from cream_engine.daemon import pid_alive


def _beside(path: Path, kind: str = "tmp") -> Path:
    # same folder, so the rename is atomic
    return path.with_name(f".{path.name}.{os.getpid()}.{kind}")


def _remove_stale(path: Path) -> None:
    """Temp files and folders of `path` left by writers that are no longer running."""
    _remove_dead(path.parent.glob(f".{glob.escape(path.name)}.*.*"), len(path.name) + 2)


def remove_stale_temps(folder: Path) -> None:
    """Every temp file and folder in `folder` left by a writer that is no longer running,
    whatever its target (a run folder killed while it was written has no next write)."""
    for stale in folder.glob(".*.*.*"):
        _remove_dead([stale], len(stale.name.rsplit(".", 2)[0]) + 1)


def _remove_dead(candidates: Iterable[Path], skip: int) -> None:
    """`candidates` named `.<target>.<pid>.<tmp|old>` whose writer `pid` is gone, removed
    (`skip`: where `<pid>` starts in the name)."""
    for stale in candidates:
        pid, _, kind = stale.name[skip:].partition(".")
        if kind not in ("tmp", "old") or not pid.isdigit() or pid_alive(int(pid)):
            continue
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w", *, parents: bool = True) -> Iterator[IO]:
    """An open file that replaces `path` once the block ends without an error (flushed to disk
    first); on an error the temp file is removed and `path` is left as it was. `parents`:
    create the folder if it is missing (off for a path a user typed)."""
    path = Path(path)
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    tmp = _beside(path)
    text = "b" not in mode
    try:
        with open(tmp, mode, **({"encoding": "utf-8", "newline": ""} if text else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:  # (named for the file the caller writes, not for its temp file)
        tmp.unlink(missing_ok=True)
        if e.filename not in (None, str(tmp)):
            raise
        raise OSError(e.errno, e.strerror, str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: str | bytes, *, parents: bool = True) -> None:
    """Write a whole file atomically."""
    with atomic_file(path, "wb" if isinstance(data, bytes) else "w", parents=parents) as fh:
        fh.write(data)


def write_json(path: Path, value: object) -> None:
    write_atomic(path, json.dumps(value, indent=2) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """JSON Lines, one object per line, written atomically."""
    with atomic_file(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    """The objects of a JSON Lines file (lines end at "\\n" only: a U+2028 inside a string is
    part of the string, as JSON allows)."""
    with open(path, encoding="utf-8", newline="\n") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@contextlib.contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """A temp folder beside `path` to fill; once the block ends without an error it takes the
    place of `path` (an old folder there is moved aside, then removed). On an error it is
    removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    tmp = _beside(path)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = _beside(path, "old")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def append_traceback(log: Path, who: str) -> Path | None:
    """Append the exception being handled, with its traceback, to the log file `log`, once:
    when stderr already is that file (a job under the worker, the worker daemon), it goes
    there; otherwise stderr is a terminal, which gets one line from the caller and no
    traceback. Returns the log, or None when it could not be written (a full disk)."""
    import traceback  # (only on this path)

    text = traceback.format_exc()
    try:
        same = os.path.samestat(os.fstat(2), log.stat())
    except OSError:  # no log yet, or no stderr
        same = False
    try:
        if same:
            sys.stderr.write(text)
            sys.stderr.flush()
        else:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {who}:\n{text}")
    except OSError:
        return None
    return log


@contextlib.contextmanager
def one_at_a_time(lock: Path, waiting: str) -> Iterator[None]:
    """An exclusive lock on the file `lock` for the block, saying `waiting` on stderr when
    another process holds it. The OS drops the lock of a process that dies (even by SIGKILL),
    so a killed holder never blocks the next."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(waiting, file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
