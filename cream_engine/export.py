"""`cream export`: one run as JSON (the run with its config, iterations and metrics) or as CSV
(one table: the metrics, or the iterations with the evaluations as `eval.*` / `baseline.*`
columns).

Light layer: standard library + the store.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, TextIO

from cream_engine.compare import RUN_FIELDS, parse_config
from cream_engine.errors import UsageError
from cream_engine.results import as_dict, clean, flatten, summaries
from cream_engine.store import Store

METRIC_COLUMNS = ("run_id", "iteration", "stage", "step", "name", "value", "time")
ITERATION_COLUMNS = ("run_id", "iteration", "status", "started_at", "ended_at", "n_prompts",
                     "n_pairs", "mean_tau", "mean_consistency", "std_consistency", "agreement",
                     "mean_response_length", "judge_unparsable")
FORMATS = ("csv", "json")
TABLES = ("metrics", "iterations")


def export_json(store: Store, run: dict, table: str | None = None) -> dict:
    """The run (with its config parsed), its iterations (summaries parsed) and metrics;
    `table` keeps only one of the two lists."""
    out: dict[str, Any] = {"run": {
        **{k: run[k] for k in RUN_FIELDS},
        **{k: run.get(k) for k in ("iterations", "created_at", "started_at", "ended_at",
                                   "error", "git_commit")},
        "config": parse_config(run["config_toml"])}}
    if table in (None, "iterations"):
        out["iterations"] = [{**it, "summary": {k: as_dict(v) or v for k, v in
                                                as_dict(it["summary"]).items()} or None}
                             for it in store.iterations(run["id"])]
    if table in (None, "metrics"):
        out["metrics"] = store.metric_rows(run["id"])
    return clean(out)


def iteration_table(store: Store, run: dict) -> list[dict]:
    """One flat dict per iteration: the scalar columns, then `baseline.*` and `sft_eval.*`
    (iteration 0: M0's and the seed SFT's M1's evaluations) and
    `eval.*` (M_{t+1}'s evaluation) as dotted keys; lists are kept as JSON text."""
    infos = summaries(store, run["id"])
    rows = []
    for it in store.iterations(run["id"]):
        row = {k: it.get(k) for k in ITERATION_COLUMNS}
        for stage, prefix in (("baseline", "baseline."), ("sft-eval", "sft_eval."),
                              ("evaluate", "eval.")):
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


def export(store: Store, ref: str, fmt: str, table: str | None = None) -> str:
    """The text `cream export` writes."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: must be one of {', '.join(FORMATS)}")
    if table is not None and table not in TABLES:
        raise UsageError(f"--table {table!r}: must be one of {', '.join(TABLES)}")
    run = store.require_run(ref)
    if fmt == "json":
        return json.dumps(export_json(store, run, table), indent=2, default=str) + "\n"
    buf = io.StringIO()
    if table == "iterations":
        write_csv(iteration_table(store, run), buf, ITERATION_COLUMNS)
    else:
        write_csv(store.metric_rows(run["id"]), buf, METRIC_COLUMNS)
    return buf.getvalue()
