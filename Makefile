# Chat Sessions API — `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# Modules held at 100% coverage: the queries, auth, database context, input parsing and error handlers.
FULL_COVERAGE := app/sessions/queries.py,app/sessions/search.py,app/messages/queries.py,app/privacy/queries.py,app/agents/queries.py,app/users/queries.py,app/cursors.py,app/auth/*.py,app/db/context.py,app/db/policies.py,app/db/transaction.py,app/db/engine.py,app/db/selfcheck.py,app/db/replica.py,app/audit.py,app/inputs.py,app/errors.py
# Debian packages the end-to-end, scale-out and benchmark runs use; the suite and bench/ read these paths.
CHROMIUM ?= /usr/bin/chromium
PGBOUNCER ?= /usr/sbin/pgbouncer
WRK ?= /usr/bin/wrk
export CHROMIUM PGBOUNCER WRK
# $(call tool,PATH,PACKAGE,VARIABLE): nothing when PATH is executable; as root, apt-get install PACKAGE;
# otherwise one line saying what to install, and fail.
tool = @test -x $(1) || { \
	test "$$(id -u)" = 0 || { echo "$(1) is missing: install Debian's $(2) (sudo apt-get install $(2)) or set $(3)=/path/to/$(2)" >&2; exit 1; }; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
	test -x $(1) || { echo "$(1) is still missing after apt-get install $(2): set $(3)=/path/to/$(2)" >&2; exit 1; }; }

.PHONY: help install run test lint format bench bench-scale bench-replica bench-variants bench-privacy bench-oracle bench-noisy bench-tools clean chromium pgbouncer

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' \
		'{ name[NR] = $$1; text[NR] = $$2; if (length($$1) > width) width = length($$1) } \
		END { for (i = 1; i <= NR; i++) printf "  make %-" width "s  %s\n", name[i], text[i] }'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)  ## create .venv and install the app with its dev tools

# make run is the local demo: development mode (the dev sign-in and the development key) unless APP_ENV says otherwise.
run: export APP_ENV ?= development
run: $(STAMP)  ## embedded PostgreSQL (unless DATABASE_URL), migrate, seed, serve on http://127.0.0.1:8000
	$(BIN)/python -m app db upgrade
	$(BIN)/python -m app db seed
	@$(BIN)/python -m app.welcome http://127.0.0.1:8000 $$PPID &  # prints where things are once the server answers
	$(BIN)/python -m app serve --host 127.0.0.1 --port 8000

test: chromium pgbouncer $(STAMP)  ## the whole suite on a throwaway PostgreSQL (TEST_DATABASE_URL to use a server), with coverage
	$(BIN)/python -m pytest --cov=app --cov-report=term $(PYTEST_ARGS)
	$(BIN)/python -m coverage report --include='$(FULL_COVERAGE)' --fail-under=100

lint: $(STAMP)  ## ruff (lint + format check) and mypy --strict on app/, tests/, bench/
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

SCALE ?= 0.05

bench: bench-tools $(STAMP)  ## sessions list, 1,000 sessions x 20 messages: HTTP (wrk) beside the asyncpg floor
	timeout 900 $(BIN)/python -m bench.list_page

bench-scale: bench-tools $(STAMP)  ## list/history/post at SCALE x (1M sessions, 20M messages) (default SCALE=0.05)
	SCALE=$(SCALE) timeout 5400 $(BIN)/python -m bench.scale

bench-replica: bench-tools $(STAMP)  ## list/history through a streaming hot standby vs the primary, LSN check cost (SCALE as bench-scale)
	SCALE=$(SCALE) timeout 5400 $(BIN)/python -m bench.replica

bench-variants: bench-tools $(STAMP)  ## server ideas (event loop, pool reset, access log) compared on the list
	timeout 900 $(BIN)/python -m bench.variants

bench-privacy: bench-tools $(STAMP)  ## list p50/p99 quiet vs while db prune deletes 100,000 expired sessions; export messages/s
	timeout 900 $(BIN)/python -m bench.privacy

bench-oracle: $(STAMP)  ## 404 timing: missing vs other tenant's vs colleague's session id, 5 routes, rank-test z
	timeout 900 $(BIN)/python -m bench.timing_oracle

bench-noisy: $(STAMP)  ## tenant B's statuses/latencies while tenant A holds the pool (slow bodies, slow queries)
	timeout 600 $(BIN)/python -m bench.noisy_neighbour

bench-events: $(STAMP)  ## live updates: commit-to-event delay (p50/p99) with 1, 100, 1,000 open streams, CPU/event, memory/stream
	timeout 900 $(BIN)/python -m bench.events

clean:  ## remove .venv, .data (embedded PostgreSQL) and caches
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov

chromium:  ## Debian's chromium for the end-to-end tests (installed with apt-get as root when missing)
	$(call tool,$(CHROMIUM),chromium,CHROMIUM)

pgbouncer:  ## Debian's pgbouncer for the scale-out tests (installed with apt-get as root when missing)
	$(call tool,$(PGBOUNCER),pgbouncer,PGBOUNCER)

bench-tools:  ## Debian's wrk for the benchmarks (installed with apt-get as root when missing)
	$(call tool,$(WRK),wrk,WRK)
