"""`cream compare` and `cream export`: runs side by side, and one run as CSV or JSON.

Pure functions over a Store (no Typer); rich is imported only by the function that prints.
What they read is what the engine writes: the run's resolved TOML config, one `iterations` row
per iteration t (M_t → M_{t+1}) whose `summary` holds each stage's info dict, and `metrics`.
Evaluations live in those summaries: "baseline" (iteration 0) is M0's, "evaluate" (iteration
t) is M_{t+1}'s. Anything may be missing; a missing value is None here and "-" on screen.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tomllib
from pathlib import Path
from typing import Any, TextIO

RUN_FIELDS = ("id", "name", "method", "model", "status")
METRIC_COLUMNS = ("run_id", "iteration", "stage", "step", "name", "value", "time")
ITERATION_COLUMNS = ("run_id", "iteration", "status", "started_at", "ended_at", "n_prompts",
                     "n_pairs", "mean_tau", "mean_consistency", "std_consistency", "agreement",
                     "mean_response_length", "judge_unparsable")
FORMATS = ("csv", "json")
TABLES = ("metrics", "iterations")


class CompareError(ValueError):
    """A user error (no such run, bad option): one line for `fail()`."""


# -- reading ---------------------------------------------------------------------------------


def find_runs(store: Any, refs: list[str]) -> list[dict]:
    """Resolve refs (id, id prefix or name) in order, dropping repeats of the same run."""
    runs: list[dict] = []
    for ref in refs:
        run = store.find_run(ref)
        if run is None:
            raise CompareError(f"run {ref!r}: no such run")
        if all(r["id"] != run["id"] for r in runs):
            runs.append(run)
    return runs


def parse_config(text: str | None) -> dict:
    """The run's resolved config as a dict; {} when empty or unreadable."""
    try:
        return tomllib.loads(text or "")
    except tomllib.TOMLDecodeError:
        return {}


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys: {"train": {"beta": 0.1}} → {"train.beta": 0.1}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_diff(configs: list[dict]) -> dict[str, list[Any]]:
    """The flattened keys whose values differ across configs (None where a config lacks it)."""
    flat = [flatten(c) for c in configs]
    diff = {}
    for key in sorted(set().union(*flat)) if flat else []:
        # compared as JSON text, so `true` differs from `1`; an unset key differs from any value
        shown = {json.dumps(f[key], sort_keys=True, default=str) if key in f else "(unset)"
                 for f in flat}
        if len(shown) > 1:
            diff[key] = [f.get(key) for f in flat]
    return diff


def _as_dict(raw: Any) -> dict:
    """A JSON object, or one stored as text (a summary, or an info in older summaries)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}


def summaries(store: Any, run_id: str) -> dict[int, dict[str, dict]]:
    """{t: {stage: info}} from each iteration's summary. A stage that finished before its
    iteration did (the baseline while iteration 0 still runs) is read from `stages`."""
    out: dict[int, dict[str, dict]] = {}
    for s in store.stages(run_id):
        info = _as_dict(s["info"])
        if s["status"] == "done" and info:
            out.setdefault(s["iteration"], {})[s["stage"]] = info
    for it in store.iterations(run_id):
        summary = {k: _as_dict(v) for k, v in _as_dict(it["summary"]).items()}
        out.setdefault(it["iteration"], {}).update({k: v for k, v in summary.items() if v})
    return out


def model_rows(store: Any, run: dict) -> list[dict]:
    """One row per model of a run: M0 (its baseline evaluation, when there is one), then
    M_{t+1} for each iteration t with that iteration's signals and M_{t+1}'s evaluation."""
    infos = summaries(store, run["id"])
    rows = []
    baseline = infos.get(0, {}).get("baseline")
    if baseline:
        rows.append({"run": run["id"], "model": "M0", "iteration": None, "status": None,
                     "pairs": None, "mean_tau": None, "mean_consistency": None,
                     "agreement": None, "eval": baseline})
    for it in store.iterations(run["id"]):
        t = it["iteration"]
        rows.append({"run": run["id"], "model": f"M{t + 1}", "iteration": t,
                     "status": it["status"], "pairs": it["n_pairs"],
                     "mean_tau": it["mean_tau"], "mean_consistency": it["mean_consistency"],
                     "agreement": it["agreement"],
                     "eval": infos.get(t, {}).get("evaluate") or None})
    return rows


def compare(store: Any, refs: list[str]) -> dict:
    """What `cream compare --json` prints: the runs, their config diff, one row per model."""
    runs = find_runs(store, refs)
    return clean({"runs": [{k: r[k] for k in RUN_FIELDS} for r in runs],
                  "config_diff": config_diff([parse_config(r["config_toml"]) for r in runs]),
                  "rows": [row for r in runs for row in model_rows(store, r)]})


def clean(value: Any) -> Any:
    """NaN and infinities become None, so the JSON we print is JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


