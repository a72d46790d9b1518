"""The engine end to end on the tiny model: artifacts, store records, resume after SIGKILL,
and failures that end a run with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cream_engine import paths
from cream_engine.config import from_dict
from cream_engine.errors import TrainingError
from cream_engine.files import read_jsonl
from cream_engine.store import open_store
from tests.conftest import run_cli
from tests.engine.helpers import engine, finish, new_run, tiny_config

STAGES = list(paths.STAGES)
ARTIFACTS = paths.ARTIFACTS
TRAIN_METRICS = {"loss", "rewards/chosen", "rewards/rejected", "rewards/margins",
                 "rewards/accuracies", "consistency", "learning_rate", "grad_norm"}


def artifacts(run_dir: Path) -> dict:
    def evaluation(path: Path) -> dict:  # the results, not how long they took
        return {k: v for k, v in json.loads(path.read_text()).items() if k != "seconds_by_part"}

    out = {"0/baseline.json": evaluation(run_dir / "iter-0" / "baseline.json")}
    for t in (0, 1):
        for name in (ARTIFACTS["generate"], ARTIFACTS["consistency"], ARTIFACTS["pairs"]):
            out[f"{t}/{name}"] = read_jsonl(run_dir / f"iter-{t}" / name)
        out[f"{t}/eval.json"] = evaluation(run_dir / f"iter-{t}" / "eval.json")
    return out


def metric_counts(home: Path, run_id: str) -> dict:
    rows = open_store(home).query("SELECT iteration, name, COUNT(*) AS n FROM metrics WHERE "
                                  "run_id = ? GROUP BY iteration, name", [run_id])
    return {(r["iteration"], r["name"]): r["n"] for r in rows}


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted run, through the real `cream run` command."""
    work = tmp_path_factory.mktemp("finished")
    (work / "exp.toml").write_text(_toml(tiny_config(tiny_model_dir)))
    r = run_cli("run", "exp.toml", cwd=work, home=work / "home", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    run_id = r.stdout.strip().splitlines()[-1]
    return work / "home" / run_id


def _toml(config: dict) -> str:
    from cream_engine.config import to_toml

    return to_toml(from_dict(config))


def test_run_writes_every_artifact(finished_run: Path) -> None:
    assert (finished_run / "config.toml").is_file()
    for t in (0, 1):
        d = finished_run / f"iter-{t}"
        responses = read_jsonl(d / "responses.jsonl")
        assert len(responses) == 8 and all(len(r["responses"]) == 4 for r in responses)
        assert set(responses[0]) >= {"prompt_id", "prompt", "responses"}
        rewards = read_jsonl(d / "consistency.jsonl")
        assert len(rewards[0]["rewards"]["implicit"]) == 4
        assert set(rewards[0]) >= {"prompt_id", "rewards", "tau", "consistency"}
        pairs = read_jsonl(d / "pairs.jsonl")
        assert pairs and set(pairs[0]) >= {"prompt_id", "prompt", "chosen", "rejected",
                                           "weight"}
        assert all(p["chosen"] != p["rejected"] or p["chosen_index"] != p["rejected_index"]
                   for p in pairs)
        assert (d / "model" / "model.safetensors").is_file()
    ids0 = {r["prompt_id"] for r in read_jsonl(finished_run / "iter-0" / "responses.jsonl")}
    ids1 = {r["prompt_id"] for r in read_jsonl(finished_run / "iter-1" / "responses.jsonl")}
    assert not ids0 & ids1  # disjoint prompt slices


def test_consistency_and_weights(finished_run: Path) -> None:
    r0 = read_jsonl(finished_run / "iter-0" / "consistency.jsonl")
    assert all(r["tau"] is None for r in r0)          # no previous model yet
    assert all(p["weight"] == 1.0 for p in read_jsonl(finished_run / "iter-0" / "pairs.jsonl"))
    r1 = read_jsonl(finished_run / "iter-1" / "consistency.jsonl")
    taus = [r["tau"] for r in r1]
    assert all(-1 <= x <= 1 for x in taus)
    c_mean = sum((x + 1) / 2 for x in taus) / len(taus)
    pairs = read_jsonl(finished_run / "iter-1" / "pairs.jsonl")
    assert all(p["weight"] == pytest.approx(c_mean) for p in pairs)  # "average" mode


def test_store_records(finished_run: Path) -> None:
    home, run_id = finished_run.parent, finished_run.name
    store = open_store(home)
    assert store.get_run(run_id)["status"] == "done"
    iters = store.iterations(run_id)
    assert [i["status"] for i in iters] == ["done", "done"]
    assert iters[0]["mean_tau"] is None and iters[1]["mean_tau"] is not None
    assert all(i["n_pairs"] >= 1 and i["mean_response_length"] > 0 for i in iters)
    stages = store.stages(run_id)
    assert [(s["iteration"], s["stage"]) for s in stages] == \
        [(0, "baseline")] + [(t, s) for t in (0, 1) for s in STAGES]
    assert all(s["status"] == "done" for s in stages)
    counts = metric_counts(home, run_id)
    names = {name for (_, name) in counts}
    assert TRAIN_METRICS <= names
    for t in (0, 1):
        steps = -(-iters[t]["n_pairs"] // 2)  # one optimizer step per batch of 2 pairs
        assert counts[(t, "loss")] == steps
    status = json.loads(run_cli("status", run_id, "--json", home=home).stdout)
    assert status["iteration"] == 2 and status["status"] == "done"


KILL_POINTS = {
    "generate-0": lambda s, rid: s.stage_status(rid, 0, "generate") == "running",
    "train-0": lambda s, rid: s.query("SELECT COUNT(*) AS n FROM metrics WHERE run_id = ? "
                                      "AND stage = 'train'", [rid])[0]["n"] > 0,
    "score-1": lambda s, rid: s.stage_status(rid, 1, "score") == "running",
    # evaluate: one part written, the next running
    "evaluate-0": lambda s, rid: (s.run_path(s.get_run(rid)) / "iter-0" / "eval"
                                  / "mc.generative.jsonl").exists(),
}


# (generate and score kills are slow: the SIGKILL sweep, slow too, lands in those stages as
# well; training stays in the default suite, a half-written evaluation runs with the slow ones)
@pytest.mark.parametrize("point", [
    pytest.param(p, marks=pytest.mark.slow) if p in ("generate-0", "score-1", "evaluate-0") else p
    for p in KILL_POINTS])
def test_sigkill_then_resume_matches_an_uninterrupted_run(
        point: str, tiny_model_dir: Path, finished_run: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    run_dir = new_run(tmp_path / "home", tiny_config(tiny_model_dir))
    store = open_store(tmp_path / "home")
    proc = engine(run_dir)
    deadline = time.time() + 240
    while not KILL_POINTS[point](store, run_dir.name):
        assert proc.poll() is None, f"engine ended before {point}"
        assert time.time() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    code, err = finish(engine(run_dir))
    assert code == 0, err[-3000:]
    assert artifacts(run_dir) == artifacts(finished_run)
    assert metric_counts(tmp_path / "home", run_dir.name) == \
        metric_counts(finished_run.parent, finished_run.name)
    ours = load_file(run_dir / "iter-1" / "model" / "model.safetensors")
    theirs = load_file(finished_run / "iter-1" / "model" / "model.safetensors")
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_failure_model_does_not_load(tmp_path: Path, tiny_model_dir: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama", "hidden_size": 64}')
    run_dir = new_run(tmp_path / "home", tiny_config(broken))
    code, err = finish(engine(run_dir))
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"cream: error: run {run_dir.name} failed: model ")
    run = open_store(tmp_path / "home").get_run(run_dir.name)
    assert run["status"] == "failed" and "\n" not in run["error"]


@pytest.mark.slow
def test_failure_judge_never_scores(tmp_path: Path, tiny_model_dir: Path) -> None:
    config = tiny_config(tiny_model_dir, run={"method": "srlm", "iterations": 1},
                         judge={"score_mode": "parse", "max_new_tokens": 8})
    run_dir = new_run(tmp_path / "home", config)
    code, err = finish(engine(run_dir))
    assert code == 1 and "no parsable score in 32 judgments" in err
    store = open_store(tmp_path / "home")
    assert "no parsable score" in store.get_run(run_dir.name)["error"]
    assert store.stage_status(run_dir.name, 0, "generate") == "done"
    assert store.stage_status(run_dir.name, 0, "score") == "failed"


def test_failure_prompt_slice_gone(tmp_path: Path, tiny_model_dir: Path) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Say {i}."}) + "\n" for i in range(16)))
    run_dir = new_run(tmp_path / "home", tiny_config(tiny_model_dir,
                                                     data={"prompts": str(prompts)}))
    prompts.write_text(json.dumps({"prompt": "Only one left."}) + "\n")
    code, err = finish(engine(run_dir))
    assert code == 1 and "1 prompts cannot fill 2 iterations x 8" in err


def test_failure_nan_loss_keeps_finished_iterations(tmp_path: Path, tiny_model_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   finished_run: Path) -> None:
    import cream_engine.stages.train as train_stage
    from cream_engine.pipeline import run_experiment

    real = train_stage.train_dpo
    calls = []

    def nan_in_second_iteration(**kw: object) -> dict:
        calls.append(kw["out_dir"])
        if len(calls) == 2:
            raise TrainingError("NaN loss at step 1")
        return real(**kw)

    monkeypatch.setattr(train_stage, "train_dpo", nan_in_second_iteration)
    run_dir = new_run(tmp_path / "home", tiny_config(tiny_model_dir))
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        assert run_experiment(run_dir) == 1
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    store = open_store(tmp_path / "home")
    run = store.get_run(run_dir.name)
    assert run["status"] == "failed" and run["error"] == "NaN loss at step 1"
    assert [i["status"] for i in store.iterations(run_dir.name)] == ["done", "failed"]
    assert (run_dir / "iter-0" / "model" / "model.safetensors").is_file()
    assert not (run_dir / "iter-1" / "model").exists()


def test_engine_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    code, err = finish(engine(tmp_path / "nope"))
    assert code == 2 and "not a run" in err


def test_pipeline_runs_the_stages_paths_names() -> None:
    from cream_engine import pipeline

    assert tuple(pipeline.STAGES) == paths.STAGES
    assert set(paths.STAGES) | set(paths.BEFORE_LOOP) == set(paths.ARTIFACTS)


def _broken_run(home: Path, tiny_model_dir: Path) -> Path:
    """A run whose finished generate stage left a file that is not JSON: the score stage then
    fails with an error nobody expected (a bug, as far as the engine can tell)."""
    run_dir = new_run(home, tiny_config(tiny_model_dir, eval={"enabled": False}))
    (run_dir / "iter-0").mkdir()
    (run_dir / "iter-0" / ARTIFACTS["generate"]).write_text("not json\n")
    store = open_store(home)
    store.start_stage(run_dir.name, 0, "generate")
    store.finish_stage(run_dir.name, 0, "generate", info={"prompts": 8})
    return run_dir


@pytest.mark.slow
def test_a_bug_is_one_line_and_its_traceback_goes_to_the_job_log(
        tmp_path: Path, tiny_model_dir: Path) -> None:
    # in the foreground (`cream run`) stderr is the user's terminal: one line there
    run_dir = _broken_run(tmp_path / "home", tiny_model_dir)
    code, err = finish(engine(run_dir))
    log = run_dir / "logs" / "job.log"
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"cream: error: run {run_dir.name} failed: internal error: JSONDecodeError: Expecting "
        f"value: line 1 column 1 (char 0); traceback in {log}")
    run = open_store(tmp_path / "home").get_run(run_dir.name)
    assert run["status"] == "failed"
    assert run["error"] == "internal error: JSONDecodeError: Expecting value: line 1 column 1 " \
                           "(char 0)"
    assert log.read_text().count("Traceback (most recent call last)") == 1

    # under the worker stderr is the job log itself: the traceback is written once, not twice
    log.unlink()
    with open(log, "ab") as out:
        proc = subprocess.run([sys.executable, "-m", "cream_engine", "run", str(run_dir)],
                              env={**os.environ, "CREAM_HOME": str(run_dir.parent)},
                              stdout=out, stderr=subprocess.STDOUT, timeout=300)
    assert proc.returncode == 1
    text = log.read_text()
    assert text.count("Traceback (most recent call last)") == 1
    assert text.strip().splitlines()[-1].endswith(f"; traceback in {log}")


def test_evaluation_of_every_model(finished_run: Path) -> None:
    """M0 once (baseline), then M1 and M2: both scorings per set, the held-out replies, the
    judge's score, and the win rate over the model before, in the files and the store."""
    home, run_id = finished_run.parent, finished_run.name
    base = json.loads((finished_run / "iter-0" / "baseline.json").read_text())
    evals = [json.loads((finished_run / f"iter-{t}" / "eval.json").read_text()) for t in (0, 1)]
    assert [e["model"] for e in [base, *evals]] == ["M0", "M1", "M2"]
    for e in [base, *evals]:
        mc, arith = e["sets"]["mc"], e["sets"]["arith"]
        assert mc["n"] == arith["n"] == 4
        assert 0 <= mc["gen_acc"] <= 1 and 0 <= mc["gen_unparsable"] <= 4
        assert 0 <= mc["ll_acc"] <= 1 and 0 <= mc["ll_acc_norm"] <= 1
        assert "ll_acc" not in arith and 0 <= arith["gen_acc"] <= 1
        # (the random tiny model's greedy replies are often empty: length 0 is possible here)
        assert 0 <= e["judge_score"] <= 5 and e["mean_length"] >= 0
    assert "win" not in base
    parts = {"generative", "held-out replies", "loglik", "judge score"}
    assert set(base["seconds_by_part"]) == parts
    assert all(set(e["seconds_by_part"]) == parts | {"win rate"} for e in evals)
    for k, e in enumerate(evals, start=1):
        win = e["win"]
        assert win["vs"] == f"M{k - 1}" and win["n"] == 4
        assert win["win_rate"] + win["tie_rate"] + win["loss_rate"] == pytest.approx(1)
        rows = read_jsonl(finished_run / f"iter-{k - 1}" / "eval" / "win.jsonl")
        assert len(rows) == 4 and all(0 <= r["p_new_first"] <= 1 for r in rows)
    # M1's held-out replies are reused as "the model before" of M2: never generated twice
    assert not list(finished_run.rglob("heldout-previous.jsonl"))
    replies = read_jsonl(finished_run / "iter-0" / "eval" / "heldout.jsonl")
    assert len(replies) == 4 and not {r["prompt_id"] for r in replies} & {
        r["prompt_id"] for t in (0, 1)
        for r in read_jsonl(finished_run / f"iter-{t}" / "responses.jsonl")}
    store = open_store(home)
    summary0 = json.loads(store.iterations(run_id)[0]["summary"])
    assert summary0["baseline"]["model"] == "M0" and summary0["evaluate"]["model"] == "M1"
    steps = store.query("SELECT stage, step, value FROM metrics WHERE run_id = ? AND name = "
                        "'eval/mc/gen_acc' ORDER BY step", [run_id])
    assert [(r["stage"], r["step"]) for r in steps] == [("baseline", 0), ("evaluate", 1),
                                                        ("evaluate", 2)]
    assert [r["value"] for r in steps] == [e["sets"]["mc"]["gen_acc"] for e in [base, *evals]]
    # the stage's progress counts every part: 4 + 4 answers, 16 options, 4 held-out replies,
    # 4 judge scores and, after M0, 2 x 4 win-rate verdicts
    progress = [(s["stage"], s["done_items"], s["total_items"]) for s in store.stages(run_id)
                if s["stage"] in ("baseline", "evaluate")]
    assert progress == [("baseline", 32, 32), ("evaluate", 40, 40), ("evaluate", 40, 40)]
