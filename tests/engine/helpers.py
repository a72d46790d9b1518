"""Helpers for the engine tests that run real tiny experiments: a config, a run in a home,
the engine in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cream_engine.config import from_dict
from cream_engine.runs import create_run
from cream_engine.store import open_store


def tiny_config(model_dir: Path, **sections: dict) -> dict:
    base = {"run": {"name": "tiny", "method": "cream", "model": str(model_dir),
                    "iterations": 2, "seed": 3},
            "data": {"prompts_per_iteration": 8},
            "generate": {"n": 4, "max_new_tokens": 16, "batch_size": 4},
            "judge": {"samples": 1, "max_new_tokens": 0},
            "train": {"learning_rate": 1e-3, "batch_size": 2},
            "eval": {"max_items": 4, "max_new_tokens": 12, "win_rate_prompts": 4}}
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return base


def new_run(home: Path, config: dict) -> Path:
    store = open_store(home)
    run_id = create_run(store, home, from_dict(config))
    return store.run_path(store.require_run(run_id))


def engine(run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "CREAM_HOME": str(run_dir.parent)}
    return subprocess.Popen([sys.executable, "-m", "cream_engine", "run", str(run_dir)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err
