# Two entry points (see README): `make audit` runs the main job, `make test` runs the tests.
# Both install what they need: Debian data packages, then a venv outside the clone keyed by a
# hash of the lock, so repeated runs and CI reuse it instead of reinstalling (~3 min, 5.5 GB once).
SHELL := /bin/bash
PYTHON ?= python3
LOCK_HASH := $(shell cat requirements.lock | sha256sum | cut -c1-16)
VENV ?= $(HOME)/.cache/privtangent/venv-$(LOCK_HASH)
BIN := $(VENV)/bin
CLONE_HASH := $(shell echo "$(CURDIR)" | sha256sum | cut -c1-12)
STAMP := $(VENV)/.installed
EDITABLE := $(VENV)/.editable-$(CLONE_HASH)
OUT ?= runs/default
PYTEST_ARGS ?=

.PHONY: audit test test-all sysdeps venv bench clean-venv

audit: venv
	$(BIN)/privtangent audit --out $(OUT)

test: venv
	$(BIN)/python -m pytest -n 2 --timeout 900 $(PYTEST_ARGS)

test-all: venv
	$(BIN)/python -m pytest -n 2 -m "" $(PYTEST_ARGS)

sysdeps:
	@bash scripts/install_sysdeps.sh

$(STAMP): requirements.lock | sysdeps
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	touch $(STAMP)

$(EDITABLE): $(STAMP) pyproject.toml
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(EDITABLE)

venv: sysdeps $(EDITABLE)

clean-venv:
	rm -rf $(VENV)
