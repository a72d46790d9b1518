"""Small histograms in text, one line each: the label, n, the range, then one block character
per bin whose height is the bin's count (a shape at a glance: are the rewards spread or all
tied, are the margins near zero, is C bunched at ½). As wide as the widget allows."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.text import Text
from textual.widget import Widget

from cream_tui import format as fmt

MAX_BINS, MIN_BINS = 48, 8


def bin_counts(values: Sequence[float], bins: int) -> tuple[list[int], float, float]:
    """(counts, lo, hi) of the finite values in `bins` equal bins over their range."""
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return [], 0.0, 0.0
    lo, hi = min(finite), max(finite)
    counts = [0] * max(bins, 1)
    span = hi - lo
    for v in finite:
        k = 0 if span <= 0 else min(int((v - lo) / span * len(counts)), len(counts) - 1)
        counts[k] += 1
    return counts, lo, hi


def histogram_line(label: str, values: Sequence[float], width: int,
                   label_width: int = 9) -> Text:
    """`label  n=120 [-3.2, 1.5] ▁▂▅█▆▃▁` fitted to `width` cells."""
    head = f"{label:<{label_width}} "
    counts, lo, hi = bin_counts(values, 1)
    n = sum(counts)
    if n == 0:
        return Text.assemble((head, "bold"), ("n=0 (none yet)", "dim"))
    stats = f"n={n} [{fmt.num(lo, '{:.3g}')}, {fmt.num(hi, '{:.3g}')}] "
    # about 2√n bins (a few values in many bins is a comb, not a shape), as room allows
    bins = max(min(width - len(head) - len(stats), MAX_BINS, max(math.ceil(2 * math.sqrt(n)),
                                                                  MIN_BINS)), 4)
    counts, _, _ = bin_counts(values, bins if hi > lo else 1)
    top = max(counts)
    bars = "".join(fmt.BLOCKS[min(int(c / top * (len(fmt.BLOCKS) - 1) + 0.999),
                                  len(fmt.BLOCKS) - 1)] if c else " " for c in counts)
    return Text.assemble((head, "bold"), (stats, ""), (bars, "cyan"))


class Histogram(Widget):
    """Several named histograms, a line each (`show([(label, values), ...])`)."""

    DEFAULT_CSS = """
    Histogram {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self._series: tuple[tuple[str, tuple[float, ...]], ...] = ()

    def show(self, series: Sequence[tuple[str, Sequence[float]]]) -> None:
        value = tuple((label, tuple(values)) for label, values in series)
        if value != self._series:
            self._series = value
            self.refresh(layout=True)

    def get_content_height(self, container, viewport, width: int) -> int:
        return max(len(self._series), 1)

    def render(self) -> Text:
        width = self.content_size.width or 80
        lines = [histogram_line(label, values, width) for label, values in self._series]
        return Text("\n").join(lines) if lines else Text("")
