"""Runs side by side, for `cream compare`, the dashboard's compare screen and the demo: the
config keys that differ, one row per model (M0, M1, …) with its iteration's signals and its
evaluation, the same as chart lines, and the runs' final models metric by metric, each value
with its n and 95% interval and one verdict line per metric (eval_metrics.py).

Light layer: standard library + the store.
"""

from __future__ import annotations

import json
import math
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from cream_engine import eval_metrics, paths
from cream_engine.eval_metrics import Estimate, Metric
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

# config keys that only label a run (its name is the column's title): never a difference
LABEL_KEYS = frozenset({"run.name"})
LOSS_POINTS = 200   # a run's DPO loss curve, as it travels to the compare screen


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
    """The flattened keys whose values differ across configs (None where a config lacks it);
    the run's name is a label, not a setting (a seed is a setting: it changes the results)."""
    flat = [flatten(c) for c in configs]
    diff = {}
    for key in sorted(set().union(*flat) - LABEL_KEYS) if flat else []:
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
    """What `cream compare --json` prints: the runs, their config diff, one row per model,
    then the final models' results with n and 95% interval (`metrics`) and one verdict per
    metric (`verdicts`)."""
    runs = find_runs(store, refs)
    parts = [run_part(store, r) for r in runs]
    compared = comparisons(parts, labels(runs))
    return clean({"runs": [{k: r[k] for k in RUN_FIELDS} for r in runs],
                  "config_diff": config_diff([parse_config(r["config_toml"]) for r in runs]),
                  "rows": [row for r in runs for row in model_rows(store, r)],
                  "metrics": [c.to_json([r["id"] for r in runs]) for c in compared],
                  "verdicts": [{"key": c.metric.key, "title": c.metric.title,
                                "primary": c.metric.primary, "verdict": c.verdict}
                               for c in compared]})


def run_part(store: Store, run: dict) -> dict[str, Any]:
    """What the compare screen needs of one run, as plain JSON values (the run may live on
    another box and come over its feed): its id, name and config, the mean τ per iteration,
    the evaluation of each model M_k with [n, sd] per result (`samples`, eval_metrics.py), and
    its DPO loss curve, iterations end to end, in at most LOSS_POINTS points."""
    evaluations = {k: dict(evaluation_leaves(ev))
                   for k, ev in evaluations_by_model(store, run["id"]).items()}
    offset = 1 if parse_config(run["config_toml"]).get("sft", {}).get("enabled") else 0
    held_n = next((int(ev["win.n"]) for ev in evaluations.values() if "win.n" in ev), None)
    run_path = store.run_path(run)
    return {"id": run["id"], "name": run["name"], "config_toml": run["config_toml"],
            "tau": [[float(i["iteration"]), i["mean_tau"]] for i in store.iterations(run["id"])
                    if i["mean_tau"] is not None],
            "evaluations": {str(k): ev for k, ev in evaluations.items()},
            "samples": {str(k): eval_metrics.samples(ev, details_dir(run_path, k, offset),
                                                     held_n)
                        for k, ev in evaluations.items()},
            "loss": [list(p) for p in loss_curve(store, run["id"])]}


def details_dir(run_path: Path, k: int, offset: int) -> Path:
    """Where the evaluation of M_k keeps its per-item files (as stages/evaluate.py writes
    them): M0 under iter-0/baseline, the seed SFT's M1 under iter-0/sft-eval, M_{t+1+offset}
    under iter-t/eval."""
    if k == 0:
        return paths.iter_dir(run_path, 0) / paths.BASELINE
    if k <= offset:
        return paths.iter_dir(run_path, 0) / paths.SFT_EVAL
    return paths.iter_dir(run_path, k - 1 - offset) / "eval"


# per store, per run: (the loss rows seen, the curve)
_LOSS: weakref.WeakKeyDictionary[Store, dict[str, tuple[tuple, tuple[Point, ...]]]] = \
    weakref.WeakKeyDictionary()


