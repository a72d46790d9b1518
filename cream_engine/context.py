"""Everything a stage needs to know about its run: config, folders, store, device, models.

Heavy layer: torch, transformers.
"""

from __future__ import annotations

import gc
import sys
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
STAGE_SEEDS = {"generate": 1, "score": 2, "pairs": 4, "train": 5}


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
    _loaded: dict[str, tuple[Any, Any]] = field(default_factory=dict)
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

    # -- models: M_0 the start, M_t the policy of iteration t ----------------------------

    def model_path(self, t: int) -> str:
        """M_t: the starting model for t = 0, else the checkpoint iteration t-1 wrote."""
        if t == 0:
            return resolve_model(self.config.run.model, self.home)
        return str(self.artifact(t - 1, "train"))

    def load(self, path: str) -> tuple[Any, Any]:
        """(model, tokenizer) for a folder, keeping only the latest one in memory."""
        if path not in self._loaded:
            self.release()
            self._loaded[path] = load_model(path, self.home, dtype=self.dtype,
                                            device=self.device,
                                            trust_remote_code=self.config.run.trust_remote_code)
        return self._loaded[path]

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
        self.close_backends()
        self._loaded.clear()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def progress(self, t: int, stage: str, total: int, label: str | None = None, *,
                 offset: int = 0, overall: int | None = None) -> StageProgress:
        return StageProgress(self.store, self.run_id, t, stage, total, label, offset, overall)
