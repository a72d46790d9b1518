"""The compact GPU strip of the home screen: per GPU, utilisation and memory with a history
sparkline, memory used and temperature, coloured by level; the plain reason when there is no
GPU."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from cream_tui import format as fmt
from cream_tui import gpu_levels as levels
from cream_tui.data import HostView
from cream_tui.gpu_history import GpuRow, GpuState

MAX_LINES = 4
HOSTS_LINES = 9     # lines of the strip over several hosts, their own lines included
HOST_STYLE = {"local": "green", "up": "green", "slow": "yellow", "connecting": "yellow",
              "down": "bold red", "mismatch": "bold red"}


class GpuStrip(Static):
    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self._state: object = None
        self._width = 0

    def show_state(self, state: GpuState, width: int) -> None:
        if (state, width) == (self._state, self._width):
            return
        self._state, self._width = state, width
        if not state.gpus:
            self.update(Text(f"GPU  {state.reason or 'no GPU on this machine'}", style="dim"))
            return
        text = Text()
        for i, g in enumerate(state.gpus[:MAX_LINES]):
            if i:
                text.append("\n")
            gpu_line(text, g, width)
        if len(state.gpus) > MAX_LINES:
            text.append(f"\n… {len(state.gpus) - MAX_LINES} more: press g", style="dim")
        self.update(text)

    def show_hosts(self, hosts: Sequence[HostView], width: int) -> None:
        """Several boxes: per host a line with its state, then its GPUs (fewer each as there
        are more hosts)."""
        if (hosts, width) == (self._state, self._width):
            return
        self._state, self._width = hosts, width
        per_host = max((HOSTS_LINES - len(hosts)) // max(len(hosts), 1), 1)
        text = Text()
        for i, host in enumerate(hosts):
            if i:
                text.append("\n")
            line = Text(f"{host.name} ", style="bold")
            state = host.line if host.state in ("local", "up") else f"{host.state}: {host.line}"
            line.append(state, style=HOST_STYLE.get(host.state, "dim"))
            line.append(f"  {host.runs} runs" + ("  queue drained" if host.drained else ""),
                        style="dim")
            if not host.gpus.gpus and host.state in ("local", "up"):
                line.append(f"  {host.gpus.reason or 'no GPU'}", style="dim")
            line.truncate(max(width - 2, 20), overflow="ellipsis")
            text.append_text(line)
            for g in host.gpus.gpus[:per_host]:
                text.append("\n  ")
                gpu_line(text, g, width - 2)
            if len(host.gpus.gpus) > per_host:
                text.append(f"\n  … {len(host.gpus.gpus) - per_host} more: press g",
                            style="dim")
        self.update(text)


def gpu_line(text: Text, g: GpuRow, width: int) -> None:
    """One GPU: utilisation and memory, each with its history sparkline, then the memory in
    GiB and the temperature; loads and temperature coloured by level (as on the GPU screen)."""
    spark = max(min((width - 50) // 2, 30), 4)
    text.append(f"GPU{g.index} ", style="bold")
    text.append("util ")
    text.append_text(levels.percent(g.utilization))
    text.append(" ")
    text.append(fmt.sparkline(g.util_history, spark, 0, 100), style="green")
    text.append("  mem ")
    text.append_text(levels.percent(g.memory_percent))
    text.append(" ")
    text.append(fmt.sparkline(g.mem_history, spark, 0, 100), style="cyan")
    text.append(f" {fmt.memory_pair(g.memory_used_mb, g.memory_total_mb):>13}  ")
    text.append_text(levels.temperature(g.temperature_c))
