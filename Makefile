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

## The web messenger (web/, TypeScript): npm ci + esbuild into src/clearpost/web/app/ (gitignored),
## which `clearpost serve` serves at /. Needs Node 20+; without it / shows a plain page (CI fails).
WEB_APP := src/clearpost/web/app/.built
WEB_SRC := $(shell find web/src web/static -type f 2>/dev/null) web/build.mjs web/package.json web/package-lock.json

$(WEB_APP): $(WEB_SRC)
	@if command -v node >/dev/null && [ "$$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ]; then \
	  cd web && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build && touch ../$@; \
	elif [ "$$CI" = "true" ]; then \
	  echo "Node 20+ is needed to build the web app (web/); install it" >&2; exit 1; \
	else \
	  echo "Node 20+ not found: the web app is not built (/ shows a plain page). Install Node 20+ and run make install again." >&2; \
	fi

## The Matrix interop suite's Node side (tests/interop/matrix): matrix-sdk-crypto-wasm, pinned.
INTEROP := tests/interop/matrix/node_modules/.package-lock.json

$(INTEROP): tests/interop/matrix/package.json tests/interop/matrix/package-lock.json
	@if command -v npm >/dev/null; then \
	  cd tests/interop/matrix && npm ci --no-audit --no-fund --loglevel=error; \
	elif [ "$$CI" = "true" ]; then \
	  echo "npm is needed for the Matrix interop suite (tests/interop/matrix); install Node 20+" >&2; exit 1; \
	else \
	  echo "npm not found: the Matrix interop suite will be skipped. Install Node 20+ and run make install again." >&2; \
	fi

install: $(BIN)/.installed $(WEB_APP) $(INTEROP)

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
	if [ -d web/node_modules ]; then cd web && npm run --silent check; fi

## The quick loop: skip tests marked slow.
unit: install
	$(BIN)/pytest -q -m "not slow"

bench: install
	$(BIN)/python bench/loadgen.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache web/node_modules src/clearpost/web/app \
	  tests/interop/matrix/node_modules
