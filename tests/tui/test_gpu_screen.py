"""The GPU screen: the worker's samples (latest and history, processes mapped to runs), our
own NVML reading when no worker samples, and "no GPU on this machine" said plainly."""

from __future__ import annotations

import re
from pathlib import Path

from cream_engine.gpu import GpuInfo, GpuProcess, GpuReport
from cream_tui.screens.gpus import GpuScreen
from tests.tui.fixtures import NOW, RUNS
from tests.tui.helpers import make_app, screen_text, wait_loaded


async def test_samples_with_history_and_processes_mapped_to_runs(tui_home: Path) -> None:
    app = make_app(tui_home)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("g")
        await wait_loaded(pilot)
        assert isinstance(app.screen, GpuScreen)
        state = app.screen.last_shown
        assert [g.index for g in state.gpus] == [0, 1] and not state.live
        gpu0 = state.gpus[0]
        assert len(gpu0.util_history) == 120 and gpu0.age_s == 0
        assert gpu0.processes[0].run_id == RUNS.running
        text = screen_text(app)
        assert "samples from the worker" in text
        assert "GPU0 NVIDIA H100 80GB HBM3" in text and "temp 65°C" in text
        assert re.search(r"^ +4242 .* scir-c ", text, re.MULTILINE)     # GPU0 (selected): its process
        assert re.search(r"GPU1 .*power +N/A", text)   # GPU1's board gives no power reading
        await pilot.press("down")
        await wait_loaded(pilot)
        assert re.search(r"^ +999 .* — ", screen_text(app), re.MULTILINE)   # GPU1's: not one of ours


async def test_no_gpu_is_a_state_not_an_error(tui_env: Path) -> None:
    app = make_app(Path("home"))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        assert "GPU  no GPU: NVIDIA driver not found (test)" in screen_text(app)
        await pilot.press("g")
        await wait_loaded(pilot)
        text = screen_text(app)
        assert "No GPU on this machine." in text
        assert "no GPU: NVIDIA driver not found (test)" in text


async def test_live_reading_when_nothing_is_sampled(tui_env: Path) -> None:
    def reader() -> GpuReport:
        return GpuReport([GpuInfo(0, "GPU-live", "Fake GPU", utilization=50.0,
                                  memory_used_mb=1024.0, memory_total_mb=4096.0,
                                  processes=[GpuProcess(77, 512.0)])], time=NOW)

    app = make_app(Path("home"), gpu_reader=reader)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("g")
        await wait_loaded(pilot)
        text = screen_text(app)
        assert "live NVML reading (no worker is sampling)" in text
        assert "GPU0  Fake GPU" in text and re.search(r"mem +25%", text)
        assert re.search(r"^ +77 ", text, re.MULTILINE)
