"""The seed SFT before iteration 0 (M0 -> M1) on the tiny model: M1 differs from M0 and has
learnt the seed replies, iteration 0 samples from M1 and ranks against M0 (a defined τ and C
that its pairs carry), the models are evaluated as M0, M1, M2, and a restarted run keeps M1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cream_engine import paths
from cream_engine.compare import model_rows
from cream_engine.files import read_jsonl
from cream_engine.results import evaluations_by_model
from cream_engine.sft_trainer import completion_rows
from cream_engine.store import open_store
from tests.engine.helpers import engine, finish, new_run, tiny_config

SEED = [[{"role": "user", "content": f"What is {a} plus {a + 1}?"},
         {"role": "assistant", "content": f"{a} + {a + 1} = {2 * a + 1}.\nAnswer: {2 * a + 1}"}]
        for a in range(12)]


def seed_file(folder: Path) -> Path:
    path = folder / "seed.jsonl"
    path.write_text("".join(json.dumps({"messages": m}) + "\n" for m in SEED))
    return path


def sft_config(model_dir: Path, seed: Path, **sections: dict) -> dict:
    return tiny_config(model_dir, sft={"enabled": True, "data": str(seed), "epochs": 2,
                                       "learning_rate": 1e-3, "batch_size": 4,
                                       "max_length": 64}, **sections)


@pytest.fixture(scope="module")
def sft_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("sft-home")
    run_dir = new_run(home, sft_config(tiny_model_dir, seed_file(home),
                                       run={"iterations": 1}))
    proc = engine(run_dir)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert "'loss'" not in out + err  # the trainer's log dicts are not printed
    return run_dir


def test_completion_rows_put_the_last_reply_in_the_loss() -> None:
    rows = completion_rows([[{"role": "system", "content": "s"}, *SEED[0]]])
    assert rows[0]["prompt"] == [{"role": "system", "content": "s"}, SEED[0][0]]
    assert rows[0]["completion"] == [SEED[0][1]]


def test_m1_is_trained_from_m0(sft_run: Path, tiny_model_dir: Path) -> None:
    m0 = load_file(str(tiny_model_dir / "model.safetensors"))
    m1 = load_file(str(sft_run / "iter-0" / paths.ARTIFACTS[paths.SFT] / "model.safetensors"))
    assert m0.keys() == m1.keys()
    changed = [k for k in m0 if not torch.equal(m0[k], m1[k])]
    assert len(changed) > len(m0) // 2
    store = open_store(sft_run.parent)
    losses = [r["value"] for r in store.metric_rows(sft_run.name)
              if r["stage"] == paths.SFT and r["name"] == "sft/loss"]
    assert len(losses) == 6  # 12 examples / batch 4 x 2 epochs
    assert losses[-1] < losses[0]  # the seed replies are learnt


def test_iteration_0_ranks_m1_against_m0(sft_run: Path) -> None:
    scores = read_jsonl(sft_run / "iter-0" / paths.ARTIFACTS["score"])
    assert set(scores[0]["logp"]) == {"current", "reference"}  # M1 and M0
    assert scores[0]["logp"]["current"] != scores[0]["logp"]["reference"]
    store = open_store(sft_run.parent)
    it = store.iterations(sft_run.name)[0]
    assert it["mean_tau"] is not None and it["mean_consistency"] is not None
    pairs = read_jsonl(sft_run / "iter-0" / paths.ARTIFACTS["pairs"])
    assert pairs and all(p["weight"] == pytest.approx(it["mean_consistency"]) for p in pairs)


def test_models_are_evaluated_as_m0_m1_m2(sft_run: Path) -> None:
    store = open_store(sft_run.parent)
    evals = evaluations_by_model(store, sft_run.name)
    assert sorted(evals) == [0, 1, 2]
    assert [evals[k]["model"] for k in (0, 1, 2)] == ["M0", "M1", "M2"]
    names = [s["stage"] for s in store.stages(sft_run.name)]
    assert names[:3] == [paths.BASELINE, paths.SFT, paths.SFT_EVAL]
    assert (sft_run / "iter-0" / paths.SFT_EVAL).is_dir()  # M1's per-item details
    rows = model_rows(store, store.get_run(sft_run.name))  # what compare and the demo show
    assert [(r["model"], r["iteration"]) for r in rows] == [("M0", None), ("M1", None),
                                                            ("M2", 0)]
    assert rows[2]["mean_consistency"] is not None and rows[2]["eval"]["model"] == "M2"


@pytest.mark.slow
def test_a_restarted_run_keeps_m1(sft_run: Path) -> None:
    """Done stages are skipped: the engine run again changes nothing, M1 included."""
    m1 = sft_run / "iter-0" / paths.ARTIFACTS[paths.SFT] / "model.safetensors"
    before = m1.stat().st_mtime_ns
    code, err = finish(engine(sft_run), timeout=300)
    assert code == 0, err[-2000:]
    assert m1.stat().st_mtime_ns == before
    assert "seed SFT" not in err


def test_bad_seed_file_fails_the_run_with_one_line(tiny_model_dir: Path,
                                                    tmp_path: Path) -> None:
    bad = tmp_path / "seed.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    run_dir = new_run(tmp_path / "home", sft_config(tiny_model_dir, bad, eval={
        "enabled": False}))
    code, err = finish(engine(run_dir), timeout=300)
    assert code == 1
    assert str(bad) in err.strip().splitlines()[-1]
    assert not (run_dir / "iter-0" / paths.ARTIFACTS[paths.SFT]).exists()


@pytest.mark.slow
def test_a_second_run_shares_m1_and_its_evaluation(sft_run: Path, tiny_model_dir: Path
                                                   ) -> None:
    """The same M0, seed data and settings in the same home: M1 and its evaluation are copied
    from the home's cache, the same bytes, and the loop goes on from them."""
    home = sft_run.parent
    other = new_run(home, sft_config(tiny_model_dir, home / "seed.jsonl",
                                     run={"iterations": 1, "name": "again"}))
    code, err = finish(engine(other), timeout=600)
    assert code == 0, err[-3000:]
    infos = {s["stage"]: json.loads(s["info"]) for s in open_store(home).stages(other.name)
             if s["iteration"] == 0}
    assert infos[paths.SFT]["cache"] == "hit" and infos[paths.SFT_EVAL]["cache"] == "hit"
    model = paths.ARTIFACTS[paths.SFT]
    for f in (sft_run / "iter-0" / model).iterdir():
        assert (other / "iter-0" / model / f.name).read_bytes() == f.read_bytes()
    assert "seed SFT" not in err  # (no training: its progress never started)


