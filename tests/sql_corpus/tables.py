"""The corpus's tables: small, deterministic, and full of what breaks engines (NULLs in keys and
values, duplicate keys, negatives, halves, decimals of several scales, month ends, an empty
table, unicode strings). Each is written by DuckDB as one Parquet file, the way a user's Parquet
holds these types: INT32, INT64, DOUBLE, DECIMAL(p,s), VARCHAR, DATE, BOOLEAN, TIMESTAMP (us).

    python tests/sql_corpus/tables.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

# name -> (columns, rows). Rows are SQL value lists, so DuckDB parses every literal into the
# column's own type (no float round trip for decimals).
T_COLUMNS = (
    "k INTEGER, v INTEGER, d DECIMAL(10,2), x DOUBLE, s VARCHAR, dt DATE, b BOOLEAN, "
    "ts TIMESTAMP, g VARCHAR, o INTEGER, id BIGINT"
)

TABLES: dict[str, tuple[str, list[str]]] = {
    # The main table: keys with NULLs and duplicates, values with negatives and halves.
    # `o` has ties (for RANGE peers); `id` is a unique row id (for total orders).
    "t": (
        T_COLUMNS,
        [
            "1, 10, 2.25, 2.5, 'apple', DATE '2024-01-31', true, TIMESTAMP '2024-01-31 08:00:00', 'a', 1, 1",
            "1, -7, -0.05, -2.5, 'Banana', DATE '2024-02-29', false, TIMESTAMP '2024-02-29 23:59:59', 'a', 2, 2",
            "2, NULL, 0.13, 0.5, NULL, NULL, NULL, NULL, 'b', 2, 3",
            "NULL, 5, 100.00, NULL, 'cherry', DATE '2023-12-31', true, TIMESTAMP '2023-12-31 12:30:00', 'b', 3, 4",
            "3, 0, NULL, 1.5, '', DATE '2024-03-01', false, TIMESTAMP '2024-03-01 00:00:00', NULL, 3, 5",
            "3, 3, -12.50, -0.5, 'a_b%c', DATE '2024-06-30', true, TIMESTAMP '2024-06-30 06:15:30.250', 'c', 4, 6",
            "4, -3, 0.00, 3.25, '  padded  ', DATE '2024-04-30', NULL, TIMESTAMP '2024-04-30 18:00:00', 'c', 5, 7",
            "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'a', 6, 8",
            "5, 7, 99999999.99, -7.5, 'Ünïcödé', DATE '1999-12-31', false, "
            "TIMESTAMP '1999-12-31 23:59:59.999', 'b', 7, 9",
            "6, 2, 1.50, 0.0, 'apple', DATE '2024-01-31', true, TIMESTAMP '2024-01-31 08:00:00', 'a', 7, 10",
            "2, 10, -1.25, 2.5, 'APPLE', DATE '2024-02-01', true, TIMESTAMP '2024-02-01 00:00:01', 'b', 8, 11",
            "7, -10, 3.33, -3.75, 'date', DATE '2024-12-31', false, TIMESTAMP '2024-12-31 23:00:00', NULL, 9, 12",
        ],
    ),
    # A second table to join with: some keys match t's, some don't (4, 5, 6 are t's only, 8
    # and 9 are u's only), NULL keys on both sides, duplicate keys on both sides; `id` is unique.
    "u": (
        "k INTEGER, v INTEGER, d DECIMAL(10,2), s VARCHAR, id INTEGER",
        [
            "1, 100, 1.10, 'x', 101",
            "1, 50, NULL, 'y', 102",
            "2, NULL, 2.20, 'z', 103",
            "NULL, 7, 3.30, 'n', 104",
            "3, 3, -1.00, NULL, 105",
            "8, 80, 8.88, 'q', 106",
            "8, NULL, NULL, NULL, 107",
            "NULL, NULL, NULL, NULL, 108",
            "9, -9, -0.50, 'apple', 109",
            "7, 70, 7.00, 'date', 110",
        ],
    ),
    # Decimals of scales 0, 2 and 4 (and a wide one), with halves at every scale.
    "w": (
        "id INTEGER, d0 DECIMAL(10,0), d2 DECIMAL(12,2), d4 DECIMAL(18,4), d10 DECIMAL(38,10), x DOUBLE",
        [
            "1, 2, 2.25, 0.1250, 2.2500000000, 2.25",
            "2, -3, -0.05, -0.0500, -0.0500000000, -0.05",
            "3, 0, 1.50, 2.5000, 0.1234567891, 1.5",
            "4, NULL, NULL, NULL, NULL, NULL",
            "5, 12345, 12345.67, 1.2345, 12345.6789012345, 12345.67",
            "6, -1, -2.50, -2.5000, -2.5000000000, -2.5",
            "7, 7, 0.35, 0.0050, 0.0000000005, 0.35",
            "8, 1, 0.45, -0.1250, -0.0000000005, 0.45",
            "9, 2, 2.25, 0.1250, 2.2500000000, 2.25",
            "10, 999, -999.99, 99.9999, 99999999.9999999999, -999.99",
        ],
    ),
    # Empty, with t's schema.
    "e": (T_COLUMNS, []),
    # Unicode strings, month ends and leap days, timestamps with fractions.
    "n": (
        "id INTEGER, s VARCHAR, dt DATE, ts TIMESTAMP, m INTEGER",
        [
            "1, 'é', DATE '2024-01-31', TIMESTAMP '2024-01-31 23:59:59.500', 1",
            "2, 'Straße', DATE '2024-02-29', TIMESTAMP '2024-02-29 00:00:00', 1",
            "3, '日本語テキスト', DATE '2023-02-28', TIMESTAMP '2023-02-28 12:00:00.123456', -1",
            "4, '🙂 smile', DATE '2024-04-30', TIMESTAMP '2024-04-30 10:10:10', 13",
            "5, 'ÅSA', DATE '2024-12-31', TIMESTAMP '2024-12-31 23:59:59.999999', 0",
            "6, 'naïve café', DATE '2000-02-29', TIMESTAMP '2000-02-29 01:02:03', 12",
            "7, NULL, DATE '1900-02-28', NULL, NULL",
            "8, 'x', DATE '2023-03-31', TIMESTAMP '2023-03-31 00:00:00', -13",
        ],
    ),
    # For grouping sets: a BIGINT key, a category with a NULL of its own (so grouping() is the
    # only way to tell it from a rolled-up NULL), a year, an amount.
    "p": (
        "k BIGINT, c VARCHAR, y INTEGER, amt DECIMAL(10,2), q INTEGER",
        [
            "1, 'x', 2023, 10.50, 1",
            "1, 'x', 2024, 20.25, 2",
            "1, 'y', 2024, -5.00, 3",
            "2, 'x', 2023, 7.75, 4",
            "2, NULL, 2024, 1.00, 5",
            "3, 'y', 2023, NULL, 6",
            "3, 'y', 2023, 0.05, 7",
            "-1, 'z', 2024, 100.00, 8",
        ],
    ),
    # Extremes: int32 and int64 near their limits (sums overflow the column's type).
    "h": (
        "id INTEGER, i INTEGER, big BIGINT",
        [
            "1, 2147483647, 9000000000000000000",
            "2, 2147483647, 9000000000000000000",
            "3, -2147483648, -5",
            "4, 1, 1",
        ],
    ),
    # One row, for expressions over constants.
    "one": ("id INTEGER", ["1"]),
}


def build(out: Path) -> dict[str, Path]:
    """Writes every table as `out/NAME.parquet`; returns the paths by name."""
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET threads = 1")
    paths: dict[str, Path] = {}
    for name, (columns, rows) in TABLES.items():
        con.execute(f"CREATE TABLE {name} ({columns})")
        if rows:
            con.execute(f"INSERT INTO {name} VALUES " + ", ".join(f"({r})" for r in rows))
        path = out / f"{name}.parquet"
        con.execute(f"COPY {name} TO '{path}' (FORMAT parquet)")
        paths[name] = path
    con.close()
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for name, path in build(Path(sys.argv[1])).items():
        print(name, path)
