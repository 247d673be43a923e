# Herald: `make run` starts the whole system locally, `make test` proves it. See README.md.
export UV_PYTHON_DOWNLOADS := never
# Nothing to install by hand first: scripts/setup_machine.py installs what is missing (uv, and
# as root the Debian packages; others get the one sudo command to run). uv: the one on PATH,
# else the pinned one it installs into $(HERALD_TOOLS_DIR), a virtualenv `make clean` keeps.
HERALD_TOOLS_DIR ?= $(CURDIR)/.tools
ifeq ($(origin UV),undefined)
UV := $(or $(shell command -v uv 2>/dev/null),$(HERALD_TOOLS_DIR)/bin/uv)
endif
SETUP_MACHINE = python3 scripts/setup_machine.py --uv "$(UV)" --tools-dir "$(HERALD_TOOLS_DIR)"
PYTEST_ARGS ?=

.PHONY: help install setup-run setup-test run services test test-unit test-e2e test-cluster \
	lint format clean bench fuzz test-fresh-machine

help:
	@echo "make run          - the whole system in the foreground (API on http://127.0.0.1:8000)"
	@echo "make test         - every test but the slow ones (soak, cluster variants, fresh machine)"
	@echo "make test-unit    - the tests that need no running stack"
	@echo "make test-e2e     - the end-to-end tests on a running stack"
	@echo "make test-cluster - Herald on a local 3-node RabbitMQ cluster, slow variants included (~4 min)"
	@echo "make test-fresh-machine - as root: make run, then make test, on a new Debian 12 (~20 min)"
	@echo "make lint         - ruff (lint + format check) and mypy --strict"
	@echo "make format       - apply ruff's formatting and safe fixes"
	@echo "make install      - the workspace's virtualenv (uv sync); every target runs it"
	@echo "make services     - only the infrastructure: PostgreSQL, RabbitMQ, the provider simulator,"
	@echo "                    the SMTP sink and the OIDC provider, printing the env vars to export"
	@echo "make clean        - delete local state (./.herald; .tools/, the uv make installed, stays)"
	@echo "make bench        - throughput/latency benchmark, writes docs/performance.md (~4 min; BENCH_ARGS=--quick: ~1.5 min)"
	@echo "make fuzz         - schemathesis against the running API for FUZZ_SECONDS (default 600), a new seed each run"

# uv, then the workspace's virtualenv (.venv).
install:
	@$(SETUP_MACHINE) uv
	$(UV) sync --frozen

# The Debian packages: PostgreSQL and RabbitMQ; for the tests also Chromium, promtool, faketime.
setup-run:
	@$(SETUP_MACHINE) packages run

setup-test:
	@$(SETUP_MACHINE) packages test

run: setup-run install
	$(UV) run --frozen herald-dev run

services: setup-run install
	$(UV) run --frozen herald-dev services

test: setup-test install
	$(UV) run --frozen pytest -m "not slow" $(PYTEST_ARGS)

test-unit: setup-test install
	$(UV) run --frozen pytest -m "not slow and not e2e" $(PYTEST_ARGS)

test-e2e: setup-test install
	$(UV) run --frozen pytest -m "e2e and not slow" $(PYTEST_ARGS)

# Nodes stopped under a running mailing, a memory alarm; `make test` runs the quick cases only.
test-cluster: setup-test install
	$(UV) run --frozen pytest tests/e2e/test_cluster.py $(PYTEST_ARGS)

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy libs/common/src services/api/src services/scheduler/src \
		services/sender/src services/reporter/src services/provider_sim/src tools/devstack/src \
		tools/testing/src tools/cli/src bench scripts

format: install
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

clean: install
	$(UV) run --frozen herald-dev clean

# Writes docs/performance.md; exits 0 even when a target is missed (the table says so).
BENCH_ARGS ?=
bench: setup-run install
	$(UV) run --frozen python -m bench.run $(BENCH_ARGS)

# The fuzz test of `make test` (45 s, fixed seed), run longer and with a fresh seed.
FUZZ_SECONDS ?= 600
fuzz: setup-test install
	HERALD_FUZZ_SECONDS=$(FUZZ_SECONDS) HERALD_FUZZ_SEED=$$(date +%s) \
		$(UV) run --frozen pytest tests/e2e/test_fuzz.py $(PYTEST_ARGS)

# A Debian 12 root filesystem with only python3, make and git (debootstrap, cached in
# $$HERALD_FRESH_CACHE): `make run` must answer /readyz, then `make test` must pass. Root only.
test-fresh-machine:
	python3 scripts/fresh_machine.py $(FRESH_ARGS)
