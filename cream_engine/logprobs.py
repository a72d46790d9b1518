"""Sequence log-probabilities: log π(y|x) summed over the response tokens, prompt masked.

One no-grad pass of one model over many (prompt, response) pairs: sequences are sorted by
length so each batch pads little, run right-padded, and put back in input order. Used by the
implicit reward (ALGORITHMS.md: r(x, y) = log π_t(y|x) − log π_ref(y|x)) and by evaluation.

1. A chat response is tokenised as TRL's DPOTrainer tokenises a conversational completion
   (`encode_pair`), so the score stage's log π_{M_t}(y|x) is the trainer's reference log-prob
   and can be handed to it instead of being computed again.
2. Only the scored positions go through the LM head, in tiles of positions × vocabulary
   columns, each tile's logits in fp32 (`head_logprobs`): never the B × L × V logits of a
   batch, which at a 128k vocabulary are ~4 GB per 8 × 1024 tokens in fp32 (and the old
   logsumexp held a second such tensor; bench/scoring_memory.py measures both ways).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

# how TRL's DPOConfig truncates a prompt + completion past max_length by default (the trainer
# keeps that default): the end of the completion is cut, the prompt is kept
TRUNCATION = "keep_start"
# the LM head's logits in fp32 per tile of (scored positions × vocabulary columns): at most
# this many bytes (64 MiB: 512 positions × 32768 columns): the one tile-sized tensor held
CHUNK_BYTES = 64 * 2**20
# vocabulary columns per tile: TRL's own (trl.trainer.utils._CHUNKED_LOGPROB_CHUNK_SIZE), so
# the online logsumexp below rounds as TRL's does
VOCAB_CHUNK = 32768
# config fields that make a model's logits more than hidden @ W (+ b): such models are scored
# through their own forward instead (one sequence's logits at a time)
_HEAD_EXTRAS = ("final_logit_softcapping", "logit_scale", "output_multiplier",
                "lm_head_multiplier", "logits_scaling")


@dataclass(frozen=True)
class SeqLogProb:
    logp: float     # Σ over response tokens of log π(token | prefix)
    tokens: int     # |y|: response tokens scored (for the length-normalised variant)

    @property
    def mean(self) -> float:
        return self.logp / max(self.tokens, 1)


# -- tokenising, as TRL does ----------------------------------------------------------------


def chat_ids(tokenizer: Any, messages: list[dict], *, add_generation_prompt: bool = False
             ) -> list[int]:
    """The chat template rendered and tokenised, as TRL's `_tokenize` does it."""
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                        add_generation_prompt=add_generation_prompt)
    return list(out["input_ids"])


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def encode_pair(tokenizer: Any, messages: list[dict], response: str, max_length: int,
                truncation: str = TRUNCATION) -> tuple[list[int], int]:
    """Token ids of prompt + response and where the response starts, as TRL's DPOTrainer
    builds a conversational pair (trl/trainer/dpo_trainer.py, `_prepare_dataset` and
    `DataCollatorForPreference`):
    1. the sequence is the whole conversation with the response as the assistant's turn, so
       the response is followed by what the template closes a turn with (SmolLM2:
       "<|im_end|>\\n");
    2. the response starts where that sequence and the prompt rendered with the generation
       prompt stop agreeing (usually right after the prompt; a template or a token merge
       across the boundary can make it earlier);
    3. past `max_length`, `keep_start` cuts the end (a prompt that fills max_length leaves
       nothing to score: TRL drops such a pair), `keep_end` the start.
    TRL's start is the earlier of the chosen and the rejected response's: the two agree with
    this one only when both responses start at the same token (stages/pairs.py checks)."""
    prompt = chat_ids(tokenizer, messages, add_generation_prompt=True)
    full = chat_ids(tokenizer, [*messages, {"role": "assistant", "content": response}])
    start = common_prefix_length(prompt, full)
    if len(full) <= max_length:
        return full, start
    if truncation == "keep_start":
        return full[:max_length], min(start, max_length)
    if truncation == "keep_end":
        cut = len(full) - max_length
        return full[cut:], max(start - cut, 0)
    raise ValueError(f"truncation {truncation!r}: expected 'keep_start' or 'keep_end'")


def prompt_tokens(tokenizer: Any, messages: list[dict], response: str) -> int:
    """Where the response starts in TRL's sequence for (messages, response), untruncated."""
    prompt = chat_ids(tokenizer, messages, add_generation_prompt=True)
    full = chat_ids(tokenizer, [*messages, {"role": "assistant", "content": response}])
    return common_prefix_length(prompt, full)


# -- scoring --------------------------------------------------------------------------------


def sequence_logprobs(model: Any, tokenizer: Any, items: list[tuple[list[dict], str]], *,
                      batch_size: int = 8, max_length: int = 1024, device: str = "cpu",
                      progress: Callable[[int], None] | None = None) -> list[SeqLogProb]:
    """log π(y|x) for every (messages, response) in `items`, in input order."""
    encoded = [encode_pair(tokenizer, m, r, max_length) for m, r in items]
    return encoded_logprobs(model, tokenizer, encoded, batch_size=batch_size, device=device,
                            progress=progress)


