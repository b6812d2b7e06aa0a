# Everything a fresh machine with Python 3.11 and make needs: `make demo`, `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest test-long clean browser

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

# The map page's browser tests drive Debian's Chromium through Playwright (never Playwright's
# own browser download). Installed here when missing and this user may; otherwise those tests
# skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO=sudo; else SUDO=no; fi; \
	  if [ "$$SUDO" != no ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    $$SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	    { $$SUDO apt-get update -q >/dev/null 2>&1 && \
	      $$SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; }; \
	  fi; \
	  command -v chromium >/dev/null 2>&1 || \
	    echo "Chromium could not be installed: the browser tests will be skipped"; \
	}

pytest: $(STAMP) browser
	$(BIN)/pytest -m "not slow"

test: lint typecheck pytest

test-long: $(STAMP) browser
	$(BIN)/pytest

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
