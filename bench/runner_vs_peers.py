"""The runner against Python Polars, DuckDB and PySpark (local mode) doing the same work on the
same data in the same run: step 1 (headerless CSV → clean → hive Parquet), from many gzip files
and from one, and the example pipeline's step 3 (per-user daily aggregates, one work item per user
bucket of the shuffled data) at a realistic and at a low number of users, with fresh and with warm
item processes. Then the runner's peak item RSS at 1x, 4x and 16x the input.

Each comparison runs `BENCH_REPEATS` rounds (at least 3); in each round the runner and its peers
run one after another, so a noisy minute hits them alike, and each peer's ratio is taken within
its round. It prints each ratio's median and range, and writes the whole output, with every
round's seconds, to `bench/results/runner_vs_peers.txt`."""

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from example_data import generate_day

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(os.environ.get("BENCH_RUNNER", ROOT / "target" / "release" / "runner"))
JOBS = Path(__file__).resolve().parent / "jobs"
EXAMPLE_JOB = ROOT / "runner" / "examples" / "events" / "job.toml"
DAY = "2024-01-01"
# 56 M events (39 M CSV rows, about 2.5 GB of text) make step 1 take the runner over 10 s here.
EVENTS = int(os.environ.get("BENCH_EVENTS", "56000000"))
# Step 3 aggregates a bigger day, so that it too takes the runner over 10 s: 256 M events
# cleaned by the example, about 100 per user (2.56 M users).
STEP3_EVENTS = int(os.environ.get("BENCH_STEP3_EVENTS", "256000000"))
STEP3_USERS = max(STEP3_EVENTS // 100, 1)
REPEATS = max(int(os.environ.get("BENCH_REPEATS", "3")), 1)
# Step 1 from one gzip file of this many events, against the same events in 8 files.
ONE_GZIP_EVENTS = int(os.environ.get("BENCH_ONE_GZIP_EVENTS", "14000000"))
RESULTS = Path(__file__).resolve().parent / "results" / "runner_vs_peers.txt"
COLUMNS = ["event_id", "user_id", "ts", "event_type", "amount", "country", "device"]


def generate(root: Path, events: int, files: int, users: int | None = None) -> None:
    """The day's web CSV (70 % of the events; what step 1 reads) and app NDJSON (the rest)."""
    generate_day(RUNNER, root, events, files, DAY, users)


@dataclass
class Usage:
    """One engine run: wall seconds, CPU seconds (user + system, the whole process tree), and
    the peak RSS of the largest process in it (the runner's item processes are separate
    processes, so for the runner this is its largest item or its orchestrator, not a sum)."""

    seconds: float
    cpu: float
    rss: int


last_usage: list[Usage] = []


def measured(command: list[str], env: dict[str, str] | None = None) -> None:
    """Runs `command` to its end, failing on a non-zero exit, and appends its `Usage`.
    `os.wait4` gives the child's own rusage, which includes every descendant it waited for."""
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            log.seek(0)
            tail = log.read()[-4000:].decode(errors="replace")
            raise RuntimeError(f"{command[:3]} exited {child.returncode}:\n{tail}")
    last_usage.append(Usage(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024))


# Warm item processes are the default; the reference rows run a fresh process per item, and the
# warm rows say what keeping them warm gains.
FRESH = "[warm_items]\nenabled = false\n"


def runner(job: Path, root: Path, *extra: str, config: str = FRESH, binary: Path = RUNNER) -> dict:
    summary = root / f"{job.stem}.summary.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES_")}
    config_file = root / "bench-runner.toml"
    config_file.write_text(config)
    env["SPOTLAKE_CONFIG"] = str(config_file)
    command = [str(binary), "run", str(job), "--root", str(root), "--partition", DAY, "--force"]
    measured([*command, "--summary-json", str(summary), *extra], env)
    return json.loads(summary.read_text())


