"""Everything a stage needs to know about its run: config, folders, store, device, models.

Models are loaded once and kept for the next caller while memory allows (`load`): a stage that
needs the model the previous stage used finds it in memory, and M_0 (the fixed rewarding
reference and the evaluation judge, used by every iteration) stays beside the policy. The rule:
a model stays loaded while the loaded ones plus the next one to load take at most
KEEP_FRACTION of the memory they could have (what is free now plus what they hold: free GPU
memory on a GPU, available RAM on the CPU, each model measured by its parameters and
buffers); past it, the least recently used go first, M_0 last. The other half is left to what
the stages run on the models (activations, KV caches, the scoring's logits). `release` drops
them all (before training, whose processes load their own copy). Every load is counted in
`loads` and written to stderr (the job log under the worker).

Heavy layer: torch, transformers.
"""

from __future__ import annotations

import gc
import json
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging as hf_logging

from cream_engine import paths
from cream_engine.config import ExperimentConfig
from cream_engine.errors import PipelineError
from cream_engine.models import (
    context_length,
    load_model,
    load_tokenizer,
    prompt_token_counts,
    resolve_model,
)
from cream_engine.progress import StageProgress
from cream_engine.prompts import (
    Prompt,
    limit_length,
    prompt_room,
    prompt_slices,
    read_prompt_file,
)
from cream_engine.runs import load_run_config
from cream_engine.store import Store