def loss_curve(store: Store, run_id: str, name: str = "loss") -> tuple[Point, ...]:
    """The run's DPO loss with iteration t laid after iteration t-1 (each trainer counts its
    steps from the start), as at most LOSS_POINTS points: each bucket's min and max, so a
    spike stays. Read again only when the run's loss rows changed (the screen asks each poll)."""
    seen = tuple(store.query("SELECT COUNT(*) AS n, MAX(id) AS top FROM metrics "
                             "WHERE run_id = ? AND name = ?", [run_id, name])[0].values())
    cache = _LOSS.setdefault(store, {})
    cached = cache.get(run_id)
    if cached is not None and cached[0] == seen:
        return cached[1]
    rows = store.metric_series(run_id, name)
    last: dict[int, int] = {}
    for r in rows:
        last[r["iteration"]] = max(r["step"], last.get(r["iteration"], 0))
    offsets, total = {}, 0
    for it in sorted(last):
        offsets[it], total = total, total + last[it]
    points = [(float(offsets[r["iteration"]] + r["step"]), r["value"]) for r in rows
              if r["value"] is not None and math.isfinite(r["value"])]
    curve = tuple(_min_max(sorted(points), LOSS_POINTS // 2 - 1))
    cache[run_id] = (seen, curve)
    return curve


def _min_max(points: list[Point], buckets: int) -> list[Point]:
    """At most two points per bucket of x (its min and max, in x order) and both ends."""
    if len(points) <= 2 * buckets + 2:
        return points
    x0, width = points[0][0], (points[-1][0] - points[0][0]) / buckets or 1.0
    groups: dict[int, list[Point]] = {}
    for p in points[1:-1]:
        groups.setdefault(min(int((p[0] - x0) / width), buckets - 1), []).append(p)
    out = [points[0]]
    for group in groups.values():
        lo, hi = min(group, key=lambda p: p[1]), max(group, key=lambda p: p[1])
        out += sorted({lo, hi})
    return out + [points[-1]]


def evaluation_lines(parts: list[dict], names: list[str]
                     ) -> tuple[tuple[str, tuple[tuple[str, tuple[Point, ...]], ...]], ...]:
    """Every evaluation metric the runs (`run_part`s) have, headline first: (key, ((label,
    ((k, value), …)), …)), one line per run over its models M_k."""
    per_run = [(label, {int(k): ev for k, ev in part["evaluations"].items()})
               for label, part in zip(names, parts)]
    keys = sorted({k for _, per in per_run for ev in per.values() for k in ev
                   if eval_metrics.is_result(k)})  # (item counts, spreads: not results)
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


# -- the final models, metric by metric --------------------------------------------------------


@dataclass(frozen=True)
class MetricComparison:
    """One result across runs: each run's final model (the last one evaluated) and its value
    with n and 95% interval (None where that model lacks it), and the verdict."""

    metric: Metric
    models: tuple[str | None, ...]          # per run: "M3", or None (not evaluated)
    estimates: tuple[Estimate | None, ...]
    verdict: str

    def to_json(self, run_ids: list[str]) -> dict[str, Any]:
        m = self.metric
        return {"key": m.key, "title": m.title, "kind": m.kind, "better": m.better or None,
                "runs": [None if e is None else {"run": run, "model": model, **e.to_json()}
                         for run, model, e in zip(run_ids, self.models, self.estimates)]}


def final_models(parts: list[dict]) -> list[int | None]:
    """Per run (`run_part`s): the k of its last evaluated model, None before any (an
    evaluation with no result, only its timing, does not count)."""
    return [max((int(k) for k, ev in p["evaluations"].items()
                 if any(map(eval_metrics.is_result, ev))), default=None) for p in parts]


def comparisons(parts: list[dict], names: list[str]) -> tuple[MetricComparison, ...]:
    """Every result the runs' final models have, in eval_metrics.table_order."""
    finals = final_models(parts)
    evals = [p["evaluations"].get(str(k), {}) if k is not None else {}
             for p, k in zip(parts, finals)]
    samples = [(p.get("samples") or {}).get(str(k), {}) if k is not None else {}
               for p, k in zip(parts, finals)]
    keys = eval_metrics.table_order(sorted({key for ev in evals for key in ev}))
    out = []
    for key in keys:
        metric = eval_metrics.describe(key)
        estimates = []
        for ev, sample in zip(evals, samples):
            if key not in ev:
                estimates.append(None)
                continue
            n, sd = (sample.get(key) or [None, None])[:2]
            estimates.append(eval_metrics.estimate(metric, ev[key], n, sd))
        models = tuple(None if k is None or e is None else f"M{k}"
                       for k, e in zip(finals, estimates))
        out.append(MetricComparison(metric, models, tuple(estimates), eval_metrics.verdict(
            metric, [(_model_label(name, model, finals), e)
                     for name, model, e in zip(names, models, estimates)])))
    return tuple(out)


def _model_label(name: str, model: str | None, finals: list[int | None]) -> str:
    """A run's name, with its model where the runs' final models differ ("srlm-b M1")."""
    return f"{name} {model}" if model and len({k for k in finals if k is not None}) > 1 \
        else name


def loss_lines(parts: list[dict], names: list[str]) -> tuple[tuple[str, tuple[Point, ...]], ...]:
    """The DPO loss curves, one line per run (`run_part`s; a part from an older box has none)."""
    return tuple((label, tuple((float(x), float(y)) for x, y in part.get("loss") or ()))
                 for label, part in zip(names, parts))


def evaluation_spans(parts: list[dict], keys: list[str]
                     ) -> tuple[tuple[str, str, float, tuple[float, float] | None], ...]:
    """Per evaluation metric (`keys`, as in `evaluation_lines`): its title, its n ("n = 100",
    "n = 12-100"), the widest 95% interval of any of its values (the least a chart's y axis
    should span, so that a difference within noise is not drawn as a collapse) and the values
    it can take (a share: 0 to 1)."""
    out = []
    for key in keys:
        metric = eval_metrics.describe(key)
        ns, width = set(), 0.0
        for part in parts:
            for k, ev in part["evaluations"].items():
                if key not in ev:
                    continue
                n, sd = ((part.get("samples") or {}).get(k, {}).get(key) or [None, None])[:2]
                e = eval_metrics.estimate(metric, ev[key], n, sd)
                ns.add(e.n)
                if e.low is not None and e.high is not None:
                    width = max(width, e.high - e.low)
        known = sorted(n for n in ns if n)
        shown = "n unknown" if not known else f"n = {known[0]}" if len(known) == 1 \
            else f"n = {known[0]}-{known[-1]}"
        out.append((metric.title, shown, width, metric.range))
    return tuple(out)
