"""transformers `generate`, batched with left padding, seeded per batch."""

from __future__ import annotations

from typing import Any

import torch

from cream_engine.backends.base import ChatRendering, Progress
from cream_engine.errors import BackendError


class HFBackend(ChatRendering):
    name = "hf"

    def __init__(self, model: Any, tokenizer: Any, *, device: str, batch_size: int):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size

    def _encode(self, texts: list[str], new_tokens: int = 0) -> Any:
        tok = self.tokenizer
        side, tok.padding_side = tok.padding_side, "left"  # generation continues on the right
        try:
            # the chat template already wrote any BOS, so no special tokens are added here
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            tok.padding_side = side
        # note: memory grows with batch x length; a text past the model's context would only
        # fail (or thrash) deep inside the model, so it stops here (prompts are measured at
        # submit; this guards every other text: judge prompts, evaluation items)
        context = getattr(self.model.config, "max_position_embeddings", None)
        length = enc["input_ids"].shape[1]
        if isinstance(context, int) and length + new_tokens > context:
            raise BackendError(f"an input of {length} tokens (+ {new_tokens} to generate) "
                               f"exceeds the model's context of {context} tokens")
        return enc.to(self.device)

    def generate(self, conversations: list[list[dict]], *, n: int, temperature: float,
                 top_p: float, max_new_tokens: int, seed: int, top_k: int = 0,
                 progress: Progress | None = None) -> list[list[str]]:
        texts = [self.render(c) for c in conversations]
        sample = temperature > 0
        out: list[list[str]] = []
        for b, start in enumerate(range(0, len(texts), self.batch_size)):
            batch = texts[start:start + self.batch_size]
            enc = self._encode(batch, max_new_tokens)
            # note: seeding each batch makes a restarted stage produce the same samples
            torch.manual_seed(seed * 1_000_003 + b)
            with torch.no_grad():
                generated = self.model.generate(
                    **enc, do_sample=sample, temperature=temperature if sample else None,
                    top_p=top_p if sample else None,
                    # note: explicit, 0 = off: left unset, transformers fills in the model's
                    # generation_config.json or its own default top-k of 50 (vLLM has none)
                    top_k=top_k if sample else None,
                    max_new_tokens=max_new_tokens, num_return_sequences=n if sample else 1,
                    pad_token_id=self.tokenizer.pad_token_id,
                    eos_token_id=self.tokenizer.eos_token_id)
            new = generated[:, enc["input_ids"].shape[1]:]
            decoded = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            per = n if sample else 1
            for i in range(len(batch)):
                outs = [d.strip() for d in decoded[i * per:(i + 1) * per]]
                out.append(outs * (n // per))
            if progress:
                progress(len(batch))
        return out

    def next_token_logprobs(self, texts: list[str], token_ids: list[int],
                            progress: Progress | None = None) -> list[list[float]]:
        out: list[list[float]] = []
        ids = torch.tensor(token_ids, device=self.device)
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            enc = self._encode(batch)
            with torch.no_grad():
                logits = self.model(**enc).logits[:, -1, :].float()
            logp = torch.log_softmax(logits, dim=-1)[:, ids]
            out.extend(logp.tolist())
            if progress:
                progress(len(batch))
        return out

    def close(self) -> None:
        pass
