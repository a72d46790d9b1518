"""Estimated time to finish a run, and the queue, from measured stage durations.

The stages of an iteration take very different times (on the demo, evaluation is most of it),
so "elapsed × the fraction of stages left" jumps at every stage boundary. Instead each stage
still to run is priced at what it took before:
1. in this run (the median over the iterations where it finished), else
2. in earlier runs of the same shape: the same config apart from its name, iteration count and
   seed (the same model, method, data sizes, sampling and evaluation sets);
and the running stage at its own rate (elapsed × left / done), leaning on the history while
it has done little. A stage nobody has measured yet leaves the estimate unknown (None): the
first iteration of a new shape shows no ETA rather than a wrong one. The consistency and pairs
stages (pure Python, seconds) count as nothing until measured; an evaluation not run yet is
priced like the run's other evaluations (M0's, M1's: the same sets, another model).

Queue-wide: the queued runs start, in the order the worker takes them, on the first of the
running slots to free up (as many slots as runs running now, at least one).

Light layer: standard library only.
"""

from __future__ import annotations

import hashlib
import heapq
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

import tomllib

from cream_engine.paths import BASELINE, SFT, SFT_EVAL, STAGES

QUICK = ("consistency", "pairs")
EVALUATIONS = (BASELINE, SFT_EVAL, "evaluate")   # the same evaluation sets, another model
LABELS = {("run", "name"), ("run", "iterations"), ("run", "seed")}
_shapes: dict[str, tuple[str, dict]] = {}   # config text -> (shape key, the parsed config)


def shape_of(config_toml: str) -> tuple[str, dict]:
    """(a key shared by configs that should take as long per iteration, the parsed config).
    An unreadable config is its own shape."""
    found = _shapes.get(config_toml)
    if found is None:
        try:
            config = tomllib.loads(config_toml)
        except tomllib.TOMLDecodeError:
            config = {}
        kept = {section: ({k: v for k, v in body.items() if (section, k) not in LABELS}
                          if isinstance(body, dict) else body)
                for section, body in config.items()}
        key = hashlib.sha1(repr(sorted(kept.items(), key=lambda kv: kv[0])).encode()) \
            .hexdigest()[:16] if config else f"raw:{hash(config_toml)}"
        found = (key, config)
        if len(_shapes) > 4096:
            _shapes.clear()
        _shapes[config_toml] = found
    return found


def plan(config: dict, iterations: int) -> list[tuple[int, str]]:
    """(iteration, stage) in the order the pipeline runs them (`pipeline.stages_of`, read
    from the config's text: this layer cannot import the pipeline)."""
    def section(name: str) -> dict:
        body = config.get(name)
        return body if isinstance(body, dict) else {}

    evaluate, sft = section("eval").get("enabled", True), section("sft").get("enabled", False)
    every = max(int(section("eval").get("every", 1) or 1), 1)
    out = []
    for t in range(iterations):
        if t == 0:
            out += [(0, s) for s in (BASELINE, SFT, SFT_EVAL)
                    if (sft or s not in (SFT, SFT_EVAL)) and (evaluate or s == SFT)]
        last = t == iterations - 1
        out += [(t, s) for s in STAGES
                if s != "evaluate" or (evaluate and ((t + 1) % every == 0 or last))]
    return out


