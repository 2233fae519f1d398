# Every target bootstraps its own environment from a bare `python3`: uv is installed into .tools/
# (pinned), and .venv is created from the committed uv.lock. Nothing is installed globally.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
STAMP := $(VENV)/.synced
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON_DOWNLOADS := never

.PHONY: help env test lint typecheck docs unit e2e fuzz demo dist ui-check bench soak clean

help:
	@echo "make demo   - bootstrap, then wait for an emulated benchmark run with the deferrable sensor, export"
	@echo "              and summarize its results (RUNLOOP_API_KEY + RUNLOOP_BENCHMARK_RUN_ID: the real API)"
	@echo "make test   - bootstrap the environment and run lint, type checks, the docs build and every test"
	@echo "make docs   - build the docs site into site/ (mkdocs build --strict)"
	@echo "make unit   - only the unit tests"
	@echo "make e2e    - only the end-to-end tests (real Airflow components on 127.0.0.1)"
	@echo "make fuzz   - the unit tests with a deep, random property-based budget (hypothesis profile fuzz)"
	@echo "make dist   - build the wheel, the sdist and constraints.txt (the lock's pins) into dist/, check"
	@echo "              their metadata and contents, install them into new virtualenvs beside Airflow"
	@echo "              and run the README's install block as written (make test runs it too)"
	@echo "make ui-check - the connection form, a deferred sensor's extra link and the results export's"
	@echo "              HTML report in headless Chromium"
	@echo "              (real Airflow + emulator on 127.0.0.1; screenshots in .ui-check/; not part of test)"
	@echo "make bench  - the performance benches (trigger fan-out, poll cost, listing, results export), each"
	@echo "              against the emulator in its own process, as ratios to a baseline of the same run;"
	@echo "              a table, and JSON in bench/results/ (about 15 min on 2 cores; not part of test)"
	@echo "make soak   - the HA failover test (PostgreSQL, 2 schedulers, 2 triggerers) at the issue's shape:"
	@echo "              200 deferred sensors and 20 start-and-wait operators (RUNLOOP_HA_SENSORS,"
	@echo "              RUNLOOP_HA_OPERATORS), RUNLOOP_HA_SOAK_RUNS times in a row (default 1); not part of test"
	@echo "make env    - only bootstrap .venv from uv.lock"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(STAMP): $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	@touch $(STAMP)

env: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --quiet --site-dir site

unit: $(STAMP)
	$(VENV)/bin/pytest tests/unit -q

e2e: $(STAMP)
	$(VENV)/bin/pytest tests/e2e -q

# `make test` runs the same properties with a small fixed budget (tests/conftest.py registers both).
fuzz: $(STAMP)
	RUNLOOP_HYPOTHESIS_PROFILE=fuzz $(VENV)/bin/pytest tests/unit -q

# The suite runs on two pytest-xdist workers, a test file in one worker (so each end-to-end module starts
# its Airflow once); PYTEST_WORKERS=0 runs it in this process. xdist hands out the files with the most
# tests first, so the HA module (two tests, minutes) starts late, mostly alone: its two schedulers and
# two triggerers then do not starve the SQLite end-to-end stack, which starts early. (Three workers, or
# both stacks at once, made the suite no faster on 2 cores and let Airflow's deferral race through.)
PYTEST_WORKERS ?= 2
test: lint typecheck docs
	$(VENV)/bin/pytest -q --durations=10 -n $(PYTEST_WORKERS) --dist loadfile

# The HA failover test (tests/e2e/test_ha_failover.py) at the issue's shape, bigger than make test's.
RUNLOOP_HA_SENSORS ?= 200
RUNLOOP_HA_OPERATORS ?= 20
RUNLOOP_HA_SOAK_RUNS ?= 1
RUNLOOP_HA_POLL_SECONDS ?= 2
soak: $(STAMP)
	for i in $$(seq $(RUNLOOP_HA_SOAK_RUNS)); do \
		RUNLOOP_HA_SENSORS=$(RUNLOOP_HA_SENSORS) RUNLOOP_HA_OPERATORS=$(RUNLOOP_HA_OPERATORS) \
		RUNLOOP_HA_POLL_SECONDS=$(RUNLOOP_HA_POLL_SECONDS) \
			$(VENV)/bin/python -u -m pytest tests/e2e/test_ha_failover.py -q -s || exit 1; \
	done

# The release build: scripts/dist_check.py says what it checks. tests/integration/test_dist.py runs the same
# script into a temporary directory, so `make test` fails when `make dist` would.
dist: $(STAMP)
	$(VENV)/bin/python scripts/dist_check.py --uv $(UV) --out dist

demo: $(STAMP)
	$(VENV)/bin/python scripts/demo.py

# bench/run.py runs each bench script in its own process; the `bench` dependency group (when
# pyproject.toml has one) is synced first.
bench: $(STAMP)
	@if grep -q '^bench = ' pyproject.toml; then $(UV) sync --frozen --all-extras --group bench; fi
	$(VENV)/bin/python bench/run.py

# Chromium comes from Debian (Playwright's own browser download is not used): installed here when it is
# missing and we are root, else the one command to run is printed.
CHROMIUM_APT := chromium-headless-shell

ui-check: $(STAMP)
	@command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null || \
	  [ -n "$$RUNLOOP_UI_CHECK_CHROMIUM" ] || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(CHROMIUM_APT); \
	    else \
	      echo "Chromium is missing; install it with: sudo apt-get install -y $(CHROMIUM_APT)" >&2; exit 2; \
	    fi; }
	$(VENV)/bin/python scripts/ui_check.py

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache site .demo .ui-check
