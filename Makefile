# The two commands of the README: `make demo` (setup + the whole pipeline on the local defaults)
# and `make test` (setup + the whole suite). Everything runs from .venv, built from the lock.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov (the generic template checks of infra/) in a virtualenv of its own: its pins conflict
# with the project's lock (requirements/checkov.in says which), so the two never share one.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
LAKEHOUSE_HOME ?= $(CURDIR)/lake
export LAKEHOUSE_HOME

# pip's "Location ... is ignored" warnings come from this machine's pip.conf, not from us.
PIP := set -o pipefail; $(BIN)/python -m pip install --quiet --disable-pip-version-check
QUIET := 2>&1 | { grep -v "is ignored: it is neither" || true; }

.PHONY: setup demo test check browser lint fmt docs bench clean lock lock-checkov

setup: $(STAMP) $(CHECKOV_STAMP)

# Rebuilt only when the lock or the package metadata changes, so a second `make setup` is instant.
$(STAMP): requirements/requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade "pip>=24" $(QUIET)
	$(PIP) -r requirements/requirements.lock $(QUIET)
	$(PIP) --no-deps --no-build-isolation -e . $(QUIET)
	# class-data sharing archives for the Spark JVM (lakehouse/jvm.py): ~2 s off every Spark start
	$(BIN)/lakehouse setup-jvm
	@touch $(STAMP)

# The same for checkov's own virtualenv, from its own lock.
$(CHECKOV_STAMP): requirements/checkov.lock
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	set -o pipefail; $(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
	  -r requirements/checkov.lock $(QUIET)
	@touch $(CHECKOV_STAMP)

demo: setup
	$(BIN)/lakehouse run

# The whole suite: static gates first (fast, no engines), then pytest, which drives the real
# engines (Spark + Iceberg, DuckDB, an S3 endpoint on loopback, headless Chromium).
test: setup browser
	$(MAKE) --no-print-directory check
	$(BIN)/python -m pytest

# Static quality gates (lint, types, dbt parse/compile of every target, project structure, secrets,
# checkov on infra/).
# No engine starts and no credential is needed (scripts/offline_dbt.py); scripts/gates.py runs
# the gates side by side and ends with a summary and timings. See CONTRIBUTING.md.
check: setup
	$(BIN)/python scripts/gates.py check

# sqlfluff (dbt templater, one run per target), ruff, ruff format --check, YAML.
lint: setup
	$(BIN)/python scripts/gates.py lint

# Fix what can be fixed: SQL layout and case, Python imports and format. Review the diff.
fmt: setup
	$(BIN)/python scripts/offline_dbt.py sqlfluff fix models tests/dbt
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The report test opens the HTML in Debian's headless Chromium.
browser:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the report test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

docs: setup
	$(BIN)/lakehouse docs

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf lake reports target logs

# Re-resolve the pins from requirements.in (needs the package index).
lock:
	rm -rf /tmp/lakehouse-lock && $(PYTHON) -m venv /tmp/lakehouse-lock
	/tmp/lakehouse-lock/bin/pip install --quiet -r requirements/requirements.in
	/tmp/lakehouse-lock/bin/pip freeze --exclude-editable > requirements/requirements.lock

# Re-resolve checkov's pins from checkov.in, in a virtualenv of their own (needs the package index).
lock-checkov:
	rm -rf /tmp/lakehouse-lock-checkov && $(PYTHON) -m venv /tmp/lakehouse-lock-checkov
	/tmp/lakehouse-lock-checkov/bin/pip install --quiet -r requirements/checkov.in
	/tmp/lakehouse-lock-checkov/bin/pip freeze > requirements/checkov.lock
