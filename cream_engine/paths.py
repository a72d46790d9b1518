"""Where things live: the data home (`./runs` unless `--home` or `CREAM_HOME` say otherwise),
the folders and artifacts of a run, and the files shipped in `cream_engine/data/`.

    <home>/cream.db                  the store (SQLite, WAL)
    <home>/worker.pid, worker.lock   the worker of this home (one at most), worker.log its log
    <home>/logs/cli-errors.log       tracebacks of unexpected CLI errors
    <home>/demo/                     the configs `cream demo` wrote
    <home>/models/<name>/            converted bundled models (built once)
    <home>/cache/eval/<key>/         M0's evaluation, shared by the runs that share its key
    <home>/cache/digests/            content hashes of model folders, keyed by size and mtime
    <home>/<run-id>/config.toml      the resolved config of a run
    <home>/<run-id>/iter-<t>/        one file per stage (ARTIFACTS), model/ the checkpoint
    <home>/<run-id>/logs/job.log     stdout/stderr of the engine

A run folder is always `<home>/<run-id>`: a home copied to another machine or mounted
elsewhere still works (the folder the store once recorded is not trusted).

Who may read it: a home is private to its user. Every cream process that writes under it (the
CLI, the dashboard, the worker, the engine; their children inherit it) runs with umask 077,
so what it creates is 0700 (folders) or 0600 (files, the store and its -wal/-shm included).
With `CREAM_HOME_GROUP=1` a group shares it: umask 007 (0770 and 0660) and a new home gets the
setgid bit, so what is made inside belongs to the home's group. Modes that exist are never
changed: a home made before (or chmodded on purpose) keeps them; see docs/data-home.md.

Light layer: standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path

from cream_engine.errors import ReadOnlyHome, user_name

DEFAULT_HOME = "runs"
DB_NAME = "cream.db"
CONFIG_NAME = "config.toml"
JOB_LOG = "job.log"

# The stages of one iteration, in order (the pipeline runs them so; the dashboard lists them
# so); iteration 0 begins with BASELINE, M0's own evaluation. Each stage writes one artifact
# under iter-<t>/, named for what it holds.
STAGES = ("generate", "score", "consistency", "pairs", "train", "evaluate")
BASELINE = "baseline"
# with `[sft] enabled`, iteration 0 goes on with the seed SFT (M0 -> M1) and M1's evaluation
SFT, SFT_EVAL = "sft", "sft-eval"
BEFORE_LOOP = (BASELINE, SFT, SFT_EVAL)  # the stages of iteration 0 before `generate`
ARTIFACTS = {
    "baseline": "baseline.json",        # M0's evaluation
    "sft": "sft-model",                 # M1, M0 fine-tuned on the seed data
    "sft-eval": "sft-eval.json",        # M1's evaluation
    "generate": "responses.jsonl",      # N responses per prompt
    "score": "scores.jsonl",            # log-probabilities per model, the judge's scores
    "consistency": "consistency.jsonl",  # rewards, both rankings' τ_j and C_j per prompt
    "pairs": "pairs.jsonl",             # chosen / rejected with their weight
    "train": "model",                   # the checkpoint M_t+1
    "evaluate": "eval.json",            # M_t+1's evaluation
}
# Runs written before the stages were renamed: the consistency stage's `rewards.jsonl` is now
# `consistency.jsonl` (and stage `reward` is `score`: the store's migration m003 renames that).
LEGACY_ARTIFACTS = {"rewards.jsonl": "consistency.jsonl"}


def data_home(home: str | Path | None = None) -> Path:
    """The data home: the explicit argument, else `$CREAM_HOME`, else `./runs`."""
    if home is None or str(home) == "":
        home = os.environ.get("CREAM_HOME") or DEFAULT_HOME
    return Path(home).expanduser().absolute()


GROUP_ENV = "CREAM_HOME_GROUP"
MOUNTED_READ_ONLY = "mounted read-only"


def shared_with_group() -> bool:
    return os.environ.get(GROUP_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def set_home_umask() -> int:
    """Make what this process (and its children) creates private to the user (umask 077), or
    to the user and the group with `CREAM_HOME_GROUP=1` (umask 007); a stricter umask of the
    user's own is kept for the user's bits. Returns the umask it replaced."""
    old = os.umask(0o077)
    os.umask((old | 0o007) & ~0o070 if shared_with_group() else old | 0o077)
    return old


def make_home(home: Path) -> None:
    """Create the data home if it is missing: 0700 under the umask above, 2770 (setgid, so what
    is made inside belongs to the home's group) when shared with a group. An existing home's
    mode is left alone."""
    if home.is_dir():
        return
    home.mkdir(parents=True, exist_ok=True)
    if shared_with_group():
        home.chmod(0o2770)


def read_only_reason(home: Path) -> str | None:
    """Why this process may not write the data home (a missing home: its nearest folder), or
    None when it may: `MOUNTED_READ_ONLY`, or "not writable by user NAME"."""
    folder = home
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    db = db_path(home)
    if os.access(folder, os.W_OK) and (folder != home or not db.exists()
                                       or os.access(db, os.W_OK)):
        return None
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return MOUNTED_READ_ONLY
    except OSError:
        pass
    return f"not writable by user {user_name()}"


def read_only_home(home: Path, why: str) -> ReadOnlyHome:
    """The one line for a command that writes to a home it may only read."""
    if why == MOUNTED_READ_ONLY:
        advice = "remount it read-write, or choose another data home with --home"
    else:  # not writable by this user
        advice = "ask its owner for access, or choose a data home of your own with --home"
    return ReadOnlyHome(home, why, advice)


def require_writable(home: Path) -> None:
    """Refuse (`ReadOnlyHome`, exit 2) a command that writes to a home it may only read."""
    why = read_only_reason(home)
    if why is not None:
        raise read_only_home(home, why)


def db_path(home: Path) -> Path:
    return home / DB_NAME


def models_dir(home: Path) -> Path:
    return home / "models"


def eval_cache_dir(home: Path) -> Path:
    """M0's evaluations, one folder per model and evaluation settings (stages/evalcache.py)."""
    return home / "cache" / "eval"


def sft_cache_dir(home: Path) -> Path:
    """Seed-SFT models (M1), one folder per starting model, seed data and settings
    (stages/sftcache.py)."""
    return home / "cache" / "sft"


def digests_dir(home: Path) -> Path:
    """Remembered content hashes of model folders (stages/evalcache.py)."""
    return home / "cache" / "digests"


def run_dir(home: Path, run_id: str) -> Path:
    return home / run_id


def iter_dir(run_path: Path, iteration: int) -> Path:
    return run_path / f"iter-{iteration}"


def logs_dir(run_path: Path) -> Path:
    return run_path / "logs"


def job_log(run_path: Path) -> Path:
    return logs_dir(run_path) / JOB_LOG


def bundled_data(name: str) -> Path:
    """A file shipped in `cream_engine/data/` (prompts, evaluation sets)."""
    return Path(__file__).resolve().parent / "data" / name


def upgrade_run_folder(run_path: Path) -> list[str]:
    """Rename the artifacts of a run written before the stages were renamed; returns what was
    renamed (idempotent: a folder already up to date is left alone)."""
    renamed = []
    for folder in sorted(run_path.glob("iter-*")):
        for old, new in LEGACY_ARTIFACTS.items():
            if (folder / old).is_file() and not (folder / new).exists():
                (folder / old).rename(folder / new)
                renamed.append(f"{folder.name}/{old} -> {new}")
    return renamed
