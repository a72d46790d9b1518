"""CREAM's and SCIR's training step on TRL's `DPOTrainer`: every TRL-specific line of the project.

TRL is pinned (its DPO internals move between releases); only `stages/train.py` imports this
module. What we take from TRL 1.16 and why:
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

Heavy layer: torch, datasets, transformers, trl, peft.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import datasets
import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import PrinterCallback, TrainerCallback
from transformers.utils import logging as hf_logging
from trl import DPOConfig, DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

from cream_engine import checkpoints, losses
from cream_engine.config import ScirConfig, TrainConfig
from cream_engine.errors import TrainingError
from cream_engine.judges import pairwise

WEIGHT = "weight"
JUDGE_COLUMNS = ("judge_12_ids", "judge_21_ids")  # SCIR: judge prompts, y1 first / y2 first
JUDGE_KEYS = ("judge_input_ids", "judge_attention_mask", "judge_last")  # their batch tensors
EXTRA_KEYS = (WEIGHT, *JUDGE_KEYS)
REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")  # log π_ref, when the rows bring it  # batch keys that never reach a model call
METRIC_NAMES = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins",
                "rewards/accuracies", "logps/chosen", "logps/rejected", "learning_rate",
                "grad_norm", "consistency")
# SCIR, per logging step: agreement of the two RMs (margin 0), fraction of pairs selected for
# the DPO term, the consistency loss and the DPO term itself (mean over the selected pairs)
SCIR_METRIC_NAMES = ("scir/agreement", "scir/selected", "scir/l_con", "scir/l_dpo")


# -- settings -------------------------------------------------------------------------------


def precision(train: TrainConfig, device: str) -> tuple[str, bool]:
    """(dtype the weights are loaded in, bf16 mixed precision on or off).

    `auto`: on a GPU, fp32 master weights with bf16 autocast, as the CREAM authors trained
    (pure bf16 weights lose AdamW updates of ~1e-6 below bf16's precision: measured, 4 steps at
    lr 5e-6 changed 7.6% of bf16 weights against 100% in fp32); fp32 on the CPU. An explicit
    dtype loads the weights in that dtype, without autocast."""
    if train.dtype == "auto":
        return "float32", device.startswith("cuda")
    return train.dtype, False


def dpo_args(train: TrainConfig, *, output_dir: Path, seed: int, device: str,
             max_steps: int = -1, processes: int = 1, layer_classes: tuple[str, ...] = ()
             ) -> DPOConfig:
    """The `DPOConfig` of a training run: every setting explicit (TRL's defaults are made for
    multi-GPU bf16 runs: bf16, gradient checkpointing, logging every 10 steps).

    `[train] batch_size` pairs go through the model per step of every process together: each
    of `processes` ranks takes its share, so N processes see the same pairs per optimizer
    step, and take the same number of steps, as one (DDP averages their gradients).

    `[train] save_every` > 0: transformers' own checkpoint every that many optimizer steps
    into `output_dir`, the newest `checkpoints.KEEP` kept (see StreamMetrics.on_save)."""
    per_device, rest = divmod(train.batch_size, processes)
    if rest or not per_device:
        raise TrainingError(f"[train] batch_size = {train.batch_size} cannot be split over "
                            f"{processes} training processes (make it a multiple)")
    checkpointing = train.activation_checkpointing
    sharding: dict[str, Any] = {}
    if processes > 1 and train.strategy == "fsdp":
        # FSDP's own checkpointing: the argument's would add an all-gather in the backward
        sharding = {"fsdp": "full_shard", "fsdp_config": {
            "transformer_layer_cls_to_wrap": list(layer_classes),
            "state_dict_type": "FULL_STATE_DICT",
            "activation_checkpointing": checkpointing}}
        checkpointing = False
    elif processes > 1 and train.strategy == "deepspeed":
        sharding = {"deepspeed": zero3_config()}
    saving: dict[str, Any] = {"save_strategy": "no"}
    if train.save_every:
        saving = {"save_strategy": "steps", "save_steps": train.save_every,
                  "save_total_limit": checkpoints.KEEP}
    # (TRL turns checkpointing on by default; transformers 5.20 renamed the argument)
    renamed = "activation_checkpointing" in DPOConfig.__dataclass_fields__
    checkpoint_arg = {"activation_checkpointing" if renamed else "gradient_checkpointing":
                      checkpointing}
    return DPOConfig(
        output_dir=str(output_dir), seed=seed, use_cpu=(device == "cpu"),
        bf16=precision(train, device)[1], fp16=False, **checkpoint_arg,
        report_to="none", disable_tqdm=True, **saving,
        # keep a NaN loss visible in the logs instead of replacing it by the running mean
        logging_nan_inf_filter=False,
        learning_rate=train.learning_rate, num_train_epochs=train.epochs, max_steps=max_steps,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=train.gradient_accumulation,
        # transformers 5 reads a warmup_steps below 1 as a ratio of the steps (1.0 would be 1 step)
        lr_scheduler_type="cosine", warmup_steps=min(train.warmup_ratio, 1 - 1e-9),
        weight_decay=train.weight_decay, logging_steps=train.logging_steps,
        max_length=train.max_length, beta=train.beta, loss_type=["sigmoid"],
        precompute_ref_log_probs=True, dataloader_num_workers=0,
        ddp_find_unused_parameters=False if processes > 1 else None, **sharding,
    )


def zero3_config() -> dict:
    """DeepSpeed ZeRO-3: parameters, gradients and optimizer states sharded over the ranks;
    "auto" values are filled from the `DPOConfig` by transformers; the full 16-bit weights are
    gathered for the one checkpoint."""
    return {"zero_optimization": {"stage": 3, "overlap_comm": True,
                                  "stage3_gather_16bit_weights_on_model_save": True},
            "bf16": {"enabled": "auto"}, "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
            "train_batch_size": "auto"}


def layer_classes(model: Any) -> tuple[str, ...]:
    """The decoder-layer class names FSDP wraps one by one (the model's `_no_split_modules`)."""
    return tuple(getattr(model, "_no_split_modules", None) or ())


def save_dtype(train: TrainConfig, device: str) -> torch.dtype | None:
    """The dtype a checkpoint is written in: the training dtype, so bf16 on a GPU (fp32 master
    weights would double an 8B checkpoint to 32 GB); None keeps the weights' own."""
    if device.startswith("cuda") and train.dtype in ("auto", "bfloat16"):
        return torch.bfloat16
    return None


def lora_config(train: TrainConfig) -> LoraConfig:
    return LoraConfig(r=train.lora_rank, lora_alpha=train.lora_alpha, lora_dropout=0.0,
                      target_modules="all-linear", task_type="CAUSAL_LM")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No progress bars (datasets.map, TRL's reference pass, which reads TQDM_DISABLE,
    loading and saving weights) and no FutureWarning TRL 1.16 triggers in transformers 5."""
    datasets_bars = datasets.is_progress_bar_enabled()
    hf_bars = hf_logging.is_progress_bar_enabled()
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


# -- the collator and the trainers ----------------------------------------------------------


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
        if set(REF_COLUMNS) <= set(dataset.column_names):
            return dataset  # the score stage measured log π_{M_t} of these very tokens already
        return super()._precompute_ref_logps(dataset, name, batch_size)

    def compute_ref_log_probs(self, model: Any, inputs: dict) -> Any:
        return super().compute_ref_log_probs(
            model, {k: v for k, v in inputs.items() if k not in EXTRA_KEYS})

    def _policy_margin(self, model: Any, inputs: dict, return_outputs: bool
                       ) -> tuple[Any, torch.Tensor]:
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
        h = losses.log_ratio_margin(chosen_logps, rejected_logps, inputs["ref_chosen_logps"],
                                    inputs["ref_rejected_logps"])
        return result, h.float()  # C = 0.9 in bf16 would be 0.8984

    def _finish(self, loss: torch.Tensor, result: Any, return_outputs: bool) -> Any:
        if self.model.training and self.nonfinite_loss is None:
            # every rank must see the same verdict, or one stops while the others wait for it
            losses_seen = self.accelerator.gather(loss.detach().float().reshape(1))
            bad = [v for v in losses_seen.tolist() if not math.isfinite(v)]
            if bad:
                self.nonfinite_loss = (self.state.global_step + 1, bad[0])
        return (loss, result[1]) if return_outputs else loss

    def _metric(self, name: str, value: torch.Tensor) -> None:
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

    def __init__(self, *args: Any, scir: ScirConfig, verdict_ids: tuple[int, int],
                 **kwargs: Any) -> None:
        self.scir = scir
        self.verdict_ids = verdict_ids
        super().__init__(*args, **kwargs)

    def _compute_loss(self, model: Any, inputs: dict, return_outputs: bool) -> Any:
        if JUDGE_KEYS[0] not in inputs:
            raise ValueError("ScirDPOTrainer: the batch has no judge prompts")
        result, h = self._policy_margin(model, inputs, return_outputs)
        logits = pairwise.verdict_logits_both_orders(model, inputs["judge_input_ids"],
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


def rows_dataset(rows: list[dict] | Path, cache_dir: Path | None = None) -> Dataset:
    """The pairs as a `Dataset`: from memory (one process), or from a JSONL file with its
    cache in `cache_dir`, which every rank of a multi-process run can read (an in-memory
    dataset keeps its cache in a per-process temp folder that the other ranks cannot open)."""
    if isinstance(rows, list):
        return Dataset.from_list(rows)
    return datasets.load_dataset("json", data_files=str(rows), split="train",
                                 cache_dir=str(cache_dir) if cache_dir else None)


def make_trainer(model: Any, tokenizer: Any, rows: list[dict] | Dataset, args: DPOConfig, *,
                 peft_config: LoraConfig | None = None, callbacks: list | None = None,
                 scir: ScirConfig | None = None) -> CreamDPOTrainer:
    """A `CreamDPOTrainer` over conversational rows (tokenised and the reference log-probs
    precomputed here, quietly, unless every row brings them); with `scir`, a
    `ScirDPOTrainer` (rows with JUDGE_COLUMNS)."""
    collator = WeightedPreferenceCollator(pad_token_id=tokenizer.pad_token_id,
                                          max_length=args.max_length,
                                          truncation_mode=args.truncation_mode)
    extra: dict[str, Any] = {}
    trainer_cls: type[CreamDPOTrainer] = CreamDPOTrainer
    dataset = rows if isinstance(rows, Dataset) else Dataset.from_list(rows)
    if scir is not None:
        if not len(dataset) or JUDGE_COLUMNS[0] not in dataset.column_names:
            raise TrainingError("SCIR training needs the judge prompts (see scir_rows)")
        trainer_cls = ScirDPOTrainer
        extra = {"scir": scir, "verdict_ids": pairwise.verdict_tokens(tokenizer)}
    with quiet():
        trainer = trainer_cls(model=model, ref_model=None, args=args,
                              train_dataset=dataset, processing_class=tokenizer,
                              data_collator=collator, peft_config=peft_config,
                              callbacks=callbacks or [], **extra)
    trainer.remove_callback(PrinterCallback)  # disable_tqdm=True would print every log dict
    return trainer


# -- what the stage hears of training --------------------------------------------------------


def metric_values(logs: dict | None) -> dict[str, float] | None:
    """The metrics of one of the trainer's log dicts, None for the final summary (train_runtime,
    train_loss, ...); also what a resumed stage replays from a checkpoint's log history."""
    if not logs or "loss" not in logs:
        return None
    return {k: float(logs[k]) for k in METRIC_NAMES + SCIR_METRIC_NAMES if k in logs}


