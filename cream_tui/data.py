"""The dashboard's read-only view of the store: what each screen shows, as frozen values.

`DataSource` is used from the app's polling thread only (one connection, reads only); the
screens compare a new value with the one they show and redraw only when it changed. Queue
actions go through `cream_tui.actions`, on their own connection. Time comes from an injectable
clock, so elapsed and ETA are stable in snapshot tests.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from cream_engine import paths
from cream_engine.store import Store, StoreError
from cream_tui.gpu_history import GpuHistory, GpuState
from cream_tui.series import Point, RunSeries

# the pipeline's order; iteration 0 starts with `baseline` (M0's evaluation), and a run with
# evaluation off has no `evaluate`
STAGES = ("generate", "reward", "consistency", "pairs", "train", "evaluate")
LOSS, MARGINS, ACCURACY = "loss", "rewards/margins", "rewards/accuracies"
LOG_TAIL_BYTES = 64 * 1024
LOG_TAIL_LINES = 300
ACTIVE = ("running", "queued")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def empty_message(home: Path) -> str:
    return (f"No runs in {home} yet.\n\n"
            "Queue an experiment for the worker:\n"
            "    cream init exp.toml        # a commented config\n"
            "    cream submit exp.toml      # then: cream worker start\n"
            "or run one in the foreground:  cream run exp.toml\n\n"
            "Press s to submit a config from here, ? for help, q to quit.")


@dataclass(frozen=True)
class RunRow:
    id: str
    name: str
    method: str
    model: str
    status: str
    iteration: int               # iterations finished (as `cream status` counts them)
    iterations: int
    stage: str | None
    stage_status: str | None
    stage_done: int | None
    stage_total: int | None
    gpus: str
    elapsed: float | None
    eta: float | None
    priority: int | None
    error: str | None
    run_dir: str


@dataclass(frozen=True)
class HomeData:
    problem: str | None          # the empty state or an error, shown instead of the table
    runs: tuple[RunRow, ...] = ()
    drained: bool = False
    gpus: GpuState = field(default_factory=GpuState)


@dataclass(frozen=True)
class IterRow:
    iteration: int
    status: str
    n_pairs: int | None
    mean_tau: float | None
    mean_consistency: float | None
    agreement: float | None
    evaluation: tuple[tuple[str, float], ...]   # numeric leaves of summary["evaluate"]
    mean_response_length: float | None


@dataclass(frozen=True)
class StageRow:
    stage: str
    status: str                  # pending, running, done, failed, cancelled
    done: int | None
    total: int | None
    seconds: float | None


@dataclass(frozen=True)
class RunData:
    problem: str | None
    run: RunRow | None = None
    iterations: tuple[IterRow, ...] = ()
    stage_iteration: int | None = None
    stages: tuple[StageRow, ...] = ()
    loss: tuple[Point, ...] = ()
    margins: tuple[Point, ...] = ()
    accuracy: tuple[Point, ...] = ()
    boundaries: tuple[tuple[float, int], ...] = ()   # (x, iteration that starts there)
    last: tuple[int, int, float | None] | None = None  # newest loss: (iteration, step, value)
    log_path: str = ""
    log_lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompareData:
    problem: str | None
    labels: tuple[str, ...] = ()
    diff: tuple[tuple[str, tuple[str, ...]], ...] = ()     # (key, value per run)
    tau: tuple[tuple[str, tuple[Point, ...]], ...] = ()     # (label, (iteration, τ))
    # every evaluation metric the runs have, headline first: (key, (label, (model k, value)))
    evaluations: tuple[tuple[str, tuple[tuple[str, tuple[Point, ...]], ...]], ...] = ()

    @property
    def eval_key(self) -> str | None:
        """The headline evaluation metric."""
        return self.evaluations[0][0] if self.evaluations else None

    @property
    def evaluation(self) -> tuple[tuple[str, tuple[Point, ...]], ...]:
        """The headline metric's lines: (label, (model k, value))."""
        return self.evaluations[0][1] if self.evaluations else ()


# what an evaluation is summed up by, best first: accuracy, then the win rate, then the score
HEADLINE = ("gen_acc", "ll_acc", "win_rate", "judge_score")


def evaluation_of(summary: str | None, stage: str = "evaluate") -> tuple[tuple[str, float], ...]:
    """The numeric leaves of an iteration summary's evaluation (`evaluate`: of M_t+1;
    `baseline`: of M0, in iteration 0) as flattened `a.b` keys, sorted; () if none."""
    try:
        data = json.loads(summary) if summary else {}
        ev = data.get(stage) if isinstance(data, dict) else None
        if isinstance(ev, str):
            ev = json.loads(ev)
    except ValueError:
        return ()
    return evaluation_leaves(ev if isinstance(ev, dict) else {})


