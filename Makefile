# Quick start: `make run` serves on 127.0.0.1:8000 (PORT=, HOST=), `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CREDIT_TEST_BACKEND ?= sqlite

.PHONY: run test test-integration fuzz check lint format bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# `credit-system run` migrates the configured database first. `make run PORT=8080 HOST=0.0.0.0`
# (set on the command line only: a shell's own HOST or PORT variable is not taken).
HOST = 127.0.0.1
PORT = 8000
run: $(STAMP)
	$(BIN)/credit-system run --host $(HOST) --port $(PORT)

# CREDIT_TEST_BACKEND=postgres runs the same suite on PostgreSQL + Redis.
test: $(STAMP)
	CREDIT_TEST_BACKEND=$(CREDIT_TEST_BACKEND) $(BIN)/python -m pytest $(PYTEST_ARGS)

# Only the tests that need PostgreSQL and Redis (CI runs these with CI=true).
test-integration: $(STAMP)
	$(BIN)/python -m pytest -m "integration" $(PYTEST_ARGS)

# Contract fuzzing alone (it also runs in `make test`), longer: make fuzz FUZZ_EXAMPLES=500 FUZZ_SEED=7
FUZZ_EXAMPLES ?= 100
FUZZ_SEED ?= 20240601
fuzz: $(STAMP)
	CREDIT_TEST_BACKEND=$(CREDIT_TEST_BACKEND) CREDIT_FUZZ_MAX_EXAMPLES=$(FUZZ_EXAMPLES) CREDIT_FUZZ_SEED=$(FUZZ_SEED) \
		$(BIN)/python -m pytest tests/e2e/test_schemathesis.py -s $(PYTEST_ARGS)

# Style and static checks (CI runs these); lint-imports checks the layers, mypy the types of
# app/, bench/ and containers.py (both configured in pyproject.toml; mypy caches, so reruns are quick).
lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: $(STAMP)
	$(BIN)/credit-system check

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) instance build *.egg-info .pytest_cache
