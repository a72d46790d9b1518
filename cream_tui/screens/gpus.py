"""The GPUs: per GPU its utilisation and memory history, temperature, power and the processes
on it mapped to our runs; "no GPU on this machine" said plainly (it is a state, not an error)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Static

from cream_tui.data import DataSource
from cream_tui.gpu_history import GpuState
from cream_tui.screens.base import PolledScreen
from cream_tui.widgets.gpu_panel import GpuPanel


class GpuScreen(PolledScreen):
    BINDINGS = [Binding("escape,backspace", "back", "Back")]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static(id="gpu-source")
        yield VerticalScroll(id="gpu-list")
        yield Footer()

    def load(self, source: DataSource, now: float) -> GpuState:
        return source.gpu_data(now)

    def show(self, data: GpuState) -> None:
        self.sub_title = "GPUs"
        source = self.query_one("#gpu-source", Static)
        box = self.query_one("#gpu-list", VerticalScroll)
        width = max(self.size.width - 4, 20)
        if not data.gpus:
            source.update(Text("No GPU on this machine.", style="bold"))
            box.remove_children()
            box.mount(Static(Text(f"{data.reason}\n\nRuns use the CPU here; the worker "
                                  "starts one job at a time.", style="dim"), classes="no-gpu"))
            return
        source.update("live NVML reading (no worker is sampling)" if data.live
                      else "samples from the worker")
        panels = list(box.query(GpuPanel))
        if len(panels) != len(data.gpus):
            box.remove_children()
            box.mount_all(GpuPanel(g, width) for g in data.gpus)
            return
        for panel, gpu in zip(panels, data.gpus):
            panel.show_gpu(gpu, width)

    def action_back(self) -> None:
        self.app.pop_screen()
