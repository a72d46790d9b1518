"""Creating a run: what `cream run` and `cream submit` do before any model is touched. The
config's inputs are checked, then the run gets an id, its folder with the resolved config, the
code version and a store row. A config error leaves nothing behind: the folder appears complete
(written beside, then renamed) and is removed again if the store refuses the row.

Light layer: standard library + the store.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from cream_engine import paths
from cream_engine.config import ExperimentConfig, load_config, to_toml
from cream_engine.errors import DataError
from cream_engine.evalsets import known_eval_set
from cream_engine.files import atomic_folder
from cream_engine.prompts import Prompt, load_prompts, prompt_slices
from cream_engine.store import Store

UNFINISHED = ("queued", "running", "failed", "cancelled")


def check_inputs(config: ExperimentConfig) -> list[Prompt]:
    """Check what a config points at before anything is written: prompt file (readable,
    UTF-8, non-empty, enough prompts for every slice), evaluation files, a local model folder.
    Returns the prompts. Raises `DataError` with one line naming the field or file."""
    prompts = load_prompts(config.data.prompts)
    prompt_slices(prompts, config.run.iterations, config.data.prompts_per_iteration,
                  config.run.seed)
    if config.eval.enabled:
        for spec in config.data.eval_sets:
            known_eval_set(spec)
    model = config.run.model
    if Path(model).is_absolute() and not Path(model).is_dir():
        raise DataError(f"[run] model = {model!r}: no such folder")
    return prompts


def load_checked(path: Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """A config file, loaded and validated, with the files it points at checked: what
    `cream validate`, `submit` and `run` and the dashboard's submit all accept."""
    config = load_config(path, overrides)
    check_inputs(config)
    return config


def config_hash(config: ExperimentConfig) -> str:
    return hashlib.sha256(to_toml(config).encode()).hexdigest()[:16]


def git_commit(cwd: Path) -> str | None:
    """The commit of the user's working directory (with "+dirty" when it has changes)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=cwd, capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def new_run_id(name: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-{secrets.token_hex(2)}"


def create_run(store: Store, home: Path, config: ExperimentConfig, *,
               status: str = "queued", cwd: Path | None = None) -> str:
    """Snapshot `config` into `<home>/<run-id>/config.toml` and record the run."""
    run_id = new_run_id(config.run.name)
    final = paths.run_dir(home, run_id)
    text = to_toml(config)
    with atomic_folder(final) as tmp:
        (tmp / paths.CONFIG_NAME).write_text(text, encoding="utf-8")
    try:
        store.create_run(run_id, name=config.run.name, method=config.run.method,
                         model=config.run.model, iterations=config.run.iterations,
                         run_dir=str(final), config_toml=text, config_hash=config_hash(config),
                         git_commit=git_commit(cwd or Path.cwd()), status=status)
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return run_id


def find_resumable(store: Store, config: ExperimentConfig) -> dict | None:
    """The newest unfinished run of exactly this config (same name and resolved values)."""
    run = store.newest_run_with_config(config.run.name, config_hash(config))
    return run if run and run["status"] in UNFINISHED else None


def load_run_config(run_dir: Path) -> ExperimentConfig:
    """The snapshot of a run: paths in it are already absolute. No environment overrides."""
    return load_config(run_dir / paths.CONFIG_NAME, environ={})


def create_or_resume(store: Store, home: Path, config: ExperimentConfig, *,
                     new: bool = False) -> tuple[str, bool]:
    """(run id, resumed?): the newest unfinished run of this exact config, else a new one."""
    existing = None if new else find_resumable(store, config)
    if existing:
        return existing["id"], True
    return create_run(store, home, config), False
