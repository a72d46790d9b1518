"""One GPU on the GPU screen: utilisation and memory history, temperature, power, and the
processes on it mapped to our runs. A reading the board does not give is "N/A"."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from cream_tui import format as fmt
from cream_tui.gpu_history import GpuRow


def gpu_text(g: GpuRow, width: int) -> Text:
    used = fmt.na(g.memory_used_mb and g.memory_used_mb / 1024, "{:.1f}")
    total = fmt.na(g.memory_total_mb and g.memory_total_mb / 1024, "{:.1f} GB")
    spark = max(width - 34, 8)
    text = Text()
    text.append(f"GPU{g.index} {g.name}", style="bold")
    text.append(f"  {g.uuid}", style="dim")
    text.append("\n")
    text.append(f"temp {fmt.na(g.temperature_c, '{:.0f}°C')}   "
                f"power {fmt.na(g.power_w, '{:.0f} W')}   "
                f"reading {fmt.duration(g.age_s)} old\n")
    text.append(f"util {fmt.na(g.utilization, '{:4.0f}%')}  ")
    text.append(fmt.sparkline(g.util_history, spark, 0, 100), style="green")
    text.append("\n")
    text.append(f"mem  {fmt.na(g.memory_percent, '{:4.0f}%')}  ")
    text.append(fmt.sparkline(g.mem_history, spark, 0, 100), style="cyan")
    text.append(f"  {used} / {total}\n")
    if not g.processes:
        text.append("no processes", style="dim")
    for i, p in enumerate(g.processes):
        mem = fmt.na(p.used_memory_mb and p.used_memory_mb / 1024, "{:.1f} GB")
        owner = f"run {p.run_name or p.run_id}" if p.run_id else "not one of ours"
        text.append(("\n" if i else "") + f"pid {p.pid:<8} {mem:>8}  {owner}",
                    style="" if p.run_id else "dim")
    return text


class GpuPanel(Static):
    def __init__(self, gpu: GpuRow, width: int):
        super().__init__(classes="gpu-panel")
        self._key: object = None
        self.show_gpu(gpu, width)

    def show_gpu(self, gpu: GpuRow, width: int) -> None:
        if (gpu, width) == self._key:
            return
        self._key = (gpu, width)
        self.update(gpu_text(gpu, width))
