"""One reader of runs, iterations, stages and evaluations, for every caller: the CLI (`status`),
the demo and the dashboard all ask here (and `compare.py` for comparisons), so they never
disagree.

Read-only over the store (and a run's log file). Evaluations live in the iteration summaries:
"baseline" (iteration 0) is M0's, "evaluate" (iteration t) is M_{t+1}'s. Anything may be
missing; a missing value is None here and "-" on screen.

Light layer: standard library + the store.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cream_engine import eta, executors, paths, queue
from cream_engine.errors import CreamError
from cream_engine.executors.slurm import where as slurm_where
from cream_engine.store import Store

Point = tuple[float, float]


# -- where a run is ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSummary:
    """A run and where it is: the iteration, the stage and its progress, its newest job."""

    id: str
    name: str
    method: str
    model: str
    status: str
    iteration: int                 # iterations finished
    iterations: int
    stage: str | None              # the newest stage of an unfinished run
    stage_iteration: int | None
    stage_status: str | None
    stage_done: int | None
    stage_total: int | None
    created_at: float
    elapsed: float | None
    eta: float | None
    job_status: str | None
    priority: int | None
    gpus: int | None               # the job's request: None = auto, 0 = the CPU
    gpu_uuids: tuple[str, ...]     # the GPUs a running job holds
    error: str | None
    run_dir: str
    job: dict | None = None        # the newest job (executor, Slurm id, state, reason, node)
    estimate: float | None = None  # a queued run: how long it should take once started
    host: str | None = None        # the box it lives on, in a dashboard over several

    @property
    def slurm(self) -> str | None:
        """Where Slurm has the job ("slurm 42 pending (Priority)", "… running on node1"),
        None for a local job."""
        return slurm_where(self.job)

    @property
    def where(self) -> str:
        """"iteration 1 train" while a stage runs, else the status."""
        if self.stage and self.stage_status == "running":
            return f"iteration {self.stage_iteration} {self.stage}"
        return self.status

    def to_json(self) -> dict[str, Any]:
        """A run as `cream status --json` prints it."""
        progress = [self.stage_done, self.stage_total] if self.stage_status == "running" \
            else None
        return {"id": self.id, "name": self.name, "method": self.method, "model": self.model,
                "status": self.status, "iteration": self.iteration,
                "iterations": self.iterations,
                "stage": self.stage if self.stage_status == "running" else None,
                "stage_progress": progress, "created_at": self.created_at,
                "elapsed_s": None if self.elapsed is None else round(self.elapsed, 1),
                "eta_s": None if self.eta is None else round(self.eta),
                "estimate_s": None if self.estimate is None else round(self.estimate),
                "error": self.error, "run_dir": self.run_dir, **self.job_json()}

    def job_json(self) -> dict[str, Any]:
        job = self.job or {}
        out = {"executor": job.get("executor") or ("local" if job else None)}
        if out["executor"] == "slurm":
            out.update({k: job.get(k) for k in ("slurm_id", "slurm_state", "slurm_reason",
                                                  "node", "elapsed_s")})
        return out


def run_summaries(store: Store, now: float | None = None,
                  run_id: str | None = None) -> list[RunSummary]:
    """Every run (or one), newest first."""
    now = time.time() if now is None else now
    where, args = ("WHERE id = ?", [run_id]) if run_id else ("", [])
    runs = store.query(f"SELECT * FROM runs {where} ORDER BY created_at DESC", args)
    jobs = queue.latest_jobs(store, run_id)
    stages: dict[str, list[dict]] = {}
    for s in store.query(
            "SELECT run_id, iteration, stage, status, done_items, total_items, started_at "
            "FROM stages WHERE run_id IN (SELECT id FROM runs WHERE status != 'done' "
            f"{'AND id = ?' if run_id else ''}) ORDER BY iteration, started_at", args):
        stages.setdefault(s["run_id"], []).append(s)
    done = {r["run_id"]: r["done"] or 0 for r in store.query(
        "SELECT run_id, SUM(status = 'done') AS done FROM iterations "
        f"{'WHERE run_id = ?' if run_id else ''} GROUP BY run_id", args)}
    left = _remaining(store, runs, now, every_run=run_id is None)
    return [_summary(store, r, jobs.get(r["id"]), stages.get(r["id"], []), done.get(r["id"], 0),
                     now, left.get(r["id"])) for r in runs]


def _remaining(store: Store, runs: list[dict], now: float,
               every_run: bool) -> dict[str, float | None]:
    """`eta.run_remaining` of each running or queued run (one read of the stage history)."""
    active = [r for r in runs if r["status"] in ("running", "queued")]
    if not active:
        return {}
    rows = eta.stage_rows_for(store, [r["id"] for r in active])
    # (the history needs every run's shape: `runs` is all of them unless one was asked for)
    everyone = runs if every_run else store.query("SELECT id, config_toml FROM runs")
    history = eta.History(everyone, rows)
    by_run: dict[str, list[dict]] = {}
    for s in rows:
        by_run.setdefault(s["run_id"], []).append(s)
    return {r["id"]: eta.run_remaining(r, by_run.get(r["id"], []), history, now)
            for r in active}


def queue_eta(rows: list[RunSummary]) -> float | None:
    """Seconds until every running and queued run is done (`eta.queue_remaining`), queued runs
    taken as the worker takes them: highest priority first, then oldest."""
    queued = sorted((r for r in rows if r.status == "queued"),
                    key=lambda r: (-(r.priority or 0), r.created_at))
    running = [r.eta for r in rows if r.status == "running"]
    if not running and not queued:
        return None
    return eta.queue_remaining(running, [r.estimate for r in queued])


def run_summary(store: Store, ref: str, now: float | None = None) -> RunSummary:
    return run_summaries(store, now, store.require_run(ref)["id"])[0]


def _summary(store: Store, run: dict, job: dict | None, stages: list[dict], done: int,
             now: float, remaining: float | None) -> RunSummary:
    status = run["status"]
    iteration = run["iterations"] if status == "done" else int(done)
    last = stages[-1] if stages and status != "done" else None
    start, end = run["started_at"], run["ended_at"]
    elapsed = None if start is None else max((end if end is not None else now) - start, 0.0)
    running = job is not None and job["status"] == "running"
    return RunSummary(
        id=run["id"], name=run["name"], method=run["method"], model=run["model"],
        status=status, iteration=iteration, iterations=run["iterations"],
        stage=last["stage"] if last else None,
        stage_iteration=last["iteration"] if last else None,
        stage_status=last["status"] if last else None,
        stage_done=last["done_items"] if last else None,
        stage_total=last["total_items"] if last else None,
        created_at=run["created_at"], elapsed=elapsed,
        eta=remaining if status == "running" else None,
        estimate=remaining if status == "queued" else None,
        job_status=job["status"] if job else None, priority=job["priority"] if job else None,
        gpus=None if job is None or job["gpus"] < 0 else job["gpus"],
        gpu_uuids=tuple(u for u in (job["gpu_uuids"] or "").split(",") if u) if running
        else (), error=run["error"], run_dir=str(store.run_path(run)), job=job)


def run_detail(store: Store, ref: str) -> dict[str, Any]:
    """One run as `cream status RUN --json` prints it: the summary, its iterations, stages,
    latest metrics and jobs."""
    run = store.require_run(ref)
    return {**run_summary(store, run["id"]).to_json(),
            "iterations_detail": store.iterations(run["id"]),
            "stages": store.stages(run["id"]),
            "latest_metrics": store.latest_metrics(run["id"]),
            "jobs": queue.jobs_of_run(store, run["id"]), "git_commit": run["git_commit"]}


def wait_for_runs(store: Store, ids: list[str], timeout: float | None = None, *,
                  ended: Callable[[str, str], None] | None = None,
                  moved: Callable[[RunSummary], None] | None = None) -> dict[str, str]:
    """Until every run has ended: `ended(run_id, status)` as each one does, `moved(summary)`
    whenever a run is somewhere new (iteration, stage). Returns {run_id: status}."""
    deadline = None if timeout is None else time.time() + timeout
    pending, statuses, where = set(ids), {}, {}
    while pending:
        executors.sync(store)  # (jobs on Slurm: one squeue now and then, whoever waits)
        for run_id in sorted(pending):
            done, status = queue.run_ended(store, run_id)
            if done:
                statuses[run_id] = status
                pending.discard(run_id)
                if ended is not None:
                    ended(run_id, status)
            elif moved is not None:
                summary = run_summary(store, run_id)
                if where.get(run_id) != summary.where:
                    where[run_id] = summary.where
                    moved(summary)
        if pending:
            if deadline is not None and time.time() > deadline:
                raise CreamError(f"timed out waiting for {', '.join(sorted(pending))}")
            time.sleep(0.5)
    return statuses


# -- stages and iterations of one run -----------------------------------------------------------


@dataclass(frozen=True)
class StageRow:
    stage: str
    status: str                  # pending, running, done, failed, cancelled
    done: int | None
    total: int | None
    seconds: float | None


def stage_rows(stages: list[dict], now: float) -> tuple[int | None, tuple[StageRow, ...]]:
    """From a run's stages (`Store.stages`): the newest iteration with a stage, and its stages
    in pipeline order, pending ones too."""
    t = max((s["iteration"] for s in stages), default=None)
    by_name = {s["stage"]: s for s in stages if s["iteration"] == t}
    first = tuple(s for s in paths.BEFORE_LOOP if s in by_name)
    order = first + paths.STAGES
    out = []
    for name in order + tuple(n for n in by_name if n not in order):
        s = by_name.get(name)
        if s is None:
            out.append(StageRow(name, "pending", None, None, None))
            continue
        end = s["ended_at"] if s["ended_at"] is not None else (
            now if s["status"] == "running" else None)
        seconds = end - s["started_at"] if end is not None and s["started_at"] else None
        out.append(StageRow(name, s["status"], s["done_items"], s["total_items"], seconds))
    return t, tuple(out)


@dataclass(frozen=True)
class IterationRow:
    iteration: int
    status: str
    n_pairs: int | None
    mean_tau: float | None
    mean_consistency: float | None
    agreement: float | None
    evaluation: tuple[tuple[str, float], ...]   # numeric leaves of M_t+1's evaluation
    mean_response_length: float | None


def iteration_rows(store: Store, run_id: str) -> tuple[IterationRow, ...]:
    return tuple(IterationRow(i["iteration"], i["status"], i["n_pairs"], i["mean_tau"],
                              i["mean_consistency"], i["agreement"],
                              evaluation_of(i["summary"]), i["mean_response_length"])
                 for i in store.iterations(run_id))


# -- evaluations ------------------------------------------------------------------------------

# what an evaluation is summed up by, best first: accuracy, then the win rate, then the score
HEADLINE = ("gen_acc", "ll_acc", "win_rate", "judge_score")


def flatten(data: dict, prefix: str = "", numeric: bool = False) -> dict[str, Any]:
    """Nested dicts to dotted keys: {"train": {"beta": 0.1}} → {"train.beta": 0.1}; with
    `numeric`, only the finite numbers."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}.", numeric))
        elif not numeric:
            out[f"{prefix}{key}"] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            out[f"{prefix}{key}"] = float(value)
    return out


