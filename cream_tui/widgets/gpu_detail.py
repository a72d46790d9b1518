"""The selected GPU under the GPU screen's list: its processes as a table (pid, user, GPU
memory, %SM, host CPU % and RSS, the run it belongs to, the command), then its utilisation and
memory history. A value nothing gives is "—"; a process that is not one of our runs is dim."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text

from cream_tui import format as fmt
from cream_tui.gpu_history import GpuRow, ProcRow

DASH = "—"
HISTORY_LINES = 3     # the gap above and two sparklines
MAX_CHART = 8         # rows of a history chart where the screen has room
MAX_RUN = 16


def _or_dash(value: Any, show: Callable[[Any], str]) -> str:
    return DASH if value is None else show(value)


def _run(p: ProcRow) -> str:
    return (p.run_name or p.run_id) if p.run_id else DASH


def process_lines(g: GpuRow, width: int) -> list[Text]:
    """A header and one line per process, each cut to `width`."""
    if not g.processes:
        return [Text("no processes on this GPU", style="dim")]
    run_w = min(max(3, *(len(_run(p)) for p in g.processes)), MAX_RUN)
    lines = [Text(f"{'PID':>7} {'USER':<8} {'GPU-MEM':>9} {'SM%':>4} {'CPU%':>6} "
                  f"{'HOST-MEM':>9}  {'RUN':<{run_w}} COMMAND", style="bold")]
    for p in g.processes:
        line = Text(
            f"{p.pid:>7} {fmt.truncate(p.user or DASH, 8):<8} "
            f"{_or_dash(p.used_memory_mb, fmt.memory):>9} "
            f"{_or_dash(p.sm_percent, '{:.0f}'.format):>4} "
            f"{_or_dash(p.cpu_percent, '{:.1f}'.format):>6} "
            f"{_or_dash(p.rss_mb, fmt.memory):>9}  "
            f"{fmt.truncate(_run(p), run_w):<{run_w}} {p.command or DASH}",
            style="" if p.run_id else "dim")
        lines.append(line)
    for line in lines:
        line.truncate(width, overflow="ellipsis")
    return lines


def history_lines(g: GpuRow, width: int, height: int = 1) -> list[Text]:
    """Utilisation and memory (percent of the board) over the samples kept, newest right:
    each a chart `height` rows tall, its label and latest value on its top row."""
    spark = max(width - 15, 8)
    lines = []
    for label, values, style in (("util", g.util_history, "green"),
                                 ("mem", g.mem_history, "cyan")):
        latest = next((v for v in reversed(values) if v is not None), None)
        for i, row in enumerate(fmt.sparkline_rows(values, spark, height)):
            line = Text(f"{label:<4} {fmt.na(latest, '{:3.0f}%'):>4} history " if i == 0
                        else " " * 15)
            line.append(row, style=style)
            lines.append(line)
    return lines


def title_line(g: GpuRow, width: int) -> Text:
    """`── GPU0 NVIDIA H100 80GB HBM3 · GPU-… · reading 0s old ───`: a rule that says which."""
    title = Text("── ")
    title.append(f"GPU{g.index} {g.name}", style="bold")
    title.append(f" · {g.uuid} · reading {fmt.duration(g.age_s)} old ", style="dim")
    title.truncate(width, overflow="ellipsis")
    title.append("─" * (width - title.cell_len))
    return title


def detail_text(g: GpuRow, width: int, history: str = "after", room: int = 0) -> Text:
    """history: "after" the processes (as tall as `room` lines allow, up to MAX_CHART rows
    each), "first" (above them, one row each), or "off"."""
    body = process_lines(g, width)
    if history == "after":
        height = min(max((room - lines_needed(g)[0] - 1) // 2, 1), MAX_CHART)
        body = body + [Text("")] + history_lines(g, width, height)
    elif history == "first":
        body = history_lines(g, width) + [Text("")] + body
    return Text("\n").join([title_line(g, width), *body])


def lines_needed(g: GpuRow) -> tuple[int, int]:
    """(lines without the history, lines with it after the processes, one row a chart)."""
    base = 1 + (1 + len(g.processes) if g.processes else 1)
    return base, base + HISTORY_LINES


def no_gpu_text(reason: str) -> Text:
    text = Text()
    text.append("No GPU on this machine.", style="bold")
    text.append(f"\n\n {reason}\n\n Runs use the CPU here; the worker starts one job at a "
                "time.", style="dim")
    return text
