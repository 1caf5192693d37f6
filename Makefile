# The front door: `make demo` runs the whole chain on the sample domains, `make test` the tests.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# Extra pip arguments for torch, e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
# for the CPU-only build where PyPI's default (CUDA, several GB) is unwanted.
TORCH_PIP_ARGS ?=
# Extra pytest arguments, e.g. PYTEST_ARGS="--auto-dtype float32" or PYTEST_ARGS="-m 'not ui'".
PYTEST_ARGS ?=
# The newest Python that requires-python (pyproject.toml) allows; `make test-newest` runs the suite on
# the newest patch release of it found under pyenv, in its own venv.
NEWEST_MINOR ?= 3.13
PYENV_VERSIONS ?= $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install demo ui serve test test-unit test-newest lint clean-data

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU build on our machines (Python 3.11); an open range may pull a
	# multi-GB CUDA build, and on other Pythons PyPI's only build is the CUDA one.
	$(BIN)/pip install -q torch==2.13.0 $(TORCH_PIP_ARGS)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python -m pipelines.demo

# `dg dev` (Dagster 1.13's successor to `dagster dev`) loads this dg project ([tool.dg] in
# pyproject.toml); VIRTUAL_ENV names the venv it runs from, so dg does not warn of a mismatch.
ui: install
	mkdir -p $(DAGSTER_HOME)
	cp -n dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/dg dev --host 127.0.0.1 --port 3000

# Promote the gated adapters into the registry (a no-op when nothing changed), then serve them:
# one base, one adapter per domain, OpenAI-compatible, on http://127.0.0.1:8000.
serve: install
	mkdir -p $(DAGSTER_HOME)
	cp -n dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster job execute -m pipelines.definitions -j registry_job
	$(BIN)/loraline serve --host 127.0.0.1 --port 8000

test: install
	$(BIN)/pytest -q $(PYTEST_ARGS)

# Style (ruff: pycodestyle, pyflakes, import order), the floors of the code (tests/layers.py), and
# `dg check defs` (the definitions load and every component validates).
lint: install
	$(BIN)/ruff check .
	$(BIN)/python tests/layers.py
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/dg check defs

# The fast tier: pure code in the test process, under a minute.
test-unit: install
	$(BIN)/pytest -q -m unit $(PYTEST_ARGS)

# Fails, not skips, when no $(NEWEST_MINOR).x is installed: CI must not pass on one Python by accident.
test-newest:
	@newest=$$(ls -d $(PYENV_VERSIONS)/$(NEWEST_MINOR).*/ 2>/dev/null | sed 's:/$$::; s:.*/::' | grep -E '^$(subst .,\.,$(NEWEST_MINOR))\.[0-9]+$$' | sort -V | tail -n 1); \
	if [ -z "$$newest" ]; then echo "test-newest: no Python $(NEWEST_MINOR).x under $(PYENV_VERSIONS) (pyenv install $(NEWEST_MINOR))" >&2; exit 1; fi; \
	echo "test-newest: Python $$newest"; \
	$(MAKE) --no-print-directory test PYTHON=$(PYENV_VERSIONS)/$$newest/bin/python VENV=.venv-py$(NEWEST_MINOR) PYTEST_ARGS="$(PYTEST_ARGS)"

clean-data:
	rm -rf data .dagster_home
