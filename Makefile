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
# `make test` runs them with 1,000 vouchers in flight each; `make fault` with the issue's 10,000
# (GUOKU_FAULT_VOUCHERS overrides; about 10 minutes a scenario here).
GUOKU_FAULT_VOUCHERS ?= 10000
fault: $(STAMP)
	GUOKU_FAULT_VOUCHERS=$(GUOKU_FAULT_VOUCHERS) $(PY) -m pytest tests/fault -q -s -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench all

clean:
	rm -rf $(VENV) demo-workspace .pytest_cache .mypy_cache .ruff_cache
