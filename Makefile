# The two commands of the README: `make demo` (setup + the whole pipeline on the local defaults)
# and `make test` (setup + the whole suite). Everything runs from .venv, built from the lock.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAKEHOUSE_HOME ?= $(CURDIR)/lake
export LAKEHOUSE_HOME

.PHONY: setup demo test pytest lint fmt docs bench clean lock

setup: $(STAMP)

# Rebuilt only when the lock or the package metadata changes, so a second `make setup` is instant.
$(STAMP): requirements/requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: setup
	$(BIN)/lakehouse run

test: setup
	$(BIN)/python -m pytest

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
