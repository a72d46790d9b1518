"""What each evaluation number is, and how far it can be trusted: the title a researcher reads
for an internal key (`sets.mc.gen_acc` → "multiple choice: accuracy (generative)"), the n it
is a mean over, its 95% interval, and one sentence on whether runs differ by more than noise.

Every evaluation number is a mean over n items (stages/evaluate.py):
- accuracies and win/tie/loss rates are proportions k/n: Wilson interval; a difference of two,
  Newcombe's interval (stats.py). n is the set's `n`, or `win.n`;
- unparsable answers are a count k of the set's n: shown as the share k/n, the same way;
- the judge's score and the judge's preference for the new reply are means of per-prompt
  values: Student's t interval from their spread (read from the per-item files the stage
  keeps: `judge.jsonl`, `win.jsonl`); a difference of two, Welch's interval;
- the response length is a mean of per-reply token counts. The counts are not kept, only the
  replies: its spread is taken from the replies' lengths in characters, scaled to tokens (the
  coefficient of variation of the two is close), unless the evaluation records `mean_length_sd`.
An evaluation may record any mean's n and standard deviation beside it as `<name>_n` and
`<name>_sd`; those are used first.

Light layer: standard library + the store's files.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cream_engine import stats
from cream_engine.files import read_jsonl

# the sets we ship; a user's set is titled by its file's name
SET_TITLES = {"mc": "multiple choice", "arith": "arithmetic"}
# per score of a set: (short name for a table, what it is, kind, which way is better,
# one of the results a comparison leads with)
SET_SCORES: dict[str, tuple[str, str, str, str, bool]] = {
    "gen_acc": ("generative acc.", "accuracy (generative)", "proportion", "higher", True),
    "ll_acc": ("log-lik. acc.", "accuracy (log-likelihood)", "proportion", "higher", True),
    "ll_acc_norm": ("log-lik. acc. norm", "accuracy (log-likelihood per character)",
                    "proportion", "higher", False),
    "ll_acc_bytes": ("log-lik. acc. bytes", "accuracy (log-likelihood per byte)",
                     "proportion", "higher", False),
    "gen_unparsable": ("unparsable (share)", "unparsable answers (share)", "count", "lower",
                       False),
}
WIN_GROUP, HELD_GROUP = "vs previous model", "held-out prompts"
# the other results: (group, short name, title, kind, better, primary, a mean's bounds)
OTHER_SCORES: dict[str, tuple[str, str, str, str, str, bool, tuple[float, float] | None]] = {
    "win.win_rate": (WIN_GROUP, "win rate", "win rate against the previous model",
                     "proportion", "higher", True, None),
    "win.tie_rate": (WIN_GROUP, "tie rate", "tie rate against the previous model",
                     "proportion", "", False, None),
    "win.loss_rate": (WIN_GROUP, "loss rate", "loss rate against the previous model",
                      "proportion", "lower", False, None),
    "win.p_new": (WIN_GROUP, "judge pref. for new",
                  "the judge's mean preference for the new reply over the previous model's",
                  "mean", "higher", False, (0.0, 1.0)),
    "judge_score": (HELD_GROUP, "judge score (0-5)", "held-out prompts: judge score (0-5)",
                    "mean", "higher", True, (0.0, 5.0)),
    "mean_length": (HELD_GROUP, "length (tokens)",
                    "held-out prompts: response length (tokens)", "mean", "", True,
                    (0.0, math.inf)),
}


@dataclass(frozen=True)
class Metric:
    key: str                 # the flattened key of the evaluation: sets.mc.gen_acc
    group: str               # what it was measured on: "multiple choice", "held-out prompts"
    name: str                # short, within its group (a table row): "generative acc."
    title: str               # what a researcher reads: "multiple choice: accuracy (generative)"
    kind: str                # proportion, count (of the group's n), mean, or value (unknown)
    better: str = ""         # higher, lower, or "" (neither: ties, response length)
    primary: bool = False    # one of the results a comparison leads with
    bounds: tuple[float, float] | None = None   # a mean's possible values (its interval stays in)

    @property
    def range(self) -> tuple[float, float] | None:
        """The values it can take (a share: 0 to 1), None when unknown."""
        return (0.0, 1.0) if self.kind in ("proportion", "count") else self.bounds

    def shown(self, value: float | None, table: bool = False) -> str:
        """A value as printed: shares to 3 decimals (2 in a table), the judge's score to 2,
        lengths to 1 (0 in a table)."""
        if value is None:
            return "-"
        if self.key == "mean_length":
            return f"{value:.0f}" if table else f"{value:.1f}"
        return f"{value:.2f}" if table or self.key == "judge_score" else f"{value:.3f}"


def is_result(key: str) -> bool:
    """An evaluation leaf that is a result (not an item count, a spread or a timing)."""
    last = key.rsplit(".", 1)[-1]
    return not (last == "n" or last.endswith(("_n", "_sd")) or key.startswith("seconds"))


def describe(key: str) -> Metric:
    """What an evaluation key is (an unknown key is its own title, with no interval)."""
    parts = key.split(".")
    if len(parts) == 3 and parts[0] == "sets":
        group = SET_TITLES.get(parts[1], parts[1])
        if parts[2] in SET_SCORES:
            name, what, kind, better, primary = SET_SCORES[parts[2]]
            return Metric(key, group, name, f"{group}: {what}", kind, better, primary)
        return Metric(key, group, parts[2], f"{group}: {parts[2]}", "value")
    if key in OTHER_SCORES:
        return Metric(key, *OTHER_SCORES[key])
    return Metric(key, "", key, key, "value")


def table_order(keys: list[str]) -> list[str]:
    """Results grouped as a reader looks for them: each set (its scores in SET_SCORES' order),
    then against the previous model, then the held-out prompts, then anything else."""
    scores, others = list(SET_SCORES), list(OTHER_SCORES)

    def rank(key: str) -> tuple:
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "sets":
            at = scores.index(parts[2]) if parts[2] in scores else len(scores)
            return (0, parts[1], at, key)
        if key in OTHER_SCORES:
            return (1, "", others.index(key), key)
        return (2, "", 0, key)

    return sorted((k for k in keys if is_result(k)), key=rank)


def n_key(key: str) -> str | None:
    """The leaf that holds a metric's n in the evaluation itself: the set's or the win rate's."""
    parts = key.split(".")
    if len(parts) == 3 and parts[0] == "sets":
        return f"sets.{parts[1]}.n"
    if parts[0] == "win":
        return "win.n"
    return None


# -- per model: n and spread -----------------------------------------------------------------

_ROWS: dict[str, tuple[tuple[int, int], list[dict]]] = {}   # path -> ((size, mtime), rows)


def _rows(path: Path) -> list[dict] | None:
    """A per-item file's rows, read again only when it changed; None when there is none."""
    try:
        st = path.stat()
        key = (st.st_size, st.st_mtime_ns)
        cached = _ROWS.get(str(path))
        if cached is None or cached[0] != key:
            if len(_ROWS) > 512:
                _ROWS.clear()
            cached = _ROWS[str(path)] = (key, read_jsonl(path))
        return cached[1]
    except (OSError, ValueError):
        return None


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _spread(values: list[float]) -> tuple[int, float | None]:
    return len(values), statistics.stdev(values) if len(values) >= 2 else None


def samples(leaves: dict[str, float], details: Path | None,
            held_n: int | None = None) -> dict[str, list]:
    """{key: [n, sd]} for each result of one model's evaluation (`leaves`, flattened):
    n from the evaluation, sd of the means from the per-item files in `details` (the model's
    evaluation folder); `held_n` the run's count of held-out prompts, for a model whose own
    evaluation does not say it (M0 has no win rate)."""
    files = {name: _rows(details / f"{name}.jsonl") if details else None
             for name in ("judge", "win", "heldout")}
    out: dict[str, list] = {}
    for key, value in leaves.items():
        if not is_result(key):
            continue
        where = n_key(key)
        n = leaves.get(where) if where else None
        sd = leaves.get(f"{key}_sd")
        n = leaves.get(f"{key}_n", n)
        if key == "judge_score" and files["judge"] is not None and sd is None:
            n, sd = _spread([r["score"] for r in files["judge"] if _number(r.get("score"))])
        elif key == "win.p_new" and files["win"] is not None and sd is None:
            n, sd = _spread([0.5 * (r["p_new_first"] + r["p_new_second"]) for r in files["win"]
                             if _number(r.get("p_new_first")) and _number(r.get("p_new_second"))])
        elif key == "mean_length" and sd is None and files["heldout"]:
            chars = [len(str(r.get("reply") or "")) for r in files["heldout"]]
            n, char_sd = _spread([float(c) for c in chars])
            mean_chars = sum(chars) / len(chars)
            if char_sd is not None and mean_chars > 0:   # tokens ∝ characters, reply by reply
                sd = char_sd * value / mean_chars
        if n is None and describe(key).group == HELD_GROUP:
            n = held_n
        out[key] = [None if n is None else int(n), sd]
    return out


# -- estimates and verdicts ------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    value: float                 # a count is given as its share of n
    n: int | None
    low: float | None = None     # the 95% interval, when there is one
    high: float | None = None
    sd: float | None = None      # a mean's standard deviation over its items
    k: int | None = None         # a proportion's count

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "n": self.n, "low": self.low, "high": self.high}


