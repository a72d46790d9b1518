"""Runs side by side, for `cream compare`, the dashboard's compare screen and the demo: the
config keys that differ, one row per model (M0, M1, …) with its iteration's signals and its
evaluation, and the same as chart lines.

Light layer: standard library + the store.
"""

from __future__ import annotations

import json
from typing import Any

import tomllib

from cream_engine.results import (
    HEADLINE,
    Point,
    clean,
    evaluation_leaves,
    evaluations_by_model,
    flatten,
    headline_key,
)
from cream_engine.store import Store


def find_runs(store: Store, refs: list[str]) -> list[dict]:
    """Resolve refs (id, id prefix or name) in order, dropping repeats of the same run."""
    runs: list[dict] = []
    for ref in refs:
        run = store.require_run(ref)
        if all(r["id"] != run["id"] for r in runs):
            runs.append(run)
    return runs


def parse_config(text: str | None) -> dict:
    """A run's resolved config as a dict; {} when empty or unreadable."""
    try:
        return tomllib.loads(text or "")
    except tomllib.TOMLDecodeError:
        return {}


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


def labels(runs: list[dict], max_len: int | None = None) -> list[str]:
    """Run names, with the id's last 4 characters where two runs share a name; letters A, B, …
    when one is longer than `max_len` (a table column; the caller says which is which)."""
    names = [r["name"] for r in runs]
    out = [f"{r['name']} ({r['id'][-4:]})" if names.count(r["name"]) > 1 else r["name"]
           for r in runs]
    if max_len is not None and any(len(label) > max_len for label in out):
        out = [chr(ord("A") + i) if i < 26 else f"R{i + 1}" for i in range(len(runs))]
    return out


RUN_FIELDS = ("id", "name", "method", "model", "status")


def model_rows(store: Store, run: dict) -> list[dict]:
    """One row per model of a run: M0 (its baseline evaluation, when there is one), M1 when
    the run began with the seed SFT, then the model each iteration t trained (M_{t+1}, or
    M_{t+2} after the SFT) with that iteration's signals and the model's evaluation."""
    evals = evaluations_by_model(store, run["id"])
    offset = 1 if parse_config(run["config_toml"]).get("sft", {}).get("enabled") else 0
    empty = {"iteration": None, "status": None, "pairs": None, "mean_tau": None,
             "mean_consistency": None, "agreement": None}
    rows = [{"run": run["id"], "model": f"M{k}", **empty, "eval": evals[k]}
            for k in range(offset + 1) if k in evals]
    for it in store.iterations(run["id"]):
        t = it["iteration"]
        k = t + 1 + offset
        rows.append({"run": run["id"], "model": f"M{k}", "iteration": t,
                     "status": it["status"], "pairs": it["n_pairs"],
                     "mean_tau": it["mean_tau"], "mean_consistency": it["mean_consistency"],
                     "agreement": it["agreement"], "eval": evals.get(k)})
    return rows


def compare(store: Store, refs: list[str]) -> dict:
    """What `cream compare --json` prints: the runs, their config diff, one row per model."""
    runs = find_runs(store, refs)
    return clean({"runs": [{k: r[k] for k in RUN_FIELDS} for r in runs],
                  "config_diff": config_diff([parse_config(r["config_toml"]) for r in runs]),
                  "rows": [row for r in runs for row in model_rows(store, r)]})


def run_part(store: Store, run: dict) -> dict[str, Any]:
    """What the compare screen needs of one run, as plain JSON values (the run may live on
    another box and come over its feed): its id, name and config, the mean τ per iteration,
    the evaluation of each model M_k."""
    return {"id": run["id"], "name": run["name"], "config_toml": run["config_toml"],
            "tau": [[float(i["iteration"]), i["mean_tau"]] for i in store.iterations(run["id"])
                    if i["mean_tau"] is not None],
            "evaluations": {str(k): dict(evaluation_leaves(ev))
                            for k, ev in evaluations_by_model(store, run["id"]).items()}}


def evaluation_lines(parts: list[dict], names: list[str]
                     ) -> tuple[tuple[str, tuple[tuple[str, tuple[Point, ...]], ...]], ...]:
    """Every evaluation metric the runs (`run_part`s) have, headline first: (key, ((label,
    ((k, value), …)), …)), one line per run over its models M_k."""
    per_run = [(label, {int(k): ev for k, ev in part["evaluations"].items()})
               for label, part in zip(names, parts)]
    keys = sorted({k for _, per in per_run for ev in per.values() for k in ev
                   if not k.endswith(".n")})  # item counts are not results
    first = headline_key(keys)
    ordered = ([first] if first else []) + sorted(
        (k for k in keys if k != first),
        key=lambda k: (next((i for i, m in enumerate(HEADLINE) if k.endswith(m)),
                            len(HEADLINE)), k))
    return tuple((key, tuple((label, tuple((float(k), ev[key]) for k, ev in sorted(per.items())
                                           if key in ev))
                             for label, per in per_run)) for key in ordered)


def tau_lines(parts: list[dict], names: list[str]) -> tuple[tuple[str, tuple[Point, ...]], ...]:
    """Mean τ per iteration, one line per run (`run_part`s)."""
    return tuple((label, tuple((float(x), tau) for x, tau in part["tau"]))
                 for label, part in zip(names, parts))
