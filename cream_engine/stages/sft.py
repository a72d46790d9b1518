"""Stage `sft` (iteration 0, before the loop, with `[sft] enabled`): the seed SFT, M0 -> M1.

Both papers fine-tune the starting model on human-written seed data first and self-reward
from the result (CREAM: Open Assistant seed data, 5 epochs, lr 5e-6, assistant tokens only).
Without it the first iteration's policy is M0 itself: its implicit reward against M0 is
identically zero, so CREAM's first round has no consistency to measure. With it, iteration 0
samples from M1, ranks with r = log π_1 − log π_0 against M0's length-normalised
likelihood, and M0 stays the fixed rewarding reference (ALGORITHMS.md).

Writes M1 to `iter-0/sft-model/` (one folder that appears complete) and the SFT's loss curve
as the metrics of stage `sft`; a restarted stage trains again from M0 (its metrics replaced).
Runs that would train the same M1 share it through the home's cache (sftcache.py): the one
that trained it holds the loss curve, the others say `cache: hit`.
"""

from __future__ import annotations

import shutil
from typing import Any

from cream_engine import paths
from cream_engine.seeds import read_seed_file
from cream_engine.sft_trainer import train_sft
from cream_engine.stages import sftcache
from cream_engine.stages.train import save_trained
from cream_engine.trainer import save_dtype


def run(ctx: Any, t: int) -> dict:
    """Train M1 from M0 on the seed data, or copy it from the home's cache when another run
    trained the same M1 (sftcache.py)."""
    cfg = ctx.config
    examples = read_seed_file(cfg.sft.data, cfg.sft.max_examples)
    seed = ctx.seed(0, paths.SFT)
    settings = sftcache.sft_settings(ctx, seed)
    if settings is None:
        return {**train(ctx, examples, seed), "cache": "off (M0 is not a local folder)"}
    out_dir = ctx.artifact(0, paths.SFT)
    with sftcache.shared(ctx.home, settings):  # (a run training it now: wait, then copy)
        info = sftcache.restore(ctx.home, settings, out_dir)
        if info is not None:
            return info
        info = train(ctx, examples, seed)
        note = sftcache.save(ctx.home, settings, out_dir, info)
    return {**info, "cache": note or "stored"}


def train(ctx: Any, examples: list[list[dict]], seed: int) -> dict:
    cfg = ctx.config
    ctx.release()  # the trainer loads its own copy of M0
    out_dir = ctx.artifact(0, paths.SFT)
    work_dir = ctx.iter_dir(0) / ".sft-trainer"  # TRL's scratch space; gone once trained
    with ctx.progress(0, paths.SFT, 1, "seed SFT") as bar:
        def on_progress(step: int, total: int) -> None:
            bar.set_total(total)
            bar.advance(step - bar.done)

        def on_metrics(step: int, values: dict[str, float]) -> None:
            ctx.store.log_metrics(ctx.run_id, 0, paths.SFT, step, values)

        trainer, summary = train_sft(
            model_path=ctx.model_path(0), examples=examples, sft=cfg.sft, train=cfg.train,
            seed=seed, device=ctx.device, work_dir=work_dir,
            on_metrics=on_metrics, on_progress=on_progress)
        save_trained(trainer, out_dir, lora=cfg.train.lora,
                     dtype=save_dtype(cfg.train, ctx.device))
    del trainer
    shutil.rmtree(work_dir, ignore_errors=True)
    return {**summary, "data": cfg.sft.data, "model": "M1"}