def evaluation_leaves(ev: dict) -> tuple[tuple[str, float], ...]:
    """The numeric leaves of one evaluation info as flattened `a.b` keys, sorted."""
    out: dict[str, float] = {}
    _flatten(ev, "", out, numeric=True)
    # how long it took is not a score
    return tuple(sorted((k, v) for k, v in out.items() if not k.startswith("seconds")))


def headline(evaluation: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
    """The evaluation's headline numbers with short names, e.g. (("mc", .27), ("win", .31)):
    each set's generative accuracy (else log-likelihood accuracy), the win rate, the score."""
    ev = dict(evaluation)
    out: list[tuple[str, float]] = []
    sets = sorted({k.split(".")[1] for k in ev if k.startswith("sets.") and k.count(".") == 2})
    for name in sets:
        key = next((f"sets.{name}.{m}" for m in HEADLINE[:2] if f"sets.{name}.{m}" in ev), None)
        if key:
            out.append((name, ev[key]))
    if "win.win_rate" in ev:
        out.append(("win", ev["win.win_rate"]))
    if "judge_score" in ev:
        out.append(("score", ev["judge_score"]))
    return tuple(out) or evaluation


def headline_key(keys: list[str]) -> str | None:
    """The one evaluation number a chart follows: the first set's accuracy, else the win rate,
    else the judge's score, else the first number there is."""
    for metric in HEADLINE:
        key = next((k for k in keys if k.endswith(metric)), None)
        if key:
            return key
    return keys[0] if keys else None


def _flatten(d: dict, prefix: str, out: dict, numeric: bool = False) -> None:
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            _flatten(v, f"{key}.", out, numeric)
        elif not numeric:
            out[key] = v
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[key] = float(v)


class DataSource:
    """Reads the store of `home` for the screens; opens it lazily and keeps it open."""

    def __init__(self, home: Path, gpu_reader: Callable[[], Any]):
        self.home = home
        self.store: Store | None = None
        self.error: str | None = None       # a store we must not read (newer schema): sticky
        self.gpus = GpuHistory(gpu_reader)
        self._series: dict[str, RunSeries] = {}
        self._charts: dict[str, tuple[Any, tuple]] = {}
        self._logs: dict[str, tuple[Any, tuple[str, ...]]] = {}

    def open(self) -> tuple[Store | None, str | None]:
        """(store, None), or (None, why): the empty-state text or a clear error."""
        if self.store is None and self.error is None:
            try:
                self.store = Store.open(self.home, create=False)
            except StoreError as e:
                self.error = f"Cannot read the store.\n\n{e}"
        if self.error:
            return None, self.error
        if self.store is None:
            return None, empty_message(self.home)
        return self.store, None

    def reset(self) -> None:
        """Drop the connection after a read error; the next poll opens it again."""
        if self.store is not None:
            try:
                self.store.close()
            except sqlite3.Error:
                pass
        self.store = None

    def close(self) -> None:
        self.reset()

    # -- home ----------------------------------------------------------------------------

    def home_data(self, now: float) -> HomeData:
        store, problem = self.open()
        if store is None:
            return HomeData(problem, gpus=self.gpus.state(None, now, {}, {}))
        self.gpus.fetch(store)                 # first: the runs' GPU column needs indices
        rows = self.run_rows(store, now)
        names = {r.id: r.name for r in rows}
        gpus = self.gpus.state(store, now, names, self._job_pids(store))
        if not rows:
            return HomeData(empty_message(self.home), gpus=gpus)
        drained = store.get_setting("queue.drain") == "1"
        return HomeData(None, tuple(rows), drained, gpus)

    def gpu_data(self, now: float) -> GpuState:
        store, _ = self.open()
        if store is None:
            return self.gpus.state(None, now, {}, {})
        names = {r["id"]: r["name"] for r in store.query("SELECT id, name FROM runs")}
        return self.gpus.state(store, now, names, self._job_pids(store))

    @staticmethod
    def _job_pids(store: Store) -> dict[int, str]:
        return {r["pid"]: r["run_id"] for r in store.query(
            "SELECT pid, run_id FROM jobs WHERE status = 'running' AND pid IS NOT NULL")}

    def run_rows(self, store: Store, now: float, run_id: str | None = None) -> list[RunRow]:
        where, args = ("WHERE id = ?", [run_id]) if run_id else ("", [])
        runs = store.query("SELECT id, name, method, model, status, iterations, run_dir, error, "
                           f"created_at, started_at, ended_at FROM runs {where}", args)
        jwhere = "WHERE run_id = ?" if run_id else ""
        jobs = {j["run_id"]: j for j in store.query(
            "SELECT * FROM jobs WHERE id IN (SELECT MAX(id) FROM jobs "
            f"{jwhere} GROUP BY run_id)", args)}
        stages: dict[str, list[dict]] = {}
        for s in store.query(
                "SELECT run_id, iteration, stage, status, done_items, total_items, started_at "
                "FROM stages WHERE run_id IN (SELECT id FROM runs WHERE status != 'done' "
                f"{'AND id = ?' if run_id else ''}) ORDER BY iteration, started_at", args):
            stages.setdefault(s["run_id"], []).append(s)
        iters = {r["run_id"]: r for r in store.query(
            "SELECT run_id, MAX(iteration) AS last, SUM(status = 'done') AS done "
            f"FROM iterations {jwhere} GROUP BY run_id", args)}
        index = {r["uuid"]: r["gpu_index"] for r in self.gpus.latest.values()}
        rows = [_run_row(r, jobs.get(r["id"]), stages.get(r["id"], []), iters.get(r["id"]),
                         index, now) for r in runs]
        created = {r["id"]: r["created_at"] for r in runs}
        rows.sort(key=lambda r: (ACTIVE.index(r.status) if r.status in ACTIVE else 2,
                                 -(r.priority or 0) if r.status == "queued" else 0,
                                 -created[r.id]))
        return rows

    # -- one run -------------------------------------------------------------------------

    def run_data(self, ref: str, now: float, buckets: int) -> RunData:
        store, problem = self.open()
        if store is None:
            return RunData(problem)
        found = store.find_run(ref)
        if found is None:
            return RunData(f"Run {ref!r}: no such run in {self.home}.")
        run_id = found["id"]
        row = self.run_rows(store, now, run_id)[0]
        iterations = tuple(
            IterRow(i["iteration"], i["status"], i["n_pairs"], i["mean_tau"],
                    i["mean_consistency"], i["agreement"], evaluation_of(i["summary"]),
                    i["mean_response_length"]) for i in store.iterations(run_id))
        all_stages = store.stages(run_id)
        stage_iteration = max((s["iteration"] for s in all_stages), default=None)
        stages = _stage_rows([s for s in all_stages if s["iteration"] == stage_iteration], now)
        charts = self._chart(store, run_id, all_stages, buckets)
        log_path, log_lines = self._log_tail(Path(found["run_dir"]))
        return RunData(None, row, iterations, stage_iteration, stages, *charts,
                       log_path=log_path, log_lines=log_lines)

    def _chart(self, store: Store, run_id: str, stages: list[dict], buckets: int) -> tuple:
        cache = self._series.get(run_id)
        if cache is None:
            cache = self._series[run_id] = RunSeries(run_id, (LOSS, MARGINS, ACCURACY))
        fingerprint = tuple((s["iteration"], s["started_at"]) for s in stages
                            if s["stage"] == "train")
        cache.update(store, fingerprint)
        key = (cache.version, buckets)
        memo = self._charts.get(run_id)
        if memo is not None and memo[0] == key:
            return memo[1]
        offsets = cache.offsets()
        last = cache.last(LOSS)
        result = (cache.series(LOSS, offsets, buckets), cache.series(MARGINS, offsets, buckets),
                  cache.series(ACCURACY, offsets, buckets),
                  tuple((float(x), it) for it, x in sorted(offsets.items()) if x > 0), last)
        self._charts[run_id] = (key, result)
        return result

    def _log_tail(self, run_dir: Path) -> tuple[str, tuple[str, ...]]:
        path = paths.logs_dir(run_dir) / "job.log"
        try:
            st = path.stat()
        except OSError:
            return str(path), ()
        key = (st.st_size, st.st_mtime_ns)
        cached = self._logs.get(str(path))
        if cached and cached[0] == key:
            return str(path), cached[1]
        with open(path, "rb") as fh:
            fh.seek(max(st.st_size - LOG_TAIL_BYTES, 0))
            text = fh.read().decode("utf-8", "replace")
        lines = text.split("\n")          # not splitlines(): it would split at \r too
        if lines and lines[-1] == "":
            lines.pop()
        if st.st_size > LOG_TAIL_BYTES and lines:
            lines = lines[1:]                      # the first line was cut by the seek
        # a progress bar redraws itself with \r: keep what the terminal would show
        tail = tuple(_ANSI.sub("", _shown(line)) for line in lines[-LOG_TAIL_LINES:])
        self._logs[str(path)] = (key, tail)
        return str(path), tail

    # -- compare -------------------------------------------------------------------------

    def compare_data(self, refs: tuple[str, ...]) -> CompareData:
        store, problem = self.open()
        if store is None:
            return CompareData(problem)
        runs = [store.find_run(r) for r in refs]
        missing = [r for r, run in zip(refs, runs) if run is None]
        if missing:
            return CompareData(f"No such run: {', '.join(missing)}")
        names = [r["name"] for r in runs]
        labels = tuple(f"{r['name']} ({r['id'][-4:]})" if names.count(r["name"]) > 1
                       else r["name"] for r in runs)
        from cream_tui.compare import config_diff, parse_config, summaries

        diff = [(key, tuple("(unset)" if v is None else _show(v) for v in values))
                for key, values in config_diff([parse_config(r["config_toml"])
                                                for r in runs]).items()]
        tau, evals = [], []
        for label, r in zip(labels, runs):
            its = store.iterations(r["id"])
            tau.append((label, tuple((float(i["iteration"]), i["mean_tau"]) for i in its
                                     if i["mean_tau"] is not None)))
            # by model: M0 (the baseline, in iteration 0), then M_t+1 (evaluated in iteration t)
            per: dict[int, dict[str, float]] = {}
            for t, infos in summaries(store, r["id"]).items():
                for stage, k in (("baseline", 0), ("evaluate", t + 1)):
                    if infos.get(stage):
                        per[k] = dict(evaluation_leaves(infos[stage]))
            evals.append((label, per))
        keys = sorted({k for _, per in evals for ev in per.values() for k in ev
                       if not k.endswith(".n")})  # item counts are not results
        eval_key = headline_key(keys)
        ordered = ([eval_key] if eval_key else []) + sorted(
            (k for k in keys if k != eval_key),
            key=lambda k: (next((i for i, m in enumerate(HEADLINE) if k.endswith(m)),
                                len(HEADLINE)), k))
        evaluations = tuple((key, tuple((label, tuple((float(it), ev[key])
                                                      for it, ev in sorted(per.items())
                                                      if key in ev))
                                        for label, per in evals)) for key in ordered)
        return CompareData(None, labels, tuple(diff), tuple(tau), evaluations)


def _shown(line: str) -> str:
    """What a terminal shows of a line a progress bar redrew with carriage returns."""
    return line.rstrip("\r").rsplit("\r", 1)[-1]


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _stage_rows(rows: list[dict], now: float) -> tuple[StageRow, ...]:
    by_name = {s["stage"]: s for s in rows}
    out = []
    first = ("baseline",) if "baseline" in by_name else ()
    for name in first + STAGES + tuple(n for n in by_name if n not in STAGES + first):
        s = by_name.get(name)
        if s is None:
            out.append(StageRow(name, "pending", None, None, None))
            continue
        end = s["ended_at"] if s["ended_at"] is not None else (
            now if s["status"] == "running" else None)
        seconds = end - s["started_at"] if end is not None and s["started_at"] else None
        out.append(StageRow(name, s["status"], s["done_items"], s["total_items"], seconds))
    return tuple(out)


def _run_row(run: dict, job: dict | None, stages: list[dict], iters: dict | None,
             gpu_index: dict[str, int], now: float) -> RunRow:
    status = run["status"]
    last = stages[-1] if stages else None
    # like `cream status`: iterations finished so far
    iteration = run["iterations"] if status == "done" else int(iters["done"] or 0) if iters else 0
    start, end = run["started_at"], run["ended_at"]
    elapsed = None if start is None else max((end if end is not None else now) - start, 0.0)
    eta = None
    if status == "running" and elapsed and run["iterations"]:
        current = [s for s in stages if last and s["iteration"] == last["iteration"]]
        frac = sum(1.0 if s["status"] == "done" else
                   (s["done_items"] or 0) / s["total_items"] if s["total_items"] else 0.0
                   for s in current) / len(STAGES)
        progress = min((iteration + frac) / run["iterations"], 1.0)
        if progress > 0.001:
            eta = elapsed * (1 - progress) / progress
    return RunRow(
        id=run["id"], name=run["name"], method=run["method"], model=run["model"],
        status=status, iteration=iteration, iterations=run["iterations"],
        stage=last["stage"] if last and status != "done" else None,
        stage_status=last["status"] if last and status != "done" else None,
        stage_done=last["done_items"] if last else None,
        stage_total=last["total_items"] if last else None,
        gpus=_gpus(job, gpu_index), elapsed=elapsed, eta=eta,
        priority=job["priority"] if job else None, error=run["error"], run_dir=run["run_dir"])


def _gpus(job: dict | None, gpu_index: dict[str, int]) -> str:
    if job is None:
        return "-"
    if job["status"] == "running":
        uuids = [u for u in (job["gpu_uuids"] or "").split(",") if u]
        if not uuids:
            return "CPU"
        return ",".join(str(gpu_index.get(u, "?")) for u in uuids)
    if job["status"] == "queued":
        return "auto" if job["gpus"] < 0 else ("CPU" if job["gpus"] == 0 else f"{job['gpus']}×")
    return "-"
