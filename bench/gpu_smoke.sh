#!/usr/bin/env bash
# The GPU smoke check, for a GPU box with `make setup` done (and `make test-vllm`'s .venv-vllm
# for the vLLM line, when vLLM is wanted). Runs unchanged on any box; prints each part's JSON
# line and a summary. Each part runs even when an earlier one failed.
#   1. NVML: the GPUs as `cream gpus` sees them
#   2. an 8B-class model (Llama-3-8B's shape, random weights): DPO steps with LoRA on one GPU,
#      then full fine-tuning with FSDP over the visible GPUs; peak memory per GPU (NVML) beside
#      `cream plan`'s estimate
#   3. generation tokens/s, HF vs vLLM, on the bundled SmolLM2 (expect vLLM >= 10x)
# Usage: bash bench/gpu_smoke.sh [--quick]   (--quick: the tiny shape instead of 8B)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
VLLM_PY=${VLLM_PY:-.venv-vllm/bin/python}
SHAPE=tests/fixtures/llama3-8b/config.json
work=${CREAM_SMOKE_WORK:-${TMPDIR:-/tmp}/cream-gpu-smoke}
if [ "${1:-}" = "--quick" ]; then
  mkdir -p "$work/tiny-shape"
  printf '{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":2048,"vocab_size":49152,"tie_word_embeddings":true}\n' >"$work/tiny-shape/config.json"
  SHAPE=$work/tiny-shape/config.json
fi
export CREAM_SMOKE_WORK=$work PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$work"
printf '[run]\nmodel = "%s"\n[train]\nprocesses = "auto"\nstrategy = "fsdp"\n' \
  "$(cd "$(dirname "$SHAPE")" && pwd)" >"$work/plan.toml"
results=()
part() {  # name, then the command
  local name=$1; shift
  echo "== $name" >&2
  local started=$SECONDS line
  line=$("$@" | tail -n 1)
  echo "$line"
  results+=("$name ($((SECONDS - started))s): ${line:-failed}")
}
nvidia-smi -L 2>/dev/null || echo "nvidia-smi: no NVIDIA driver here" >&2
part "nvml" "$PY" bench/gpu_smoke.py nvml
part "plan, these GPUs" "$PY" -m cream_tui.cli plan "$work/plan.toml" --json
part "memory lora" "$PY" bench/gpu_smoke.py memory --shape "$SHAPE" --mode lora
part "memory fsdp" "$PY" bench/gpu_smoke.py memory --shape "$SHAPE" --mode fsdp
part "generate hf" "$PY" bench/gpu_smoke.py generate --backend hf
if [ -x "$VLLM_PY" ]; then
  part "generate vllm" "$VLLM_PY" bench/gpu_smoke.py generate --backend vllm
else
  results+=("generate vllm: skipped ($VLLM_PY missing: run make test-vllm once)")
fi
echo
echo "== summary"
printf '%s\n' "${results[@]}"