def step1(root: Path) -> dict:
    return runner(JOBS / "step1_csv.toml", root, "--workers", "1")


def shuffle(root: Path) -> None:
    """The example's own clean and shuffle steps: the input of its step 3. (A step reads only
    what its job's items committed, so the benchmark's step-1 job can't feed it.)"""
    runner(EXAMPLE_JOB, root, "--step", "clean", "--step", "shuffle")


def step3(root: Path) -> dict:
    """The example's step 3 as `runner run` does it by default: one item per user bucket."""
    return runner(EXAMPLE_JOB, root, "--step", "user_daily")


# Warm item processes: a process takes the next bucket while its memory stays within 2x of what
# it held after its first.
WARM = "[warm_items]\nmax_growth = 2.0\n"


def step3_warm(root: Path) -> dict:
    return runner(EXAMPLE_JOB, root, "--step", "user_daily", config=WARM)


PY_POLARS_STEP1 = """
import polars as pl, sys
root = sys.argv[1]
schema = {"event_id": pl.String, "user_id": pl.String, "ts": pl.Datetime("us"), "event_type": pl.String,
          "amount": pl.Float64, "country": pl.String, "device": pl.String}
lf = pl.scan_csv(f"{root}/raw/2024-01-01/web-*.csv.gz", has_header=False, schema=schema)
lf = lf.filter(pl.col("user_id").is_not_null()).with_columns(pl.col("ts").dt.date().alias("day"))
lf.sink_parquet(pl.PartitionBy(f"{root}/py_polars_clean", key="day", include_key=False), mkdir=True)
"""

# The per-user daily aggregates, as Python Polars writes them; both step-3 scripts define `user_daily`.
POLARS_USER_DAILY = """
def user_daily(lf):
    return lf.group_by("user_id").agg(
        pl.len().alias("events"),
        (pl.col("event_type") == "purchase").sum().alias("purchases"),
        pl.col("amount").sum().alias("revenue"),
        pl.col("ts").min().alias("first_seen"),
        pl.col("ts").max().alias("last_seen"),
    )
"""

# Step 3's peers read what the runner's step 3 reads: the shuffled day, hive-partitioned by bucket.
PY_POLARS_STEP3 = (
    """
import polars as pl, sys
root = sys.argv[1]
"""
    + POLARS_USER_DAILY
    + """
lf = pl.scan_parquet(f"{root}/by_user/day=2024-01-01/**/*.parquet", hive_partitioning=True)
user_daily(lf).sink_parquet(f"{root}/py_polars_user_daily.parquet")
"""
)

# The runner's own shape, one bucket at a time, in one warm process: what the runner would cost
# without a fresh process per item.
PY_POLARS_STEP3_BUCKETS = (
    """
import polars as pl, sys
from pathlib import Path
root = Path(sys.argv[1])
"""
    + POLARS_USER_DAILY
    + """
out = root / "py_polars_buckets"
out.mkdir(exist_ok=True)
for bucket in sorted((root / "by_user" / "day=2024-01-01").glob("user_bucket=*")):
    user_daily(pl.scan_parquet(f"{bucket}/*.parquet")).sink_parquet(out / f"{bucket.name}.parquet")
"""
)

# The same, hand-tuned the way the runner reads it: timestamps read as text and parsed with a
# known format (Polars' own datetime inference in the CSV reader is its slow path).
PY_POLARS_TUNED_STEP1 = """
import polars as pl, sys
root = sys.argv[1]
schema = {"event_id": pl.String, "user_id": pl.String, "ts": pl.String, "event_type": pl.String,
          "amount": pl.Float64, "country": pl.String, "device": pl.String}
lf = pl.scan_csv(f"{root}/raw/2024-01-01/web-*.csv.gz", has_header=False, schema=schema)
lf = lf.with_columns(pl.col("ts").str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", exact=True, cache=False))
lf = lf.filter(pl.col("user_id").is_not_null()).with_columns(pl.col("ts").dt.date().alias("day"))
lf.sink_parquet(pl.PartitionBy(f"{root}/py_polars_tuned_clean", key="day", include_key=False), mkdir=True)
"""

