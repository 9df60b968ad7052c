"""TPC-H at scale factor BENCH_TPCH_SCALE (default 1): the 22 job specs of `runner/examples/tpch`
(the standard texts) run by the runner, against DuckDB and Python Polars running the same SQL on
the same Parquet files, each writing its answer to Parquet.

The runner is timed as a whole process (`runner run`: start, plan, lease, item process, commit).
Each peer is timed twice in the same process run: in-process, the way a user compares engines
(from opening the tables to the written Parquet file, not the interpreter's start or imports),
and as a whole process. BENCH_REPEATS interleaved rounds (runner, DuckDB, Polars per query).
Prints each query's median times and the peer time over the runner's (the median of the rounds'
ratios, and their range), in-process first, the geometric means of those ratios, and the fixed
cost of a local one-step run (a query over the 25-row `nation` table, so all of it is start,
plan, lease, item process and commit), and how many of the runner's answers are DuckDB's
(compared as `tests/test_tpch.py` compares). Every process runs under a memory bound
(BENCH_MEMORY_MIB, default 16,384): a query that grows past it is killed and reported, not left
to take the machine. Writes its output to `bench/results/BENCH_TPCH_RESULTS` (`tpch.txt`);
`make bench` runs scale factors 1 and 10 (`tpch_sf1.txt`, `tpch_sf10.txt`).

BENCH_TPCH_DATA=DIR reads the tables from DIR (generated there once, kept) instead of
generating them into a temporary folder each run."""

import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
from reduce_at_scale import ratio_text
from runner_vs_peers import REPEATS, RUNNER

# The test's comparison: decimals exactly, floats to 1e-9 relative.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_tpch import same, sort_key

ROOT = Path(__file__).resolve().parent.parent
# BENCH_TPCH_QUERIES=q07,q19 runs only those (by hand, to measure one change); make bench runs all.
ONLY = [q for q in os.environ.get("BENCH_TPCH_QUERIES", "").split(",") if q]
SPECS = [p for p in sorted((ROOT / "runner" / "examples" / "tpch").glob("q*.toml")) if not ONLY or p.stem in ONLY]
SCALE = os.environ.get("BENCH_TPCH_SCALE", "1")
MEMORY = int(os.environ.get("BENCH_MEMORY_MIB", "16384")) * 2**20
TABLES = ["part", "supplier", "partsupp", "customer", "orders", "lineitem", "nation", "region"]
TPCHGEN = Path(sys.executable).parent / "tpchgen-cli"
RESULTS = Path(__file__).resolve().parent / "results" / os.environ.get("BENCH_TPCH_RESULTS", "tpch.txt")
lines: list[str] = []


def out(line: str) -> None:
    print(line, flush=True)
    lines.append(line)


def sql_of(spec: Path) -> str:
    return spec.read_text().split('sql = """', 1)[1].split('"""', 1)[0]


# Each peer prints its in-process seconds as its last line.
DUCKDB = f"""
import duckdb, sys, time
data, sql, target = sys.argv[1:4]
start = time.perf_counter()
con = duckdb.connect()
for t in {TABLES}:
    con.execute(f"CREATE VIEW {{t}} AS SELECT * FROM read_parquet('{{data}}/{{t}}.parquet')")
con.execute(f"COPY ({{sql}}) TO '{{target}}' (FORMAT parquet)")
print(time.perf_counter() - start)
"""

POLARS = f"""
import polars as pl, sys, time
data, sql, target = sys.argv[1:4]
start = time.perf_counter()
ctx = pl.SQLContext({{t: pl.scan_parquet(f"{{data}}/{{t}}.parquet") for t in {TABLES}}})
ctx.execute(sql).sink_parquet(target)
print(time.perf_counter() - start)
"""


