"""Queue actions the dashboard offers (submit, cancel, retry, priority, drain): thin calls to
`cream_engine.queue` on a connection of their own, each ending in one line for the user.

They run in a worker thread (a busy store waits, the UI does not); an error the user can act
on is a `CreamError` whose one line the dashboard shows, never a traceback.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cream_engine import compare, executors, queue
from cream_engine.errors import StoreError, UsageError, disk_error
from cream_engine.gpu import read_gpus
from cream_engine.runs import load_checked
from cream_engine.store import Store


def _with_store(home: Path, fn: Callable[[Store], Any], create: bool = False) -> Any:
    store = Store.open(home, create=create)
    if store is None:
        raise UsageError(f"no store in {home} yet: submit a run first")
    try:
        return fn(store)
    except sqlite3.Error as e:
        raise disk_error(e, home) or StoreError(f"the store is busy or unreadable ({e})") \
            from None
    finally:
        store.close()


def submit(home: Path, config_path: str) -> str:
    """Validate a config file and queue it; returns the line to show."""
    path = Path(config_path).expanduser()
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    config, prompts = load_checked(path, home=home, gpus=min(len(read_gpus().gpus), 1))
    run_id = _with_store(home, lambda s: queue.submit(s, home, config), create=True)
    return f"queued {run_id} ({prompts.summary()})"


def cancel(home: Path, run_id: str) -> str:
    job = _with_store(home, lambda s: executors.cancel(s, run_id))
    if job["executor"] == "slurm":
        return f"scancel {job['slurm_id']} sent for {run_id}"
    return (f"cancel requested for {run_id}" if job["status"] == "running"
            else f"cancelled {run_id}")


def retry(home: Path, run_id: str) -> str:
    _with_store(home, lambda s: executors.retry(s, home, run_id))
    return f"queued {run_id} to resume"


def change_priority(home: Path, run_id: str, delta: int) -> str:
    priority = _with_store(home, lambda s: queue.set_priority(s, run_id, delta=delta))
    return f"{run_id}: priority {priority}"


def toggle_drain(home: Path) -> str:
    def toggle(store: Store) -> bool:
        drain = not queue.drained(store)
        queue.set_drain(store, drain)
        return drain

    return ("queue drained: running jobs finish, nothing new starts (d resumes)"
            if _with_store(home, toggle) else "queue resumed")


def compare_parts(home: Path, refs: list[str]) -> list[dict]:
    """What the compare screen needs of these runs (`compare.run_part`), for a dashboard on
    another box."""
    def parts(store: Store) -> list[dict]:
        return [compare.run_part(store, run) for run in compare.find_runs(store, refs)]

    return _with_store(home, parts)


# the actions a dashboard on another box may ask of this one's feed, by name
BY_NAME: dict[str, Callable[..., str]] = {
    "submit": submit, "cancel": cancel, "retry": retry, "priority": change_priority,
    "drain": toggle_drain}
