"""Reads of a run's metric series for charts, sized to the chart rather than to the run.

A trainer logging every step leaves hundreds of thousands of rows behind; a chart is a hundred
cells wide. The first read of a series therefore asks SQLite for each (metric, iteration)'s
step range and, where it holds more than `2 * BUCKETS` rows, for the minimum and maximum of
each of `BUCKETS` equal step ranges (one pass over the `metrics_series` index, nothing sorted
in Python). Reading every row costs about a microsecond each (the value is not in the index),
a second for a million; so a long series is first read from every k-th step (the index alone
filters those) and marked `coarse`, and the caller reads it exactly in the polls that follow,
within a time budget (`RunSeries.refine`). Later reads take only the rows written since (the
rowid range). The caller keeps them in `Buckets`, which merge neighbours as a series grows, so
what a poll costs depends on the chart's resolution, not on how long the run has trained.

Light layer: standard library only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cream_engine.store import Store

BUCKETS = 512    # per (metric, iteration): finer than any terminal chart, coarse enough to hold
SAMPLED = 4      # a first read of a long series samples about this many steps per bucket


@dataclass
class Buckets:
    """One (metric, iteration) series as min/max per `width` steps: bucket b holds the steps
    b*width … (b+1)*width-1. With width 1 every point is kept exactly."""

    width: int = 1
    cells: dict[int, list[float]] = field(default_factory=dict)   # bucket -> [min, max]
    last_step: int = -1
    last_value: float | None = None
    coarse: bool = False          # read from a sample of the steps: a spike may be missing
    _points: list[tuple[float, float]] | None = None               # cache of points()

    def add(self, step: int, value: float | None) -> None:
        if step >= self.last_step:
            self.last_step, self.last_value = step, value
        if value is None or not math.isfinite(value):
            return
        self._put(step // self.width, value, value)
        if len(self.cells) > 2 * BUCKETS:
            self._coarsen()

    def _put(self, b: int, lo: float, hi: float) -> None:
        cell = self.cells.get(b)
        if cell is None:
            self.cells[b] = [lo, hi]
        else:
            cell[0], cell[1] = min(cell[0], lo), max(cell[1], hi)
        self._points = None

    def _coarsen(self) -> None:
        """Twice as many steps per bucket: neighbours merge."""
        old, self.cells = self.cells, {}
        self.width *= 2
        for b, (lo, hi) in old.items():
            self._put(b // 2, lo, hi)

    def points(self) -> list[tuple[float, float]]:
        """(step, value) in step order: each bucket's min and max at the bucket's first step
        (one point where they are equal), so a spike inside a bucket still shows."""
        if self._points is None:
            out: list[tuple[float, float]] = []
            for b in sorted(self.cells):
                lo, hi = self.cells[b]
                x = float(b * self.width)
                out.append((x, lo))
                if hi != lo:
                    out.append((x, hi))
            self._points = out
        return self._points


def read_series(store: Store, run_id: str, names: tuple[str, ...],
                upto_id: int) -> dict[tuple[str, int], Buckets]:
    """Every (metric, iteration) of `names` with rows of id <= upto_id, as `Buckets`; a long
    one from a sample of its steps (`coarse`: `read_group` exactly, later)."""
    out: dict[tuple[str, int], Buckets] = {}
    for name, iteration, top in _groups(store, run_id, names, upto_id):
        stride = top // (SAMPLED * BUCKETS) if top >= 2 * SAMPLED * BUCKETS else 1
        out[(name, iteration)] = read_group(store, run_id, name, iteration, upto_id, top,
                                            stride)
    return out


def read_group(store: Store, run_id: str, name: str, iteration: int, upto_id: int,
               top: int | None = None, stride: int = 1) -> Buckets:
    """One (metric, iteration): SQLite's min and max per bucket of steps, over every step or
    every `stride`-th (the index alone picks those: a tenth of the stride's cost)."""
    if top is None:
        rows = store.query("SELECT MAX(step) AS top FROM metrics WHERE run_id = ? AND name = ? "
                           "AND iteration = ? AND id <= ?", [run_id, name, iteration, upto_id])
        top = rows[0]["top"] or 0
    width = 1 if top < 2 * BUCKETS else -(-(top + 1) // BUCKETS)
    series = Buckets(width=width, coarse=stride > 1)
    sample = "AND step % ? = 0 " if stride > 1 else ""
    rows = store.query(
        "SELECT step / ? AS b, MIN(value) AS lo, MAX(value) AS hi FROM metrics "
        f"WHERE run_id = ? AND name = ? AND iteration = ? AND id <= ? {sample}GROUP BY b",
        [width, run_id, name, iteration, upto_id, *([stride] if stride > 1 else [])])
    for r in rows:
        if r["lo"] is not None:
            series._put(r["b"], r["lo"], r["hi"])
    last = store.query(
        "SELECT step, value FROM metrics WHERE run_id = ? AND name = ? AND iteration = ? "
        "AND id <= ? ORDER BY step DESC LIMIT 1", [run_id, name, iteration, upto_id])
    if last:
        series.last_step, series.last_value = last[0]["step"], last[0]["value"]
    return series


def _groups(store: Store, run_id: str, names: tuple[str, ...],
            upto_id: int) -> list[tuple[str, int, int]]:
    """(metric, iteration, its largest step) of each series present: a few index seeks per
    series (counting a million rows to size the buckets would cost more than reading them)."""
    found = []
    for name in names:
        iteration = -1
        while True:
            row = store.query(
                "SELECT iteration FROM metrics WHERE run_id = ? AND name = ? AND iteration > ? "
                "ORDER BY iteration LIMIT 1", [run_id, name, iteration])
            if not row:
                break
            iteration = row[0]["iteration"]
            top = store.query(
                "SELECT step FROM metrics WHERE run_id = ? AND name = ? AND iteration = ? "
                "AND id <= ? ORDER BY step DESC LIMIT 1", [run_id, name, iteration, upto_id])
            if top:
                found.append((name, iteration, top[0]["step"]))
    return found
