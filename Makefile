# The two commands a newcomer needs: `make demo` and `make test`. Everything they need is
# installed from here (the Python venv with Dagster and moto) or fetched by cargo.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CARGO ?= cargo
PYTHON ?= python3

# CI builds everything exactly once: incremental artifacts would only cost time and disk.
ifdef CI
export CARGO_INCREMENTAL := 0
endif

.PHONY: all demo test test-rust test-python build venv bench lint fmt clean

all: build

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# One profile (the tuned dev profile) for every binary the tests run.
build:
	$(CARGO) build --workspace --all-features --bins --examples

test: venv build
	$(CARGO) test --workspace --all-features
	$(PY) -m pytest tests

demo: venv build
	$(PY) tests/demo_pipes.py

bench: venv
	$(CARGO) build --release -p pipes-rs --all-features --examples --bins
	$(PY) bench/pipes_throughput.py

lint: venv
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	$(VENV)/bin/ruff check tests bench
	$(VENV)/bin/ruff format --check tests bench

fmt: venv
	$(CARGO) fmt --all
	$(VENV)/bin/ruff format tests bench

clean:
	rm -rf $(VENV) target
