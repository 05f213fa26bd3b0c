# medspa: `make run` starts the demo clinic, `make test` runs every check CI runs.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
MEDSPA := $(VENV)/bin/medspa
HOST ?= 127.0.0.1
PORT ?= 8000
export MEDSPA_DATABASE_URL ?= sqlite:///./var/medspa.db

.DEFAULT_GOAL := help
.PHONY: help install run test lint typecheck imports unit instants browser bench format clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv

install: $(if $(findstring .tools,$(UV)),.tools/bin/uv)  ## install medspa and its tools into .venv from the lock
	$(UV) sync --frozen --python $(PYTHON)

run: install  ## migrate, seed the demo clinic if empty, serve http://127.0.0.1:8000
	@mkdir -p var
	$(MEDSPA) db upgrade
	$(MEDSPA) demo seed
	$(MEDSPA) serve --host $(HOST) --port $(PORT)

lint: install  ## ruff (lint and format) and import contracts
	$(VENV)/bin/ruff check src tests bench migrations
	$(VENV)/bin/ruff format --check src tests bench migrations
	$(VENV)/bin/lint-imports

typecheck: install  ## mypy --strict
	$(VENV)/bin/mypy

browser:  ## make headless Chromium available for the browser tests (skipped with a reason when it cannot be)
	@bash scripts/ensure-chromium.sh

unit: install  ## the test suite alone
	$(VENV)/bin/pytest

# Instants the suite also runs at (SQLite; browser tests aside, and the fuzzing, whose clock is fixed): just
# before midnight UTC, the evening hour at which a time-of-day mistake once showed, and just before New
# York springs forward.
INSTANTS ?= 2026-12-03T23:59:30Z 2026-12-03T20:25:00Z 2027-03-14T06:59:00Z

instants: install  ## the suite at other instants of the clock (it must not depend on the date or time of day)
	@for at in $(INSTANTS); do \
	  echo "the suite at $$at"; \
	  MEDSPA_TEST_NOW=$$at MEDSPA_TEST_DATABASE_URL= $(VENV)/bin/pytest -q -m "not browser and not fuzz" -p no:cacheprovider || exit 1; \
	done

test: install lint typecheck browser unit instants  ## everything CI runs: lint, types, the whole suite (also at other instants)

bench: install  ## benchmarks (not tests); results go to docs/benchmarks.md
	$(VENV)/bin/python bench/availability.py
	$(VENV)/bin/python bench/booking.py
	$(VENV)/bin/python bench/optimizer.py
	$(VENV)/bin/python bench/client_search.py
	$(VENV)/bin/python bench/pages.py

format: install  ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix src tests bench migrations
	$(VENV)/bin/ruff format src tests bench migrations

clean:  ## remove the virtual environment and local data
	rm -rf $(VENV) .tools var .mypy_cache .ruff_cache .pytest_cache
