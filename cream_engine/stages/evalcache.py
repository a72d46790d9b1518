"""M0's evaluation (and the seed SFT's M1's), computed once per data home: runs that start
from the same model and evaluate it the same way share it (the demo's two runs used to
evaluate one M0 twice).

An entry is keyed by everything the baseline's numbers depend on (`baseline_settings`):
- the content of M0's folder and of the judge's (sha256 of every file, remembered per folder
  under `<home>/cache/digests/` keyed by each file's size and mtime, so a 16 GB model is read
  once, not once per run);
- the evaluation sets as loaded (their items after `max_items`, so a file's content and the
  limit both count), the held-out prompts themselves (they follow from the prompt file, the
  seed, the iterations and the slice size), and the settings the stage reads: generative,
  loglik, max_new_tokens and batch sizes (padding moves the last digits), the generation
  backend, device and dtype;
- the library versions and the source of the modules the evaluation runs, so a change of
  code never serves numbers it would no longer compute.

`<home>/cache/eval/<key>/` holds `entry.json` (those settings and a sha256 per file),
`baseline.json` and `baseline/` (the per-item details, which M1's win rate reads). It is
written as one folder that appears whole (files.atomic_folder); an entry whose files do not
match their hashes, or that cannot be read, is ignored and written again.

Heavy layer (torch and transformers only for their versions).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cream_engine import files, paths
from cream_engine.backends import choose_backend
from cream_engine.evalsets import EvalSet
from cream_engine.files import atomic_folder, write_atomic, write_json
from cream_engine.modelfiles import local_folder

# of the entry's layout and the scoring rules (2: the harness's contexts per set, acc_norm per
# character, acc_bytes, the last "Answer:"/"answer is" and an expression's result)
VERSION = 2
ENTRY = "entry.json"
# the modules whose code decides the baseline's numbers (by module name, under cream_engine)
CODE = ("stages/evaluate.py", "stages/loglik.py", "evalsets.py", "answers.py",
        "judges/pointwise.py", "judges/pairwise.py",
        "logprobs.py", "backends/hf.py", "backends/vllm.py", "stages/score.py",
        "stages/generate.py", "prompts.py", "models.py")


# -- the key --------------------------------------------------------------------------------


def baseline_settings(ctx: Any, sets: list[EvalSet], held: list[Any], judge: str, *,
                      model: str | None = None, against: str | None = None) -> dict | None:
    """What the evaluation of `model` (default M0; the seed SFT's M1 too) depends on, as
    plain JSON, `against` being the model its win rate is measured over (M1's: M0); None when
    a model is not a folder on this machine (a Hugging Face id not in the local cache):
    nothing to hash, no caching."""
    import torch
    import transformers

    cfg = ctx.config
    evaluated = model or ctx.model_path(0)
    digests = {path: model_digest(path, ctx.home)
               for path in {evaluated, judge, *([against] if against else [])}}
    if None in digests.values():
        return None
    model, judge_digest = digests[evaluated], digests[judge]
    gen = cfg.generate
    return {
        "version": VERSION, "model": model, "judge": judge_digest,
        **({"against": digests[against]} if against else {}),
        "sets": [{"name": s.name, "items": _sha_json([dataclasses.asdict(i) for i in s.items])}
                 for s in sets],
        "held_out": _sha_json([p.to_json() for p in held]),
        "eval": {k: getattr(cfg.eval, k) for k in ("generative", "loglik", "max_new_tokens",
                                                   "batch_size")},
        "generate": {"backend": choose_backend(gen.backend, ctx.device == "cuda"),
                     "max_new_tokens": gen.max_new_tokens, "batch_size": gen.batch_size,
                     "tensor_parallel_size": getattr(gen, "tensor_parallel_size", 1)},
        "device": ctx.device, "dtype": ctx.dtype,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "code": code_digest(),
    }


def key_of(settings: dict) -> str:
    return _sha_json(settings)[:32]


def _sha_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def code_digest() -> str:
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for name in CODE:
        h.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return h.hexdigest()


def model_folder(spec: str) -> Path | None:
    """The folder a resolved model lives in: a local folder, else a Hugging Face id's cached
    snapshot (None when it is not cached)."""
    folder = local_folder(spec)
    if folder is not None:
        return folder.absolute()
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(spec, "config.json")
    return Path(found).parent if isinstance(found, str) else None


def model_digest(spec: str, home: Path) -> str | None:
    """sha256 over the names and contents of a model folder's files (hidden ones aside),
    remembered in `<home>/cache/digests/` against each file's size and mtime."""
    folder = model_folder(spec)
    if folder is None or not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    stamp = {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files}
    memo = paths.digests_dir(home) / f"{hashlib.sha256(str(folder).encode()).hexdigest()[:32]}.json"
    try:
        known = json.loads(memo.read_text(encoding="utf-8"))
        if known.get("folder") == str(folder) and known.get("files") == stamp:
            return str(known["digest"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0")
        h.update(_sha_file(p).encode() + b"\0")
    digest = h.hexdigest()
    try:
        write_json(memo, {"folder": str(folder), "files": stamp, "digest": digest})
    except OSError:  # (remembering is an optimisation)
        pass
    return digest


def _sha_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- entries --------------------------------------------------------------------------------


def entry_dir(home: Path, settings: dict) -> Path:
    return paths.eval_cache_dir(home) / key_of(settings)


def one_at_a_time(home: Path, settings: dict) -> contextlib.AbstractContextManager[None]:
    """Held while a run looks up, computes and keeps one entry: runs started together (the
    demo's two) evaluate M0 once, the second waiting for the first and then copying. The OS
    drops the lock of a process that dies, so a killed run never blocks the next."""
    return files.one_at_a_time(
        paths.eval_cache_dir(home) / f".{key_of(settings)}.lock",
        "evaluation: another run is evaluating the same model with the same settings; "
        "waiting to copy its result")


def restore(home: Path, settings: dict, run_id: str, artifact: Path,
            details: Path) -> dict | None:
    """The stage info of an entry that matches `settings`, with its details copied to
    `details` and its artifact to `artifact`, as they were computed (details first: the
    artifact marks the stage done); None when there is no usable entry. The info says where
    the numbers came from: `cache` = hit, or stored when this run computed the entry itself
    (a resume after a kill between keeping it and finishing the stage)."""
    entry = entry_dir(home, settings)
    meta = _valid_entry(entry, settings)
    if meta is None:
        return None
    if details.exists():
        shutil.rmtree(details)  # (what an interrupted attempt left)
    for name in meta["files"]:
        if name.startswith("baseline/"):
            write_atomic(details / name[len("baseline/"):], (entry / name).read_bytes())
    write_atomic(artifact, (entry / "baseline.json").read_bytes())
    info = json.loads(artifact.read_text(encoding="utf-8"))
    if meta.get("run_id") == run_id:
        return {**info, "cache": "stored", "cache_key": entry.name}
    spent = sum(v for v in info.get("seconds_by_part", {}).values() if isinstance(v, (int, float)))
    return {**info, "cache": "hit", "cache_key": entry.name, "seconds_saved": round(spent, 2)}


def _valid_entry(entry: Path, settings: dict) -> dict | None:
    """A baseline entry's record (read_entry) when it also holds a readable baseline.json."""
    meta = read_entry(entry, settings, "baseline.json")
    try:
        if meta is not None:
            json.loads((entry / "baseline.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta


def read_entry(entry: Path, settings: dict, needed: str) -> dict | None:
    """A cache entry's record when its settings match, it lists `needed`, and every file is
    there with its recorded hash; else None (written again by the caller)."""
    try:
        meta = json.loads((entry / ENTRY).read_text(encoding="utf-8"))
        files = meta["files"]
        if meta.get("settings") != settings or not any(
                f == needed or f.startswith(needed + "/") for f in files):
            return None
        for name, sha in files.items():
            if _sha_file(entry / name) != sha:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return meta


def save(home: Path, settings: dict, run_id: str, artifact: Path, details: Path) -> str | None:
    """Keep a computed baseline for later runs; the note to record when it could not be kept."""
    def fill(folder: Path) -> None:
        shutil.copyfile(artifact, folder / "baseline.json")
        if details.is_dir():
            shutil.copytree(details, folder / "baseline")

    return write_entry(entry_dir(home, settings), fill, {"settings": settings, "run_id": run_id},
                       "baseline")


def write_entry(entry: Path, fill: Callable[[Path], None], record: dict,
                what: str) -> str | None:
    """Write a cache entry as one folder that appears whole: `fill` puts its files in, then
    `entry.json` holds `record` and a sha256 per file. Returns the note to record when it
    could not be written (a full disk: the run goes on, it only misses the cache next time)."""
    try:
        with atomic_folder(entry) as folder:
            fill(folder)
            files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
            write_json(folder / ENTRY, {**record,
                                        "files": {f: _sha_file(folder / f) for f in files}})
    except OSError as e:
        print(f"{what}: not cached ({e})", file=sys.stderr, flush=True)
        return f"not cached: {e.strerror or e}"
    return None
