"""The GPU view at nvitop's level: eight GPUs in two lines each at 80×24, readings coloured by
level, the selected GPU's processes (user, command, host CPU and memory, run) and history, one
memory unit style; the home screen's strip coloured the same; `cream gpus` with processes."""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
from pathlib import Path

import pytest
from rich.style import Style
from typer.testing import CliRunner

from cream_engine.store import open_store
from tests.tui.fixtures import ENGINE_PID
from tests.tui.gpu_fixtures import eight_gpus, write_eight_gpu_store, write_fake_gpus
from tests.tui.helpers import make_app, screen_text, wait_loaded

ME = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def eight(tui_env: Path) -> Path:
    return write_eight_gpu_store(Path("home"))


def style_of(app, needle: str, after: str = "") -> Style:
    """The style on screen of the first cell of `needle` (on the first line holding `after`
    and then `needle`)."""
    for y, line in enumerate(screen_text(app).splitlines()):
        x = line.find(needle, line.find(after) if after in line else len(line))
        if x >= 0:
            return app.screen.get_style_at(x, y)
    raise AssertionError(f"{needle!r} not on screen")


def reddish(style: Style) -> bool:
    r, g, _ = style.color.get_truecolor()
    return r > 180 and g < 100


def yellowish(style: Style) -> bool:
    r, g, b = style.color.get_truecolor()
    return r > 180 and g > 120 and b < 100


def greenish(style: Style) -> bool:
    r, g, b = style.color.get_truecolor()
    return g > 150 and r < 200 and b < 150


async def test_eight_gpus_fit_80x24_with_the_selected_ones_processes(eight: Path) -> None:
    app = make_app(eight)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("g")
        await wait_loaded(pilot)
        text = screen_text(app)
        lines = text.splitlines()
        for i in range(8):                   # two lines each, none scrolled out of sight
            at = next(n for n, line in enumerate(lines) if re.match(rf" [▶ ] GPU{i} ", line))
            assert re.match(r" +util +(\d+%|N/A) .* mem ", lines[at + 1])
        assert app.screen.query_one("#gpu-rows-box").max_scroll_y == 0
        assert re.search(r"GPU0 +NVIDIA H100 80GB HBM3 +temp 65°C +power 311 W +1 proc: scir-c",
                         text)
        assert re.search(r"^ +4242 alice +35\.6 GiB +87 +101\.5 +12\.5 GiB +scir-c +python -m",
                         text, re.MULTILINE)
        assert "37.1/79.6 GiB" in text and " 1.2/79.6 GiB" in text     # one unit style
        assert not re.search(r"\d ?(GB|G|MB)\b", text.replace("H100 80GB HBM3", ""))
        assert "util  87% history" in text                # room for the history: shown
        assert "esc Back" in lines[-1]


async def test_readings_coloured_by_level(eight: Path) -> None:
    app = make_app(eight)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("g")
        await wait_loaded(pilot)
        hot, warm, normal = style_of(app, "84°C"), style_of(app, "72°C"), style_of(app, "65°C")
        assert reddish(hot) and hot.bold and yellowish(warm)
        assert not reddish(normal) and not yellowish(normal)
        assert reddish(style_of(app, "80°C")) and yellowish(style_of(app, "79°C"))
        assert reddish(style_of(app, "99%")) and yellowish(style_of(app, "55%"))   # util
        assert reddish(style_of(app, "93%")) and reddish(style_of(app, "81%"))     # memory
        assert not yellowish(style_of(app, "47%")) and not reddish(style_of(app, "47%"))
        assert greenish(style_of(app, "█", "12%")) and reddish(style_of(app, "█", "99%"))


