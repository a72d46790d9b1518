"""Stage 5, train: DPO from M_t on this iteration's pairs; the checkpoint becomes M_{t+1}.

- Labeled pairs (CREAM, SRLM, DPO): CREAM's consistency-weighted DPO loss, each pair weighted by
  its soft label C (1 for SRLM and DPO), with M_t as the reference.
- Unlabeled pairs (SCIR): SCIR's step decides each pair's label inside training; the stage also
  measures the agreement of SCIR's two reward models on the pairs, before (M_t) and after
  (M_{t+1}) training.

Writes `iter-<t>/model` (plain safetensors, merged if LoRA, with the tokenizer), which appears
only complete. How the step runs on TRL's `DPOTrainer` is `cream_engine/trainer.py`'s business.

Heavy layer: torch, transformers (and TRL through trainer.py).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import set_seed

from cream_engine import losses
from cream_engine.config import ScirConfig, TrainConfig
from cream_engine.errors import TrainingError
from cream_engine.files import atomic_folder, read_jsonl
from cream_engine.judges.pairwise import (
    judge_columns,
    judge_max_length,
    judge_probabilities,
    request_text,
    verdict_tokens,
)
from cream_engine.logprobs import sequence_logprobs
from cream_engine.methods import get_method
from cream_engine.models import load_model
from cream_engine.trainer import (
    WEIGHT,
    StreamMetrics,
    dpo_args,
    lora_config,
    make_trainer,
    precision,
    quiet,
)

# -- the stage ------------------------------------------------------------------------------


def run(ctx: Any, t: int) -> dict:
    """Train M_{t+1} from M_t on iteration t's pairs (SCIR: and measure its RMs' agreement)."""
    rows = read_jsonl(ctx.artifact(t, "pairs"))
    scir = ctx.config.scir if get_method(ctx.config.run.method).pairwise_judge else None
    if scir is not None:
        before = measure_agreement(ctx, t, rows, ctx.model_path(t), trained=False)
    ctx.release()  # the trainer loads its own copy of M_t
    out_dir = ctx.artifact(t, "train")
    with ctx.progress(t, "train", 1, "train") as bar:
        def on_progress(step: int, total: int) -> None:
            bar.set_total(total)
            bar.advance(step - bar.done)

        def on_metrics(step: int, values: dict[str, float]) -> None:
            ctx.store.log_metrics(ctx.run_id, t, "train", step, values)

        work_dir = ctx.iter_dir(t) / ".trainer"  # TRL's scratch space; gone once trained
        summary = train_dpo(policy_path=ctx.model_path(t), pairs=rows, out_dir=out_dir,
                            train=ctx.config.train, seed=ctx.seed(t, "train"),
                            device=ctx.device, on_metrics=on_metrics, on_progress=on_progress,
                            work_dir=work_dir, scir=scir)
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
              work_dir: Path | None = None, scir: ScirConfig | None = None) -> dict:
    """Train M_{t+1} from M_t (`policy_path`, also the reference) on CREAM-weighted pairs and
    save it, merged if LoRA, with its tokenizer to `out_dir` (which appears only complete).
    With `scir`, the pairs are unlabeled (y1, y2) and SCIR's step trains them.

    `pairs`: {"messages": prompt chat messages, "chosen": str, "rejected": str, "weight": C}
    (SCIR also reads "prompt", the request shown to the judge).
    Returns {"steps", "seconds", "seconds_per_step", "final_loss", "pairs"}; raises
    `TrainingError` on a NaN/inf loss (nothing is saved then)."""
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
        trainer, callback, seconds = _run_training(
            policy_path=policy_path, pairs=pairs, rows=rows, train=train, seed=seed,
            device=device, work_dir=work_dir, on_metrics=on_metrics, on_progress=on_progress,
            scir=scir)
        steps = trainer.state.global_step
        _save(trainer, out_dir, lora=train.lora)
    return {"steps": steps, "seconds": seconds,
            "seconds_per_step": seconds / steps if steps else 0.0,
            "final_loss": callback.last_loss, "pairs": len(trainer.train_dataset)}


def _run_training(*, policy_path: str, pairs: list[dict], rows: list[dict],
                  train: TrainConfig, seed: int, device: str, work_dir: Path,
                  on_metrics: Callable[[int, dict[str, float]], None],
                  on_progress: Callable[[int, int], None] | None,
                  scir: ScirConfig | None) -> tuple[Any, StreamMetrics, float]:
    # seeded before anything random happens: the LoRA A matrices are drawn in the trainer's
    # __init__, before Trainer seeds itself
    set_seed(seed)
    with quiet():
        model, tokenizer = load_model(policy_path, home=work_dir,
                                      dtype=precision(train, device)[0], device=device)
    if scir is not None:
        rows = scir_rows(pairs, rows, tokenizer, train.max_length)
    args = dpo_args(train, output_dir=work_dir / "trainer", seed=seed, device=device)
    use_cache = model.config.use_cache  # Trainer sets it to args.use_cache (False)
    callback = StreamMetrics(on_metrics, on_progress)
    trainer = make_trainer(model, tokenizer, rows, args, callbacks=[callback],
                           peft_config=lora_config(train) if train.lora else None, scir=scir)
    callback.trainer = trainer
    started = time.perf_counter()
    with quiet():
        trainer.train()
    seconds = time.perf_counter() - started
    if callback.error:
        raise TrainingError(callback.error)
    trainer.model.config.use_cache = use_cache  # the saved model generates with a KV cache
    return trainer, callback, seconds


def _save(trainer: Any, out_dir: Path, *, lora: bool) -> None:
    """The plain (merged) model and the tokenizer, as one folder that appears complete."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if lora:
        model = model.merge_and_unload()
    with quiet(), atomic_folder(out_dir) as folder:
        model.save_pretrained(folder, safe_serialization=True)
        trainer.processing_class.save_pretrained(folder)


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
