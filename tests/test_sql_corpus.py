"""The differential SQL corpus (tests/sql_corpus): every case runs as an output of a job spec on
the runner and is compared with DuckDB's answer to the same SQL over the same Parquet files.

Each case's verdict must be exactly the status tests/sql_corpus/known.toml records for it, so the
suite is green while the engine is being fixed, and every fix updates known.toml (a case that
turns from wrong to right fails here until it does: `SQL_CORPUS_UPDATE=1` rewrites the file).
Cases whose recorded status is a silently wrong answer (`wrong`, `error_expected_but_ran`) or a
type mismatch are reported as xfail with what DuckDB and the runner said, and counted by
`test_no_silently_wrong_answers`: the goal is none.

The harness is checked too: deliberately altered DuckDB queries must come out `wrong`,
`type_mismatch`, `error_expected_but_ran` and `refused` (a test that can't fail is worthless).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tomllib
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from sql_corpus import corpus
from sql_corpus.tables import build

CASES = corpus.load_corpus()
KNOWN = corpus.read_known()
UPDATE = os.environ.get("SQL_CORPUS_UPDATE") == "1"

# Cases that check the harness: the runner runs `sql`, DuckDB answers `oracle_sql`, and the
# verdict must be `expected`.
SELF_TESTS: list[tuple[corpus.Case, str]] = [
    (
        corpus.Case("selftest_wrong_value", "SELECT id, v FROM t", oracle_sql="SELECT id, v + 1 AS v FROM t"),
        "wrong",
    ),
    (
        corpus.Case(
            "selftest_wrong_decimal_digit",
            "SELECT id, d FROM t",
            oracle_sql="SELECT id, CASE WHEN id = 1 THEN d + 0.01 ELSE d END AS d FROM t",
        ),
        "wrong",
    ),
    (
        corpus.Case(
            "selftest_wrong_order",
            "SELECT id FROM t ORDER BY id",
            ordered=True,
            oracle_sql="SELECT id FROM t ORDER BY id DESC",
        ),
        "wrong",
    ),
    (
        corpus.Case(
            "selftest_wrong_row_count",
            "SELECT id FROM t",
            oracle_sql="SELECT id FROM t UNION ALL SELECT 1 AS id",
        ),
        "wrong",
    ),
    (
        corpus.Case("selftest_wrong_null", "SELECT id, k FROM t", oracle_sql="SELECT id, coalesce(k, 0) AS k FROM t"),
        "wrong",
    ),
    (
        corpus.Case(
            "selftest_decimal_scale",
            "SELECT id, d FROM t",
            oracle_sql="SELECT id, CAST(d AS DECIMAL(12,3)) AS d FROM t",
        ),
        "type_mismatch",
    ),
    (
        corpus.Case(
            "selftest_float_for_int", "SELECT id, v FROM t", oracle_sql="SELECT id, CAST(v AS DOUBLE) AS v FROM t"
        ),
        "type_mismatch",
    ),
    (
        corpus.Case("selftest_column_name", "SELECT id FROM t", oracle_sql="SELECT id AS other FROM t"),
        "type_mismatch",
    ),
    (
        corpus.Case("selftest_error_expected", "SELECT id FROM t", error=True, oracle_sql="SELECT v // 0 AS q FROM t"),
        "error_expected_but_ran",
    ),
    (
        corpus.Case("selftest_refused", "SELECT no_such_column AS z FROM t", oracle_sql="SELECT 1 AS z FROM t"),
        "refused",
    ),
    (corpus.Case("selftest_right", "SELECT id, d, s, dt FROM t"), "right"),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, corpus.Result]:
    if not corpus.RUNNER.exists():
        pytest.fail(f"no runner binary at {corpus.RUNNER}: build it first (`cargo build`)")
    tables = tmp_path_factory.mktemp("sql_corpus_tables")
    build(tables)
    cases = [c for c, _ in SELF_TESTS] + CASES
    found, stats = corpus.run_corpus(cases, tables, work=tmp_path_factory.mktemp("sql_corpus_runs"))
    own = {k: v for k, v in found.items() if not k.startswith("selftest_")}
    if UPDATE:
        corpus.write_known(own)
    if report := os.environ.get("SQL_CORPUS_REPORT"):
        Path(report).write_text(
            json.dumps(
                {
                    "runner_runs": stats.runs,
                    "runner_seconds": round(stats.seconds, 1),
                    "cases": {
                        k: {"status": r.verdict.status, "detail": r.verdict.detail, "notes": r.verdict.notes}
                        for k, r in found.items()
                    },
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    return found


# ---- the harness, without the runner


def test_cases_parse_and_have_unique_names() -> None:
    assert len(CASES) >= 300
    assert len({c.name for c in CASES}) == len(CASES)
    cases = corpus.parse_cases("-- case: a\n-- ordered\nSELECT 1 AS x;\n\n-- case: b\n-- error\nSELECT\n  2 AS y\n")
    assert [(c.name, c.ordered, c.error, c.sql) for c in cases] == [
        ("a", True, False, "SELECT 1 AS x"),
        ("b", False, True, "SELECT\n  2 AS y"),
    ]
    with pytest.raises(ValueError):
        corpus.parse_cases("-- case: Bad-Name\nSELECT 1")


def test_every_case_is_a_valid_duckdb_case(tmp_path: Path) -> None:
    """DuckDB errors exactly on the `-- error` cases, every result column has its own name, and
    every DuckDB result type has a rule in TYPE_RULES."""
    build(tmp_path)
    con = corpus.duckdb_connection(tmp_path)
    problems = []
    for c in CASES:
        a = corpus.duckdb_answer(con, c.sql)
        if (a.error is not None) != c.error:
            problems.append(f"{c.name}: marked error={c.error}, DuckDB says {a.error}")
        elif a.error is None:
            if len(set(a.columns)) != len(a.columns):
                problems.append(f"{c.name}: duplicate column names {a.columns}")
            problems += [f"{c.name}: no type rule for {t}" for t in a.types if corpus.expected_type(t) is None]
    assert not problems, "\n".join(problems)


def test_values_compare_exactly_where_they_should() -> None:
    assert corpus.same(Decimal("2.30"), Decimal("2.3"))  # value; the scale is judged by the types
    assert not corpus.same(Decimal("2.3"), Decimal("2.2"))
    assert not corpus.same(Decimal("0.13"), Decimal("0.12"))
    assert corpus.same(3, Decimal("3"))
    assert not corpus.same(9000000000000000001, 9000000000000000000)
    assert corpus.same(0.1 + 0.2, 0.3)
    assert not corpus.same(0.3, 0.3 * (1 + 1e-9))
    assert corpus.same(float("nan"), float("nan"))
    assert not corpus.same(float("inf"), float("-inf"))
    assert not corpus.same(None, 0)
    assert not corpus.same(True, 1)
    assert not corpus.same("a", "A")
    assert corpus.same(dt.date(2024, 2, 1), dt.datetime(2024, 2, 1))
    assert not corpus.same(dt.date(2024, 2, 1), dt.datetime(2024, 2, 1, 0, 0, 1))
    assert corpus.same_rows([(1, None), (None, 2)], [(None, 2), (1, None)], ordered=False)
    assert not corpus.same_rows([(1, None), (None, 2)], [(None, 2), (1, None)], ordered=True)
    assert not corpus.same_rows([(1,), (1,)], [(1,)], ordered=False)
    assert not corpus.same_rows([(1,), (2,)], [(1,), (1,)], ordered=False)


def test_type_rules() -> None:
    assert corpus.type_accepted("DECIMAL(10,2)", "decimal(38,2)")
    assert not corpus.type_accepted("DECIMAL(10,2)", "decimal(10,3)")
    assert not corpus.type_accepted("DECIMAL(10,2)", "float64")
    assert corpus.type_accepted("INTEGER", "int64")
    assert not corpus.type_accepted("INTEGER", "float64")
    assert corpus.type_accepted("HUGEINT", "decimal(38,0)")
    assert not corpus.type_accepted("HUGEINT", "float64")
    assert not corpus.type_accepted("DOUBLE", "decimal(10,2)")
    assert not corpus.type_accepted("DATE", "timestamp[us]")
    assert not corpus.type_accepted("BIGINT", "timestamp[us]")
    assert corpus.type_accepted("TIMESTAMP", "timestamp[ns]")
    assert not corpus.type_accepted("VARCHAR", "binary")
    assert corpus.type_note("INTEGER", "int64") == "INTEGER as int64"
    assert corpus.type_note("DECIMAL(10,2)", "decimal(10,2)") is None


def test_parquet_types_name_what_a_reader_sees(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    con = duckdb.connect()
    con.execute(
        "COPY (SELECT 1::INTEGER AS i, 2::BIGINT AS b, 1.5::DECIMAL(10,2) AS d, 1.5::DECIMAL(38,4) AS d38, "
        "1.5::DOUBLE AS f, 'x' AS s, DATE '2024-01-01' AS dt, TIMESTAMP '2024-01-01 00:00:00' AS ts, "
        f"true AS bo, [1, 2] AS l, 3::SMALLINT AS sm) TO '{path}' (FORMAT parquet)"
    )
    assert corpus.parquet_types(path) == [
        ("i", "int32"),
        ("b", "int64"),
        ("d", "decimal(10,2)"),
        ("d38", "decimal(38,4)"),
        ("f", "float64"),
        ("s", "string"),
        ("dt", "date"),
        ("ts", "timestamp[us]"),
        ("bo", "bool"),
        ("l", "nested"),
        ("sm", "int16"),
    ]


def test_job_spec_keeps_the_sql_exactly() -> None:
    sql = 'SELECT \'{"a": 1}\' AS "q""x", \'\\n\' AS b\nFROM t -- é\t'
    spec = tomllib.loads(corpus.job_spec("j", ["t", "u"], [("c_one", sql), ("c_two", "SELECT 1 AS a")]))
    outputs = spec["step"][0]["outputs"]
    assert outputs["c_one"]["sql"] == sql.replace("{", "{{").replace("}", "}}")
    assert outputs["c_one"]["path"] == "out/c_one"
    assert sorted(spec["step"][0]["inputs"]) == ["t", "u"]


def test_classify_statuses() -> None:
    case = corpus.Case("x", "SELECT 1")
    want = corpus.Answer(["a"], ["DECIMAL(10,2)"], [(Decimal("1.50"),)])
    assert corpus.classify(case, want, corpus.Answer(["a"], ["decimal(38,2)"], [(Decimal("1.50"),)])).status == "right"
    assert (
        corpus.classify(case, want, corpus.Answer(["a"], ["decimal(10,1)"], [(Decimal("1.5"),)])).status
        == "type_mismatch"
    )
    assert corpus.classify(case, want, corpus.Answer(["a"], ["float64"], [(1.5,)])).status == "type_mismatch"
    assert corpus.classify(case, want, corpus.Answer(["a"], ["decimal(10,2)"], [(Decimal("1.4"),)])).status == "wrong"
    assert corpus.classify(case, want, corpus.Answer(error="exit 1: no")).status == "refused"
    err = corpus.Case("y", "SELECT 1", error=True)
    assert corpus.classify(err, corpus.Answer(error="boom"), corpus.Answer(["a"], ["int32"], [(1,)])).status == (
        "error_expected_but_ran"
    )
    assert corpus.classify(err, corpus.Answer(error="boom"), corpus.Answer(error="exit 1")).status == "refused"
    assert corpus.classify(case, corpus.Answer(error="boom"), corpus.Answer(error="exit 1")).status == "broken_case"


# ---- the harness, with the runner


@pytest.mark.parametrize(("case", "expected"), SELF_TESTS, ids=[c.name for c, _ in SELF_TESTS])
def test_harness_detects(results: dict[str, corpus.Result], case: corpus.Case, expected: str) -> None:
    r = results[case.name]
    assert r.verdict.status == expected, f"{case.name}: {r.verdict.status}: {r.verdict.detail}"


# ---- the corpus


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_case(results: dict[str, corpus.Result], name: str) -> None:
    r = results[name]
    status, detail = r.verdict.status, r.verdict.detail
    assert status != "broken_case", f"the case is broken: {detail}"
    known = KNOWN.get(name, {}).get("status")
    if UPDATE:
        known = status
    if known is None:
        pytest.fail(f"{name} is not in known.toml; its status is {status}: {detail} (SQL_CORPUS_UPDATE=1 records it)")
    if status != known:
        pytest.fail(
            f"{name}: known.toml says {known}, it is now {status}: {detail or 'DuckDB answer matched'}\n"
            f"SQL: {r.case.sql}\nupdate known.toml (SQL_CORPUS_UPDATE=1 rewrites it)"
        )
    if status in corpus.WRONG_STATUSES:
        pytest.xfail(f"SILENTLY WRONG ANSWER ({status}, known): {detail}")
    if status in ("type_mismatch", "timeout"):
        pytest.xfail(f"{status.upper()} (known): {detail}")


def test_known_toml_names_only_corpus_cases() -> None:
    stale = sorted(set(KNOWN) - {c.name for c in CASES})
    assert not stale, f"known.toml lists cases that are not in the corpus: {stale}"
    assert all(v.get("status") in corpus.STATUSES for v in KNOWN.values())


def test_no_silently_wrong_answers(results: dict[str, corpus.Result]) -> None:
    wrong = sorted(
        n for n, r in results.items() if r.verdict.status in corpus.WRONG_STATUSES and not n.startswith("selftest_")
    )
    counts: dict[str, int] = {}
    for n, r in results.items():
        if not n.startswith("selftest_"):
            counts[r.verdict.status] = counts.get(r.verdict.status, 0) + 1
    summary = ", ".join(f"{s} {counts[s]}" for s in corpus.STATUSES if s in counts)
    if wrong:
        pytest.xfail(f"{len(wrong)} SILENTLY WRONG ANSWERS in the corpus ({summary}): {', '.join(wrong)}")
