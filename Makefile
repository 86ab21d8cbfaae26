# Two commands do all set-up on a fresh machine:
#   make run    install into .venv and run the whole pipeline on the embedded default data (ml-100k)
#   make test   install into .venv and run the test suite (what CI runs)
SHELL := /bin/bash
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
PYTHON ?= python3
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
export HF_HUB_OFFLINE := 1

.PHONY: install run test lint clean-outputs

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	# torch==2.13.0 is pinned in pyproject: pip takes the CPU wheel; never loosen it (CUDA build is GBs).
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	dvc repro
	@unigrec outputs

test: install
	pytest -q

lint: install
	ruff check src tests flows benchmarks
