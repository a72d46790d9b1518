"""The dashboard (`cream tui` / `cream-tui`): a small App; screens and widgets do the work.

It reads the store only (never the engine's memory, never torch). One worker thread polls the
store about once a second for the screen in front and hands each new value to it; queue actions
(submit, cancel, retry, priority, drain) run in threads of their own. The clock is injectable so
elapsed times and ETAs are stable in snapshot tests.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.worker import get_current_worker

from cream_engine import paths
from cream_engine.errors import CreamError
from cream_engine.gpu import read_gpus
from cream_engine.hosts import HostLink, HostSpec
from cream_tui.data import DataSource
from cream_tui.messages import Notice, OpenCompare, OpenRun, Polled, QueueAction
from cream_tui.remote import MultiSource
from cream_tui.screens.base import PolledScreen
from cream_tui.screens.compare import CompareScreen
from cream_tui.screens.gpus import GpuScreen
from cream_tui.screens.help import HelpScreen
from cream_tui.screens.home import HomeScreen
from cream_tui.screens.run import RunScreen
from cream_tui.terminal import no_terminal_line, not_a_terminal

POLL_ENV = "CREAM_TUI_POLL_S"


class CreamApp(App):
    TITLE = "cream"
    CSS_PATH = "cream.tcss"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS = [Binding("q", "quit", "Quit"), Binding("question_mark", "help", "Help"),
                Binding("g", "gpus", "GPUs")]

    def __init__(self, home: Path, run: str | None = None, *,
                 clock: Callable[[], float] = time.time, poll_s: float = 1.0,
                 gpu_reader: Callable[[], Any] | None = None,
                 hosts: Sequence[HostSpec | None] = ()):
        """`hosts`: a dashboard over several boxes (None in it: this box's data home)."""
        super().__init__()
        self.home = home
        self.initial_run = run
        self.clock = clock
        self.poll_s = poll_s
        local = DataSource(home, gpu_reader or read_gpus)
        self.source: DataSource | MultiSource = local
        if hosts:
            self.source = MultiSource(local if None in hosts else None,
                                      [HostLink(h, poll_s=poll_s, gpu_s=max(poll_s, 1.0))
                                       for h in hosts if h is not None])
        self.poll_target: PolledScreen | None = None
        self._wake = threading.Event()
        self._stopping = False
        self.polls = 0          # finished polls (tests wait on it)

    @property
    def multi(self) -> bool:
        """Several boxes: a host column, a GPU strip per host, actions routed by host."""
        return isinstance(self.source, MultiSource)

    def on_mount(self) -> None:
        self.sub_title = str(self.home)
        if isinstance(self.source, MultiSource):
            self.sub_title = " · ".join(self.source.names)
            self.source.start()
        why = paths.read_only_reason(self.home)
        if why is not None:  # reads work as ever; queue actions say why they cannot
            self.title = f"{self.TITLE} [read-only]"
            self.notify(f"{self.home} is read-only ({why}): queue actions are refused",
                        timeout=8)
        self.push_screen(HomeScreen())
        if self.initial_run:
            self.push_screen(RunScreen(self.initial_run))
        self._poll()

    # -- polling -------------------------------------------------------------------------

    def refresh_now(self) -> None:
        """Poll at once (after an action, a screen change or a resize)."""
        self._wake.set()

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def _poll(self) -> None:
        worker = get_current_worker()
        trouble = None
        while not (worker.is_cancelled or self._stopping):
            target = self.poll_target
            if target is not None and target.is_attached:
                try:
                    target.deliver(target.load(self.source, self.clock()))
                    trouble = None
                except Exception as e:  # noqa: BLE001 - say so once, poll again
                    self.source.reset()
                    text = (f"cannot read the store: {e}"
                            if isinstance(e, (sqlite3.Error, CreamError, OSError))
                            else f"dashboard error: {type(e).__name__}: {e}")
                    if text != trouble:
                        trouble = text
                        self.post_message(Notice(text, "error"))
            self.polls += 1
            if self._wake.wait(self.poll_s):
                self._wake.clear()
        self.source.close()

    def _stop_polling(self) -> None:
        self._stopping = True
        self._wake.set()

    async def action_quit(self) -> None:
        self._stop_polling()
        self.exit()

    def on_unmount(self) -> None:
        self._stop_polling()

    @on(Polled)
    def _screen_in_front(self, message: Polled) -> None:
        if message.screen is self.screen:   # (a resize reaches the screens underneath too)
            self.poll_target = message.screen
        self.refresh_now()

    # -- what the screens ask ------------------------------------------------------------

    @on(QueueAction)
    def _queue_action(self, message: QueueAction) -> None:
        self.queue_action(message.name, message.host, *message.args)

    @work(thread=True, group="actions")
    def queue_action(self, name: str, host: str | None, *args: Any) -> None:
        """Run a queue action off the UI thread, on the box it is for; its one-line result
        becomes a notice."""
        try:
            self.post_message(Notice(self.source.act(host, name, *args)))
        except CreamError as e:
            self.post_message(Notice(e.line, "error"))
        except Exception as e:  # noqa: BLE001 - a notice, never a traceback over the UI
            self.post_message(Notice(f"failed: {type(e).__name__}: {e}", "error"))

    @on(Notice)
    def _notice(self, message: Notice) -> None:
        self.notify(message.text, severity=message.severity,  # type: ignore[arg-type]
                    timeout=8 if message.severity == "error" else 4)
        self.refresh_now()

    @on(OpenRun)
    def _open_run(self, message: OpenRun) -> None:
        self.open_run(message.run_id)

    @on(OpenCompare)
    def _open_compare(self, message: OpenCompare) -> None:
        self.open_compare(message.run_ids)

    def open_run(self, run_id: str) -> None:
        self.push_screen(RunScreen(run_id))

    def open_compare(self, run_ids: list[str]) -> None:
        self.push_screen(CompareScreen(tuple(run_ids)))

    def action_gpus(self) -> None:
        if not isinstance(self.screen, GpuScreen):
            self.push_screen(GpuScreen())

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())


def run_app(home: Path, run: str | None = None, poll_s: float | None = None,
            hosts: Sequence[HostSpec | None] = ()) -> int:
    """Open the dashboard (what `cream tui` and `cream-tui` call), over several boxes when
    `hosts` names them. The poll interval comes from `poll_s`, else `$CREAM_TUI_POLL_S`, else
    one second."""
    if poll_s is None:
        try:
            poll_s = float(os.environ.get(POLL_ENV) or 1.0)
        except ValueError:
            poll_s = 1.0
    CreamApp(home, run, poll_s=max(poll_s, 0.1), hosts=hosts).run()
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="cream-tui", description="The cream dashboard.")
    parser.add_argument("--home", default=None, help="data home [default: $CREAM_HOME or ./runs]")
    parser.add_argument("--run", default=None, help="open this run directly")
    parser.add_argument("--poll", type=float, default=None,
                        help=f"seconds between store reads [default: ${POLL_ENV} or 1]")
    args = parser.parse_args()
    missing = not_a_terminal()
    if missing:
        print(f"cream-tui: error: {no_terminal_line('cream-tui', missing)}", file=sys.stderr)
        raise SystemExit(2)
    paths.set_home_umask()  # (its queue actions write under the home, as the CLI's do)
    raise SystemExit(run_app(paths.data_home(args.home), args.run, args.poll))
