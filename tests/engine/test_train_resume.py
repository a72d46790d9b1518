"""The train stage resumes from its checkpoints (`[train] save_every`): a half-written or stale
checkpoint is passed over; an interrupted training continues from its newest complete
checkpoint (optimizer, scheduler, RNG and place in the data restored) and ends with the
weights and metrics of an uninterrupted one; a SIGKILLed engine resumes the stage the same
way, with every metric step recorded once."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from cream_engine import checkpoints as C
from cream_engine.config import TrainConfig
from cream_engine.context import RunContext
from cream_engine.files import read_jsonl
from cream_engine.runs import load_run_config
from cream_engine.stages import train as T
from cream_engine.store import Store, open_store
from tests.engine.helpers import engine, finish, new_run, tiny_config

WEIGHTS = [1.0, 0.0, 0.5, 0.9, 0.2, 0.75, 0.3, 1.3]
# 8 pairs, 2 a step, 2 epochs: 8 steps, a checkpoint every 2
SETTINGS = {"learning_rate": 1e-3, "batch_size": 2, "epochs": 2, "save_every": 2}


def _pairs() -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}],
             "chosen": f"It is {2 * i}.", "rejected": f"Maybe {2 * i + 1}, or not at all.",
             "weight": w} for i, w in enumerate(WEIGHTS)]


def _max_diff(a: Path, b: Path) -> float:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert sorted(wa) == sorted(wb)
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


# -- which checkpoint is trusted -----------------------------------------------------------


def _checkpoint(folder: Path, step: int, *, state: bool = True, marked: bool = True) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    if state:
        (path / C.TRAINER_STATE).write_text(json.dumps({
            "global_step": step, "max_steps": 12,
            "log_history": [{"loss": 0.5, "step": s} for s in range(1, step + 1)]}))
    if marked:
        C.mark_complete(path)
    return path


def test_half_written_and_stale_checkpoints_are_passed_over(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    assert C.resume_point(folder, "key-1") is None  # nothing yet: the key is recorded
    assert json.loads((folder / C.KEY_FILE).read_text()) == {"key": "key-1"}
    _checkpoint(folder, 2)
    _checkpoint(folder, 4)
    _checkpoint(folder, 6, marked=False)  # killed while transformers wrote it (all but the mark)
    _checkpoint(folder, 8, state=False, marked=False)  # killed before its trainer state
    (folder / "checkpoint-x").mkdir()  # not one of transformers' names: left alone
    chosen = C.resume_point(folder, "key-1")
    assert chosen == folder / "checkpoint-4"
    assert sorted(p.name for p in folder.iterdir()) == [
        "checkpoint-2", "checkpoint-4", "checkpoint-x", C.KEY_FILE]  # the newer ones removed
    assert C.logged_rows(chosen) == (4, 12, [{"loss": 0.5, "step": s} for s in (1, 2, 3, 4)])
    # the same training again, and a marked folder whose trainer state is missing
    _checkpoint(folder, 10, state=False)
    assert C.resume_point(folder, "key-1") == folder / "checkpoint-4"
    # other pairs or settings: every checkpoint there is stale
    assert C.resume_point(folder, "key-2") is None
    assert [p.name for p in folder.iterdir()] == [C.KEY_FILE]
    assert C.training_key([{"a": 1}], 2) == C.training_key([{"a": 1}], 2) \
        != C.training_key([{"a": 1}], 3)


def test_save_every_sets_transformers_checkpointing(tmp_path: Path) -> None:
    from cream_engine import trainer as TR

    def args(**train):
        return TR.dpo_args(TrainConfig(**train), output_dir=tmp_path, seed=0, device="cpu")

    every = args(save_every=5)
    assert (every.save_strategy, every.save_steps, every.save_total_limit) == ("steps", 5, C.KEEP)
    assert args(save_every=0).save_strategy == "no"
    assert TrainConfig().save_every == 50


# -- an interrupted training, in this process ------------------------------------------------


class Interrupted(Exception):
    pass


def _train(model_dir: Path, out: Path, *, stop_at: int | None = None, processes: int = 1,
           strategy: str = "ddp") -> tuple[dict | None, list, list]:
    """train_dpo on the 8 pairs; `stop_at`: interrupted when that step's metrics arrive."""
    metrics: list[tuple[int, dict]] = []
    progress: list[int] = []

    def on_metrics(step: int, values: dict) -> None:
        if step == stop_at:
            raise Interrupted
        metrics.append((step, values))

    try:
        summary = T.train_dpo(policy_path=str(model_dir), pairs=_pairs(), out_dir=out / "model",
                              train=TrainConfig(**SETTINGS, processes=processes,
                                                strategy=strategy),
                              seed=7, device="cpu", on_metrics=on_metrics,
                              on_progress=lambda step, total: progress.append(step),
                              work_dir=out / "work", processes=processes)
    except Interrupted:
        summary = None
    return summary, metrics, progress


