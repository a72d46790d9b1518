"""Checkpoints inside the train stage: what a killed or preempted stage resumes from.

With `[train] save_every = k` the trainer saves transformers' own checkpoint (weights, optimizer,
scheduler, RNG of every rank, trainer state with its log history) every k optimizer steps into
`iter-<t>/.trainer/checkpoints/checkpoint-<step>`; this module decides which one a restarted
stage may trust:
1. complete: transformers writes a checkpoint file by file, each rank its own RNG file, and a
   kill can land anywhere in it; the trainer writes `COMPLETE` only after every rank has saved
   (one barrier), so a folder without it is half-written and ignored;
2. of this very training: `KEY_FILE` holds a hash of the pairs and settings the folder was
   written for; another hash (the pairs redone, another seed, another number of processes)
   makes every checkpoint there stale;
3. the newest such one; anything newer (half-written) is removed, so a resumed run never finds
   a stale file in the folder it saves into again.

Standard library only; heavy layer by where it is used (stages/train.py, trainer.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

FOLDER = "checkpoints"               # under the stage's scratch folder: TRL's output_dir
COMPLETE = "cream-complete"          # in a checkpoint folder: every rank has saved into it
KEY_FILE = "cream-training-key.json"  # in FOLDER: what the checkpoints were written for
TRAINER_STATE = "trainer_state.json"  # transformers' TRAINER_STATE_NAME
KEEP = 2  # save_total_limit: the newest complete one survives the writing of the next
_NAME = re.compile(r"^checkpoint-(\d+)$")


def training_key(*parts: Any) -> str:
    """A hash of everything that decides the training trajectory (pairs, settings, seed …)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def step_of(checkpoint: Path) -> int | None:
    match = _NAME.match(checkpoint.name)
    return int(match.group(1)) if match else None


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / COMPLETE).is_file() and (checkpoint / TRAINER_STATE).is_file()


def mark_complete(checkpoint: Path) -> None:
    """Called once every rank has saved into `checkpoint` (by one process)."""
    tmp = checkpoint / f".{COMPLETE}.tmp"
    tmp.write_text("", encoding="utf-8")
    os.replace(tmp, checkpoint / COMPLETE)


def resume_point(folder: Path, key: str) -> Path | None:
    """The newest complete checkpoint in `folder` written for `key`, or None (start over).

    Leaves `folder` holding only what a resumed run may build on, and `key` recorded: stale
    checkpoints (another key) are all removed, half-written ones and any newer than the one
    chosen too."""
    key_file = folder / KEY_FILE
    try:
        same = json.loads(key_file.read_text(encoding="utf-8")).get("key") == key
    except (OSError, ValueError, AttributeError):
        same = False
    if not same:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    if not same:
        tmp = folder / f".{KEY_FILE}.tmp"
        tmp.write_text(json.dumps({"key": key}), encoding="utf-8")
        os.replace(tmp, key_file)
    found = sorted((step_of(p), p) for p in folder.iterdir()
                   if p.is_dir() and step_of(p) is not None)
    chosen = next((p for _, p in reversed(found) if is_complete(p)), None)
    chosen_step = step_of(chosen) if chosen is not None else -1
    for step, path in found:
        if step > chosen_step or not is_complete(path):
            shutil.rmtree(path, ignore_errors=True)
    return chosen


def logged_rows(checkpoint: Path) -> tuple[int, int, list[dict]]:
    """(global step, total steps, the trainer's log dicts up to that step) of a checkpoint:
    what the metrics callback had streamed when it was saved."""
    state = json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))
    step = int(state["global_step"])
    rows = [dict(row) for row in state.get("log_history", []) if row.get("step", 0) <= step]
    return step, int(state.get("max_steps", 0)), rows
