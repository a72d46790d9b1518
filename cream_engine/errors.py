"""One family of errors a user can act on.

Every error `cream` expects (a bad config, an unknown run, a model that does not load, a NaN
loss) is a `CreamError`: its message is one line that names the field, file or run, and its
class carries the exit code. The entry points catch `CreamError` once: the CLI and the worker print
`cream: error: <message>` and exit with `exit_code`, the engine records the message as the
run's error and exits 1. Anything else is a bug, shown as one line while its traceback goes to
a log.

The file system failing under us (a full disk, a read-only one, no permission, too many open
files) is not a bug either, but it surfaces deep inside libraries as an `OSError`, a
`sqlite3.OperationalError` or a library's own error: `disk_error` turns any of them into one
`DiskError` that names the path and what to free or change. It is the one place that knows
those errors; the CLI's `main`, the engine's `run_experiment` and the worker's `main` call it.

Light layer: standard library only.
"""

from __future__ import annotations

import errno
import os
import resource  # (here, not when needed: with no file descriptor left it could not load)
import sqlite3
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_GPU = 0, 1, 2, 3
EXIT_CANCELLED = 143                     # the engine after SIGTERM (128 + 15)
EXIT_CODES_HELP = "Exit codes: 0 ok, 1 run/job failed, 2 usage or config error, 3 no GPU fits."


def internal_error(e: BaseException) -> str:
    """One line for an exception no one expected: 'internal error: Type: first line'."""
    text = str(e).strip()
    return f"internal error: {type(e).__name__}" + (f": {text.splitlines()[0]}" if text else "")


class CreamError(Exception):
    """An expected failure: `str(error)` is shown to the user as is."""

    exit_code = EXIT_FAILED

    @property
    def line(self) -> str:
        """The message as one line (the first, should a library's text have several)."""
        text = str(self).strip()
        return text.splitlines()[0] if text else type(self).__name__


# -- refused at the door (exit 2): nothing was started, nothing half-written -------------------


class UsageError(CreamError):
    """A request that cannot be done as asked."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError, ValueError):
    """A config that cannot be used: the message names the field or file."""


class DataError(ConfigError):
    """A prompt or evaluation file that cannot be used: the message names the file (and line)."""


class StoreError(UsageError):
    """The store cannot be opened (written by a newer cream, not a database)."""


class RunNotFound(UsageError):
    """No run matches a reference (id, id prefix or name)."""

    def __init__(self, ref: str, where: str = ""):
        super().__init__(f"run {ref!r}: no such run" + (f" ({where})" if where else ""))


class QueueError(UsageError):
    """A queue request that cannot be done (nothing to cancel, already running…)."""


class SlurmError(UsageError):
    """A Slurm request refused at the door (Slurm not installed, an unknown partition): nothing
    was submitted."""


class ModelError(UsageError):
    """A model that cannot be used: the message names the model."""


class WorkerError(CreamError):
    """The worker daemon could not be started or stopped."""


class NoGpuError(CreamError):
    """A job asks for more GPUs than the machine has."""

    exit_code = EXIT_NO_GPU


class SlurmResourceError(NoGpuError):
    """Slurm can never give what a job asks (an impossible --gres, more nodes than exist)."""


class SlurmUnreachable(CreamError):
    """slurmctld does not answer: nothing was submitted or cancelled (exit 1, try again)."""


# -- a run that cannot go on (exit 1): finished stages are kept, a retry resumes -------------


class PipelineError(CreamError):
    """A run cannot go on (no pairs, an empty prompt slice…)."""


class BackendError(CreamError):
    """A generation backend that cannot be used here: what to install or change."""


class JudgeError(CreamError):
    """The pointwise judge cannot score (never a score made up)."""


class PairwiseJudgeError(CreamError):
    """The pairwise judge's verdicts cannot be read for this tokenizer."""


class TrainingError(CreamError):
    """Training that cannot go on (a NaN loss, nothing to train on)."""


# -- the file system failing under us ------------------------------------------------------


