"""A Rust function a binary brings, against the same logic in Python Polars' `map_elements`
and against the built-in SQL expression: the great-circle distance (haversine) from Berlin of
BENCH_UDF_ROWS points (default 20,000,000), read from Parquet and written to Parquet, each a
whole process under the memory bound (BENCH_MEMORY_MIB). The runner's runs use `clickstream-runner`
(the example crate, release) with its `haversine_km`, and the same binary with the formula in
SQL; the peer is the newest Python Polars (BENCH_POLARS_PATH). The other benchmarks' events
carry no coordinates, so the points are generated here, seeded.

Reading and writing 20 M rows is most of a run's time, more so the runner's (a run's fixed
cost, its Parquet writer) than Python's, so each side also runs a copy (`SELECT id, lat AS km`):
a function's own time is its run's time minus its side's copy, per round. The goals (issue 27):
the Rust function at least 20x faster than `map_elements`, and at most 1.5x the built-in
expression's time. BENCH_REPEATS interleaved rounds; prints medians and the
ratios' medians and ranges, checks the three answers agree (1e-9 relative), and writes
`bench/results/custom_functions.txt`."""

import os
import statistics
import sys
import tempfile
from pathlib import Path

import duckdb
from reduce_at_scale import ratio_text
from runner_vs_peers import REPEATS
from tpch import timed

ROOT = Path(__file__).resolve().parent.parent
BINARY = Path(os.environ.get("BENCH_CLICKSTREAM", ROOT / "target" / "release" / "clickstream-runner"))
ROWS = int(os.environ.get("BENCH_UDF_ROWS", "20000000"))
RESULTS = Path(__file__).resolve().parent / "results" / "custom_functions.txt"
BERLIN = (52.52, 13.405)
# The latitude constant is cast to DOUBLE explicitly (the runner now leaves literals inside float
# functions as floats itself; the measured runs were made with the cast).
BUILTIN = (
    f"2 * 6371.0088 * ASIN(SQRT(POWER(SIN(RADIANS(lat - {BERLIN[0]}) / 2), 2) + COS(RADIANS(lat)) * "
    f"COS(RADIANS(CAST({BERLIN[0]} AS DOUBLE))) * POWER(SIN(RADIANS(lon - {BERLIN[1]}) / 2), 2)))"
)
JOB = """
name = "udf_{name}"
[[step]]
name = "distance"
split = "single"
[step.inputs.points]
path = "points/*.parquet"
format = "parquet"
[step.outputs.out]
path = "out_{name}"
sql = "SELECT id, {expr} AS km FROM points"
"""
MAP_ELEMENTS = f"""
import math, sys
import polars as pl
data, target = sys.argv[1:3]
R, LAT0, LON0 = 6371.0088, math.radians({BERLIN[0]}), math.radians({BERLIN[1]})
COS0 = math.cos(LAT0)
def km(p):
    lat, lon = math.radians(p["lat"]), math.radians(p["lon"])
    a = math.sin((lat - LAT0) / 2) ** 2 + math.cos(lat) * COS0 * math.sin((lon - LON0) / 2) ** 2
    return 2 * R * math.asin(math.sqrt(a))
frame = pl.scan_parquet(f"{{data}}/points/*.parquet")
if sys.argv[3:] == ["copy"]:
    frame.select("id", pl.col("lat").alias("km")).sink_parquet(target)
else:
    distance = pl.struct("lat", "lon").map_elements(km, return_dtype=pl.Float64)
    frame.select("id", distance.alias("km")).sink_parquet(target)
"""
lines: list[str] = []


def out(line: str) -> None:
    print(line, flush=True)
    lines.append(line)


