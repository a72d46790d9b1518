"""The scale work of issue 13, measured on this CPU with the tiny model, side by side.

    python bench/scale_cpu.py [--home DIR] [--parts processes,loads,reference]

1. processes: the same 16 pairs trained by 1 process, by 2 (DDP) and by 2 (FSDP full-shard):
   wall time (start-up included), seconds per step, the loss at every step and the largest
   difference from the one-process loss, and the weights' largest difference.
2. loads: a 3-iteration tiny `cream` run (method cream, evaluation on); the model loads of
   each iteration as the engine's job log names them ("model load N: M<k>").
3. reference: training on pairs that bring the score stage's log π_{M_t} (the trainer skips
   TRL's reference pass) against pairs without (TRL computes it): the trainer's wall time and
   the largest difference of the losses.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def pairs(n: int = 16) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"What is {i} plus {i}? Say it briefly."}],
             "chosen": f"It is {2 * i}, since {i} + {i} = {2 * i}.",
             "rejected": f"Maybe {2 * i + 1}, or not at all.", "weight": 0.25 + (i % 4) / 4}
            for i in range(n)]


def train(model: str, work: Path, name: str, rows: list[dict], processes: int = 1,
          strategy: str = "ddp") -> tuple[dict, dict[int, float], float]:
    from cream_engine.config import TrainConfig
    from cream_engine.stages.train import train_dpo

    losses: dict[int, float] = {}
    started = time.time()
    summary = train_dpo(policy_path=model, pairs=rows, out_dir=work / name / "model",
                        train=TrainConfig(batch_size=4, learning_rate=1e-3, processes=processes,
                                          strategy=strategy),
                        seed=1, device="cpu", work_dir=work / name / "work",
                        on_metrics=lambda step, v: losses.__setitem__(step, v["loss"]),
                        processes=processes)
    return summary, losses, time.time() - started


def max_weight_diff(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return max((x[k].float() - y[k].float()).abs().max().item() for k in x)


def part_processes(model: str, work: Path) -> None:
    print("\n## 1. training processes (16 pairs, batch 4, 4 steps; tiny model, gloo on the CPU)")
    print(f"{'setting':<16}{'wall s':>8}{'s/step':>8}{'max |Δloss|':>13}{'max |Δw|':>11}  losses")
    base = None
    for name, procs, strategy in (("1 process", 1, "ddp"), ("2 ranks DDP", 2, "ddp"),
                                  ("2 ranks FSDP", 2, "fsdp")):
        tag = name.replace(" ", "-")
        summary, losses, wall = train(model, work, tag, pairs(), procs, strategy)
        if base is None:
            base = (losses, work / tag / "model")
        dl = max(abs(losses[s] - base[0][s]) for s in base[0])
        dw = max_weight_diff(base[1], work / tag / "model")
        print(f"{name:<16}{wall:>8.1f}{summary['seconds_per_step']:>8.2f}{dl:>13.2e}"
              f"{dw:>11.2e}  " + " ".join(f"{v:.4f}" for _, v in sorted(losses.items())))


def part_loads(model: str, work: Path) -> None:
    from cream_engine.config import from_dict
    from cream_engine.runs import create_run
    from cream_engine.store import open_store

    print("\n## 2. model loads of a 3-iteration tiny run (method cream, evaluation on)")
    home = work / "loads-home"
    config = {"run": {"name": "loads", "model": model, "iterations": 3, "seed": 3},
              "data": {"prompts_per_iteration": 8},
              "generate": {"n": 4, "max_new_tokens": 16, "batch_size": 4},
              "judge": {"samples": 1, "max_new_tokens": 0},
              "train": {"learning_rate": 1e-3, "batch_size": 2},
              "eval": {"max_items": 4, "max_new_tokens": 12, "win_rate_prompts": 4}}
    store = open_store(home)
    run_id = create_run(store, home, from_dict(config))
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "cream_engine", "--home", str(home), "run",
                           str(home / run_id)], capture_output=True, text=True, check=False)
    print(f"run: exit {proc.returncode} in {time.time() - started:.0f}s")
    iteration, loads = 0, {}
    for line in proc.stderr.splitlines():
        done = re.match(r"iter (\d+) (\w+): done", line)
        load = re.search(r"model load \d+: (\S+)", line)
        if load:
            loads.setdefault(iteration, []).append(load.group(1))
        if done:
            iteration = int(done.group(1)) + (done.group(2) == "evaluate")
    total = 0
    for t in sorted(loads):
        total += len(loads[t])
        print(f"iteration {t}: {len(loads[t])} loads: {', '.join(loads[t])}")
    print(f"total: {total} loads (the trainer's own copy, one per iteration, not counted)")


def part_reference(model: str, work: Path) -> None:
    import torch

    from cream_engine.logprobs import sequence_logprobs
    from cream_engine.models import load_model

    print("\n## 3. reference log-probs: from the score stage vs TRL's own pass (16 pairs)")
    rows = pairs()
    m, tok = load_model(model, work, dtype="float32", device="cpu")
    with torch.no_grad():  # what the score stage computes, on TRL's tokens
        seq = sequence_logprobs(m, tok, [(p["messages"], y) for p in rows
                                         for y in (p["chosen"], p["rejected"])], max_length=512)
    with_ref = [{**p, "ref_chosen_logps": seq[2 * i].logp, "ref_rejected_logps":
                 seq[2 * i + 1].logp} for i, p in enumerate(rows)]
    _, trl_losses, trl_wall = train(model, work, "ref-trl", rows)
    _, our_losses, our_wall = train(model, work, "ref-ours", with_ref)
    dl = max(abs(trl_losses[s] - our_losses[s]) for s in trl_losses)
    print(f"TRL computes the reference: {trl_wall:.1f}s; given by the score stage: "
          f"{our_wall:.1f}s; max |Δloss| {dl:.2e}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None, help="where the tiny model is built [a temp dir]")
    parser.add_argument("--parts", default="processes,loads,reference")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from cream_engine.models import resolve_model

    work = Path(args.home or tempfile.mkdtemp(prefix="cream-scale-"))
    model = resolve_model("bundled:tiny-random", work)
    parts = {"processes": part_processes, "loads": part_loads, "reference": part_reference}
    for name in args.parts.split(","):
        parts[name](model, work)
    print(json.dumps({"work": str(work)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
