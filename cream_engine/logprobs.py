"""Sequence log-probabilities: log π(y|x) summed over the response tokens, prompt masked.

One no-grad pass of one model over many (prompt, response) pairs: sequences are sorted by
length so each batch pads little, run right-padded, and put back in input order. Used by the
implicit reward (ALGORITHMS.md: r(x, y) = log π_t(y|x) − log π_ref(y|x)) and by evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class SeqLogProb:
    logp: float     # Σ over response tokens of log π(token | prefix)
    tokens: int     # |y|: response tokens scored (for the length-normalised variant)

    @property
    def mean(self) -> float:
        return self.logp / max(self.tokens, 1)


def encode_pair(tokenizer: Any, messages: list[dict], response: str,
                max_length: int) -> tuple[list[int], int]:
    """Token ids of prompt + response (+ end of turn) and where the response starts.

    The prompt is the chat template with the generation prompt; the response is followed by the
    EOS token, as in training. Too long: the prompt is cut from the left, then the response."""
    prompt = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    if not isinstance(prompt, list):  # some versions return a BatchEncoding
        prompt = list(prompt["input_ids"])
    answer = tokenizer(response, add_special_tokens=False)["input_ids"] + \
        [tokenizer.eos_token_id]
    answer = answer[:max(1, max_length - 1)]
    prompt = prompt[-max(1, max_length - len(answer)):]
    return prompt + answer, len(prompt)


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
            logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
        # token t is predicted by position t-1; logsumexp avoids a second vocab-sized tensor
        token_logp = logits.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1) - \
            logits.logsumexp(-1)
        target_mask = mask[:, 1:]
        sums = (token_logp * target_mask).sum(-1).tolist()
        counts = target_mask.sum(-1).tolist()
        for row, i in enumerate(idx):
            results[i] = SeqLogProb(float(sums[row]), int(counts[row]))
        if progress:
            progress(len(idx))
    return [r for r in results if r is not None]
