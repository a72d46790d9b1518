"""What the screens ask of the app, as messages (they bubble from a screen up to the app): the
screens never reach into the app, so the app imports the screens and nothing imports back."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class Polled(Message):
    """A polled screen came to the front (or was resized): poll for it now."""

    def __init__(self, screen: Any):
        super().__init__()
        self.screen = screen


class OpenRun(Message):
    def __init__(self, run_id: str):
        super().__init__()
        self.run_id = run_id


class OpenCompare(Message):
    def __init__(self, run_ids: list[str]):
        super().__init__()
        self.run_ids = run_ids


class QueueAction(Message):
    """Run the queue action `name` (`actions.BY_NAME`) with `args` on `host` (None: the one
    data home of a single-box dashboard) off the UI thread; its one line becomes a notice."""

    def __init__(self, name: str, host: str | None, *args: Any):
        super().__init__()
        self.name, self.host, self.args = name, host, args


class Notice(Message):
    def __init__(self, text: str, severity: str = "information"):
        super().__init__()
        self.text, self.severity = text, severity
