# The two commands a newcomer needs: `make demo` and `make test`. Everything they need is
# installed from here: Rust crates by cargo, a Python venv (Dagster, moto, DuckDB) by pip and
# uv, and Chromium (for the UI screenshot test) from Debian's packages.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CARGO ?= cargo
PYTHON ?= python3

# CI builds everything once: incremental artifacts would only cost time and disk.
ifdef CI
export CARGO_INCREMENTAL := 0
endif

.PHONY: all demo test build venv tools bench wheel dist lint fmt clean

all: build

$(VENV)/.installed: requirements-dev.txt dagster_project/pyproject.toml dagster-spotlake/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements-dev.txt -e dagster-spotlake -e dagster_project
	touch $@

venv: $(VENV)/.installed $(VENV)/delta-readers/.installed

$(VENV)/delta-readers/.installed: tests/delta-readers.txt $(VENV)/.installed
	$(VENV)/bin/uv venv --quiet --allow-existing --python $(PYTHON) $(VENV)/delta-readers
	$(VENV)/bin/uv pip install --quiet --python $(VENV)/delta-readers/bin/python -r tests/delta-readers.txt
	touch $@

# System tools the tests drive, from Debian's packages: headless Chromium takes the asset-page
# screenshot in the webserver test; systemd-analyze checks the worker's systemd unit.
tools:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v systemd-analyze >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null; }

# One profile (the tuned dev profile) builds every binary the tests and the demo run.
build:
	$(CARGO) build --workspace --all-features --bins --examples

test: venv tools build
	$(CARGO) test --workspace --all-features
	$(PY) -m pytest tests

demo: venv build
	$(PY) -m spotlake_example.demo

bench: venv
	$(VENV)/bin/uv pip install --quiet --python $(PY) -r bench/requirements.txt
	RUSTFLAGS="-C target-cpu=native" $(CARGO) build --release -p pipes-rs --all-features --examples --bins
	RUSTFLAGS="-C target-cpu=native" $(CARGO) build --release -p runner -p clickstream --bins --examples
	$(PY) bench/pipes_throughput.py
	$(PY) bench/runner_vs_peers.py
	$(PY) bench/reduce_layout.py
	$(PY) bench/reduce_at_scale.py
	$(PY) bench/map_side.py
	$(PY) bench/warm_items.py
	$(PY) bench/orchestration.py
	$(PY) bench/fleet_packing.py
	$(VENV)/bin/uv pip install --quiet --python $(PY) --target .bench/polars-newest polars==2.1.0
	BENCH_POLARS_PATH=.bench/polars-newest BENCH_TPCH_SCALE=1 BENCH_TPCH_RESULTS=tpch_sf1.txt $(PY) bench/tpch.py
	BENCH_POLARS_PATH=.bench/polars-newest BENCH_TPCH_SCALE=10 BENCH_TPCH_RESULTS=tpch_sf10.txt $(PY) bench/tpch.py
	BENCH_POLARS_PATH=.bench/polars-newest $(PY) bench/custom_functions.py
	# The random SQL generator's long run against DuckDB (make test runs a fixed seed of 100).
	$(PY) tests/sql_corpus/generate.py --seed 7 --count 2000 --binary target/release/runner \
		--report bench/results/sql_generator.json

# The Dagster integration as a wheel (target/dist/dagster_spotlake-*.whl), to install in one's
# own Dagster project: `pip install target/dist/dagster_spotlake-0.1.0-py3-none-any.whl`.
wheel: venv
	$(VENV)/bin/uv build --quiet --wheel dagster-spotlake --out-dir target/dist

# The worker binary for EC2 (x86_64), linked against glibc 2.34 so it loads on Amazon Linux
# 2023 (a plain build on a newer glibc needs GLIBC_2.35 symbols and would not start there).
# zig, from PyPI, is the linker; cargo-zigbuild drives it. Upload the result with
# `runner dist upload target/dist/runner-x86_64 --to s3://BUCKET/bin` (see runner/AWS.md).
# A binary with your own functions builds the same way, by its package and binary names:
# `make dist DIST_PACKAGE=clickstream DIST_BIN=clickstream-runner` (see runner/EXTENDING.md).
DIST_GLIBC ?= 2.34
DIST_PACKAGE ?= runner
DIST_BIN ?= runner
dist: venv build wheel
	@command -v cargo-zigbuild >/dev/null || $(CARGO) install --locked cargo-zigbuild
	$(VENV)/bin/uv pip install --quiet --python $(PY) ziglang
	PATH="$(abspath $(VENV))/bin:$$PATH" $(CARGO) zigbuild --release -p $(DIST_PACKAGE) --bin $(DIST_BIN) \
		--target x86_64-unknown-linux-gnu.$(DIST_GLIBC)
	mkdir -p target/dist
	cp target/x86_64-unknown-linux-gnu/release/$(DIST_BIN) target/dist/$(DIST_BIN)-x86_64
	target/debug/runner dist check target/dist/$(DIST_BIN)-x86_64 --max-glibc $(DIST_GLIBC)

lint: venv
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	$(VENV)/bin/ruff check tests bench dagster_project dagster-spotlake
	$(VENV)/bin/ruff format --check tests bench dagster_project dagster-spotlake

fmt: venv
	$(CARGO) fmt --all
	$(VENV)/bin/ruff format tests bench dagster_project dagster-spotlake

clean:
	rm -rf $(VENV) target .demo
