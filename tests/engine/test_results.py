"""The one reader of results: evaluations in iteration summaries, comparisons, the log tail."""

from __future__ import annotations

import json
from pathlib import Path

from cream_engine.compare import compare, config_diff
from cream_engine.results import LogTail, evaluation_of, headline, headline_key

BASE_A = {"model": "M0", "sets": {"mc": {"n": 100, "gen_acc": 0.27}}, "judge_score": 2.41}


def test_log_tail_keeps_the_last_lines_and_what_a_terminal_shows(tmp_path: Path) -> None:
    logs = tmp_path / "run" / "logs"
    logs.mkdir(parents=True)
    lines = [f"line {i}" for i in range(5000)] + ["bar 10%\rbar 50%\r\x1b[1mbar 100%\x1b[0m"]
    (logs / "job.log").write_text("\n".join(lines) + "\n")
    reader = LogTail()
    tail = reader.read(logs / "job.log")
    assert tail[-1] == "bar 100%" and tail[-2] == "line 4999"
    assert len(tail) == 300 and all(t.startswith(("line", "bar")) for t in tail)
    assert reader.read(tmp_path / "missing" / "logs" / "job.log") == ()


def test_evaluation_scores_from_the_iteration_summary() -> None:
    assert evaluation_of(None) == ()
    assert evaluation_of(json.dumps({"train": "{}"})) == ()
    summary = json.dumps({"evaluate": {"model": "M1", "sets": {"mc": {"gen_acc": 0.25, "n": 80}},
                                       "win": {"vs": "M0", "win_rate": 0.5}, "ok": True,
                                       "seconds": 9.5, "seconds_by_part": {"loglik": 2.0}},
                          "baseline": {"sets": {"mc": {"gen_acc": 0.2}}}})
    assert evaluation_of(summary) == (("sets.mc.gen_acc", 0.25), ("sets.mc.n", 80.0),
                                      ("win.win_rate", 0.5))
    assert evaluation_of(summary, "baseline") == (("sets.mc.gen_acc", 0.2),)
    assert evaluation_of(json.dumps({"evaluate": json.dumps({"judge_score": 1.5})})) == (
        ("judge_score", 1.5),)
    assert evaluation_of("not json") == ()


def test_evaluation_headline() -> None:
    ev = (("judge_score", 2.5), ("sets.arith.gen_acc", 0.1), ("sets.mc.gen_acc", 0.3),
          ("sets.mc.ll_acc", 0.4), ("sets.siqa.ll_acc", 0.5), ("win.win_rate", 0.25))
    assert headline(ev) == (("arith", 0.1), ("mc", 0.3), ("siqa", 0.5), ("win", 0.25),
                            ("score", 2.5))
    assert headline((("other", 1.0),)) == (("other", 1.0),)
    assert headline_key([k for k, _ in ev]) == "sets.arith.gen_acc"
    assert headline_key(["judge_score", "win.win_rate"]) == "win.win_rate"
    assert headline_key([]) is None


def test_baseline_read_from_stages_while_iteration_0_runs(store) -> None:
    """M0's evaluation shows before iteration 0 finishes (its summary is written only then)."""
    store.create_run("r1", name="x", method="srlm", model="m", iterations=1, run_dir="r1",
                     config_toml="")
    store.start_stage("r1", 0, "baseline")
    store.finish_stage("r1", 0, "baseline", info=BASE_A)
    store.upsert_iteration("r1", 0, status="running")
    data = compare(store, ["r1"])
    assert data["config_diff"] == {}
    assert [(r["model"], r["eval"]) for r in data["rows"]] == [("M0", BASE_A), ("M1", None)]


def test_config_diff_types_and_unset_keys() -> None:
    diff = config_diff([{"train": {"lora": True, "beta": 0.1}, "a": {"x": [1, 2]}},
                        {"train": {"lora": 1, "beta": 0.1}, "a": {"x": [1, 2], "y": "z"}}])
    assert diff == {"a.y": [None, "z"], "train.lora": [True, 1]}
