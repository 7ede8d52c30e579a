PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,lint]'
	touch $(STAMP)

install: $(STAMP)

## Install, generate a dev certificate, seed demo users, serve https://127.0.0.1:8443
run: install
	$(BIN)/parley certs
	$(BIN)/parley serve --demo

## Install the test extras and run the whole suite
test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/moderation_latency.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
