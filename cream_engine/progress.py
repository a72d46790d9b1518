"""Progress of a long stage: a rich bar on stderr (done/total, rate, ETA) and the same counts in
the store's stages table (throttled to about once a second) for the dashboard."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cream_engine.store import Store

STORE_EVERY_S = 1.0


class StageProgress:
    def __init__(self, store: Store, run_id: str, iteration: int, stage: str, total: int,
                 label: str | None = None, offset: int = 0, overall: int | None = None):
        """`offset`/`overall`: this bar is one part of a stage counted as a whole in the store
        (its items come after `offset` of `overall`); the bar on stderr counts the part."""
        self.store, self.run_id, self.iteration, self.stage = store, run_id, iteration, stage
        self.total = total
        self.offset, self.overall = offset, overall
        self.done = 0
        self.label = label or stage
        self._last_store = 0.0
        self._bar: Any = None

    def __enter__(self) -> StageProgress:
        self._bar = Progress(TextColumn(f"iter {self.iteration} {self.label:<12}"), BarColumn(),
                             MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                             TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                             console=Console(stderr=True), transient=False)
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=self.total, rate="")
        self._started = time.time()
        self._store(0, self.overall or self.total)
        return self

    def _store(self, done: int, total: int | None = None) -> None:
        self.store.stage_progress(self.run_id, self.iteration, self.stage, self.offset + done,
                                  total)

    def set_total(self, total: int) -> None:
        if total != self.total:
            self.total = total
            self._bar.update(self._task, total=total)
            self._store(self.done, None if self.overall else total)

    def advance(self, n: int = 1) -> None:
        self.done += n
        elapsed = max(time.time() - self._started, 1e-9)
        self._bar.update(self._task, advance=n, rate=f"{self.done / elapsed:.2f}/s")
        now = time.time()
        if now - self._last_store >= STORE_EVERY_S or self.done >= self.total:
            self._last_store = now
            self._store(self.done)

    def __exit__(self, *exc: Any) -> None:
        self._store(self.done)
        self._bar.stop()