def encoded_logprobs(model: Any, tokenizer: Any, encoded: list[tuple[list[int], int]], *,
                     batch_size: int = 8, device: str = "cpu",
                     progress: Callable[[int], None] | None = None) -> list[SeqLogProb]:
    """Σ log π of the tokens after `start` in each (token ids, start), in input order."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    results: list[SeqLogProb | None] = [None] * len(encoded)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.eval()
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(encoded[i][0]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        attn = torch.zeros((len(idx), width), dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.bool)  # scored tokens only
        for row, i in enumerate(idx):
            seq, prompt_len = encoded[i]
            ids[row, :len(seq)] = torch.tensor(seq)
            attn[row, :len(seq)] = 1
            mask[row, prompt_len:len(seq)] = True
        ids, attn, mask = ids.to(device), attn.to(device), mask.to(device)
        with torch.no_grad():
            token_logp = token_logprobs(model, ids, attn, mask)
        # summed over the whole row, zeros included, as TRL sums its per-token log-probs
        sums = token_logp.sum(-1).tolist()
        counts = mask[:, 1:].sum(-1).tolist()
        for row, i in enumerate(idx):
            results[i] = SeqLogProb(float(sums[row]), int(counts[row]))
        if progress:
            progress(len(idx))
    return [r for r in results if r is not None]


def token_logprobs(model: Any, ids: torch.Tensor, attn: torch.Tensor, mask: torch.Tensor
                   ) -> torch.Tensor:
    """(B, L-1) fp32: log π(ids[:, i+1] | ids[:, :i+1]) where mask[:, i+1], else 0.

    The decoder body runs once; the LM head then projects only the positions whose next token
    is scored, a tile at a time (head_logprobs), and reads each position's log-softmax at its
    target token alone (target logit − logsumexp): the logits held are one tile's, never
    B × L × V."""
    target = mask[:, 1:]
    labels = ids[:, 1:]
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    config = getattr(model, "config", None)
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    body = getattr(model, "base_model", model)
    if head is None or body is model or any(getattr(config, k, None) not in (None, 1, 1.0)
                                            for k in _HEAD_EXTRAS):
        return _full_logits_logprobs(model, ids, attn, target)
    hidden = body(input_ids=ids, attention_mask=attn,
                  use_cache=False).last_hidden_state[:, :-1]
    hidden = hidden[target].to(head.weight.device)  # (N, H): the scored positions only
    wanted = labels[target].to(head.weight.device)
    out = torch.zeros(target.shape, dtype=torch.float32, device=ids.device)
    if hidden.shape[0]:
        out[target] = head_logprobs(hidden, wanted, head.weight, head.bias).to(ids.device)
    return out


def head_logprobs(hidden: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None) -> torch.Tensor:
    """(N,) fp32 log-softmax(hidden @ weight.T + bias)[targets], without the (N, V) logits.

    Positions go `rows` at a time; within them the vocabulary goes VOCAB_CHUNK columns at a time
    into an online logsumexp (running max m and Σ exp(z − m), rescaled when m grows), each
    tile's logits in the model's dtype, then fp32. These are the operations, in the same order,
    of TRL's chunked log-prob on a device without Triton (trl/kernels/chunked_logprob.py, which
    its fused LM head uses for the reference log-probs): on the CPU the two agree to the bit."""
    n, vocab = hidden.shape[0], weight.shape[0]
    width = min(VOCAB_CHUNK, vocab)
    rows = max(1, CHUNK_BYTES // (4 * width))
    out = torch.empty(n, dtype=torch.float32, device=hidden.device)
    for a in range(0, n, rows):
        h, t = hidden[a:a + rows], targets[a:a + rows]
        m = torch.full((h.shape[0],), float("-inf"), dtype=torch.float32, device=h.device)
        s = torch.zeros_like(m)
        picked = torch.zeros_like(m)
        for v in range(0, vocab, width):
            tile = torch.mm(h, weight[v:v + width].t())
            if bias is not None:
                tile.add_(bias[v:v + width])
            z = tile.float()
            del tile
            local = t - v
            inside = (local >= 0) & (local < z.shape[1])
            z_t = z.gather(-1, local.clamp(0, z.shape[1] - 1).unsqueeze(-1)).squeeze(-1)
            picked = torch.where(inside, z_t, picked)
            new_m = torch.maximum(m, z.amax(-1))
            # Σ exp(z − m) in place: one tile of logits is all this holds
            s = s.mul_(torch.exp(m - new_m)).add_(z.sub_(new_m.unsqueeze(-1)).exp_().sum(-1))
            m = new_m
            del z
        out[a:a + rows] = picked - (m + torch.log(s))
    return out


def _full_logits_logprobs(model: Any, ids: torch.Tensor, attn: torch.Tensor,
                          target: torch.Tensor) -> torch.Tensor:
    """The same through the model's own forward (for heads with scaling or soft-capping, and
    for anything that is not a transformers causal LM), one sequence at a time so the logits
    held are one sequence's."""
    rows = []
    for r in range(ids.shape[0]):
        logits = model(input_ids=ids[r:r + 1],
                       attention_mask=attn[r:r + 1]).logits[0, :-1].float()
        lp = logits.gather(-1, ids[r, 1:].unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
        rows.append(lp * target[r])
        del logits
    return torch.stack(rows)


def full_logits_logprobs(model: Any, tokenizer: Any, encoded: list[tuple[list[int], int]], *,
                         batch_size: int = 8, device: str = "cpu") -> list[SeqLogProb]:
    """The way scoring was done before chunking (every position's fp32 logits at once): kept
    for the test that the chunked head gives the same numbers, and for the memory bench."""
    out = []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for a in range(0, len(encoded), batch_size):
        batch = encoded[a:a + batch_size]
        width = max(len(s) for s, _ in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.bool)
        for row, (seq, p) in enumerate(batch):
            ids[row, :len(seq)] = torch.tensor(seq)
            attn[row, :len(seq)] = 1
            mask[row, p:len(seq)] = True
        ids, attn, mask = ids.to(device), attn.to(device), mask.to(device)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
            lp = logits.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
        target = mask[:, 1:]
        for row in range(len(batch)):
            out.append(SeqLogProb(float((lp[row] * target[row]).sum()),
                                  int(target[row].sum())))
    return out