def rss_of(pid: int) -> int:
    """Resident bytes of `pid` and its children (the runner's item processes are children)."""
    total = 0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    except OSError:
        return total
    return total + sum(rss_of(int(c)) for c in children)


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Runs `command` to its end under the memory bound; its wall seconds and its output. Fails
    on a non-zero exit or on the bound, saying which."""
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        over: list[int] = []

        def watch() -> None:
            while child.poll() is None:
                rss = rss_of(child.pid)
                if rss > MEMORY:
                    over.append(rss)
                    os.killpg(child.pid, 9)
                    return
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        code = child.wait()
        elapsed = time.perf_counter() - start
        watcher.join()
        if over:
            raise RuntimeError(f"{command[:3]} went past {MEMORY >> 20} MiB ({over[0] >> 20} MiB) and was killed")
        if code != 0:
            log.seek(0)
            raise RuntimeError(f"{command[:3]} exited {code}:\n{log.read()[-4000:].decode(errors='replace')}")
        log.seek(0)
        return elapsed, log.read().decode(errors="replace")


def answer_differs(runner_out: Path, duckdb_file: Path) -> str:
    """Why the runner's answer (its output directory) is not DuckDB's (its Parquet file); empty
    when it is."""
    con = duckdb.connect()
    files = sorted(str(p) for p in runner_out.rglob("*.parquet") if not p.name.startswith((".", "_")))
    if not files:
        return "the runner wrote nothing"
    got = sorted(con.execute("SELECT * FROM read_parquet(?)", [files]).fetchall(), key=sort_key)
    want = sorted(con.execute("SELECT * FROM read_parquet(?)", [str(duckdb_file)]).fetchall(), key=sort_key)
    if len(got) != len(want):
        return f"{len(got)} rows, DuckDB has {len(want)}"
    for g, w in zip(got, want, strict=True):
        if len(g) != len(w) or not all(same(a, b) for a, b in zip(g, w, strict=True)):
            return f"{g} against DuckDB's {w}"
    return ""


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="tpch-bench-"))
    try:
        kept = os.environ.get("BENCH_TPCH_DATA")
        data = Path(kept) if kept else work / "data"
        out(f"runner: {RUNNER}; TPC-H scale factor {SCALE}; {REPEATS} interleaved rounds")
        if not (data / "lineitem.parquet").exists():
            subprocess.run([str(TPCHGEN), "parquet", "-s", SCALE, f"--output-dir={data}"], check=True)
        root = work / "root"
        root.mkdir()
        for t in TABLES:
            # A hard link: the runner's local storage doesn't follow symbolic links.
            os.link(data / f"{t}.parquet", root / f"{t}.parquet")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES_")}

        def runner(spec: Path) -> float:
            # --force: a committed item is otherwise skipped, and the round would time nothing.
            return timed([str(RUNNER), "run", str(spec), "--root", str(root), "--force"], env)[0]

        def peer(code: str, spec: Path) -> tuple[float, float]:
            """(in-process seconds, whole-process seconds)."""
            target = work / f"{spec.stem}.parquet"
            target.unlink(missing_ok=True)
            whole, output = timed([sys.executable, "-c", code, str(data), sql_of(spec), str(target)], peer_env)
            return float(output.split()[-1]), whole

        # Python Polars' newest release, installed apart (the other benchmarks pin 1.43.2).
        peer_env = dict(os.environ)
        if "BENCH_POLARS_PATH" in os.environ:
            peer_env["PYTHONPATH"] = str(Path(os.environ["BENCH_POLARS_PATH"]).resolve())
        out(
            "peers: "
            + subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import duckdb, polars; print('duckdb', duckdb.__version__, 'polars', polars.__version__)",
                ],
                env=peer_env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )

        out(
            f"  {'query':<6}{'runner s':>9}{'DuckDB s':>9}{'Polars s':>9}"
            + "".join(
                f"{h:>20}" for h in ("DuckDB/runner in", "Polars/runner in", "DuckDB/r. whole", "Polars/r. whole")
            )
        )
        # "in" is the peers' in-process time, "whole" their whole process.
        ratios_of: dict[str, list[float]] = {f"{p} {w}": [] for w in ("in", "whole") for p in ("duckdb", "polars")}
        mismatches: list[str] = []
        for spec in SPECS:
            runs: dict[str, list[tuple[float, int]]] = {k: [] for k in ["runner", *ratios_of]}
            for _ in range(REPEATS):
                runs["runner"].append((runner(spec), 0))
                for name, code in (("duckdb", DUCKDB), ("polars", POLARS)):
                    inside, whole = peer(code, spec)
                    runs[f"{name} in"].append((inside, 0))
                    runs[f"{name} whole"].append((whole, 0))
            wrong = answer_differs(root / spec.stem, work / f"{spec.stem}.parquet")
            if wrong:
                mismatches.append(f"{spec.stem}: {wrong}")
            med = {k: statistics.median(x[0] for x in v) for k, v in runs.items()}
            for key, ratios in ratios_of.items():
                ratios.append(statistics.median(p[0] / r[0] for p, r in zip(runs[key], runs["runner"], strict=True)))
            out(
                f"  {spec.stem:<6}{med['runner']:>9.2f}{med['duckdb in']:>9.2f}{med['polars in']:>9.2f}"
                + "".join(f"{ratio_text(runs[key], runs['runner']):>20}" for key in ratios_of)
            )
        out(f"  correct (the runner's answer is DuckDB's): {len(SPECS) - len(mismatches)}/{len(SPECS)}")
        for m in mismatches:
            out(f"    {m}")
        for key, ratios in ratios_of.items():
            peer_name, how = key.split()
            geo = math.exp(statistics.fmean(math.log(r) for r in ratios))
            timed_as = "in-process" if how == "in" else "as a whole process"
            out(
                f"  geometric mean of {peer_name} time ({timed_as}) / runner time over the {len(ratios)} queries: "
                f"{geo:.2f}x"
            )

        fixed = work / "fixed.toml"
        fixed.write_text(
            'name = "fixed_cost"\n[[step]]\nname = "tiny"\nsplit = "single"\n'
            '[step.inputs.nation]\npath = "nation.parquet"\nformat = "parquet"\n'
            '[step.outputs.answer]\npath = "tiny"\nsql = "SELECT n_name FROM nation WHERE n_nationkey < 3"\n'
        )
        costs = sorted(runner(fixed) for _ in range(max(REPEATS, 5)))
        out(
            f"  fixed cost of a local one-step run (25-row query): median {statistics.median(costs):.3f} s "
            f"({costs[0]:.3f}-{costs[-1]:.3f}) over {len(costs)} runs"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
