# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cream-setup
VENV_VLLM ?= .venv-vllm

.PHONY: demo test test-slow test-vllm setup setup-vllm lint clean-venv

demo: setup
	$(VENV)/bin/cream demo

test: setup
	$(PY) -m pytest -m "not slow and not vllm" -q

test-slow: setup
	$(PY) -m pytest -m "slow and not vllm" -q

# vLLM for real (its CPU build without an NVIDIA GPU) in its own environment, .venv-vllm:
# vLLM pins torch and transformers, so it does not share .venv
test-vllm: setup-vllm
	$(VENV_VLLM)/bin/python -m pytest -m vllm -q

setup-vllm: $(VENV_VLLM)/.cream-setup

$(VENV_VLLM)/.cream-setup: pyproject.toml scripts/setup-vllm.sh
	bash scripts/setup-vllm.sh $(VENV_VLLM)
	touch $@

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)
	touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check cream_engine cream_tui tests

clean-venv:
	rm -rf $(VENV)
