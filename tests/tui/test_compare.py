"""`cream compare` and `cream export` over a store built by hand with the real Store: two runs
that differ in method and one train setting, one of them still running."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.tui.compare_fixtures import write_compare_store

A, B = "20250101-120000-srlm-a-ab12", "20250101-130000-cream-b-cd34"
CONFIG = """[run]
name = "{name}"
method = "{method}"
model = "bundled:smollm2-135m-instruct"
iterations = 2
seed = 0

[data]
eval_sets = ["mc", "arith"]

[train]
beta = {beta}
lora = false
"""


def _eval(model: str, mc: float, arith: float, ll: float | None, win: float | None,
          score: float, length: float) -> dict:
    sets = {"mc": {"n": 100, "gen_acc": mc, "gen_unparsable": 41, "ll_acc": ll,
                   "ll_acc_norm": None if ll is None else ll + 0.02},
            "arith": {"n": 100, "gen_acc": arith, "gen_unparsable": 62}}
    out = {"model": model, "seconds": 81.2, "sets": sets, "judge_score": score,
           "mean_length": length}
    if win is not None:
        out["win"] = {"vs": f"M{int(model[1:]) - 1}", "n": 16, "win_rate": win,
                      "tie_rate": 0.5, "loss_rate": round(0.5 - win, 2)}
    return out


BASE_A = _eval("M0", 0.27, 0.04, 0.31, None, 2.41, 88.3)
EVAL_A1 = _eval("M1", 0.29, 0.06, 0.33, 0.31, 2.57, 91.4)
EVAL_A2 = _eval("M2", 0.32, 0.07, 0.35, 0.28, 2.66, 95.0)
BASE_B = _eval("M0", 0.27, 0.04, 0.31, None, 2.41, 88.3)
EVAL_B1 = _eval("M1", 0.36, 0.11, 0.38, 0.44, 2.93, 102.6)


@pytest.fixture
def filled(home: Path) -> Path:
    return fill(home)


def fill(home: Path) -> Path:
    from cream_engine.store import open_store

    s = open_store(home)
    for run_id, name, method, beta in ((A, "srlm-a", "srlm", 0.1), (B, "cream-b", "cream", 0.2)):
        s.create_run(run_id, name=name, method=method, model="bundled:smollm2-135m-instruct",
                     iterations=2, run_dir=str(home / run_id),
                     config_toml=CONFIG.format(name=name, method=method, beta=beta))
    s.set_run_status(A, "done")
    s.set_run_status(B, "running")
    # run A: an older row keeps the evaluation as a JSON string inside the summary
    s.upsert_iteration(A, 0, status="done", n_pairs=12, mean_tau=None, mean_consistency=0.81,
                       agreement=0.75, summary={"baseline": BASE_A,
                                                "evaluate": json.dumps(EVAL_A1),
                                                "train": {"steps": 6}})
    s.upsert_iteration(A, 1, status="done", n_pairs=10, mean_tau=0.42, mean_consistency=0.77,
                       agreement=None, summary={"evaluate": EVAL_A2})
    s.upsert_iteration(B, 0, status="done", n_pairs=14, mean_tau=None, mean_consistency=0.88,
                       agreement=0.69, summary={"baseline": BASE_B, "evaluate": EVAL_B1})
    s.upsert_iteration(B, 1, status="running", n_prompts=16)
    s.log_metrics(A, 0, "train", 1, {"loss": 0.693, "rewards/margins": 0.01}, at=1000.0)
    s.log_metrics(A, 0, "train", 2, {"loss": 0.61}, at=1001.0)
    s.log_metrics(A, 0, "evaluate", 0, {"mc.gen_acc": 0.29}, at=1002.0)
    s.close()
    return home


def _line(text: str, *words: str) -> str:
    """The one output line that holds every word."""
    lines = [ln for ln in text.splitlines() if all(w in ln.split() for w in words)]
    assert len(lines) == 1, (words, text)
    return lines[0]


def test_compare_json_diff_and_rows(filled: Path) -> None:
    r = run_cli("compare", "srlm-a", B[:20], "--json", home=filled)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert [x["id"] for x in data["runs"]] == [A, B]
    assert data["runs"][1] == {"id": B, "name": "cream-b", "method": "cream",
                               "model": "bundled:smollm2-135m-instruct", "status": "running"}
    assert data["config_diff"] == {"run.method": ["srlm", "cream"],   # (names are labels)
                                   "train.beta": [0.1, 0.2]}
    rows = {(x["run"], x["model"]): x for x in data["rows"]}
    assert list(rows) == [(A, "M0"), (A, "M1"), (A, "M2"), (B, "M0"), (B, "M1"), (B, "M2")]
    assert rows[A, "M0"]["eval"] == BASE_A and rows[A, "M0"]["iteration"] is None
    assert rows[A, "M1"]["eval"] == EVAL_A1          # iteration 0's evaluate, from a string
    assert rows[A, "M1"]["iteration"] == 0 and rows[A, "M1"]["pairs"] == 12
    assert rows[A, "M2"]["mean_tau"] == 0.42 and rows[A, "M2"]["agreement"] is None
    assert rows[B, "M1"]["mean_consistency"] == 0.88 and rows[B, "M1"]["eval"] == EVAL_B1
    assert rows[B, "M2"]["status"] == "running" and rows[B, "M2"]["eval"] is None


def test_compare_tables_at_80_columns(filled: Path) -> None:
    r = run_cli("compare", A, B, home=filled, env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert max(len(line) for line in out.splitlines()) <= 80, out
    # the config diff shows exactly the differing keys
    diff = out.split("\nconfig diff")[1].split("\niterations")[0]
    keys = [ln.split()[0] for ln in diff.strip().splitlines()[1:]]
    assert keys == ["run.method", "train.beta"], out
    assert _line(out, "train.beta").split() == ["train.beta", "0.1", "0.2"]
    # training signals: one row per iteration, the running one with its status
    signals = out.split("\niterations")[1].split("\nevaluation")[0]
    assert _line(signals, "srlm-a", "M1").split() == [
        "srlm-a", "M1", "0", "done", "12", "-", "0.810", "0.750"]
    assert _line(signals, "cream-b", "M2").split() == [
        "cream-b", "M2", "1", "running", "-", "-", "-", "-"]
    assert "M0" not in signals
    # evaluation: M0 from the baseline, M1 from iteration 0's evaluate; short headers intact
    ev = out.split("\nevaluation")[1].split("\nfinal models")[0]
    assert ev.splitlines()[1].split() == ["run", "model", "mc", "gen", "mc", "ll", "arith",
                                          "win/tie/loss", "score", "len"]
    assert _line(ev, "srlm-a", "M0").split() == ["srlm-a", "M0", "0.270", "0.310", "0.040",
                                                 "-", "2.41", "88.3"]
    assert _line(ev, "srlm-a", "M1").split() == ["srlm-a", "M1", "0.290", "0.330", "0.060",
                                                 "0.31/0.50/0.19", "2.57", "91.4"]
    assert _line(ev, "cream-b", "M1").split() == ["cream-b", "M1", "0.360", "0.380", "0.110",
                                                  "0.44/0.50/0.06", "2.93", "102.6"]


def test_compare_errors_are_one_line(filled: Path, tmp_path: Path) -> None:
    r = run_cli("compare", A, "ghost", home=filled)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == ["cream: error: run 'ghost': no such run"]
    r = run_cli("compare", A, home=tmp_path / "empty")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "no store" in r.stderr and not (tmp_path / "empty").exists()
    r = run_cli("export", A, "--format", "xml", home=filled)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "cream: error: --format 'xml': must be one of csv, json"]
    r = run_cli("export", A, "--format", "csv", "--table", "stages", home=filled)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_export_json_round_trips(filled: Path) -> None:
    r = run_cli("export", "srlm-a", "--format", "json", home=filled)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["run"]["id"] == A and data["run"]["status"] == "done"
    assert data["run"]["config"]["train"] == {"beta": 0.1, "lora": False}
    assert data["run"]["config"]["data"]["eval_sets"] == ["mc", "arith"]
    its = data["iterations"]
    assert [i["iteration"] for i in its] == [0, 1] and its[0]["n_pairs"] == 12
    assert its[0]["summary"]["baseline"] == BASE_A
    assert its[0]["summary"]["evaluate"] == EVAL_A1 and its[1]["summary"]["evaluate"] == EVAL_A2
    assert [(m["step"], m["name"], m["value"]) for m in data["metrics"]] == [
        (1, "loss", 0.693), (1, "rewards/margins", 0.01), (2, "loss", 0.61),
        (0, "mc.gen_acc", 0.29)]
    only = json.loads(run_cli("export", A, "--table", "metrics", home=filled).stdout)
    assert set(only) == {"run", "metrics"}


def test_export_csv_tables(filled: Path) -> None:
    r = run_cli("export", A, "--format", "csv", home=filled)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == ["run_id", "iteration", "stage", "step", "name", "value", "time"]
    assert [(x["stage"], x["name"], float(x["value"])) for x in rows][:2] == [
        ("train", "loss", 0.693), ("train", "rewards/margins", 0.01)]
    r = run_cli("export", A, "--format", "csv", "--table", "iterations", home=filled)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [x["iteration"] for x in rows] == ["0", "1"]
    assert float(rows[0]["eval.sets.mc.gen_acc"]) == 0.29
    assert float(rows[1]["eval.sets.mc.gen_acc"]) == 0.32
    assert float(rows[0]["eval.win.win_rate"]) == 0.31
    assert float(rows[0]["baseline.sets.arith.gen_acc"]) == 0.04
    assert rows[1]["baseline.sets.arith.gen_acc"] == "" and rows[1]["agreement"] == ""
    assert rows[0]["mean_tau"] == "" and float(rows[1]["mean_tau"]) == 0.42
    assert "baseline.win.win_rate" not in rows[0]   # M0 has no win rate: no column


def test_export_to_a_file_is_atomic(filled: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    target = out / "a.csv"
    target.write_text("old\n")
    r = run_cli("export", A, "--format", "csv", "--table", "iterations", "-o", str(target),
                home=filled)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr.strip() == str(target)
    assert [p.name for p in out.iterdir()] == ["a.csv"]
    assert target.read_text().startswith("run_id,iteration,status,")
    r = run_cli("export", A, "-o", str(tmp_path / "no" / "dir.json"), home=filled)
    assert r.returncode == 2 and "cannot write" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_many_sets_and_long_names_stay_legible_at_80_columns() -> None:
    """Long run names become letters (the runs table says which); evaluation columns that do
    not fit go to a continued table instead of being folded mid-number."""
    from rich.console import Console

    from cream_tui.tables import print_compare

    ev = {"sets": {n: {"gen_acc": 0.5, "ll_acc": 0.4} for n in ("mmlu_small", "gsm8k",
                                                               "arc_challenge")},
          "win": {"win_rate": 0.3, "tie_rate": 0.5, "loss_rate": 0.2}, "judge_score": 2.5,
          "mean_length": 100.0}
    runs = [{"id": f"20250101-12000{i}-experiment-long-name-{i}abc",
             "name": "experiment-long-name", "method": "cream", "model": "m",
             "status": "done"} for i in range(3)]
    rows = [{"run": r["id"], "model": f"M{t}", "iteration": t - 1 if t else None,
             "status": "done", "pairs": 10, "mean_tau": 0.1, "mean_consistency": 0.2,
             "agreement": 0.3, "eval": ev} for r in runs for t in range(2)]
    console = Console(width=80, record=True, file=io.StringIO())
    diff = {"data.eval_sets": [["mc"], ["mc", "arith"], ["[bold]x"]],
            "train.beta": [0.1, 0.2, 0.3]}
    print_compare({"runs": runs, "config_diff": diff, "rows": rows}, console)
    out = console.export_text()
    assert max(len(line) for line in out.splitlines()) <= 80, out
    assert _line(out, "A", runs[0]["id"], "cream", "done")
    assert _line(out, "train.beta").split() == ["train.beta", "0.1", "0.2", "0.3"]
    assert "[mc]" in out and "[mc, arith]" in out and "[[bold]x]" in out  # not markup
    assert "evaluation (continued)" in out
    assert out.count("0.30/0.50/0.20") == 6 and out.count("arc_challenge gen") == 1


def test_compare_prints_intervals_n_and_verdicts(home: Path) -> None:
    """The final models' results with n and 95% interval, and a verdict per main metric, in
    the text (80 columns) and in --json."""
    ids = write_compare_store(home)
    r = run_cli("compare", *ids, home=home, env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert max(len(line) for line in out.splitlines()) <= 80, out
    final = out.split("\nfinal models: value (95% interval)")[1]
    assert _line(final, "metric").split() == ["metric", "srlm-x", "M3", "cream-y", "M3",
                                              "scir-z", "M1"]
    assert _line(final, "multiple", "choice").split() == ["multiple", "choice", "n", "=", "200"]
    assert "  generative acc.      0.48 (0.41–0.55)  0.62 (0.55–0.68)  0.52 (0.45–0.59)" \
        in final
    assert _line(final.split("which did better")[0], "judge", "score").split()[-2:] == [
        "2.37", "(2.05–2.69)"]
    verdicts = " ".join(final.split("which did better")[1].split())   # (lines fold at 80)
    assert ("- multiple choice: accuracy (generative): cream-y M3 better: 0.620 vs scir-z M1 "
            "0.520, srlm-x M3 0.480 (n = 200; each difference beyond noise)") in verdicts
    assert ("- arithmetic: accuracy (generative): within noise at n = 12: cream-y M3 0.167, "
            "scir-z M1 0.167, srlm-x M3 0.083") in verdicts
    data = json.loads(run_cli("compare", *ids, "--json", home=home).stdout)
    mc = next(m for m in data["metrics"] if m["key"] == "sets.mc.gen_acc")
    assert mc["title"] == "multiple choice: accuracy (generative)"
    assert [(x["model"], x["value"], x["n"], round(x["low"], 2), round(x["high"], 2))
            for x in mc["runs"]] == [("M3", 0.48, 200, 0.41, 0.55), ("M3", 0.62, 200, 0.55, 0.68),
                                     ("M1", 0.52, 200, 0.45, 0.59)]
    verdict = {v["key"]: v for v in data["verdicts"]}
    assert verdict["sets.arith.gen_acc"]["verdict"].startswith("within noise at n = 12")
    assert verdict["win.tie_rate"]["primary"] is False