def minus(runs: list[tuple[float, int]], copies: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """Each round's run less that round's copy (at least a millisecond, so ratios stay finite)."""
    return [(max(r - c, 0.001), 0) for (r, _), (c, _) in zip(runs, copies, strict=True)]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "points").mkdir()
        duckdb.sql(
            f"SELECT setseed(0.5); COPY (SELECT range AS id, 35 + random() * 25 AS lat, -10 + random() * 40 AS lon "
            f"FROM range({ROWS})) TO '{root}/points/p.parquet' (FORMAT parquet)"
        )
        (root / "rust.toml").write_text(
            JOB.format(name="rust", expr=f"haversine_km(lat, lon, {BERLIN[0]}, {BERLIN[1]})")
        )
        (root / "builtin.toml").write_text(JOB.format(name="builtin", expr=BUILTIN))
        (root / "copy.toml").write_text(JOB.format(name="copy", expr="lat"))
        (root / "map_elements.py").write_text(MAP_ELEMENTS)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES_")}
        peer_env = dict(env)
        if "BENCH_POLARS_PATH" in os.environ:
            peer_env["PYTHONPATH"] = str(Path(os.environ["BENCH_POLARS_PATH"]).resolve())
        runs: dict[str, list[tuple[float, int]]] = {
            "rust": [],
            "builtin": [],
            "copy": [],
            "map_elements": [],
            "python_copy": [],
        }
        for _ in range(REPEATS):
            for name in ("rust", "builtin", "copy"):
                command = [str(BINARY), "run", str(root / f"{name}.toml"), "--root", str(root), "--force"]
                runs[name].append((timed(command, env), 0))
            target = root / "out_map_elements.parquet"
            copy_target = root / "out_python_copy.parquet"
            python_copy = [sys.executable, str(root / "map_elements.py"), str(root), str(copy_target), "copy"]
            runs["python_copy"].append((timed(python_copy, peer_env), 0))
            runs["map_elements"].append(
                (timed([sys.executable, str(root / "map_elements.py"), str(root), str(target)], peer_env), 0)
            )
        # The three answers agree before any time is reported.
        db = duckdb.connect()
        worst = db.execute(
            f"""SELECT max(abs(r.km - b.km) / greatest(abs(b.km), 1e-300)),
                       max(abs(r.km - m.km) / greatest(abs(m.km), 1e-300)), count(*)
                FROM read_parquet('{root}/out_rust/**/*.parquet') r
                JOIN read_parquet('{root}/out_builtin/**/*.parquet') b USING (id)
                JOIN read_parquet('{root}/out_map_elements.parquet') m USING (id)"""
        ).fetchone()
        assert worst is not None and worst[2] == ROWS, f"every point in every answer: {worst}"
        assert worst[0] < 1e-9 and worst[1] < 1e-9, f"the answers differ: {worst}"
        out(f"haversine of {ROWS:,} points, Parquet in and out, {REPEATS} rounds (median seconds, min-max):")
        for name, times in runs.items():
            t = [s for s, _ in times]
            out(f"  {name:<13} {statistics.median(t):7.2f} s ({min(t):.2f}-{max(t):.2f})")
        out("whole runs:")
        out(f"  map_elements / rust function: {ratio_text(runs['map_elements'], runs['rust'])}")
        out(f"  rust function / built-in SQL: {ratio_text(runs['rust'], runs['builtin'])}")
        own = {
            "rust": minus(runs["rust"], runs["copy"]),
            "builtin": minus(runs["builtin"], runs["copy"]),
            "map_elements": minus(runs["map_elements"], runs["python_copy"]),
        }
        out("the functions' own time (a run minus its side's copy, per round):")
        for name, times in own.items():
            t = [s for s, _ in times]
            out(f"  {name:<13} {statistics.median(t):7.2f} s ({min(t):.2f}-{max(t):.2f})")
        out(f"  map_elements / rust function: {ratio_text(own['map_elements'], own['rust'])} (goal >= 20x)")
        out(f"  rust function / built-in SQL: {ratio_text(own['rust'], own['builtin'])} (goal <= 1.5x)")
        out(f"  answers agree: {worst[2]:,} rows, largest relative difference {max(worst[0], worst[1]):.1e}")
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
