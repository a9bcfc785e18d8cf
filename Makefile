# Bosun developer entry points. `make demo` and `make test` work on a fresh machine:
# they create .venv from pyproject.toml and provision the control plane (cached) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck contracts unit crds chart-crds provision images clean-dev soak bench lock

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

provision: $(STAMP)
	$(BIN)/bosun dev provision --all

# Both images from their Dockerfiles (docker, podman or buildah; cached by content), unpacked
# where the node emulator runs them. The first build here takes a few minutes.
images: $(STAMP)
	$(BIN)/bosun dev images

lint: $(STAMP)
	$(BIN)/ruff check operator tests e2e bench
	$(BIN)/ruff format --check operator tests e2e bench

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

test: lint typecheck contracts provision images
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest -m "not cluster and not images"

# The e2e fault scenarios at full size (make test runs them reduced).
soak: $(STAMP) provision images
	BOSUN_SOAK=1 $(BIN)/pytest e2e -s -m e2e

# Writes bench/results/REPORT.md and its plots (about 10 minutes on 2 cores).
bench: $(STAMP) provision images
	$(BIN)/python bench/report.py

crds: $(STAMP)
	$(BIN)/python -m bosun.api.crdgen --write crds/

# The chart ships a copy of the CRDs (tests check that it equals crds/).
chart-crds: crds
	cp crds/*.yaml helm/bosun/files/crds/

# The images' hash-locked requirements, resolved by uv (pinned in the dev extra) from
# pyproject.toml for the images' platform: CPython 3.11 on Debian bookworm x86_64 (glibc 2.36),
# choosing only versions with a wheel for it (the Dockerfiles install with --only-binary).
# Existing pins are kept while they still satisfy pyproject.toml; `make lock LOCK_ARGS=--upgrade`
# moves everything to the newest versions. tests/chart/test_locks.py checks them against it.
LOCK := $(BIN)/uv pip compile --quiet --generate-hashes --only-binary :all: --python-version 3.11 \
	--python-platform x86_64-manylinux_2_36 --custom-compile-command "make lock" $(LOCK_ARGS)

lock: $(STAMP)
	$(LOCK) pyproject.toml --extra runner -o requirements/runner.lock
	$(LOCK) pyproject.toml --extra operator -o requirements/operator.lock
	$(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
		| $(LOCK) - -o requirements/build.lock

demo: $(STAMP) images
	$(BIN)/bosun demo

clean-dev: $(STAMP)
	$(BIN)/bosun dev down
