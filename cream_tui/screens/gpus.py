"""The GPUs, as nvitop shows them: two lines per GPU (eight fit an 80×24 terminal), loads and
temperatures coloured by level; below, the selected GPU's processes (user, command, host CPU and
memory, the run each belongs to) and its utilisation and memory history, shown where there is
room, else on `h`. "No GPU on this machine" is said plainly (it is a state, not an error)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.geometry import Region
from textual.widgets import Footer, Header, Static

from cream_tui.data import DataSource
from cream_tui.gpu_history import GpuState
from cream_tui.screens.base import PolledScreen
from cream_tui.widgets.gpu_detail import detail_text, lines_needed, no_gpu_text
from cream_tui.widgets.gpu_rows import LINES, GpuRows

MIN_DETAIL = 5     # lines kept for the selected GPU's processes when the list is long


class _Pane(VerticalScroll, can_focus=False):
    """A scrolling pane that leaves the arrow keys to the screen (they pick the GPU)."""


class GpuScreen(PolledScreen):
    BINDINGS = [Binding("escape,backspace", "back", "Back"),
                Binding("up,k", "select(-1)", "GPU", show=False),
                Binding("down,j", "select(1)", "Next GPU"),
                Binding("h", "history", "History")]
    DEFAULT_CSS = """
    GpuScreen #gpu-rows-box { height: auto; padding: 0 1; scrollbar-size-vertical: 1; }
    GpuScreen #gpu-detail { height: 1fr; padding: 0 1; scrollbar-size-vertical: 1; }
    GpuScreen #gpu-rows, GpuScreen #gpu-detail-text { text-wrap: nowrap; text-overflow: clip; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.selected = 0                 # position in the list of GPUs shown
        self._selected_uuid: str | None = None
        self._history = False             # `h`: show the history even where it does not fit
        self._has_gpus = False

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with _Pane(id="gpu-rows-box"):
            yield GpuRows(id="gpu-rows")
        with _Pane(id="gpu-detail"):
            yield Static(id="gpu-detail-text")
        yield Footer()

    def load(self, source: DataSource, now: float) -> GpuState:
        return source.gpu_data(now)

    def show(self, data: GpuState) -> None:
        box = self.query_one("#gpu-rows-box", _Pane)
        rows = self.query_one(GpuRows)
        detail = self.query_one("#gpu-detail-text", Static)
        if bool(data.gpus) != self._has_gpus:
            self._has_gpus = bool(data.gpus)
            self.refresh_bindings()
        if not data.gpus:
            self.sub_title = "GPUs"
            box.display = False
            detail.update(no_gpu_text(data.reason))
            return
        self.sub_title = "GPUs · " + ("live NVML reading (no worker is sampling)" if data.live
                                      else "samples from the worker")
        box.display = True
        self.selected = self._position(data)
        self._selected_uuid = data.gpus[self.selected].uuid

        # 1. the list takes what it needs, leaving MIN_DETAIL lines (it scrolls past that)
        height = max(self.size.height - 2, 1)                 # under the header, over the footer
        wanted = LINES * len(data.gpus)
        rows_h = min(wanted, max(height - MIN_DETAIL, LINES))
        box.styles.height = rows_h
        rows.show_rows(data.gpus, self.selected, self._width(wanted > rows_h))
        box.scroll_to_region(Region(0, LINES * self.selected, 1, LINES), animate=False)

        # 2. the selected GPU: its processes, and its history where it fits (or on `h`)
        gpu = data.gpus[self.selected]
        bare, full = lines_needed(gpu)
        room = height - rows_h
        history = "after" if full <= room else "first" if self._history else "off"
        needed = full if history != "off" else bare
        detail.update(detail_text(gpu, self._width(needed > room), history, room))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Picking a GPU and its history: only where there are GPUs (else not in the footer)."""
        if action in ("select", "history"):
            return self._has_gpus
        return True

    def _position(self, data: GpuState) -> int:
        for i, g in enumerate(data.gpus):
            if g.uuid == self._selected_uuid:
                return i
        return min(self.selected, len(data.gpus) - 1)

    def _width(self, scrolls: bool) -> int:
        return max(self.size.width - 2 - (1 if scrolls else 0), 20)

    def _reshow(self) -> None:
        if self.loaded:
            self.show(self.last_shown)

    def action_select(self, step: int) -> None:
        gpus = self.last_shown.gpus if self.loaded else ()
        if gpus:
            self.selected = min(max(self.selected + step, 0), len(gpus) - 1)
            self._selected_uuid = gpus[self.selected].uuid
            self._reshow()

    def on_gpu_rows_picked(self, message: GpuRows.Picked) -> None:
        self.action_select(message.position - self.selected)

    def action_history(self) -> None:
        self._history = not self._history
        self._reshow()

    def action_back(self) -> None:
        self.app.pop_screen()