def as_dict(raw: Any) -> dict:
    """A JSON object, or one stored as text (a summary, or an info in older summaries)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}


def evaluation_leaves(ev: dict) -> tuple[tuple[str, float], ...]:
    """The numeric leaves of one evaluation as flattened `a.b` keys, sorted (how long it took
    is not a score)."""
    return tuple(sorted((k, v) for k, v in flatten(ev, numeric=True).items()
                        if not k.startswith("seconds")))


def evaluation_of(summary: str | None, stage: str = "evaluate") -> tuple[tuple[str, float], ...]:
    """The numeric leaves of an iteration summary's evaluation (`evaluate`: of M_t+1;
    `baseline`: of M0, in iteration 0); () if none."""
    return evaluation_leaves(as_dict(as_dict(summary).get(stage)))


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


def summaries(store: Store, run_id: str) -> dict[int, dict[str, dict]]:
    """{t: {stage: info}} from each iteration's summary. A stage that finished before its
    iteration did (the baseline while iteration 0 still runs) is read from `stages`."""
    out: dict[int, dict[str, dict]] = {}
    for s in store.stages(run_id):
        info = as_dict(s["info"])
        if s["status"] == "done" and info:
            out.setdefault(s["iteration"], {})[s["stage"]] = info
    for it in store.iterations(run_id):
        summary = {k: as_dict(v) for k, v in as_dict(it["summary"]).items()}
        out.setdefault(it["iteration"], {}).update({k: v for k, v in summary.items() if v})
    return out


def evaluations_by_model(store: Store, run_id: str) -> dict[int, dict]:
    """{k: M_k's evaluation}: M0 from the baseline of iteration 0, M1 from the seed SFT's
    evaluation when there is one, then the model each iteration trained (each evaluation
    names its model; one written before they did is M_{t+1}'s)."""
    per: dict[int, dict] = {}
    for t, infos in summaries(store, run_id).items():
        for stage, k in ((paths.BASELINE, 0), (paths.SFT_EVAL, 1), ("evaluate", t + 1)):
            info = infos.get(stage)
            if info:
                named = str(info.get("model") or "")
                per[int(named[1:]) if re.fullmatch(r"M\d+", named) else k] = info
    return dict(sorted(per.items()))


def clean(value: Any) -> Any:
    """NaN and infinities become None, so the JSON we print is JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


# -- the log of a run ---------------------------------------------------------------------------

LOG_TAIL_BYTES = 64 * 1024
LOG_TAIL_LINES = 300
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def shown_line(line: str) -> str:
    """What a terminal shows of a line a progress bar redrew with carriage returns, without
    colour codes."""
    return _ANSI.sub("", line.rstrip("\r").rsplit("\r", 1)[-1])


class LogTail:
    """The last lines of log files, read again only when a file changed (size or mtime)."""

    def __init__(self, max_bytes: int = LOG_TAIL_BYTES, max_lines: int = LOG_TAIL_LINES):
        self.max_bytes, self.max_lines = max_bytes, max_lines
        self._cache: dict[str, tuple[tuple[int, int], tuple[str, ...]]] = {}

    def read(self, path: Path) -> tuple[str, ...]:
        try:
            st = path.stat()
        except OSError:
            return ()
        key = (st.st_size, st.st_mtime_ns)
        cached = self._cache.get(str(path))
        if cached and cached[0] == key:
            return cached[1]
        with open(path, "rb") as fh:
            fh.seek(max(st.st_size - self.max_bytes, 0))
            text = fh.read().decode("utf-8", "replace")
        lines = text.split("\n")          # not splitlines(): it would split at \r too
        if lines and lines[-1] == "":
            lines.pop()
        if st.st_size > self.max_bytes and lines:
            lines = lines[1:]                      # the first line was cut by the seek
        tail = tuple(shown_line(line) for line in lines[-self.max_lines:])
        self._cache[str(path)] = (key, tail)
        return tail
