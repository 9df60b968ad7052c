"""The differential SQL corpus: cases, the runner's answers, DuckDB's answers, and the verdict.

A case is one query over the tables of `tables.py`. The runner runs it as an output of a job
spec over the tables' Parquet files; DuckDB runs the same text over views of the same files.
The verdict (`classify`) is one of:

- `right`: the same columns (names), the same values (exactly: integers, decimals, strings,
  dates; floats to FLOAT_REL_TOL relative), row order too where the case is `-- ordered`, and
  column types that `TYPE_RULES` accepts for DuckDB's types;
- `refused`: the runner exited non-zero with a message (its first lines are recorded);
- `wrong`: the runner exited 0 with other values (the worst outcome: a silently wrong answer);
- `type_mismatch`: the values are equal but a column's type (or name) is not DuckDB's;
- `error_expected_but_ran`: DuckDB raises an error (the case is `-- error`) and the runner
  exited 0: a wrong answer too;
- `timeout`: the runner did not finish in time;
- `broken_case`: the case itself is broken (DuckDB errors on a case not marked `-- error`, or
  answers one that is): a fault of the corpus, never of the runner.

Cases run in batches: one job spec whose one step has one output per case. A batch that fails is
split (an output the message names is run alone; otherwise the batch is halved) until every
failure belongs to one case, run alone.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CASES_DIR = HERE / "cases"
KNOWN_FILE = HERE / "known.toml"
RUNNER = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "debug" / "runner"

# Floats (DOUBLE, FLOAT) are equal when within this relative tolerance, or this absolute one
# near zero (a sum of doubles in another order differs in its last bits). Everything else is
# compared exactly: integers, decimals (value and, through the types, scale), strings, dates,
# timestamps (to the microsecond), booleans.
FLOAT_REL_TOL = 1e-12
FLOAT_ABS_TOL = 1e-12

STATUSES = ("right", "refused", "wrong", "type_mismatch", "error_expected_but_ran", "timeout", "broken_case")
# The statuses that are silently wrong answers: the goal is none.
WRONG_STATUSES = ("wrong", "error_expected_but_ran")

CASE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


# ---------------------------------------------------------------------------------------------
# Cases


@dataclass(frozen=True)
class Case:
    """One query of the corpus."""

    name: str
    sql: str
    ordered: bool = False
    error: bool = False
    file: str = ""
    line: int = 0
    # The query DuckDB answers; the case's own SQL unless a self-test alters it on purpose.
    oracle_sql: str | None = None

    @property
    def duckdb_sql(self) -> str:
        return self.oracle_sql if self.oracle_sql is not None else self.sql


def parse_cases(text: str, file: str = "") -> list[Case]:
    """Cases of one file: each starts at a line `-- case: NAME`, may carry `-- ordered` and
    `-- error` lines, and runs to the next `-- case:` line. Other comments are kept in the SQL."""
    cases: list[Case] = []
    current: dict | None = None

    def finish() -> None:
        if current is None:
            return
        body = "\n".join(current["lines"]).strip()
        body = body.rstrip().rstrip(";").rstrip()
        if not body:
            raise ValueError(f"{file}:{current['line']}: case {current['name']!r} has no SQL")
        cases.append(Case(current["name"], body, current["ordered"], current["error"], file, current["line"]))

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("-- case:"):
            finish()
            name = line.removeprefix("-- case:").strip()
            if not CASE_NAME.match(name):
                raise ValueError(f"{file}:{number}: case name {name!r} must match {CASE_NAME.pattern}")
            current = {"name": name, "lines": [], "ordered": False, "error": False, "line": number}
        elif current is None:
            if line and not line.startswith("--"):
                raise ValueError(f"{file}:{number}: SQL before the first `-- case:` line")
        elif line == "-- ordered" and not current["lines"]:
            current["ordered"] = True
        elif line == "-- error" and not current["lines"]:
            current["error"] = True
        else:
            current["lines"].append(raw)
    finish()
    return cases


def load_corpus(cases_dir: Path = CASES_DIR) -> list[Case]:
    """Every case of every `*.sql` file, in file and then written order; names are unique."""
    cases: list[Case] = []
    seen: dict[str, str] = {}
    for path in sorted(cases_dir.glob("*.sql")):
        for case in parse_cases(path.read_text(encoding="utf-8"), path.stem):
            if case.name in seen:
                raise ValueError(f"case {case.name!r} is in {seen[case.name]} and {path.stem}")
            seen[case.name] = path.stem
            cases.append(case)
    return cases


# ---------------------------------------------------------------------------------------------
# Types: DuckDB's result type -> the Parquet-side type the runner must write.
#
# The runner's type of a column is read from its Parquet file's schema (`parquet_schema`) and
# named as below ("int32", "decimal(38,2)", "timestamp[us]", ...). DuckDB's type of a result
# column is its relation type. TYPE_RULES says, for each DuckDB type, the expected type and the
# differences accepted. Precision of decimals and width of integers are accepted to differ (and
# are reported in the verdict's notes); a decimal's scale, and the family of a type (integer,
# decimal, float, string, date, timestamp, boolean) must match.


@dataclass(frozen=True)
class TypeRule:
    """What DuckDB's type `pattern` expects of the runner's column."""

    pattern: str  # a regex over DuckDB's type name
    expected: str  # the exact Parquet-side type that matches DuckDB's
    accepted: str  # what is accepted, in words (the README's table)
    accepts: Callable[[re.Match[str], str], bool]


_INT = re.compile(r"^u?int(8|16|32|64)$")
_DEC = re.compile(r"^decimal\((\d+),(\d+)\)$")
_TS = re.compile(r"^timestamp\[(ms|us|ns)\]$")

TYPE_RULES: tuple[TypeRule, ...] = (
    TypeRule(r"^BOOLEAN$", "bool", "bool", lambda m, t: t == "bool"),
    TypeRule(r"^TINYINT$", "int8", "any integer", lambda m, t: bool(_INT.match(t))),
    TypeRule(r"^SMALLINT$", "int16", "any integer", lambda m, t: bool(_INT.match(t))),
    TypeRule(r"^INTEGER$", "int32", "any integer", lambda m, t: bool(_INT.match(t))),
    TypeRule(r"^BIGINT$", "int64", "any integer", lambda m, t: bool(_INT.match(t))),
    TypeRule(r"^UTINYINT$", "uint8", "any integer", lambda m, t: bool(_INT.match(t))),
    TypeRule(r"^USMALLINT$", "uint16", "any integer", lambda m, t: bool(_INT.match(t))),
    TypeRule(r"^UINTEGER$", "uint32", "any integer", lambda m, t: bool(_INT.match(t))),
    TypeRule(r"^UBIGINT$", "uint64", "any integer", lambda m, t: bool(_INT.match(t))),
    TypeRule(
        r"^U?HUGEINT$",
        "int64",
        "any integer, or a decimal of scale 0 (values must still be exact)",
        lambda m, t: bool(_INT.match(t)) or bool((d := _DEC.match(t)) and d.group(2) == "0"),
    ),
    TypeRule(r"^FLOAT$", "float32", "float32 or float64", lambda m, t: t in ("float32", "float64")),
    TypeRule(r"^DOUBLE$", "float64", "float64", lambda m, t: t == "float64"),
    TypeRule(
        r"^DECIMAL\((\d+),(\d+)\)$",
        "decimal(p,s)",
        "a decimal of the same scale s, any precision",
        lambda m, t: bool((d := _DEC.match(t)) and d.group(2) == m.group(2)),
    ),
    TypeRule(r"^VARCHAR$", "string", "string", lambda m, t: t == "string"),
    TypeRule(r"^BLOB$", "binary", "binary", lambda m, t: t == "binary"),
    TypeRule(r"^DATE$", "date", "date", lambda m, t: t == "date"),
    TypeRule(r"^TIME$", "time", "time", lambda m, t: t.startswith("time[")),
    TypeRule(
        r"^TIMESTAMP(_S|_MS|_NS)?$",
        "timestamp[us]",
        "a timestamp without time zone, any unit (values compared to the microsecond)",
        lambda m, t: bool(_TS.match(t)),
    ),
    TypeRule(
        r"^TIMESTAMP WITH TIME ZONE$",
        "timestamptz[us]",
        "a timestamp with time zone, any unit",
        lambda m, t: t.startswith("timestamptz["),
    ),
    TypeRule(r"^INTERVAL$", "interval", "interval", lambda m, t: t == "interval"),
    TypeRule(r'^"?NULL"?$', "any", "any type (every value is NULL)", lambda m, t: True),
    TypeRule(r"(\[\]|^STRUCT|^MAP|^UNION)", "nested", "a nested type", lambda m, t: t == "nested"),
)


def expected_type(duck_type: str) -> tuple[TypeRule, re.Match[str]] | None:
    for rule in TYPE_RULES:
        m = re.search(rule.pattern, duck_type)
        if m:
            return rule, m
    return None


def type_accepted(duck_type: str, runner_type: str) -> bool:
    found = expected_type(duck_type)
    return found is not None and found[0].accepts(found[1], runner_type)


def type_note(duck_type: str, runner_type: str) -> str | None:
    """A difference that is accepted but worth reporting (integer width, decimal precision)."""
    found = expected_type(duck_type)
    if found is None:
        return None
    rule, m = found
    expected = rule.expected
    if expected == "decimal(p,s)":
        expected = f"decimal({m.group(1)},{m.group(2)})"
    if expected in ("any", "nested") or runner_type == expected:
        return None
    return f"{duck_type} as {runner_type}"


def parquet_types(path: Path, con: duckdb.DuckDBPyConnection | None = None) -> list[tuple[str, str]]:
    """The top-level columns of a Parquet file and their types, named as TYPE_RULES names them."""
    con = con or duckdb.connect()
    rows = con.execute(
        "SELECT name, type, num_children, converted_type, logical_type, scale, precision "
        "FROM parquet_schema(?) ORDER BY column_id",
        [str(path)],
    ).fetchall()
    out: list[tuple[str, str]] = []
    i = 1  # row 0 is the schema's root
    top = rows[0][2] or 0

    def skip_subtree(j: int) -> int:
        children = rows[j][2] or 0
        j += 1
        for _ in range(children):
            j = skip_subtree(j)
        return j

    for _ in range(top):
        name, physical, children, converted, logical, scale, precision = rows[i]
        if children:
            out.append((name, "nested"))
            i = skip_subtree(i)
            continue
        out.append((name, _leaf_type(physical, converted, logical or "", scale, precision)))
        i += 1
    return out


def _leaf_type(physical: str, converted: str | None, logical: str, scale: int | None, precision: int | None) -> str:
    if converted == "DECIMAL" or logical.startswith("DecimalType"):
        return f"decimal({precision},{scale})"
    if physical == "BOOLEAN":
        return "bool"
    if physical == "FLOAT":
        return "float32"
    if physical == "DOUBLE":
        return "float64"
    if physical == "INT96":
        return "timestamp[ns]"
    if logical.startswith("TimestampType"):
        unit = "ns" if "NANOS=NanoSeconds" in logical else "ms" if "MILLIS=MilliSeconds" in logical else "us"
        return f"timestamptz[{unit}]" if "isAdjustedToUTC=1" in logical else f"timestamp[{unit}]"
    if logical.startswith("TimeType"):
        unit = "ns" if "NANOS=NanoSeconds" in logical else "ms" if "MILLIS=MilliSeconds" in logical else "us"
        return f"time[{unit}]"
    if logical.startswith("IntType"):
        width = re.search(r"bitWidth=(\d+)", logical)
        signed = "isSigned=0" not in logical
        return f"{'' if signed else 'u'}int{width.group(1) if width else '64'}"
    conv = {
        "INT_8": "int8", "INT_16": "int16", "INT_32": "int32", "INT_64": "int64",
        "UINT_8": "uint8", "UINT_16": "uint16", "UINT_32": "uint32", "UINT_64": "uint64",
        "DATE": "date", "UTF8": "string", "ENUM": "string", "JSON": "string",
        "TIMESTAMP_MILLIS": "timestamp[ms]", "TIMESTAMP_MICROS": "timestamp[us]",
        "TIME_MILLIS": "time[ms]", "TIME_MICROS": "time[us]", "INTERVAL": "interval",
    }  # fmt: skip
    if converted in conv:
        return conv[converted]
    if logical.startswith("StringType"):
        return "string"
    if logical.startswith("DateType"):
        return "date"
    return {"INT32": "int32", "INT64": "int64", "BYTE_ARRAY": "binary", "FIXED_LEN_BYTE_ARRAY": "binary"}.get(
        physical, f"unknown({physical})"
    )


# ---------------------------------------------------------------------------------------------
# Answers


@dataclass
class Answer:
    """A result: column names, types (DuckDB's names for DuckDB, TYPE_RULES' for the runner's
    Parquet), and rows. Or an error."""

    columns: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    error: str | None = None
    timed_out: bool = False
    note: str | None = None


def duckdb_connection(tables_dir: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB with a view per table, over the same Parquet files the runner reads."""
    con = duckdb.connect()
    con.execute("SET threads = 1")
    for path in sorted(tables_dir.glob("*.parquet")):
        con.execute(f"CREATE VIEW {path.stem} AS SELECT * FROM read_parquet('{path}')")
    return con


