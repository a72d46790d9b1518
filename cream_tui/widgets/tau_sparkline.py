"""Reward consistency across iterations at a glance: a sparkline of mean Kendall τ (scaled on
τ's own range, -1 to 1) followed by the first and last values."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from cream_engine.results import IterationRow
from cream_tui import format as fmt


class TauSparkline(Static):
    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self._key: object = None

    def show_rows(self, rows: Sequence[IterationRow]) -> None:
        taus = tuple(r.mean_tau for r in rows)
        if taus == self._key:
            return
        self._key = taus
        text = Text("τ by iteration ", style="bold")
        present = [t for t in taus if t is not None]
        if not present:
            text.append("- (τ needs two iterations: the first has no previous model)",
                        style="dim")
        else:
            text.append(fmt.sparkline(taus, lo=-1.0, hi=1.0), style="cyan")
            text.append(f"  {' → '.join(fmt.num(t, '{:+.2f}') for t in taus)}")
        self.update(text)
