"""How many bytes a model needs in each kind of pass: the formulas `cream plan` adds up.

Estimates written so a reader can check them. P is the parameter count (shapes.py); h, i, V, L
the hidden width, MLP width, vocabulary and number of layers; T the tokens of one batch.

- Weights for inference: P x 2 B in bf16 (a GPU with `[train] dtype = "auto"`), 4 B in fp32.
- KV cache: 2 (K and V) x L x kv_heads x head_dim x bytes, per token held.
- No-grad forward (score, evaluate, a generation's prefill): the model runs one layer at a
  time, so only one layer's temporaries live: T x (4h + 3i) x bytes; the LM head is chunked
  (issue 13, item 5): fp32 logits and their log-softmax for LOGITS_CHUNK_TOKENS at a time.
- Training, full fine-tune with AdamW: the usual mixed-precision rule of 16 B per parameter
  (fp32 weights 4 + fp32 gradients 4 + Adam's two fp32 moments 8). `dtype = "auto"` on a GPU
  trains fp32 master weights under bf16 autocast, which caches a 2 B bf16 copy of every weight
  it casts until the forward pass ends (the backward uses them): 18 B per parameter. With
  activation checkpointing the casts are made again one layer at a time in the backward pass,
  so only the layer being recomputed (and the embeddings/head) hold them: 16 B per parameter
  plus those. Measured on an H200 (2026-11-29, bench/gpu_smoke.sh), Llama-3-8B's shape with a
  49K vocabulary (7.38B parameters), batches of 2 pairs of 256 tokens, checkpointing: the full
  fine-tune peaked at 115.2 GiB (this says 113.6), LoRA at 29.7 GiB (this says 30.9).
  `bfloat16` weights halve the 16 B (gradients and moments follow the weights' dtype) with no
  casts. DDP keeps one more copy of the gradients in its buckets. FSDP full-shard and DeepSpeed
  ZeRO-3 divide weights, gradients and optimizer states by the N processes, but gather the
  unit being computed (and prefetch the next: two decoder layers) and keep the root unit
  (embeddings, final norm, head) whole.
- LoRA: the frozen weights in the training dtype (no gradients, no optimizer states), plus the
  adapters (r x (d_in + d_out) per linear layer) at 16 B per parameter (PEFT keeps them fp32;
  20 B under DDP, its buckets). LoRA over several processes is always DDP (config.py).
  Under autocast the frozen weights' bf16 casts are not cached but saved for the backward pass
  (2 B per parameter), one layer's only with activation checkpointing.
- Activations kept for the backward pass, per token and layer: about 8h + 4i + 2 kv_width
  values (each norm's input in fp32, the attention's q, k, v and output, the MLP's gate, up,
  activation and product); T = 2 x b x max_length, b the pairs of one process's batch
  (`[train] batch_size` / processes: DPO runs chosen and rejected together; SCIR adds its two
  judge prompts of 2 x max_length). Activation checkpointing keeps each
  layer's input (h values) and recomputes one layer at a time. Training's LM head is not
  chunked: 12 B per token and vocabulary entry (fp32 logits, log-softmax, their gradient).
- The reference log-probabilities are precomputed: no reference model stays in memory.
- Every process adds RUNTIME_GIB (CUDA context, cuBLAS workspace, the framework's buffers).
- vLLM reserves `gpu_memory_utilization` of each GPU: its weights / tensor-parallel size, a
  profiling batch of VLLM_PROFILE_TOKENS and at least one sequence's KV cache must fit in it.

Checked against what STACK-NOTES measured for SmolLM2-135M on the CPU (fp32): a full
fine-tune on batches of 2 pairs of ~240 tokens peaked at 5.4 GB (this says 4.7 GiB = 5.0 GB);
LoRA on short pairs at 2.0 GB (this says about 2.0 GiB).

Light layer: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from cream_engine.config import TrainConfig
from cream_engine.shapes import ModelShape

GIB = 1024 ** 3
RUNTIME_GIB = 1.0
LOGITS_CHUNK_TOKENS = 1024     # the scoring pass's chunked LM head (issue 13, item 5)
TRAIN_LOGIT_BYTES = 12         # fp32 logits, their log-softmax and their gradient
VLLM_PROFILE_TOKENS = 8192     # vLLM's profiling batch (its max_num_batched_tokens)
SHARDED = {"fsdp": "FSDP", "deepspeed": "ZeRO-3"}
RUNTIME = RUNTIME_GIB * GIB

Parts = dict[str, float]       # what a need is made of, in bytes, in the order shown


def _layer_temporaries(shape: ModelShape, tokens: int, dtype_bytes: int) -> float:
    """One layer's temporaries in a no-grad pass: residual, normed input, attention output,
    the MLP's gate, up and their product."""
    return tokens * (4 * shape.hidden + 3 * shape.intermediate) * dtype_bytes