def duckdb_answer(con: duckdb.DuckDBPyConnection, sql: str) -> Answer:
    try:
        rel = con.sql(sql)
        if rel is None:
            return Answer(error="not a query")
        columns = list(rel.columns)
        types = [str(t) for t in rel.types]
        rows = rel.fetchall()
    except duckdb.Error as e:
        return Answer(error=f"{type(e).__name__}: {e}")
    return Answer(columns, types, rows)


def read_output(directory: Path, con: duckdb.DuckDBPyConnection | None = None) -> Answer:
    """The runner's answer: every Parquet file under `directory` (not `_`/`.` ones)."""
    con = con or duckdb.connect()
    files = sorted(
        p
        for p in directory.rglob("*.parquet")
        if not any(part.startswith(("_", ".")) for part in p.relative_to(directory).parts)
    )
    if not files:
        return Answer(note="no Parquet file written")
    schemas = [parquet_types(f, con) for f in files]
    if any(s != schemas[0] for s in schemas[1:]):
        return Answer(error=f"files disagree on their schema: {schemas}")
    rows = con.execute("SELECT * FROM read_parquet(?)", [[str(f) for f in files]]).fetchall()
    return Answer([n for n, _ in schemas[0]], [t for _, t in schemas[0]], rows)


# ---------------------------------------------------------------------------------------------
# Values


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)


