# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cream-setup

.PHONY: demo test test-slow setup lint clean-venv

demo: setup
	$(VENV)/bin/cream demo

test: setup
	$(PY) -m pytest -m "not slow" -q

test-slow: setup
	$(PY) -m pytest -m slow -q

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)
	touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check cream_engine cream_tui tests

clean-venv:
	rm -rf $(VENV)
