"""Stage 5, train: DPO from M_t on this iteration's pairs; the checkpoint becomes M_{t+1}.

- Labeled pairs (CREAM, SRLM, DPO): CREAM's consistency-weighted DPO loss, each pair weighted by
  its soft label C (1 for SRLM and DPO), with M_t as the reference.
- Unlabeled pairs (SCIR): SCIR's step decides each pair's label inside training; the stage also
  measures the agreement of SCIR's two reward models on the pairs, before (M_t) and after
  (M_{t+1}) training.

Writes `iter-<t>/model` (plain safetensors, merged if LoRA, with the tokenizer), which appears
only complete. How the step runs on TRL's `DPOTrainer` is `cream_engine/trainer.py`'s business.

With `[train] save_every` the trainer checkpoints into the scratch folder
`iter-<t>/.trainer/checkpoints` (removed once the model is written): a killed stage, started
again, resumes from the newest complete checkpoint of the same training (`checkpoints.py`) and
ends with the weights an uninterrupted run has. The store drops a restarted stage's metric
rows; those of the steps up to the checkpoint are written again from its log history, the
later ones as training logs them: each step once.

Heavy layer: torch, transformers (and TRL through trainer.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import set_seed

from cream_engine import checkpoints, losses
from cream_engine.config import ScirConfig, TrainConfig
from cream_engine.errors import TrainingError
from cream_engine.files import atomic_folder, read_jsonl, write_jsonl
from cream_engine.judges.pairwise import (
    judge_columns,
    judge_max_length,
    judge_probabilities,
    request_text,
    verdict_tokens,
)
from cream_engine.launch import run_ranks, slurm_node_count, uses_srun
from cream_engine.logprobs import sequence_logprobs
from cream_engine.methods import get_method
from cream_engine.models import load_model, load_tokenizer
from cream_engine.trainer import (
    REF_COLUMNS,
    WEIGHT,
    StreamMetrics,
    dpo_args,
    layer_classes,
    lora_config,
    make_trainer,
    metric_values,
    precision,
    quiet,
    rows_dataset,
    save_dtype,
)

# -- the stage ------------------------------------------------------------------------------


def run(ctx: Any, t: int) -> dict:
    """Train M_{t+1} from M_t on iteration t's pairs (SCIR: and measure its RMs' agreement)."""
    rows = read_jsonl(ctx.artifact(t, "pairs"))
    scir = ctx.config.scir if get_method(ctx.config.run.method).pairwise_judge else None
    if scir is not None:
        before = measure_agreement(ctx, t, rows, ctx.model_path(ctx.policy(t)), trained=False)
    ctx.release()  # the trainer loads its own copy of M_t
    out_dir = ctx.artifact(t, "train")
    processes = training_processes(ctx.config.train, ctx.device)
    with ctx.progress(t, "train", 1, "train") as bar:
        def on_progress(step: int, total: int) -> None:
            bar.set_total(total)
            bar.advance(step - bar.done)

        def on_metrics(step: int, values: dict[str, float]) -> None:
            ctx.store.log_metrics(ctx.run_id, t, "train", step, values)

        # TRL's scratch space and its checkpoints: kept across a kill, gone once trained
        work_dir = ctx.iter_dir(t) / ".trainer"
        summary = train_dpo(policy_path=ctx.model_path(ctx.policy(t)), pairs=rows, out_dir=out_dir,
                            train=ctx.config.train, seed=ctx.seed(t, "train"),
                            device=ctx.device, on_metrics=on_metrics, on_progress=on_progress,
                            work_dir=work_dir, scir=scir, processes=processes)
    shutil.rmtree(work_dir, ignore_errors=True)
    if scir is not None:
        after = measure_agreement(ctx, t, rows, str(out_dir), trained=True)
        ctx.release()
        # step 0 = before the first optimizer step, the last step = after training
        ctx.store.log_metrics(ctx.run_id, t, "train", 0, {"scir/agreement_before": before})
        ctx.store.log_metrics(ctx.run_id, t, "train", summary["steps"],
                              {"scir/agreement_after": after})
        summary.update(scir_agreement_before=before, scir_agreement_after=after)
    return summary


def training_processes(train: TrainConfig, device: str) -> int:
    """`[train] processes` for this job: `auto` is one per GPU the job was given (1 on CPU),
    on every node of a Slurm job that spans several (the ranks start with srun)."""
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    if uses_srun(train.launcher):
        gpus *= max(1, slurm_node_count())
    if train.processes == "auto":
        return max(1, gpus)
    if gpus and train.processes > gpus:
        raise TrainingError(f"[train] processes = {train.processes}: the job has {gpus} GPU(s)")
    return int(train.processes)


# -- data -----------------------------------------------------------------------------------


def preference_rows(pairs: list[dict]) -> list[dict]:
    """Our pairs as TRL's conversational preference rows, with C in the `weight` column."""
    if not pairs:
        raise TrainingError("no pairs to train on")
    rows = []
    for i, pair in enumerate(pairs):
        missing = [k for k in ("messages", "chosen", "rejected", WEIGHT) if k not in pair]
        if missing:
            raise TrainingError(f"pair {i}: missing {', '.join(missing)}")
        weight = pair[WEIGHT]
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                or not math.isfinite(weight):
            raise TrainingError(f"pair {i}: weight = {weight!r} is not a finite number")
        rows.append({
            "prompt": list(pair["messages"]),
            "chosen": [{"role": "assistant", "content": pair["chosen"]}],
            "rejected": [{"role": "assistant", "content": pair["rejected"]}],
            WEIGHT: float(weight),
        })
    # log π_{M_t} of both responses, measured by the score stage on TRL's own tokens: the
    # trainer then skips its reference pass (only when every pair brings them)
    if all(all(isinstance(p.get(k), (int, float)) for k in REF_COLUMNS) for p in pairs):
        for row, pair in zip(rows, pairs):
            row.update({k: float(pair[k]) for k in REF_COLUMNS})
    return rows