async def test_picking_a_gpu_and_its_history(eight: Path) -> None:
    app = make_app(eight)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("g")
        await wait_loaded(pilot)
        await pilot.press("down", "j")
        await wait_loaded(pilot)
        text = screen_text(app)
        assert "▶ GPU2" in text and "── GPU2 NVIDIA H100 80GB HBM3" in text
        vllm = next(line for line in text.splitlines() if "9000101" in line)
        assert re.match(r" +9000101 bob +68\.6 GiB +— +12\.0 +8\.9 GiB +— +python -m vllm", vllm)
        dimmed, plain = style_of(app, "9000101"), style_of(app, "power")
        assert sum(dimmed.color.get_truecolor()) < sum(plain.color.get_truecolor())  # not ours
        assert re.search(r"^ +9000102 carol +512 MiB +0 +0\.5 +310 MiB", text, re.MULTILINE)
        assert "history" not in text                  # two processes: no room for it
        await pilot.press("h")
        await wait_loaded(pilot)
        assert "util  55% history" in screen_text(app)
        await pilot.click("#gpu-rows", offset=(10, 2 * 5 + 1))     # GPU5's second line
        await wait_loaded(pilot)
        text = screen_text(app)
        assert "▶ GPU5" in text and "no processes on this GPU" in text
        assert "util  N/A history" in text


async def test_a_real_process_shows_its_user_and_command(tui_env: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    fake = write_fake_gpus(Path("gpus.json"), [{"memory_total_mb": 24576.0, "processes": [
        {"pid": os.getpid(), "used_memory_mb": 700.0}]}])
    monkeypatch.setenv("CREAM_FAKE_GPUS", str(fake))
    from cream_engine.gpu import read_gpus

    app = make_app(Path("home"), gpu_reader=read_gpus)
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.press("g")
        await wait_loaded(pilot)
        line = next(line for line in screen_text(app).splitlines()
                    if line.lstrip().startswith(f"{os.getpid()} "))
        assert ME[:7] in line and "700 MiB" in line and "pytest" in line
        assert re.search(r" \d+(\.\d)? (MiB|GiB) ", line.split("700 MiB")[1])   # its RSS


async def test_home_strip_coloured_with_one_unit_style(eight: Path) -> None:
    app = make_app(eight)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        text = screen_text(app)
        assert re.search(r"GPU3 util  99% .* 74\.2/79\.6 GiB  84°C", text)
        assert "… 4 more: press g" in text
        assert reddish(style_of(app, "84°C")) and reddish(style_of(app, "99%"))
        assert yellowish(style_of(app, "72°C")) and not reddish(style_of(app, "65°C"))


def test_cli_lists_processes_with_their_run(eight: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cream_tui.cli import app

    sleeper = subprocess.Popen(["sleep", "30"])     # in our process group, as a job's rank is
    try:
        store = open_store(eight)
        store.execute("UPDATE jobs SET pid = ? WHERE status = 'running'", [os.getpgid(0)])
        store.close()
        gpus = eight_gpus()[:1]
        gpus[0]["processes"].append({"pid": sleeper.pid, "used_memory_mb": 2048.0})
        monkeypatch.setenv("CREAM_FAKE_GPUS", str(write_fake_gpus(Path("g.json"), gpus)))
        runner = CliRunner()
        data = json.loads(runner.invoke(app, ["gpus", "--json", "--home", "home"]).output)
        engine, child = data["gpus"][0]["processes"]
        assert (engine["pid"], engine["run"], engine["user"]) == (ENGINE_PID, None, "alice")
        assert (child["run"], child["user"], child["command"]) == ("scir-c", ME, "sleep 30")
        assert child["rss_mb"] > 0 and child["cpu_percent"] is not None
        text = runner.invoke(app, ["gpus", "--home", "home"]).output
        assert re.search(r"GPU0  NVIDIA H100 80GB HBM3  util 87%  mem 37\.1/79\.6 GiB 47%  "
                         r"temp 65°C  power 311 W", text)
        assert re.search(rf"^ +{sleeper.pid} {ME[:8]} +2\.0 GiB +— +\d+\.\d +\d+ MiB +scir-c +"
                         r"sleep 30$", text, re.MULTILINE)
        assert re.search(r"^ +4242 alice +35\.6 GiB +87 +101\.5 +12\.5 GiB +— +python -m "
                         r"cream_engine run runs/scir-c$", text, re.MULTILINE)
    finally:
        sleeper.kill()
        sleeper.wait()
