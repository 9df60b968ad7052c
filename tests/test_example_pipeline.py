"""The example pipeline's results against an independent computation (DuckDB) on the same data."""

from pathlib import Path

from runner_helpers import expected_user_daily, generate, parquet_rows, run_job


def test_user_daily_matches_duckdb(tmp_path: Path) -> None:
    generate(tmp_path, days=1, events=30_000)
    summary = run_job(tmp_path, "2024-01-01")
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["clean"]["rows_quarantined"] > 0, "the generator's malformed rows are set aside"

    con = expected_user_daily(tmp_path, "2024-01-01")
    out = tmp_path / "user_daily" / "day=2024-01-01"
    con.execute(f"CREATE TABLE got AS SELECT * FROM read_parquet('{out}/*.parquet')")
    n_expected, n_got = (con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("expected", "got"))
    assert n_got == n_expected
    mismatches = con.execute(
        """
        SELECT COUNT(*) FROM expected e FULL OUTER JOIN got g USING (user_id)
        WHERE g.user_id IS NULL OR e.user_id IS NULL
           OR e.events <> g.events OR e.purchases <> g.purchases
           OR abs(e.revenue - g.revenue) > 1e-6
           OR e.first_seen <> g.first_seen OR e.last_seen <> g.last_seen
        """
    ).fetchone()[0]
    assert mismatches == 0
    # Every clean row reaches the shuffle, and the reduce sees every shuffled row.
    assert parquet_rows(tmp_path / "clean") == steps["clean"]["outputs"]["clean"]["rows"]
    assert steps["user_daily"]["rows_in"] == steps["shuffle"]["outputs"]["by_user"]["rows"]
    total_events = con.execute("SELECT SUM(events) FROM expected").fetchone()[0]
    assert steps["clean"]["outputs"]["clean"]["rows"] == total_events


def test_hive_layout_and_quarantine(tmp_path: Path) -> None:
    generate(tmp_path, days=2, events=5_000)
    run_job(tmp_path, "2024-01-01", "2024-01-02")
    days = sorted(p.name for p in (tmp_path / "clean").iterdir() if p.is_dir() and not p.name.startswith("_"))
    assert days == ["day=2024-01-01", "day=2024-01-02"]
    buckets = sorted(p.name for p in (tmp_path / "by_user" / "day=2024-01-02").iterdir())
    assert buckets == sorted(f"user_bucket={i}" for i in range(16))
    quarantined = list((tmp_path / "clean" / "_quarantine").rglob("*.parquet"))
    assert {q.parent.name for q in quarantined} == {"web", "app"}
