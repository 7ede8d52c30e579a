PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench install clean train-models bench-quality postgres redis node js chromium

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

## Install the test extras and run the whole suite on SQLite, then its end-to-end part on
## PostgreSQL (a throwaway cluster the tests start themselves, see tests/pg.py). The
## TypeScript SDK's tests (tests/e2e/test_js_sdk.py) need Node and npm: installed when missing.
test: install postgres redis node chromium
	$(BIN)/pytest -q
	PARLEY_TEST_BACKEND=postgres $(BIN)/pytest -q tests/e2e

# PostgreSQL server binaries from Debian's package, installed when missing (as root, or with
# sudo); the tests only run them, as the postgres user when run as root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing PostgreSQL (Debian package postgresql) for the test suite"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

# Redis from Debian's package (redis-server), installed when missing: the tests start their own
# on a loopback port (tests/redis_server.py) for the two-process test.
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing Redis (Debian package redis-server) for the test suite"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }

# Node (>= 18) and npm from Debian's packages, installed when missing, for the TypeScript SDK
# (client/js); tests/e2e/test_js_sdk.py runs its `npm ci`, `tsc` and `node --test` itself.
node:
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
	  echo "installing Node.js (Debian packages nodejs, npm) for the TypeScript SDK's tests"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }

# Debian's chromium, installed when missing, for the browser tests (tests/e2e/test_web_*.py
# drive it headless with Playwright, by its executable path).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Chromium (Debian package chromium) for the browser tests"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

## Build the TypeScript SDK into client/js/dist
js: node
	cd client/js && npm ci --no-audit --no-fund && npm run build

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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache client/js/dist client/js/node_modules
