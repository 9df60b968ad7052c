"""Step 1 (`bench/jobs/step1_csv.toml`, one worker, a fresh process per item) with two builds of
the runner, against the hand-tuned Python Polars and DuckDB peers of `runner_vs_peers.py`,
interleaved: the release build `make bench` makes, and one with Polars' `simd` feature.

Not part of `make bench`: the second build needs a local edit. Polars' `simd` uses the nightly
`portable_simd` API; this machine has one stable toolchain, whose compiler allows it only with
RUSTC_BOOTSTRAP=1. To build it: add "simd" to the Polars features in `crates/engine/Cargo.toml`,
then `RUSTC_BOOTSTRAP=1 RUSTFLAGS="-C target-cpu=native" cargo build --release -p runner --bin runner`.

Usage: `bench/simd_build.py STABLE_RUNNER SIMD_RUNNER EVENTS` (EVENTS in 8 gzip files), with
BENCH_REPEATS rounds. Prints each round and the ratios (median and range over the rounds)."""

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import runner_vs_peers as rv
from reduce_at_scale import interleaved, peer, ratio_text


def step1(binary: Path, root: Path) -> Callable[[], int]:
    """Step 1 with `binary`; reports its largest item's peak RSS."""

    def go() -> int:
        summary = rv.runner(rv.JOBS / "step1_csv.toml", root, "--workers", "1", binary=binary)
        return summary["steps"][-1]["peak_item_rss_bytes"]

    return go


def main() -> None:
    stable, simd, events = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    with tempfile.TemporaryDirectory(prefix="simd-") as d:
        root = Path(d)
        rv.generate(root, events, files=8)
        runs = interleaved(
            f"step 1, {events:,} events in 8 gzip files: the stable build against the simd one",
            {
                "stable": step1(stable, root),
                "simd": step1(simd, root),
                "python polars, tuned": peer(rv.PY_POLARS_TUNED_STEP1, root),
                "duckdb": peer(rv.DUCKDB_STEP1, root),
            },
        )
    for name in ("python polars, tuned", "duckdb"):
        for build in ("stable", "simd"):
            print(f"  {name} / {build}: {ratio_text(runs[name], runs[build])}")


if __name__ == "__main__":
    main()
