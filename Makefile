PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench install clean train-models bench-quality

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
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/run.py
	$(BIN)/python bench/moderation_latency.py

## Retrain the bundled text heads (moderation/models/text_heads.npz) from the own labelled
## set and ../shared/data/moderation (seeded; about 2 minutes on 2 cores)
train-models: install
	$(BIN)/python -m moderation.training.train

## Quality and latency of the local AI detectors next to the baselines
bench-quality: install
	$(BIN)/python bench/moderation_quality.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
