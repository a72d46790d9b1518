"""What each screen of the dashboard shows, as frozen values read through the engine's
`results` (the same reader `cream status` and `cream compare` use).

`DataSource` is used from the app's polling thread only (one connection, reads only); the
screens compare a new value with the one they show and redraw only when it changed. Time comes
from an injectable clock, so elapsed and ETA are stable in snapshot tests. What this adds to
`results` is only what a screen needs: the runs in display order, chart series downsampled to
a width, a log tail that is read again only when the file changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cream_engine import compare, executors, paths, queue, results
from cream_engine.errors import CreamError, StoreError
from cream_engine.results import IterationRow, Point, RunSummary, StageRow
from cream_engine.store import Store
from cream_tui import actions, prompt_data
from cream_tui import format as fmt
from cream_tui.gpu_history import GpuHistory, GpuState
from cream_tui.series import RunSeries

LOSS, MARGINS, ACCURACY = "loss", "rewards/margins", "rewards/accuracies"
SFT_LOSS = "sft/loss"  # the seed SFT's curve, shown while no DPO loss exists yet


def empty_message(home: Path) -> str:
    return (f"No runs in {home} yet.\n\n"
            "Queue an experiment for the worker:\n"
            "    cream init exp.toml        # a commented config\n"
            "    cream submit exp.toml      # then: cream worker start\n"
            "or run one in the foreground:  cream run exp.toml\n\n"
            "Press s to submit a config from here, ? for help, q to quit.")


@dataclass(frozen=True)
class HostView:
    """One box in a dashboard over several: how its link is, and its GPUs."""
    name: str
    state: str                   # local, up, slow, connecting, down, mismatch
    line: str                    # the state in words ("ssh gpu1: Connection refused")
    gpus: GpuState = field(default_factory=GpuState)
    drained: bool = False
    runs: int = 0


@dataclass(frozen=True)
class HomeData:
    problem: str | None          # the empty state or an error, shown instead of the table
    runs: tuple[RunSummary, ...] = ()
    drained: bool = False
    gpus: GpuState = field(default_factory=GpuState)
    hosts: tuple[HostView, ...] = ()   # several boxes: each one's state and GPUs


HOST_SEP = "::"  # a run's key in a dashboard over several boxes: "host::run-id"


def run_key(row: RunSummary) -> str:
    """What the screens call a run: its id, or host::id when it lives on a named box."""
    return f"{row.host}{HOST_SEP}{row.id}" if row.host else row.id


def split_key(key: str) -> tuple[str | None, str]:
    """(host or None, run ref) of a key from `run_key`."""
    host, sep, ref = key.partition(HOST_SEP)
    return (host, ref) if sep else (None, key)


@dataclass(frozen=True)
class RunData:
    problem: str | None
    run: RunSummary | None = None
    iterations: tuple[IterationRow, ...] = ()
    stage_iteration: int | None = None
    stages: tuple[StageRow, ...] = ()
    loss: tuple[Point, ...] = ()
    loss_label: str = "loss"                         # "seed SFT loss" before DPO's first step
    margins: tuple[Point, ...] = ()
    accuracy: tuple[Point, ...] = ()
    boundaries: tuple[tuple[float, int], ...] = ()   # (x, iteration that starts there)
    last: tuple[int, int, float | None] | None = None  # newest loss: (iteration, step, value)
    log_path: str = ""                               # as shown: relative to the home
    log_lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompareData:
    problem: str | None
    labels: tuple[str, ...] = ()
    diff: tuple[tuple[str, tuple[str, ...]], ...] = ()     # (key, value per run)
    tau: tuple[tuple[str, tuple[Point, ...]], ...] = ()     # (label, (iteration, τ))
    # every evaluation metric the runs have, headline first: (key, (label, (model k, value)))
    evaluations: tuple[tuple[str, tuple[tuple[str, tuple[Point, ...]], ...]], ...] = ()
    # per evaluation metric, as `evaluations`: (title, "n = 100", widest 95% interval,
    # the values it can take)
    eval_spans: tuple[tuple[str, str, float, tuple[float, float] | None], ...] = ()
    finals: tuple[str | None, ...] = ()                     # each run's final model: "M3"
    # the final models metric by metric: value, n, 95% interval, verdict
    metrics: tuple[compare.MetricComparison, ...] = ()
    loss: tuple[tuple[str, tuple[Point, ...]], ...] = ()    # (label, (step, DPO loss))

    @property
    def eval_key(self) -> str | None:
        """The headline evaluation metric."""
        return self.evaluations[0][0] if self.evaluations else None

    @property
    def evaluation(self) -> tuple[tuple[str, tuple[Point, ...]], ...]:
        """The headline metric's lines: (label, (model k, value))."""
        return self.evaluations[0][1] if self.evaluations else ()


