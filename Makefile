# Two commands matter: `make run` (local stack) and `make test` (whole suite).
# Both create .venv on first use (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint fuzz bench build validate deploy clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

run: $(STAMP)
	$(BIN)/ledgerbridge-local

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest

# The fuzz suite alone with a bigger budget (tests/fuzz; `make test` runs it with 10,000
# requests) and a table of requests and status codes by category.
LEDGERBRIDGE_FUZZ_REQUESTS ?= 100000
fuzz: $(STAMP)
	LEDGERBRIDGE_FUZZ_REQUESTS=$(LEDGERBRIDGE_FUZZ_REQUESTS) LEDGERBRIDGE_FUZZ_TABLE=1 $(BIN)/pytest tests/fuzz

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

validate: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/sam validate --lint

build: validate
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/sam build

deploy: build
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/sam deploy --guided

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .ruff_cache