class History:
    """What each stage took, per run and per shape: from the store's finished stages."""

    def __init__(self, runs: Iterable[dict], stages: Iterable[dict]):
        self.shape = {r["id"]: shape_of(r["config_toml"])[0] for r in runs}
        own: dict[tuple[str, str], list[float]] = {}
        shaped: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for s in stages:
            if s["status"] != "done" or s["started_at"] is None or s["ended_at"] is None:
                continue
            took = max(s["ended_at"] - s["started_at"], 0.0)
            own.setdefault((s["run_id"], s["stage"]), []).append(took)
            shape = self.shape.get(s["run_id"])
            if shape is not None:
                shaped.setdefault((shape, s["stage"]), []).append((s["ended_at"], took))
        self.own = {k: statistics.median(v) for k, v in own.items()}
        # the newest few of a shape: a faster box or a newer cream changes what it takes
        self.shaped = {k: statistics.median(t for _, t in sorted(v)[-8:])
                       for k, v in shaped.items()}

    def stage(self, run_id: str, stage: str) -> float | None:
        took = self._measured(run_id, stage)
        if took is None and stage in EVALUATIONS:
            # an evaluation not run yet (with `[eval] every`, often only the last model's) is
            # priced at the longest of the others: the same sets, another model (the shortest
            # may have been a cache hit)
            alike = [self._measured(run_id, s) for s in EVALUATIONS if s != stage]
            took = max((t for t in alike if t is not None), default=None)
        if took is None and stage in QUICK:
            return 0.0
        return took

    def _measured(self, run_id: str, stage: str) -> float | None:
        took = self.own.get((run_id, stage))
        if took is None and run_id in self.shape:
            took = self.shaped.get((self.shape[run_id], stage))
        return took


def _sum(values: Iterable[float | None]) -> float | None:
    total = 0.0
    for v in values:
        if v is None:
            return None
        total += v
    return total


def run_remaining(run: dict, stages: Sequence[dict], history: History,
                  now: float) -> float | None:
    """Seconds until `run` (a runs row) finishes: a queued run in full, a running one from
    where it is. `stages`: its rows of the stages table, in any order."""
    if run["status"] not in ("running", "queued"):
        return None
    run_id = run["id"]
    steps = plan(shape_of(run["config_toml"])[1], run["iterations"])
    seen = {(s["iteration"], s["stage"]): s for s in stages}
    # where the run is: the last stage of the plan that has a row (those before it are done
    # or were skipped; a restarted run redoes only what is not done)
    at = max((i for i, key in enumerate(steps) if key in seen), default=-1)
    left: list[float | None] = []
    for i, key in enumerate(steps):
        row = seen.get(key)
        if (i < at and (row is None or row["status"] == "done")) or \
                (row is not None and row["status"] == "done"):
            continue
        estimate = history.stage(run_id, key[1])
        if row is not None and row["status"] == "running":
            estimate = _running(row, estimate, now)
        left.append(estimate)
    return _sum(left)


def _running(stage: dict, history: float | None, now: float) -> float | None:
    """What the running stage has left: its own rate, trusted as its items get done."""
    spent = max(now - (stage["started_at"] or now), 0.0)
    done, total = stage["done_items"] or 0, stage["total_items"] or 0
    by_rate = spent * (total - done) / done if done and total else None
    if history is None or (spent >= history and by_rate is not None):
        return by_rate      # (a stage already slower than before: its own rate only)
    if by_rate is None:
        return max(history - spent, 0.0)
    share = done / total
    return share * by_rate + (1 - share) * (history - spent)


def queue_remaining(running: Sequence[float | None], queued: Sequence[float | None]
                    ) -> float | None:
    """Seconds until the queue is empty: `queued` (in the order they will start) go to the
    first of the slots `running` frees. None when any part is unknown."""
    if any(r is None for r in running) or any(q is None for q in queued):
        return None
    slots = [float(r) for r in running if r is not None] or [0.0]
    heapq.heapify(slots)
    for q in queued:
        heapq.heappush(slots, heapq.heappop(slots) + float(q or 0.0))
    return max(slots) if (running or queued) else None


def stage_rows_for(store: Any, run_ids: Sequence[str]) -> list[dict]:
    """The stage rows an estimate needs: every finished stage (the history) and all stages of
    the runs asked about."""
    marks = ",".join("?" * len(run_ids)) or "NULL"
    return store.query(
        "SELECT run_id, iteration, stage, status, done_items, total_items, started_at, ended_at "
        f"FROM stages WHERE status = 'done' OR run_id IN ({marks})", list(run_ids))
