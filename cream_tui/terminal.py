"""Whether the dashboard has a terminal to draw on (`cream tui` and `cream-tui` both ask),
without importing textual: the CLI must stay light."""

from __future__ import annotations

import sys


def not_a_terminal() -> str | None:
    """Which of stdin (keys), stdout and stderr (where textual draws) is not a terminal, or
    None. Piped or redirected, the dashboard would draw escape codes into a file or wait for
    keys that never come."""
    for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout), ("stderr", sys.stderr)):
        if stream is None or not stream.isatty():
            return name
    return None


def no_terminal_line(command: str, missing: str) -> str:
    return (f"{command} needs a terminal: {missing} is not one (over ssh: ssh -t HOST "
            f"{command}); try `cream status` for the runs as text")
