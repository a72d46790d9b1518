"""Generation backends behind one protocol: `hf` (transformers) and `vllm` (when installed).

A backend generates N samples per conversation with the model's chat template, and gives the
log-probabilities of chosen next tokens after a rendered text (the judge's "Score:" digits).
Results are always in input order. vLLM types never leave `backends/vllm.py`.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Callable, Protocol

Progress = Callable[[int], None]  # called with the number of conversations just finished


class BackendError(RuntimeError):
    """A backend that cannot be used here: one line saying what to install or change."""


class GenerationBackend(Protocol):
    name: str
    tokenizer: Any

    def render(self, conversation: list[dict]) -> str:
        """The conversation as the model sees it, ending with the assistant's turn opening."""
        ...

    def generate(self, conversations: list[list[dict]], *, n: int, temperature: float,
                 top_p: float, max_new_tokens: int, seed: int,
                 progress: Progress | None = None) -> list[list[str]]:
        """`n` sampled responses for each conversation (temperature 0 = greedy, n = 1)."""
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


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def choose_backend(requested: str, cuda_available: bool, vllm_available: bool) -> str:
    """`auto` takes vLLM when it is installed and a GPU is present, else transformers."""
    if requested == "auto":
        return "vllm" if (vllm_available and cuda_available) else "hf"
    if requested == "vllm" and not vllm_available:
        raise BackendError("[generate] backend = 'vllm' needs vLLM: pip install 'cream[vllm]'")
    if requested == "vllm" and not cuda_available:
        raise BackendError("[generate] backend = 'vllm' needs a CUDA GPU; use backend = 'hf'")
    return requested


def open_backend(kind: str, *, model_path: str, model: Any = None, tokenizer: Any = None,
                 device: str = "cpu", dtype: str = "float32", batch_size: int = 8,
                 seed: int = 0) -> GenerationBackend:
    """Open a backend on a model folder (hf may reuse an already loaded model)."""
    if kind == "vllm":
        from cream_engine.backends.vllm import VLLMBackend

        return VLLMBackend(model_path, dtype=dtype, seed=seed)
    from cream_engine.backends.hf import HFBackend

    return HFBackend(model, tokenizer, device=device, batch_size=batch_size)
