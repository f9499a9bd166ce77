# Two commands matter: `make run` (local stack) and `make test` (whole suite).
# Both create .venv on first use (and again whenever pyproject.toml changes); `make test` also
# builds .venv-panora (Panora's official SDK, for its e2e test) from its pinned requirements.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Panora's official Python SDK, for tests/e2e/test_panora_sdk.py: its own virtualenv, because
# it pins pydantic<2.9 and httpx<0.28 against ours. Built from exact pins with --no-deps (the
# file is the whole environment), from scratch whenever the requirements file changes.
PANORA_VENV         := .venv-panora
PANORA_REQUIREMENTS := tests/e2e/panora_sdk/requirements.txt
PANORA_STAMP        := $(PANORA_VENV)/.installed

.PHONY: run test lint panora-sdk fuzz bench load build validate deploy clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(PANORA_STAMP): $(PANORA_REQUIREMENTS)
	rm -rf $(PANORA_VENV)
	$(PYTHON) -m venv $(PANORA_VENV)
	$(PANORA_VENV)/bin/python -m pip install --quiet --no-deps -r $(PANORA_REQUIREMENTS)
	$(PANORA_VENV)/bin/python -m pip check
	@touch $@

panora-sdk: $(PANORA_STAMP)

run: $(STAMP)
	$(BIN)/ledgerbridge-local

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint $(PANORA_STAMP)
	$(BIN)/pytest

# The fuzz suite alone with a bigger budget (tests/fuzz; `make test` runs it with 10,000
# requests) and a table of requests and status codes by category.
LEDGERBRIDGE_FUZZ_REQUESTS ?= 100000
fuzz: $(STAMP)
	LEDGERBRIDGE_FUZZ_REQUESTS=$(LEDGERBRIDGE_FUZZ_REQUESTS) LEDGERBRIDGE_FUZZ_TABLE=1 $(BIN)/pytest tests/fuzz

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# The local stack under load on loopback: 1, 4 and 8 clients, LOAD_CREATES creates each
# (LOAD_CREATES=10000 for a long run); prints latency, throughput and RSS, enforces nothing.
LOAD_CREATES ?= 2000
load: $(STAMP)
	LOAD_CREATES=$(LOAD_CREATES) $(BIN)/python -m benchmarks.load

validate: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/sam validate --lint

build: validate
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/sam build

deploy: build
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/sam deploy --guided

clean:
	rm -rf $(VENV) $(PANORA_VENV) .bench-venv .aws-sam .pytest_cache .ruff_cache
