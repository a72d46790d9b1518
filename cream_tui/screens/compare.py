"""Two or more runs side by side: their configs as a diff (only the keys that differ), their
per-iteration mean τ, and one evaluation metric per model (M0, M1, …) overlaid, starting with
the headline one; `e` steps through the others (evaluation once runs have it)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from cream_tui.data import CompareData, DataSource
from cream_tui.screens.base import PolledScreen
from cream_tui.widgets.metric_chart import MetricChart

COLORS = ("cyan", "orange", "green", "magenta", "yellow", "blue", "red")


class CompareScreen(PolledScreen):
    BINDINGS = [Binding("escape,backspace", "back", "Back"),
                Binding("e", "next_metric", "Next metric")]

    def __init__(self, run_ids: tuple[str, ...]):
        super().__init__()
        self.run_ids = run_ids
        self.metric = 0                      # which of the evaluation metrics is shown
        self._data: CompareData | None = None

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with VerticalScroll(id="compare-body"):
            yield Static(id="compare-title", classes="section")
            yield DataTable(id="config-diff", cursor_type="none", show_cursor=False,
                            zebra_stripes=True)
            with Horizontal(id="compare-charts"):
                yield MetricChart("mean τ per iteration", id="tau-chart", xlabel="iteration",
                                  integer_x=True)
                yield MetricChart("evaluation per model", id="eval-chart",
                                  xlabel="model M_k", integer_x=True)
        yield Footer()

    def load(self, source: DataSource, now: float) -> CompareData:
        return source.compare_data(self.run_ids)

    def show(self, data: CompareData) -> None:
        self.sub_title = "compare"
        title = self.query_one("#compare-title", Static)
        table = self.query_one("#config-diff", DataTable)
        if data.problem:
            title.update(Text(data.problem, style="bold red"))
            table.display = False
            return
        title.update(Text.assemble(("config diff", "bold"),
                                   f": {len(data.diff)} keys differ between "
                                   f"{', '.join(data.labels)}"))
        table.clear(columns=True)
        table.add_columns("key", *data.labels)
        for key, values in data.diff:
            table.add_row(key, *values)
        if not data.diff:
            table.add_row("(same config)", *("" for _ in data.labels))
        self.query_one("#tau-chart", MetricChart).show_lines(
            [(label, pts, COLORS[i % len(COLORS)], "left")
             for i, (label, pts) in enumerate(data.tau)], ())
        self._data = data
        self._show_metric()

    def _show_metric(self) -> None:
        evals = self.query_one("#eval-chart", MetricChart)
        data = self._data
        if data is None or not data.evaluations:
            evals.show_lines([], (), title="evaluation: none yet")
            return
        key, lines = data.evaluations[self.metric % len(data.evaluations)]
        more = f" (e: {len(data.evaluations) - 1} more)" if len(data.evaluations) > 1 else ""
        evals.show_lines([(label, pts, COLORS[i % len(COLORS)], "left")
                          for i, (label, pts) in enumerate(lines)], (),
                         title=f"evaluation: {key}{more}")

    def action_next_metric(self) -> None:
        self.metric += 1
        self._show_metric()

    def action_back(self) -> None:
        self.app.pop_screen()
