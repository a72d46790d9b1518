"""The live tail of a run's job log (`runs/<run-id>/logs/job.log`). In follow mode new lines
appear and the view stays at the end; with follow off the view holds still so the user can
scroll back (toggle with `f`)."""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import Log


class LogTail(Log):
    def __init__(self, *, id: str | None = None):
        super().__init__(id=id, highlight=False, auto_scroll=True, max_lines=1000)
        self.follow = True
        self._tail: tuple[str, ...] = ()
        self._held: tuple[str, ...] | None = None

    def show_lines(self, lines: Sequence[str], empty: str) -> None:
        lines = tuple(lines) or (empty,)
        if not self.follow:
            self._held = lines
            return
        if lines == self._tail:
            return
        old = self._tail
        self._tail = lines
        # the tail is a window that slides as the log grows: append only what is new
        for k in range(min(len(old), len(lines)), 0, -1):
            if lines[:k] == old[-k:]:
                self.write_lines(lines[k:])
                return
        self.clear()
        self.write_lines(lines)

    def on_resize(self) -> None:
        # laid out again (the first time, or the screen around it changed): a view that
        # follows keeps the newest lines in sight
        if self.follow:
            self.scroll_end(animate=False)

    def toggle_follow(self) -> bool:
        self.follow = not self.follow
        self.auto_scroll = self.follow
        if self.follow:
            if self._held is not None:
                pending, self._held = self._held, None
                self.show_lines(pending, "")
            self.scroll_end(animate=False)
        return self.follow