def estimate(metric: Metric, value: float, n: int | None, sd: float | None = None) -> Estimate:
    """A value with its n and 95% interval (None where neither n nor a spread is known)."""
    if metric.kind in ("proportion", "count") and n:
        k = round(value if metric.kind == "count" else value * n)
        k = min(max(k, 0), n)
        low, high = stats.proportion_interval(k, n)
        return Estimate(k / n if metric.kind == "count" else value, n, low, high, None, k)
    if metric.kind == "mean" and n and sd is not None:
        interval = stats.mean_interval(value, sd, n)
        if interval is not None:
            lo, hi = metric.bounds or (-math.inf, math.inf)
            return Estimate(value, n, max(interval[0], lo), min(interval[1], hi), sd)
    return Estimate(value, n)


def difference(metric: Metric, a: Estimate, b: Estimate) -> tuple[float, float] | None:
    """The 95% interval of a − b: Newcombe's for proportions, Welch's for means; None when a
    side lacks what it needs (n, or a mean's spread)."""
    if a.k is not None and b.k is not None and a.n and b.n:
        return stats.difference_interval(a.k, a.n, b.k, b.n)
    if metric.kind == "mean" and a.sd is not None and b.sd is not None and a.n and b.n:
        return stats.mean_difference_interval(a.value, a.sd, a.n, b.value, b.sd, b.n)
    return None


