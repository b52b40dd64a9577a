# SurgPlan: `make run` opens the application on the demo case, `make test` runs
# every test.  Each sets itself up on a fresh machine: Debian packages, a
# virtualenv in .venv, and the package with its test extra.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: run test bench setup clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall when the dependencies change; `pip install -e` keeps the source live.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	bash scripts/ensure-debian-packages.sh run
	$(VENV)/bin/surgplan gui

# xvfb-run gives the Qt/VTK tests a real X display (see DESIGN.md: not pytest-xvfb).
test: $(STAMP)
	bash scripts/ensure-debian-packages.sh test
	xvfb-run -a -s "-screen 0 1920x1080x24" $(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/load.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
