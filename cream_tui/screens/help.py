"""The keys, screen by screen (escape, q or ? closes it)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = """\
[b]Runs and queue[/] (home)
  ↑ ↓      move between runs
  enter    open the run under the cursor
  s        submit a config (asks for the TOML path)
  c        cancel the run (asks first; finished stages stay)
  r        retry a failed run, resume a cancelled one
  + -      raise / lower a queued run's priority
  d        drain the queue: running jobs finish, nothing
           new starts; d again resumes
  /        filter by name, id, method or status
           (enter keeps the filter, escape clears it)
  space    mark a run; m compares the marked runs
  h        several boxes: show one host's runs, the next,
           then all (s submits there, or type host:path)

[b]Run[/]
  f        follow the log tail on / off
  escape   back to the runs

[b]Compare[/]
  e        the next evaluation metric in the chart
  escape   back to the runs

[b]Anywhere[/]
  g        GPUs: utilisation, memory, temperature, power
           and the processes on each, mapped to runs
  ?        this help (escape closes it)
  q        quit

Over SSH: ssh -t host cream tui; several boxes in one dashboard:
cream tui --host A --host B. NO_COLOR=1: no colours."""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            yield Static("[b]cream[/] dashboard keys", classes="dialog-title")
            yield Static(KEYS)

    def action_close(self) -> None:
        self.dismiss(None)
