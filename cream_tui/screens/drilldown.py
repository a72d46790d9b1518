"""The drill-down: what the model wrote in one iteration and how it was rewarded.

`DrilldownScreen` lists the iteration's prompts (τ_j, C_j, the judge–implicit agreement, the
pair or why there is none, the prompt), under the iteration's summary, a glossary and
histograms of the rewards, the chosen pairs' margins and C_j. t sorts by τ (lowest first, then
highest, then as generated), / searches the prompt text, [ and ] step to the previous or next
iteration, enter opens a prompt. `PromptScreen` shows that prompt in full: each response with
its rewards at t and t−1, its ranks in both rankings and the judge's texts, the chosen ✓ and
rejected ✗ (or why no pair was made). Both read through the app's data source, on its polling
thread, like every screen (a remote run's through its host's feed).
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Input, Static

from cream_tui import format as fmt
from cream_tui import prompt_text
from cream_tui.data import DataSource, PromptData, PromptsData
from cream_tui.messages import Polled
from cream_tui.screens.base import PolledScreen
from cream_tui.widgets.histogram import Histogram

COLUMNS = ("id", "τ", "C", "agree", "pair", "prompt")
SORTS = ("as generated", "τ lowest first", "τ highest first")


class DrilldownScreen(PolledScreen):
    BINDINGS = [Binding("escape", "back", "Back"),
                Binding("t", "sort", "Sort by τ"),
                Binding("slash", "search", "Search"),
                Binding("left_square_bracket", "step(-1)", "Prev it"),
                Binding("right_square_bracket", "step(1)", "Next it")]

    DEFAULT_CSS = """
    DrilldownScreen #drill-summary, DrilldownScreen #drill-glossary {
        height: auto;
        padding: 0 1;
    }
    DrilldownScreen #drill-glossary {
        color: $text-muted;
    }
    DrilldownScreen #drill-search {
        height: 1;
        margin: 0 1;
    }
    DrilldownScreen #drill-table {
        height: 1fr;
    }
    """

    def __init__(self, ref: str, iteration: int):
        super().__init__()
        self.ref = ref
        self.iteration = iteration
        self.sort = 0               # SORTS index
        self.search = ""
        self._rows: tuple = ()

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static(id="drill-summary")
        yield Static(prompt_text.GLOSSARY, id="drill-glossary")
        yield Histogram(id="drill-hist")
        box = Input(placeholder="search prompt text (enter keeps it, escape clears)",
                    id="drill-search", compact=True)
        box.cursor_blink = False
        yield box
        yield DataTable(id="drill-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#drill-search", Input).display = False
        self.query_one("#drill-table", DataTable).focus()

    def load(self, source: DataSource, now: float) -> PromptsData:
        return source.prompts_data(self.ref, self.iteration)

    def show(self, data: PromptsData) -> None:
        summary = self.query_one("#drill-summary", Static)
        table = self.query_one("#drill-table", DataTable)
        hist = self.query_one("#drill-hist", Histogram)
        if data.problem or data.view is None:
            summary.update(Text(data.problem or "nothing to show", style="bold red"))
            table.display = hist.display = False
            return
        table.display = hist.display = True
        view = data.view
        self.sub_title = f"{data.run_name} · iteration {data.iteration} · prompts"
        text = prompt_text.summary_text(data.run_name, view.summary)
        shown = self._shown(view.prompts)
        extras = [f"sorted: {SORTS[self.sort]}" if self.sort else "",
                  f"search '{self.search}': {len(shown)} shown" if self.search else ""]
        if any(extras):
            text.append(" · " + fmt.joined(extras), style="bold")
        summary.update(text)
        s = view.summary
        hist.show([(s.pair_reward if s.pair_reward != "implicit" else "reward r_t",
                    s.rewards), ("margin", s.margins), ("C_j", s.consistencies)])
        self._fill(table, shown, self.size.width)

    def _shown(self, prompts: tuple) -> list:
        needle = self.search.lower()
        rows = [p for p in prompts if not needle or needle in p.prompt.lower()
                or needle in p.prompt_id.lower()]
        if self.sort:
            sign = 1 if self.sort == 1 else -1   # (no τ: last either way)
            rows.sort(key=lambda p: (p.tau is None, sign * (p.tau or 0.0)))
        return rows

    def _fill(self, table: DataTable, prompts: list, width: int) -> None:
        cells = tuple((p.prompt_id, fmt.num(p.tau, "{:+.2f}"), fmt.num(p.consistency, "{:.2f}"),
                       prompt_text.agree_cell(p), prompt_text.pair_cell(p), p.prompt)
                      for p in prompts)
        if (cells, width) == self._rows:
            return
        self._rows = (cells, width)
        current = table.cursor_row
        widths = [min(max([len(c)] + [len(r[i]) for r in cells]), 24)
                  for i, c in enumerate(COLUMNS[:-1])]
        room = max(width - sum(widths) - 2 * len(COLUMNS) - 3, 12)
        table.clear(columns=True)
        for label, w in zip(COLUMNS, [*widths, room]):
            table.add_column(label, width=w)
        for row in cells:
            table.add_row(*row[:-1], fmt.truncate(row[-1], room), key=row[0])
        if cells:
            table.move_cursor(row=min(current, len(cells) - 1), animate=False)

    def _refresh(self) -> None:
        self._rows = ()
        if self.loaded:
            self.show(self.last_shown)

    # -- keys ----------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.app.push_screen(PromptScreen(self.ref, self.iteration, event.row_key.value))

    def action_sort(self) -> None:
        self.sort = (self.sort + 1) % len(SORTS)
        self._refresh()
        self.notify(f"sorted: {SORTS[self.sort]}", timeout=2)

    def action_step(self, delta: int) -> None:
        have = self.last_shown.iterations if self.loaded else ()
        later = [t for t in have if (t - self.iteration) * delta > 0]
        if not later:
            self.notify("no " + ("earlier" if delta < 0 else "later") + " iteration with "
                        "files", severity="warning", timeout=3)
            return
        self.iteration = min(later, key=lambda t: abs(t - self.iteration))
        self._rows = ()
        self.post_message(Polled(self))   # (read the new iteration now, not at the next poll)

    def action_search(self) -> None:
        box = self.query_one("#drill-search", Input)
        box.display = True
        box.focus()

    def action_back(self) -> None:
        if self.search or self.query_one("#drill-search", Input).display:
            self._clear_search()
            return
        self.app.pop_screen()

    def _clear_search(self) -> None:
        box = self.query_one("#drill-search", Input)
        box.value = ""
        box.display = False
        self.search = ""
        self.query_one("#drill-table").focus()
        self._refresh()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.search = event.value.strip()
        self._refresh()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not self.search:
            event.input.display = False
        self.query_one("#drill-table").focus()


class PromptScreen(PolledScreen):
    BINDINGS = [Binding("escape,backspace", "back", "Back")]

    DEFAULT_CSS = """
    PromptScreen #prompt-body {
        height: 1fr;
        padding: 0 1;
    }
    PromptScreen #prompt-text {
        height: auto;
    }
    """

    def __init__(self, ref: str, iteration: int, prompt_id: str):
        super().__init__()
        self.ref, self.iteration, self.prompt_id = ref, iteration, prompt_id

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with VerticalScroll(id="prompt-body"):
            yield Static(id="prompt-text")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#prompt-body").focus()

    def load(self, source: DataSource, now: float) -> PromptData:
        return source.prompt_detail(self.ref, self.iteration, self.prompt_id)

    def show(self, data: PromptData) -> None:
        body = self.query_one("#prompt-text", Static)
        if data.problem or data.detail is None:
            body.update(Text(data.problem or "no such prompt", style="bold red"))
            return
        self.sub_title = f"{data.run_name} · iteration {self.iteration} · {self.prompt_id}"
        body.update(prompt_text.detail_text(data.run_name, data.detail))

    def action_back(self) -> None:
        self.app.pop_screen()
