"""Two or more runs side by side, to say which method did better: first one verdict per main
metric (the runs' final models; better beyond noise, or within noise at this n), then every
result as a table of metrics × runs with its 95% interval and n, then charts: the DPO loss of
the runs overlaid (with ln 2, where DPO starts), mean τ per iteration, and one evaluation
metric per model M0, M1, … (`e` steps through them), then the config keys that differ."""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from cream_tui.compare_report import main_verdicts, table_rows, within_noise
from cream_tui.data import CompareData, DataSource
from cream_tui.screens.base import PolledScreen
from cream_tui.widgets.metric_chart import MetricChart

COLORS = ("cyan", "orange", "green", "magenta", "yellow", "blue", "red")
LN2 = (math.log(2), "ln 2")   # the DPO loss of a policy equal to its reference
LOSS_MIN_SPAN = 0.05          # the loss axis never zooms into noise below this
TAU_MIN_SPAN = 0.2


class CompareScreen(PolledScreen):
    DEFAULT_CSS = """
    CompareScreen #compare-title, CompareScreen #verdicts, CompareScreen #diff-title {
        padding: 0 1;
    }
    CompareScreen #verdicts { margin-bottom: 1; }
    CompareScreen #metrics { height: auto; max-height: 30; margin-bottom: 1; }
    CompareScreen #compare-plots {
        layout: grid; grid-size: 2; grid-rows: 14; height: auto;
    }
    CompareScreen #compare-plots MetricChart { width: 1fr; height: 14; }
    CompareScreen #eval-chart { column-span: 2; }
    CompareScreen.-wide #compare-plots { grid-size: 3; grid-rows: 16; }
    CompareScreen.-wide #compare-plots MetricChart { height: 16; }
    CompareScreen.-wide #eval-chart { column-span: 1; }
    """
    BINDINGS = [Binding("escape,backspace", "back", "Back"),
                Binding("e", "next_metric", "Next metric")]

    def __init__(self, run_ids: tuple[str, ...]):
        super().__init__()
        self.run_ids = run_ids
        self.metric = 0                      # which of the evaluation metrics is charted
        self._data: CompareData | None = None
        self._tables: dict[str | None, tuple] = {}   # what each table shows

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with VerticalScroll(id="compare-body"):
            yield Static(id="compare-title", classes="section")
            yield Static(id="verdicts")
            yield DataTable(id="metrics", cursor_type="none", show_cursor=False,
                            zebra_stripes=True)
            with Container(id="compare-plots"):
                yield MetricChart("DPO loss, runs overlaid", id="loss-chart",
                                  min_span=LOSS_MIN_SPAN, references=(LN2,))
                yield MetricChart("mean τ per iteration", id="tau-chart", xlabel="iteration",
                                  integer_x=True, min_span=TAU_MIN_SPAN,
                                  references=((0.0, "τ 0"),))
                yield MetricChart("evaluation per model", id="eval-chart",
                                  xlabel="model M_k", integer_x=True)
            yield Static(id="diff-title", classes="section")
            yield DataTable(id="config-diff", cursor_type="none", show_cursor=False,
                            zebra_stripes=True)
        yield Footer()

    def load(self, source: DataSource, now: float) -> CompareData:
        return source.compare_data(self.run_ids)

    def show(self, data: CompareData) -> None:
        self.sub_title = "compare"
        title = self.query_one("#compare-title", Static)
        if data.problem:
            title.update(Text(data.problem, style="bold red"))
            for widget in ("#verdicts", "#metrics", "#compare-plots", "#diff-title",
                           "#config-diff"):
                self.query_one(widget).display = False
            return
        for widget in ("#verdicts", "#compare-plots", "#diff-title", "#config-diff"):
            self.query_one(widget).display = True
        heads = [f"{label} {model}" if model else f"{label} (not evaluated)"
                 for label, model in zip(data.labels, data.finals)]
        title.update(Text.assemble(("final models", "bold"), ": " + ", ".join(heads)))
        self.query_one("#verdicts", Static).update(self._verdicts(data))
        self._table(data)
        colours = [COLORS[i % len(COLORS)] for i in range(len(data.labels))]
        self.query_one("#loss-chart", MetricChart).show_lines(
            [(label, pts, c, "left") for (label, pts), c in zip(data.loss, colours)], ())
        self.query_one("#tau-chart", MetricChart).show_lines(
            [(label, pts, c, "left") for (label, pts), c in zip(data.tau, colours)], ())
        self._data = data
        self._show_metric()
        self._diff(data)

    def _verdicts(self, data: CompareData) -> Text:
        text = Text.assemble(("which did better", "bold"),
                             " (final models; 95% intervals, ? explains)")
        main = main_verdicts(data.metrics)
        if not main:
            text.append("\n  no evaluation yet: verdicts come with the runs' evaluations")
        for m in main:
            style = "dim" if within_noise(m.verdict) else \
                "green" if "better" in m.verdict else ""
            text.append("\n• ")
            text.append(m.metric.title, style="bold")
            text.append(": ")
            text.append(m.verdict, style=style)
        if len(main) < len(data.metrics):
            text.append(f"\n  ({len(data.metrics) - len(main)} more results in the table)",
                        style="dim")
        return text

    def _fill(self, table: DataTable, columns: list[str], rows: list[list]) -> None:
        """Fill a table, unless it already shows these rows (a redraw after a resize would
        clear it and lay it out again for nothing)."""
        key = (tuple(columns), tuple(tuple(str(c) for c in r) for r in rows))
        if self._tables.get(table.id) == key:
            return
        self._tables[table.id] = key
        table.clear(columns=True)
        table.add_columns(*columns)
        for row in rows:
            table.add_row(*row)
        # a set height: with `auto`, a table filled after the body was laid out could stay
        # 0 rows tall (its size is measured later, when idle); a wide one gets a scrollbar row
        width = sum(max(len(c) for c in column) + 2 for column in zip(columns, *key[1]))
        table.styles.height = len(rows) + 1 + (width > self.size.width - 2)

    def _table(self, data: CompareData) -> None:
        table = self.query_one("#metrics", DataTable)
        table.display = bool(data.metrics)
        self._fill(table, ["metric", *(f"{label} {model}" if model else label
                                       for label, model in zip(data.labels, data.finals))],
                   [[Text(label, style="bold" if heading else ""),
                     *(Text(c, style="dim") if heading else c for c in cells)]
                    for label, heading, cells in table_rows(data.metrics)])

    def _diff(self, data: CompareData) -> None:
        title = self.query_one("#diff-title", Static)
        table = self.query_one("#config-diff", DataTable)
        title.update(Text.assemble(("config diff", "bold"),
                                   f": {len(data.diff)} keys differ between "
                                   f"{', '.join(data.labels)} (names aside)"))
        self._fill(table, ["key", *data.labels],
                   [[key, *values] for key, values in data.diff]
                   or [["(same config)", *("" for _ in data.labels)]])

    def _show_metric(self) -> None:
        evals = self.query_one("#eval-chart", MetricChart)
        data = self._data
        if data is None or not data.evaluations:
            evals.show_lines([], (), title="evaluation: none yet")
            return
        i = self.metric % len(data.evaluations)
        key, lines = data.evaluations[i]
        title, n, span, bounds = data.eval_spans[i] if i < len(data.eval_spans) \
            else (key, "n unknown", 0.0, None)
        more = f"; e: {len(data.evaluations) - 1} more" if len(data.evaluations) > 1 else ""
        evals.show_lines([(label, pts, COLORS[j % len(COLORS)], "left")
                          for j, (label, pts) in enumerate(lines)], (),
                         title=f"{title} ({n}{more})", min_span=span, bounds=bounds)

    def action_next_metric(self) -> None:
        self.metric += 1
        self._show_metric()

    def action_back(self) -> None:
        self.app.pop_screen()