@pytest.mark.slow
def test_sigkill_during_sft_then_resume_trains_the_same_m1(sft_run: Path, tiny_model_dir: Path,
                                                            tmp_path: Path) -> None:
    """Killed after the SFT's first logged step: the same command trains M1 again from M0 and
    gets the same weights as an uninterrupted run, with each step's metrics once, and leaves
    no scratch folder."""
    import os
    import signal
    import time

    run_dir = new_run(tmp_path / "home", sft_config(tiny_model_dir, seed_file(tmp_path),
                                                   run={"iterations": 1}))
    store = open_store(tmp_path / "home")
    proc = engine(run_dir)
    deadline = time.time() + 300
    while not [r for r in store.metric_rows(run_dir.name) if r["name"] == "sft/loss"]:
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    code, err = finish(engine(run_dir), timeout=600)
    assert code == 0, err[-3000:]
    model = paths.ARTIFACTS[paths.SFT]
    ours = load_file(str(run_dir / "iter-0" / model / "model.safetensors"))
    theirs = load_file(str(sft_run / "iter-0" / model / "model.safetensors"))
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    steps = [r["step"] for r in store.metric_rows(run_dir.name) if r["name"] == "sft/loss"]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert not (run_dir / "iter-0" / ".sft-trainer").exists()
