"""Multi-process training for real: two ranks (gloo on the CPU) under DDP and FSDP train like
one process (the same pairs per step, the same steps, the same losses and weights), rank 0
alone reports and writes; a SIGKILLed engine takes its ranks with it and the run resumes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cream_engine.config import TrainConfig
from cream_engine.stages import train as T
from cream_engine.store import open_store
from tests.engine.helpers import engine, finish, new_run, tiny_config

WEIGHTS = [1.0, 0.0, 0.5, 0.9, 0.2, 0.75, 0.3, 1.3]


def _pairs() -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}],
             "chosen": f"It is {2 * i}.", "rejected": f"Maybe {2 * i + 1}, or not at all.",
             "weight": w} for i, w in enumerate(WEIGHTS)]


def _train(model_dir: Path, out: Path, processes: int, strategy: str) -> tuple[dict, list]:
    logged: list[tuple[int, dict]] = []
    summary = T.train_dpo(
        policy_path=str(model_dir), pairs=_pairs(), out_dir=out / "model",
        train=TrainConfig(batch_size=2, learning_rate=1e-3, processes=processes,
                          strategy=strategy),
        seed=5, device="cpu", on_metrics=lambda step, v: logged.append((step, v)),
        work_dir=out / "work", processes=processes)
    return summary, logged


@pytest.fixture(scope="module")
def one_process(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("one")
    return out, *_train(tiny_model_dir, out, 1, "ddp")


# (each costs 30-45 s of rank start-up on 2 busy cores: they run with the slow tests; the
# options and the split of the batch are checked in the default suite below)
@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_train_like_one(strategy: str, one_process, tiny_model_dir: Path,
                                      tmp_path: Path) -> None:
    one_dir, one_summary, one_logged = one_process
    summary, logged = _train(tiny_model_dir, tmp_path, 2, strategy)
    assert summary["processes"] == 2 and one_summary["processes"] == 1
    assert summary["steps"] == one_summary["steps"] == 4  # 8 pairs, 2 per step
    assert summary["pairs"] == one_summary["pairs"] == len(WEIGHTS)
    # metrics once (rank 0), every step, the same values
    assert [s for s, _ in logged] == [s for s, _ in one_logged] == [1, 2, 3, 4]
    for (_, two), (_, one) in zip(logged, one_logged):
        assert abs(two["loss"] - one["loss"]) <= 1e-4, (two, one)
        assert abs(two["consistency"] - one["consistency"]) <= 1e-6
    assert len({round(v["loss"], 6) for _, v in one_logged}) > 1  # training moved the loss
    # one checkpoint: a plain folder equal to the one-process one, nothing else beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "work"]
    two_w, one_w = load_file(tmp_path / "model" / "model.safetensors"), \
        load_file(one_dir / "model" / "model.safetensors")
    assert sorted(two_w) == sorted(one_w)
    assert max((two_w[k] - one_w[k]).abs().max().item() for k in one_w) <= 1e-5
    assert {v.dtype for v in two_w.values()} == {torch.float32}  # (fp32 on the CPU)


@pytest.mark.slow
def test_a_rank_error_stops_every_rank_with_its_line(tiny_model_dir: Path,
                                                     tmp_path: Path) -> None:
    """A failure inside the ranks (here: no pair fits max_length) is one line, not a hang."""
    pairs = [{**p, "messages": [{"role": "user", "content": "word " * 200}]} for p in _pairs()]
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        T.train_dpo(policy_path=str(tiny_model_dir), pairs=pairs, out_dir=tmp_path / "model",
                    train=TrainConfig(batch_size=2, max_length=32, processes=2),
                    seed=5, device="cpu", on_metrics=lambda *a: None,
                    work_dir=tmp_path / "work", processes=2)
    assert "no pair fits max_length = 32" in str(info.value)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "model").exists()
    assert time.monotonic() - started < 240


def _rank_pids(run_dir: Path) -> list[int]:
    """The training ranks working for this run (their spec file lies in its folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"cream_engine.train_rank" in cmd and any(str(run_dir).encode() in c for c in cmd):
            found.append(int(proc.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _train_losses(home: Path, run_id: str) -> dict[int, float]:
    store = open_store(home)
    rows = store.query("SELECT step, value FROM metrics WHERE run_id = ? AND stage = 'train' "
                          "AND name = 'loss' ORDER BY step", [run_id])
    losses: dict[int, float] = {}
    for row in rows:
        assert row["step"] not in losses, "a metric row written twice"
        losses[row["step"]] = row["value"]
    return losses


@pytest.mark.slow
def test_two_process_run_survives_a_sigkill_and_matches_one_process(tiny_model_dir: Path,
                                                                    tmp_path: Path) -> None:
    settings = dict(run={"iterations": 1}, eval={"enabled": False},
                    train={"learning_rate": 1e-3, "batch_size": 2})
    # the one-process reference
    ref_home = tmp_path / "one"
    ref_dir = new_run(ref_home, tiny_config(tiny_model_dir, **settings))
    code, err = finish(engine(ref_dir), timeout=600)
    assert code == 0, err
    # two processes, the engine SIGKILLed while its ranks train
    home = tmp_path / "two"
    settings["train"] = {**settings["train"], "processes": 2, "strategy": "ddp"}
    run_dir = new_run(home, tiny_config(tiny_model_dir, **settings))
    proc = engine(run_dir)
    deadline = time.monotonic() + 600
    while not _rank_pids(run_dir) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.2)
    ranks = _rank_pids(run_dir)
    assert len(ranks) == 2
    time.sleep(3)  # (they are loading or training)
    os.kill(proc.pid, signal.SIGKILL)  # the engine alone: nothing passes the word on
    proc.communicate()
    gone = time.monotonic() + 15
    while any(_alive(p) for p in ranks) and time.monotonic() < gone:
        time.sleep(0.1)
    assert not any(_alive(p) for p in ranks), "a rank outlived its engine"
    assert not (run_dir / "iter-0" / "model").exists()
    # resumed: finishes, the train stage from scratch, once
    code, err = finish(engine(run_dir), timeout=600)
    assert code == 0, err
    assert (run_dir / "iter-0" / "model" / "model.safetensors").is_file()
    assert sorted(p.name for p in (run_dir / "iter-0").iterdir()
                  if p.name.startswith(".")) == []  # no scratch or temp folder left
    one, two = _train_losses(ref_home, ref_dir.name), _train_losses(home, run_dir.name)
    assert list(one) == list(two) and len(one) >= 2
    assert max(abs(one[s] - two[s]) for s in one) <= 1e-4
    assert (ref_dir / "iter-0" / "pairs.jsonl").read_text() == \
        (run_dir / "iter-0" / "pairs.jsonl").read_text()


def test_dpo_args_share_the_batch_and_set_the_strategy(tmp_path: Path) -> None:
    from cream_engine import trainer as TR
    from cream_engine.errors import TrainingError

    def args(processes: int, **train):
        return TR.dpo_args(TrainConfig(**train), output_dir=tmp_path, seed=0, device="cpu",
                           processes=processes, layer_classes=("LlamaDecoderLayer",))

    assert args(1, batch_size=4).per_device_train_batch_size == 4
    assert args(2, batch_size=4).per_device_train_batch_size == 2
    ddp = args(2, batch_size=4, activation_checkpointing=True)
    assert ddp.activation_checkpointing and not ddp.fsdp
    fsdp = args(2, batch_size=4, strategy="fsdp", activation_checkpointing=True)
    assert fsdp.fsdp_config["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]
    # FSDP checkpoints with its own wrapper, not the Trainer's (an extra all-gather)
    assert fsdp.fsdp_config["activation_checkpointing"] and not fsdp.activation_checkpointing
    assert not args(1, batch_size=4, strategy="fsdp").fsdp  # one process: nothing to shard
    assert TR.zero3_config()["zero_optimization"]["stage"] == 3
    with pytest.raises(TrainingError, match="batch_size = 3 cannot be split over 2"):
        args(2, batch_size=3)
    assert TR.save_dtype(TrainConfig(), "cuda") == torch.bfloat16
    assert TR.save_dtype(TrainConfig(), "cpu") is None