def same(want: object, got: object) -> bool:
    """Equal values, whatever their Python types (types are judged apart): integers and decimals
    exactly, a float against any number to FLOAT_REL_TOL, a date equal to a timestamp at its
    midnight, lists and structs element by element."""
    if want is None or got is None:
        return want is None and got is None
    if isinstance(want, bool) or isinstance(got, bool):
        return isinstance(want, bool) and isinstance(got, bool) and want == got
    if _is_number(want) and _is_number(got):
        if isinstance(want, float) or isinstance(got, float):
            a, b = float(want), float(got)
            if math.isnan(a) or math.isnan(b):
                return math.isnan(a) and math.isnan(b)
            if math.isinf(a) or math.isinf(b):
                return a == b
            return math.isclose(a, b, rel_tol=FLOAT_REL_TOL, abs_tol=FLOAT_ABS_TOL)
        return Decimal(want) == Decimal(got)
    if isinstance(want, dt.datetime) != isinstance(got, dt.datetime) and isinstance(want, dt.date):
        if isinstance(got, dt.date):
            a = want if isinstance(want, dt.datetime) else dt.datetime.combine(want, dt.time())
            b = got if isinstance(got, dt.datetime) else dt.datetime.combine(got, dt.time())
            return a == b
        return False
    if isinstance(want, (list, tuple)) and isinstance(got, (list, tuple)):
        return len(want) == len(got) and all(same(a, b) for a, b in zip(want, got, strict=True))
    if isinstance(want, dict) and isinstance(got, dict):
        return want.keys() == got.keys() and all(same(want[k], got[k]) for k in want)
    if type(want) is not type(got) and not (isinstance(want, str) and isinstance(got, str)):
        return False
    return want == got


