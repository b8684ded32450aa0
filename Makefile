# Apolo. `make run` serves the sidecar with demo data; `make test` runs every test tier.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The installer and the lock compiler are pinned too: a lock is only as exact as what reads it.
PIP_VERSION := 26.3
PIP_TOOLS_VERSION := 7.7.0
SERVICES := eval "$$(scripts/services.sh)"

.PHONY: run test lint lock check-lock venv services stop clean-data bench bench-smoke reliability e2e ha-drill

venv: $(VENV)/.installed

# The venv is rebuilt from nothing whenever the lock changes, so it holds exactly the lock.
$(VENV)/.installed: requirements-test.lock
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q 'pip==$(PIP_VERSION)'
	$(BIN)/pip install -q --require-hashes -r requirements-test.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# Regenerate both locks from setup.cfg (newest versions that satisfy it), then run `make test`.
lock:
	rm -rf .data/lock-venv
	$(PYTHON) -m venv .data/lock-venv
	.data/lock-venv/bin/pip install -q 'pip==$(PIP_VERSION)' 'pip-tools==$(PIP_TOOLS_VERSION)'
	$(PYTHON) scripts/lock.py compile .data/lock-venv/bin/pip-compile
	rm -rf .data/lock-venv

check-lock: venv
	@$(BIN)/python scripts/lock.py

services:
	@scripts/services.sh

stop:
	@scripts/stop_services.sh

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

# Private servers this run had to start are stopped again when it ends (pass or fail).
test: check-lock lint
	@scripts/test_deps.sh
	@scripts/with_services.sh $(BIN)/python -m pytest

e2e: venv
	@scripts/test_deps.sh
	@scripts/with_services.sh $(BIN)/python -m pytest tests/e2e

reliability: venv
	@scripts/with_services.sh env APOLO_RELIABILITY=1 $(BIN)/python -m pytest tests/reliability

# Patroni + etcd, Redis + Sentinel, HAProxy, two sidecars and apolo control on loopback
# (ports 46000-46999) under load; kills the PostgreSQL primary, the Redis master, a sidecar.
ha-drill: venv
	@deploy/ha-drill/run.sh $(HA_DRILL_ARGS)

bench: venv
	@scripts/test_deps.sh
	@$(SERVICES) && $(BIN)/python -m bench.run

bench-smoke: venv
	@$(SERVICES) && $(BIN)/python -m bench.run --smoke

clean-data: stop
	rm -rf .data
