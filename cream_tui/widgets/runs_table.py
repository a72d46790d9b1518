"""The runs/queue table of the home screen: one row per run, updated in place (the cursor stays
on the same run when rows move or change)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from cream_tui import format as fmt
from cream_tui.data import RunRow

COLUMNS = ("", "run", "method", "status", "iter", "stage", "GPUs", "elapsed", "ETA")
STATUS_STYLE = {"running": "bold green", "queued": "yellow", "failed": "bold red",
                "cancelled": "magenta", "done": "dim"}


def stage_text(row: RunRow) -> str:
    if not row.stage:
        return "-"
    if row.stage_status == "running":
        pct = fmt.percent(row.stage_done, row.stage_total)
        return f"{row.stage} {pct}".strip()
    if row.stage_status in ("failed", "cancelled"):
        return f"{row.stage} ✗"
    return row.stage


def status_text(row: RunRow) -> Text:
    label = row.status
    if row.status == "queued" and row.priority:
        label += f" p{row.priority}"
    return Text(label, style=STATUS_STYLE.get(row.status, ""))


class RunsTable(DataTable):
    def __init__(self, *, id: str | None = None):
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._rows: tuple[tuple, ...] = ()

    def on_mount(self) -> None:
        for name in COLUMNS:
            self.add_column(name, key=name or "mark")

    @property
    def current_run(self) -> str | None:
        """The id of the run under the cursor."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return key.value if key else None

    def show_rows(self, rows: Sequence[RunRow], marked: set[str], name_width: int) -> None:
        cells = tuple((r.id, "●" if r.id in marked else "", fmt.truncate(r.name, name_width),
                       r.method, status_text(r), f"{r.iteration}/{r.iterations}",
                       stage_text(r), r.gpus, fmt.duration(r.elapsed), fmt.duration(r.eta))
                      for r in rows)
        if cells == self._rows:
            return
        current = self.current_run
        self._rows = cells
        self.clear()
        for run_id, *values in cells:
            self.add_row(*values, key=run_id)
        ids = [c[0] for c in cells]
        if current in ids:
            self.move_cursor(row=ids.index(current), animate=False)
