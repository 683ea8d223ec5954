# ZF801 enforcement bus. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
ZF801 := $(BIN)/zf801
PYTEST_ARGS ?=
# Broker-test processes: each beyond the first runs its own local broker (tests/conftest.py).
TEST_WORKERS ?= 2

.PHONY: help setup jars demo command-centre test test-unit lint format bench broker-start broker-stop clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

setup: $(INSTALLED) jars ## create .venv, install the project and dev tools, fetch the Kafka jars

jars: $(INSTALLED) ## fetch the pinned Apache Kafka jars from Maven Central into .zf801/
	$(ZF801) broker fetch

demo: setup ## start a local Kafka, the processors, and play the demo scenario (page: 127.0.0.1:8801)
	$(ZF801) demo --centre-port $${CENTRE_PORT:-8801} --centre-linger $${CENTRE_LINGER:-120}

command-centre: setup ## serve the live command page (http://127.0.0.1:8801) for the topics of ZF801_TOPIC_PREFIX
	$(ZF801) command-centre --port $${CENTRE_PORT:-8801}

test: setup ## unit + integration + e2e tests against a real Kafka broker
	ZF801_MODE=test $(BIN)/python -m pytest --durations=10 tests/unit $(PYTEST_ARGS)
	ZF801_MODE=test $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=30 \
		tests/integration tests/e2e $(PYTEST_ARGS)

test-unit: $(INSTALLED) ## unit tests only (no broker)
	ZF801_MODE=test $(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

lint: $(INSTALLED) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(INSTALLED) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup ## benchmarks, as ratios against the raw clients in the same run
	$(BIN)/python -m tests.bench

broker-start: setup ## start the local single-node broker
	$(ZF801) broker start

broker-stop: $(INSTALLED) ## stop the local broker(s) started from this checkout
	$(ZF801) broker stop

clean: ## stop local brokers, remove .venv, .zf801 and caches
	-[ -x $(ZF801) ] && $(ZF801) broker stop
	rm -rf $(VENV) .zf801 .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
