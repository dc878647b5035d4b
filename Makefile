# The two commands of the README: `make demo` and `make test`.
# Each creates its own virtual environment (.venv) and installs what it needs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit bench clean

$(BIN)/leadrank: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/leadrank  ## simulate a team, train, create keys, serve on SQLite
	$(BIN)/leadrank demo

test: lint typecheck unit  ## ruff, mypy (strict on recommender/), pytest

lint: $(BIN)/leadrank
	$(BIN)/ruff check recommender service tests bench examples

typecheck: $(BIN)/leadrank
	$(BIN)/mypy recommender service examples

unit: $(BIN)/leadrank
	$(BIN)/python -m pytest -o addopts="-ra" tests

clean:
	rm -rf $(VENV) leadrank-demo leadrank-data .pytest_cache .mypy_cache .ruff_cache .hypothesis leadrank.egg-info
