"""The example's reduce on the 2.56 M-user day of `runner_vs_peers.py` (BENCH_STEP3_EVENTS),
laid out several ways: one item per user bucket with the runner's hot-table size against Polars'
own, with the shuffle writing 1 M-row groups, with 4 and 64 buckets instead of 16, and with the
16 buckets packed into items of about 4 buckets' size (`split = { partition, size_mb }`).

Each comparison runs BENCH_REPEATS interleaved rounds with the runner's defaults (warm item
processes, 2 workers). It prints the reference's time over each variant's (above 1, the variant
is faster; median and range), the items, and the largest item's peak RSS, and writes the output
to `bench/results/reduce_layout.txt`."""

import json
import os
import shutil
import statistics
import tempfile
import tomllib
from pathlib import Path

from runner_vs_peers import (
    DAY,
    EXAMPLE_JOB,
    REPEATS,
    RUNNER,
    STEP3_EVENTS,
    STEP3_USERS,
    Out,
    generate,
    last_usage,
    measured,
)

RESULTS = Path(__file__).resolve().parent / "results" / "reduce_layout.txt"
EXAMPLE = EXAMPLE_JOB.read_text()
# The example's reduce: one user bucket's per-user aggregates.
REDUCE_SQL = tomllib.loads(EXAMPLE)["step"][2]["outputs"]["user_daily"]["sql"]
out = Out()
# A file name per distinct job text.
jobs: dict[str, int] = {}


def swap(text: str, old: str, new: str) -> str:
    """`text` with `old` replaced, failing if it isn't there (a variant that silently equals the
    example would compare the example with itself)."""
    if old not in text:
        raise ValueError(f"{old!r} is not in the example job")
    return text.replace(old, new)


def variant(
    name: str,
    *,
    buckets: int = 16,
    row_group_size: int | None = None,
    split: str | None = None,
    map_split: str | None = None,
) -> str:
    """The example's shuffle and reduce under paths of their own, reading the committed clean day.
    Without the clean step in the job, the shuffle reads every file under `clean/`, which holds
    only what the one clean run committed."""
    text = EXAMPLE[EXAMPLE.index("# 2. the shuffle") :]
    text = swap(text, "by_user/", f"by_user_{name}/")
    text = swap(text, "user_daily/", f"user_daily_{name}/")
    text = swap(text, "% 16 AS user_bucket", f"% {buckets} AS user_bucket")
    if row_group_size:
        key = 'partition_by = ["user_bucket"]'
        text = swap(text, key, f"{key}\nrow_group_size = {row_group_size}")
    if split:
        text = swap(text, 'split = { partition = "user_bucket" }', f"split = {split}")
    if map_split:
        text = swap(text, 'split = "file"', f"split = {map_split}")
    checks = text.index("[[check]]")
    return f'name = "layout_{name}"\n' + text[:checks]


def run(root: Path, job: str, step: str, env: dict[str, str] | None = None) -> tuple[float, int, int]:
    """One step of `job`: seconds, items and the largest item's peak RSS."""
    path = root / f"job-{jobs.setdefault(job, len(jobs))}.toml"
    path.write_text(job)
    summary = root / "layout.summary.json"
    command = [str(RUNNER), "run", str(path), "--root", str(root), "--partition", DAY, "--force", "--step", step]
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_PIPES_", "SPOTLAKE_CONFIG"))}
    measured([*command, "--summary-json", str(summary)], {**environ, **(env or {})})
    s = json.loads(summary.read_text())["steps"][-1]
    return last_usage[-1].seconds, s["items"], s["peak_item_rss_bytes"]


def compare(label: str, root: Path, step: str, variants: dict[str, tuple[str, dict[str, str]]]) -> None:
    out(label)
    results: dict[str, list[tuple[float, int, int]]] = {name: [] for name in variants}
    for round_ in range(REPEATS):
        for name, (job, env) in variants.items():
            results[name].append(run(root, job, step, env))
        out(f"    round {round_ + 1}: " + ", ".join(f"{n} {r[-1][0]:.2f} s" for n, r in results.items()))
    reference = next(iter(results.values()))
    out(f"  {'variant':<44}{'median s':>10}{'reference / variant':>24}{'items':>7}{'largest item MiB':>18}")
    for name, r in results.items():
        ratios = sorted(a[0] / b[0] for a, b in zip(reference, r, strict=True))
        ratio = "" if r is reference else f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"
        peak = statistics.median(x[2] for x in r) / 2**20
        out(f"  {name:<44}{statistics.median(x[0] for x in r):>10.2f}{ratio:>24}{r[0][1]:>7}{peak:>18.0f}")


def main() -> None:
    out(f"runner: {RUNNER}")
    out(f"BENCH_STEP3_EVENTS={STEP3_EVENTS} BENCH_REPEATS={REPEATS}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-layout-") as tmp:
        root = Path(tmp)
        out(f"generating {STEP3_EVENTS:,} events ({STEP3_USERS:,} users) and cleaning them with the example...")
        generate(root, STEP3_EVENTS, files=32, users=STEP3_USERS)
        run(root, EXAMPLE, "clean")
        # The raw day is read only by the clean step; five shuffled copies of it need the room.
        shutil.rmtree(root / "raw")
        clean_files = sorted((root / "clean").rglob("*.parquet"))
        out(f"  the clean day: {len(clean_files)} files (the example's max_rows_per_file)")

        layouts = {
            "16": variant("16"),
            "rg": variant("rg", row_group_size=1 << 20),
            "4": variant("4", buckets=4),
            "64": variant("64", buckets=64),
        }
        for job in layouts.values():
            run(root, job, "shuffle")
        bucket_bytes = sum(p.stat().st_size for p in (root / "by_user_16").rglob("*.parquet")) / 16
        size_mb = max(round(4 * bucket_bytes / 2**20), 1)
        packed = variant("16", split=f'{{ partition = "user_bucket", size_mb = {size_mb} }}')
        compare(
            "reduce: per-user daily aggregates",
            root,
            "user_daily",
            {
                "16 buckets (the example)": (layouts["16"], {}),
                "16 buckets, Polars' hot table (4,096)": (layouts["16"], {"POLARS_HOT_TABLE_SIZE": "4096"}),
                "16 buckets, 1 M-row groups": (layouts["rg"], {}),
                f"16 buckets packed (size_mb = {size_mb})": (packed, {}),
                "4 buckets": (layouts["4"], {}),
                "64 buckets": (layouts["64"], {}),
            },
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(out.lines) + "\n")


if __name__ == "__main__":
    main()
