"""`cream show`: one iteration of a run, prompt by prompt (the dashboard's drill-down in the
shell). Without --prompt a table of the iteration's prompts; with it that prompt in full."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cream_engine.prompt_view import IterationView
from cream_tui import format as fmt
from cream_tui import prompt_data, prompt_text
from cream_tui.cli.common import HomeOpt, HostOpt, JsonOpt, RunArg, echo_json, on_host, store_with

PROMPT_WIDTH = 60   # of the prompt column at most (the terminal may make it narrower)


def show(ctx: typer.Context, run: RunArg,
         iteration: Annotated[int, typer.Option(
             "--iteration", "-t", help="The iteration (t = 0, 1, ...).", show_default=False)],
         prompt: Annotated[str | None, typer.Option(
             "--prompt", "-p", help="One prompt's id: its responses, the judge's texts and "
             "scores, the implicit rewards, both rankings and the pair.", show_default=False)]
         = None,
         home: HomeOpt = None, as_json: JsonOpt = False, host: HostOpt = None) -> None:
    """What the model wrote in one iteration and how it was rewarded, prompt by prompt.

    Without --prompt: a table of the iteration's prompts (τ_j, C_j, judge-implicit agreement,
    the pair or why there is none, the prompt). With --prompt: that prompt in full. Read from
    the run's files (iter-T/responses.jsonl, scores.jsonl, consistency.jsonl, pairs.jsonl):
    an iteration still running shows what it has so far.

    Examples:

        cream show cream-a --iteration 1

        cream show cream-a -t 1 --prompt p03

        cream show cream-a -t 1 --json | jq '.prompts[] | select(.pair == null)'
    """
    on_host(host)
    store = store_with(ctx, home, run)
    name, _, value = prompt_data.lookup(store, run, iteration, prompt)
    if as_json:
        echo_json(prompt_data.to_json(value))
    elif prompt is None:
        print_prompts(name, value)
    else:
        Console().print(prompt_text.detail_text(name, value))


def print_prompts(name: str, view: IterationView, console: Console | None = None) -> None:
    """The summary line, the glossary, then one row per prompt."""
    console = console or Console()
    console.print(prompt_text.summary_text(name, view.summary))
    console.print(Text(prompt_text.GLOSSARY, style="dim"))
    rows = [(p.prompt_id, fmt.num(p.tau, "{:+.2f}"), fmt.num(p.consistency, "{:.2f}"),
             prompt_text.agree_cell(p), prompt_text.pair_cell(p), p.prompt)
            for p in view.prompts]
    table = Table(box=None, header_style="bold")
    widths = [max([len(col)] + [len(r[i]) for r in rows])
              for i, col in enumerate(("id", "τ", "C", "agree", "pair"))]
    for col, width in zip(("id", "τ", "C", "agree", "pair"), widths):  # these whole, always
        table.add_column(col, no_wrap=True, min_width=width)
    table.add_column("prompt", no_wrap=True)
    room = min(max(console.width - sum(widths) - 2 * 6, 12), PROMPT_WIDTH)
    for row in rows:
        table.add_row(*row[:-1], fmt.truncate(row[-1], room))
    console.print(table)
    for p in view.prompts:   # the reasons in full
        if p.pair is None and p.reason:
            verb = "no pair" if p.pairs_made else "will have no pair"
            console.print(Text(f"{p.prompt_id}: {verb}: {p.reason}", style="yellow"))
