# Everything a new clone needs, from python3, java, mvn and the PostgreSQL server programs.
#   make demo    set-up, then the demo      make test    set-up, then the test suite
# Set-up = a .venv with the package and its dev tools, then `saga stack up` (idempotent).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test lint stack-up stack-down stack-status setup chaos bench

# Re-installs when pyproject.toml changes (new dependencies).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

stack-up: setup
	$(BIN)/saga stack up

stack-down:
	@if [ -x $(BIN)/saga ]; then $(BIN)/saga stack down; else echo "no $(BIN)/saga: nothing was set up"; fi

stack-status: setup
	$(BIN)/saga stack status

# Seed, run the four services, send one order down every path, print their traces.
demo: stack-up
	$(BIN)/saga demo

# The whole suite but the long `soak` runs; needs the stack, which stack-up provides.
test: stack-up
	$(BIN)/pytest -m 'not soak' $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# On demand, not in CI: the long chaos run and the load benchmark.
chaos: stack-up
	$(BIN)/pytest -m soak tests/chaos -s $(PYTEST_ARGS)

bench: stack-up
	$(BIN)/saga bench --orders 60000 --rate 1000
