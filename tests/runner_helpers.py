"""Helpers for tests that drive the runner binary and check its outputs independently."""

import json
import os
import subprocess
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "runner"
JOB = ROOT / "runner" / "examples" / "events" / "job.toml"


def generate(root: Path, start: str = "2024-01-01", days: int = 1, events: int = 20_000, seed: int = 7) -> None:
    subprocess.run(
        [
            str(RUNNER),
            "example",
            "generate",
            "--out",
            str(root),
            "--start",
            start,
            "--days",
            str(days),
            "--events-per-day",
            str(events),
            "--seed",
            str(seed),
        ],
        check=True,
        capture_output=True,
    )


def run_job(root: Path, *partitions: str, extra: tuple[str, ...] = (), env: dict[str, str] | None = None) -> dict:
    summary = root / "summary.json"
    args = [str(RUNNER), "run", str(JOB), "--root", str(root), "--summary-json", str(summary), *extra]
    for p in partitions:
        args += ["--partition", p]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES_")} | (env or {})
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(summary.read_text())


def parquet_rows(directory: Path) -> int:
    files = [
        p
        for p in directory.rglob("*.parquet")
        if not any(part.startswith(("_", ".")) for part in p.relative_to(directory).parts)
    ]
    if not files:
        return 0
    con = duckdb.connect()
    return con.execute("SELECT COUNT(*) FROM read_parquet(?)", [[str(f) for f in files]]).fetchone()[0]


def expected_user_daily(root: Path, day: str) -> duckdb.DuckDBPyConnection:
    """Per-user daily metrics computed by DuckDB straight from the raw files, with DuckDB's own
    rules for rejecting malformed rows."""
    con = duckdb.connect()
    raw = root / "raw" / day
    con.execute(
        f"""
        CREATE TABLE web AS SELECT * FROM read_csv('{raw}/web-*.csv.gz', header=false, ignore_errors=true,
            null_padding=false, strict_mode=true,
            columns={{'event_id': 'VARCHAR', 'user_id': 'VARCHAR', 'ts': 'TIMESTAMP', 'event_type': 'VARCHAR',
                      'amount': 'DOUBLE', 'country': 'VARCHAR', 'device': 'VARCHAR'}})
        WHERE event_id IS NOT NULL AND user_id IS NOT NULL AND ts IS NOT NULL
        """
    )
    con.execute(
        f"""
        CREATE TABLE app AS SELECT id AS event_id, "user".id AS user_id, strptime(ts, '%Y-%m-%dT%H:%M:%S') AS ts,
            event AS event_type, amount
        FROM read_json('{raw}/app.ndjson.gz', format='newline_delimited', ignore_errors=true,
            columns={{'id': 'VARCHAR', 'user': 'STRUCT(id VARCHAR, country VARCHAR)', 'event': 'VARCHAR',
                      'ts': 'VARCHAR', 'amount': 'DOUBLE', 'tags': 'VARCHAR[]', 'context': 'VARCHAR'}})
        WHERE id IS NOT NULL
        """
    )
    con.execute(
        """
        CREATE TABLE expected AS
        SELECT user_id, COUNT(*) AS events,
               SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases,
               COALESCE(SUM(amount), 0.0) AS revenue, MIN(ts) AS first_seen, MAX(ts) AS last_seen
        FROM (SELECT event_id, user_id, ts, event_type, amount FROM web
              UNION ALL SELECT event_id, user_id, ts, event_type, amount FROM app)
        GROUP BY user_id
        """
    )
    return con
