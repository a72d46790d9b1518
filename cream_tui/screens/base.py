"""What the polled screens share: the app's polling thread calls `load()` on the screen in
front (reads only, off the UI thread) and hands the value over with `deliver()`; the UI thread
shows it in `show()`. A newer value replaces one still waiting to be shown, so a slow redraw
never builds a queue. A screen tells the app it is in front with a `Polled` message."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from textual.message import Message
from textual.screen import Screen

from cream_tui.messages import Polled

if TYPE_CHECKING:
    from cream_tui.data import DataSource

_NOTHING = object()


class PolledScreen(Screen):
    class DataReady(Message):
        """A new value waits in the screen's slot."""

    def __init__(self) -> None:
        super().__init__()
        self._slot: Any = _NOTHING
        self._lock = threading.Lock()
        self.last_shown: Any = _NOTHING   # the last value shown (tests wait on it)

    @property
    def loaded(self) -> bool:
        return self.last_shown is not _NOTHING

    @property
    def settled(self) -> bool:
        """Shown at least once and nothing newer waiting."""
        return self.loaded and self._slot is _NOTHING

    def load(self, source: DataSource, now: float) -> Any:  # pragma: no cover - abstract
        """Read what the screen shows (runs in the polling thread)."""
        raise NotImplementedError

    def show(self, data: Any) -> None:  # pragma: no cover - abstract
        """Show a value (runs in the UI thread)."""
        raise NotImplementedError

    def deliver(self, data: Any) -> None:
        """Called from the polling thread."""
        if data == self.last_shown:
            return
        with self._lock:
            waiting = self._slot is not _NOTHING
            self._slot = data
        if not waiting:
            self.post_message(self.DataReady())

    def on_polled_screen_data_ready(self, _: DataReady) -> None:
        with self._lock:
            data, self._slot = self._slot, _NOTHING
        if data is _NOTHING:
            return
        self.show(data)
        self.last_shown = data

    def on_screen_resume(self) -> None:
        self.post_message(Polled(self))

    def on_resize(self) -> None:
        if self.loaded:          # widths changed: lay the same value out again at once
            self.show(self.last_shown)
        self.post_message(Polled(self))
