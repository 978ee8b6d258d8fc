# The README's two commands: `make demo` (the main job) and `make test` (lint, types, tests).
# Each bootstraps a local virtual environment in .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# tools that start other tools by name (mlflow starts uvicorn) find the venv's first
export PATH := $(abspath $(BIN)):$(PATH)
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: demo test lint typecheck unit install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev,spark]"
	# Flower 1.42 (federated studies) pins older FastAPI/Typer/Rich/protobuf: its own overlay folder
	$(BIN)/python tools/install_flower.py $(VENV)/flower
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/regent demo

lint: $(STAMP)
	$(BIN)/ruff check toolkit tests bench
	$(BIN)/ruff format --check toolkit tests bench

typecheck: $(STAMP)
	$(BIN)/mypy toolkit

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

clean:
	rm -rf out dist data .pytest_cache .mypy_cache .ruff_cache
