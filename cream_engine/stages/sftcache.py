"""M1, the seed SFT's model, trained once per data home: runs that start from the same M0 and
fine-tune it on the same seed data the same way (the demo's two) share it.

An entry is keyed by everything the weights depend on (`sft_settings`): the content of M0's
folder and of the seed file, `[sft]`, the `[train]` keys the SFT reads (precision, LoRA,
warm-up, weight decay, checkpointing), the stage's seed, device and dtype, the versions of
torch, transformers and TRL, and the source of the modules that train. Training on the same
device with the same seed gives the same weights, so a copy is what the run would compute.

`<home>/cache/sft/<key>/` holds `entry.json` (those settings, the stage's summary and a sha256
per file) and `model/`; written as one folder that appears whole, and ignored when a file does
not match its hash.

Heavy layer (torch and transformers only for their versions).
"""

from __future__ import annotations

import dataclasses
import shutil
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cream_engine import paths
from cream_engine.files import atomic_folder, one_at_a_time
from cream_engine.seeds import seed_digest
from cream_engine.stages.evalcache import (
    _sha_file,
    _sha_json,
    model_digest,
    read_entry,
    write_entry,
)

VERSION = 1
CODE = ("stages/sft.py", "sft_trainer.py", "trainer.py", "seeds.py", "models.py",
        "stages/train.py")
TRAIN_KEYS = ("dtype", "lora", "lora_rank", "lora_alpha", "warmup_ratio", "weight_decay",
              "activation_checkpointing")


def sft_settings(ctx: Any, seed: int) -> dict | None:
    """What M1's weights depend on, as plain JSON; None when M0 is not a folder on this
    machine (nothing to hash, no caching)."""
    import torch
    import transformers

    cfg = ctx.config
    model = model_digest(ctx.model_path(0), ctx.home)
    if model is None:
        return None
    root = Path(__file__).resolve().parent.parent
    return {
        "version": VERSION, "model": model, "data": seed_digest(cfg.sft.data),
        "sft": dataclasses.asdict(cfg.sft) | {"data": None},
        "train": {k: getattr(cfg.train, k) for k in TRAIN_KEYS},
        "seed": seed, "device": ctx.device,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "trl": version("trl")},
        "code": _sha_json({name: _sha_file(root / name) for name in CODE}),
    }


def entry_dir(home: Path, settings: dict) -> Path:
    return paths.sft_cache_dir(home) / _sha_json(settings)[:32]


def shared(home: Path, settings: dict) -> Any:
    """Held while a run looks up, trains and keeps one entry: runs started together train
    M1 once, the others waiting, then copying."""
    lock = paths.sft_cache_dir(home) / f".{entry_dir(home, settings).name}.lock"
    return one_at_a_time(lock, "sft: another run is training the same M1; waiting to copy it")


def restore(home: Path, settings: dict, out_dir: Path) -> dict | None:
    """The summary of a matching entry, its model copied to `out_dir` (which appears
    complete); None when there is no usable entry."""
    entry = entry_dir(home, settings)
    meta = read_entry(entry, settings, "model")
    if meta is None:
        return None
    with atomic_folder(out_dir) as folder:
        shutil.copytree(entry / "model", folder, dirs_exist_ok=True)
    return {**meta["summary"], "cache": "hit", "cache_key": entry.name,
            "seconds_saved": meta["summary"].get("seconds")}


def save(home: Path, settings: dict, model_dir: Path, summary: dict) -> str | None:
    """Keep a trained M1 for later runs; the note to record when it could not be kept."""
    return write_entry(entry_dir(home, settings),
                       lambda folder: shutil.copytree(model_dir, folder / "model"),
                       {"settings": settings, "summary": summary}, "sft: M1")
