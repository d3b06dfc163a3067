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

# The suite on two workers, then the middleware's fault scenarios alone (four node processes,
# kill -9, broker restart, every message twice, 10,000 vouchers in flight each): they restart
# the broker and build 10,000 sealed vouchers, so they must not share the machine or the broker
# with the rest (docs/decisions/0011).
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -q --ignore=tests/fault
	$(MAKE) --no-print-directory fault

# GUOKU_FAULT_VOUCHERS overrides the size (at least 10).
GUOKU_FAULT_VOUCHERS ?= 10000
fault: $(STAMP)
	GUOKU_FAULT_VOUCHERS=$(GUOKU_FAULT_VOUCHERS) $(PY) -m pytest tests/fault -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench all

clean:
	rm -rf $(VENV) demo-workspace .pytest_cache .mypy_cache .ruff_cache
