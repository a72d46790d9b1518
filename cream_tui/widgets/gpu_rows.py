"""The GPU screen's list: two lines per GPU, so that eight fit an 80×24 terminal. The first
says which GPU, its temperature, power and processes; the second its utilisation and memory
as bars, coloured by level (`cream_tui.gpu_levels`). The selected GPU is marked; its processes
and history are in the detail below the list. A reading the board does not give is "N/A"."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widgets import Static

from cream_tui import format as fmt
from cream_tui import gpu_levels as levels
from cream_tui.gpu_history import GpuRow

LINES = 2          # per GPU
MAX_BAR = 50
MEM_W = 13         # `64.5/79.6 GiB`


def processes_summary(g: GpuRow) -> str:
    """`2 procs: scir-c`, `1 proc`, `no processes`."""
    if not g.processes:
        return "no processes"
    runs = sorted({p.run_name or p.run_id for p in g.processes if p.run_id})
    n = len(g.processes)
    return f"{n} proc{'s' if n != 1 else ''}" + (f": {', '.join(runs)}" if runs else "")


def gpu_rows(g: GpuRow, width: int, selected: bool = False) -> Text:
    """The two lines of one GPU, in columns that line up from one GPU to the next, each cut
    to `width`."""
    name_w = min(max(width - 54, 12), 36)
    first = Text()
    first.append("▶ " if selected else "  ", style="bold")
    first.append(f"GPU{g.index}".ljust(5), style="bold reverse" if selected else "bold")
    first.append(" " + fmt.truncate(g.name, name_w).ljust(name_w), style="bold")
    first.append("  temp ")
    first.append_text(_right(levels.temperature(g.temperature_c), 4))
    first.append(f"  power {fmt.na(g.power_w, '{:.0f} W'):>5}  ")
    first.append(processes_summary(g), style="dim")
    first.truncate(width, overflow="ellipsis")

    mem = fmt.memory_pair(g.memory_used_mb, g.memory_total_mb)
    bar = max(min((width - 28 - MEM_W) // 2, MAX_BAR), 4)
    second = Text("    util  ")
    second.append_text(_right(levels.percent(g.utilization, "{:.0f}%"), 4))
    second.append(" ")
    second.append_text(levels.load_bar(g.utilization, bar))
    second.append("  mem  ")
    second.append_text(_right(levels.percent(g.memory_percent, "{:.0f}%"), 4))
    second.append(" ")
    second.append_text(levels.load_bar(g.memory_percent, bar))
    second.append(f" {mem:>{MEM_W}}")
    second.truncate(width, overflow="ellipsis")
    return Text("\n").join([first, second])


def _right(text: Text, width: int) -> Text:
    return Text(" " * max(width - text.cell_len, 0)) + text


class GpuRows(Static):
    """Every GPU in two lines; a click picks one (the screen keeps the selection)."""

    DEFAULT_CSS = "GpuRows { height: auto; }"

    class Picked(Message):
        def __init__(self, position: int) -> None:
            super().__init__()
            self.position = position

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._key: object = None

    def show_rows(self, gpus: Sequence[GpuRow], selected: int, width: int) -> None:
        if (gpus, selected, width) == self._key:
            return
        self._key = (gpus, selected, width)
        self.update(Text("\n").join(gpu_rows(g, width, i == selected)
                                    for i, g in enumerate(gpus)))

    def on_click(self, event: events.Click) -> None:
        self.post_message(self.Picked(event.y // LINES))