# the seed of a stage is (run seed, iteration, this): `score` keeps the value 2 it had as
# `reward`, so a run's numbers do not depend on the stage's name
STAGE_SEEDS = {"generate": 1, "score": 2, "pairs": 4, "train": 5, "sft": 6}
# loaded models may take this much of the memory they could have (see the module docstring)
KEEP_FRACTION = 0.5
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass
class RunContext:
    run_id: str
    run_dir: Path
    home: Path
    config: ExperimentConfig
    store: Store
    device: str = "cpu"
    _prompts: list[Prompt] | None = None
    _slices: list[list[Prompt]] | None = None
    _loaded: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # least recent first
    _sizes: dict[str, int] = field(default_factory=dict)  # bytes each loaded model holds
    loads: list[str] = field(default_factory=list)  # every model load, named (model_name)
    _m0: str | None = None  # model_path(0), resolved once
    _backends: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, run_dir: Path, store: Store) -> RunContext:
        hf_logging.disable_progress_bar()  # our own progress goes to stderr and the store
        run_dir = run_dir.absolute()
        # a run written before the stages were renamed resumes with its files renamed
        for renamed in paths.upgrade_run_folder(run_dir):
            print(f"upgraded {renamed}", file=sys.stderr, flush=True)
        config = load_run_config(run_dir)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(run_id=run_dir.name, run_dir=run_dir, home=run_dir.parent, config=config,
                   store=store, device=device)

    # -- data and folders ----------------------------------------------------------------

    def all_prompts(self) -> list[Prompt]:
        """The run's distinct prompts that fit the model, measured again with M0's own
        tokenizer (the file may have changed since it was submitted): the one list the
        training slices and the held-out prompts are both cut from."""
        if self._prompts is None:
            cfg = self.config
            found = read_prompt_file(cfg.data.prompts)
            trust = cfg.run.trust_remote_code
            m0 = self.model_path(0)
            tokens = prompt_token_counts(load_tokenizer(m0, self.home, trust), found.prompts)
            room, why = prompt_room(cfg, context_length(m0, self.home, trust))
            found = limit_length(found, tokens, room, cfg.data.long_prompts, why)
            print(f"prompts: {found.summary()}", file=sys.stderr, flush=True)
            self._prompts = found.prompts
        return self._prompts

    def prompts(self, t: int) -> list[Prompt]:
        if self._slices is None:
            cfg = self.config
            self._slices = prompt_slices(self.all_prompts(), cfg.run.iterations,
                                         cfg.data.prompts_per_iteration, cfg.run.seed)
        if not self._slices[t]:
            raise PipelineError(f"iteration {t}: the prompt slice is empty")
        return self._slices[t]

    def iter_dir(self, t: int) -> Path:
        return paths.iter_dir(self.run_dir, t)

    def artifact(self, t: int, stage: str) -> Path:
        """What `stage` of iteration t writes (paths.ARTIFACTS)."""
        return self.iter_dir(t) / paths.ARTIFACTS[stage]

    def seed(self, t: int, stage: str) -> int:
        """A distinct, reproducible seed per (run seed, iteration, stage)."""
        return self.config.run.seed * 1000 + t * 10 + STAGE_SEEDS.get(stage, 0)

    @property
    def dtype(self) -> str:
        d = self.config.train.dtype
        return ("bfloat16" if self.device == "cuda" else "float32") if d == "auto" else d

    # -- models: M_0 the start, M_1 the seed SFT's (with [sft]), then one per iteration -----

    @property
    def offset(self) -> int:
        """Models before iteration 0's policy: 1 with the seed SFT (the loop starts from M1)."""
        return 1 if self.config.sft.enabled else 0

    def policy(self, t: int) -> int:
        """k of M_k, the policy iteration t samples from and trains (M_{k+1} is its result)."""
        return t + self.offset

    def model_path(self, k: int) -> str:
        """M_k: the starting model for k = 0, the seed SFT's for k = 1 with [sft], else the
        checkpoint the iteration before wrote."""
        if k == 0:
            return resolve_model(self.config.run.model, self.home)
        if k <= self.offset:
            return str(self.artifact(0, paths.SFT))
        return str(self.artifact(k - 1 - self.offset, "train"))

    def model_name(self, path: str) -> str:
        """M<k> for the run's models, else the path (an external judge)."""
        if path == self._start_path():
            return "M0"
        for k in range(1, self.config.run.iterations + self.offset + 1):
            if path == self.model_path(k):
                return f"M{k}"
        return path

    def _start_path(self) -> str:
        if self._m0 is None:
            self._m0 = self.model_path(0)
        return self._m0

    def loaded(self, path: str) -> bool:
        return path in self._loaded

    def load(self, path: str) -> tuple[Any, Any]:
        """(model, tokenizer) for a folder: the loaded copy when there is one, else loaded now
        after making room (the rule in the module docstring)."""
        if any(getattr(b, "name", "") == "vllm" for b in self._backends.values()):
            self.close_backends()  # its engine holds most of the GPU: give it back first
        if path in self._loaded:
            self._loaded[path] = self._loaded.pop(path)  # now the most recently used
            return self._loaded[path]
        self._make_room(path)
        started = time.perf_counter()
        self._loaded[path] = load_model(path, self.home, dtype=self.dtype, device=self.device,
                                        trust_remote_code=self.config.run.trust_remote_code)
        self._sizes[path] = model_bytes(self._loaded[path][0])
        self.loads.append(self.model_name(path))
        kept = ", ".join(self.model_name(p) for p in self._loaded)
        print(f"model load {len(self.loads)}: {self.loads[-1]} in "
              f"{time.perf_counter() - started:.1f}s ({self._sizes[path] / 2**20:.0f} MiB; "
              f"loaded: {kept})", file=sys.stderr, flush=True)
        return self._loaded[path]

    def _make_room(self, path: str) -> None:
        """Drop loaded models, least recently used first and M_0 last, until they and the
        model at `path` take at most KEEP_FRACTION of the memory they could have."""
        if not self._loaded:
            return
        need = weights_bytes(path, DTYPE_BYTES.get(self.dtype, 4))
        if need is None:  # (a Hugging Face id: as big as the biggest loaded one)
            need = max(self._sizes.values())
        held = sum(self._sizes.values())
        pool = self.memory_available() + held
        m0 = self._start_path()
        victims = sorted(self._loaded, key=lambda p: p == m0)  # (stable: LRU order otherwise)
        dropped = False
        for victim in victims:
            if held + need <= KEEP_FRACTION * pool:
                break
            held -= self._sizes.get(victim, 0)
            self._drop(victim)
            dropped = True
        if dropped:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _drop(self, path: str) -> None:
        backend = self._backends.pop(path, None)
        if backend is not None:  # (an hf backend holds the model too)
            backend.close()
        self._loaded.pop(path, None)
        self._sizes.pop(path, None)

    def memory_available(self) -> int:
        """Bytes a new model could take now: free GPU memory (with what torch's allocator
        holds unused) on a GPU, available RAM on the CPU."""
        return available_memory(self.device)

    def backend(self, path: str, seed: int) -> Any:
        """The generation backend on a model folder (`[generate] backend`), kept open for the
        next caller on the same model: vLLM's engine process, or the hf backend over `load`."""
        if path not in self._backends:
            from cream_engine.stages.generate import open_backend_on  # (stage helpers above us)

            self.close_backends()  # one engine at a time (hf ones share `load`'s model)
            self._backends[path] = open_backend_on(self, path, seed)
        return self._backends[path]

    def close_backends(self) -> None:
        """End every open backend (a vLLM engine process returns its memory here)."""
        while self._backends:
            _, backend = self._backends.popitem()
            backend.close()

    def release(self) -> None:
        """Drop every loaded model and backend (before training: its processes load their
        own copy and need the memory)."""
        self.close_backends()
        self._loaded.clear()
        self._sizes.clear()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def progress(self, t: int, stage: str, total: int, label: str | None = None, *,
                 offset: int = 0, overall: int | None = None) -> StageProgress:
        return StageProgress(self.store, self.run_id, t, stage, total, label, offset, overall)


# -- memory: what a model holds, what is free ------------------------------------------------


def model_bytes(model: Any) -> int:
    """Bytes of a loaded model's parameters and buffers (tied weights once)."""
    seen, total = set(), 0
    for t in [*model.parameters(), *model.buffers()]:
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def weights_bytes(path: str, dtype_bytes: int) -> int | None:
    """Bytes a model folder's weights take loaded in a dtype of `dtype_bytes`, read from its
    safetensors headers (nothing loaded); None for what is not a local folder."""
    files = sorted(Path(path).glob("*.safetensors")) if Path(path).is_dir() else []
    if not files:
        return None
    count = 0
    for f in files:
        with open(f, "rb") as fh:
            header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        for name, info in header.items():
            if name != "__metadata__":
                n = 1
                for d in info["shape"]:
                    n *= d
                count += n
    return count * dtype_bytes


def available_memory(device: str) -> int:
    """Free memory of the device a model goes to (see RunContext.memory_available)."""
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info()
        return free + torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
    try:
        with open("/proc/meminfo") as fh:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh}
        available = info.get("MemAvailable", info.get("MemFree", 0))
    except OSError:
        return 0
    try:  # a container's own limit (cgroup v2) may be lower than the machine's RAM
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(available, 0)
