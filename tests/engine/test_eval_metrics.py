"""Evaluation numbers with their n, 95% interval and verdict (eval_metrics.py), and what
`compare` builds from them: titles for every key the evaluate stage writes, n and spread read
from the stage's per-item files, verdicts, the loss curve a compare part carries."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cream_engine import compare
from cream_engine.eval_metrics import describe, estimate, samples, table_order, verdict
from cream_engine.files import write_jsonl
from cream_engine.stats import difference_interval, proportion_interval
from cream_engine.store import open_store
from tests.tui.compare_fixtures import CREAM, SCIR, SRLM, write_compare_store

# every numeric leaf stages/evaluate.py writes (and loglik.py's scores), flattened
EVALUATE_KEYS = ("sets.mc.gen_acc", "sets.mc.gen_unparsable", "sets.mc.ll_acc",
                 "sets.mc.ll_acc_norm", "sets.mc.ll_acc_bytes", "sets.arith.gen_acc",
                 "sets.arith.gen_unparsable", "win.win_rate", "win.tie_rate", "win.loss_rate",
                 "win.p_new", "judge_score", "mean_length")


def test_every_evaluate_key_has_a_title() -> None:
    titles = {k: describe(k).title for k in EVALUATE_KEYS}
    assert titles["sets.mc.gen_acc"] == "multiple choice: accuracy (generative)"
    assert titles["sets.arith.gen_acc"] == "arithmetic: accuracy (generative)"
    assert titles["sets.mc.ll_acc_norm"] == \
        "multiple choice: accuracy (log-likelihood per character)"
    assert titles["win.win_rate"] == "win rate against the previous model"
    assert titles["mean_length"] == "held-out prompts: response length (tokens)"
    assert all(t != k and "_" not in t for k, t in titles.items()), titles
    assert all(describe(k).kind != "value" for k in EVALUATE_KEYS)
    # a user's set keeps its file's name; an unknown score is its own title, no interval
    assert describe("sets.ARC-Challenge.gen_acc").title == "ARC-Challenge: accuracy (generative)"
    assert describe("sets.mc.new_score").kind == "value"
    # the table: sets in order, each set's scores in order; counts and spreads are not results
    keys = ["judge_score", "win.n", "sets.mc.n", "sets.mc.ll_acc", "sets.arith.gen_acc",
            "win.win_rate", "sets.mc.gen_acc", "judge_score_sd"]
    assert table_order(keys) == ["sets.arith.gen_acc", "sets.mc.gen_acc", "sets.mc.ll_acc",
                                 "win.win_rate", "judge_score"]


def test_estimates_proportions_counts_and_means() -> None:
    acc = estimate(describe("sets.arith.gen_acc"), 1 / 12, 12)       # one question of 12
    assert (acc.k, acc.n) == (1, 12) and (acc.low, acc.high) == proportion_interval(1, 12)
    unparsable = estimate(describe("sets.arith.gen_unparsable"), 3, 12)   # a count of n
    assert unparsable.value == 0.25 and (unparsable.low, unparsable.high) == \
        proportion_interval(3, 12)
    # judge score 2.0 ± t_15 · 1.0/√16, kept inside the 0-5 it can take
    score = estimate(describe("judge_score"), 2.0, 16, 1.0)
    assert (score.low, score.high) == pytest.approx((1.467137, 2.532863), abs=1e-5)
    assert estimate(describe("judge_score"), 0.1, 16, 2.0).low == 0.0
    no_spread = estimate(describe("judge_score"), 2.0, 16)
    assert no_spread.n == 16 and no_spread.low is None
    assert estimate(describe("sets.mc.gen_acc"), 0.5, None).low is None   # n unknown


def test_verdicts() -> None:
    mc, arith = describe("sets.mc.gen_acc"), describe("sets.arith.gen_acc")
    a, b = estimate(mc, 0.62, 200), estimate(mc, 0.48, 200)
    low, high = difference_interval(124, 200, 96, 200)
    assert verdict(mc, [("srlm-x", b), ("cream-y", a)]) == (
        f"cream-y better: 0.620 vs srlm-x 0.480 (n = 200; difference +0.140, 95% CI "
        f"{low:+.3f} to {high:+.3f})")
    assert low > 0
    # the user's report: one question out of 12 is noise
    assert verdict(arith, [("srlm-x", estimate(arith, 1 / 12, 12)),
                           ("cream-y", estimate(arith, 2 / 12, 12))]) == (
        "within noise at n = 12: cream-y 0.167, srlm-x 0.083 (difference +0.083, 95% CI "
        "-0.213 to +0.373)")
    # lower is better; a metric with no better side says "higher"
    unparsable = describe("sets.mc.gen_unparsable")
    assert verdict(unparsable, [("a", estimate(unparsable, 30, 100)),
                                ("b", estimate(unparsable, 12, 100))]).startswith(
        "b better (lower): 0.120 vs a 0.300 (n = 100;")
    length = describe("mean_length")
    # Welch by hand: se = √(2 · 20²/16) = 7.071, ν = 30, t_30 = 2.0423: 48 ± 14.44
    assert verdict(length, [("a", estimate(length, 183.0, 16, 20.0)),
                            ("b", estimate(length, 231.0, 16, 20.0))]) == (
        "b higher: 231.0 vs a 183.0 (n = 16; difference +48.0, 95% CI +33.6 to +62.4)")
    judge = describe("judge_score")
    assert verdict(judge, [("a", estimate(judge, 2.9, 16)), ("b", estimate(judge, 2.3, 12))]) \
        == "a 2.90 vs b 2.30 (n = 16, 12); no interval: the spread is not recorded"
    # three runs: better than all, within noise of all, or some of each
    three = [("a", estimate(mc, 0.62, 200)), ("b", estimate(mc, 0.60, 200)),
             ("c", estimate(mc, 0.45, 200))]
    assert verdict(mc, three) == ("a 0.620 better than c 0.450 beyond noise; within noise of "
                                  "b 0.600 (n = 200)")
    assert verdict(mc, three[:1] + [("c", estimate(mc, 0.45, 200)),
                                    ("d", estimate(mc, 0.40, 200))]) == (
        "a better: 0.620 vs c 0.450, d 0.400 (n = 200; each difference beyond noise)")
    assert verdict(mc, [("a", estimate(mc, 0.62, 200)), ("b", estimate(mc, 0.61, 200)),
                        ("c", estimate(mc, 0.60, 200))]).startswith("within noise at n = 200")
    assert verdict(mc, [("a", a), ("b", None)]) == "only a has it"
    assert verdict(mc, [("a", a)]) == "one run: nothing to compare"


def test_n_and_spread_from_the_per_item_files(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "judge.jsonl", [{"prompt_id": f"p{i}", "score": s}
                                           for i, s in enumerate([1.0, 2.0, 3.0, 4.0, None])])
    write_jsonl(tmp_path / "heldout.jsonl", [{"prompt_id": f"p{i}", "reply": "x" * c}
                                             for i, c in enumerate([10, 20, 30, 40])])
    write_jsonl(tmp_path / "win.jsonl", [{"p_new_first": 0.6, "p_new_second": 0.8},
                                         {"p_new_first": 0.2, "p_new_second": 0.4}])
    leaves = {"judge_score": 2.5, "mean_length": 50.0, "sets.mc.n": 80.0, "sets.mc.gen_acc": 0.5,
              "win.n": 2.0, "win.win_rate": 0.5, "win.p_new": 0.5}
    got = samples(leaves, tmp_path)
    sd14 = math.sqrt(5 / 3)                              # stdev of 1, 2, 3, 4
    assert got["judge_score"] == [4, pytest.approx(sd14)]   # the unscored prompt left out
    # lengths: characters 10..40 (mean 25, sd 12.91) scaled to the 50-token mean
    assert got["mean_length"] == [4, pytest.approx(10 * sd14 * 50 / 25)]
    assert got["win.p_new"] == [2, pytest.approx(math.sqrt(0.08))]   # 0.7 and 0.3
    assert got["sets.mc.gen_acc"] == [80, None] and got["win.win_rate"] == [2, None]
    assert "sets.mc.n" not in got
    # no files (M0 has no win rate): the run's held-out count; a recorded spread comes first
    bare = samples({"judge_score": 2.5, "judge_score_sd": 0.7}, tmp_path / "none", held_n=16)
    assert bare == {"judge_score": [16, 0.7]}


def test_config_diff_ignores_the_run_name_not_the_seed() -> None:
    diff = compare.config_diff([{"run": {"name": "a", "seed": 0}},
                                {"run": {"name": "b", "seed": 1}}])
    assert diff == {"run.seed": [0, 1]}


def test_compare_carries_n_intervals_verdicts_and_loss(tmp_path: Path) -> None:
    ids = write_compare_store(tmp_path / "home")
    store = open_store(tmp_path / "home")
    data = compare.compare(store, ids)
    json.dumps(data)                                     # plain JSON, for --json
    assert data["config_diff"] == {"run.method": ["srlm", "cream", "scir"],
                                   "train.beta": [0.1, 0.1, 0.3]}
    metrics = {m["key"]: m for m in data["metrics"]}
    mc = metrics["sets.mc.gen_acc"]["runs"]
    assert [(r["run"], r["model"], r["value"], r["n"]) for r in mc] == [
        (SRLM, "M3", 0.48, 200), (CREAM, "M3", 0.62, 200), (SCIR, "M1", 0.52, 200)]
    assert (mc[1]["low"], mc[1]["high"]) == proportion_interval(124, 200)
    judge = metrics["judge_score"]["runs"][0]
    assert judge["n"] == 16 and judge["low"] < 2.30 < judge["high"]   # spread from judge.jsonl
    verdicts = {v["key"]: v["verdict"] for v in data["verdicts"]}
    assert verdicts["sets.mc.gen_acc"].startswith("cream-y M3 better: 0.620 vs scir-z M1 0.520")
    assert verdicts["sets.arith.gen_acc"].startswith("within noise at n = 12")
    part = compare.run_part(store, store.require_run(CREAM))
    json.dumps(part)
    assert part["samples"]["0"]["judge_score"][0] == 16     # M0: iter-0/baseline/judge.jsonl
    assert len(part["loss"]) == 3 * 40 and part["loss"][0] == [1.0, pytest.approx(math.log(2))]
    assert part["loss"][40][0] == 41.0                   # iteration 1 follows iteration 0
    store.close()


def test_loss_curve_is_downsampled_and_keeps_its_spike(store) -> None:
    store.create_run("r", name="r", method="dpo", model="m", iterations=2, run_dir="r",
                     config_toml="")
    for t in range(2):
        for step in range(1, 2001):
            store.log_metrics("r", t, "train", step, {"loss": 9.0 if (t, step) == (1, 700)
                                                      else 0.5 + step * 1e-5}, at=0.0)
    curve = compare.loss_curve(store, "r")
    assert len(curve) <= compare.LOSS_POINTS
    assert curve[0] == (1.0, pytest.approx(0.50001)) and curve[-1][0] == 4000.0
    assert (2700.0, 9.0) in curve
    assert compare.loss_curve(store, "r") is curve           # unchanged rows: not read again
    store.log_metrics("r", 1, "train", 2001, {"loss": 0.1}, at=0.0)
    assert compare.loss_curve(store, "r")[-1] == (4001.0, 0.1)
