"""The compact GPU strip of the home screen: per GPU, utilisation and memory with a history
sparkline; the plain reason when there is no GPU."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from cream_tui import format as fmt
from cream_tui.gpu_history import GpuState

MAX_LINES = 4


class GpuStrip(Static):
    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self._state: object = None
        self._width = 0

    def show_state(self, state: GpuState, width: int) -> None:
        if (state, width) == (self._state, self._width):
            return
        self._state, self._width = state, width
        if not state.gpus:
            self.update(Text(f"GPU  {state.reason or 'no GPU on this machine'}", style="dim"))
            return
        spark = max(min((width - 44) // 2, 30), 4)
        text = Text()
        for i, g in enumerate(state.gpus[:MAX_LINES]):
            if i:
                text.append("\n")
            text.append(f"GPU{g.index} ", style="bold")
            text.append(f"util {fmt.na(g.utilization, '{:3.0f}%')} ")
            text.append(fmt.sparkline(g.util_history, spark, 0, 100), style="green")
            text.append(f"  mem {fmt.na(g.memory_percent, '{:3.0f}%')} ")
            text.append(fmt.sparkline(g.mem_history, spark, 0, 100), style="cyan")
            used = fmt.na(g.memory_used_mb and g.memory_used_mb / 1024, "{:.0f}")
            total = fmt.na(g.memory_total_mb and g.memory_total_mb / 1024, "{:.0f}G")
            text.append(f" {used}/{total}")
        if len(state.gpus) > MAX_LINES:
            text.append(f"\n… {len(state.gpus) - MAX_LINES} more: press g", style="dim")
        self.update(text)
