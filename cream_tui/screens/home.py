"""Home: the runs and the queue, one row per run, and a compact GPU strip.

The rows are in a fixed order, newest first (`data.display_order`): a run keeps its row as it
starts and ends, so marks (kept by run key) and the cursor never end up on another run.

Keys: enter opens a run, s submits a config, c cancels (after a confirmation), r retries or
resumes, +/- change a queued run's priority, d drains (or resumes) the queue, / filters,
space marks runs and m compares the marked ones, g shows the GPUs, ? help, q quits.

Over several boxes: a host column, a strip per host (its link's state, its GPUs), h steps the
host filter through the hosts, and every action goes to the box of the run it is about (a
submit to the filtered host or the selected run's, or to the one named as `host:path`).
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input, Static

from cream_engine import results
from cream_engine.results import RunSummary
from cream_tui import format as fmt
from cream_tui.data import DataSource, HomeData, run_key, split_key
from cream_tui.messages import OpenCompare, OpenRun, QueueAction
from cream_tui.screens.base import PolledScreen
from cream_tui.screens.prompts import ConfirmScreen, FilePromptScreen
from cream_tui.widgets.gpu_strip import GpuStrip
from cream_tui.widgets.runs_table import RunsTable


class HomeScreen(PolledScreen):
    BINDINGS = [
        Binding("s", "submit", "Submit"),
        Binding("c", "cancel", "Cancel"),
        Binding("r", "retry", "Retry"),
        Binding("plus", "priority(1)", "Prio+/-"),
        Binding("minus", "priority(-1)", "Prio-", show=False),
        Binding("d", "drain", "Drain"),
        Binding("slash", "filter", "Filter"),
        Binding("space", "mark", "Mark", show=False),
        Binding("m", "compare", "Compare"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("h", "host_filter", "Host", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.marked: set[str] = set()
        self.filter = ""
        self.host: str | None = None    # the host filter (several boxes)

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static(id="queue-status")
        yield Static(id="empty")
        yield RunsTable(id="runs", hosts=self.multi)
        box = Input(placeholder="filter runs (enter keeps it, escape clears)", id="filter",
                    compact=True)
        box.cursor_blink = False
        yield box
        yield GpuStrip(id="gpu-strip", classes="hosts" if self.multi else "")
        yield Footer()

    @property
    def multi(self) -> bool:
        return bool(getattr(self.app, "multi", False))

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one("#empty").display = False
        self.query_one("#runs").focus()

    # -- data ----------------------------------------------------------------------------

    def load(self, source: DataSource, now: float) -> HomeData:
        return source.home_data(now)

    def show(self, data: HomeData) -> None:
        table = self.query_one("#runs", RunsTable)
        empty = self.query_one("#empty", Static)
        width = self.size.width
        strip = self.query_one("#gpu-strip", GpuStrip)
        if data.hosts:
            strip.show_hosts(data.hosts, width)
        else:
            strip.show_state(data.gpus, width)
        if data.problem:
            empty.update(data.problem)
            empty.display, table.display = True, False
            self.query_one("#queue-status", Static).update("")
            return
        empty.display, table.display = False, True
        self.marked &= {run_key(r) for r in data.runs}
        rows = [r for r in data.runs if self._matches(r)]
        gpus = [g for h in data.hosts for g in h.gpus.gpus] or data.gpus.gpus
        table.show_rows(rows, self.marked, 16 if width < 120 else 32,
                        {g.uuid: g.index for g in gpus}, {h.name: h.state for h in data.hosts})
        self.query_one("#queue-status", Static).update(self._status_line(data, len(rows)))

    def _matches(self, row: Any) -> bool:
        if self.host is not None and row.host != self.host:
            return False
        f = self.filter.lower()
        return not f or any(f in v.lower() for v in (row.id, row.name, row.method, row.status,
                                                     row.host or ""))

    def _status_line(self, data: HomeData, shown: int) -> str:
        running = sum(r.status == "running" for r in data.runs)
        queued = sum(r.status == "queued" for r in data.runs)
        parts = [f"{len(data.runs)} runs", f"{running} running", f"{queued} queued",
                 "[b reverse] queue drained [/] d resumes" if data.drained
                 else "queue accepting jobs"]
        left = queue_left(data.runs) if running or queued else None
        if left is not None:    # (unknown while a queued run's shape never ran here: no guess)
            parts.insert(3, f"all done in {fmt.estimate(left)}")
        if data.hosts:
            parts[3:4] = [f"{len(data.hosts)} hosts"] + [
                f"[b red]{h.name} {h.state}[/]" for h in data.hosts
                if h.state in ("down", "mismatch")]
        if self.host is not None:
            parts.append(f"host {self.host} (h: next)")
        if self.filter:
            parts.append(f"filter '{self.filter}': {shown} shown")
        if self.marked:
            parts.append(f"{len(self.marked)} marked (m compares)")
        return fmt.joined(parts)

    def _refilter(self) -> None:
        if self.loaded:
            self.show(self.last_shown)

    # -- keys ----------------------------------------------------------------------------

    def _target(self) -> str | None:
        """The host a submit or a drain goes to: the host filter, else the selected run's,
        else the first host (None in a dashboard over one data home)."""
        if not self.multi:
            return None
        if self.host is not None:
            return self.host
        table = self.query_one("#runs", RunsTable)
        key = table.current_run if table.display and table.row_count else None
        if key is not None:
            return split_key(key)[0]
        hosts = self.last_shown.hosts if self.loaded else ()
        return hosts[0].name if hosts else None

    def action_host_filter(self) -> None:
        names = [h.name for h in self.last_shown.hosts] if self.loaded else []
        if not names:
            self.notify("one data home: no host to filter on", severity="warning")
            return
        order = [None, *names]
        self.host = order[(order.index(self.host) + 1) % len(order)
                          if self.host in order else 0]
        self._refilter()

    def _current(self) -> str | None:
        table = self.query_one("#runs", RunsTable)
        run_id = table.current_run if table.display else None
        if run_id is None:
            self.notify("no run selected", severity="warning")
        return run_id

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.post_message(OpenRun(event.row_key.value))

    def action_submit(self) -> None:
        host = self._target()
        names = [h.name for h in self.last_shown.hosts] if self.loaded else []

        def chosen(path: str | None) -> None:
            if not path:
                return
            where, sep, rest = path.partition(":")
            to = where if sep and where in names else host
            path = rest if sep and where in names else path
            # (checking measures every prompt with the model's tokenizer: seconds)
            self.notify(f"checking {path}" + (f" on {to}" if to else "") + "…", timeout=3)
            self.post_message(QueueAction("submit", to, path))

        title = ("Submit a config: path to an experiment TOML" if host is None else
                 f"Submit a config on {host}: its path there (or host:path)")
        self.app.push_screen(FilePromptScreen(title), chosen)

    def action_cancel(self) -> None:
        run_id = self._current()
        if run_id is None:
            return

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.post_message(QueueAction("cancel", *split_key(run_id)))

        self.app.push_screen(ConfirmScreen(f"Cancel run {run_id}?\n\nA running job is "
                                           "stopped; finished stages are kept (r resumes)."),
                             confirmed)

    def action_retry(self) -> None:
        run_id = self._current()
        if run_id:
            self.post_message(QueueAction("retry", *split_key(run_id)))

    def action_priority(self, delta: int) -> None:
        run_id = self._current()
        if run_id:
            self.post_message(QueueAction("priority", *split_key(run_id), delta))

    def action_drain(self) -> None:
        self.post_message(QueueAction("drain", self._target()))

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.filter = ""
        self.query_one("#runs").focus()
        self._refilter()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter = event.value.strip()
        self._refilter()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not self.filter:
            event.input.display = False
        self.query_one("#runs").focus()

    def action_mark(self) -> None:
        run_id = self._current()
        if run_id is None:
            return
        self.marked ^= {run_id}
        self._refilter()

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.notify("mark two or more runs with space, then press m", severity="warning")
            return
        order = [run_key(r) for r in self.last_shown.runs if run_key(r) in self.marked]
        self.post_message(OpenCompare(order))


def queue_left(rows: tuple[RunSummary, ...]) -> float | None:
    """When every running and queued run should be done (`results.queue_eta`); over several
    boxes, each has its own queue: the last of them."""
    by_host: dict[str | None, list[RunSummary]] = {}
    for r in rows:
        by_host.setdefault(r.host, []).append(r)
    lefts = [results.queue_eta(group) for group in by_host.values()
             if any(r.status in ("running", "queued") for r in group)]
    return None if not lefts or None in lefts else max(x for x in lefts if x is not None)