def scir_rows(pairs: list[dict], rows: list[dict], tokenizer: Any, max_length: int
              ) -> list[dict]:
    """`rows` plus the tokenised judge prompts of each pair, y1 first and y2 first."""
    return [{**row, **judge_columns(tokenizer, request_text(pair), pair["chosen"],
                                    pair["rejected"], judge_max_length(max_length))}
            for pair, row in zip(pairs, rows)]


# -- training -------------------------------------------------------------------------------


def train_dpo(*, policy_path: str, pairs: list[dict], out_dir: Path, train: TrainConfig,
              seed: int, device: str, on_metrics: Callable[[int, dict[str, float]], None],
              on_progress: Callable[[int, int], None] | None = None,
              work_dir: Path | None = None, scir: ScirConfig | None = None,
              processes: int = 1) -> dict:
    """Train M_{t+1} from M_t (`policy_path`, also the reference) on CREAM-weighted pairs and
    save it, merged if LoRA, with its tokenizer to `out_dir` (which appears only complete).
    With `scir`, the pairs are unlabeled (y1, y2) and SCIR's step trains them. With
    `processes` > 1 the trainer runs as that many ranks (`launch.run_ranks`), in this
    process's stead: DDP, FSDP or DeepSpeed by `train.strategy`.

    `pairs`: {"messages": prompt chat messages, "chosen": str, "rejected": str, "weight": C}
    (SCIR also reads "prompt", the request shown to the judge).
    A complete checkpoint of this same training in `work_dir` (a killed attempt's) is resumed
    from; `on_metrics` then first hears again the steps it had logged up to there.
    Returns {"steps", "seconds", "seconds_per_step", "final_loss", "pairs", "processes"};
    raises `TrainingError` on a NaN/inf loss (nothing is saved then)."""
    out_dir = Path(out_dir)
    rows = preference_rows(pairs)
    if scir is None and any(p.get("labeled") is False for p in pairs):
        raise TrainingError("the pairs are unlabeled (method scir): they need SCIR's training "
                            "step, not a fixed chosen/rejected")
    with contextlib.ExitStack() as stack:
        if work_dir is None:
            work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cream-train-")))
        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        if scir is not None:  # tokenised here once, so every rank reads the same columns
            rows = scir_rows(pairs, rows, load_tokenizer(policy_path, work_dir),
                             train.max_length)
        resume = resume_point(work_dir, rows=rows, train=train, seed=seed, device=device,
                              policy_path=policy_path, scir=scir, processes=processes)
        if processes > 1:
            return _launch(policy_path=policy_path, rows=rows, out_dir=out_dir, train=train,
                           seed=seed, device=device, work_dir=work_dir, on_metrics=on_metrics,
                           on_progress=on_progress, scir=scir, processes=processes,
                           resume=resume)
        trainer, callback, seconds = _run_training(
            policy_path=policy_path, rows=rows, train=train, seed=seed, device=device,
            work_dir=work_dir, on_metrics=on_metrics, on_progress=on_progress, scir=scir,
            resume=resume)
        save_trained(trainer, out_dir, lora=train.lora, dtype=save_dtype(train, device))
        return _summary(trainer, callback, seconds, processes=1)


