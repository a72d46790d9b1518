"""Charts that cannot mislead: a y axis never spans less than `min_span` (a DPO loss that sits
at ln 2 ± 1e-7 is drawn flat, not corner to corner), reference lines are drawn with their label,
and a series of one point is a visible marker."""

from __future__ import annotations

import math
import re

import pytest
from textual.app import App, ComposeResult

from cream_tui.widgets.metric_chart import POINT_MARKER, MetricChart, y_range
from tests.tui.helpers import screen_text

LN2 = math.log(2)
BRAILLE = re.compile("[\u2801-\u28ff]")


class ChartApp(App):
    def __init__(self, chart: MetricChart):
        super().__init__()
        self.chart = chart

    def compose(self) -> ComposeResult:
        yield self.chart


def y_ticks(text: str) -> list[float]:
    return [float(m.group(1))
            for m in re.finditer(r"^\s*(-?\d+\.\d+)\s*[┤├]", text, re.MULTILINE)]


def test_y_range() -> None:
    low, high = y_range([0.6931468, 0.6931469], 0.05)
    assert high - low == pytest.approx(0.05) and (low + high) / 2 == pytest.approx(0.69314685)
    assert y_range([0.1, 0.7], 0.05) == (0.1, 0.7)            # wide enough: the data's range
    assert y_range([2.0, 2.0]) == pytest.approx((1.9, 2.1))                  # a constant: flat, mid-height
    assert y_range([0.0]) == (-0.5, 0.5)
    # an accuracy of 1/12 and 2/12 with a 0.4 span stays within 0..1
    assert y_range([1 / 12, 2 / 12], 0.4, (0.0, 1.0)) == (0.0, 0.4)
    assert y_range([0.95, 0.97], 0.4, (0.0, 1.0)) == pytest.approx((0.6, 1.0))


async def test_flat_loss_is_flat_and_ln2_is_drawn() -> None:
    chart = MetricChart("DPO loss", min_span=0.05, references=((LN2, "ln 2"),))
    app = ChartApp(chart)
    async with app.run_test(size=(60, 18)) as pilot:
        chart.show_lines([("loss", [(float(s), 0.6931468 + 1e-7 * math.sin(s))
                                    for s in range(1, 41)], "orange", "left")], ())
        await pilot.pause()
        text = screen_text(app)
        ticks = y_ticks(text)
        assert ticks and max(ticks) - min(ticks) >= 0.045, text    # not 2e-7
        assert "ln 2" in text
        # the line and the ln 2 rule share one row or two: flat
        rows = [line for line in text.splitlines() if BRAILLE.search(line) and "loss" not in line]
        assert 1 <= len(rows) <= 2, text
        # without a minimum span the same noise fills the height (what users saw)
        chart.show_lines([("loss", [(float(s), 0.6931468 + 1e-7 * math.sin(s))
                                    for s in range(1, 41)], "orange", "left")], (),
                         min_span=0.0, references=())
        await pilot.pause()
        text = screen_text(app)
        assert "ln 2" not in text
        assert len([line for line in text.splitlines() if BRAILLE.search(line)]) > 4, text


async def test_single_point_is_a_marker() -> None:
    chart = MetricChart("mean τ", xlabel="iteration", integer_x=True)
    app = ChartApp(chart)
    async with app.run_test(size=(50, 16)) as pilot:
        chart.show_lines([("scir-z", [(1.0, 0.41)], "cyan", "left")], ())
        await pilot.pause()
        text = screen_text(app)
        plotted = [line for line in text.splitlines() if POINT_MARKER in line
                   and "scir-z" not in line]          # (the legend shows the marker too)
        assert len(plotted) == 1, text
        assert not BRAILLE.search(text.replace("scir-z", "")), text