def forward_parts(shape: ModelShape, tokens: int, dtype_bytes: int) -> Parts:
    """A no-grad pass over one batch of `tokens` tokens, with the chunked LM head."""
    return {"weights": shape.parameters * dtype_bytes,
            "activations": _layer_temporaries(shape, tokens, dtype_bytes),
            "logits": min(tokens, LOGITS_CHUNK_TOKENS) * shape.vocab * 8,
            "runtime": RUNTIME}


def generation_parts(shape: ModelShape, seqs: int, length: int, prompt: int,
                     dtype_bytes: int) -> Parts:
    """transformers' `generate` of `seqs` sequences of `length` tokens at once (prompts of
    `prompt` tokens, prefilled together; only the last position's logits are computed)."""
    return {"weights": shape.parameters * dtype_bytes,
            "KV cache": shape.kv_cache_bytes(seqs * length, dtype_bytes),
            "activations": _layer_temporaries(shape, seqs * prompt, dtype_bytes),
            "logits": seqs * shape.vocab * 4, "runtime": RUNTIME}


def vllm_minimum(shape: ModelShape, length: int, dtype_bytes: int, tp: int) -> Parts:
    """What one GPU of a vLLM engine sharded over `tp` GPUs needs inside its reservation."""
    return {"weights": shape.parameters * dtype_bytes / tp,
            "activations": _layer_temporaries(shape, VLLM_PROFILE_TOKENS, dtype_bytes) / tp,
            "KV cache": shape.kv_cache_bytes(length, dtype_bytes) / tp,
            "runtime": RUNTIME}


def vllm_cpu_parts(shape: ModelShape, reserved: float, dtype_bytes: int) -> Parts:
    """vLLM's CPU build: the weights, plus `gpu_memory_utilization` of the RAM for the KV
    cache."""
    return {"weights": shape.parameters * dtype_bytes, "KV cache": reserved,
            "activations": _layer_temporaries(shape, VLLM_PROFILE_TOKENS, dtype_bytes),
            "runtime": RUNTIME}


@dataclass(frozen=True)
class Layout:
    """How training is done: LoRA or full, N processes, their strategy, checkpointing, and
    the dtype the weights are loaded in (`[train] dtype`)."""

    lora: bool
    processes: int
    strategy: str
    checkpointing: bool
    dtype: str = "auto"

    @property
    def sharded(self) -> bool:
        return self.processes > 1 and self.strategy in SHARDED

    def describe(self, on_gpu: bool = True) -> str:
        where = "1 GPU" if on_gpu else "1 process"
        if self.processes > 1:
            unit = "GPUs" if on_gpu else "processes"
            where = f"{SHARDED.get(self.strategy, 'DDP')} over {self.processes} {unit}"
        return (("LoRA, " if self.lora else "") + where
                + (", checkpointing" if self.checkpointing else "")
                + (", bf16 weights" if self.dtype == "bfloat16" else ""))


def train_parts(shape: ModelShape, train: TrainConfig, layout: Layout, on_gpu: bool,
                method: str = "cream") -> Parts:
    """Bytes one training process holds at its peak (the formulas of this module's
    docstring); `train` gives the batch, length and LoRA rank, `layout` the rest."""
    autocast = layout.dtype == "auto" and on_gpu
    w = 2 if layout.dtype == "bfloat16" else 4              # weight (and state) bytes
    a = 2 if layout.dtype == "bfloat16" or autocast else 4  # activation bytes
    n = layout.processes if layout.sharded else 1
    p = shape.parameters
    gathered = shape.outer_parameters + 2 * shape.layer_parameters if layout.sharded else p
    parts: Parts = {}
    if layout.lora:
        adapters = shape.lora_parameters(train.lora_rank)
        parts["weights (frozen)"] = p * w / n
        parts["adapters+AdamW"] = adapters * (20 if layout.processes > 1 else 16)
        if autocast:
            parts["bf16 casts"] = (2 * shape.layer_parameters if layout.checkpointing
                                   else gathered) * 2
    else:
        parts["weights+grads+AdamW"] = p * 4 * w / n
        if autocast:  # with checkpointing only the layer being recomputed holds its casts
            parts["bf16 casts"] = (shape.outer_parameters + 2 * shape.layer_parameters
                                   if layout.checkpointing else gathered) * 2
        if layout.processes > 1 and not layout.sharded:
            parts["DDP buckets"] = p * w
    if layout.sharded:
        parts["gathered units"] = gathered * w
    batch = -(-train.batch_size // layout.processes)       # pairs per process
    tokens = 2 * batch * train.max_length
    seen = tokens + (2 * batch * 2 * train.max_length if method == "scir" else 0)
    per_layer = 8 * shape.hidden + 4 * shape.intermediate + 2 * shape.kv_width
    if layout.checkpointing:
        parts["activations"] = seen * a * (shape.layers * shape.hidden + per_layer)
    else:
        parts["activations"] = seen * a * shape.layers * per_layer
    parts["logits"] = tokens * shape.vocab * TRAIN_LOGIT_BYTES
    parts["runtime"] = RUNTIME
    return parts
