# emrtasks: `make help` lists the targets.
PYTHON ?= python
PORT ?= 8000

.PHONY: help install run test test-postgres lint format package-check demo chaos gnuhealth

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

install: ## Install the package with its test and lint tools
	$(PYTHON) -m pip install -e '.[dev]'

run: ## Install and serve on 127.0.0.1:$(PORT) (SQLite, sandbox EMR)
	$(PYTHON) -m pip install -e . && $(PYTHON) -m emrtasks serve --port $(PORT)

test: ## Install and run the whole test suite (PostgreSQL too when EMRTASKS_TEST_DATABASE_URL is set)
	$(PYTHON) -m pip install -e '.[dev]' && $(PYTHON) -m pytest

test-postgres: ## The suite with the local PostgreSQL (127.0.0.1:5432, database test)
	EMRTASKS_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test $(PYTHON) -m pytest

lint: ## ruff, mypy (strict) and the import-linter layer contracts
	$(PYTHON) -m ruff check src tests clients/python
	$(PYTHON) -m ruff format --check src tests clients/python
	$(PYTHON) -m mypy
	lint-imports

format: ## Format and fix what ruff can
	$(PYTHON) -m ruff format src tests clients/python
	$(PYTHON) -m ruff check --fix src tests clients/python

package-check: ## Build the wheel, install it in a fresh venv, serve from it and create one task
	$(PYTHON) tests/packaging/wheel_serves.py

demo: ## Create a client, connections and tasks, and show what happened
	$(PYTHON) -m emrtasks demo

gnuhealth: ## Install GNU Health into a cached venv and build its template database (tests/gnuhealth/)
	$(PYTHON) -m tests.gnuhealth.setup

chaos: ## Chaos run at full size (1,000 tasks) on SQLite and PostgreSQL; restarts the local PostgreSQL once
	$(PYTHON) -m tests.chaos.run --tasks 1000 --db both

.PHONY: bench bench-quick bench-scaleout
BENCH_ARGS ?=

bench: ## Benchmark serve end to end, SQLite and PostgreSQL, 3 runs each (~7 min; docs/performance.md)
	$(PYTHON) bench/run.py --db both --runs 3 $(BENCH_ARGS)

bench-quick: ## A smoke run of the benchmark: both databases, one short run each (~1.5 min)
	$(PYTHON) bench/run.py --quick $(BENCH_ARGS)

bench-scaleout: ## PostgreSQL: serve alone, serve --no-worker + 1-3 workers, 2 serve --reuse-port; 3 runs each (~15 min)
	$(PYTHON) bench/scaleout.py $(BENCH_ARGS)

.PHONY: lock audit
LOCK_ARGS = --generate-hashes --universal --python-version 3.11 --no-emit-index-url --custom-compile-command "make lock"

lock: ## Re-resolve requirements.lock and requirements-dev.lock (hashed) from pyproject.toml, with uv
	$(PYTHON) -m uv pip compile pyproject.toml $(LOCK_ARGS) -o requirements.lock
	$(PYTHON) -m uv pip compile pyproject.toml --extra dev $(LOCK_ARGS) -o requirements-dev.lock

audit: ## Known vulnerabilities in the locked dependencies (pip-audit; docs/security.md)
	$(PYTHON) -m pip_audit --require-hashes --disable-pip -r requirements.lock
	$(PYTHON) -m pip_audit --require-hashes --disable-pip -r requirements-dev.lock
