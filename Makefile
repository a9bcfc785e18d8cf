# Bosun developer entry points. `make demo` and `make test` work on a fresh machine:
# they create .venv from pyproject.toml and provision the control plane (cached) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck contracts unit crds provision clean-dev

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

provision: $(STAMP)
	$(BIN)/bosun dev provision --all

lint: $(STAMP)
	$(BIN)/ruff check operator tests
	$(BIN)/ruff format --check operator tests

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

test: lint typecheck contracts provision
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest -m "not cluster"

crds: $(STAMP)
	$(BIN)/python -m bosun.api.crdgen --write crds/

demo: $(STAMP)
	$(BIN)/bosun demo

clean-dev: $(STAMP)
	$(BIN)/bosun dev down