# -- printing compare ------------------------------------------------------------------------


MAX_LABEL = 16


def labels(runs: list[dict]) -> list[str]:
    """Run names, with the id's last 4 characters where two runs share a name (as the TUI);
    letters A, B, ... when a name is too long for a table column (the runs table says which)."""
    names = [r["name"] for r in runs]
    out = [f"{r['name']} ({r['id'][-4:]})" if names.count(r["name"]) > 1 else r["name"]
           for r in runs]
    if any(len(label) > MAX_LABEL for label in out):
        out = [_letter(i) for i in range(len(runs))]
    return out


def _letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"R{i + 1}"


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _num(value: Any, fmt: str = "{:.3f}") -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return "-" if isinstance(value, float) and not math.isfinite(value) else fmt.format(value)


def _eval_columns(rows: list[dict]) -> list[tuple[str, str, str]]:
    """(header, set, key) per evaluation column: each set's gen_acc, and ll_acc for a set
    that has it anywhere; a set with only gen_acc is headed by its bare name."""
    sets: dict[str, bool] = {}
    for row in rows:
        for name, s in ((row["eval"] or {}).get("sets") or {}).items():
            has_ll = isinstance(s, dict) and s.get("ll_acc") is not None
            sets[name] = sets.get(name, False) or has_ll
    cols = []
    for name, has_ll in sets.items():
        if has_ll:
            cols += [(f"{name} gen", name, "gen_acc"), (f"{name} ll", name, "ll_acc")]
        else:
            cols.append((name, name, "gen_acc"))
    return cols


def _win(ev: dict) -> str:
    win = ev.get("win") or {}
    rates = [win.get(k) for k in ("win_rate", "tie_rate", "loss_rate")]
    if all(r is None for r in rates):
        return "-"
    return "/".join(_num(r, "{:.2f}") for r in rates)


def print_compare(data: dict, console: Any = None) -> None:
    """The runs, the config diff, then the training signals and the evaluation as separate
    tables, the evaluation's columns split over several tables when the terminal is narrow,
    so that every number stays on one line (two runs with two sets fit 80 columns)."""
    from rich.console import Console

    console = console or Console()
    names = labels(data["runs"])
    by_id = dict(zip((r["id"] for r in data["runs"]), names))

    _print_table(console, "runs", ["run", "id", "method", "status"],
                 [[n, r["id"], r["method"], r["status"]] for n, r in zip(names, data["runs"])])
    console.print()
    if data["config_diff"]:
        _print_table(console, "config diff", ["key", *names],
                     [[k, *(_show(v) for v in vs)] for k, vs in data["config_diff"].items()])
    else:
        console.print("config diff: " + ("no differences" if len(names) > 1
                                         else "one run, nothing to compare"))

    console.print()
    rows = [r for r in data["rows"] if r["iteration"] is not None]
    if rows:
        _print_table(console, "iterations",
                     ["run", "model", "t", "status", "pairs", "mean τ", "mean C", "agree"],
                     [[by_id[r["run"]], r["model"], str(r["iteration"]), r["status"] or "-",
                       _num(r["pairs"], "{}"), _num(r["mean_tau"]),
                       _num(r["mean_consistency"]), _num(r["agreement"])] for r in rows])
    else:
        console.print("iterations: none yet")

    console.print()
    evaluated = [r for r in data["rows"] if r["eval"]]
    if not evaluated:
        console.print("evaluation: none yet")
        return
    cols = _eval_columns(evaluated)
    cells = []
    for r in data["rows"]:
        ev = r["eval"] or {}
        sets = ev.get("sets") or {}
        cells.append([by_id[r["run"]], r["model"],
                      *(_num((sets.get(s) or {}).get(k)) for _, s, k in cols), _win(ev),
                      _num(ev.get("judge_score"), "{:.2f}"), _num(ev.get("mean_length"), "{:.1f}")])
    headers = ["run", "model", *(c[0] for c in cols), "win/tie/loss", "score", "len"]
    for i, part in enumerate(_fit_columns(headers, cells, keys=2, width=console.width)):
        if i:
            console.print()
        _print_table(console, "evaluation" if i == 0 else "evaluation (continued)",
                     [headers[j] for j in part], [[row[j] for j in part] for row in cells])


