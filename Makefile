# Two entry points (see README): `make audit` runs the main job, `make test` runs the tests.
# Both install what they need: Debian data packages, then a venv outside the clone keyed by a
# hash of the lock, so repeated runs and CI reuse it instead of reinstalling (~3 min, 5.5 GB once).
SHELL := /bin/bash
PYTHON ?= python3
LOCK_HASH := $(shell cat requirements.lock | sha256sum | cut -c1-16)
VENV ?= $(HOME)/.cache/privtangent/venv-$(LOCK_HASH)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The venv is shared by every clone: it is linked (editable install) to the clone that last ran make.
LINKED := $(VENV)/.linked-clone
OUT ?= runs/default
PYTEST_ARGS ?=

.PHONY: audit test test-all lint sysdeps venv bench clean-venv

audit: venv
	$(BIN)/privtangent audit --out $(OUT)

# Lint first (seconds): pyflakes + import order, then the type checker; then the tests.
LINT_PATHS := privtangent audits attacks reports tests benchmarks scripts

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -n 2 --timeout 900 $(PYTEST_ARGS)

test-all: venv
	$(BIN)/python -m pytest -n 2 -m "" $(PYTEST_ARGS)

sysdeps:
	@bash scripts/install_sysdeps.sh

# No file prerequisite: the venv's path already holds the lock's content hash, and a fresh
# clone's newer mtimes must not trigger a reinstall.
$(STAMP): | sysdeps
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	touch $(STAMP)

venv: sysdeps $(STAMP)
	@if [ "$$(cat $(LINKED) 2>/dev/null)" != "$(CURDIR)" ] || [ pyproject.toml -nt $(LINKED) ]; then \
		echo "linking the venv to $(CURDIR)"; \
		$(BIN)/pip install -q --no-deps --no-build-isolation -e . 2>&1 | grep -v -e '^ *!!' -e WheelFile || true; \
		echo "$(CURDIR)" > $(LINKED); \
	fi

clean-venv:
	rm -rf $(VENV)
