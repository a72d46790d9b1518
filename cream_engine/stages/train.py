"""Training M_t -> M_{t+1}: DPO with CREAM's consistency-weighted loss, on TRL's `DPOTrainer`.

Every TRL-specific line of the project lives in this module (TRL is pinned: its DPO internals
move between releases). What we take from TRL 1.16 and why:
1. Tokenising (chat template, prompt/completion split), collating, the reference log-probs
   computed once before training (`precompute_ref_log_probs`: π_ref = M_t, so the reference
   model is never kept in memory), and the DPO metrics (rewards/*, logps/*).
2. The per-pair loss, which TRL keeps inside the private `_compute_loss` and offers no per-pair
   weight for. We let TRL run it (one policy forward, all its metrics), catch that forward's
   output with a forward hook, rebuild h with TRL's own operations and return
   mean_i cream_loss(h_i, β, C_i). With C = 1 that is TRL's sigmoid loss, bit for bit.
3. C travels as a `weight` column: our collator adds it to the batch, the signature columns keep
   it through `remove_unused_columns`, and it is removed before any model call (TRL passes
   every other batch key to `model(**kwargs)`, and Llama silently accepts an unknown `weight=`).
4. SCIR (`ScirDPOTrainer`): the pairs are unlabeled (chosen/rejected = y1/y2). The judge
   prompts of both presentation orders travel as two more columns (tokenised before the trainer
   is built), the collator pads them, and the step runs one more policy forward on them, with
   gradients, for P_G; the loss is losses.scir_loss(h, β, P_G). TRL's rewards/* metrics then
   compare y1 with y2 (not a chosen with a rejected response).

Heavy layer: torch, datasets, transformers, trl and peft are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cream_engine.config import ScirConfig, TrainConfig

WEIGHT = "weight"
JUDGE_COLUMNS = ("judge_12_ids", "judge_21_ids")  # SCIR: judge prompts, y1 first / y2 first
JUDGE_KEYS = ("judge_input_ids", "judge_attention_mask", "judge_last")  # their batch tensors
EXTRA_KEYS = (WEIGHT, *JUDGE_KEYS)  # batch keys that never reach a model call
METRIC_NAMES = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins",
                "rewards/accuracies", "logps/chosen", "logps/rejected", "learning_rate",
                "grad_norm", "consistency")
# SCIR, per logging step: agreement of the two RMs (margin 0), fraction of pairs selected for
# the DPO term, the consistency loss and the DPO term itself (mean over the selected pairs)
SCIR_METRIC_NAMES = ("scir/agreement", "scir/selected", "scir/l_con", "scir/l_dpo")


class TrainingError(RuntimeError):
    """Training that cannot go on (a NaN loss, nothing to train on): one line."""


# -- data ---------------------------------------------------------------------------------


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
    from cream_engine.judges.pairwise import judge_columns, judge_max_length, request_text

    return [{**row, **judge_columns(tokenizer, request_text(pair), pair["chosen"],
                                    pair["rejected"], judge_max_length(max_length))}
            for pair, row in zip(pairs, rows)]


def precision(train: TrainConfig, device: str) -> tuple[str, bool]:
    """(dtype the weights are loaded in, bf16 mixed precision on or off).

    `auto`: on a GPU, fp32 master weights with bf16 autocast, as the CREAM authors trained
    (pure bf16 weights lose AdamW updates of ~1e-6 below bf16's precision: measured, 4 steps at
    lr 5e-6 changed 7.6% of bf16 weights against 100% in fp32); fp32 on the CPU. An explicit
    dtype loads the weights in that dtype, without autocast."""
    if train.dtype == "auto":
        return "float32", device.startswith("cuda")
    return train.dtype, False


# -- the TRL pieces -----------------------------------------------------------------------


def dpo_args(train: TrainConfig, *, output_dir: Path, seed: int, device: str,
             max_steps: int = -1) -> Any:
    """The `DPOConfig` of a training run: every setting explicit (TRL's defaults are made for
    multi-GPU bf16 runs: bf16, gradient checkpointing, logging every 10 steps)."""
    from trl import DPOConfig

    return DPOConfig(
        output_dir=str(output_dir), seed=seed, use_cpu=(device == "cpu"),
        bf16=precision(train, device)[1], fp16=False, activation_checkpointing=False,  # the new name of
        # gradient_checkpointing, which TRL turns on by default
        report_to="none", save_strategy="no", disable_tqdm=True,
        # keep a NaN loss visible in the logs instead of replacing it by the running mean
        logging_nan_inf_filter=False,
        learning_rate=train.learning_rate, num_train_epochs=train.epochs, max_steps=max_steps,
        per_device_train_batch_size=train.batch_size,
        gradient_accumulation_steps=train.gradient_accumulation,
        # transformers 5 reads a warmup_steps below 1 as a ratio of the steps (1.0 would be 1 step)
        lr_scheduler_type="cosine", warmup_steps=min(train.warmup_ratio, 1 - 1e-9),
        weight_decay=train.weight_decay, logging_steps=train.logging_steps,
        max_length=train.max_length, beta=train.beta, loss_type=["sigmoid"],
        precompute_ref_log_probs=True, dataloader_num_workers=0,
    )


def lora_config(train: TrainConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=train.lora_rank, lora_alpha=train.lora_alpha, lora_dropout=0.0,
                      target_modules="all-linear", task_type="CAUSAL_LM")


@functools.cache
def trainer_classes() -> tuple[type, type, type]:
    """(WeightedPreferenceCollator, CreamDPOTrainer, ScirDPOTrainer), defined on first use so
    that importing this module stays light."""
    import torch
    from trl import DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    from cream_engine import losses
    from cream_engine.judges import pairwise

    class WeightedPreferenceCollator(DataCollatorForPreference):
        """TRL's collator plus `weight`: one C per pair, shape (B,) (the rows are 2B); and, for
        SCIR, the judge prompts: `judge_input_ids` (2B, L), the B prompts with y1 first then
        the B with y2 first, right-padded, their attention mask and last-token index."""

        def torch_call(self, examples: list[dict]) -> dict:
            batch = super().torch_call(examples)
            if WEIGHT in examples[0]:
                batch[WEIGHT] = torch.tensor([float(ex[WEIGHT]) for ex in examples],
                                             dtype=torch.float32)
            if JUDGE_COLUMNS[0] in examples[0]:
                judge = pairwise.collate_judge([ex[JUDGE_COLUMNS[0]] for ex in examples]
                                               + [ex[JUDGE_COLUMNS[1]] for ex in examples],
                                               self.pad_token_id)
                batch.update({f"judge_{k}": v for k, v in judge.items()})
            return batch

    class CreamDPOTrainer(DPOTrainer):
        """DPOTrainer whose per-pair loss is cream_loss(h, β, C) (C from the `weight` column).

        Only what the override reproduces is accepted: the sigmoid loss on reverse-KL scores,
        no WPO/LD/MoE terms, and a precomputed reference."""

        extra_columns: tuple[str, ...] = (WEIGHT,)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            a = self.args
            unsupported = {
                "loss_type": list(a.loss_type) != ["sigmoid"],
                "loss_weights": a.loss_weights not in (None, [1.0]),
                "use_weighting": bool(a.use_weighting),
                "ld_alpha": a.ld_alpha is not None,
                "f_divergence_type": a.f_divergence_type != "reverse_kl",
                "precompute_ref_log_probs": not self.precompute_ref_logps,
                "sync_ref_model": bool(a.sync_ref_model),
                "router_aux_loss": bool(self.aux_loss_enabled),
            }
            bad = [k for k, v in unsupported.items() if v]
            if bad:
                raise ValueError(f"{type(self).__name__} supports only the sigmoid loss with a "
                                 "precomputed reference; unsupported: " + ", ".join(bad))
            self.nonfinite_loss: tuple[int, float] | None = None  # (step, loss), first seen

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            missing = [c for c in self.extra_columns if c not in self._signature_columns]
            if missing:
                self._signature_columns = [*self._signature_columns, *missing]

        def _precompute_ref_logps(self, dataset: Any, name: str, batch_size: int) -> Any:
            if len(dataset) == 0:  # TRL drops the pairs whose prompt fills max_length
                raise TrainingError(f"no pair fits max_length = {self.args.max_length} tokens "
                                    "(every prompt is as long or longer)")
            return super()._precompute_ref_logps(dataset, name, batch_size)

        def compute_ref_log_probs(self, model: Any, inputs: dict) -> Any:
            return super().compute_ref_log_probs(
                model, {k: v for k, v in inputs.items() if k not in EXTRA_KEYS})

        def _policy_margin(self, model: Any, inputs: dict, return_outputs: bool
                           ) -> tuple[Any, Any]:
            """TRL's own step (one policy forward, all its metrics) and h per pair, float32."""
            inputs = {k: v for k, v in inputs.items() if k not in EXTRA_KEYS}
            # note: in TRL 1.16 the first forward of `model` inside `_compute_loss` is the
            # policy forward (dpo_trainer.py:1299); recheck on any TRL upgrade
            captured: list[Any] = []
            handle = model.register_forward_hook(lambda _m, _a, out: captured.append(out))
            try:
                result = super()._compute_loss(model, inputs, return_outputs)
            finally:
                handle.remove()
            # h exactly as TRL builds it (dpo_trainer.py:1299-1316, 1350-1351, 1383)
            seq_len = inputs["completion_mask"].size(1) - 1
            logps = captured[0].log_probs[:, -seq_len:].sum(dim=1)
            chosen_logps, rejected_logps = logps.chunk(2, dim=0)
            h = ((chosen_logps - inputs["ref_chosen_logps"])
                 - (rejected_logps - inputs["ref_rejected_logps"]))
            return result, h.float()  # C = 0.9 in bf16 would be 0.8984

        def _finish(self, loss: Any, result: Any, return_outputs: bool) -> Any:
            if self.model.training and self.nonfinite_loss is None:
                value = loss.detach().item()
                if not math.isfinite(value):
                    self.nonfinite_loss = (self.state.global_step + 1, value)
            return (loss, result[1]) if return_outputs else loss

        def _metric(self, name: str, value: Any) -> None:
            mode = "train" if self.model.training else "eval"
            self._metrics[mode][name].append(self.accelerator.gather(value).float().mean().item())

        def _compute_loss(self, model: Any, inputs: dict, return_outputs: bool) -> Any:
            if WEIGHT not in inputs:
                raise ValueError("CreamDPOTrainer: the batch has no 'weight' column")
            result, h = self._policy_margin(model, inputs, return_outputs)
            c = inputs[WEIGHT].to(h.device, torch.float32)
            loss = losses.cream_loss(h, self.beta, c).mean()
            self._metric("consistency", c)
            return self._finish(loss, result, return_outputs)

    class ScirDPOTrainer(CreamDPOTrainer):
        """SCIR's step on unlabeled pairs (y1, y2): P_I = σ(β·h) from the policy forward TRL
        runs, P_G from a second policy forward on the judge prompts of both orders (with
        gradients), and L = mean_selected L_DPO + α·mean_all L_con (losses.scir_loss)."""

        extra_columns = (WEIGHT, *JUDGE_COLUMNS)

        def __init__(self, *args: Any, scir: Any, verdict_ids: tuple[int, int],
                     **kwargs: Any) -> None:
            self.scir = scir
            self.verdict_ids = verdict_ids
            super().__init__(*args, **kwargs)

        def _compute_loss(self, model: Any, inputs: dict, return_outputs: bool) -> Any:
            if JUDGE_KEYS[0] not in inputs:
                raise ValueError("ScirDPOTrainer: the batch has no judge prompts")
            result, h = self._policy_margin(model, inputs, return_outputs)
            logits = pairwise.verdict_logits(model, inputs["judge_input_ids"],
                                             inputs["judge_attention_mask"],
                                             inputs["judge_last"], self.verdict_ids)
            p_g = pairwise.pairwise_probability(*logits.chunk(2, dim=0))
            out = losses.scir_loss(h, self.beta, p_g, alpha=self.scir.alpha,
                                   lambda_h=self.scir.lambda_h, margin=self.scir.margin)
            self._metric("scir/agreement", out.agree)
            self._metric("scir/selected", out.selected)
            self._metric("scir/l_con", out.con.detach())
            self._metric("scir/l_dpo", out.dpo.detach())
            return self._finish(out.loss, result, return_outputs)

    return WeightedPreferenceCollator, CreamDPOTrainer, ScirDPOTrainer


