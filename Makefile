# `make run` and `make test` work on a fresh machine: each creates .venv if missing and installs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-installed
TEST_STAMP := $(VENV)/.test-installed

.PHONY: run test test-unit lint bench bench-idle install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(RUN_STAMP)

install: $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/runwire serve

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The suite runs on TEST_WORKERS pytest-xdist workers, a whole test file to a worker (its
# module-scoped server starts once); `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 2

test: $(TEST_STAMP) lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --cov=runwire --cov-branch --cov-report=term:skip-covered --cov-report=xml -p no:cacheprovider --durations=15

test-unit: $(TEST_STAMP)
	$(BIN)/pytest tests/unit -q -p no:cacheprovider

bench: $(TEST_STAMP)
	$(BIN)/python bench/throughput.py

bench-idle: $(TEST_STAMP)
	$(BIN)/python bench/idle_connections.py

clean:
	rm -rf $(VENV) .runwire .mypy_cache .ruff_cache coverage.xml .coverage
