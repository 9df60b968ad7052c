"""Step 3 (the example's reduce) on the 2.56 M-user day of `runner_vs_peers.py`
(BENCH_STEP3_EVENTS), in one run:

1. the runner with the example's 16 user buckets and with 64, against DuckDB and Python Polars
   reading the 16-bucket shuffle (one query over the whole day; the bucket count is the
   runner's layout, not theirs);
2. one item of each layout, its SQL under Polars' streaming engine (what the runner's items run)
   and under the in-memory engine (`runner/examples/group_by_engine.rs`), with the runner's
   hot-table size, so that the engine choice rests on a measurement per item size.

BENCH_REPEATS interleaved rounds; the runner with its defaults (warm item processes, 2 workers).
Prints the first row's time over each other's, peer time over the runner's (as in
`runner_vs_peers.py`), and writes the output to `bench/results/reduce_at_scale.txt`."""

import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import reduce_layout as layout
from runner_vs_peers import (
    DUCKDB_STEP3,
    PY_POLARS_STEP3,
    REPEATS,
    RUNNER,
    STEP3_EVENTS,
    STEP3_USERS,
    generate,
    last_usage,
    measured,
)

RESULTS = Path(__file__).resolve().parent / "results" / "reduce_at_scale.txt"
GROUP_BY_ENGINE = RUNNER.parent / "examples" / "group_by_engine"
# What the runner gives every item process (crates/core/src/worker/item_env.rs).
HOT_TABLE = {"POLARS_HOT_TABLE_SIZE": "262144"}
out = layout.out


def interleaved(label: str, engines: dict[str, Callable[[], int]]) -> dict[str, list[tuple[float, int]]]:
    """BENCH_REPEATS rounds of every engine in turn. Each callable runs once and returns the
    peak RSS to report. Prints the first engine's time over each other's (above 1, the other is
    faster); returns every run's seconds and peak."""
    out(label)
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name in engines}
    for round_ in range(REPEATS):
        for name, engine in engines.items():
            rss = engine()
            runs[name].append((last_usage[-1].seconds, rss))
        out(f"    round {round_ + 1}: " + ", ".join(f"{n} {r[-1][0]:.2f} s" for n, r in runs.items()))
    reference = next(iter(runs))
    out(f"  {'':<40}{'median s':>10}{'first / this':>22}{'peak MiB':>10}")
    for name, r in runs.items():
        ratio = "" if name == reference else ratio_text(runs[reference], r)
        peak = statistics.median(x[1] for x in r) / 2**20
        out(f"  {name:<40}{statistics.median(x[0] for x in r):>10.2f}{ratio:>22}{peak:>10.0f}")
    return runs


def ratio_text(numerator: list[tuple[float, int]], denominator: list[tuple[float, int]]) -> str:
    """Time over time within each round: the median, and the range over the rounds."""
    ratios = sorted(a[0] / b[0] for a, b in zip(numerator, denominator, strict=True))
    return f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"


def runner_step(root: Path, job: str) -> Callable[[], int]:
    """The job's reduce; reports its largest item's peak RSS."""

    def go() -> int:
        _, _, peak = layout.run(root, job, "user_daily")
        return peak

    return go


def peer(code: str, root: Path) -> Callable[[], int]:
    """A peer's script, one process; reports its peak RSS."""

    def go() -> int:
        measured([sys.executable, "-c", code, str(root)])
        return last_usage[-1].rss

    return go


def engine(name: str, sql: str, files: list[Path], target: Path) -> Callable[[], int]:
    """One item's SQL under one Polars engine, in a process of its own; reports its peak RSS."""

    def go() -> int:
        measured([str(GROUP_BY_ENGINE), name, str(target), sql, *map(str, files)], {**os.environ, **HOT_TABLE})
        return last_usage[-1].rss

    return go


def main() -> None:
    out(f"runner: {RUNNER}")
    out(f"BENCH_STEP3_EVENTS={STEP3_EVENTS} BENCH_REPEATS={REPEATS}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(tmp)
        out(f"generating {STEP3_EVENTS:,} events ({STEP3_USERS:,} users) and cleaning them with the example...")
        generate(root, STEP3_EVENTS, files=32, users=STEP3_USERS)
        layout.run(root, layout.EXAMPLE, "clean")
        shutil.rmtree(root / "raw")
        # The example's own shuffle (under by_user/, where the peers read) and a 64-bucket one.
        sixty_four = layout.variant("64", buckets=64)
        layout.run(root, layout.EXAMPLE, "shuffle")
        layout.run(root, sixty_four, "shuffle")
        runners = ("runner, 16 buckets (the example)", "runner, 64 buckets")
        whole_day = interleaved(
            "step 3: per-user daily aggregates of the whole day",
            {
                runners[0]: runner_step(root, layout.EXAMPLE),
                runners[1]: runner_step(root, sixty_four),
                "duckdb": peer(DUCKDB_STEP3, root),
                "python polars": peer(PY_POLARS_STEP3, root),
            },
        )
        out("  peer time / runner time (the goal is >= 1.0x DuckDB):")
        for name in ("duckdb", "python polars"):
            for runner in runners:
                out(f"    {name} / {runner}: {ratio_text(whole_day[name], whole_day[runner])}")
        for buckets, shuffled in ((16, "by_user"), (64, "by_user_64")):
            files = sorted((root / shuffled / "day=2024-01-01" / "user_bucket=0").glob("*.parquet"))
            size = sum(f.stat().st_size for f in files)
            interleaved(
                f"one item of {buckets} buckets ({len(files)} files, {size / 2**20:.0f} MiB, "
                f"about {STEP3_USERS // buckets:,} users): the streaming engine against the in-memory one",
                {
                    name: engine(name, layout.REDUCE_SQL, files, root / f"engine-{name}.parquet")
                    for name in ("streaming", "in-memory")
                },
            )
    out("\n(ratios: the first row's time / this row's, within each round; median and range)")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(out.lines) + "\n")


if __name__ == "__main__":
    main()
