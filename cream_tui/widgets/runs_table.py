"""The runs/queue table of the home screen: one row per run, rebuilt when a row changes; the
cursor stays on the same run, and that run on the same line of the screen, when rows move or
change (marks are drawn from the run keys the home screen holds)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from cream_engine.results import RunSummary
from cream_tui import format as fmt
from cream_tui.data import run_key

COLUMNS = ("", "run", "method", "status", "iter", "stage", "GPUs", "elapsed", "ETA")
STATUS_STYLE = {"running": "bold green", "queued": "yellow", "failed": "bold red",
                "cancelled": "magenta", "done": "dim"}


def stage_text(row: RunSummary) -> str:
    if not row.stage:
        return "-"
    if row.stage_status == "running":
        pct = fmt.percent(row.stage_done, row.stage_total)
        return f"{row.stage} {pct}".strip()
    if row.stage_status in ("failed", "cancelled"):
        return f"{row.stage} ✗"
    return row.stage


def status_text(row: RunSummary) -> Text:
    label = row.status
    if row.status == "queued" and row.priority:
        label += f" p{row.priority}"
    return Text(label, style=STATUS_STYLE.get(row.status, ""))


def gpu_text(row: RunSummary, gpu_index: dict[str, int]) -> str:
    """The GPUs column: the indices a running job holds ("CPU" for none), what a queued job
    asks for ("auto", "CPU", "2×"), "-" otherwise; for a job on Slurm, its node while it runs,
    why it waits while pending ("S42 Priority"), or "S42 unknown" when Slurm cannot be asked."""
    job = row.job or {}
    if job.get("executor") == "slurm" and row.job_status in ("running", "queued"):
        state = job.get("slurm_state") or ""
        if state == "UNKNOWN":
            detail = "unknown"
        elif row.job_status == "running":
            detail = job.get("node") or state.lower()
        else:
            detail = job.get("slurm_reason") or state.lower()
        return f"S{job.get('slurm_id')} {detail}"
    if row.job_status == "running":
        if not row.gpu_uuids:
            return "CPU"
        return ",".join(str(gpu_index.get(u, "?")) for u in row.gpu_uuids)
    if row.job_status == "queued":
        return "auto" if row.gpus is None else ("CPU" if row.gpus == 0 else f"{row.gpus}×")
    return "-"


HOST_STYLE = {"slow": "yellow", "connecting": "yellow", "down": "bold red",
              "mismatch": "bold red"}
HOST_MARK = {"slow": " …", "connecting": " …", "down": " ✗", "mismatch": " ✗"}


def host_text(host: str | None, state: str) -> Text:
    """The host column: the name, marked when its link is not up (the row is then the last
    one the host sent)."""
    return Text(f"{host}{HOST_MARK.get(state, '')}", style=HOST_STYLE.get(state, ""))


class RunsTable(DataTable):
    def __init__(self, *, id: str | None = None, hosts: bool = False):
        """`hosts`: a dashboard over several boxes (a host column after the mark)."""
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._rows: tuple[tuple, ...] = ()
        self.hosts = hosts
        for name in (COLUMNS[:1] + ("host",) + COLUMNS[1:]) if hosts else COLUMNS:
            self.add_column(name, key=name or "mark")  # here, not on mount: rows can be first

    @property
    def current_run(self) -> str | None:
        """The id of the run under the cursor."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return key.value if key else None

    def show_rows(self, rows: Sequence[RunSummary], marked: set[str], name_width: int,
                  gpu_index: dict[str, int], host_states: dict[str, str] | None = None
                  ) -> None:
        """Rows keyed by `run_key`; `host_states` (name -> link state) with `hosts`."""
        states = host_states or {}
        cells = tuple((key, "●" if key in marked else "",
                       *((host_text(r.host, states.get(r.host or "", "")),) if self.hosts
                         else ()),
                       fmt.truncate(r.name, name_width), r.method, status_text(r),
                       f"{r.iteration}/{r.iterations}", stage_text(r),
                       gpu_text(r, gpu_index), fmt.duration(r.elapsed), fmt.estimate(r.eta))
                      for r, key in ((r, run_key(r)) for r in rows))
        if cells == self._rows:
            return
        self._rows = cells
        current = self.current_run
        top = round(self.scroll_y)
        line = self.cursor_row - top        # where the cursor's run is on screen
        self.clear()                        # (which scrolls to the top)
        for run_id, *values in cells:
            self.add_row(*values, key=run_id)
        ids = [c[0] for c in cells]
        if current in ids:
            # the cursor stays on its run, and that run on its line of the screen: a new run
            # above scrolls the list by one instead of moving the row under the user's eyes
            row = ids.index(current)
            self.move_cursor(row=row, animate=False, scroll=False)
            top = max(0, row - line)
        self._keep_top(top)
        # again once the new rows are measured (until then the old height bounds the scroll)
        self.call_after_refresh(self._keep_top, top)

    def _keep_top(self, top: int) -> None:
        self.scroll_to(y=top, animate=False, immediate=True)
