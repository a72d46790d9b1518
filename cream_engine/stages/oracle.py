"""The Oracle baseline's reward (CREAM's third baseline): an external reward model, a sequence
classifier with one output (`[oracle] model`), scores every (prompt, response).

Each pair is written with the reward model's own chat template (the conversation, then the
response as the assistant's turn), or as plain "prompt\\n\\nresponse" text when its tokenizer
has none, cut at `[train] max_length` tokens. Batches are padded on the right with the token
the model's config calls padding: a Llama-style classifier reads its score at the last token
that is not padding, so padding changes no score (a test holds the scores to 1e-5 across
batch sizes). The sequences go longest first, so the biggest batch is the first one (memory
runs out at once, not at the end) and each batch wastes little on padding.

Called by the score stage for methods whose pair reward is "oracle"; the reward model is loaded
for this call and freed after it (it is not one of the run's models that `RunContext.load`
keeps; those stay, but an open generation backend is closed first, as `load` does).

Heavy layer: torch, transformers.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from cream_engine.models import load_reward_model


def reward_text(tokenizer: Any, messages: list[dict], response: str) -> tuple[str, bool]:
    """(text, whether it already holds the special tokens) of one (prompt, response) as the
    reward model reads it."""
    if getattr(tokenizer, "chat_template", None):
        conversation = [*messages, {"role": "assistant", "content": response}]
        return tokenizer.apply_chat_template(conversation, tokenize=False), True
    prompt = "\n\n".join(str(m.get("content", "")) for m in messages)
    return f"{prompt}\n\n{response}", False


@torch.no_grad()
def score_token_ids(model: Any, ids: list[list[int]], *, batch_size: int, device: str,
                    progress: Callable[[int], None] | None = None) -> list[float]:
    """The model's one output for each token sequence, in the order given."""
    pad = model.config.pad_token_id
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # longest first
    out: list[float] = [0.0] * len(ids)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        width = max(1, max(len(ids[i]) for i in batch))
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):  # right padding
            input_ids[row, :len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
            attention[row, :len(ids[i])] = 1
        logits = model(input_ids=input_ids.to(device),
                       attention_mask=attention.to(device)).logits
        for row, value in zip(batch, logits[:, 0].float().tolist()):
            out[row] = value
        if progress is not None:
            progress(len(batch))
    return out


def encode_items(tokenizer: Any, items: list[tuple[list[dict], str]],
                 max_length: int) -> list[list[int]]:
    """Token ids of each (prompt messages, response), cut at `max_length`."""
    encoded = []
    for messages, response in items:
        text, templated = reward_text(tokenizer, messages, response)
        encoded.append(tokenizer(text, add_special_tokens=not templated, truncation=True,
                                 max_length=max_length)["input_ids"])
    return encoded


def oracle_rewards(ctx: Any, t: int, items: list[tuple[list[dict], str]]) -> list[float]:
    """One reward per (prompt messages, response) from `[oracle] model`, in the order given."""
    cfg = ctx.config.oracle
    ctx.close_backends()  # a vLLM engine left open by generate holds most of the GPU
    started = time.perf_counter()
    model, tokenizer = load_reward_model(
        cfg.model, ctx.home, dtype="bfloat16" if ctx.device.startswith("cuda") else "float32",
        device=ctx.device, trust_remote_code=ctx.config.run.trust_remote_code)
    print(f"model load: [oracle] model {cfg.model} in {time.perf_counter() - started:.1f}s",
          file=sys.stderr, flush=True)
    try:
        ids = encode_items(tokenizer, items, ctx.config.train.max_length)
        with ctx.progress(t, "score", len(items), "oracle") as bar:
            return score_token_ids(model, ids, batch_size=cfg.batch_size, device=ctx.device,
                                   progress=bar.advance)
    finally:  # the run's models stay loaded (RunContext.load); this one is ours to free
        del model
        gc.collect()
        if ctx.device.startswith("cuda"):
            torch.cuda.empty_cache()