@pytest.fixture(scope="module")
def whole(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The uninterrupted one-process training: (its folder, summary, metrics)."""
    out = tmp_path_factory.mktemp("whole")
    summary, metrics, _ = _train(tiny_model_dir, out)
    return out, summary, metrics


def test_interrupted_training_resumes_to_the_uninterrupted_result(whole, tiny_model_dir: Path,
                                                                   tmp_path: Path) -> None:
    whole_dir, summary, metrics = whole
    assert summary is not None and summary["steps"] == 8
    # checkpoints every 2 steps, the newest KEEP kept, none after the last step (the stage
    # writes the model then)
    saved = whole_dir / "work" / C.FOLDER
    assert sorted(p.name for p in saved.glob("checkpoint-*")) == ["checkpoint-4",
                                                                  "checkpoint-6"]
    assert all(C.is_complete(p) for p in saved.glob("checkpoint-*"))

    out = tmp_path / "interrupted"
    first, logged, _ = _train(tiny_model_dir, out, stop_at=3)  # after checkpoint-2
    assert first is None and [s for s, _ in logged] == [1, 2]
    assert not (out / "model").exists()
    resumed, replayed, progress = _train(tiny_model_dir, out)
    # it went on from step 2: the steps before were replayed from the checkpoint, not trained
    assert progress == list(range(2, 9))
    assert [s for s, _ in replayed] == list(range(1, 9))
    assert replayed == metrics  # the same values, those of steps 1 and 2 included
    assert resumed is not None and resumed["steps"] == 8
    assert resumed["final_loss"] == summary["final_loss"]
    assert _max_diff(whole_dir / "model", out / "model") <= 1e-5


# (each costs 20-35 s of rank start-ups on 2 busy cores: with the slow tests)
@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_resume_like_one(strategy: str, whole, tiny_model_dir: Path,
                                       tmp_path: Path) -> None:
    """Two ranks stopped mid-training (here: the engine side fails at step 3, which stops the
    ranks, maybe in the middle of a save) resume from the last complete checkpoint."""
    whole_dir, _, metrics = whole
    first, logged, _ = _train(tiny_model_dir, tmp_path, stop_at=3, processes=2,
                              strategy=strategy)
    assert first is None and [s for s, _ in logged] == [1, 2]
    resumed, replayed, progress = _train(tiny_model_dir, tmp_path, processes=2,
                                         strategy=strategy)
    assert resumed is not None and resumed["processes"] == 2 and resumed["steps"] == 8
    assert progress[0] >= 2 and progress == list(range(progress[0], 9))
    assert [s for s, _ in replayed] == list(range(1, 9))  # every step once
    assert max(abs(a["loss"] - b["loss"]) for (_, a), (_, b) in zip(replayed, metrics)) <= 1e-4
    assert _max_diff(whole_dir / "model", tmp_path / "model") <= 1e-5


# -- the engine killed with SIGKILL during training ------------------------------------------


@pytest.mark.slow
def test_a_sigkilled_train_stage_resumes_from_its_last_checkpoint(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # one torch thread in the engine, as in this process: on 2 busy cores two threads ran
    # the tiny model's steps about 3x slower (measured)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # 4 pairs, 4 epochs: 8 steps; the kill comes soon after checkpoint-2, well before the end
    config = tiny_config(tiny_model_dir, run={"iterations": 1}, eval={"enabled": False},
                         data={"prompts_per_iteration": 4},
                         generate={"n": 2, "max_new_tokens": 8}, train={**SETTINGS, "epochs": 4})
    run_dir = new_run(tmp_path / "home", config)
    saved = run_dir / "iter-0" / ".trainer" / C.FOLDER
    proc = engine(run_dir)
    deadline = time.monotonic() + 300
    while not list(saved.glob(f"checkpoint-*/{C.COMPLETE}")):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert not (run_dir / "iter-0" / "model").exists(), "training ended before the kill"
    complete = max(C.step_of(p.parent) for p in saved.glob(f"checkpoint-*/{C.COMPLETE}"))

    code, err = finish(engine(run_dir), timeout=300)
    assert code == 0, err
    found = re.search(r"train: resuming from checkpoint-(\d+) \(step (\d+) of (\d+)\)", err)
    assert found, err
    step, total = int(found[2]), int(found[3])
    assert int(found[1]) == step == complete and 0 < step < total
    iter_dir = run_dir / "iter-0"
    assert [p.name for p in iter_dir.iterdir() if p.name.startswith(".")] == []  # scratch gone

    # every step's metrics exactly once, the replayed ones (up to the checkpoint) first
    rows = open_store(tmp_path / "home").query(
        "SELECT id, step, name, value FROM metrics WHERE run_id = ? AND stage = 'train' "
        "ORDER BY id", [run_dir.name])
    keys = [(r["step"], r["name"]) for r in rows]
    assert len(keys) == len(set(keys)), "a metric row written twice"
    losses = {r["step"]: r["value"] for r in rows if r["name"] == "loss"}
    assert list(losses) == list(range(1, total + 1))

    # the same stage uninterrupted (same config, seed, pairs and M_t) ends with the same weights
    ctx = RunContext(run_id=run_dir.name, run_dir=run_dir, home=run_dir.parent,
                     config=load_run_config(run_dir), store=Store.memory())
    reference: dict[int, float] = {}
    T.train_dpo(policy_path=ctx.model_path(0), pairs=read_jsonl(ctx.artifact(0, "pairs")),
                out_dir=tmp_path / "ref" / "model", train=ctx.config.train,
                seed=ctx.seed(0, "train"), device="cpu",
                on_metrics=lambda s, v: reference.setdefault(s, v["loss"]),
                work_dir=tmp_path / "ref" / "work")
    assert list(reference) == list(losses)
    assert max(abs(reference[s] - losses[s]) for s in losses) <= 1e-5
    assert _max_diff(tmp_path / "ref" / "model", iter_dir / "model") <= 1e-5
