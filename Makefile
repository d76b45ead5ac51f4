# Postline's front door. `make run` runs the whole service, `make test` the tests.
# POSTLINE_DATA_DIR (in the environment or `make run POSTLINE_DATA_DIR=...`) reaches every command.
PYTHON ?= python3
UV_VERSION := 0.13.8
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.synced
PYTEST_ARGS ?=
# The tests run in two processes, each with servers of its own (tests/support/servers.py):
# most of them wait on processes and timeouts, not on the CPU. TEST_PROCESSES=0: one process.
TEST_PROCESSES ?= 2
CHAOS_DURATION ?= 600
CHAOS_SEED ?= 1
# Features beyond the defaults for `make chaos`, e.g. CHAOS_FEATURES=failover,pacing (RELIABILITY.md).
CHAOS_FEATURES ?=

.PHONY: setup run test unit worker migrate test-flow lint format bench chaos clean

setup: $(STAMP)

$(STAMP): pyproject.toml uv.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Postline needs Python 3.11+"'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(VENV)/bin/uv || $(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	UV_PYTHON_DOWNLOADS=never $(VENV)/bin/uv sync --frozen --extra otel --quiet --python $(PY)
	@touch $(STAMP)

run: $(STAMP)  ## everything: embedded servers if needed, simulator, API on :8080, a worker
	$(VENV)/bin/postline dev

worker: $(STAMP)  ## one more worker (joins `make run` of POSTLINE_DATA_DIR, or uses DATABASE_URL/REDIS_URL)
	$(VENV)/bin/postline worker

migrate: $(STAMP)
	$(VENV)/bin/postline migrate

test: $(STAMP)  ## unit, integration and acceptance tests (embedded servers unless URLs are set)
	$(PY) -m pytest -n $(TEST_PROCESSES) --dist loadgroup $(PYTEST_ARGS)

unit: $(STAMP)  ## unit tests only: no server started, a few seconds
	$(PY) -m pytest tests/unit -q

test-flow: $(STAMP)  ## walk a message through a running `make run`, step by step
	$(PY) -m postline flow

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo

format: $(STAMP)
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

bench: $(STAMP)  ## throughput and latency figures (see BENCHMARKS.md)
	$(VENV)/bin/postline bench

chaos: $(STAMP)  ## fault campaign: load under seeded faults, then check (see RELIABILITY.md)
	$(VENV)/bin/postline chaos --duration $(CHAOS_DURATION) --seed $(CHAOS_SEED) $(if $(CHAOS_FEATURES),--features $(CHAOS_FEATURES))

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