DUCKDB_STEP1 = """
import duckdb, sys
root = sys.argv[1]
duckdb.execute(f'''COPY (SELECT *, CAST(ts AS DATE) AS day FROM read_csv('{root}/raw/2024-01-01/web-*.csv.gz',
    header=false, columns={{'event_id':'VARCHAR','user_id':'VARCHAR','ts':'TIMESTAMP','event_type':'VARCHAR',
    'amount':'DOUBLE','country':'VARCHAR','device':'VARCHAR'}}) WHERE user_id IS NOT NULL)
    TO '{root}/duckdb_clean' (FORMAT parquet, PARTITION_BY (day), COMPRESSION zstd, OVERWRITE_OR_IGNORE)''')
"""

DUCKDB_USER_DAILY = """SELECT user_id, COUNT(*) AS events,
    SUM(CASE WHEN event_type='purchase' THEN 1 ELSE 0 END) AS purchases,
    COALESCE(SUM(amount), 0.0) AS revenue, MIN(ts) AS first_seen, MAX(ts) AS last_seen
    FROM read_parquet('{src}', hive_partitioning=true) GROUP BY user_id"""

DUCKDB_STEP3 = f"""
import duckdb, sys
root = sys.argv[1]
query = {DUCKDB_USER_DAILY!r}.format(src=f"{{root}}/by_user/day=2024-01-01/**/*.parquet")
duckdb.execute(f"COPY ({{query}}) TO '{{root}}/duckdb_user_daily.parquet' (FORMAT parquet, COMPRESSION zstd)")
"""

DUCKDB_STEP3_BUCKETS = f"""
import duckdb, sys
from pathlib import Path
root = Path(sys.argv[1])
(root / "duckdb_buckets").mkdir(exist_ok=True)
for bucket in sorted((root / "by_user" / "day=2024-01-01").glob("user_bucket=*")):
    query = {DUCKDB_USER_DAILY!r}.format(src=f"{{bucket}}/*.parquet")
    out = root / "duckdb_buckets" / f"{{bucket.name}}.parquet"
    duckdb.execute(f"COPY ({{query}}) TO '{{out}}' (FORMAT parquet, COMPRESSION zstd)")
"""

SPARK_PRELUDE = """
import sys
from pyspark.sql import SparkSession, functions as F, types as T
root = sys.argv[1]
spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "4").config("spark.driver.memory", "6g").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
"""

SPARK_STEP1 = (
    SPARK_PRELUDE
    + """
schema = T.StructType([T.StructField(n, t) for n, t in [("event_id", T.StringType()), ("user_id", T.StringType()),
    ("ts", T.TimestampType()), ("event_type", T.StringType()), ("amount", T.DoubleType()),
    ("country", T.StringType()), ("device", T.StringType())]])
df = spark.read.csv(f"{root}/raw/2024-01-01/web-*.csv.gz", schema=schema, header=False,
                    timestampFormat="yyyy-MM-dd HH:mm:ss")
df = df.where(F.col("user_id").isNotNull()).withColumn("day", F.to_date("ts"))
df.write.mode("overwrite").partitionBy("day").option("compression", "zstd").parquet(f"{root}/spark_clean")
"""
)

SPARK_STEP3 = (
    SPARK_PRELUDE
    + """
df = spark.read.parquet(f"{root}/by_user")
out = df.groupBy("user_id").agg(F.count("*").alias("events"),
    F.sum(F.when(F.col("event_type") == "purchase", 1).otherwise(0)).alias("purchases"),
    F.coalesce(F.sum("amount"), F.lit(0.0)).alias("revenue"), F.min("ts").alias("first_seen"),
    F.max("ts").alias("last_seen"))
out.write.mode("overwrite").option("compression", "zstd").parquet(f"{root}/spark_user_daily")
"""
)


