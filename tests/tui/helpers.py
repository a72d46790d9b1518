"""Helpers for driving the dashboard with Pilot (wait for the polled data, read the screen as
plain text, wait for queue actions) and in a real terminal (a tmux pane)."""

from __future__ import annotations

import io
import shutil
import subprocess
import time

from rich.console import Console
from textual.app import App
from textual.pilot import Pilot


def screen_text(app: App) -> str:
    """What the terminal shows, as plain text (like tmux capture-pane)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system=None, record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens, simplify=True))
    return console.export_text()


async def wait_loaded(pilot: Pilot, timeout: float = 10.0) -> None:
    """Until the screen in front shows the data of a poll that began after this call (so
    chart widths and the like have settled), then let the redraw finish."""
    app = pilot.app
    for _ in range(2):          # the second poll sees the widths the first one laid out
        start = app.polls
        app.refresh_now()
        await wait_until(pilot, lambda start=start: app.polls >= start + 2 and
                         getattr(app.screen, "settled", True), timeout, "the polled data")
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


async def wait_actions(pilot: Pilot) -> None:
    """Until the queue actions started so far have finished and their notices were handled."""
    app = pilot.app
    await pilot.pause()
    actions = [w for w in app.workers if w.group == "actions"]
    if actions:     # (an empty list would mean "every worker", the poller included)
        await app.workers.wait_for_complete(actions)
    await pilot.pause(0.1)


async def wait_until(pilot: Pilot, predicate, timeout: float = 10.0, what: str = "it") -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await pilot.pause(0.05)
    notices = [n.message for n in getattr(pilot.app, "_notifications", [])]
    raise AssertionError(f"timed out waiting for {what}; notices {notices}; the screen:\n"
                         + screen_text(pilot.app))


def make_app(home, run: str | None = None, **kwargs):
    """The dashboard on the fixed clock, with no GPU of its own, polling fast."""
    from cream_tui.app import CreamApp
    from tests.tui.fixtures import frozen_clock, no_gpu

    kwargs.setdefault("gpu_reader", no_gpu)
    return CreamApp(home, run, clock=frozen_clock, poll_s=0.1, **kwargs)


TMUX = shutil.which("tmux")


class Pane:
    """One detached tmux session on a private server socket."""

    def __init__(self, socket: str, env: dict[str, str]):
        self.base = [TMUX, "-u", "-L", socket, "-f", "/dev/null"]
        self.env = env

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*self.base, *args], env=self.env, capture_output=True,
                              text=True, check=check, timeout=30)

    def start(self, command: str, width: int, height: int) -> None:
        self.tmux("new-session", "-d", "-s", "cream", "-x", str(width), "-y", str(height),
                  command)

    def capture(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "cream", check=False).stdout

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "cream", *keys)

    def wait_for(self, *texts: str, timeout: float = 30.0) -> str:
        deadline = time.time() + timeout
        while True:
            screen = self.capture()
            if all(t in screen for t in texts):
                return screen
            if time.time() > deadline:
                missing = [t for t in texts if t not in screen]
                raise AssertionError(f"not on screen: {missing}\n{screen}")
            time.sleep(0.2)

    def quit(self, timeout: float = 15.0) -> None:
        """Press q and wait until the dashboard has exited."""
        self.send("q")
        deadline = time.time() + timeout
        while self.alive():
            assert time.time() < deadline, "q did not quit"
            time.sleep(0.2)

    def alive(self) -> bool:
        return self.tmux("has-session", "-t", "cream", check=False).returncode == 0
