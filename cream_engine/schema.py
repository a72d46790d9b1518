"""The store's schema: sqlite-utils migrations, applied in order and recorded in its
`_sqlite_migrations` table.

sqlite-utils is imported only when a migration is pending (it imports pandas and numpy: 0.7 s
of CPU that `cream status` must not pay on every call); which migrations a database has is read
with plain SQL. A database with a migration this code does not know was written by a newer
`cream` and is refused.

Light layer: standard library (+ sqlite-utils when the schema moves).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from cream_engine.errors import StoreError

MIGRATION_SET = "cream"


# -- each migration is given a sqlite_utils.Database --------------------------------------------


def m001_initial(db: Any) -> None:
    db.executescript("""
    CREATE TABLE runs (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, method TEXT NOT NULL, model TEXT NOT NULL,
        status TEXT NOT NULL, iterations INTEGER NOT NULL, run_dir TEXT NOT NULL,
        config_toml TEXT NOT NULL, config_hash TEXT, git_commit TEXT, error TEXT,
        created_at REAL NOT NULL, started_at REAL, ended_at REAL
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id),
        status TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 0,
        gpus INTEGER NOT NULL DEFAULT 0, min_free_mem_gb REAL NOT NULL DEFAULT 0,
        after_run TEXT, worker TEXT, pid INTEGER, gpu_uuids TEXT, attempts INTEGER DEFAULT 0,
        exit_code INTEGER, heartbeat_at REAL,
        created_at REAL NOT NULL, started_at REAL, ended_at REAL
    );
    CREATE INDEX jobs_status_priority ON jobs(status, priority DESC, id);
    CREATE TABLE iterations (
        run_id TEXT NOT NULL REFERENCES runs(id), iteration INTEGER NOT NULL,
        status TEXT NOT NULL, started_at REAL, ended_at REAL,
        n_prompts INTEGER, n_pairs INTEGER, mean_tau REAL, mean_consistency REAL,
        std_consistency REAL, agreement REAL, mean_response_length REAL,
        judge_unparsable INTEGER, summary TEXT,
        PRIMARY KEY (run_id, iteration)
    );
    CREATE TABLE stages (
        run_id TEXT NOT NULL REFERENCES runs(id), iteration INTEGER NOT NULL,
        stage TEXT NOT NULL, status TEXT NOT NULL, done_items INTEGER, total_items INTEGER,
        started_at REAL, ended_at REAL, info TEXT,
        PRIMARY KEY (run_id, iteration, stage)
    );
    CREATE TABLE metrics (
        id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, iteration INTEGER NOT NULL,
        stage TEXT NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL, value REAL,
        time REAL NOT NULL
    );
    -- "the series of one metric of one run", in step order
    CREATE INDEX metrics_series ON metrics(run_id, name, iteration, step);
    CREATE TABLE gpu_samples (
        id INTEGER PRIMARY KEY, time REAL NOT NULL, gpu_index INTEGER NOT NULL,
        uuid TEXT NOT NULL, name TEXT, utilization REAL, memory_used_mb REAL,
        memory_total_mb REAL, temperature_c REAL, power_w REAL, processes TEXT
    );
    CREATE INDEX gpu_samples_time ON gpu_samples(time);
    CREATE INDEX gpu_samples_uuid_time ON gpu_samples(uuid, time);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY, time REAL NOT NULL, run_id TEXT, kind TEXT NOT NULL,
        message TEXT NOT NULL, data TEXT
    );
    CREATE INDEX events_run_time ON events(run_id, time);
    """)


def m002_queue(db: Any) -> None:
    db.executescript("""
    ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN stall_notified_at REAL;
    CREATE TABLE workers (
        id TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT, status TEXT NOT NULL,
        started_at REAL NOT NULL, heartbeat_at REAL NOT NULL, log_path TEXT
    );
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT);
    """)


def m003_stage_names(db: Any) -> None:
    """Stages named for what they write: `reward` (which wrote scores.jsonl) is `score`. The
    run folders' artifacts are renamed by the engine when it opens a run
    (`paths.upgrade_run_folder`)."""
    old, new = "reward", "score"   # frozen here: a migration never changes once released
    db.execute("UPDATE stages SET stage = ? WHERE stage = ?", [new, old])
    db.execute("UPDATE metrics SET stage = ? WHERE stage = ?", [new, old])
    for row in list(db.query("SELECT run_id, iteration, summary FROM iterations "
                             "WHERE summary IS NOT NULL")):
        try:
            summary = json.loads(row["summary"])
        except ValueError:  # not ours to repair: left as it is
            continue
        if isinstance(summary, dict) and old in summary:
            summary = {new if k == old else k: v for k, v in summary.items()}
            db.execute("UPDATE iterations SET summary = ? WHERE run_id = ? AND iteration = ?",
                       [json.dumps(summary), row["run_id"], row["iteration"]])


def m004_executors(db: Any) -> None:
    """Where a job runs: `local` (the worker) or `slurm` (one sbatch job), and what Slurm last
    said of it: its job id, state, pending reason, node, elapsed time, and the sbatch options
    (JSON) a retry submits again."""
    db.executescript("""
    ALTER TABLE jobs ADD COLUMN executor TEXT NOT NULL DEFAULT 'local';
    ALTER TABLE jobs ADD COLUMN slurm_id TEXT;
    ALTER TABLE jobs ADD COLUMN slurm_state TEXT;
    ALTER TABLE jobs ADD COLUMN slurm_reason TEXT;
    ALTER TABLE jobs ADD COLUMN node TEXT;
    ALTER TABLE jobs ADD COLUMN elapsed_s REAL;
    ALTER TABLE jobs ADD COLUMN slurm_options TEXT;
    ALTER TABLE jobs ADD COLUMN polled_at REAL;
    CREATE INDEX jobs_executor_status ON jobs(executor, status);
    """)


MIGRATIONS = (m001_initial, m002_queue, m003_stage_names, m004_executors)


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    """The names of the migrations applied to a database, in order (plain SQL)."""
    cur = conn.cursor()
    cur.row_factory = None  # plain tuples, whatever the connection's row factory
    exists = cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                         "name = '_sqlite_migrations'").fetchone()
    if not exists:
        return []
    return [r[0] for r in cur.execute("SELECT name FROM _sqlite_migrations WHERE "
                                      "migration_set = ? ORDER BY rowid", [MIGRATION_SET])]


def migrate(conn: sqlite3.Connection, where: str) -> None:
    """Refuse a newer schema; apply the pending migrations. Two processes opening an old store
    at once: the second waits for the first's write lock, then finds nothing left to do."""
    if _up_to_date(conn, where):
        return
    conn.execute("BEGIN IMMEDIATE")  # (autocommit connection: the migrations nest inside)
    try:
        if not _up_to_date(conn, where):
            from sqlite_utils import Database, Migrations

            migrations = Migrations(MIGRATION_SET)
            for fn in MIGRATIONS:
                migrations()(fn)
            migrations.apply(Database(conn))
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def refuse_migration(conn: sqlite3.Connection, where: str) -> None:
    """A store opened read-only is never migrated: one written by an older cream is refused
    (read as it is, an old schema would be misread), as is one written by a newer cream."""
    if not _up_to_date(conn, where):
        applied = applied_migrations(conn)
        raise StoreError(f"{where}: written by an older cream (schema "
                         f"{applied[-1] if applied else 'none'}) and read-only here; open it "
                         "once with write access (any cream command upgrades it), then read it")


def _up_to_date(conn: sqlite3.Connection, where: str) -> bool:
    applied = applied_migrations(conn)
    known = [m.__name__ for m in MIGRATIONS]
    unknown = [name for name in applied if name not in known]
    if unknown:
        raise StoreError(f"{where}: written by a newer cream (schema {unknown[-1]}); "
                         "upgrade cream to read it")
    return len(applied) == len(known)
