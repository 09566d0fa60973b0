# Two commands for a fresh machine (see README): `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run serve test lint typecheck unit bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

## Install, then run the whole story (`clearpost demo`) on an embedded SQLite database.
run: install
	$(BIN)/clearpost demo

## Install, then start the server on the embedded default (SQLite under ./data).
serve: install
	$(BIN)/clearpost serve

## Install, then lint, type-check and run the whole test suite (SQLite and PostgreSQL).
test: install lint typecheck
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

## The quick loop: skip tests marked slow.
unit: install
	$(BIN)/pytest -q -m "not slow"

bench: install
	$(BIN)/python bench/loadgen.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
