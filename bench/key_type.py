"""The reduce's key type: one item of the example's reduce (its SQL, Polars' streaming engine,
the runner's hot-table size, via `runner/examples/group_by_engine.rs`) grouping by the example's
text `user_id` against the same ids as 64-bit integers, at the two item sizes of
`reduce_at_scale.py` (about 40 k and 160 k users an item, 100 events a user).

Issue 15 asked for key types among the reduce's levers: a profile of the 16-bucket reduce put
14.5 % of its time in Polars' string-key hash table. The items are synthetic, made with Python
Polars in the example's schema, so this isolates the key's type from everything else.
BENCH_REPEATS interleaved rounds. Not part of `make bench`; writes
`bench/results/key_type.txt`."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl
import reduce_layout as layout
from reduce_at_scale import engine, interleaved
from runner_vs_peers import REPEATS, RUNNER, out

RESULTS = Path(__file__).resolve().parent / "results" / "key_type.txt"
EVENTS_PER_USER = 100
FILES = 8


def item(root: Path, users: int) -> tuple[list[Path], list[Path]]:
    """One item's files twice, as the shuffle writes them: with text ids ("u" and 7 digits, as the
    example's data) and with the same ids as integers. Made in a process of its own: a child's
    peak RSS on Linux counts its parent's resident memory at the fork, so the measuring process
    must not hold the data."""
    subprocess.run([sys.executable, __file__, "generate", str(root), str(users)], check=True)
    return sorted(root.glob(f"text-{users}-*.parquet")), sorted(root.glob(f"int-{users}-*.parquet"))


def generate(root: Path, users: int) -> None:
    """Writes `item`'s files."""
    rows = users * EVENTS_PER_USER
    frame = (
        pl.DataFrame({"n": pl.int_range(0, rows, eager=True)})
        .select(
            pl.format("u{}", ((pl.col("n") * 7919) % users).cast(pl.String).str.zfill(7)).alias("user_id"),
            (pl.datetime(2024, 1, 1) + pl.duration(seconds=(pl.col("n") * 37) % 86_400)).alias("ts"),
            pl.lit(pl.Series(["view", "click", "cart", "purchase", "view"]))
            .gather(pl.col("n") % 5)
            .alias("event_type"),
            ((pl.col("n") % 1000).cast(pl.Float64) / 10).alias("amount"),
        )
        .with_columns(pl.col("ts").cast(pl.Datetime("us")))
    )
    for i, part in enumerate(frame.sample(fraction=1.0, shuffle=True, seed=1).iter_slices(rows // FILES + 1)):
        part.write_parquet(root / f"text-{users}-{i}.parquet")
        part.with_columns(pl.col("user_id").str.slice(1).cast(pl.Int64)).write_parquet(
            root / f"int-{users}-{i}.parquet"
        )


def main() -> None:
    out(f"runner examples: {RUNNER.parent / 'examples'}")
    out(f"BENCH_REPEATS={REPEATS}; {os.cpu_count()} cores; {EVENTS_PER_USER} events a user, {FILES} files an item")
    with tempfile.TemporaryDirectory(prefix="bench-key-") as tmp:
        root = Path(tmp)
        for users in (40_000, 160_000):
            text, integer = item(root, users)
            interleaved(
                f"one item of {users:,} users ({users * EVENTS_PER_USER:,} rows): user_id as text against as Int64",
                {
                    "text key (the example)": engine("streaming", layout.REDUCE_SQL, text, root / "out-text.parquet"),
                    "Int64 key": engine("streaming", layout.REDUCE_SQL, integer, root / "out-int.parquet"),
                },
            )
    out("\n(ratios: the first row's time / this row's, within each round; median and range)")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(out.lines) + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["generate"]:
        generate(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
