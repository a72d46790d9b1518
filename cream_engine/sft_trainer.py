"""The seed SFT (M0 -> M1) with TRL's `SFTTrainer`: every TRL-specific line of it is here.

Both papers fine-tune the starting model on human-written seed data before self-rewarding
(CREAM: ~3.4K Open Assistant examples, 5 epochs, lr 5e-6, the loss on the assistant's tokens
only). Each seed example is given to TRL in its prompt-completion form: the prompt is every
message but the last, the completion the assistant's final reply, so the loss falls on that
reply and its end-of-turn token alone (TRL's `completion_only_loss`), whatever the model's
chat template (TRL's `assistant_only_loss` needs `{% generation %}` markers most templates,
SmolLM2's among them, do not have). Precision, schedule, LoRA (merged into M1) and the saved
dtype follow `[train]` exactly as DPO does (trainer.py). It runs in one process on one device.

Heavy layer: torch, transformers, TRL.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datasets import load_dataset
from transformers import PrinterCallback, TrainerCallback, set_seed
from trl import SFTConfig, SFTTrainer

from cream_engine.config import TrainConfig
from cream_engine.config_stages import SftConfig
from cream_engine.errors import TrainingError
from cream_engine.models import load_model
from cream_engine.trainer import lora_config, precision, quiet

# what the trainer logs that the store keeps (stage `sft`, as `sft/<name>`)
SFT_METRICS = ("loss", "grad_norm", "learning_rate", "mean_token_accuracy", "num_tokens",
               "entropy")


def completion_rows(examples: list[list[dict]]) -> list[dict]:
    """TRL's prompt-completion rows: the last message (the assistant's) is the completion."""
    return [{"prompt": messages[:-1], "completion": messages[-1:]} for messages in examples]


def sft_args(sft: SftConfig, train: TrainConfig, *, output_dir: Path, seed: int,
             device: str) -> SFTConfig:
    """Every setting explicit; [sft] gives the data-side ones, [train] the precision, the
    warm-up, the weight decay and the checkpointing shared with DPO."""
    renamed = "activation_checkpointing" in SFTConfig.__dataclass_fields__
    checkpoint_arg = {"activation_checkpointing" if renamed else "gradient_checkpointing":
                      train.activation_checkpointing}
    return SFTConfig(
        output_dir=str(output_dir), seed=seed, use_cpu=(device == "cpu"),
        bf16=precision(train, device)[1], fp16=False, **checkpoint_arg,
        report_to="none", save_strategy="no", disable_tqdm=True,
        logging_nan_inf_filter=False, logging_steps=1,
        learning_rate=sft.learning_rate, num_train_epochs=sft.epochs,
        per_device_train_batch_size=sft.batch_size, gradient_accumulation_steps=1,
        lr_scheduler_type="cosine", warmup_steps=min(train.warmup_ratio, 1 - 1e-9),
        weight_decay=train.weight_decay, max_length=sft.max_length,
        completion_only_loss=True, packing=False, dataloader_num_workers=0,
        dataset_num_proc=None,
    )


class SftProgress(TrainerCallback):
    """Streams the logged metrics and the step, and stops at the first non-finite loss."""

    def __init__(self, on_metrics: Callable[[int, dict[str, float]], None],
                 on_progress: Callable[[int, int], None] | None) -> None:
        self.on_metrics, self.on_progress = on_metrics, on_progress
        self.error: str | None = None
        self.last_loss: float | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.on_progress is not None:
            self.on_progress(state.global_step, state.max_steps)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None,
               **kw: Any) -> None:
        if self.error is not None or not logs or "loss" not in logs:
            return
        values = {k: float(logs[k]) for k in SFT_METRICS if k in logs}
        if not math.isfinite(values["loss"]):
            self.error = f"NaN loss at step {state.global_step} of the seed SFT"
            control.should_training_stop = True
            return
        self.last_loss = values["loss"]
        # (named apart: DPO's `loss` of iteration 0 is another curve)
        self.on_metrics(state.global_step, {f"sft/{k}": v for k, v in values.items()})


def train_sft(*, model_path: str, examples: list[list[dict]], sft: SftConfig,
              train: TrainConfig, seed: int, device: str, work_dir: Path,
              on_metrics: Callable[[int, dict[str, float]], None],
              on_progress: Callable[[int, int], None] | None = None) -> tuple[Any, dict]:
    """Fine-tune `model_path` on the seed examples (chat messages, the last the assistant's);
    returns (the trained model's trainer, a summary). The caller saves the model."""
    set_seed(seed)
    work_dir.mkdir(parents=True, exist_ok=True)
    data_file = work_dir / "seed.jsonl"  # from a file: an in-memory Dataset breaks over ranks
    data_file.write_text("".join(json.dumps(r) + "\n" for r in completion_rows(examples)),
                         encoding="utf-8")
    with quiet():
        model, tokenizer = load_model(model_path, home=work_dir,
                                      dtype=precision(train, device)[0], device=device)
        dataset = load_dataset("json", data_files=str(data_file), split="train",
                               cache_dir=str(work_dir / "datasets"))
        callback = SftProgress(on_metrics, on_progress)
        trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=dataset,
                             args=sft_args(sft, train, output_dir=work_dir / "trainer",
                                           seed=seed, device=device),
                             peft_config=lora_config(train) if train.lora else None,
                             callbacks=[callback])
        trainer.remove_callback(PrinterCallback)  # disable_tqdm=True would print every log
    if len(trainer.train_dataset) == 0:
        raise TrainingError("seed SFT: no example has a reply within [sft] max_length = "
                            f"{sft.max_length} tokens")
    use_cache = model.config.use_cache
    started = time.time()
    with quiet():
        trainer.train()
    seconds = time.time() - started
    model.config.use_cache = use_cache  # (the Trainer turned it off for training)
    if callback.error:
        raise TrainingError(callback.error)
    steps = trainer.state.global_step
    return trainer, {"examples": len(examples), "trained_examples": len(trainer.train_dataset),
                     "steps": steps, "epochs": sft.epochs, "seconds": round(seconds, 2),
                     "seconds_per_step": seconds / steps if steps else None,
                     "final_loss": callback.last_loss}
