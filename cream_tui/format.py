"""Small text helpers shared by the screens: durations, numbers, sparklines, progress bars.
A missing value is shown as "-" (or "N/A" for a GPU reading), never raised."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence

BLOCKS = "▁▂▃▄▅▆▇█"


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
