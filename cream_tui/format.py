"""Small text helpers shared by the screens: durations, numbers, memory, sparklines, progress
bars. A missing value is shown as "-" (or "N/A" for a GPU reading), never raised.

Memory, GPU and host alike, has one style everywhere: binary units, GiB with one decimal from
1 GiB up (`38.2 GiB`, `38.2/79.6 GiB`), whole MiB below (`512 MiB`), as NVML and /proc count."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence

BLOCKS = "▁▂▃▄▅▆▇█"
MIB_PER_GIB = 1024.0


def duration(seconds: float | None) -> str:
    """`42s`, `7m05s`, `3h02m`, `2d04h`; "-" when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def estimate(seconds: float | None) -> str:
    """An ETA: as `duration` below ten minutes, to the minute above (`56m`, `3h02m`): an
    estimate has no second to give, and a table of them then redraws once a minute."""
    if seconds is None or not math.isfinite(seconds) or seconds < 600:
        return duration(seconds)
    if seconds < 3600:
        return f"{min(round(seconds / 60), 59)}m"
    return duration(seconds)


def num(value: object, fmt: str = "{:.3f}") -> str:
    """A number, or "-" when it is missing, not a number, or not finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    return fmt.format(value)


def config_value(value: object) -> str:
    """A config value as TOML would spell it ("(unset)" where a config lacks the key)."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(config_value(v) for v in value) + "]"
    return str(value)


def clock(ts: float | None) -> str:
    """A local date and time, to the minute; "-" when unknown."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def na(value: float | None, fmt: str) -> str:
    """A GPU reading: "N/A" when the board does not report it."""
    return "N/A" if value is None else fmt.format(value)


def memory(mib: float | None) -> str:
    """`38.2 GiB`, `512 MiB`; "N/A" when unknown."""
    if mib is None or not math.isfinite(mib):
        return "N/A"
    return f"{mib / MIB_PER_GIB:.1f} GiB" if abs(mib) >= MIB_PER_GIB else f"{mib:.0f} MiB"


def memory_pair(used_mib: float | None, total_mib: float | None) -> str:
    """Used of total in the total's unit: `38.2/79.6 GiB`, `300/512 MiB`, `N/A/79.6 GiB`."""
    if total_mib is None or not math.isfinite(total_mib):
        return "N/A" if used_mib is None else f"{memory(used_mib)}/N/A"
    gib = abs(total_mib) >= MIB_PER_GIB
    scale, unit, spec = (MIB_PER_GIB, "GiB", "{:.1f}") if gib else (1.0, "MiB", "{:.0f}")
    used = "N/A" if used_mib is None or not math.isfinite(used_mib) \
        else spec.format(used_mib / scale)
    return f"{used}/{spec.format(total_mib / scale)} {unit}"


def sparkline(values: Sequence[float | None], width: int | None = None,
              lo: float | None = None, hi: float | None = None) -> str:
    """One block character per value (the last `width` values); a gap for a missing one."""
    vals = list(values)[-width:] if width else list(values)
    present = [v for v in vals if v is not None and math.isfinite(v)]
    if not present:
        return " " * len(vals)
    lo = min(present) if lo is None else lo
    hi = max(present) if hi is None else hi
    span = hi - lo
    out = []
    for v in vals:
        if v is None or not math.isfinite(v):
            out.append(" ")
            continue
        frac = 0.5 if span <= 0 else (min(max(v, lo), hi) - lo) / span
        out.append(BLOCKS[min(int(frac * len(BLOCKS)), len(BLOCKS) - 1)])
    return "".join(out)


def sparkline_rows(values: Sequence[float | None], width: int, height: int,
                   lo: float = 0.0, hi: float = 100.0) -> list[str]:
    """A sparkline `height` rows tall (top row first): each value fills its column from the
    bottom in eighths of a row; a gap for a missing one."""
    vals = list(values)[-width:] if width else list(values)
    eighths = [None if v is None or not math.isfinite(v) else      # (at least ▁: present)
               max(round((min(max(v, lo), hi) - lo) / (hi - lo or 1) * height * 8), 1)
               for v in vals]
    rows = []
    for r in range(height - 1, -1, -1):           # r: rows of eighths below this one
        row = []
        for e in eighths:
            fill = 0 if e is None else min(max(e - r * 8, 0), 8)
            row.append(BLOCKS[fill - 1] if fill else " ")
        rows.append("".join(row))
    return rows


def bar(fraction: float | None, width: int) -> str:
    """A text progress bar `█████░░░░░` (all light when unknown)."""
    if fraction is None:
        return "░" * width
    full = round(min(max(fraction, 0.0), 1.0) * width)
    return "█" * full + "░" * (width - full)


def truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def percent(done: int | None, total: int | None) -> str:
    if not total or done is None:
        return ""
    return f"{100 * done / total:.0f}%"


def joined(parts: Iterable[str], sep: str = " · ") -> str:
    return sep.join(p for p in parts if p)
