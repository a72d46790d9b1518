"""Seconds per training step, side by side in one process, on the same pairs: TRL's plain DPO
step, CREAM's step (`CreamDPOTrainer`) and SCIR's step (`ScirDPOTrainer`: one more policy
forward and backward on the judge prompts of both presentation orders); `scir-plain` is SCIR's
step with the judge's two orders in one plain forward (before their common prefix was shared).

    .venv/bin/python bench/scir_step.py [--model bundled:tiny-random] [--pairs 16]
        [--batch-size 2] [--steps 6] [--rounds 2] [--words 40 90] [--home DIR]
        [--methods trl cream scir-plain scir] [--threads N]

Each round trains every method for `--steps` optimizer steps from a fresh optimizer (the first
step of each round is a warm-up and not counted); the table gives the median step over the
rounds, and each method's ratio to TRL's plain step. It also prints the tokens per sequence
of the DPO batch (prompt + response) and of the judge batch (request + both responses), and
the judge tokens that go through the model per sequence once the orders share their prefix:
what SCIR's extra forward and backward cost in.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import PrinterCallback, TrainerCallback
from trl import DPOTrainer

from cream_engine import paths
from cream_engine.config import ScirConfig, TrainConfig
from cream_engine.judges import pairwise
from cream_engine.models import load_model, resolve_model
from cream_engine.stages.train import preference_rows, scir_rows
from cream_engine.trainer import dpo_args, make_trainer, quiet

TEXT = ("the light from the sun is scattered by the air and the short blue waves are "
         "scattered more than the long red ones so the sky looks blue while at sunset the "
         "light travels through more air and the blue is scattered away leaving red and "
         "orange this is called rayleigh scattering and it depends on the wavelength of the "
         "light and on the size of the particles that it meets on its way to our eyes")
WORDS = TEXT.split()


class StepClock(TrainerCallback):
    """Wall time of every optimizer step (forward, backward, optimizer)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._start = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def make_pairs(n: int, words: tuple[int, int], seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    prompts = [json.loads(line)["prompt"] for line in
               paths.bundled_data("prompts.jsonl").read_text().splitlines()[:n]]

    def text() -> str:
        k = rng.randint(*words)
        start = rng.randrange(len(WORDS))
        return " ".join((WORDS * (k // len(WORDS) + 2))[start:start + k]).capitalize() + "."

    return [{"prompt": p, "messages": [{"role": "user", "content": p}], "chosen": text(),
             "rejected": text(), "weight": 1.0, "labeled": False} for p in prompts]


def build(method: str, spec: str, home: Path, pairs: list[dict], train: TrainConfig,
          work: Path, clock: StepClock) -> Any:
    with quiet():
        model, tok = load_model(spec, home)
    args = dpo_args(train, output_dir=work / method, seed=0, device="cpu")
    rows = preference_rows(pairs)
    if method == "trl":
        plain = [{k: v for k, v in r.items() if k != "weight"} for r in rows]
        from datasets import Dataset

        with quiet():
            trainer = DPOTrainer(model=model, ref_model=None, args=args,
                                 train_dataset=Dataset.from_list(plain), processing_class=tok,
                                 callbacks=[clock])
        trainer.remove_callback(PrinterCallback)
    else:
        scir = ScirConfig() if method.startswith("scir") else None
        if scir is not None:
            rows = scir_rows(pairs, rows, tok, train.max_length)
        trainer = make_trainer(model, tok, rows, args, callbacks=[clock], scir=scir)
    return trainer


def token_counts(trainer: Any) -> tuple[float, float, float]:
    """Mean tokens of a DPO sequence, of a judge sequence, and of a judge sequence once the
    two orders share their common prefix."""
    ds = trainer.train_dataset
    dpo = [len(r["prompt_ids"]) + len(r[c]) for r in ds
           for c in ("chosen_ids", "rejected_ids")]
    if "judge_12_ids" not in ds.column_names:
        return statistics.mean(dpo), 0.0, 0.0
    judge, shared = [], []
    for r in ds:
        a, b = r["judge_12_ids"], r["judge_21_ids"]
        common = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        common = min(common, len(a) - 1, len(b) - 1)
        judge += [len(a), len(b)]
        shared.append((len(a) + len(b) - common) / 2)
    return statistics.mean(dpo), statistics.mean(judge), statistics.mean(shared)


@contextlib.contextmanager
def plain_judge(method: str) -> Iterator[None]:
    """`scir-plain`: the judge's two orders in one plain forward, as before the prefix was
    shared (trainer.py calls it through the module, so patching the module swaps it)."""
    if method != "scir-plain":
        yield
        return
    shared = pairwise.verdict_logits_both_orders
    pairwise.verdict_logits_both_orders = pairwise.verdict_logits
    try:
        yield
    finally:
        pairwise.verdict_logits_both_orders = shared


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="bundled:tiny-random")
    ap.add_argument("--home", type=Path, default=None)
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--words", type=int, nargs=2, default=(40, 90))
    ap.add_argument("--methods", nargs="+", default=["trl", "cream", "scir-plain", "scir"],
                    choices=["trl", "cream", "scir-plain", "scir"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    home = args.home or Path(tempfile.mkdtemp(prefix="cream-bench-"))
    spec = resolve_model(args.model, home)
    train = TrainConfig(batch_size=args.batch_size, logging_steps=10**6)
    pairs = make_pairs(args.pairs, tuple(args.words))
    work = Path(tempfile.mkdtemp(prefix="cream-scir-step-"))
    clocks = {m: StepClock() for m in args.methods}
    trainers = {m: build(m, spec, home, pairs, train, work, clocks[m]) for m in args.methods}
    for trainer in trainers.values():
        trainer.args.max_steps = args.steps
    medians: dict[str, list[float]] = {m: [] for m in args.methods}
    for _ in range(args.rounds):
        for method, trainer in trainers.items():
            clocks[method].seconds.clear()
            with quiet(), plain_judge(method):
                trainer.train()
            medians[method].append(statistics.median(clocks[method].seconds[1:]
                                                     or clocks[method].seconds))
    step = {m: statistics.median(v) for m, v in medians.items()}
    base = step.get("trl") or next(iter(step.values()))
    print(f"model {args.model}: {args.pairs} pairs, batch {args.batch_size}, "
          f"{args.steps} steps x {args.rounds} rounds, torch threads {torch.get_num_threads()}")
    print(f"{'method':<10} {'s/step':>8} {'x trl':>6} {'dpo tok':>8} {'judge tok':>9} "
          f"{'run':>6}")
    for method, trainer in trainers.items():
        dpo, judge, shared = token_counts(trainer) if method != "trl" else (float("nan"),) * 3
        run = shared if method == "scir" else judge
        print(f"{method:<10} {step[method]:>8.3f} {step[method] / base:>6.2f} "
              f"{dpo:>8.1f} {judge:>9.1f} {run:>6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
