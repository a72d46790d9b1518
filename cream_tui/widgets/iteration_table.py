"""The per-iteration table of the run screen: pairs kept, mean Kendall τ, mean consistency C,
judge–implicit agreement, the evaluation of the model the iteration trained, M_t+1 (its
headline numbers; "-" until it has them) and mean response length. `GLOSSARY` says what the
columns are under it: "—" in agree is a method without a judge (CREAM, DPO), not a gap.

Focused (tab, or a click), a row cursor picks an iteration: enter opens its prompts (the
drill-down), as p does on the run screen for the cursor's iteration (else the newest)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from textual.widgets import DataTable

from cream_engine.results import IterationRow, headline
from cream_tui import format as fmt

COLUMNS = ("t", "status", "pairs", "mean τ", "mean C", "agree", "eval", "resp len")
GLOSSARY = ("mean τ: how alike r_t and r_t−1 rank the responses (- no previous model) · "
            "mean C = (τ+1)/2, CREAM's pair weight · agree: judge and implicit reward pick "
            "alike (— no judge: CREAM, DPO) · eval: M_t+1's accuracy · p: the prompts")
NO_JUDGE = "—"


def eval_text(row: IterationRow, limit: int = 2) -> str:
    """The first headline numbers, compact: "mc .17 arith .08" (the whole evaluation is on the
    compare screen and in `cream compare`)."""
    if not row.evaluation:
        return "-"
    return " ".join(f"{k.rsplit('.', 1)[-1]} {_compact(v)}"
                    for k, v in headline(row.evaluation)[:limit])


def column_widths(labels: Sequence[str], rows: Sequence[Sequence[object]]) -> list[int]:
    """Each column as wide as its label or its widest cell (str or rich Text)."""
    return [max([cell_len(label)] + [cell_len(str(row[i])) for row in rows])
            for i, label in enumerate(labels)]


def _compact(v: float) -> str:
    text = f"{v:.2f}"
    return text[1:] if text.startswith("0.") else text


class IterationTable(DataTable):
    def __init__(self, *, id: str | None = None):
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, show_cursor=False)
        self._rows: tuple = ()
        for label, width in zip(COLUMNS, column_widths(COLUMNS, ())):
            self.add_column(label, width=width)

    def show_rows(self, rows: Sequence[IterationRow]) -> None:
        cells = tuple((str(r.iteration), r.status, fmt.num(r.n_pairs, "{}"),
                       fmt.num(r.mean_tau), fmt.num(r.mean_consistency),
                       NO_JUDGE if r.agreement is None else fmt.num(r.agreement),
                       eval_text(r), fmt.num(r.mean_response_length, "{:.1f}"))
                      for r in rows)
        if cells == self._rows:
            return
        self._rows = cells
        current = self.cursor_row
        # the widths set here, not measured by the table: its header could be drawn with the
        # widths it had before the rows came (seen as a header one cell off its column)
        self.clear(columns=True)
        for label, width in zip(COLUMNS, column_widths(COLUMNS, cells)):
            self.add_column(label, width=width)
        for row in cells:
            self.add_row(*row, key=row[0])
        if cells:
            self.move_cursor(row=min(current, len(cells) - 1), animate=False)

    @property
    def current_iteration(self) -> int | None:
        """The iteration under the cursor while the table has focus, else the newest."""
        if not self.row_count:
            return None
        row = self.cursor_row if self.has_focus else self.row_count - 1
        return int(self.get_row_at(row)[0])

    def on_focus(self) -> None:
        self.show_cursor = True     # (a cursor only while it is the table the keys move)

    def on_blur(self) -> None:
        self.show_cursor = False
