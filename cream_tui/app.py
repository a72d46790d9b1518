"""The dashboard (`cream tui` / `cream-tui`): a small App; screens and widgets do the work.

It reads the store only, never the engine's memory and never torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Footer, Header, Static


class CreamApp(App):
    TITLE = "cream"
    BINDINGS = [("q", "quit", "Quit")]

    def __init__(self, home: Path, run: str | None = None):
        super().__init__()
        self.home = home
        self.initial_run = run

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="empty")
        yield DataTable(id="runs", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.home)
        self.refresh_runs()

    def refresh_runs(self) -> None:
        from cream_engine.store import StoreError, open_store

        table = self.query_one("#runs", DataTable)
        empty = self.query_one("#empty", Static)
        try:
            store = open_store(self.home, create=False)
        except StoreError as e:
            empty.update(str(e))
            return
        runs = store.list_runs() if store else []
        if not runs:
            empty.update(f"No runs under {self.home} yet.\n\nWrite a config with "
                         "`cream init exp.toml`, then start it with `cream run exp.toml`.")
            table.display = False
            return
        empty.display = False
        table.clear(columns=True)
        table.add_columns("run", "method", "status", "model")
        for r in runs:
            table.add_row(r["id"], r["method"], r["status"], r["model"], key=r["id"])


def run_app(home: Path, run: str | None = None) -> int:
    CreamApp(home, run).run()
    return 0


def main() -> None:
    from cream_engine import paths

    parser = argparse.ArgumentParser(prog="cream-tui", description="The cream dashboard.")
    parser.add_argument("--home", default=None, help="data home [default: $CREAM_HOME or ./runs]")
    parser.add_argument("--run", default=None, help="open this run directly")
    args = parser.parse_args()
    raise SystemExit(run_app(paths.data_home(args.home), args.run))
