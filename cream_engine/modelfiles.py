"""What a model folder must hold before a run is queued on it, checked from its file names
alone (no model library is imported): `config.json`, a tokenizer, and safetensors weights.

Weights must be safetensors. A pickle checkpoint (`pytorch_model.bin`, `*.pt`, `*.pth`, `*.ckpt`)
can run code when it is loaded, and only recent torch versions refuse that by default; a folder
that has only those is refused with the command that converts it once.

Light layer: standard library only.
"""

from __future__ import annotations

import json
from pathlib import Path

from cream_engine import paths
from cream_engine.errors import ModelError

MARKER = "cream-model.json"        # written last into a bundled model folder we built
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model",
                   "tokenizer.tiktoken")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
CONVERT = "python -m cream_engine convert-model {src} {src}-safetensors"


def bundled_folder(home: Path, name: str) -> Path:
    """Where `bundled:<name>` is built (it exists once MARKER is in it)."""
    return paths.models_dir(home) / name


def local_folder(spec: str) -> Path | None:
    """The folder a model spec names, None for a Hugging Face id or a bundled model."""
    if spec.startswith("bundled:"):
        return None
    path = Path(spec).expanduser()
    if path.is_dir() or spec.startswith(("/", "./", "../", "~")) or path.exists():
        return path
    return None


def check_model_folder(folder: Path, field: str) -> None:
    """Refuse a folder that cannot be a saved causal LM: one `ModelError` line naming the field,
    the folder and what is missing."""
    where = f"{field} = {str(folder)!r}"
    if not folder.is_dir():
        raise ModelError(f"{where}: no such folder")
    try:
        names = {p.name for p in folder.iterdir()}
    except OSError as e:
        raise ModelError(f"{where}: cannot read the folder ({e.strerror})") from None
    if "adapter_config.json" in names and "config.json" not in names:
        raise ModelError(f"{where}: a LoRA adapter, not a model (merge it into its base model "
                        "first)")
    if "config.json" not in names:
        raise ModelError(f"{where}: no config.json (not a saved model)")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{where}: config.json is not readable JSON ({e})") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise ModelError(f"{where}: config.json has no model_type (not a transformers model)")
    if not any(n in names for n in TOKENIZER_FILES):
        raise ModelError(f"{where}: no tokenizer (expected one of "
                        f"{', '.join(TOKENIZER_FILES)})")
    if any(n.endswith(".safetensors") for n in names):
        return
    if any(n.endswith(PICKLE_SUFFIXES) for n in names):
        raise ModelError(f"{where}: only pickle weights (e.g. pytorch_model.bin), which can run "
                        "code when loaded; convert them once with `"
                        + CONVERT.format(src=folder) + "` and use that folder")
    raise ModelError(f"{where}: no weights (*.safetensors)")