def same_row(want: tuple, got: tuple) -> bool:
    return len(want) == len(got) and all(same(a, b) for a, b in zip(want, got, strict=True))


def _sort_key(row: tuple) -> tuple:
    def one(v: object) -> tuple:
        if v is None:
            return (0, "")
        if isinstance(v, bool):
            return (1, str(v))
        if _is_number(v):
            f = float(v)  # type: ignore[arg-type]
            return (2, "nan" if math.isnan(f) else f"{f:.9e}")
        return (3, repr(v))

    return tuple(one(v) for v in row)


def same_rows(want: Sequence[tuple], got: Sequence[tuple], ordered: bool) -> bool:
    if len(want) != len(got):
        return False
    if ordered:
        return all(same_row(a, b) for a, b in zip(want, got, strict=True))
    a, b = sorted(want, key=_sort_key), sorted(got, key=_sort_key)
    if all(same_row(x, y) for x, y in zip(a, b, strict=True)):
        return True
    # Sorting may pair rows differently when the two sides hold equal values of different
    # Python types or floats a rounding apart: match each wanted row with an unused equal one.
    unused = list(got)
    for row in want:
        for i, candidate in enumerate(unused):
            if same_row(row, candidate):
                del unused[i]
                break
        else:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Verdicts


@dataclass
class Verdict:
    status: str
    detail: str = ""
    notes: list[str] = field(default_factory=list)


