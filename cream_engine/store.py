"""The SQLite store: the one place the engine writes and the dashboard reads.

One `sqlite3` connection per handle in WAL mode with a busy timeout, in autocommit mode (each
statement commits unless inside `atomic()` / `immediate()`), so one engine, one worker and
several dashboards share the file. The schema and its migrations are in `schema.py`; a store
written by a newer `cream` is refused with a clear message instead of being misread.

A home this process may not write (mounted read-only, another user's) is opened read-only for
readers: `mode=ro` (a WAL store, as long as its -wal and -shm exist or can be made), else
`immutable=1` (refused if a -wal holds changes it would not see); never migrated, and a write
through it is refused with one line.

Light layer: standard library (+ sqlite-utils when the schema moves).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sqlite3
import time
from errno import EDQUOT, ENOSPC
from pathlib import Path
from typing import Any, Iterable, Iterator

from cream_engine import lookup, paths
from cream_engine.errors import DiskError, StoreError, disk_error
from cream_engine.schema import migrate, refuse_migration

BUSY_TIMEOUT_S = 30.0
RUN_STATUSES = ("queued", "running", "done", "failed", "cancelled")
RUN_ENDED = ("done", "failed", "cancelled")


def _dict_row(cursor: sqlite3.Cursor, row: tuple) -> dict:
    return {d[0]: v for d, v in zip(cursor.description, row)}


class Store:
    """A handle on `<home>/cream.db`. Writes go through `execute`, reads through `query`."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None, *,
                 read_only: str | None = None, immutable: bool = False):
        self.conn = conn
        self.path = path
        self.read_only = read_only      # why this process may only read the home, or None
        self.immutable = immutable      # opened with immutable=1: sees no later change
        self.full: DiskError | None = None  # read-only because the disk was full
        self._savepoints = itertools.count()

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, home: Path, create: bool = True, *,
             write: bool | None = None) -> Store | None:
        """Open (and migrate) the store of a data home. With `create=False` a home without a
        database gives None: read-only commands show an empty state and write nothing.

        `write` (default: `create`) says the caller will write: on a home this process may not
        write it is refused with `ReadOnlyHome` (exit 2) before anything is touched; a reader
        gets the store opened read-only, with `read_only` saying why (so too on a full disk,
        where SQLite cannot make the room its -shm file needs to open the store for writing)."""
        path = paths.db_path(home)
        why = paths.read_only_reason(home)
        if why is not None and (create if write is None else write):
            raise paths.read_only_home(home, why)
        if not path.exists():
            if not create:
                return None
            paths.make_home(home)  # (SQLite would make it 0644; -wal and -shm copy its mode)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o666))
        if why is not None:
            return cls._setup_read_only(path, why)
        try:
            return cls._setup(str(path), path)
        except DiskError as e:  # a full disk: a reader may still read what is there
            if (create if write is None else write) or e.errno not in (ENOSPC, EDQUOT):
                raise
            try:
                store = cls._setup_read_only(path, os.strerror(e.errno).lower())
            except (StoreError, DiskError):
                raise e from None
            store.full = e  # (a write through it says so, as the writers do)
            return store

    @classmethod
    def memory(cls) -> "Store":
        return cls._setup(":memory:", None)

    @staticmethod
    def _connect(target: str, uri: bool = False) -> sqlite3.Connection:
        conn = sqlite3.connect(target, timeout=BUSY_TIMEOUT_S, check_same_thread=False,
                               isolation_level=None, uri=uri)
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        return conn

    @classmethod
    def _setup(cls, target: str, path: Path | None) -> "Store":
        where = str(path or ":memory:")
        try:
            conn = cls._connect(target)
            if path is not None:
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn, where)
        except sqlite3.DatabaseError as e:
            raise _cannot_use(e, path) from e
        conn.row_factory = _dict_row
        return cls(conn, path)

    @classmethod
    def _setup_read_only(cls, path: Path, why: str) -> Store:
        wal = path.with_name(path.name + "-wal")
        try:
            try:
                conn = cls._connect(path.as_uri() + "?mode=ro", uri=True)
                refuse_migration(conn, str(path))  # (the first read: opens the file)
                immutable = False
            except sqlite3.OperationalError:  # no -wal/-shm, and none can be made
                if wal.exists() and wal.stat().st_size > 0:
                    raise StoreError(f"{wal}: holds changes not yet in the store, which cannot "
                                     "be read where the home is read-only; open the home once "
                                     "with write access") from None
                conn = cls._connect(path.as_uri() + "?immutable=1", uri=True)
                refuse_migration(conn, str(path))
                immutable = True
        except sqlite3.DatabaseError as e:
            raise _cannot_use(e, path) from e
        conn.row_factory = _dict_row
        return cls(conn, path, read_only=why, immutable=immutable)

    def close(self) -> None:
        self.conn.close()

    @property
    def home(self) -> Path | None:
        return self.path.parent if self.path is not None else None

    def run_path(self, run: dict) -> Path:
        """A run's folder: `<home>/<run-id>` (a home may have moved since the run was made);
        for an in-memory store, the folder recorded with the run."""
        home = self.home
        return paths.run_dir(home, run["id"]) if home is not None else Path(run["run_dir"])

    # -- SQL -----------------------------------------------------------------------------

    def query(self, sql: str, params: Iterable[Any] | dict | None = None) -> list[dict]:
        return self.conn.execute(sql, params if params is not None else ()).fetchall()

    def execute(self, sql: str, params: Iterable[Any] | dict | None = None) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, params if params is not None else ())
        except sqlite3.OperationalError as e:
            raise self._refused(e)

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        with self.atomic():
            try:
                self.conn.executemany(sql, rows)
            except sqlite3.OperationalError as e:
                raise self._refused(e)

    def _refused(self, e: sqlite3.OperationalError) -> Exception:
        """A write to a store opened read-only: one line naming the home (else `e` as is)."""
        if self.read_only is None or self.home is None or "readonly" not in str(e):
            return e
        return self.full or paths.read_only_home(self.home, self.read_only)

    @contextlib.contextmanager
    def atomic(self) -> Iterator["Store"]:
        """A transaction (a savepoint when one is already open)."""
        if not self.conn.in_transaction:
            with self._transaction("BEGIN"):
                yield self
            return
        name = f"cream_{next(self._savepoints)}"
        self.conn.execute(f"SAVEPOINT {name}")
        try:
            yield self
        except BaseException:
            if self.conn.in_transaction:  # (SQLite may have rolled back already: disk full…)
                self.conn.execute(f"ROLLBACK TO {name}")
                self.conn.execute(f"RELEASE {name}")
            raise
        self.conn.execute(f"RELEASE {name}")

    def immediate(self) -> contextlib.AbstractContextManager["Store"]:
        """A write transaction taken up front (BEGIN IMMEDIATE): what a claim reads cannot
        change before it writes, so two processes never claim the same job. Never nested."""
        if self.conn.in_transaction:
            raise RuntimeError("Store.immediate() inside an open transaction")
        return self._transaction("BEGIN IMMEDIATE")

    @contextlib.contextmanager
    def _transaction(self, begin: str) -> Iterator["Store"]:
        self.conn.execute(begin)
        try:
            yield self
        except BaseException:
            if self.conn.in_transaction:  # the error, not a failed rollback, goes up
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- settings ------------------------------------------------------------------------

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        rows = self.query("SELECT value FROM settings WHERE key = ?", [key])
        return rows[0]["value"] if rows else default

    def set_setting(self, key: str, value: str | None) -> None:
        self.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) "
                     "DO UPDATE SET value = excluded.value", [key, value])

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
        ended = now if status in RUN_ENDED else None
        self.execute(
            "UPDATE runs SET status = ?, error = ?, "
            "started_at = COALESCE(started_at, ?), ended_at = ? WHERE id = ?",
            [status, error, started, ended, run_id])

    def get_run(self, run_id: str) -> dict | None:
        rows = self.query("SELECT * FROM runs WHERE id = ?", [run_id])
        return rows[0] if rows else None

    def find_run(self, ref: str) -> dict | None:
        """A run by id, by name (the newest of that name), or by a prefix of either that
        matches one run (`lookup.py`); None when none matches, `AmbiguousRun` (exit 2, the
        line lists them) when several do."""
        return lookup.find_run(self, ref)

    def require_run(self, ref: str) -> dict:
        """`find_run`, or `RunNotFound` (one line, exit 2)."""
        return lookup.require_run(self, ref)

    def list_runs(self) -> list[dict]:
        return self.query("SELECT * FROM runs ORDER BY created_at DESC")

    def newest_run_with_config(self, name: str, config_hash: str) -> dict | None:
        rows = self.query("SELECT * FROM runs WHERE name = ? AND config_hash = ? "
                          "ORDER BY created_at DESC LIMIT 1", [name, config_hash])
        return rows[0] if rows else None

    # -- iterations and stages -----------------------------------------------------------

    def stage_status(self, run_id: str, iteration: int, stage: str) -> str | None:
        rows = self.query("SELECT status FROM stages WHERE run_id = ? AND iteration = ? "
                          "AND stage = ?", [run_id, iteration, stage])
        return rows[0]["status"] if rows else None

    def start_stage(self, run_id: str, iteration: int, stage: str,
                    total_items: int | None = None) -> None:
        """Mark a stage running; a restarted stage drops the metrics its last attempt wrote."""
        with self.atomic():
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

    # -- metrics -------------------------------------------------------------------------

    def log_metrics(self, run_id: str, iteration: int, stage: str, step: int,
                    values: dict[str, float], at: float | None = None) -> None:
        at = time.time() if at is None else at
        self.executemany(
            "INSERT INTO metrics (run_id, iteration, stage, step, name, value, time) "
            "VALUES (?,?,?,?,?,?,?)",
            [(run_id, iteration, stage, step, k, None if v is None else float(v), at)
             for k, v in values.items()])

    def metric_series(self, run_id: str, name: str) -> list[dict]:
        return self.query("SELECT iteration, step, value, time FROM metrics WHERE run_id = ? "
                          "AND name = ? ORDER BY iteration, step", [run_id, name])

    def latest_metrics(self, run_id: str) -> dict[str, float]:
        rows = self.query(
            "SELECT name, value FROM metrics WHERE id IN (SELECT MAX(id) FROM metrics "
            "WHERE run_id = ? GROUP BY name)", [run_id])
        return {r["name"]: r["value"] for r in rows}

    def metric_rows(self, run_id: str) -> list[dict]:
        """Every metric row of a run, in the order written within each iteration."""
        return self.query("SELECT run_id, iteration, stage, step, name, value, time FROM "
                          "metrics WHERE run_id = ? ORDER BY iteration, id", [run_id])

    def last_metric_id(self) -> int:
        return self.query("SELECT MAX(id) AS m FROM metrics")[0]["m"] or 0

    def metric_points(self, run_id: str, names: tuple[str, ...], after_id: int,
                      upto_id: int) -> list[dict]:
        """(iteration, step, name, value) of some metrics of a run with after_id < id <= upto_id.
        A first read (after_id < 0) goes through the (run_id, name, …) index; later ones take
        the rowid range, cheap however big the table."""
        marks = ",".join("?" * len(names))
        if after_id < 0:
            return self.query(
                f"SELECT iteration, step, name, value FROM metrics WHERE run_id = ? AND "
                f"name IN ({marks}) AND id <= ?", [run_id, *names, upto_id])
        # `+run_id`: keep SQLite on the rowid range instead of the run's whole index
        return self.query(
            f"SELECT iteration, step, name, value FROM metrics WHERE id > ? AND id <= ? "
            f"AND +run_id = ? AND name IN ({marks})", [after_id, upto_id, run_id, *names])

    # -- events --------------------------------------------------------------------------

    def add_event(self, kind: str, message: str, run_id: str | None = None,
                  data: dict | None = None) -> None:
        self.execute("INSERT INTO events (time, run_id, kind, message, data) VALUES (?,?,?,?,?)",
                     [time.time(), run_id, kind, message, json.dumps(data) if data else None])

    def events(self, run_id: str | None = None, limit: int = 100) -> list[dict]:
        if run_id is None:
            return self.query("SELECT * FROM events ORDER BY id DESC LIMIT ?", [limit])
        return self.query("SELECT * FROM events WHERE run_id = ? ORDER BY id DESC LIMIT ?",
                          [run_id, limit])

    # -- GPU samples ---------------------------------------------------------------------

    def add_gpu_samples(self, samples: Iterable[dict]) -> None:
        self.executemany(
            "INSERT INTO gpu_samples (time, gpu_index, uuid, name, utilization, "
            "memory_used_mb, memory_total_mb, temperature_c, power_w, processes) "
            "VALUES (?,?,?,?,?,?,?,?,?,?)",
            [(s["time"], s["gpu_index"], s["uuid"], s.get("name"), s.get("utilization"),
              s.get("memory_used_mb"), s.get("memory_total_mb"), s.get("temperature_c"),
              s.get("power_w"), json.dumps(s.get("processes") or [])) for s in samples])

    def prune_gpu_samples(self, keep_seconds: float) -> int:
        """Retention: drop samples older than `keep_seconds`; returns how many went."""
        cur = self.execute("DELETE FROM gpu_samples WHERE time < ?",
                           [time.time() - keep_seconds])
        return cur.rowcount

    def last_gpu_sample_id(self) -> int:
        return self.query("SELECT MAX(id) AS m FROM gpu_samples")[0]["m"] or 0

    def gpu_samples(self, after_id: int, upto_id: int, history_s: float) -> list[dict]:
        """GPU samples with after_id < id <= upto_id, in order; a first read (after_id < 0)
        takes the last `history_s` seconds before the newest sample."""
        cols = ("id, time, gpu_index, uuid, name, utilization, memory_used_mb, memory_total_mb, "
                "temperature_c, power_w, processes")
        if after_id < 0:
            return self.query(f"SELECT {cols} FROM gpu_samples WHERE time >= "
                              "(SELECT MAX(time) FROM gpu_samples) - ? AND id <= ? ORDER BY id",
                              [history_s, upto_id])
        return self.query(f"SELECT {cols} FROM gpu_samples WHERE id > ? AND id <= ? "
                          "ORDER BY id", [after_id, upto_id])


def open_store(home: str | Path | None = None, create: bool = True, *,
               write: bool | None = None) -> Store | None:
    return Store.open(paths.data_home(home), create=create, write=write)


def _cannot_use(e: sqlite3.DatabaseError, path: Path | None) -> Exception:
    """Why a store cannot be opened: the file system (a full disk…), else the database."""
    found = disk_error(e, path.parent if path is not None else None)
    return found or StoreError(f"{path or ':memory:'}: cannot use the store ({e})")