def verdict(metric: Metric, entries: list[tuple[str, Estimate | None]]) -> str:
    """One sentence on the runs' values of one metric (`entries`: (label, estimate) per run):
    which is better (or higher, for a metric with no better side) beyond noise, or that the
    difference is within noise at this n."""
    have = [(label, e) for label, e in entries if e is not None]
    if len(have) < 2:
        return (f"only {have[0][0]} has it" if have else "no run has it yet") \
            if len(entries) > 1 else "one run: nothing to compare"
    sign = -1 if metric.better == "lower" else 1
    have.sort(key=lambda le: -sign * le[1].value)
    (top, best), rest = have[0], have[1:]
    ns = sorted({e.n for _, e in have if e.n}, reverse=True)
    at_n = "n = " + (", ".join(map(str, ns)) if ns else "unknown")
    intervals = [difference(metric, best, e) for _, e in rest]
    if any(iv is None for iv in intervals):
        return (f"{top} {metric.shown(best.value)} vs " + _values(metric, rest)
                + f" ({at_n}); no interval: the spread is not recorded")
    beyond = [le for le, iv in zip(rest, intervals) if not iv[0] <= 0 <= iv[1]]
    within = [le for le, iv in zip(rest, intervals) if iv[0] <= 0 <= iv[1]]
    word = {"higher": "better", "lower": "better (lower)"}.get(metric.better, "higher")
    shown = f"{top} {metric.shown(best.value)}"
    if len(rest) == 1:
        low, high = intervals[0]
        detail = (f"difference {_signed(metric, best.value - rest[0][1].value)}, 95% CI "
                  f"{_signed(metric, low)} to {_signed(metric, high)}")
        if beyond:
            return f"{top} {word}: {metric.shown(best.value)} vs {_values(metric, rest)} " \
                   f"({at_n}; {detail})"
        return f"within noise at {at_n}: {shown}, {_values(metric, rest)} ({detail})"
    if not beyond:
        return f"within noise at {at_n}: {shown}, {_values(metric, rest)}"
    if not within:
        return (f"{top} {word}: {metric.shown(best.value)} vs {_values(metric, rest)} "
                f"({at_n}; each difference beyond noise)")
    return (f"{shown} {word} than {_values(metric, beyond)} beyond noise; within noise of "
            f"{_values(metric, within)} ({at_n})")


def _signed(metric: Metric, value: float) -> str:
    return ("+" if value >= 0 else "") + metric.shown(value)


def _values(metric: Metric, entries: list[tuple[str, Estimate]]) -> str:
    return ", ".join(f"{label} {metric.shown(e.value)}" for label, e in entries)
