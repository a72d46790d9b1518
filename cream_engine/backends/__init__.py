"""Generation backends behind one protocol (`backends/base.py`): `hf` (transformers) and
`vllm` (when installed).

A backend generates N samples per conversation with the model's chat template, and gives the
log-probabilities of chosen next tokens after a rendered text (the judge's "Score:" digits).
Results are always in input order. vLLM types never leave `backends/vllm.py`, which is imported
only when asked for (vLLM is optional).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from cream_engine.backends.base import ChatRendering, GenerationBackend, Progress
from cream_engine.backends.hf import HFBackend
from cream_engine.errors import BackendError

__all__ = ["BackendError", "ChatRendering", "GenerationBackend", "Progress", "choose_backend",
           "open_backend", "vllm_installed"]


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
    return HFBackend(model, tokenizer, device=device, batch_size=batch_size)
