"""Where things live: the data home (`./runs` unless `--home` or `CREAM_HOME` say otherwise),
the folders and artifacts of a run, and the files shipped in `cream_engine/data/`.

    <home>/cream.db                  the store (SQLite, WAL)
    <home>/worker.pid, worker.lock   the worker of this home (one at most), worker.log its log
    <home>/logs/cli-errors.log       tracebacks of unexpected CLI errors
    <home>/demo/                     the configs `cream demo` wrote
    <home>/models/<name>/            converted bundled models (built once)
    <home>/<run-id>/config.toml      the resolved config of a run
    <home>/<run-id>/iter-<t>/        one file per stage (ARTIFACTS), model/ the checkpoint
    <home>/<run-id>/logs/job.log     stdout/stderr of the engine

A run folder is always `<home>/<run-id>`: a home copied to another machine or mounted
elsewhere still works (the folder the store once recorded is not trusted).

Light layer: standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = "runs"
DB_NAME = "cream.db"
CONFIG_NAME = "config.toml"
JOB_LOG = "job.log"

# The stages of one iteration, in order (the pipeline runs them so; the dashboard lists them
# so); iteration 0 begins with BASELINE, M0's own evaluation. Each stage writes one artifact
# under iter-<t>/, named for what it holds.
STAGES = ("generate", "score", "consistency", "pairs", "train", "evaluate")
BASELINE = "baseline"
ARTIFACTS = {
    "baseline": "baseline.json",        # M0's evaluation
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
