"""The runs' final models metric by metric, as the compare screen and `cream compare` show
them: a table of metrics × runs, each value with its 95% interval, grouped by what it was
measured on with the group's n, then one verdict per main metric (`compare.comparisons`)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cream_engine.compare import MetricComparison, labels
from cream_engine.eval_metrics import Estimate, Metric, describe

MAX_LABEL = 16   # longer run names become letters (the runs table says which is which)


def cell(metric: Metric, e: Estimate | None, group_n: int | None) -> str:
    """A value with its 95% interval ("0.36 (0.27–0.46)"; "(no CI)" when its spread is not
    known), and its n when its group has no single n."""
    if e is None:
        return "-"
    shown = metric.shown(e.value, table=True)
    shown += " (no CI)" if e.low is None or e.high is None else \
        f" ({metric.shown(e.low, table=True)}–{metric.shown(e.high, table=True)})"
    return shown if group_n is not None or e.n is None else f"{shown} n={e.n}"


def group_n(rows: Sequence[MetricComparison], group: str) -> int | None:
    """The one n of every value in a group of metrics (a set's items), None if they differ."""
    ns = {e.n for r in rows if r.metric.group == group for e in r.estimates if e is not None}
    return next(iter(ns)) if len(ns) == 1 else None


def table_rows(rows: Sequence[MetricComparison]) -> list[tuple[str, bool, list[str]]]:
    """(first cell, is a group's heading, one cell per run): a heading row per group with its
    n under the first run, then the group's metrics."""
    out: list[tuple[str, bool, list[str]]] = []
    runs = len(rows[0].estimates) if rows else 0
    group: str | None = None
    n = None
    for r in rows:
        if group is None or r.metric.group != group:
            group, n = r.metric.group, group_n(rows, r.metric.group)
            out.append((group or "other", True,
                        [f"n = {n}" if n and i == 0 else "" for i in range(runs)]))
        out.append((f"  {r.metric.name}", False, [cell(r.metric, e, n) for e in r.estimates]))
    return out


def main_verdicts(rows: Sequence[MetricComparison]) -> list[MetricComparison]:
    """The metrics a comparison leads with (every one when none is a main one)."""
    return [r for r in rows if r.metric.primary] or list(rows)


def within_noise(verdict: str) -> bool:
    """A verdict that names no better run (within noise, one run, no spread known)."""
    return verdict.startswith(("within noise", "only", "no run", "one run")) \
        or "no interval" in verdict


# -- `cream compare` ----------------------------------------------------------------------------


def from_json(data: dict) -> list[MetricComparison]:
    """`compare.compare()`'s `metrics` and `verdicts` (plain JSON) as comparisons again."""
    verdicts = {v["key"]: v["verdict"] for v in data.get("verdicts", [])}
    out = []
    for m in data.get("metrics", []):
        entries = m["runs"]
        out.append(MetricComparison(
            describe(m["key"]), tuple(e and e["model"] for e in entries),
            tuple(e and Estimate(e["value"], e["n"], e["low"], e["high"]) for e in entries),
            verdicts.get(m["key"], "")))
    return out


def print_final_models(data: dict, console: Console | None = None) -> None:
    """After `tables.print_compare`: the final models' results with n and 95% interval, the
    run columns split over several tables when the terminal is narrow, then the verdicts."""
    console = console or Console()
    rows = from_json(data)
    console.print()
    if not rows:
        console.print("final models: no evaluation yet")
        return
    names = labels(data["runs"], MAX_LABEL)
    models = [next((r.models[i] for r in rows if r.models[i]), None)
              for i in range(len(names))]
    heads = [f"{n} {m}" if m else n for n, m in zip(names, models)]
    body = table_rows(rows)
    first = max(len(label) for label, _, _ in body) + 2
    widths = [max([len(h)] + [len(cells[i]) for _, _, cells in body]) + 2
              for i, h in enumerate(heads)]
    parts: list[list[int]] = []
    for i, w in enumerate(widths):   # (as many run columns per table as fit the width)
        if parts and first + sum(widths[j] for j in parts[-1]) + w <= console.width:
            parts[-1].append(i)
        else:
            parts.append([i])
    for p, cols in enumerate(parts):
        title = "final models: value (95% interval)" + (" (continued)" if p else "")
        table = Table(box=None, header_style="bold", title=title, title_justify="left",
                      title_style="bold")
        table.add_column("metric", no_wrap=True)
        for i in cols:
            table.add_column(Text(heads[i]), no_wrap=True)
        for label, heading, cells in body:
            table.add_row(Text(label, style="bold" if heading else ""),
                          *(Text(cells[i]) for i in cols))
        if p:
            console.print()
        console.print(table)
    console.print()
    console.print(Text("which did better (final models; within noise: the difference's "
                       "95% CI holds 0)", style="bold"))
    main = main_verdicts(rows)
    for r in main:
        console.print(Text(f"- {r.metric.title}: {r.verdict}"))
    if len(main) < len(rows):
        console.print(Text(f"  ({len(rows) - len(main)} more verdicts in --json)"))
