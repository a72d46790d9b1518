from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from cream_engine.schema import applied_migrations
from cream_engine.store import Store, StoreError, open_store


def make_run(store: Store, run_id: str = "r1", name: str = "exp") -> None:
    store.create_run(run_id, name=name, method="cream", model="bundled:tiny-random",
                     iterations=2, run_dir=f"/nonexistent/{run_id}", config_toml="")


def test_schema_has_the_tables_and_the_series_index(store: Store) -> None:
    tables = {r["name"] for r in store.query("SELECT name FROM sqlite_master WHERE "
                                             "type = 'table'")}
    assert {"runs", "jobs", "iterations", "stages", "metrics", "gpu_samples",
            "events"} <= tables
    plan = " ".join(r["detail"] for r in store.query(
        "EXPLAIN QUERY PLAN SELECT step, value FROM metrics WHERE run_id = 'r' AND "
        "name = 'loss' ORDER BY iteration, step"))
    assert "metrics_series" in plan and "TEMP B-TREE" not in plan


def test_file_store_uses_wal_and_busy_timeout(tmp_path: Path) -> None:
    s = open_store(tmp_path / "home")
    assert s.query("PRAGMA journal_mode")[0]["journal_mode"] == "wal"
    assert s.query("PRAGMA busy_timeout")[0]["timeout"] >= 10000
    assert applied_migrations(s.conn) == ["m001_initial", "m002_queue", "m003_stage_names",
                                           "m004_executors"]


def test_an_up_to_date_store_opens_without_sqlite_utils(tmp_path: Path) -> None:
    """sqlite-utils (which imports pandas and numpy) is imported only to migrate: `cream
    status` on an up-to-date store pays for neither."""
    import json
    import subprocess
    import sys

    code = ("import json, sys; from cream_engine.store import open_store; "
            f"open_store({str(tmp_path)!r}).close(); "
            "print(json.dumps([m for m in ('sqlite_utils', 'pandas', 'numpy') "
            "if m in sys.modules]))")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True) for _ in range(2)]
    assert json.loads(runs[0].stdout) != []       # the first open migrates a new store
    assert json.loads(runs[1].stdout) == []


def test_nested_transactions_roll_back_their_own_part(store: Store) -> None:
    with store.atomic():
        store.set_setting("outer", "1")
        with pytest.raises(RuntimeError):
            with store.atomic():
                store.set_setting("inner", "1")
                raise RuntimeError("undo the inner part only")
    assert store.get_setting("outer") == "1" and store.get_setting("inner") is None
    with pytest.raises(RuntimeError):
        with store.atomic():
            store.set_setting("outer", "2")
            raise RuntimeError
    assert store.get_setting("outer") == "1"


def test_read_only_open_creates_nothing(tmp_path: Path) -> None:
    assert open_store(tmp_path / "absent", create=False) is None
    assert not (tmp_path / "absent").exists()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    s.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
              "VALUES ('cream', 'm999_future', 'now')")
    s.close()
    with pytest.raises(StoreError, match="newer cream"):
        open_store(tmp_path)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "cream.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot use the store"):
        open_store(tmp_path)


def test_run_lifecycle_and_lookup(store: Store) -> None:
    make_run(store, "20261125-exp-ab12", "exp")
    store.set_run_status("20261125-exp-ab12", "running")
    store.set_run_status("20261125-exp-ab12", "failed", error="NaN loss")
    run = store.find_run("20261125")
    assert run["status"] == "failed" and run["error"] == "NaN loss"
    assert run["started_at"] is not None and run["ended_at"] is not None
    assert store.find_run("exp")["id"] == "20261125-exp-ab12"
    assert store.find_run("nope") is None
    with pytest.raises(ValueError):
        store.set_run_status("20261125-exp-ab12", "exploded")


def test_restarted_stage_replaces_its_metrics(store: Store) -> None:
    make_run(store)
    store.start_stage("r1", 0, "train", total_items=4)
    store.log_metrics("r1", 0, "train", 1, {"loss": 0.69})
    store.log_metrics("r1", 0, "train", 2, {"loss": 0.60})
    store.log_metrics("r1", 0, "generate", 0, {"tokens": 10})
    store.start_stage("r1", 0, "train", total_items=4)  # the process died; train again
    store.log_metrics("r1", 0, "train", 1, {"loss": 0.68})
    assert [r["value"] for r in store.metric_series("r1", "loss")] == [0.68]
    assert len(store.metric_series("r1", "tokens")) == 1
    store.finish_stage("r1", 0, "train")
    stage = store.stages("r1")[0]
    assert stage["status"] == "done" and stage["done_items"] == 4
    assert store.stage_status("r1", 0, "train") == "done"


def test_iteration_upsert_keeps_unmentioned_columns(store: Store) -> None:
    make_run(store)
    store.upsert_iteration("r1", 0, n_prompts=8)
    store.upsert_iteration("r1", 0, mean_tau=0.5, status="done", summary={"a": 1})
    row = store.iterations("r1")[0]
    assert (row["n_prompts"], row["mean_tau"], row["status"]) == (8, 0.5, "done")
    assert row["summary"] == '{"a": 1}'


def test_gpu_samples_retention(store: Store) -> None:
    now = time.time()
    store.add_gpu_samples([{"time": now - 7200, "gpu_index": 0, "uuid": "GPU-a"},
                           {"time": now, "gpu_index": 0, "uuid": "GPU-a", "utilization": 50}])
    assert store.prune_gpu_samples(keep_seconds=3600) == 1
    assert [r["utilization"] for r in store.query("SELECT * FROM gpu_samples")] == [50]


def test_concurrent_writers_share_the_file(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    make_run(s)
    errors: list[Exception] = []

    def writer(stage: str) -> None:
        try:
            w = open_store(tmp_path)
            for step in range(200):
                w.log_metrics("r1", 0, stage, step, {"loss": step})
        except sqlite3.Error as e:  # a "database is locked" would land here
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(f"s{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert s.query("SELECT COUNT(*) AS n FROM metrics")[0]["n"] == 800


def test_events(store: Store) -> None:
    store.add_event("run.failed", "NaN loss", run_id="r1", data={"iteration": 1})
    assert store.events("r1")[0]["message"] == "NaN loss"
