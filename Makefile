# The two commands: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test fault lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/guoku demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -q

# The middleware's fault scenarios: four node processes, kill -9, broker restart, duplicates.
# `make test` runs them with the issue's 10,000 vouchers in flight each; `make fault` runs them
# alone, printing where the time went (GUOKU_FAULT_VOUCHERS=1000 for a quick run).
fault: $(STAMP)
	$(PY) -m pytest tests/fault -q -s -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench all

clean:
	rm -rf $(VENV) demo-workspace .pytest_cache .mypy_cache .ruff_cache