def _show(rows: Sequence[tuple], limit: int = 6) -> str:
    text = ", ".join(repr(r) for r in rows[:limit])
    return f"[{text}{', ...' if len(rows) > limit else ''}] ({len(rows)} rows)"


def first_difference(want: Answer, got: Answer, ordered: bool) -> str:
    if len(want.columns) != len(got.columns):
        return f"DuckDB has {len(want.columns)} columns {want.columns}, the runner {len(got.columns)} {got.columns}"
    if len(want.rows) != len(got.rows):
        return (
            f"DuckDB has {len(want.rows)} rows, the runner {len(got.rows)}: "
            f"DuckDB {_show(want.rows)}; runner {_show(got.rows)}"
        )
    a = want.rows if ordered else sorted(want.rows, key=_sort_key)
    b = got.rows if ordered else sorted(got.rows, key=_sort_key)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if not same_row(x, y):
            where = f"row {i}" if ordered else "first differing row (sorted)"
            return f"{where}: DuckDB {x!r}, runner {y!r}"
    return f"DuckDB {_show(want.rows)}; runner {_show(got.rows)}"


def classify(case: Case, want: Answer, got: Answer) -> Verdict:
    """The verdict on one case, from DuckDB's answer and the runner's."""
    if want.error is not None and not case.error:
        return Verdict("broken_case", f"DuckDB fails on a case not marked `-- error`: {want.error}")
    if want.error is None and case.error:
        return Verdict("broken_case", "the case is marked `-- error` but DuckDB answers it")
    if got.timed_out:
        return Verdict("timeout", got.error or "")
    if got.error is not None:
        crashed = re.search(r"panicked|crashed with signal|stack overflow|killed by", got.error)
        return Verdict("refused", got.error, ["a crash, not a refusal that names what it can't do"] if crashed else [])
    if case.error:
        return Verdict(
            "error_expected_but_ran",
            f"DuckDB: {want.error}; the runner answered {_show(got.rows)}",
        )
    if got.note == "no Parquet file written":
        if want.rows:
            return Verdict("wrong", f"the runner wrote no file; DuckDB has {_show(want.rows)}")
        return Verdict("type_mismatch", "no rows and no Parquet file: the columns and their types are lost")
    if len(want.columns) != len(got.columns) or not same_rows(want.rows, got.rows, case.ordered):
        return Verdict("wrong", first_difference(want, got, case.ordered))
    problems: list[str] = []
    notes: list[str] = []
    for name_w, name_g, type_w, type_g in zip(want.columns, got.columns, want.types, got.types, strict=True):
        if name_w != name_g:
            problems.append(f"column {name_w!r} is named {name_g!r}")
        if not type_accepted(type_w, type_g):
            problems.append(f"column {name_w!r}: DuckDB {type_w}, runner {type_g}")
        elif note := type_note(type_w, type_g):
            notes.append(f"{name_w}: {note}")
    if problems:
        return Verdict("type_mismatch", "; ".join(problems), notes)
    return Verdict("right", "", notes)


