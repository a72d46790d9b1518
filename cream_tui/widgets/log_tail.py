"""The live tail of a run's job log (`runs/<run-id>/logs/job.log`). In follow mode new lines
appear and the view stays at the end (after every update, and after every resize); with
follow off the view holds still so the user can scroll back (toggle with `f`).

Long lines (a trainer's dict of metrics, a traceback's frames) wrap at the widget's width
instead of running off to the right: the log keeps the lines as read and shows them wrapped,
wrapped again when the width changes. No horizontal scrollbar, so none can hide the last line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import Log


class LogTail(Log):
    DEFAULT_CSS = """
    LogTail {
        overflow-x: hidden;
        overflow-y: scroll;
    }
    """

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id, highlight=False, auto_scroll=True, max_lines=1000)
        self.follow = True
        self._tail: tuple[str, ...] = ()            # the lines shown, as read
        self._held: tuple[str, ...] | None = None   # newer lines, while follow is off
        self._wrap_width = 0                        # the width they were wrapped at

    @property
    def text_width(self) -> int:
        """Columns for text: inside the padding and the vertical scrollbar (0: not laid out
        yet; the lines are then written unwrapped and wrapped at the first resize)."""
        return max(self.scrollable_content_region.width, 0)

    def wrapped(self, lines: Iterable[str]) -> list[str]:
        """Each line cut into rows of the text width (at spaces where it can)."""
        width = self._wrap_width
        if width <= 0:
            return list(lines)
        console = self.app.console
        rows: list[str] = []
        for line in lines:
            line = self._process_line(line)   # tabs and control codes as `Log` shows them
            if cell_len(line) <= width:
                rows.append(line)
            else:
                rows += [part.plain.rstrip() for part in
                         Text(line, overflow="fold").wrap(console, width)] or [""]
        return rows

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
                self.write_lines(self.wrapped(lines[k:]), scroll_end=False)
                self._to_end()
                return
        self._rewrite()

    def _rewrite(self) -> None:
        held_at = self.scroll_y   # (paused: the view stays about where the user left it)
        self._wrap_width = self.text_width
        self.clear()
        self.write_lines(self.wrapped(self._tail), scroll_end=False)
        if self.follow:
            self._to_end()
        else:
            self.scroll_to(y=held_at, animate=False, immediate=True)

    def _to_end(self) -> None:
        """While following: the newest line in sight, now and once the layout has settled
        (a write can come before the size it will be shown at is known)."""
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
            self.scroll_end(animate=False, x_axis=False)

    def on_resize(self) -> None:
        # laid out again (the first time, or the screen around it changed): lines wrapped at
        # another width are wrapped again, and a view that follows keeps the newest in sight
        if self.text_width != self._wrap_width and self._tail:
            self._rewrite()
        self._to_end()

    def toggle_follow(self) -> bool:
        self.follow = not self.follow
        self.auto_scroll = self.follow
        if self.follow:
            if self._held is not None:
                pending, self._held = self._held, None
                self.show_lines(pending, "")
            self._to_end()
        return self.follow
