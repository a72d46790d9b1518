"""The queue in the store: atomic claims, priorities, dependencies, cancel, retry, drain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cream_engine import queue
from cream_engine.errors import QueueError, UsageError
from cream_engine.store import Store, open_store


def add(store: Store, run_id: str, priority: int = 0, **kw: object) -> int:
    store.create_run(run_id, name=run_id, method="cream", model="m", iterations=1,
                     run_dir=f"/nonexistent/{run_id}", config_toml="")
    return queue._add_job(store, run_id, priority=priority, gpus=kw.get("gpus"),  # type: ignore
                          min_free_mem_gb=0.0, after_run=kw.get("after"))  # type: ignore


def test_claims_follow_priority_then_age(store: Store) -> None:
    add(store, "low", 0)
    add(store, "high", 5)
    add(store, "high-later", 5)
    order = [queue.claim_next_job(store, "w")["run_id"] for _ in range(3)]
    assert order == ["high", "high-later", "low"]
    assert queue.claim_next_job(store, "w") is None
    assert store.get_run("high")["status"] == "running"


def test_fits_and_dependencies(store: Store) -> None:
    add(store, "first")
    add(store, "second", 9, after="first")
    add(store, "big", 5, gpus=4)
    job = queue.claim_next_job(store, "w", fits=lambda j: queue.job_gpus(j, 2) <= 2)
    assert job["run_id"] == "first"   # second waits for first; big needs 4 GPUs of 2
    queue.finish_job(store, job["id"], "done", 0)
    assert queue.claim_next_job(store, "w", fits=lambda j: j["gpus"] != 4)["run_id"] == "second"


def test_drain_stops_claims_until_resumed(store: Store) -> None:
    add(store, "a")
    queue.set_drain(store, True)
    assert queue.claim_next_job(store, "w") is None
    queue.set_drain(store, False)
    assert queue.claim_next_job(store, "w")["run_id"] == "a"


def test_cancel_retry_priority(store: Store) -> None:
    add(store, "a")
    queue.set_priority(store, "a", 7)
    assert queue.latest_job(store, "a")["priority"] == 7
    queue.cancel(store, "a")  # queued: cancelled at once
    assert queue.latest_job(store, "a")["status"] == "cancelled"
    assert store.get_run("a")["status"] == "cancelled"
    with pytest.raises(QueueError, match="nothing to cancel"):
        queue.cancel(store, "a")
    with pytest.raises(QueueError, match="only a queued job"):
        queue.set_priority(store, "a", 1)
    queue.retry(store, "a")
    job = queue.claim_next_job(store, "w")
    assert job["run_id"] == "a" and job["priority"] == 7
    with pytest.raises(QueueError, match="already running"):
        queue.retry(store, "a")
    queue.cancel(store, "a")  # running: flagged for the worker
    assert queue.latest_job(store, "a")["cancel_requested"] == 1
    with pytest.raises(UsageError, match="no such run"):
        queue.cancel(store, "ghost")


RACE = """
import json, sys
from pathlib import Path
from cream_engine import queue
from cream_engine.store import open_store
store = open_store(Path(sys.argv[1]))
mine = []
while True:
    job = queue.claim_next_job(store, sys.argv[2])
    if job is None:
        break
    mine.append(job["id"])
print(json.dumps(mine))
"""


def test_two_workers_racing_over_50_jobs_never_double_claim(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for i in range(50):
        add(store, f"run-{i:02d}", priority=i % 3)
    store.close()
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(tmp_path), f"w{k}"],
                              stdout=subprocess.PIPE, text=True) for k in range(2)]
    claimed = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    a, b = set(claimed[0]), set(claimed[1])
    assert not a & b
    assert len(a | b) == 50 and len(claimed[0]) + len(claimed[1]) == 50
    rows = open_store(tmp_path).query("SELECT worker, COUNT(*) AS n FROM jobs "
                                      "WHERE status = 'running' GROUP BY worker")
    assert sum(r["n"] for r in rows) == 50
