"""vLLM for real (`make test-vllm`, in .venv-vllm): every test module here is marked `vllm`
(`pytestmark`) and skipped, with the reason, where vLLM cannot run. Nothing here imports vLLM:
the backend runs it in engine processes of its own."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# On a small shared machine vLLM's CPU build binding its OpenMP threads to cores that other
# processes use made decoding 4-9x slower (measured on 2 loaded cores: 16 x 24 greedy tokens
# in 37 s bound, 4 s unbound with one thread). The engine processes inherit these; a box of
# its own can set them otherwise.
CPU_THREADS = {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True, scope="session")
def _vllm_usable() -> Iterator[None]:
    from cream_engine.vllmcheck import vllm_usable

    cuda = _cuda()
    why_not = vllm_usable(cuda=cuda)
    if why_not:
        pytest.skip(why_not)
    saved = {k: os.environ.get(k) for k in CPU_THREADS}
    if not cuda:
        for key, value in CPU_THREADS.items():
            os.environ.setdefault(key, value)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.fixture(scope="session")
def cuda() -> bool:
    return _cuda()


@pytest.fixture(scope="session")
def engine_memory(cuda: bool) -> float:
    """[generate] gpu_memory_utilization for the tests: on the CPU build, the fraction of RAM
    its cache reserves (0.1 of this machine's is ample for SmolLM2)."""
    return 0.5 if cuda else 0.1
