# Every target creates .venv with the system python3 if it is missing, so a fresh clone
# needs only Python >= 3.10 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test test-slow bench lint clean

# `make` alone installs the package and its test tools into .venv.
.DEFAULT_GOAL := install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed-test

demo: $(VENV)/.installed-test
	$(BIN)/python scenarios/pendulum_demo.py --out out

# Two workers (pytest-xdist): the tests are mostly single-threaded XLA compilation.
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -n 2

test-slow: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -n 2 -m slow

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/rollout.py
	$(BIN)/python benchmarks/gradients.py
	$(BIN)/python benchmarks/fit.py

lint: $(VENV)/.installed-test
	$(BIN)/ruff check diffsim tests benchmarks scenarios
	$(BIN)/ruff format --check diffsim tests benchmarks scenarios

clean:
	rm -rf $(VENV) out .pytest_cache
