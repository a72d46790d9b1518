"""Generation backends behind one protocol (`backends/base.py`): `hf` (transformers) and
`vllm` (when installed).

A backend generates N samples per conversation with the model's chat template, and gives the
log-probabilities of chosen next tokens after a rendered text (the judge's "Score:" digits).
Results are always in input order. vLLM runs in engine processes of its own
(`backends/vllm_engine.py`, the only module that imports vLLM); `backends/vllm.py` drives them.
Whether vLLM can run here is answered without importing it (`cream_engine.vllmcheck`).
"""

from __future__ import annotations

from typing import Any

from cream_engine.backends.base import ChatRendering, GenerationBackend, Progress
from cream_engine.backends.hf import HFBackend
from cream_engine.errors import BackendError
from cream_engine.vllmcheck import GPU_BUILD, installed_build, vllm_usable

__all__ = ["BackendError", "ChatRendering", "GenerationBackend", "Progress", "choose_backend",
           "open_backend", "vllm_installed", "vllm_usable"]


def vllm_installed() -> bool:
    return installed_build() is not None


def choose_backend(requested: str, cuda_available: bool,
                   vllm_available: bool | None = None) -> str:
    """`auto` takes vLLM only with a GPU and vLLM's GPU build, else transformers; `vllm` is
    refused in one line where it cannot run (not installed, GPU build without a GPU, CPU build
    with one). `vllm_available` stands in for "the GPU build is installed" (tests); None asks
    the installed packages."""
    build = installed_build() if vllm_available is None else (
        GPU_BUILD if vllm_available else None)
    why_not = vllm_usable(cuda_available, build)
    if requested == "auto":
        return "vllm" if (why_not is None and cuda_available) else "hf"
    if requested == "vllm" and why_not:
        raise BackendError(why_not)
    return requested


def open_backend(kind: str, *, model_path: str, model: Any = None, tokenizer: Any = None,
                 device: str = "cpu", dtype: str = "float32", batch_size: int = 8,
                 seed: int = 0, tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.85,
                 trust_remote_code: bool = False) -> GenerationBackend:
    """Open a backend on a model folder (hf may reuse an already loaded model; vllm starts
    its engine processes: one per `tensor_parallel_size` GPUs of the job, one on CPU)."""
    if kind == "vllm":
        from cream_engine.backends.vllm import VLLMBackend

        return VLLMBackend(model_path, dtype=dtype, seed=seed, cuda=device == "cuda",
                           tensor_parallel_size=tensor_parallel_size,
                           gpu_memory_utilization=gpu_memory_utilization,
                           trust_remote_code=trust_remote_code)
    return HFBackend(model, tokenizer, device=device, batch_size=batch_size)
