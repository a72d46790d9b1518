"""The shape of a decoder-only model, read from its `config.json` alone (no weights, no model
library): what `plan.py` counts parameters and bytes from.

Where the config comes from:
1. a bundled model: its shape is fixed (models.py builds it), written down here;
2. a local folder: its `config.json`;
3. a Hugging Face id: the `config.json` of its snapshot in the local Hugging Face cache
   (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`); nothing is
   downloaded: a model not cached cannot be planned (one `ModelError` line says so).

Only Llama-like decoders are counted (Llama, Mistral, Qwen2, SmolLM, …): token embeddings, per
layer attention with grouped-query K/V heads and a gated (SwiGLU) MLP of three matrices, two
RMSNorms, a final norm, and an output head unless it is tied to the embeddings. A config that
lacks one of those numbers, or describes a mixture of experts, is refused: a count from a
guessed shape would be wrong without saying so.

Light layer: standard library only.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cream_engine.errors import ModelError

REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "vocab_size")


@dataclass(frozen=True)
class ModelShape:
    """What the memory of a Llama-like decoder depends on."""

    name: str
    hidden: int                 # h
    layers: int                 # L
    heads: int                  # query heads
    kv_heads: int               # key/value heads (GQA: fewer than heads)
    head_dim: int
    intermediate: int           # i, the MLP's inner width
    vocab: int                  # V
    tied: bool                  # output head shares the embedding matrix
    context: int | None = None  # max_position_embeddings
    attention_bias: bool = False  # biases on q, k, v (Qwen2), and on o with `attention_bias`
    o_bias: bool = False
    mlp_bias: bool = False

    @property
    def kv_width(self) -> int:
        """Width of K (and of V): kv_heads x head_dim."""
        return self.kv_heads * self.head_dim

    @property
    def layer_parameters(self) -> int:
        """One decoder layer: q and o are h x (heads x head_dim), k and v h x kv_width; gate,
        up and down are h x i; two RMSNorm weight vectors of h."""
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_width, self.intermediate
        attention = h * q + 2 * h * kv + q * h
        attention += (q + 2 * kv) * self.attention_bias + h * self.o_bias
        mlp = 3 * h * i + (2 * i + h) * self.mlp_bias
        return attention + mlp + 2 * h

    @property
    def outer_parameters(self) -> int:
        """Outside the layers: the embeddings (V x h), the final norm, an untied head (h x V)."""
        embed = self.vocab * self.hidden
        return embed + self.hidden + (0 if self.tied else embed)

    @property
    def parameters(self) -> int:
        return self.layers * self.layer_parameters + self.outer_parameters

    def lora_parameters(self, rank: int) -> int:
        """LoRA on every linear layer of the decoder (PEFT's `all-linear`: q, k, v, o, gate,
        up, down; never the output head): r x (d_in + d_out) per matrix."""
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_width, self.intermediate
        per_layer = (h + q) + 2 * (h + kv) + (q + h) + 3 * (h + i)
        return self.layers * rank * per_layer

    def kv_cache_bytes(self, tokens: int, dtype_bytes: int) -> int:
        """K and V of every layer for `tokens` positions."""
        return 2 * self.layers * self.kv_width * dtype_bytes * tokens

    def describe(self) -> str:
        return (f"{self.hidden} hidden, {self.layers} layers, {self.heads}/{self.kv_heads} "
                f"heads, {self.intermediate} MLP, vocab {self.vocab}"
                + (", tied" if self.tied else ""))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "parameters": self.parameters}


# the bundled models' shapes (models.py: SmolLM2-135M-Instruct's GGUF config, and the tiny
# random Llama it builds on the same tokenizer); a test checks them against the built folders
BUNDLED = {
    "smollm2-135m-instruct": ModelShape("bundled:smollm2-135m-instruct", hidden=576, layers=30,
                                        heads=9, kv_heads=3, head_dim=64, intermediate=1536,
                                        vocab=49152, tied=True, context=8192),
    "tiny-random": ModelShape("bundled:tiny-random", hidden=64, layers=2, heads=4, kv_heads=2,
                              head_dim=16, intermediate=128, vocab=49152, tied=True,
                              context=2048),
}


def shape_from_config(config: dict[str, Any], name: str) -> ModelShape:
    """A `ModelShape` from the dict of a `config.json`; `ModelError` naming what is missing."""
    config = config.get("text_config") or config  # (a multimodal wrapper around a decoder)
    if any(config.get(k) for k in ("num_local_experts", "num_experts", "n_routed_experts")):
        raise ModelError(f"model {name!r}: a mixture of experts, which `cream plan` does not "
                         "count (only dense Llama-like decoders)")
    missing = [k for k in REQUIRED
               if not isinstance(config.get(k), int) or isinstance(config.get(k), bool)]
    if missing:
        raise ModelError(f"model {name!r}: its config.json has no {', '.join(missing)}: not a "
                         "Llama-like decoder, so its memory cannot be planned")
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    qwen2 = config.get("model_type") in ("qwen2",)  # (q, k, v biases without a config key)
    bias = bool(config.get("attention_bias", False))
    context = config.get("max_position_embeddings")
    return ModelShape(
        name=name, hidden=config["hidden_size"], layers=config["num_hidden_layers"],
        heads=heads, kv_heads=kv_heads, head_dim=head_dim,
        intermediate=config["intermediate_size"], vocab=config["vocab_size"],
        tied=bool(config.get("tie_word_embeddings", True)),
        context=context if isinstance(context, int) else None,
        attention_bias=bias or qwen2, o_bias=bias, mlp_bias=bool(config.get("mlp_bias", False)))


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, as huggingface_hub finds it."""
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(key):
            return Path(os.environ[key]).expanduser()
    hf_home = os.environ.get("HF_HOME") or \
        Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface"
    return Path(hf_home).expanduser() / "hub"


def cached_config(repo_id: str) -> Path | None:
    """`config.json` of a model in the local Hugging Face cache (its `main` snapshot, else
    any cached snapshot), None when it is not there."""
    folder = hf_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    ref = folder / "refs" / "main"
    try:
        if ref.is_file():
            found = folder / "snapshots" / ref.read_text().strip() / "config.json"
            if found.is_file():
                return found
        return next(iter(sorted((folder / "snapshots").glob("*/config.json"))), None)
    except OSError:
        return None


def read_shape(spec: str) -> ModelShape:
    """The shape of the model a `[run] model` spec names (bundled, local folder, or a cached
    Hugging Face id); `ModelError` with one line when it cannot be known here."""
    if spec.startswith("bundled:"):
        if spec[8:] not in BUNDLED:
            raise ModelError(f"model {spec!r}: unknown bundled model")
        return BUNDLED[spec[8:]]
    path = Path(spec).expanduser()
    if path.is_dir():
        config_file = path / "config.json"
        if not config_file.is_file():
            raise ModelError(f"model {spec!r}: no config.json in that folder")
    elif path.is_absolute() or spec.startswith((".", "~")) or spec.count("/") != 1:
        raise ModelError(f"model {spec!r}: no such folder")
    else:
        cached = cached_config(spec)
        if cached is None:
            raise ModelError(f"model {spec!r}: not a local folder and not in the Hugging Face "
                             f"cache ({hf_cache_dir()}): download it first (e.g. "
                             f"`huggingface-cli download {spec} config.json`)")
        config_file = cached
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"model {spec!r}: {config_file} is not readable JSON ({e})") from None
    if not isinstance(config, dict):
        raise ModelError(f"model {spec!r}: {config_file} is not a JSON object")
    return shape_from_config(config, spec)
