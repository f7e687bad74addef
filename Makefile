# The course's two commands (see README.md):
#   make lab    set up .venv on first use, then open the course in JupyterLab
#   make test   set up .venv on first use, then run every test and execute every notebook
# Headless server: make lab LAB_ARGS="--no-browser --ip=0.0.0.0 --port=8888"

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAB_ARGS ?=
# load: tests go one by one to whichever worker is free; a notebook's one run is shared
# through a file lock (tests/notebook_runs.py).
PYTEST_ARGS ?= -n 2 --dist load
# The browser test drives this Chromium (Playwright's own browser download is not used).
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM

.PHONY: lab test doctor browser clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(None if sys.version_info >= (3, 10) else "labkit needs Python 3.10 or newer, but $(PYTHON) is " + sys.version.split()[0] + ". Fix: make PYTHON=python3.12 (any 3.10+ interpreter)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# One resolve for the course and its tests. --no-compile: Python compiles a module when it is
	@# first imported instead of pip compiling all of torch up front (65 s instead of 92 s here).
	$(BIN)/python -m pip install --quiet --no-compile --disable-pip-version-check --editable ".[test]"
	@touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/00_start_here.ipynb $(LAB_ARGS)

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Where make runs as root with apt-get (CI, containers, Debian lab machines) Chromium is
# installed here; elsewhere the browser test says how to install it and is skipped.
browser:
	@if [ ! -x "$(CHROMIUM)" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "make test: installing Chromium for the browser test (apt-get install chromium)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "make test: could not install Chromium; the browser test will say what is missing"; \
	fi

doctor: $(STAMP)
	$(BIN)/python -m labkit doctor

clean:
	rm -rf $(VENV) test-artifacts
