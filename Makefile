# Apolo. `make run` serves the sidecar with demo data; `make test` runs every test tier.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SERVICES := eval "$$(scripts/services.sh)"

.PHONY: run test lint venv services clean-data bench bench-smoke reliability

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

services:
	@scripts/services.sh

run: venv
	@$(SERVICES) && export APOLO_FS_PASSWORD="$${APOLO_FS_PASSWORD:-$$(scripts/dev_secret.sh fs_password)}" && \
	export APOLO_SESSION_COOKIE_SECURE="$${APOLO_SESSION_COOKIE_SECURE:-false}" && \
	$(BIN)/apolo db upgrade && $(BIN)/apolo demo load && \
	scripts/run_banner.sh && \
	exec $(BIN)/apolo serve --bind "$${APOLO_BIND:-127.0.0.1:8080}"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy sidecar

test: venv lint
	@scripts/test_deps.sh
	@$(SERVICES) && $(BIN)/python -m pytest

reliability: venv
	@$(SERVICES) && APOLO_RELIABILITY=1 $(BIN)/python -m pytest tests/reliability

bench: venv
	@$(SERVICES) && $(BIN)/python -m bench.run

bench-smoke: venv
	@$(SERVICES) && $(BIN)/python -m bench.run --smoke

clean-data:
	rm -rf .data
