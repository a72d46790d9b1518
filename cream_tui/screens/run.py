"""One run: live DPO loss and reward margin/accuracy charts against the step (iteration
boundaries marked), the per-iteration table with a τ sparkline, the stage timeline of the
current iteration, and the tail of the job log (f toggles follow). p opens the drill-down of
an iteration (the one under the table's cursor when it has focus, else the newest): what the
model wrote and how it was rewarded, prompt by prompt; enter on the table does the same.

Narrow terminals (under 120 columns) stack everything in one scrolling column with the two
charts side by side; wide ones put the charts on the left and the rest on the right.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from cream_tui import format as fmt
from cream_tui.data import DataSource, RunData
from cream_tui.screens.base import PolledScreen
from cream_tui.screens.drilldown import DrilldownScreen
from cream_tui.widgets.iteration_table import GLOSSARY, IterationTable
from cream_tui.widgets.log_tail import LogTail
from cream_tui.widgets.metric_chart import MetricChart
from cream_tui.widgets.runs_table import STATUS_STYLE, stage_text
from cream_tui.widgets.stage_timeline import StageTimeline
from cream_tui.widgets.tau_sparkline import TauSparkline


class RunScreen(PolledScreen):
    BINDINGS = [Binding("escape,backspace", "back", "Back"),
                Binding("f", "follow", "Follow log"),
                Binding("p", "prompts", "Prompts")]

    def __init__(self, ref: str):
        super().__init__()
        self.ref = ref
        self._buckets = 60

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static(id="run-summary")
        with VerticalScroll(id="run-body"):
            with Horizontal(id="charts"):
                # a loss starts at ln 2 and moves by 1e-7 in its first steps: an axis at least
                # 0.05 tall keeps that flat, the ln 2 line says where "no preference" is
                yield MetricChart("DPO loss", id="loss-chart", min_span=0.05,
                                  references=((math.log(2), "ln 2"),))
                yield MetricChart("reward margin / accuracy", id="reward-chart", min_span=0.1)
            with Vertical(id="run-side"):
                yield Static("[b]iterations[/]: consistency and pairs", classes="section")
                yield IterationTable(id="iterations")
                yield Static(Text(GLOSSARY, style="dim"), id="iterations-glossary",
                             classes="section")
                yield TauSparkline(id="tau")
                yield StageTimeline(id="stages")
                yield Static(id="log-title", classes="section")
                yield LogTail(id="log")
        yield Footer()

    def load(self, source: DataSource, now: float) -> RunData:
        return source.run_data(self.ref, now, self._buckets)

    def show(self, data: RunData) -> None:
        summary = self.query_one("#run-summary", Static)
        body = self.query_one("#run-body")
        if data.problem or data.run is None:
            summary.update(Text(data.problem or "no such run", style="bold red"))
            body.display = False
            return
        body.display = True
        run = data.run
        self.sub_title = run.id
        summary.update(self._summary(data))
        loss_chart = self.query_one("#loss-chart", MetricChart)
        self._buckets = loss_chart.buckets
        loss_chart.show_lines([(data.loss_label, data.loss, "orange", "left")],
                              data.boundaries,
                              references=None if data.loss_label == "loss" else ())
        self.query_one("#reward-chart", MetricChart).show_lines(
            [("accuracy →", data.accuracy, "green", "right"),   # first: margins draw over it
             ("margin", data.margins, "cyan", "left")], data.boundaries)
        self.query_one("#iterations", IterationTable).show_rows(data.iterations)
        self.query_one("#tau", TauSparkline).show_rows(data.iterations)
        side = self.query_one("#run-side")
        self.query_one("#stages", StageTimeline).show_stages(
            data.stage_iteration, data.stages, side.size.width or self.size.width)
        log = self.query_one("#log", LogTail)
        log.show_lines(data.log_lines, "no log yet: it appears when a worker starts the run")
        self._log_title(log.follow, data.log_path)

    def _summary(self, data: RunData) -> Text:
        run = data.run
        assert run is not None
        text = Text()
        text.append(run.name, style="bold")
        text.append(f" · {run.method} on {run.model} · ")
        if run.host:
            text.append(f"host {run.host} · ", style="bold")
        text.append(run.status, style=STATUS_STYLE.get(run.status, ""))
        parts = [f"iteration {run.iteration}/{run.iterations}",
                 stage_text(run) if run.stage else "",
                 f"elapsed {fmt.duration(run.elapsed)}",
                 f"ETA {fmt.duration(run.eta)}" if run.eta is not None else ""]
        if data.last:
            parts.append(f"it{data.last[0]} step {data.last[1]} loss "
                         f"{fmt.num(data.last[2], '{:.4f}')}")
        text.append(" · " + fmt.joined(parts))
        if run.slurm:  # where Slurm has its job: the id, the state (why pending), the node
            text.append(f"\n{run.slurm}", style="yellow" if run.job_status == "queued" else "")
        if run.error:
            text.append(f"\nerror: {run.error}", style="red")
        return text

    def _log_title(self, follow: bool, path: str) -> None:
        state = "following" if follow else "paused: f follows"
        self.query_one("#log-title", Static).update(
            Text.assemble(("log", "bold"), f" ({state}) {path}"))

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_follow(self) -> None:
        follow = self.query_one("#log", LogTail).toggle_follow()
        path = self.last_shown.log_path if self.loaded else ""
        self._log_title(follow, path)
        self.notify("log: following" if follow else "log: paused", timeout=2)

    def action_prompts(self) -> None:
        t = self.query_one("#iterations", IterationTable).current_iteration
        if t is None:
            self.notify("no iteration yet: its prompts appear once it generates",
                        severity="warning", timeout=3)
            return
        self.app.push_screen(DrilldownScreen(self.ref, t))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "iterations" and event.row_key.value is not None:
            self.app.push_screen(DrilldownScreen(self.ref, int(event.row_key.value)))
