"""Queue actions the dashboard offers (submit, cancel, retry, priority, drain): thin calls to
`cream_engine.queue` on a connection of their own, each ending in one line for the user.

They run in a worker thread (a busy store waits, the UI does not); an error the user can act
on comes back as `ActionError` with one line, never a traceback.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cream_engine import queue
from cream_engine.store import Store, StoreError


class ActionError(RuntimeError):
    """A request that cannot be done; the message is shown as is."""


def _with_store(home: Path, fn: Callable[[Store], Any], create: bool = False) -> Any:
    try:
        store = Store.open(home, create=create)
    except StoreError as e:
        raise ActionError(str(e)) from None
    if store is None:
        raise ActionError(f"no store in {home} yet: submit a run first")
    try:
        return fn(store)
    except queue.QueueError as e:
        raise ActionError(str(e)) from None
    except sqlite3.Error as e:
        raise ActionError(f"the store is busy or unreadable ({e})") from None
    finally:
        store.close()


def submit(home: Path, config_path: str) -> str:
    """Validate a config file and queue it; returns the line to show."""
    from cream_engine.config import ConfigError, load_config
    from cream_engine.data import check_inputs

    path = Path(config_path).expanduser()
    if not path.is_file():
        raise ActionError(f"{path}: no such file")
    try:
        config = load_config(path)
        check_inputs(config)
    except ConfigError as e:
        raise ActionError(str(e)) from None
    run_id = _with_store(home, lambda s: queue.submit(s, home, config), create=True)
    return f"queued {run_id}"


def cancel(home: Path, run_id: str) -> str:
    job = _with_store(home, lambda s: queue.cancel(s, run_id))
    return (f"cancel requested for {run_id}" if job["status"] == "running"
            else f"cancelled {run_id}")


def retry(home: Path, run_id: str) -> str:
    _with_store(home, lambda s: queue.retry(s, run_id))
    return f"queued {run_id} to resume"


def change_priority(home: Path, run_id: str, delta: int) -> str:
    def change(store: Store) -> int:
        job = queue.latest_job(store, run_id)
        if job is None:
            raise queue.QueueError(f"run {run_id}: no job")
        queue.set_priority(store, run_id, job["priority"] + delta)
        return job["priority"] + delta

    return f"{run_id}: priority {_with_store(home, change)}"


def toggle_drain(home: Path) -> str:
    def toggle(store: Store) -> bool:
        drain = store.get_setting(queue.DRAIN_KEY) != "1"
        queue.set_drain(store, drain)
        return drain

    drained = _with_store(home, toggle)
    return ("queue drained: running jobs finish, nothing new starts (d resumes)" if drained
            else "queue resumed")
