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
# GEN_SHAPE=path/config.json times generation on random weights of that shape instead of the
# bundled SmolLM2 (where the GGUF is not installed); CREAM_SMOKE_TOKENIZER=folder likewise
# replaces the GGUF's tokenizer.
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
# cream plan for the model the memory parts train (the shape with SmolLM2's vocabulary, built
# by the first of them) and their settings (batch 2 per GPU, 256 tokens)
model_dir=$work/random-$(basename "$(dirname "$SHAPE")")
plan_toml() {  # file, then [train] lines
  local file=$1; shift
  { printf '[run]\nmodel = "%s"\n[train]\nmax_length = 256\nactivation_checkpointing = true\n' "$model_dir"
    printf '%s\n' "$@"; } >"$file"
}
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true); gpus=$(( gpus > 0 ? gpus : 1 ))
plan_toml "$work/plan-lora.toml" 'lora = true' 'batch_size = 2' 'processes = 1'
plan_toml "$work/plan-fsdp.toml" 'strategy = "fsdp"' "processes = $gpus" "batch_size = $((2 * gpus))"
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
gen=(); [ -n "${GEN_SHAPE:-}" ] && gen=(--shape "$GEN_SHAPE")
part "generate hf" "$PY" bench/gpu_smoke.py generate --backend hf "${gen[@]}"
if [ -x "$VLLM_PY" ]; then
  part "generate vllm" "$VLLM_PY" bench/gpu_smoke.py generate --backend vllm "${gen[@]}"
else
  results+=("generate vllm: skipped ($VLLM_PY missing: run make test-vllm once)")
fi
part "memory lora" "$PY" bench/gpu_smoke.py memory --shape "$SHAPE" --mode lora
part "plan lora" bash -c '"$0" -m cream_tui.cli plan "$1" --json | "$0" -c "import json,sys; p=json.loads(sys.stdin.read()); print(json.dumps({\"part\": \"plan\", \"train\": [x for x in p[\"stages\"] if x[\"stage\"]==\"train\"], \"summary\": p[\"summary\"]}))"' "$PY" "$work/plan-lora.toml"
part "plan fsdp" bash -c '"$0" -m cream_tui.cli plan "$1" --json | "$0" -c "import json,sys; p=json.loads(sys.stdin.read()); print(json.dumps({\"part\": \"plan\", \"train\": [x for x in p[\"stages\"] if x[\"stage\"]==\"train\"], \"summary\": p[\"summary\"]}))"' "$PY" "$work/plan-fsdp.toml"
part "memory fsdp" "$PY" bench/gpu_smoke.py memory --shape "$SHAPE" --mode fsdp
echo
echo "== summary"
printf '%s\n' "${results[@]}"