class Out:
    """Prints, and keeps every line for the results file."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)


out = Out()


def python(code: str, root: Path) -> None:
    measured([sys.executable, "-c", code, str(root)])


def compare(
    label: str, runners: dict[str, Callable[[], dict]], peers: dict[str, str], root: Path
) -> dict[str, list[float]]:
    """Rounds of the runner's variants and every peer, one after another; seconds per round.
    The first runner variant is the reference; each variant's peak item RSS is kept too."""
    out(label)
    engines: dict[str, Callable[[], object]] = {}
    for name, run in runners.items():
        engines[name] = lambda run=run, name=name: peaks.setdefault((label, name), []).append(
            run()["steps"][-1]["peak_item_rss_bytes"]
        )
    for name, code in peers.items():
        if name.startswith("pyspark") and shutil.which("java") is None:
            continue
        engines[name] = lambda code=code: python(code, root)
    times: dict[str, list[float]] = {name: [] for name in engines}
    for round_ in range(REPEATS):
        for name, run in engines.items():
            last_usage.clear()
            run()
            usage = last_usage[-1]
            times[name].append(usage.seconds)
            usages.setdefault((label, name), []).append(usage)
        out(
            f"    round {round_ + 1}: "
            + ", ".join(
                f"{n} {u[-1].seconds:.2f} s"
                + (
                    ""
                    if n.startswith("pyspark")
                    else f" ({u[-1].cpu / u[-1].seconds:.2f} cores, {u[-1].rss / 2**20:.0f} MiB)"
                )
                for n, u in ((n, usages[(label, n)]) for n in engines)
            )
        )
    return times


usages: dict[tuple[str, str], list[Usage]] = {}


peaks: dict[tuple[str, str], list[int]] = {}


def ratio_text(times: dict[str, list[float]], name: str) -> str:
    """Peer time / runner time within each round: the median, and the range over the rounds.
    For a variant of the runner, runner time / variant time: above 1, the variant is faster."""
    reference = next(iter(times.values()))
    pairs = zip(times[name], reference, strict=True)
    ratios = sorted(r / t if name.startswith("runner") else t / r for t, r in pairs)
    return f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"


STEP1_PEERS = {
    "python polars": PY_POLARS_STEP1,
    "python polars, tuned": PY_POLARS_TUNED_STEP1,
    "duckdb": DUCKDB_STEP1,
    "pyspark local[2]": SPARK_STEP1,
}
STEP3_PEERS = {
    "python polars": PY_POLARS_STEP3,
    "python polars, per bucket": PY_POLARS_STEP3_BUCKETS,
    "duckdb": DUCKDB_STEP3,
    "duckdb, per bucket": DUCKDB_STEP3_BUCKETS,
    "pyspark local[2]": SPARK_STEP3,
}


