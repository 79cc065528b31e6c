# Chat Sessions API — `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# Modules held at 100% coverage: the queries, auth and database context.
FULL_COVERAGE := app/sessions/queries.py,app/messages/queries.py,app/agents/queries.py,app/users/queries.py,app/auth/*.py,app/db/transaction.py,app/db/engine.py,app/db/selfcheck.py,app/audit.py

.PHONY: help install run test lint format bench bench-scale bench-variants bench-oracle bench-noisy bench-tools clean chromium pgbouncer

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)  ## create .venv and install the app with its dev tools

run: $(STAMP)  ## embedded PostgreSQL (unless DATABASE_URL), migrate, seed, serve on http://127.0.0.1:8000
	$(BIN)/python -m app db upgrade
	$(BIN)/python -m app db seed
	@echo "demo token (anna@etms.example, supporter of eTMS):"
	@$(BIN)/python -m app token anna@etms.example
	$(BIN)/python -m app serve --host 127.0.0.1 --port 8000

test: $(STAMP) chromium pgbouncer  ## the whole suite on a throwaway PostgreSQL (TEST_DATABASE_URL to use a server), with coverage
	$(BIN)/python -m pytest --cov=app --cov-report=term $(PYTEST_ARGS)
	$(BIN)/python -m coverage report --include='$(FULL_COVERAGE)' --fail-under=100

lint: $(STAMP)  ## ruff (lint + format check) and mypy --strict on app/
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

SCALE ?= 0.05

bench-tools:
	@command -v wrk >/dev/null || { apt-get install -y wrk || sudo apt-get install -y wrk; } >/dev/null

bench: $(STAMP) bench-tools  ## sessions list, 1,000 sessions x 20 messages: HTTP (wrk) beside the asyncpg floor
	timeout 900 $(BIN)/python -m bench.list_page

bench-scale: $(STAMP) bench-tools  ## list/history/post at SCALE x (1M sessions, 20M messages) (default SCALE=0.05)
	SCALE=$(SCALE) timeout 5400 $(BIN)/python -m bench.scale

bench-variants: $(STAMP) bench-tools  ## server ideas (event loop, pool reset, access log) compared on the list
	timeout 900 $(BIN)/python -m bench.variants

bench-oracle: $(STAMP)  ## 404 timing: missing vs other tenant's vs colleague's session id, 5 routes, rank-test z
	timeout 900 $(BIN)/python -m bench.timing_oracle

bench-noisy: $(STAMP)  ## tenant B's statuses/latencies while tenant A holds the pool (slow bodies, slow queries)
	timeout 600 $(BIN)/python -m bench.noisy_neighbour

clean:  ## remove .venv, .data (embedded PostgreSQL) and caches
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov

chromium:  ## Debian's chromium for the end-to-end tests (installed with apt-get when /usr/bin/chromium is missing)
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

pgbouncer:  ## Debian's pgbouncer for the scale-out tests (installed with apt-get when /usr/sbin/pgbouncer is missing)
	@test -x /usr/sbin/pgbouncer || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer; }