def train_ranked(*, policy_path: str, rows_file: Path, out_dir: Path, train: TrainConfig,
                 seed: int, device: str, work_dir: Path, scir: ScirConfig | None,
                 on_metrics: Callable[[int, dict[str, float]], None],
                 on_progress: Callable[[int, int], None] | None,
                 resume: Path | None = None) -> dict:
    """One rank's part of `train_dpo` (`python -m cream_engine.train_rank`): the same trainer
    on the rows file (from the checkpoint the engine chose, if any), every rank joining in the
    save, rank 0 writing it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    trainer, callback, seconds = _run_training(
        policy_path=policy_path, rows=rows_file, train=train, seed=seed, device=device,
        work_dir=work_dir, on_metrics=on_metrics, on_progress=on_progress, scir=scir,
        processes=world, resume=resume)
    save_trained(trainer, out_dir, lora=train.lora, dtype=save_dtype(train, device))
    return _summary(trainer, callback, seconds, processes=world)


def resume_point(work_dir: Path, *, rows: list[dict], train: TrainConfig, seed: int,
                 device: str, policy_path: str, scir: ScirConfig | None, processes: int
                 ) -> Path | None:
    """The newest complete checkpoint a killed attempt of this same training left in
    `work_dir` (anything else there is cleared away), or None: start from M_t."""
    key = checkpoints.training_key(rows, dataclasses.asdict(train), seed, device, policy_path,
                                   dataclasses.asdict(scir) if scir else None, processes)
    found = checkpoints.resume_point(work_dir / checkpoints.FOLDER, key)
    if found is not None:
        step, total, _ = checkpoints.logged_rows(found)
        print(f"train: resuming from {found.name} (step {step} of {total})", file=sys.stderr,
              flush=True)
    return found


def _summary(trainer: Any, callback: StreamMetrics, seconds: float, *, processes: int) -> dict:
    steps = trainer.state.global_step
    trained = steps - callback.resumed_from  # (in this attempt)
    return {"steps": steps, "seconds": seconds,
            "seconds_per_step": seconds / trained if trained else 0.0,
            "final_loss": callback.last_loss, "pairs": len(trainer.train_dataset),
            "processes": processes}


def _launch(*, policy_path: str, rows: list[dict], out_dir: Path,
            train: TrainConfig, seed: int, device: str, work_dir: Path,
            on_metrics: Callable[[int, dict[str, float]], None],
            on_progress: Callable[[int, int], None] | None, scir: ScirConfig | None,
            processes: int, resume: Path | None) -> dict:
    """Write the rows and the spec to `work_dir`, run the ranks, record what rank 0 says."""
    # a killed attempt's dataset caches are not trusted (its checkpoints are: resume_point)
    shutil.rmtree(work_dir / "datasets", ignore_errors=True)
    rows_file = work_dir / "pairs.jsonl"
    write_jsonl(rows_file, rows)
    spec = {"policy_path": policy_path, "rows_file": str(rows_file), "out_dir": str(out_dir),
            "train": dataclasses.asdict(train), "seed": seed, "device": device,
            "work_dir": str(work_dir), "scir": dataclasses.asdict(scir) if scir else None,
            "resume": str(resume) if resume else None}
    spec_file = work_dir / "spec.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    summary: dict = {}

    def on_event(event: dict) -> None:
        if "metrics" in event:
            on_metrics(int(event["metrics"][0]), event["metrics"][1])
        elif "progress" in event and on_progress is not None:
            on_progress(*event["progress"])
        elif "summary" in event:
            summary.update(event["summary"])

    run_ranks(processes, [str(spec_file)], work_dir, on_event, cpu=(device == "cpu"),
              launcher=train.launcher)
    if not summary or not out_dir.is_dir():
        raise TrainingError(f"{processes} training processes ended without a checkpoint")
    return summary


def _run_training(*, policy_path: str, rows: list[dict] | Path, train: TrainConfig,
                  seed: int, device: str, work_dir: Path,
                  on_metrics: Callable[[int, dict[str, float]], None],
                  on_progress: Callable[[int, int], None] | None,
                  scir: ScirConfig | None, processes: int = 1, resume: Path | None = None
                  ) -> tuple[Any, StreamMetrics, float]:
    # seeded before anything random happens: the LoRA A matrices are drawn in the trainer's
    # __init__, before Trainer seeds itself
    set_seed(seed)
    with quiet():  # (ranks: Trainer places the model on its own device)
        model, tokenizer = load_model(policy_path, home=work_dir,
                                      dtype=precision(train, device)[0],
                                      device=device if processes == 1 else None)
    classes = layer_classes(model)
    if processes > 1 and train.strategy == "fsdp" and not classes:
        raise TrainingError(f"{type(model).__name__} names no decoder layer for FSDP to wrap "
                            "(_no_split_modules): use [train] strategy = 'ddp'")
    args = dpo_args(train, output_dir=work_dir / checkpoints.FOLDER, seed=seed, device=device,
                    processes=processes, layer_classes=classes)
    use_cache = model.config.use_cache  # Trainer sets it to args.use_cache (False)
    callback = StreamMetrics(on_metrics, on_progress)
    if resume is not None:  # the steps up to the checkpoint, streamed once more
        step, total, logged = checkpoints.logged_rows(resume)
        callback.resumed_from = step
        for row in logged:
            if (values := metric_values(row)) is not None:
                on_metrics(int(row["step"]), values)
                callback.last_loss = values["loss"]
        if on_progress is not None:
            on_progress(step, total)
    with quiet():
        dataset = rows_dataset(rows, cache_dir=work_dir / "datasets")
    trainer = make_trainer(model, tokenizer, dataset, args, callbacks=[callback],
                           peft_config=lora_config(train) if train.lora else None, scir=scir)
    callback.trainer = trainer
    started = time.perf_counter()
    # the optimizer, scheduler, RNG states and the place in the data come back with it; the
    # reference log-probs were computed again from M_t in make_trainer, as the first time
    with quiet():
        trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    seconds = time.perf_counter() - started
    if callback.error:
        raise TrainingError(callback.error)
    trainer.model.config.use_cache = use_cache  # the saved model generates with a KV cache
    return trainer, callback, seconds


def save_trained(trainer: Any, out_dir: Path, *, lora: bool, dtype: torch.dtype | None) -> None:
    """The plain (merged) model and the tokenizer, as one folder that appears complete,
    written once (by rank 0), in `dtype` when given. Sharded weights (FSDP, ZeRO-3) are
    gathered first, a collective every rank joins."""
    acc = trainer.accelerator
    sharded = trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled
    state = acc.get_state_dict(trainer.model) if sharded else None
    if acc.is_main_process:
        model = acc.unwrap_model(trainer.model)
        if lora:
            model = model.merge_and_unload()
        if state is None and dtype is not None:
            model = model.to(dtype)
        elif state is not None and dtype is not None:
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        with quiet(), atomic_folder(out_dir) as folder:
            model.save_pretrained(folder, safe_serialization=True, state_dict=state)
            trainer.processing_class.save_pretrained(folder)
    acc.wait_for_everyone()


# -- SCIR: agreement of the two reward models -----------------------------------------------


def measure_agreement(ctx: Any, t: int, pairs: list[dict], model_path: str, *,
                      trained: bool) -> float | None:
    """Fraction of the pairs on which the implicit RM and the pairwise judge of one model prefer
    the same response (no gradients; the functions of the training step, margin 0).

    The implicit RM here is measured against the fixed rewarding reference M_0, as CREAM's
    rankings are: inside the step π_ref = M_t, so M_t's own implicit reward against it is
    identically 0 and "before" would be undefined. So:
    - before (M_t, `trained=False`): r_t = log π_t − log π_0 from the score stage (for t = 0,
      where M_t is M_0, the length-normalised log-likelihood, as everywhere in the engine);
    - after (M_{t+1}, `trained=True`): log π_{t+1} − log π_0 (one no-grad pass; log π_0 from
      the score stage). At t = 0 this is exactly the P_I the step trained.
    The judge P_G is read from the same model in both cases."""
    model, tokenizer = ctx.load(model_path)
    cfg = ctx.config
    label = "agree after" if trained else "agree before"
    with ctx.progress(t, "train", len(pairs), f"{label} P_G") as bar:
        p_g = judge_probabilities(
            model, tokenizer, [(request_text(p), p["chosen"], p["rejected"]) for p in pairs],
            verdict_ids=verdict_tokens(tokenizer),
            max_length=judge_max_length(cfg.train.max_length),
            batch_size=cfg.consistency.batch_size, device=ctx.device, progress=bar.advance)
    if trained:
        items = [(p["messages"], y) for p in pairs for y in (p["chosen"], p["rejected"])]
        with ctx.progress(t, "train", len(items), f"{label} P_I") as bar:
            seq = sequence_logprobs(model, tokenizer, items,
                                    batch_size=cfg.consistency.batch_size,
                                    max_length=cfg.train.max_length, device=ctx.device,
                                    progress=bar.advance)
        scores = {r["prompt_id"]: r for r in read_jsonl(ctx.artifact(t, "score"))}
        margins: list[float | None] = []
        for k, p in enumerate(pairs):
            lp = scores[p["prompt_id"]]["logp"]
            base = lp.get("reference") or lp["current"]  # log π_0 (M_t is M_0 when t = 0)
            margins.append(losses.log_ratio_margin(seq[2 * k].logp, seq[2 * k + 1].logp,
                                                   base[p["chosen_index"]],
                                                   base[p["rejected_index"]]))
    else:  # the pair's implicit rewards are log-ratios already: h is their difference
        implicit = [p.get("other_rewards", {}).get("implicit") or [None, None] for p in pairs]
        margins = [None if None in r else r[0] - r[1] for r in implicit]
    keep = [k for k, m in enumerate(margins) if m is not None]
    if not keep:
        return None
    p_i = losses.implicit_preference(torch.tensor([margins[k] for k in keep]), cfg.train.beta)
    agree, _ = losses.scir_selection(p_i, torch.tensor([p_g[k] for k in keep]), 0.0)
    return float(agree.float().mean())