def make_trainer(model: Any, tokenizer: Any, rows: list[dict], args: Any, *,
                 peft_config: Any = None, callbacks: list | None = None,
                 scir: ScirConfig | None = None) -> Any:
    """A `CreamDPOTrainer` over conversational rows (tokenised and the reference log-probs
    precomputed here, quietly); with `scir`, a `ScirDPOTrainer` (rows from `scir_rows`)."""
    from datasets import Dataset
    from transformers import PrinterCallback

    from cream_engine.judges.pairwise import verdict_tokens

    collator_cls, cream_cls, scir_cls = trainer_classes()
    collator = collator_cls(pad_token_id=tokenizer.pad_token_id, max_length=args.max_length,
                            truncation_mode=args.truncation_mode)
    extra: dict[str, Any] = {}
    trainer_cls = cream_cls
    if scir is not None:
        if not rows or JUDGE_COLUMNS[0] not in rows[0]:
            raise TrainingError("SCIR training needs the judge prompts (see scir_rows)")
        trainer_cls, extra = scir_cls, {"scir": scir, "verdict_ids": verdict_tokens(tokenizer)}
    with quiet():
        trainer = trainer_cls(model=model, ref_model=None, args=args,
                              train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                              data_collator=collator, peft_config=peft_config,
                              callbacks=callbacks or [], **extra)
    trainer.remove_callback(PrinterCallback)  # disable_tqdm=True would print every log dict
    return trainer


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No progress bars (datasets.map, TRL's reference pass, which reads TQDM_DISABLE,
    loading and saving weights) and no FutureWarning TRL 1.16 triggers in transformers 5."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets_bars, hf_bars = datasets.is_progress_bar_enabled(), hf_logging.is_progress_bar_enabled()
    old = os.environ.get("TQDM_DISABLE")
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    os.environ["TQDM_DISABLE"] = "1"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated",
                                    category=FutureWarning)
            yield
    finally:
        if old is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = old
        if datasets_bars:
            datasets.enable_progress_bars()
        if hf_bars:
            hf_logging.enable_progress_bar()