class StreamMetrics(TrainerCallback):
    """Streams the logged metrics and progress, stops training at the first non-finite loss
    (recorded in `.error`) and marks each checkpoint complete once every rank has saved it.
    Set its `.trainer` before training: the trainer records the loss of every micro-batch,
    callbacks are not given it."""

    def __init__(self, on_metrics: Callable[[int, dict[str, float]], None],
                 on_progress: Callable[[int, int], None] | None) -> None:
        self.on_metrics, self.on_progress = on_metrics, on_progress
        self.trainer: CreamDPOTrainer | None = None
        self.error: str | None = None
        self.last_loss: float | None = None
        self.resumed_from = 0  # the step of the checkpoint training resumed from

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        # (runs after transformers' flow callback has decided whether to save): no checkpoint
        # of NaN weights, and none after the last step, where the stage saves the model itself
        if state.global_step >= state.max_steps:
            control.should_save = False
        bad = self.trainer.nonfinite_loss if self.trainer is not None else None
        if bad is not None and self.error is None:
            step, value = bad
            self.error = f"NaN loss at step {step}" + ("" if math.isnan(value)
                                                       else f" (loss = {value})")
            control.should_training_stop = True
            control.should_save = False
            return
        if self.on_progress is not None and state.is_world_process_zero:
            self.on_progress(state.global_step, state.max_steps)

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        # every rank has written its part (its RNG state, its shard) once all get here
        if self.trainer is not None:
            self.trainer.accelerator.wait_for_everyone()
        if state.is_world_process_zero:
            checkpoints.mark_complete(Path(args.output_dir) / f"checkpoint-{state.global_step}")

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None,
               **kw: Any) -> None:
        values = metric_values(logs)
        # nothing after a NaN; other ranks: the values are gathered over the ranks already
        if values is None or self.error is not None or not state.is_world_process_zero:
            return
        self.last_loss = values["loss"]
        self.on_metrics(state.global_step, values)
