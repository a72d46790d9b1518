"""A live line chart (textual-plotext) of metric series against the step, with a vertical rule
at each iteration boundary. Series arrive already downsampled to the chart's width."""

from __future__ import annotations

from collections.abc import Sequence

from textual_plotext import PlotextPlot

from cream_engine.results import Point

# (label, points, plotext colour, "left" | "right")
Line = tuple[str, Sequence[Point], str, str]


class MetricChart(PlotextPlot):
    def __init__(self, title: str, *, id: str | None = None, xlabel: str = "step",
                 integer_x: bool = False):
        super().__init__(id=id)
        self.title = title
        self.xlabel = xlabel
        self.integer_x = integer_x   # ticks on whole numbers only (iterations)
        self._shown: object = None
        self.show_lines([], ())

    @property
    def buckets(self) -> int:
        """How many min/max buckets fit: one per cell of the plotting area."""
        return max(self.size.width - 12, 20)

    def show_lines(self, lines: Sequence[Line], boundaries: Sequence[tuple[float, int]],
                   title: str | None = None) -> None:
        key = (tuple(lines), tuple(boundaries), title)
        if key == self._shown:
            return
        self._shown = key
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title or self.title)
        plt.xlabel(self.xlabel)
        drawn = False
        xs_all: list[float] = []
        for label, points, color, side in lines:
            if not points:
                continue
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            plt.plot(xs, ys, label=label, color=color, marker="braille", yside=side)
            xs_all += (xs[0], xs[-1])
            drawn = True
        for x, _ in boundaries:
            plt.vline(x, "gray")
        if drawn and boundaries:   # the x axis names where each iteration starts
            lo, hi = min(xs_all), max(xs_all)
            ticks = [(lo, f"{lo:g}")] + [(x, f"it{it}") for x, it in boundaries if lo < x < hi]
            ticks.append((hi, f"{hi:g}"))
            plt.xticks([t[0] for t in ticks], [t[1] for t in ticks])
        elif drawn and self.integer_x:
            whole = list(range(int(min(xs_all)), int(max(xs_all)) + 1))
            plt.xticks(whole, [str(x) for x in whole])
        if not drawn:
            plt.text("no points yet", 0.5, 0.5, alignment="center")
            plt.xlim(0, 1)
            plt.ylim(0, 1)
        self.refresh()
