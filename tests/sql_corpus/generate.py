"""A seeded random query generator, judged against DuckDB (the way SQLancer and sqlsmith find
bugs): random SELECTs over the corpus's tables (arithmetic of mixed types, comparisons, CASE,
COALESCE, boolean logic with NULLs, aggregates with GROUP BY and HAVING, joins of every type on
random keys, IN/EXISTS/scalar subqueries, set operations, windows, ORDER BY ... LIMIT over a
total order). A query DuckDB rejects (or fails on) is discarded; each kept one runs on DuckDB and
on the runner (batched) and gets a verdict as a corpus case does (`corpus.classify`).

    python tests/sql_corpus/generate.py --seed 1 --count 1000 --report out.json

The same seed gives the same queries (with the same DuckDB: its answers decide which are
kept). Every disagreement found goes into cases/regressions.sql, minimized.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sql_corpus import corpus
from sql_corpus.tables import build

KNOWN_FILE = corpus.HERE / "generator_known.toml"

# The tables as the generator sees them: column -> kind. Kinds: int, dec, dbl, str, date, ts,
# bool. `h` (near-overflow integers) is left out: nearly every expression over it overflows.
SCHEMA: dict[str, dict[str, str]] = {
    "t": {"k": "int", "v": "int", "d": "dec", "x": "dbl", "s": "str", "dt": "date", "b": "bool",
          "ts": "ts", "g": "str", "o": "int", "id": "int"},
    "u": {"k": "int", "v": "int", "d": "dec", "s": "str", "id": "int"},
    "w": {"id": "int", "d0": "dec", "d2": "dec", "d4": "dec", "d10": "dec", "x": "dbl"},
    "p": {"k": "int", "c": "str", "y": "int", "amt": "dec", "q": "int"},
    "n": {"id": "int", "s": "str", "dt": "date", "ts": "ts", "m": "int"},
    "e": {"k": "int", "v": "int", "d": "dec", "x": "dbl", "s": "str", "dt": "date", "b": "bool",
          "ts": "ts", "g": "str", "o": "int", "id": "int"},
}  # fmt: skip
# A unique column per table (a total order); e is empty.
UNIQUE = {"t": "id", "u": "id", "w": "id", "p": "q", "n": "id", "e": "id"}
# Columns two tables can be joined on: name -> tables that have it with an integer kind.
JOIN_KEYS = ("k", "id", "v")
NUMERIC = ("int", "dec", "dbl")

INT_LITERALS = ("0", "1", "2", "3", "-1", "-7", "10", "100")
DEC_LITERALS = ("2.25", "-0.05", "0.125", "1.5", "-2.5", "0.35", "100.00", "0.0")
DBL_LITERALS = ("2.5e0", "-0.5e0", "1e-3", "3.25e0")
STR_LITERALS = ("'apple'", "'a'", "''", "'x'", "'Banana'", "'é'", "'date'", "'%'")
DATE_LITERALS = ("DATE '2024-01-31'", "DATE '2024-02-29'", "DATE '2023-12-31'", "DATE '2000-02-29'")


@dataclass(frozen=True)
class Scope:
    """The tables in scope: (alias, table)."""

    tables: tuple[tuple[str, str], ...]

    def columns(self, kind: str | None = None) -> list[str]:
        out = []
        for alias, table in self.tables:
            for col, k in SCHEMA[table].items():
                if kind is None or k == kind or (kind == "num" and k in NUMERIC):
                    out.append(f"{alias}.{col}")
        return out


class Generator:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def pick(self, seq: list[str] | tuple[str, ...]) -> str:
        return seq[self.r.randrange(len(seq))]

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    # -- expressions -------------------------------------------------------------------------

    def expr(self, kind: str, scope: Scope, depth: int = 0) -> str:
        """An expression of `kind` (int, dec, dbl, num, str, date, bool)."""
        if kind == "num":
            kind = self.pick(NUMERIC)
        leaf = depth >= 3 or self.chance(0.35 + 0.15 * depth)
        if kind == "bool":
            return self.boolean(scope, depth)
        if leaf:
            return self.leaf(kind, scope)
        method = getattr(self, f"expr_{kind}")
        return method(scope, depth + 1)

    def leaf(self, kind: str, scope: Scope) -> str:
        cols = scope.columns(kind)
        if cols and self.chance(0.75):
            return self.pick(cols)
        if kind == "int":
            return self.pick(INT_LITERALS)
        if kind == "dec":
            return self.pick(DEC_LITERALS)
        if kind == "dbl":
            return self.pick(DBL_LITERALS)
        if kind == "str":
            return self.pick(STR_LITERALS)
        if kind in ("date", "ts"):
            return self.pick(DATE_LITERALS)
        return "NULL"

    def common(self, kind: str, scope: Scope, depth: int) -> str | None:
        """Forms any kind has: CASE, COALESCE, NULLIF, NULL."""
        roll = self.r.random()
        if roll < 0.12:
            return (
                f"CASE WHEN {self.boolean(scope, depth)} THEN {self.expr(kind, scope, depth)} "
                f"ELSE {self.expr(kind, scope, depth)} END"
            )
        if roll < 0.2:
            return f"coalesce({self.expr(kind, scope, depth)}, {self.expr(kind, scope, depth)})"
        if roll < 0.24:
            return f"nullif({self.expr(kind, scope, depth)}, {self.expr(kind, scope, depth)})"
        if roll < 0.26:
            return f"CASE WHEN {self.boolean(scope, depth)} THEN {self.expr(kind, scope, depth)} END"
        return None

    def expr_int(self, scope: Scope, depth: int) -> str:
        if (c := self.common("int", scope, depth)) is not None:
            return c
        a, b = self.expr("int", scope, depth), self.expr("int", scope, depth)
        return self.pick(
            [
                f"({a} + {b})",
                f"({a} - {b})",
                f"({a} * {b})",
                f"({a} % {self.pick(('2', '3', '-3', '7'))})",
                f"({a} // {self.pick(('2', '-2', '3'))})",
                f"(-{a})",
                f"abs({a})",
                f"length({self.expr('str', scope, depth)})",
                f"extract(month FROM {self.expr('date', scope, depth)})",
                f"sign({self.expr('num', scope, depth)})",
                f"CAST({self.expr('dbl', scope, depth)} AS INTEGER)",
                f"CAST({self.expr('dec', scope, depth)} AS INTEGER)",
                f"greatest({a}, {b})",
                f"least({a}, {b})",
            ]
        )

    def expr_dec(self, scope: Scope, depth: int) -> str:
        if (c := self.common("dec", scope, depth)) is not None:
            return c
        a, b = self.expr("dec", scope, depth), self.expr("dec", scope, depth)
        i = self.expr("int", scope, depth)
        return self.pick(
            [
                f"({a} + {b})",
                f"({a} - {b})",
                f"({a} * {i})",
                f"({a} + {i})",
                f"round({a}, {self.pick(('0', '1', '2'))})",
                f"abs({a})",
                f"floor({a})",
                f"ceil({a})",
                f"(-{a})",
                f"CAST({i} AS DECIMAL(10,2))",
                f"CAST({a} AS DECIMAL(12,1))",
                f"CAST({self.expr('dbl', scope, depth)} AS DECIMAL(12,2))",
                f"({a} % {self.pick(('1', '0.3', '2'))})",
            ]
        )

    def expr_dbl(self, scope: Scope, depth: int) -> str:
        if (c := self.common("dbl", scope, depth)) is not None:
            return c
        a, b = self.expr("num", scope, depth), self.expr("num", scope, depth)
        return self.pick(
            [
                f"({a} / {b})",
                f"({self.expr('dbl', scope, depth)} + {b})",
                f"({self.expr('dbl', scope, depth)} * {b})",
                f"CAST({a} AS DOUBLE)",
                f"sqrt(abs({a}))",
                f"round({self.expr('dbl', scope, depth)}, 1)",
                f"power({self.expr('dbl', scope, depth)}, 2)",
                f"abs({self.expr('dbl', scope, depth)})",
            ]
        )

    def expr_str(self, scope: Scope, depth: int) -> str:
        if (c := self.common("str", scope, depth)) is not None:
            return c
        a = self.expr("str", scope, depth)
        return self.pick(
            [
                f"upper({a})",
                f"lower({a})",
                f"trim({a})",
                f"substr({a}, {self.pick(('1', '2', '-2', '0'))}, {self.pick(('1', '2', '3'))})",
                f"substr({a}, {self.pick(('2', '-2'))})",
                f"({a} || {self.expr('str', scope, depth)})",
                f"concat({a}, {self.expr('str', scope, depth)})",
                f"replace({a}, 'a', 'A')",
                f"CAST({self.expr('int', scope, depth)} AS VARCHAR)",
                f"left({a}, 2)",
            ]
        )

    def expr_date(self, scope: Scope, depth: int) -> str:
        if (c := self.common("date", scope, depth)) is not None:
            return c
        a = self.leaf("date", scope)
        return self.pick(
            [
                f"({a} + {self.pick(('1', '-1', '31'))})",
                f"CAST({a} + INTERVAL '{self.pick(('1', '-1', '3'))}' MONTH AS DATE)",
                a,
            ]
        )

    def expr_ts(self, scope: Scope, depth: int) -> str:
        return self.leaf("ts", scope)

    def comparison(self, scope: Scope, depth: int) -> str:
        kind = self.pick(("int", "dec", "dbl", "num", "str", "date"))
        a, b = self.expr(kind, scope, depth + 1), self.expr(kind, scope, depth + 1)
        op = self.pick(("=", "<>", "<", "<=", ">", ">="))
        return f"{a} {op} {b}"

    def boolean(self, scope: Scope, depth: int) -> str:
        if depth >= 3:
            return self.comparison(scope, depth)
        roll = self.r.random()
        if roll < 0.35:
            return self.comparison(scope, depth)
        if roll < 0.45:
            return f"({self.boolean(scope, depth + 1)} AND {self.boolean(scope, depth + 1)})"
        if roll < 0.55:
            return f"({self.boolean(scope, depth + 1)} OR {self.boolean(scope, depth + 1)})"
        if roll < 0.6:
            return f"NOT ({self.boolean(scope, depth + 1)})"
        if roll < 0.66:
            return f"{self.expr(self.pick(('int', 'str', 'dec')), scope, depth + 1)} IS {self.pick(('', 'NOT '))}NULL"
        if roll < 0.71:
            test = self.pick(("TRUE", "NOT TRUE", "FALSE", "NOT FALSE"))
            return f"({self.comparison(scope, depth + 1)}) IS {test}"
        if roll < 0.76:
            kind = self.pick(("int", "str", "dec"))
            neg = self.pick(("", "NOT "))
            return f"{self.expr(kind, scope, depth + 1)} IS {neg}DISTINCT FROM {self.expr(kind, scope, depth + 1)}"
        if roll < 0.82:
            kind = self.pick(("int", "dec", "str"))
            lits = {"int": INT_LITERALS, "dec": DEC_LITERALS, "str": STR_LITERALS}[kind]
            items = [self.pick(lits) for _ in range(self.r.randint(1, 4))]
            if self.chance(0.2):
                items.append("NULL")
            neg = self.pick(("", "NOT "))
            return f"{self.expr(kind, scope, depth + 1)} {neg}IN ({', '.join(items)})"
        if roll < 0.87:
            kind = self.pick(("int", "dec", "num"))
            a, lo, hi = (self.expr(kind, scope, depth + 1) for _ in range(3))
            return f"{a} {self.pick(('', 'NOT '))}BETWEEN {lo} AND {hi}"
        if roll < 0.92:
            pattern = self.pick(("'a%'", "'%e'", "'_pple'", "'%a%'", "'%'", "'A%'"))
            op = self.pick(("LIKE", "NOT LIKE", "ILIKE"))
            return f"{self.expr('str', scope, depth + 1)} {op} {pattern}"
        bools = scope.columns("bool")
        if bools:
            return self.pick(bools)
        return self.comparison(scope, depth)

    # -- queries ------------------------------------------------------------------------------

    def table(self, allow_empty: bool = True) -> str:
        names = [t for t in SCHEMA if allow_empty or t != "e"]
        weights = [0.5 if t == "e" else 3 if t in ("t", "u") else 1 for t in names]
        return self.r.choices(names, weights)[0]

    def select_list(self, scope: Scope, n: int) -> list[str]:
        kinds = ("int", "dec", "dbl", "str", "date", "bool", "int", "dec")
        return [f"{self.expr(self.pick(kinds), scope)} AS c{i}" for i in range(n)]

    def from_clause(self) -> tuple[str, Scope]:
        left = self.table()
        if self.chance(0.5):
            return f"{left} a", Scope((("a", left),))
        right = self.table()
        left_keys = [k for k in JOIN_KEYS if SCHEMA[left].get(k) == "int"]
        right_keys = [k for k in JOIN_KEYS if SCHEMA[right].get(k) == "int"]
        scope = Scope((("a", left), ("b", right)))
        kind = self.pick(("JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN", "JOIN", "LEFT JOIN"))
        if not left_keys or not right_keys or self.chance(0.05):
            return f"{left} a CROSS JOIN {right} b", scope
        on = f"a.{self.pick(left_keys)} = b.{self.pick(right_keys)}"
        if self.chance(0.25):
            on += f" AND {self.comparison(scope, 2)}"
        return f"{left} a {kind} {right} b ON {on}", scope

    def subquery_predicate(self, scope: Scope) -> str:
        inner = self.table()
        alias = "s"
        iscope = Scope(((alias, inner),))
        outer_keys = [c for c in scope.columns("int")]
        inner_keys = iscope.columns("int")
        correlate = f"{self.pick(inner_keys)} = {self.pick(outer_keys)}"
        roll = self.r.random()
        if roll < 0.25:
            where = f" WHERE {self.boolean(iscope, 2)}" if self.chance(0.5) else ""
            neg = self.pick(("", "NOT "))
            return f"{self.pick(outer_keys)} {neg}IN (SELECT {self.pick(inner_keys)} FROM {inner} {alias}{where})"
        if roll < 0.5:
            neg = self.pick(("", "NOT "))
            extra = f" AND {self.boolean(iscope, 2)}" if self.chance(0.4) else ""
            what = self.pick(("1", "1", f"max({self.pick(inner_keys)})", "count(*)"))
            return f"{neg}EXISTS (SELECT {what} FROM {inner} {alias} WHERE {correlate}{extra})"
        agg = self.pick(("max", "min", "sum", "count", "avg"))
        value = self.pick(iscope.columns("num"))
        where = f" WHERE {correlate}" if self.chance(0.6) else ""
        sub = f"(SELECT {agg}({value}) FROM {inner} {alias}{where})"
        if agg in ("sum", "count") and self.chance(0.3):
            sub = f"coalesce({sub}, 0)"
        op = self.pick(("=", "<", ">", "<=", ">=", "<>"))
        return f"{self.expr('num', scope, 2)} {op} {sub}"

    def scalar_subquery(self, scope: Scope) -> str:
        """An aggregate over another table, correlated by an integer key or not."""
        inner = self.table()
        iscope = Scope((("s", inner),))
        agg = self.pick(("max", "min", "sum", "count", "avg"))
        where = ""
        if self.chance(0.7):
            where = f" WHERE {self.pick(iscope.columns('int'))} = {self.pick(scope.columns('int'))}"
        return f"(SELECT {agg}({self.pick(iscope.columns('num'))}) FROM {inner} s{where})"

    def query_cte(self) -> tuple[str, bool]:
        """A CTE or derived table of one of the other shapes, filtered and projected again."""
        inner, ordered = self.query_plain() if self.chance(0.5) else self.query_aggregate()
        if ordered:
            return inner, ordered
        if self.chance(0.5):
            return f"WITH q AS ({inner}) SELECT * FROM q WHERE c0 IS NOT NULL", False
        return f"SELECT count(*) AS n, count(c0) AS n0 FROM ({inner}) q", False

    def query_plain(self) -> tuple[str, bool]:
        frm, scope = self.from_clause()
        cols = self.select_list(scope, self.r.randint(1, 4))
        if self.chance(0.15):
            cols.append(f"{self.scalar_subquery(scope)} AS c{len(cols)}")
        sql = f"SELECT {', '.join(cols)} FROM {frm}"
        if self.chance(0.7):
            cond = self.boolean(scope, 0)
            if self.chance(0.3):
                cond = f"{cond} {self.pick(('AND', 'OR'))} {self.subquery_predicate(scope)}"
            sql += f" WHERE {cond}"
        if self.chance(0.1):
            sql = sql.replace("SELECT ", "SELECT DISTINCT ", 1)
        return self.maybe_order_limit(sql, len(cols))

    def query_aggregate(self) -> tuple[str, bool]:
        frm, scope = self.from_clause()
        nkeys = self.r.randint(0, 2)
        keys: list[str] = []
        while len(keys) < nkeys:
            key = self.expr(self.pick(("int", "str", "bool", "date", "dec")), scope, 2)
            # A bare integer in GROUP BY is a column's position, not a value.
            if not key.lstrip("-").isdigit():
                keys.append(key)
        cols = [f"{k} AS c{i}" for i, k in enumerate(keys)]
        aggs = []
        for _ in range(self.r.randint(1, 3)):
            fn = self.pick(("count", "sum", "min", "max", "avg", "count_star", "count_distinct", "bool_and"))
            if fn == "count_star":
                aggs.append("count(*)")
            elif fn == "count_distinct":
                aggs.append(f"count(DISTINCT {self.expr(self.pick(('int', 'str')), scope, 2)})")
            elif fn == "bool_and":
                aggs.append(f"{self.pick(('bool_and', 'bool_or'))}({self.boolean(scope, 2)})")
            elif fn in ("min", "max"):
                aggs.append(f"{fn}({self.expr(self.pick(('int', 'dec', 'str', 'date')), scope, 1)})")
            else:
                aggs.append(f"{fn}({self.expr(self.pick(('int', 'dec', 'dbl')), scope, 1)})")
        if self.chance(0.2) and len(aggs) > 1:
            aggs[0] = f"{aggs[0]} * 2 + {aggs[1]}" if not aggs[1].startswith("bool") else aggs[0]
        cols += [f"{a} AS c{len(keys) + i}" for i, a in enumerate(aggs)]
        sql = f"SELECT {', '.join(cols)} FROM {frm}"
        if self.chance(0.5):
            sql += f" WHERE {self.boolean(scope, 1)}"
        if keys:
            sql += f" GROUP BY {', '.join(keys)}"
            if self.chance(0.3):
                sql += f" HAVING {self.pick(('count(*) > 1', 'count(*) = 1', 'sum(1) >= 2'))}"
        return self.maybe_order_limit(sql, len(cols))

    def query_window(self) -> tuple[str, bool]:
        table = self.pick(("t", "u", "w", "p", "n"))
        scope = Scope((("a", table),))
        uniq = f"a.{UNIQUE[table]}"
        part = self.pick([*scope.columns("int"), *scope.columns("str")])
        order = self.pick(scope.columns("num"))
        fn = self.pick(
            (
                f"row_number() OVER (PARTITION BY {part} ORDER BY {order}, {uniq})",
                f"rank() OVER (PARTITION BY {part} ORDER BY {order})",
                f"dense_rank() OVER (ORDER BY {order})",
                f"sum({order}) OVER (PARTITION BY {part} ORDER BY {order})",
                f"count(*) OVER (PARTITION BY {part})",
                f"lag({order}) OVER (ORDER BY {uniq})",
                f"max({order}) OVER (PARTITION BY {part} ORDER BY {uniq} ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)",
            )
        )
        sql = f"SELECT {uniq} AS c0, {fn} AS c1 FROM {table} a"
        if self.chance(0.4):
            sql += f" WHERE {self.boolean(scope, 1)}"
        return sql, False

    def query_set_op(self) -> tuple[str, bool]:
        kind = self.pick(("int", "dec", "str", "num"))
        parts = []
        for _ in range(2):
            table = self.table()
            scope = Scope((("a", table),))
            where = f" WHERE {self.boolean(scope, 1)}" if self.chance(0.5) else ""
            parts.append(f"SELECT {self.expr(kind, scope, 1)} AS c0 FROM {table} a{where}")
        op = self.pick(("UNION", "UNION ALL", "INTERSECT", "EXCEPT", "INTERSECT ALL", "EXCEPT ALL"))
        return f"{parts[0]} {op} {parts[1]}", False

    def maybe_order_limit(self, sql: str, ncols: int) -> tuple[str, bool]:
        if not self.chance(0.25):
            return sql, False
        # A total order over the output: every column. Rows equal in every column are
        # interchangeable, so the answer is one list.
        order = ", ".join(
            f"c{i} {self.pick(('ASC', 'DESC'))}{self.pick(('', ' NULLS FIRST', ' NULLS LAST'))}" for i in range(ncols)
        )
        limit = f" LIMIT {self.r.randint(1, 8)}" if self.chance(0.7) else ""
        return f"SELECT * FROM ({sql}) q ORDER BY {order}{limit}", True

    def query(self) -> tuple[str, bool]:
        roll = self.r.random()
        if roll < 0.45:
            return self.query_plain()
        if roll < 0.75:
            return self.query_aggregate()
        if roll < 0.85:
            return self.query_window()
        if roll < 0.93:
            return self.query_set_op()
        return self.query_cte()


def query_id(sql: str) -> str:
    return "q_" + hashlib.sha1(sql.encode()).hexdigest()[:12]


@dataclass
class Run:
    seed: int
    results: dict[str, corpus.Result]
    generated: int
    discarded: int
    seconds: float
    runner_runs: int


def generate_cases(seed: int, count: int, con: object) -> tuple[list[corpus.Case], int]:
    """`count` queries DuckDB answers, and how many were generated in all."""
    gen = Generator(seed)
    cases: list[corpus.Case] = []
    seen: set[str] = set()
    generated = 0
    while len(cases) < count and generated < count * 20:
        generated += 1
        sql, ordered = gen.query()
        qid = query_id(sql)
        if qid in seen:
            continue
        answer = corpus.duckdb_answer(con, sql)  # type: ignore[arg-type]
        if answer.error is not None or len(set(answer.columns)) != len(answer.columns):
            continue
        # A query whose answer depends on the order of float additions beyond the tolerance,
        # or on anything else that varies, would be noise: all of them have a total order or
        # are compared as multisets, so only the values matter.
        seen.add(qid)
        cases.append(corpus.Case(qid, sql, ordered=ordered, file="generated", line=len(cases) + 1))
    return cases, generated


def run(seed: int, count: int, work: Path | None = None, binary: Path = corpus.RUNNER, batch_size: int = 50) -> Run:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sqlgen-") as tmp:
        tables = Path(tmp) / "tables"
        build(tables)
        con = corpus.duckdb_connection(tables)
        cases, generated = generate_cases(seed, count, con)
        con.close()
        results, stats = corpus.run_corpus(cases, tables, work=work, binary=binary, batch_size=batch_size)
    return Run(seed, results, generated, generated - len(cases), time.monotonic() - started, stats.runs)


def read_known(path: Path = KNOWN_FILE) -> dict[str, dict[str, str]]:
    return corpus.read_known(path)


def write_known(found: dict[str, corpus.Result], path: Path = KNOWN_FILE, seed: int = 0, count: int = 0) -> None:
    """The generator's known silently wrong answers (by query id), with their SQL."""
    lines = [
        "# Queries of the random generator (generate.py) with a silently wrong answer from the current",
        "# runner, by query id (a hash of the SQL). tests/test_sql_generator.py fails on a wrong answer",
        "# not listed here, and on a listed one that is no longer wrong (so the list only shrinks).",
        "# Each one's minimized form is a case in cases/regressions.sql.",
        f"# Written from seed {seed}, {count} queries.",
    ]
    for qid, r in sorted(found.items()):
        lines += [
            "",
            f"[{qid}]",
            f"status = {corpus._toml_string(r.verdict.status)}",
            f"detail = {corpus._toml_string(corpus._one_line(r.verdict.detail))}",
            f"sql = {corpus._toml_string(r.case.sql)}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def report(run_: Run) -> dict:
    counts: dict[str, int] = {}
    for r in run_.results.values():
        counts[r.verdict.status] = counts.get(r.verdict.status, 0) + 1
    return {
        "seed": run_.seed,
        "kept": len(run_.results),
        "generated": run_.generated,
        "discarded_by_duckdb": run_.discarded,
        "seconds": round(run_.seconds, 1),
        "runner_runs": run_.runner_runs,
        "counts": counts,
        "not_right": [
            {
                "id": r.case.name,
                "status": r.verdict.status,
                "ordered": r.case.ordered,
                "detail": r.verdict.detail,
                "sql": r.case.sql,
            }
            for r in run_.results.values()
            if r.verdict.status != "right"
        ],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=100, help="queries to keep (DuckDB answers them)")
    ap.add_argument("--report", type=Path, help="write a JSON report here")
    ap.add_argument("--binary", type=Path, default=corpus.RUNNER)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--strict", action="store_true", help="exit 1 on a wrong answer not in generator_known.toml")
    ap.add_argument("--update-known", action="store_true", help="rewrite generator_known.toml from this run")
    args = ap.parse_args(argv)
    if not args.binary.exists():
        print(f"no runner binary at {args.binary}: build it first (cargo build)", file=sys.stderr)
        return 2
    r = run(args.seed, args.count, binary=args.binary, batch_size=args.batch_size)
    rep = report(r)
    known = read_known()
    wrong = {q: x for q, x in r.results.items() if x.verdict.status in corpus.WRONG_STATUSES}
    new = sorted(q for q in wrong if q not in known)
    rep["wrong_not_in_known"] = new
    if args.report:
        args.report.write_text(json.dumps(rep, indent=2, default=str), encoding="utf-8")
    print(
        f"seed {r.seed}: {len(r.results)} queries kept of {r.generated} generated, "
        f"{r.runner_runs} runner runs, {r.seconds:.0f} s; "
        + ", ".join(f"{k} {v}" for k, v in sorted(rep["counts"].items()))
    )
    for q in sorted(wrong):
        x = wrong[q]
        mark = "NEW " if q in new else ""
        print(f"  {mark}{x.verdict.status.upper()} {q}: {x.case.sql}\n      {corpus._one_line(x.verdict.detail, 300)}")
    if args.update_known:
        write_known({**{q: x for q, x in wrong.items()}}, seed=args.seed, count=args.count)
    return 1 if (args.strict and new) else 0


if __name__ == "__main__":
    sys.exit(main())
