"""The one protocol every generation backend follows, and what the backends share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

Progress = Callable[[int], None]  # called with the number of conversations just finished


class GenerationBackend(Protocol):
    name: str
    tokenizer: Any

    def render(self, conversation: list[dict]) -> str:
        """The conversation as the model sees it, ending with the assistant's turn opening."""
        ...

    def generate(self, conversations: list[list[dict]], *, n: int, temperature: float,
                 top_p: float, max_new_tokens: int, seed: int, top_k: int = 0,
                 progress: Progress | None = None) -> list[list[str]]:
        """`n` sampled responses for each conversation (temperature 0 = greedy, n = 1).

        `top_k` = 0 samples from the whole vocabulary (after top-p) in every backend: no
        library default or model `generation_config.json` may add a top-k of its own."""
        ...

    def next_token_logprobs(self, texts: list[str], token_ids: list[int],
                            progress: Progress | None = None) -> list[list[float]]:
        """log p(token | text) for each of `token_ids`, after each rendered `text`."""
        ...

    def close(self) -> None:
        ...


class ChatRendering:
    """What both backends share: the chat template, rendered by the model's tokenizer."""

    tokenizer: Any

    def render(self, conversation: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(conversation, tokenize=False,
                                                  add_generation_prompt=True)