def metrics_callback(on_metrics: Callable[[int, dict[str, float]], None],
                     on_progress: Callable[[int, int], None] | None) -> Any:
    """A TrainerCallback that streams the logged metrics and progress, and stops training at
    the first non-finite loss (recorded in `.error`). Set its `.trainer` before training: the
    trainer records the loss of every micro-batch, callbacks are not given it."""
    from transformers import TrainerCallback

    class StreamMetrics(TrainerCallback):
        def __init__(self) -> None:
            self.trainer: Any = None
            self.error: str | None = None
            self.last_loss: float | None = None

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            bad = self.trainer.nonfinite_loss
            if bad is not None and self.error is None:
                step, value = bad
                self.error = f"NaN loss at step {step}" + ("" if math.isnan(value)
                                                           else f" (loss = {value})")
                control.should_training_stop = True
                return
            if on_progress is not None:
                on_progress(state.global_step, state.max_steps)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None,
                   **kw: Any) -> None:
            # skip the final summary (train_runtime, train_loss, ...) and anything after a NaN
            if self.error is not None or not logs or "loss" not in logs:
                return
            values = {k: float(logs[k]) for k in METRIC_NAMES + SCIR_METRIC_NAMES
                      if k in logs}
            self.last_loss = values["loss"]
            on_metrics(state.global_step, values)

    return StreamMetrics()


# -- the stage ----------------------------------------------------------------------------


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
                  scir: ScirConfig | None) -> tuple[Any, Any, float]:
    from transformers import set_seed

    from cream_engine.models import load_model

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
    callback = metrics_callback(on_metrics, on_progress)
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
    """The plain (merged) model and the tokenizer, written beside `out_dir` and renamed."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if lora:
        model = model.merge_and_unload()
    tmp = out_dir.parent / f".{out_dir.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with quiet():
        model.save_pretrained(tmp, safe_serialization=True)
        trainer.processing_class.save_pretrained(tmp)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
