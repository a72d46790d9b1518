"""The SQLite store: the one place the engine writes and the dashboard reads.

sqlite-utils over a connection in WAL mode with a busy timeout, so one engine, one worker and
several dashboards share the file. The schema is versioned with sqlite-utils migrations; a
database that has applied a migration this code does not know was written by a newer `cream`
and is refused with a clear message instead of being misread.

Light layer: standard library + sqlite-utils only.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from sqlite_utils import Database, Migrations

from cream_engine import paths

BUSY_TIMEOUT_S = 30.0
RUN_STATUSES = ("queued", "running", "done", "failed", "cancelled")

migrations = Migrations("cream")


@migrations()
def m001_initial(db: Database) -> None:
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


@migrations()
def m002_queue(db: Database) -> None:
    db.executescript("""
    ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN stall_notified_at REAL;
    CREATE TABLE workers (
        id TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT, status TEXT NOT NULL,
        started_at REAL NOT NULL, heartbeat_at REAL NOT NULL, log_path TEXT
    );
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT);
    """)


class StoreError(RuntimeError):
    """The store cannot be used (newer schema, not a database, locked for too long)."""


class Store:
    """A handle on `<home>/cream.db`. Writes go through `execute`, reads through `query`."""

    def __init__(self, db: Database, path: Path | None):
        self.db = db
        self.path = path

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, home: Path, create: bool = True) -> "Store | None":
        """Open (and migrate) the store of a data home. With `create=False` a home without a
        database gives None: read-only commands show an empty state and write nothing."""
        path = paths.db_path(home)
        if not path.exists():
            if not create:
                return None
            home.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        return cls._setup(Database(conn), path)

    @classmethod
    def memory(cls) -> "Store":
        return cls._setup(Database(memory=True), None)

    @classmethod
    def _setup(cls, db: Database, path: Path | None) -> "Store":
        try:
            db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if path is not None:
                db.enable_wal()
            db.execute("PRAGMA foreign_keys = ON")
            _refuse_newer_schema(db, path)
            migrations.apply(db)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{path or ':memory:'}: cannot use the store ({e})") from None
        return cls(db, path)

    def close(self) -> None:
        self.db.close()

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        rows = self.query("SELECT value FROM settings WHERE key = ?", [key])
        return rows[0]["value"] if rows else default

    def set_setting(self, key: str, value: str | None) -> None:
        self.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) "
                     "DO UPDATE SET value = excluded.value", [key, value])

    @contextlib.contextmanager
    def immediate(self) -> Iterator["Store"]:
        """A write transaction taken up front (BEGIN IMMEDIATE): what a claim reads cannot
        change before it writes, so two processes never claim the same job."""
        self.db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.db.conn.execute("ROLLBACK")
            raise
        self.db.conn.execute("COMMIT")

    def query(self, sql: str, params: Iterable[Any] | dict | None = None) -> list[dict]:
        return list(self.db.query(sql, params))

    def execute(self, sql: str, params: Iterable[Any] | dict | None = None) -> sqlite3.Cursor:
        return self.db.execute(sql, params)

    # -- runs ----------------------------------------------------------------------------

    def create_run(self, run_id: str, *, name: str, method: str, model: str, iterations: int,
                   run_dir: str, config_toml: str, config_hash: str | None = None,
                   git_commit: str | None = None, status: str = "queued") -> None:
        self.execute(
            "INSERT INTO runs (id, name, method, model, status, iterations, run_dir, "
            "config_toml, config_hash, git_commit, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [run_id, name, method, model, status, iterations, run_dir, config_toml,
             config_hash, git_commit, time.time()])

    def set_run_status(self, run_id: str, status: str, error: str | None = None) -> None:
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        now = time.time()
        started = now if status == "running" else None
        ended = now if status in ("done", "failed", "cancelled") else None
        self.execute(
            "UPDATE runs SET status = ?, error = ?, "
            "started_at = COALESCE(started_at, ?), ended_at = ? WHERE id = ?",
            [status, error, started, ended, run_id])

    def get_run(self, run_id: str) -> dict | None:
        rows = self.query("SELECT * FROM runs WHERE id = ?", [run_id])
        return rows[0] if rows else None

    def find_run(self, ref: str) -> dict | None:
        """A run by id, by a unique id prefix, or by name (the newest run of that name)."""
        run = self.get_run(ref)
        if run:
            return run
        by_prefix = self.query("SELECT * FROM runs WHERE substr(id, 1, ?) = ?", [len(ref), ref])
        if len(by_prefix) == 1:
            return by_prefix[0]
        by_name = self.query("SELECT * FROM runs WHERE name = ? ORDER BY created_at DESC "
                             "LIMIT 1", [ref])
        return by_name[0] if by_name else None

    def list_runs(self) -> list[dict]:
        return self.query("SELECT * FROM runs ORDER BY created_at DESC")

    # -- iterations and stages -----------------------------------------------------------

    def stage_status(self, run_id: str, iteration: int, stage: str) -> str | None:
        rows = self.query("SELECT status FROM stages WHERE run_id = ? AND iteration = ? "
                          "AND stage = ?", [run_id, iteration, stage])
        return rows[0]["status"] if rows else None

    def start_stage(self, run_id: str, iteration: int, stage: str,
                    total_items: int | None = None) -> None:
        """Mark a stage running; a restarted stage drops the metrics its last attempt wrote."""
        with self.db.atomic():
            self.execute("DELETE FROM metrics WHERE run_id = ? AND iteration = ? AND stage = ?",
                         [run_id, iteration, stage])
            self.execute(
                "INSERT OR REPLACE INTO stages (run_id, iteration, stage, status, done_items, "
                "total_items, started_at) VALUES (?,?,?,?,?,?,?)",
                [run_id, iteration, stage, "running", 0, total_items, time.time()])

    def stage_progress(self, run_id: str, iteration: int, stage: str, done: int,
                       total: int | None = None) -> None:
        self.execute("UPDATE stages SET done_items = ?, total_items = COALESCE(?, total_items) "
                     "WHERE run_id = ? AND iteration = ? AND stage = ?",
                     [done, total, run_id, iteration, stage])

    def finish_stage(self, run_id: str, iteration: int, stage: str, status: str = "done",
                     info: dict | None = None) -> None:
        self.execute("UPDATE stages SET status = ?, ended_at = ?, info = ?, "
                     "done_items = CASE WHEN ? = 'done' THEN total_items ELSE done_items END "
                     "WHERE run_id = ? AND iteration = ? AND stage = ?",
                     [status, time.time(), json.dumps(info) if info else None, status,
                      run_id, iteration, stage])

    def upsert_iteration(self, run_id: str, iteration: int, **fields: Any) -> None:
        """Insert or update one iteration's row; only the given columns change on update."""
        given = {k: json.dumps(v) if isinstance(v, (dict, list)) else v
                 for k, v in fields.items()}
        updates = ", ".join(f"{k} = excluded.{k}" for k in given) or "status = status"
        row = {"status": "running", **given}
        self.execute(
            f"INSERT INTO iterations (run_id, iteration, {', '.join(row)}) VALUES "
            f"(?, ?, {', '.join('?' * len(row))}) ON CONFLICT (run_id, iteration) "
            f"DO UPDATE SET {updates}", [run_id, iteration, *row.values()])

    def iterations(self, run_id: str) -> list[dict]:
        return self.query("SELECT * FROM iterations WHERE run_id = ? ORDER BY iteration",
                          [run_id])

    def stages(self, run_id: str) -> list[dict]:
        return self.query("SELECT * FROM stages WHERE run_id = ? ORDER BY iteration, started_at",
                          [run_id])

    # -- metrics, events, GPU samples ----------------------------------------------------

    def log_metrics(self, run_id: str, iteration: int, stage: str, step: int,
                    values: dict[str, float], at: float | None = None) -> None:
        at = time.time() if at is None else at
        rows = [(run_id, iteration, stage, step, k, None if v is None else float(v), at)
                for k, v in values.items()]
        with self.db.atomic():
            self.db.conn.executemany(
                "INSERT INTO metrics (run_id, iteration, stage, step, name, value, time) "
                "VALUES (?,?,?,?,?,?,?)", rows)

    def metric_series(self, run_id: str, name: str) -> list[dict]:
        return self.query("SELECT iteration, step, value, time FROM metrics WHERE run_id = ? "
                          "AND name = ? ORDER BY iteration, step", [run_id, name])

    def latest_metrics(self, run_id: str) -> dict[str, float]:
        rows = self.query(
            "SELECT name, value FROM metrics WHERE id IN (SELECT MAX(id) FROM metrics "
            "WHERE run_id = ? GROUP BY name)", [run_id])
        return {r["name"]: r["value"] for r in rows}

    def add_event(self, kind: str, message: str, run_id: str | None = None,
                  data: dict | None = None) -> None:
        self.execute("INSERT INTO events (time, run_id, kind, message, data) VALUES (?,?,?,?,?)",
                     [time.time(), run_id, kind, message, json.dumps(data) if data else None])

    def events(self, run_id: str | None = None, limit: int = 100) -> list[dict]:
        if run_id is None:
            return self.query("SELECT * FROM events ORDER BY id DESC LIMIT ?", [limit])
        return self.query("SELECT * FROM events WHERE run_id = ? ORDER BY id DESC LIMIT ?",
                          [run_id, limit])

    def add_gpu_samples(self, samples: Iterator[dict] | list[dict]) -> None:
        rows = [(s["time"], s["gpu_index"], s["uuid"], s.get("name"), s.get("utilization"),
                 s.get("memory_used_mb"), s.get("memory_total_mb"), s.get("temperature_c"),
                 s.get("power_w"), json.dumps(s.get("processes") or []))
                for s in samples]
        with self.db.atomic():
            self.db.conn.executemany(
                "INSERT INTO gpu_samples (time, gpu_index, uuid, name, utilization, "
                "memory_used_mb, memory_total_mb, temperature_c, power_w, processes) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)", rows)

    def prune_gpu_samples(self, keep_seconds: float) -> int:
        """Retention: drop samples older than `keep_seconds`; returns how many went."""
        cur = self.execute("DELETE FROM gpu_samples WHERE time < ?",
                           [time.time() - keep_seconds])
        return cur.rowcount


def _refuse_newer_schema(db: Database, path: Path | None) -> None:
    known = {m.name for m in migrations._migrations}
    applied = {m.name for m in migrations.applied(db)}
    unknown = sorted(applied - known)
    if unknown:
        raise StoreError(f"{path}: written by a newer cream (schema {unknown[-1]}); "
                         "upgrade cream to read it")


def open_store(home: str | Path | None = None, create: bool = True) -> Store | None:
    return Store.open(paths.data_home(home), create=create)