# ---------------------------------------------------------------------------------------------
# The runner


def _toml_string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def job_spec(job_name: str, tables: Iterable[str], outputs: Sequence[tuple[str, str]]) -> str:
    """A job spec with one step (one item) over every table, and one output per (name, sql).
    Braces are doubled: the runner reads `{...}` in SQL as a placeholder."""
    lines = [f'name = "{job_name}"', "", "[[step]]", 'name = "cases"', 'split = "single"', "max_attempts = 1", ""]
    for table in tables:
        lines += [f"[step.inputs.{table}]", f'path = "tables/{table}.parquet"', 'format = "parquet"', ""]
    for name, sql in outputs:
        escaped = sql.replace("{", "{{").replace("}", "}}")
        lines += [f"[step.outputs.{name}]", f'path = "out/{name}"', f"sql = {_toml_string(escaped)}", ""]
    return "\n".join(lines)


def _message(stderr: str, stdout: str) -> str:
    """What the runner said about its failure: the lines that say `error`, else the last lines."""
    text = (stderr or "") + ("\n" + stdout if stdout else "")
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    # A batch's job spec lives in a fresh temporary folder: name it alone, so messages (and
    # known.toml) read the same from run to run.
    text = re.sub(r"\S*/(job\.toml)", r"\1", text)
    # Log lines start with a time stamp and a level: keep what they say.
    text = re.sub(r"^\s*\d{4}-\d\d-\d\dT[\d:.]+Z\s+(ERROR|WARN|INFO|DEBUG)\s+", "", text, flags=re.M)
    lines = list(dict.fromkeys(ln.strip() for ln in text.splitlines() if ln.strip()))
    picked = [ln for ln in lines if re.search(r"error|refus|panick|not supported|unsupported|fail", ln, re.I)]
    chosen = picked[-4:] if picked else lines[-4:]
    return " | ".join(chosen)[:1500] or "(no message)"


@dataclass
class RunnerStats:
    runs: int = 0
    seconds: float = 0.0


# The memory a runner process (and its item processes) may map for data: a query that grows
# past it fails (and is reported), instead of taking the machine. Reserved thread stacks count.
MEMORY_MIB = int(os.environ.get("SQL_CORPUS_MEMORY_MIB", "8192"))


