"""Everything a stage needs to know about its run: config, folders, store, device, models.

Heavy layer (torch is imported inside the methods that need it).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cream_engine import paths
from cream_engine.config import ExperimentConfig
from cream_engine.data import Prompt, load_prompts, prompt_slices
from cream_engine.progress import StageProgress
from cream_engine.runs import load_run_config
from cream_engine.store import Store

STAGE_SEEDS = {"generate": 1, "reward": 2, "pairs": 4, "train": 5}


class PipelineError(RuntimeError):
    """A run cannot go on (no pairs, an empty slice…): one line for the store and stderr."""


@dataclass
class RunContext:
    run_id: str
    run_dir: Path
    home: Path
    config: ExperimentConfig
    store: Store
    device: str = "cpu"
    _slices: list[list[Prompt]] | None = None
    _loaded: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @classmethod
    def open(cls, run_dir: Path, store: Store) -> "RunContext":
        import torch
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress goes to stderr and the store
        run_dir = run_dir.absolute()
        config = load_run_config(run_dir)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(run_id=run_dir.name, run_dir=run_dir, home=run_dir.parent, config=config,
                   store=store, device=device)

    # -- data and folders ----------------------------------------------------------------

    def prompts(self, t: int) -> list[Prompt]:
        if self._slices is None:
            cfg = self.config
            self._slices = prompt_slices(load_prompts(cfg.data.prompts), cfg.run.iterations,
                                         cfg.data.prompts_per_iteration, cfg.run.seed)
        if not self._slices[t]:
            raise PipelineError(f"iteration {t}: the prompt slice is empty")
        return self._slices[t]

    def iter_dir(self, t: int) -> Path:
        return paths.iter_dir(self.run_dir, t)

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
            from cream_engine.models import resolve_model

            return resolve_model(self.config.run.model, self.home)
        return str(self.iter_dir(t - 1) / "model")

    def load(self, path: str) -> tuple[Any, Any]:
        """(model, tokenizer) for a folder, keeping only the latest one in memory."""
        if path not in self._loaded:
            self.release()
            from cream_engine.models import load_model

            self._loaded[path] = load_model(path, self.home, dtype=self.dtype,
                                            device=self.device,
                                            trust_remote_code=self.config.run.trust_remote_code)
        return self._loaded[path]

    def release(self) -> None:
        self._loaded.clear()
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    def progress(self, t: int, stage: str, total: int, label: str | None = None, *,
                 offset: int = 0, overall: int | None = None) -> StageProgress:
        return StageProgress(self.store, self.run_id, t, stage, total, label, offset, overall)
