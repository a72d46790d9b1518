"""A live line chart (textual-plotext) of metric series against the step, with a vertical rule
at each iteration boundary. Series arrive already downsampled to the chart's width.

A chart must not turn noise into a trend: left to itself plotext stretches any range to the full
height, so the first DPO steps (loss 0.6931468 ± 1e-7) climb corner to corner. Each y axis
therefore spans at least `min_span`, centred on the data, and always takes in the reference
lines (`references`, e.g. ln 2 where the DPO loss starts), which are drawn with their label. A
series of one point is drawn as a visible marker (a lone braille dot is nearly invisible)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from textual.app import RenderResult
from textual_plotext import PlotextPlot

from cream_engine.results import Point

# (label, points, plotext colour, "left" | "right")
Line = tuple[str, Sequence[Point], str, str]
Reference = tuple[float, str]   # (y, label): a horizontal line on the left axis

POINT_MARKER = "●"   # a series of a single point


def y_range(values: Sequence[float], min_span: float = 0.0,
            bounds: tuple[float, float] | None = None) -> tuple[float, float]:
    """The y limits for these values: their range when it is at least `min_span`, else
    `min_span` centred on them, moved inside `bounds` (the values a metric can take: an
    accuracy's axis does not go below 0) as far as they allow. All values equal and no
    `min_span`: a tenth of their size (1 around 0), so a constant is a flat line mid-height."""
    lo, hi = min(values), max(values)
    if hi - lo >= min_span and hi > lo:
        return lo, hi
    span = max(min_span, hi - lo) or (abs(lo) * 0.1 or 1.0)
    centre = (lo + hi) / 2
    low, high = centre - span / 2, centre + span / 2
    if bounds is not None:
        shift = max(bounds[0] - low, 0.0) or min(bounds[1] - high, 0.0)
        low, high = max(low + shift, min(bounds[0], lo)), min(high + shift, max(bounds[1], hi))
    return low, high


class MetricChart(PlotextPlot):
    def __init__(self, title: str, *, id: str | None = None, xlabel: str = "step",
                 integer_x: bool = False, min_span: float = 0.0,
                 references: Sequence[Reference] = ()):
        super().__init__(id=id)
        self.title = title
        self.xlabel = xlabel
        self.integer_x = integer_x   # ticks on whole numbers only (iterations)
        self.min_span = min_span     # each y axis spans at least this much
        self.references = tuple(references)
        self._shown: object = None
        self._title = title
        self.show_lines([], ())

    def render(self) -> RenderResult:
        # plotext drops a title longer than the frame leaves room for: cut it to fit
        room = self.size.width - 6   # (measured: plotext keeps up to width - 5)
        title = self._title
        self.plt.title(title if len(title) <= room or room < 8 else title[:room - 1] + "…")
        return super().render()

    @property
    def buckets(self) -> int:
        """How many min/max buckets fit: one per cell of the plotting area."""
        return max(self.size.width - 12, 20)

    def show_lines(self, lines: Sequence[Line], boundaries: Sequence[tuple[float, int]],
                   title: str | None = None, *, min_span: float | None = None,
                   references: Sequence[Reference] | None = None,
                   bounds: tuple[float, float] | None = None) -> None:
        """Draw the lines; `min_span` and `references` replace the chart's own for this
        drawing (a chart that steps through metrics of different scales), `bounds` are the
        values the left axis's metric can take (`y_range`)."""
        span = self.min_span if min_span is None else min_span
        refs = self.references if references is None else tuple(references)
        key = (tuple(lines), tuple(boundaries), title, span, refs, bounds)
        if key == self._shown:
            return
        self._shown = key
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        self._title = title or self.title   # (set at each render, cut to the width then)
        plt.xlabel(self.xlabel)
        xs_all: list[float] = []
        ys_by_side: dict[str, list[float]] = {}
        for label, points, color, side in lines:
            pts = [(x, y) for x, y in points if y is not None and math.isfinite(y)]
            if not pts:
                continue
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            if len(pts) == 1:
                plt.scatter(xs, ys, label=label, color=color, marker=POINT_MARKER, yside=side)
            else:
                plt.plot(xs, ys, label=label, color=color, marker="braille", yside=side)
            xs_all += (min(xs), max(xs))
            ys_by_side.setdefault(side, []).extend(ys)
        if not xs_all:
            plt.text("no points yet", 0.5, 0.5, alignment="center")
            plt.xlim(0, 1)
            plt.ylim(0, 1)
            self.refresh()
            return
        lo, hi = min(xs_all), max(xs_all)
        if refs:
            ys_by_side.setdefault("left", []).extend(y for y, _ in refs)
        for side, ys in ys_by_side.items():
            plt.ylim(*y_range(ys, span, bounds if side == "left" else None), yside=side)
        if hi == lo:   # (one x: a range around it, so the marker is not on the frame)
            plt.xlim(lo - 1, hi + 1)
        for y, label in refs:
            plt.hline(y, "gray")
            plt.text(label, hi, y, alignment="right", color="gray")
        for x, _ in boundaries:
            plt.vline(x, "gray")
        if boundaries:   # the x axis names where each iteration starts
            ticks = [(lo, f"{lo:g}")] + [(x, f"it{it}") for x, it in boundaries if lo < x < hi]
            ticks.append((hi, f"{hi:g}"))
            plt.xticks([t[0] for t in ticks], [t[1] for t in ticks])
        elif self.integer_x:
            whole = list(range(math.floor(lo) - (hi == lo), math.ceil(hi) + 1 + (hi == lo)))
            plt.xticks(whole, [str(x) for x in whole])
        self.refresh()
