"""Metric series for the charts: fetched incrementally from the store, laid end to end across
iterations, and downsampled to the chart's width.

Training logs `step` from 0 in every iteration (one trainer per iteration), so the charts put
iteration t after iteration t-1: x = offset(t) + step, with a boundary at each offset.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cream_engine import metric_reads
from cream_engine.metric_reads import Buckets
from cream_engine.results import Point
from cream_engine.store import Store

REFINE_S = 0.2   # CPU a poll may spend reading sampled series exactly


def downsample_minmax(points: Sequence[Point], buckets: int) -> list[Point]:
    """At most two points per bucket of x (the bucket's min and its max, in x order), plus the
    first and last points.

    A chart a hundred cells wide cannot show ten thousand points, but averaging them would hide
    the loss spike a user is looking for; keeping each bucket's extremes draws the same
    envelope. Points must be sorted by x; non-finite values are dropped."""
    pts = [(x, y) for x, y in points if y is not None and math.isfinite(y)]
    if buckets <= 0 or len(pts) <= 2 * buckets:
        return pts
    x0, x1 = pts[0][0], pts[-1][0]
    width = (x1 - x0) / buckets or 1.0
    out: list[Point] = []
    lo = hi = pts[0]
    current = 0
    for p in pts:
        b = min(int((p[0] - x0) / width), buckets - 1)
        if b != current:
            out.extend(_ordered(lo, hi))
            lo = hi = p
            current = b
            continue
        if p[1] < lo[1]:
            lo = p
        if p[1] > hi[1]:
            hi = p
    out.extend(_ordered(lo, hi))
    # the ends stay, so the axis spans the real range
    if out[0] != pts[0]:
        out.insert(0, pts[0])
    if out[-1] != pts[-1]:
        out.append(pts[-1])
    return out


def _ordered(a: Point, b: Point) -> list[Point]:
    if a is b or a == b:
        return [a]
    return [a, b] if a[0] <= b[0] else [b, a]


@dataclass
class RunSeries:
    """Some metrics of one run, kept up to date by reading only new rows.

    The first read takes each (metric, iteration) already bucketed by SQLite
    (`metric_reads.read_series`: at most a couple of thousand points each, however long the
    run); each later read takes only the rows above the last id seen and drops them into their
    buckets. A restarted stage deletes its old metrics: the caller resets the cache when it
    sees a stage start again (`fingerprint` changes)."""

    run_id: str
    names: tuple[str, ...]
    last_id: int = -1
    fingerprint: object = None
    groups: dict[tuple[str, int], Buckets] = field(default_factory=dict)
    version: int = 0          # bumped whenever new points arrive

    def update(self, store: Store, fingerprint: object) -> bool:
        """Fetch new rows; True when something changed."""
        reset = fingerprint != self.fingerprint
        if reset:
            self.last_id, self.groups, self.fingerprint = -1, {}, fingerprint
            self.version += 1
        top = store.last_metric_id()
        if self.last_id < 0:           # (a first read draws the sample at once)
            self.groups = metric_reads.read_series(store, self.run_id, self.names, top)
            changed = bool(self.groups)
        else:
            changed = self.refine(store)
            rows = store.metric_points(self.run_id, self.names, self.last_id, top) \
                if top > self.last_id else []
            for r in rows:
                key = (r["name"], r["iteration"])
                group = self.groups.get(key)
                if group is None:
                    group = self.groups[key] = Buckets()
                group.add(r["step"], r["value"])
            changed = changed or bool(rows)
        self.last_id = max(top, self.last_id)
        if changed:
            self.version += 1
        return reset or changed

    def refine(self, store: Store, budget_s: float = REFINE_S) -> bool:
        """Read sampled (`coarse`) series exactly, as many as fit in `budget_s`; True when
        one was."""
        started, done = time.monotonic(), False
        for (name, it), group in list(self.groups.items()):
            if not group.coarse:
                continue
            if done and time.monotonic() - started > budget_s:
                break
            self.groups[(name, it)] = metric_reads.read_group(store, self.run_id, name, it,
                                                              self.last_id)
            done = True
        return done

    def offsets(self, skip: tuple[str, ...] = ()) -> dict[int, int]:
        """x offset of each iteration: the sum of the steps of the iterations before it (the
        metrics named in `skip`, another curve's steps, left out)."""
        last_step: dict[int, int] = {}
        for (name, it), group in self.groups.items():
            if name not in skip:
                last_step[it] = max(group.last_step, last_step.get(it, 0))
        out, total = {}, 0
        for it in sorted(last_step):
            out[it] = total
            total += last_step[it]
        return out

    def series(self, name: str, offsets: dict[int, int], buckets: int) -> tuple[Point, ...]:
        points: list[Point] = []
        for it in sorted(it for n, it in self.groups if n == name):
            offset = offsets.get(it, 0)
            # (in x order: an iteration's offset is where the one before it ended)
            points += [(offset + x, v) for x, v in self.groups[(name, it)].points()]
        return tuple(downsample_minmax(points, buckets))

    def last(self, name: str) -> tuple[int, int, float | None] | None:
        """(iteration, step, value) of the newest point of a metric."""
        its = [it for n, it in self.groups if n == name]
        if not its:
            return None
        group = self.groups[(name, max(its))]
        return max(its), group.last_step, group.last_value
