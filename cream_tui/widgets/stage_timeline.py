"""The stage timeline of the current iteration: each stage of the pipeline in order, its
state, a progress bar (done_items/total_items) and how long it took or has taken so far."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from cream_engine.results import StageRow
from cream_tui import format as fmt

MARK = {"done": ("✔", "green"), "running": ("▶", "bold yellow"), "failed": ("✗", "bold red"),
        "cancelled": ("■", "magenta"), "pending": ("·", "dim")}


class StageTimeline(Static):
    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self._key: object = None

    def show_stages(self, iteration: int | None, stages: Sequence[StageRow], width: int) -> None:
        key = (iteration, tuple(stages), width)
        if key == self._key:
            return
        self._key = key
        if iteration is None:
            self.update(Text("stages: none started yet", style="dim"))
            return
        text = Text(f"iteration {iteration} stages\n", style="bold")
        bar_width = max(min(width - 40, 40), 6)
        for i, s in enumerate(stages):
            mark, style = MARK.get(s.status, ("?", ""))
            fraction = (1.0 if s.status == "done" else
                        s.done / s.total if s.total and s.done is not None else None)
            counts = f"{s.done}/{s.total}" if s.total else ""
            text.append(f"{mark} ", style=style)
            text.append(f"{s.stage:<12}")
            text.append(fmt.bar(fraction if s.status != "pending" else 0.0, bar_width),
                        style=style)
            text.append(f" {counts:>9} {fmt.duration(s.seconds):>6}")
            if i < len(stages) - 1:
                text.append("\n")
        self.update(text)
