"""Step 1 (`bench/jobs/step1_csv.toml`, one worker, a fresh process per item) with two builds of
the runner, against the hand-tuned Python Polars and DuckDB peers of `runner_vs_peers.py`,
interleaved: the release build `make bench` makes, and one with Polars' `simd` feature.

Not part of `make bench`: the second build needs a local edit. Polars' `simd` uses the nightly
`portable_simd` API; this machine has one stable toolchain, whose compiler allows it only with
RUSTC_BOOTSTRAP=1. To build it: add "simd" to the Polars features in `crates/engine/Cargo.toml`,
then `RUSTC_BOOTSTRAP=1 RUSTFLAGS="-C target-cpu=native" cargo build --release -p runner --bin runner`.

Usage: `bench/simd_build.py STABLE_RUNNER SIMD_RUNNER EVENTS ROUNDS` (EVENTS in 8 gzip files).
Prints each round and the ratios (median and range over the rounds)."""

import os
import statistics
import sys
import tempfile
from pathlib import Path

import runner_vs_peers as rv


def runner(binary: Path, root: Path) -> None:
    config = root / "bench-runner.toml"
    config.write_text(rv.FRESH)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES_")}
    env["RUNNER_CONFIG"] = str(config)
    job = rv.JOBS / "step1_csv.toml"
    command = [str(binary), "run", str(job), "--root", str(root), "--partition", rv.DAY, "--force", "--workers", "1"]
    rv.measured(command, env)


def main() -> None:
    stable, simd = Path(sys.argv[1]), Path(sys.argv[2])
    events, rounds = int(sys.argv[3]), int(sys.argv[4])
    with tempfile.TemporaryDirectory(prefix="simd-") as d:
        root = Path(d)
        rv.generate(root, events, files=8)
        engines = {
            "stable": lambda: runner(stable, root),
            "simd": lambda: runner(simd, root),
            "python polars, tuned": lambda: rv.python(rv.PY_POLARS_TUNED_STEP1, root),
            "duckdb": lambda: rv.python(rv.DUCKDB_STEP1, root),
        }
        times: dict[str, list[float]] = {name: [] for name in engines}
        for round_ in range(rounds):
            for name, run in engines.items():
                run()
                times[name].append(rv.last_usage[-1].seconds)
            print(f"round {round_ + 1}: " + ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items()), flush=True)

    def ratio(a: str, b: str) -> str:
        ratios = sorted(x / y for x, y in zip(times[a], times[b], strict=True))
        return f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"

    print(f"{events:,} events, 8 files, {rounds} rounds")
    print("stable / simd:", ratio("stable", "simd"))
    for peer in ("python polars, tuned", "duckdb"):
        print(f"{peer} / stable:", ratio(peer, "stable"), f"  {peer} / simd:", ratio(peer, "simd"))


if __name__ == "__main__":
    main()
