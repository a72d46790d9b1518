"""How loaded a GPU reading is, as a style: the thresholds nvitop draws by (load and memory
moderate from 50 %, heavy from 80 %; temperature warm from 70 °C, hot from 80 °C). A low or
missing reading keeps the plain style; heavy is bold as well as red, so it still stands out
under NO_COLOR."""

from __future__ import annotations

from rich.text import Text

from cream_tui import format as fmt

LOAD_LEVELS = (50.0, 80.0)     # percent: utilisation, memory used
TEMP_LEVELS = (70.0, 80.0)     # °C
STYLES = ("", "yellow", "bold red")
BAR_STYLES = ("green", "yellow", "bold red")


def level(value: float | None, levels: tuple[float, float]) -> int:
    """0 (normal or unknown), 1 (moderate), 2 (heavy)."""
    if value is None:
        return 0
    return 2 if value >= levels[1] else 1 if value >= levels[0] else 0


def load_style(percent: float | None) -> str:
    return STYLES[level(percent, LOAD_LEVELS)]


def temp_style(celsius: float | None) -> str:
    return STYLES[level(celsius, TEMP_LEVELS)]


def load_bar(percent: float | None, width: int) -> Text:
    """A bar of `width` cells, green, yellow or red by level; all light when unknown."""
    drawn = fmt.bar(None if percent is None else percent / 100, width)
    full = drawn.count("█")
    bar = Text(drawn[:full], style=BAR_STYLES[level(percent, LOAD_LEVELS)])
    bar.append(drawn[full:], style="dim")
    return bar


def percent(value: float | None, spec: str = "{:3.0f}%") -> Text:
    """A load reading, styled by level ("N/A" when the board gives none)."""
    return Text(fmt.na(value, spec), style=load_style(value))


def temperature(celsius: float | None) -> Text:
    return Text(fmt.na(celsius, "{:.0f}°C"), style=temp_style(celsius))
