"""TPC-H's 22 queries, each a job spec of `runner/examples/tpch` (the standard texts), run by the
runner on data tpchgen-cli generates, and compared with DuckDB's answers to the same SQL over
the same files: decimals exactly, floats to 1e-9 relative, every row, and every column's type by
the corpus' documented rules (`sql_corpus.corpus.TYPE_RULES`: a decimal's scale must match)."""

import math
import os
import subprocess
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from runner_helpers import ROOT, RUNNER
from sql_corpus import corpus

# The smallest scale factor at which every query returns rows (at 0.01, Q17 returns NULL).
SCALE = "0.02"
TABLES = ["part", "supplier", "partsupp", "customer", "orders", "lineitem", "nation", "region"]
SPECS = sorted((ROOT / "runner" / "examples" / "tpch").glob("q*.toml"))
TPCHGEN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "tpchgen-cli"


@pytest.fixture(scope="module")
def tpch_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("tpch")
    subprocess.run([str(TPCHGEN), "parquet", "-s", SCALE, f"--output-dir={data}"], check=True, capture_output=True)
    assert sorted(p.stem for p in data.glob("*.parquet")) == sorted(TABLES)
    return data


def spec_sql(spec: Path) -> str:
    return spec.read_text().split('sql = """', 1)[1].split('"""', 1)[0]


def duckdb_answer(data: Path, sql: str) -> list[tuple]:
    con = duckdb.connect()
    for t in TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{data / t}.parquet')")
    return con.execute(sql).fetchall()


def runner_answer(out: Path) -> list[tuple]:
    files = sorted(str(p) for p in out.rglob("*.parquet") if not p.name.startswith((".", "_")))
    assert files, f"the runner wrote no Parquet under {out}"
    return duckdb.connect().execute("SELECT * FROM read_parquet(?)", [files]).fetchall()


def same(a: object, b: object) -> bool:
    """Decimals and integers exactly; a float against anything to 1e-9 relative."""
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return False
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, (int, Decimal)) and isinstance(b, (int, Decimal)):
        return Decimal(a) == Decimal(b)
    return a == b


def sort_key(row: tuple) -> tuple:
    # Floats rounded for ordering only: rows that differ past 1e-9 compare unequal anyway.
    return tuple(("" if v is None else f"{float(v):.6e}" if isinstance(v, float) else str(v)) for v in row)


def test_same_compares_exactly_where_it_should() -> None:
    assert same(Decimal("0.03"), Decimal("0.030"))
    assert not same(Decimal("0.03"), Decimal("0.03476"))
    assert same(0.034759, 0.034759 * (1 + 1e-12))
    assert not same(0.03, 0.03476)
    assert not same(None, 0.0)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_query_gives_duckdbs_answer(tpch_data: Path, spec: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    for t in TABLES:
        # A hard link: the runner's local storage doesn't follow symbolic links.
        os.link(tpch_data / f"{t}.parquet", root / f"{t}.parquet")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES_")}
    proc = subprocess.run(
        [str(RUNNER), "run", str(spec), "--root", str(root)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    expected = sorted(duckdb_answer(tpch_data, spec_sql(spec)), key=sort_key)
    assert expected and any(v is not None for row in expected for v in row), "DuckDB's answer is empty"
    actual = sorted(runner_answer(root / spec.stem), key=sort_key)
    assert len(actual) == len(expected), f"{len(actual)} rows, DuckDB has {len(expected)}"
    for got, want in zip(actual, expected, strict=True):
        assert len(got) == len(want) and all(same(g, w) for g, w in zip(got, want, strict=True)), (got, want)
    con = duckdb.connect()
    for t in TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{tpch_data / t}.parquet')")
    duck_types = [str(t) for t in con.sql(spec_sql(spec)).types]
    runner_types = corpus.read_output(root / spec.stem).types
    assert len(runner_types) == len(duck_types)
    wrong = [(d, r) for d, r in zip(duck_types, runner_types, strict=True) if not corpus.type_accepted(d, r)]
    assert not wrong, f"column types differ from DuckDB's (DuckDB, runner): {wrong}"


def test_a_wrong_answer_would_be_caught(tpch_data: Path) -> None:
    """The comparison can fail: Q8's market shares at the inputs' decimal scale (what Polars
    0.55.2 answered before `float_division`) are not DuckDB's."""
    right = duckdb_answer(tpch_data, spec_sql(ROOT / "runner" / "examples" / "tpch" / "q08.toml"))
    wrong = [(year, round(Decimal(share), 2)) for year, share in right]
    assert len(right) == 2
    assert not any(same(r[1], w[1]) for r, w in zip(right, wrong, strict=True))
