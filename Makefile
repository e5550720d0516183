# The two commands of the quick start are `make up` and `make test`; both install what they need.
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
SYNCED := $(VENV)/.synced

.PHONY: install up test test-fast bench lint clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(SYNCED): $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	touch $@

install: $(SYNCED)

## Start the whole platform on embedded defaults (DEMO=1 adds a demo game with simulated traffic).
up: install
	$(VENV)/bin/gamemetrics up $(if $(DEMO),--demo,)

## Run the whole test suite, slow chaos tests included.
test: install
	$(VENV)/bin/pytest

test-fast: install
	$(VENV)/bin/pytest -m "not slow"

## Long benchmarks that print figures beside the machine's raw limits.
bench: install
	$(VENV)/bin/python bench/ingest.py

lint: install
	$(VENV)/bin/ruff check src tests bench

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache
