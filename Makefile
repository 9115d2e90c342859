# Every target creates .venv with the system python3 if it is missing, so a fresh clone
# needs only Python >= 3.10 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test test-slow test-min test-browser docs docs-serve bench lint clean

# `make` alone installs the package and its test tools into .venv.
.DEFAULT_GOAL := install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	touch $@

# The C++ kernels (all-pairs forces on the CPU), compiled for this machine with the
# system C++ compiler into ~/.cache/diffsim/kernels; without a compiler the package uses
# its pure-JAX path, and this step says so.
$(VENV)/.kernels: $(VENV)/.installed-test $(wildcard diffsim/kernels/*.cc diffsim/kernels/*.h) diffsim/kernels/_build.py
	$(BIN)/python -m diffsim.kernels._build
	touch $@

install: $(VENV)/.installed-test $(VENV)/.kernels

demo: install
	$(BIN)/python scenarios/pendulum_demo.py --out out

# Two workers (pytest-xdist): the tests are mostly single-threaded XLA compilation.
test: install
	$(BIN)/python -m pytest -q -n 2

test-slow: install
	$(BIN)/python -m pytest -q -n 2 -m slow

# The documentation site, from docs/ and the docstrings, into site/; any warning fails it.
docs: $(VENV)/.installed-test
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(VENV)/.installed-test
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# The lowest versions pyproject.toml declares, in their own venv (.venv-min): installs
# exactly those (tests/min_versions.py reads them from the installed package's metadata) and runs the smoke
# tests, the README's examples and a scenario.
test-min: $(VENV)/.installed-test
	$(BIN)/python tests/min_versions.py --venv .venv-min
	DIFFSIM_TEST_MIN=1 .venv-min/bin/python -m pytest -q -p no:cacheprovider tests/test_smoke_min.py tests/test_readme.py

# A real browser loads the built site (tests/docs/test_browser.py). Needs Debian's
# chromium and chromium-driver: apt-get install chromium chromium-driver.
test-browser: $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet "selenium>=4.20"
	DIFFSIM_BROWSER_TEST=required $(BIN)/python -m pytest -q -p no:xdist -m slow tests/docs/test_browser.py

bench: install
	$(BIN)/python benchmarks/rollout.py
	$(BIN)/python benchmarks/gradients.py
	$(BIN)/python benchmarks/fit.py

lint: $(VENV)/.installed-test
	$(BIN)/ruff check diffsim tests benchmarks scenarios
	$(BIN)/ruff format --check diffsim tests benchmarks scenarios

clean:
	rm -rf $(VENV) .venv-min out site .pytest_cache
