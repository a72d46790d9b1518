"""The per-iteration table of the run screen: pairs kept, mean Kendall τ, mean consistency C,
judge–implicit agreement, the evaluation of the model the iteration trained, M_t+1 (its
headline numbers; "-" until it has them) and mean response length."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from textual.widgets import DataTable

from cream_engine.results import IterationRow, headline
from cream_tui import format as fmt

COLUMNS = ("t", "status", "pairs", "mean τ", "mean C", "agree", "eval", "resp len")


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
        super().__init__(id=id, cursor_type="none", zebra_stripes=True, show_cursor=False)
        self._rows: tuple = ()
        for label, width in zip(COLUMNS, column_widths(COLUMNS, ())):
            self.add_column(label, width=width)

    def show_rows(self, rows: Sequence[IterationRow]) -> None:
        cells = tuple((str(r.iteration), r.status, fmt.num(r.n_pairs, "{}"),
                       fmt.num(r.mean_tau), fmt.num(r.mean_consistency), fmt.num(r.agreement),
                       eval_text(r), fmt.num(r.mean_response_length, "{:.1f}"))
                      for r in rows)
        if cells == self._rows:
            return
        self._rows = cells
        # the widths set here, not measured by the table: its header could be drawn with the
        # widths it had before the rows came (seen as a header one cell off its column)
        self.clear(columns=True)
        for label, width in zip(COLUMNS, column_widths(COLUMNS, cells)):
            self.add_column(label, width=width)
        for row in cells:
            self.add_row(*row)
