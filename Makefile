# Developer and CI entry points. `make` alone lists the targets.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CODE := src tests bench
PYTEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help venv test lint typecheck ci demo quickstart bench clean distclean

help: ## list the targets
	@echo "usage: make <target>"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  %-10s %s\n", $$1, $$2}' \
		$(MAKEFILE_LIST)

venv: $(STAMP) ## (internal) create .venv and install the project into it, editable

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changed since the last install, so that a
# repeated `make test` starts at once. Order-only: creating the venv alone must
# not count as a change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

test: venv ## run the tests on 2 cores (Postgres/Redis tests skip if not installed)
	$(BIN)/pytest -n $(PYTEST_WORKERS)

lint: venv ## ruff check and ruff format --check
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)

typecheck: venv ## mypy, strict on src/driftloop
	$(BIN)/mypy

ci: lint typecheck test ## everything CI runs

demo: venv ## the loop on a year of New York flights (driftloop demo, a few minutes)
	$(BIN)/driftloop demo --folder build/demo

quickstart: venv ## run examples/quickstart.sh (the CLI step by step) with the venv on PATH
	PATH="$(CURDIR)/$(BIN):$$PATH" VIRTUAL_ENV="$(CURDIR)/$(VENV)" bash examples/quickstart.sh

# Scripts named _*.py are shared helpers of the benchmarks, not benchmarks.
bench: venv ## run every bench/*.py; each writes a JSON line to bench/results/
	@mkdir -p bench/results
	@set -e; for script in bench/*.py; do \
		case "$${script##*/}" in _*) continue ;; esac; \
		[ -f "$$script" ] || continue; \
		echo "==> $$script"; \
		$(BIN)/python "$$script"; \
	done

clean: ## remove build artefacts and tool caches (keeps .venv)
	rm -rf build dist .eggs src/*.egg-info
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage htmlcov
	find $(wildcard src tests bench examples) -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## clean, and remove .venv too
	rm -rf $(VENV)