def _print_table(console: Any, title: str, headers: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table
    from rich.text import Text

    # plain Text: a value like "[mc, arith]" is not rich markup
    table = Table(box=None, header_style="bold", title=title, title_justify="left",
                  title_style="bold")
    for h in headers:
        table.add_column(Text(h), overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)


def _fit_columns(headers: list[str], rows: list[list[str]], keys: int,
                 width: int) -> list[list[int]]:
    """Column indexes for each table: the `keys` first columns in every one, the others
    packed in order while the table fits `width` (a table with box=None takes 2 characters of
    padding per column)."""
    widths = [max([len(h)] + [len(r[j]) for r in rows]) + 2 for j, h in enumerate(headers)]
    parts: list[list[int]] = []
    for j in range(keys, len(headers)):
        if parts and sum(widths[i] for i in parts[-1]) + widths[j] <= width:
            parts[-1].append(j)
        else:
            parts.append(list(range(keys)) + [j])
    return parts or [list(range(len(headers)))]


# -- export ----------------------------------------------------------------------------------


def export_json(store: Any, run: dict, table: str | None = None) -> dict:
    """The run (with its config parsed), its iterations (summaries parsed) and metrics;
    `table` keeps only one of the two lists."""
    out: dict[str, Any] = {"run": {
        **{k: run[k] for k in RUN_FIELDS},
        **{k: run.get(k) for k in ("iterations", "created_at", "started_at", "ended_at",
                                   "error", "git_commit")},
        "config": parse_config(run["config_toml"])}}
    if table in (None, "iterations"):
        out["iterations"] = [{**it, "summary": {k: _as_dict(v) or v for k, v in
                                                _as_dict(it["summary"]).items()} or None}
                             for it in store.iterations(run["id"])]
    if table in (None, "metrics"):
        out["metrics"] = metric_rows(store, run["id"])
    return clean(out)


def metric_rows(store: Any, run_id: str) -> list[dict]:
    return store.query(f"SELECT {', '.join(METRIC_COLUMNS)} FROM metrics WHERE run_id = ? "
                       "ORDER BY iteration, id", [run_id])


def iteration_rows(store: Any, run: dict) -> list[dict]:
    """One flat dict per iteration: the scalar columns, then `baseline.*` (iteration 0) and
    `eval.*` (M_{t+1}'s evaluation) as dotted keys; lists are kept as JSON text."""
    infos = summaries(store, run["id"])
    rows = []
    for it in store.iterations(run["id"]):
        row = {k: it.get(k) for k in ITERATION_COLUMNS}
        for stage, prefix in (("baseline", "baseline."), ("evaluate", "eval.")):
            info = infos.get(it["iteration"], {}).get(stage) or {}
            row.update({k: json.dumps(v) if isinstance(v, list) else v
                        for k, v in flatten(info, prefix).items()})
        rows.append(clean(row))
    return rows


def write_csv(rows: list[dict], fh: TextIO, columns: tuple[str, ...] = ()) -> None:
    """A header of `columns` plus every other key in first-seen order; blank where missing."""
    header = list(columns)
    for row in rows:
        header += [k for k in row if k not in header]
    writer = csv.DictWriter(fh, fieldnames=header, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: "" if v is None else v for k, v in row.items()} for row in rows])


def export(store: Any, ref: str, fmt: str, table: str | None = None) -> str:
    """The text `cream export` writes."""
    if fmt not in FORMATS:
        raise CompareError(f"--format {fmt!r}: must be one of {', '.join(FORMATS)}")
    if table is not None and table not in TABLES:
        raise CompareError(f"--table {table!r}: must be one of {', '.join(TABLES)}")
    run = find_runs(store, [ref])[0]
    if fmt == "json":
        return json.dumps(export_json(store, run, table), indent=2, default=str) + "\n"
    buf = io.StringIO()
    if table == "iterations":
        write_csv(iteration_rows(store, run), buf, ITERATION_COLUMNS)
    else:
        write_csv(metric_rows(store, run["id"]), buf, METRIC_COLUMNS)
    return buf.getvalue()


def write_atomic(path: Path, text: str) -> None:
    """Write beside the target, then rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # same folder: rename is atomic
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