def bound_memory(mib: int) -> None:
    """In the child, before it runs: its data segment (heap and private mappings) is at most
    `mib` MiB. Inherited by the item processes it starts."""
    limit = mib * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


class Runner:
    """Runs cases through the runner binary, in batches, each run under a memory bound."""

    def __init__(
        self,
        tables_dir: Path,
        work: Path,
        binary: Path = RUNNER,
        batch_size: int = 40,
        timeout: float = 60.0,
        memory_mib: int = MEMORY_MIB,
    ) -> None:
        self.memory_mib = memory_mib
        self.tables_dir = tables_dir
        self.tables = sorted(p.stem for p in tables_dir.glob("*.parquet"))
        self.work = work
        self.binary = binary
        self.batch_size = batch_size
        self.timeout = timeout
        self.stats = RunnerStats()
        self._n = 0
        self._con = duckdb.connect()

    def _timeout(self, n: int) -> float:
        """A run's time limit: `timeout` for one case, more for a batch (a batch that times out is
        split, and each part gets its own)."""
        return self.timeout * (1 + min(n, 40) / 8)

    def _run(self, outputs: Sequence[tuple[str, str]]) -> tuple[bool, str, dict[str, Answer], bool]:
        """One runner process: (exit 0, message, answers by output, timed out)."""
        self._n += 1
        root = self.work / f"run{self._n:05d}"
        (root / "tables").mkdir(parents=True)
        for table in self.tables:
            # A hard link (the runner's local storage doesn't follow symbolic links), or a copy.
            src, dst = self.tables_dir / f"{table}.parquet", root / "tables" / f"{table}.parquet"
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
        spec = root / "job.toml"
        spec.write_text(job_spec(f"sqlcorpus{self._n}", self.tables, outputs), encoding="utf-8")
        # The runner's own variables (config, root, memory) are not passed on, so every run is
        # alike; SQL_CORPUS_RUNNER_ENV="NAME=VALUE NAME=VALUE" sets some on purpose.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_PIPES_", "SPOTLAKE_"))}
        env["RUST_BACKTRACE"] = "0"
        for pair in os.environ.get("SQL_CORPUS_RUNNER_ENV", "").split():
            name, _, value = pair.partition("=")
            env[name] = value
        args = [str(self.binary), "run", str(spec), "--root", str(root), "--workers", "1"]
        started = time.monotonic()
        try:
            proc = subprocess.run(
                args,
                capture_output=True,
                text=True,
                env=env,
                timeout=self._timeout(len(outputs)),
                preexec_fn=lambda: bound_memory(self.memory_mib),
            )
        except subprocess.TimeoutExpired:
            self.stats.runs += 1
            self.stats.seconds += time.monotonic() - started
            shutil.rmtree(root, ignore_errors=True)
            return False, f"timed out after {self._timeout(len(outputs)):.0f} s", {}, True
        self.stats.runs += 1
        self.stats.seconds += time.monotonic() - started
        answers: dict[str, Answer] = {}
        if proc.returncode == 0:
            for name, _ in outputs:
                try:
                    answers[name] = read_output(root / "out" / name, self._con)
                except duckdb.Error as e:
                    answers[name] = Answer(error=f"the runner's output can't be read: {e}")
            message = ""
        else:
            message = f"exit {proc.returncode}: {_message(proc.stderr, proc.stdout)}"
        shutil.rmtree(root, ignore_errors=True)
        return proc.returncode == 0, message, answers, False

    def run(self, outputs: Sequence[tuple[str, str]]) -> dict[str, Answer]:
        """The runner's answer for each (output name, sql), attributing failures to cases."""
        results: dict[str, Answer] = {}
        for start in range(0, len(outputs), self.batch_size):
            self._run_batch(list(outputs[start : start + self.batch_size]), results)
        return results

    def _run_batch(self, outputs: list[tuple[str, str]], results: dict[str, Answer]) -> None:
        if not outputs:
            return
        ok, message, answers, timed_out = self._run(outputs)
        if ok:
            results.update(answers)
            return
        if len(outputs) == 1:
            results[outputs[0][0]] = Answer(error=message, timed_out=timed_out)
            return
        # An output the message names is run alone (its own message is what it is refused
        # with); the rest run again together. Otherwise, halves.
        names = {n for n, _ in outputs}
        named = [n for n in re.findall(r'output "([A-Za-z0-9_]+)"', message) if n in names]
        if named and not timed_out:
            culprit = [o for o in outputs if o[0] == named[0]]
            self._run_batch(culprit, results)
            self._run_batch([o for o in outputs if o[0] != named[0]], results)
            return
        half = len(outputs) // 2
        self._run_batch(outputs[:half], results)
        self._run_batch(outputs[half:], results)