def main() -> None:
    results: dict[str, dict[str, list[float]]] = {}
    inputs: list[str] = []
    out(f"runner: {RUNNER}")
    out(
        f"BENCH_EVENTS={EVENTS} BENCH_STEP3_EVENTS={STEP3_EVENTS} BENCH_ONE_GZIP_EVENTS={ONE_GZIP_EVENTS} "
        f"BENCH_REPEATS={REPEATS}; {os.cpu_count()} cores"
    )
    step1_runner = {"runner": lambda: step1(root)}
    step3_runners = {"runner": lambda: step3(root), "runner, warm item processes": lambda: step3_warm(root)}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        root = Path(tmp)
        out(f"generating {EVENTS:,} events (web CSV: {int(EVENTS * 0.7):,} rows, 5,000 users)...")
        generate(root, EVENTS, files=8)
        size = sum(p.stat().st_size for p in (root / "raw").rglob("*.gz"))
        inputs.append(f"step 1: {size / 1e6:.0f} MB of gzipped CSV in 8 files, {int(EVENTS * 0.7):,} rows")
        label = "step 1 (CSV → hive Parquet)"
        results[label] = compare(label, step1_runner, STEP1_PEERS, root)
        shuffle(root)
        label = "step 3, 5,000 users"
        results[label] = compare(label, step3_runners, STEP3_PEERS, root)
        inputs.append(f"step 3, 5,000 users: the example's clean day, {EVENTS:,} rows, shuffled into 16 buckets")

    for files in (8, 1):
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            root = Path(tmp)
            generate(root, ONE_GZIP_EVENTS, files=files)
            label = f"step 1, {int(ONE_GZIP_EVENTS * 0.7):,} rows in {files} gzip file{'s' if files > 1 else ''}"
            peers = {"duckdb": DUCKDB_STEP1, "python polars": PY_POLARS_STEP1}
            results[label] = compare(label, step1_runner, peers, root)

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        root = Path(tmp)
        out(f"generating {STEP3_EVENTS:,} events ({STEP3_USERS:,} users) for step 3...")
        generate(root, STEP3_EVENTS, files=32, users=STEP3_USERS)
        shuffle(root)
        shutil.rmtree(root / "raw")
        label = f"step 3, {STEP3_USERS / 1e6:.2f} M users"
        results[label] = compare(label, step3_runners, STEP3_PEERS, root)
        inputs.append(f"{label}: the example's clean day, {STEP3_EVENTS:,} rows, shuffled into 16 buckets")

    out(
        f"\n{REPEATS} rounds; peer time / runner time (for the warm variant, fresh time / warm time): "
        "the median, and the range over the rounds"
    )
    for line in inputs:
        out(f"  {line}")
    out(
        "\ncores: CPU seconds (user + system, the whole process tree) / wall seconds; "
        "largest process: peak RSS of the largest single process in the tree (medians; "
        "not for PySpark, whose JVM its Python parent does not wait for)"
    )
    out(f"\n{'work':<42}{'engine':<30}{'median s':>10}{'peer / runner':>24}{'cores':>7}{'largest MiB':>13}")
    for step, times in results.items():
        for name, t in times.items():
            ratio = "" if name == next(iter(times)) else ratio_text(times, name)
            u = usages[(step, name)]
            cores = statistics.median(x.cpu / x.seconds for x in u)
            rss = statistics.median(x.rss for x in u) / 2**20
            # PySpark's JVM is not waited for by its Python parent, so its usage is not counted.
            use = f"{'-':>7}{'-':>13}" if name.startswith("pyspark") else f"{cores:>7.2f}{rss:>13.0f}"
            out(f"{step:<42}{name:<30}{statistics.median(t):>10.2f}{ratio:>24}{use}")
    out("\npeak item RSS (MiB), median over the rounds:")
    for (label, name), values in peaks.items():
        out(f"  {label:<42}{name:<30}{statistics.median(values) / 2**20:8.0f}")

    out("\nrunner peak item RSS as the input grows (step 1):")
    base = max(EVENTS // 16, 100_000)
    for factor in (1, 4, 16):
        # The input grows the way a lake does, by more files of the same size. Memory
        # follows the size of single gzip files, not their number (one 14 M-event file
        # peaked at 323 MiB, the same events in 8 files at 194 MiB).
        with tempfile.TemporaryDirectory(prefix="rss-") as d:
            r = Path(d)
            generate(r, base * factor, files=2 * factor)
            s = step1(r)
        peak = s["steps"][0]["peak_item_rss_bytes"] / 2**20
        out(f"  {factor:>2}x  {base * factor:>12,} events, {2 * factor:>2} files: peak item RSS {peak:6.0f} MiB")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    out(f"\n(largest child process of the whole benchmark: {usage.ru_maxrss / 1024:.0f} MiB)")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(out.lines) + "\n")


if __name__ == "__main__":
    main()
