# Everything a fresh machine with Python 3.11 and make needs: `make demo`, `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest test-long clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
# MAVProxy, a peer in the MAVLink tests, headless: its wheel asks for vtk and opencv for
# 3-D maps no test uses
	$(BIN)/python -m pip install --quiet --no-deps 'MAVProxy>=1.8.70'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/skysweep demo --out runs/demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -m "not slow"

test: lint typecheck pytest

test-long: $(STAMP)
	$(BIN)/pytest

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
