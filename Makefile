# The front door: `make demo` runs the whole chain on the sample domains, `make test` the tests.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# Per-file progress bars of transformers/datasets drown the training progress lines in run logs.
export HF_HUB_DISABLE_PROGRESS_BARS ?= 1
export HF_DATASETS_DISABLE_PROGRESS_BARS ?= 1

.PHONY: install demo ui test clean-data

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU build on our machines; an open range may pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python -m pipelines.demo

ui: install
	mkdir -p $(DAGSTER_HOME)
	cp -n dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000

test: install
	$(BIN)/pytest -q

clean-data:
	rm -rf data .dagster_home