def display_order(rows: list[RunSummary]) -> list[RunSummary]:
    """Newest first, by creation only: a run keeps its place as it starts, finishes or
    changes priority (the status column says which run and which wait), so the rows under
    the user's eyes and keys do not move; only a new run pushes them down one."""
    return sorted(rows, key=lambda r: (-r.created_at, r.host or "", r.id))


class DataSource:
    """Reads the store of `home` for the screens; opens it lazily and keeps it open."""

    def __init__(self, home: Path, gpu_reader: Callable[[], Any]):
        self.home = home
        self.store: Store | None = None
        self.error: str | None = None       # why the store cannot be read (tried again)
        self.gpus = GpuHistory(gpu_reader)
        self.logs = results.LogTail()
        self._series: dict[str, RunSeries] = {}
        self._charts: dict[str, tuple[Any, tuple]] = {}

    def open(self) -> tuple[Store | None, str | None]:
        """(store, None), or (None, why): the empty-state text or a clear error."""
        if self.store is not None and self.store.immutable and \
                Path(f"{self.store.path}-wal").exists():  # a read-only home got a writer
            self.reset()
        if self.store is None:
            # tried at every poll: a store that another process is creating (and migrating)
            # at this very moment can fail once; a newer cream's store fails each time
            try:
                self.store = Store.open(self.home, create=False)
                self.error = None
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

    def act(self, host: str | None, name: str, *args: object) -> str:
        """A queue action (`actions.BY_NAME`) on this home; its one line."""
        return actions.BY_NAME[name](self.home, *args)

    # -- home ----------------------------------------------------------------------------

    def home_data(self, now: float) -> HomeData:
        store, problem = self.open()
        if store is None:
            return HomeData(problem, gpus=self.gpus.state(None, now, {}, {}))
        executors.sync(store)  # (jobs on Slurm: one squeue per poll interval, whoever asks)
        rows = display_order(results.run_summaries(store, now))
        gpus = self.gpus.state(store, now, {r.id: r.name for r in rows},
                               queue.running_pids(store))
        if not rows:
            return HomeData(empty_message(self.home), gpus=gpus)
        return HomeData(None, tuple(rows), queue.drained(store), gpus)

    def gpu_data(self, now: float) -> GpuState:
        store, _ = self.open()
        if store is None:
            return self.gpus.state(None, now, {}, {})
        names = {r["id"]: r["name"] for r in store.list_runs()}
        return self.gpus.state(store, now, names, queue.running_pids(store))

    # -- one run -------------------------------------------------------------------------

    def run_data(self, ref: str, now: float, buckets: int) -> RunData:
        store, problem = self.open()
        if store is None:
            return RunData(problem)
        try:
            found = store.find_run(ref)
        except CreamError as e:     # an ambiguous ref: the candidates, one line
            return RunData(e.line)
        if found is None:
            return RunData(f"Run {ref!r}: no such run in {self.home}.")
        run_id = found["id"]
        all_stages = store.stages(run_id)
        stage_iteration, stages = results.stage_rows(all_stages, now)
        charts = self._chart(store, run_id, all_stages, buckets)
        log = paths.job_log(store.run_path(found))
        shown = log.relative_to(self.home) if log.is_relative_to(self.home) else log
        return RunData(None, results.run_summaries(store, now, run_id)[0],
                       results.iteration_rows(store, run_id), stage_iteration, stages, *charts,
                       log_path=str(shown), log_lines=self.logs.read(log))

    def _chart(self, store: Store, run_id: str, stages: list[dict], buckets: int) -> tuple:
        cache = self._series.get(run_id)
        if cache is None:
            cache = self._series[run_id] = RunSeries(run_id, (LOSS, MARGINS, ACCURACY,
                                                              SFT_LOSS))
        # a restarted train stage drops its metrics: read the series again from the start
        fingerprint = tuple((s["iteration"], s["started_at"]) for s in stages
                            if s["stage"] in ("train", "sft"))
        cache.update(store, fingerprint)
        key = (cache.version, buckets)
        memo = self._charts.get(run_id)
        if memo is not None and memo[0] == key:
            return memo[1]
        offsets = cache.offsets(skip=(SFT_LOSS,))
        loss, label = cache.series(LOSS, offsets, buckets), "loss"
        if not loss:  # (the seed SFT is training, or done and DPO not started)
            loss, label = cache.series(SFT_LOSS, {}, buckets), "seed SFT loss"
        result = (loss, label, cache.series(MARGINS, offsets, buckets),
                  cache.series(ACCURACY, offsets, buckets),
                  tuple((float(x), it) for it, x in sorted(offsets.items()) if x > 0),
                  cache.last(LOSS))
        self._charts[run_id] = (key, result)
        return result

    # -- compare -------------------------------------------------------------------------

    def compare_data(self, refs: tuple[str, ...]) -> CompareData:
        store, problem = self.open()
        if store is None:
            return CompareData(problem)
        try:
            found = [store.find_run(r) for r in refs]
        except CreamError as e:
            return CompareData(e.line)
        missing = [r for r, run in zip(refs, found) if run is None]
        if missing:
            return CompareData(f"No such run: {', '.join(missing)}")
        return compare_from_parts([compare.run_part(store, run) for run in found
                                   if run is not None])

    # -- drill-down: one iteration's prompts, one prompt ----------------------------------

    def prompts_data(self, ref: str, iteration: int) -> PromptsData:
        """Iteration `iteration` of run `ref`: its prompts summarised (`prompt_view`), read
        again only when one of its files changed."""
        store, problem = self.open()
        if store is None:
            return PromptsData(problem, iteration=iteration)
        try:
            name, have, view = prompt_data.lookup(store, ref, iteration)
        except CreamError as e:
            return PromptsData(e.line, iteration=iteration)
        return PromptsData(None, name, iteration, have, view)

    def prompt_detail(self, ref: str, iteration: int, prompt_id: str) -> PromptData:
        """One prompt of that iteration in full, read on demand."""
        store, problem = self.open()
        if store is None:
            return PromptData(problem)
        try:
            name, _, detail = prompt_data.lookup(store, ref, iteration, prompt_id)
        except CreamError as e:
            return PromptData(e.line)
        return PromptData(None, name, detail)

