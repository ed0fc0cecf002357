# Everything a new clone needs, from python3, java, mvn and the PostgreSQL server programs.
#   make demo    set-up, then the demo      make test    set-up, then the test suite
# Set-up = a .venv with the package and its dev tools, then `saga stack up` (idempotent).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# What `make test-containers` runs (CI runs a part of it).
CONTAINER_TESTS ?= tests/integration tests/e2e tests/chaos

.PHONY: demo test lint stack-up stack-down stack-status setup chaos bench soak images compose-test test-containers

# Re-installs when pyproject.toml changes (new dependencies).
$(STAMP): pyproject.toml tests/tools/asyncapi/package-lock.json
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# The AsyncAPI document's validator (the official parser) for the contract tests.
	@command -v npm >/dev/null || { echo "npm is needed for the contract tests: apt-get install npm" >&2; exit 1; }
	npm ci --prefix tests/tools/asyncapi --ignore-scripts --no-audit --no-fund --silent
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

# The bench's soak for 30 minutes on fresh databases with compressed retention; set
# SAGA_SOAK_RATE to 70 % of the peak `saga bench --curve` reports (tests/e2e/test_soak.py).
soak: stack-up
	$(BIN)/pytest -m soak tests/e2e/test_soak.py -s $(PYTEST_ARGS)

# --- Docker (README "Running with Docker") --------------------------------------------------
# Each target sets up what it needs on a fresh machine: docker.io, docker-compose and
# debootstrap (installed as root if missing), a running dockerd, then the images, built from
# Debian's packages and the wheels of this venv (deploy/images/build.sh; layers are reused).
CONTAINERS_STAMP := $(VENV)/.installed-containers

$(CONTAINERS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,containers]'
	@touch $(CONTAINERS_STAMP)

# The Debian base, the app image (Dockerfile), and the Kafka and PostgreSQL images.
images: setup
	deploy/images/build.sh all

# compose.yaml with the local images: up, every path over the API, traces, down -v.
compose-test: images
	$(BIN)/pytest -m containers tests/containers -s $(PYTEST_ARGS)

# The integration, e2e and chaos suites with Kafka and PostgreSQL from testcontainers
# instead of the local stack (tests of the local stack itself are skipped, saying why).
test-containers: setup $(CONTAINERS_STAMP)
	deploy/images/build.sh engine kafka postgres
	SAGA_TEST_INFRA=containers $(BIN)/pytest -m 'not soak' $(CONTAINER_TESTS) $(PYTEST_ARGS)