def output_name(case_name: str) -> str:
    return f"c_{case_name}"


@dataclass
class Result:
    case: Case
    verdict: Verdict
    want: Answer
    got: Answer


def run_corpus(
    cases: Sequence[Case],
    tables_dir: Path,
    work: Path | None = None,
    binary: Path = RUNNER,
    batch_size: int = 40,
    timeout: float = 60.0,
    memory_mib: int = MEMORY_MIB,
) -> tuple[dict[str, Result], RunnerStats]:
    """Every case through DuckDB and the runner, and each one's verdict."""
    con = duckdb_connection(tables_dir)
    wants = {c.name: duckdb_answer(con, c.duckdb_sql) for c in cases}
    con.close()
    own_work = work is None
    work = work or Path(tempfile.mkdtemp(prefix="sqlcorpus-"))
    try:
        runner = Runner(tables_dir, work, binary, batch_size, timeout, memory_mib)
        gots = runner.run([(output_name(c.name), c.sql) for c in cases])
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    results: dict[str, Result] = {}
    for c in cases:
        got = gots.get(output_name(c.name), Answer(error="no result (harness fault)"))
        results[c.name] = Result(c, classify(c, wants[c.name], got), wants[c.name], got)
    return results, runner.stats


# ---------------------------------------------------------------------------------------------
# Known statuses (known.toml)


def _one_line(s: str, limit: int = 400) -> str:
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def read_known(path: Path = KNOWN_FILE) -> dict[str, dict[str, str]]:
    import tomllib

    if not path.exists():
        return {}
    return {k: dict(v) for k, v in tomllib.loads(path.read_text(encoding="utf-8")).items()}


def write_known(results: dict[str, Result], path: Path = KNOWN_FILE, header: str = "") -> None:
    """Writes every case's status (and, for all but `right`, why), grouped by case file."""
    lines = [
        "# Each corpus case's status with the current runner: right, refused, wrong, type_mismatch,",
        "# error_expected_but_ran, timeout. tests/test_sql_corpus.py asserts that every case still has",
        "# exactly this status; a fix of the engine updates it (SQL_CORPUS_UPDATE=1 rewrites this file).",
        "# `wrong` and `error_expected_but_ran` are silently wrong answers: the goal is none.",
    ]
    if header:
        lines += [f"# {h}" for h in header.splitlines()]
    counts: dict[str, int] = {}
    for r in results.values():
        counts[r.verdict.status] = counts.get(r.verdict.status, 0) + 1
    lines.append("# counts: " + ", ".join(f"{s} {counts[s]}" for s in STATUSES if s in counts))
    file = None
    for r in sorted(results.values(), key=lambda r: (r.case.file, r.case.line)):
        if r.case.file != file:
            file = r.case.file
            lines += ["", f"# --- {file}.sql"]
        lines.append(f"[{r.case.name}]")
        lines.append(f"status = {_toml_string(r.verdict.status)}")
        if r.verdict.status != "right":
            lines.append(f"detail = {_toml_string(_one_line(r.verdict.detail))}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