def compare_from_parts(parts: list[dict]) -> CompareData:
    """The compare screen's value from `compare.run_part`s (of one box, or of several)."""
    names = compare.labels(parts)
    diff = compare.config_diff([compare.parse_config(p["config_toml"]) for p in parts])
    evaluations = compare.evaluation_lines(parts, names)
    return CompareData(None, tuple(names),
                       tuple((key, tuple(fmt.config_value(v) for v in values))
                             for key, values in diff.items()),
                       compare.tau_lines(parts, names), evaluations,
                       compare.evaluation_spans(parts, [key for key, _ in evaluations]),
                       tuple(None if k is None else f"M{k}"
                             for k in compare.final_models(parts)),
                       compare.comparisons(parts, names), compare.loss_lines(parts, names))


@dataclass(frozen=True)
class PromptsData:
    """The drill-down list: one iteration's prompts (`prompt_view.IterationView`)."""
    problem: str | None
    run_name: str = ""
    iteration: int = 0
    iterations: tuple[int, ...] = ()     # the run's iterations that have files
    view: Any = None                     # prompt_view.IterationView


@dataclass(frozen=True)
class PromptData:
    """One prompt in full (`prompt_view.PromptDetail`)."""
    problem: str | None
    run_name: str = ""
    detail: Any = None                   # prompt_view.PromptDetail