class DiskError(CreamError):
    """A full disk, a read-only one, no permission, too many open files: the message names the
    path and what to free or change. Exit 1 in a job (the engine, the worker: finished work is
    kept, the same command resumes); the CLI exits 2 for it, as for any command refused."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.errno = code


class ReadOnlyHome(UsageError):
    """A command that writes, on a data home this process may only read."""

    def __init__(self, home: Path, why: str, advice: str):
        super().__init__(f"{home}: read-only data home ({why}): this command writes to it; "
                         f"{advice}")


RERUN = "then run the same command again"
AGAIN = f"{RERUN}: finished work is kept"
OTHER_HOME = "or choose another data home with --home"
_WHAT = {  # errno: (what happened, what to do)
    errno.ENOSPC: ("no space left on device", f"free space on that disk, {AGAIN}"),
    errno.EDQUOT: ("disk quota exceeded", f"free space within your quota, {AGAIN}"),
    errno.EROFS: ("read-only file system", f"remount it read-write, {OTHER_HOME}"),
    errno.EACCES: ("permission denied", f"ask its owner for access, {OTHER_HOME}"),
    errno.EMFILE: ("too many open files", f"raise the limit, e.g. `ulimit -n 4096`, {RERUN}"),
    errno.ENFILE: ("too many open files on this machine", f"close some programs, {RERUN}"),
    errno.EIO: ("disk I/O error", f"check the disk (`dmesg`), {AGAIN}"),
}
_SAME = {errno.EPERM: errno.EACCES}
# what libraries that do not raise OSError (safetensors, tokenizers…) say for these errnos
_TEXTS = {errno.ENOSPC: ("no space left on device", "os error 28"),
          errno.EDQUOT: ("disk quota exceeded", "os error 122"),
          errno.EROFS: ("read-only file system", "os error 30"),
          errno.EMFILE: ("too many open files", "os error 24")}
# SQLite's result codes, and its messages where Python (< 3.11) does not name the code
_SQLITE_TEXTS = {"database or disk is full": "SQLITE_FULL", "disk i/o error": "SQLITE_IOERR",
                 "attempt to write a readonly database": "SQLITE_READONLY",
                 "unable to open database file": "SQLITE_CANTOPEN"}
NEARLY_FULL_BYTES = 1 << 20  # a disk with less free is full, for SQLite's "disk I/O error"


def disk_error(error: BaseException, where: str | os.PathLike | None = None
               ) -> DiskError | None:
    """The one `DiskError` for an error of the file system, or None for anything else. It
    names the error's own path, else `where`: the data home (for SQLite's errors, its store)
    or the file being written. Errors raised while handling another are one chain: the first
    cause that is a file system error names it (a full disk that failed a checkpoint, then the
    store's "failed" mark)."""
    for e in reversed(_chain(error)):
        found = _classify(e, Path(where) if where is not None else None)
        if found is not None:
            code, path = found
            what, advice = _WHAT[code]
            if code == errno.EACCES:
                what = f"permission denied for user {user_name()}"
            elif code == errno.EMFILE:
                advice = f"this process may open {_fd_limit()} at once: {advice}"
            return DiskError(f"{path or 'the data home'}: {what} ({advice})", code)
    return None


def _chain(error: BaseException) -> list[BaseException]:
    """`error` and the errors it was raised from or while handling (not past a `from None`)."""
    chain: list[BaseException] = []
    e: BaseException | None = error
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    return chain


def _classify(e: BaseException, where: Path | None) -> tuple[int, object] | None:
    """(errno, path) of a file system error; None for anything else."""
    if isinstance(e, CreamError):
        return None
    if isinstance(e, OSError) and e.errno is not None:
        code = _SAME.get(e.errno, e.errno)
        if code in _WHAT and code != errno.EIO:
            return code, e.filename or where
        return None
    if isinstance(e, sqlite3.Error):
        return _classify_sqlite(e, where)
    text = str(e).lower()
    for code, needles in _TEXTS.items():
        if any(n in text for n in needles):
            return code, where
    return None


def _classify_sqlite(e: sqlite3.Error, home: Path | None) -> tuple[int, object] | None:
    name = getattr(e, "sqlite_errorname", None) or next(
        (v for k, v in _SQLITE_TEXTS.items() if k in str(e).lower()), "")
    db = home / "cream.db" if home is not None else None  # (paths.DB_NAME: paths is above us)
    folder = home if home is not None and home.exists() else None
    if name == "SQLITE_FULL":
        return errno.ENOSPC, db
    if name.startswith(("SQLITE_READONLY", "SQLITE_PERM")):
        return (errno.EROFS if folder and _mounted_read_only(folder) else errno.EACCES), db
    if name.startswith("SQLITE_IOERR"):  # SQLite does not say why: ask the disk
        if folder and _free_bytes(folder) < NEARLY_FULL_BYTES:
            return errno.ENOSPC, db
        return (errno.EROFS if folder and _mounted_read_only(folder) else errno.EIO), db
    if name.startswith("SQLITE_CANTOPEN"):
        if _fds_exhausted():
            return errno.EMFILE, db
        if folder and not os.access(folder, os.W_OK):
            return (errno.EROFS if _mounted_read_only(folder) else errno.EACCES), db
    return None


def _free_bytes(folder: Path) -> int:
    try:
        st = os.statvfs(folder)
    except OSError:
        return NEARLY_FULL_BYTES
    return st.f_bavail * st.f_frsize


def _mounted_read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _fd_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _fds_exhausted() -> bool:
    """Is this process out of file descriptors, or nearly (SQLite needs 3 for a store)?"""
    try:
        used = len(os.listdir("/proc/self/fd")) - 1  # (less the one listdir used)
    except OSError as e:
        return e.errno in (errno.EMFILE, errno.ENFILE)
    return used >= _fd_limit() - 3


def user_name() -> str:
    """The name of the user this process runs as (not $USER, which `su`/`setpriv` keep)."""
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError, OSError):
        return f"uid {os.geteuid()}"
