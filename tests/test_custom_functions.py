"""A user's own functions on every path: the example crate `examples/clickstream` (its binary,
`clickstream-runner`, brings `ua_family`, `url_host`, `haversine_km` and `sessionize`) runs its
job locally, through Dagster and on the aws backend (moto, with the boot stand-ins), and each
output equals an independent computation: the functions written again here in Python from their
documented rules, and the job's aggregates by DuckDB."""

import csv
import math
import os
import random
import shutil
import subprocess
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import boto3
import duckdb
from dagster import DailyPartitionsDefinition, instance_for_test, materialize
from dagster.components.testing import create_defs_folder_sandbox
from dagster_spotlake import runner_assets
from dagster_spotlake.pipes import RunnerPipesClient
from fleet_standin import FleetStandIn, aws_runner_config
from runner_helpers import ROOT, RUNNER

CLICKSTREAM = RUNNER.parent / "clickstream-runner"
JOB = ROOT / "examples" / "clickstream" / "job.toml"
DAY = "2024-03-01"
BERLIN = (52.52, 13.405)

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
AGENTS = [
    CHROME,
    CHROME + " Edg/120.0",
    CHROME + " OPR/105.0",
    "Mozilla/5.0 (X11; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.0",
    "",
]
URLS = [
    "https://www.Shop.com/a",
    "http://shop.com:8080/b?x=1",
    "https://news.org/x#top",
    "news.org/y",
    "https://user@mail.example.net/inbox",
    "https:///broken",
    "",
]


# The functions again, from their documented rules (not from the Rust code).
def ua_family(agent: str | None) -> str | None:
    if not agent:
        return None
    if any(w in agent.lower() for w in ("bot", "crawler", "spider")):
        return "bot"
    for marker, family in (("Edg/", "Edge"), ("OPR/", "Opera"), ("Chrome/", "Chrome"), ("Firefox/", "Firefox")):
        if marker in agent:
            return family
    return "Safari" if "Safari/" in agent else "Other"


def url_host(url: str | None) -> str | None:
    if not url:
        return None
    rest = url.split("://", 1)[1] if "://" in url else url
    for stop in "/?#":
        rest = rest.split(stop, 1)[0]
    host = rest.rsplit("@", 1)[-1].split(":", 1)[0].lower()
    host = host[4:] if host.startswith("www.") else host
    return host or None


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


def make_hits(n: int = 4000, seed: int = 11) -> list[dict]:
    rng = random.Random(seed)
    start = datetime.fromisoformat(DAY)
    hits = []
    for _ in range(n):
        near = rng.random() < 0.85
        hits.append(
            {
                "user_id": f"u{rng.randrange(150):03d}",
                "ts": start + timedelta(seconds=rng.randrange(86_400)),
                "url": rng.choice(URLS),
                "agent": rng.choice(AGENTS),
                "lat": round(rng.uniform(35, 60), 4) if near else 40.7128,
                "lon": round(rng.uniform(-10, 30), 4) if near else -74.006,
            }
        )
    return hits


def write_hits(directory: Path, hits: list[dict]) -> None:
    """Two files, so the item reads several."""
    directory.mkdir(parents=True, exist_ok=True)
    for part, rows in enumerate([hits[::2], hits[1::2]]):
        with (directory / f"hits-{part}.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["user_id", "ts", "url", "agent", "lat", "lon"])
            for h in rows:
                w.writerow(
                    [h["user_id"], h["ts"].strftime("%Y-%m-%d %H:%M:%S"), h["url"], h["agent"], h["lat"], h["lon"]]
                )


def expected(hits: list[dict]) -> duckdb.DuckDBPyConnection:
    """The job's three outputs, computed without the runner."""
    rows = []
    by_user: dict[str, list[dict]] = {}
    for h in hits:
        by_user.setdefault(h["user_id"], []).append(h)
    for user, visits in by_user.items():
        session, last = 0, None
        for h in sorted(visits, key=lambda h: h["ts"]):
            session = 1 if last is None else session + (h["ts"] - last > timedelta(minutes=30))
            last = h["ts"]
            rows.append(
                (
                    user,
                    session,
                    h["ts"],
                    url_host(h["url"]),
                    ua_family(h["agent"]),
                    haversine_km(h["lat"], h["lon"], *BERLIN),
                    h["url"] or None,
                    h["agent"] or None,
                )
            )
    db = duckdb.connect()
    db.execute(
        "CREATE TABLE e (user_id VARCHAR, session BIGINT, ts TIMESTAMP, host VARCHAR, browser VARCHAR, "
        "km DOUBLE, url VARCHAR, agent VARCHAR)"
    )
    db.executemany("INSERT INTO e VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.execute("CREATE VIEW hits AS SELECT user_id, session, ts, host, browser, km AS km_from_berlin FROM e")
    db.execute(
        """CREATE VIEW sessions AS
        SELECT user_id, session, min(browser) AS browser, count(*) AS hits, count(DISTINCT host) AS hosts FROM e
        WHERE user_id IN (SELECT user_id FROM e WHERE km < 1000) GROUP BY user_id, session"""
    )
    db.execute(
        """CREATE VIEW counts AS
        SELECT 'browser' AS kind, browser AS name, count(*) AS hits FROM e GROUP BY browser
        UNION ALL SELECT 'host', host, count(*) FROM e GROUP BY host"""
    )
    return db


def table(db: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    """Rows in a canonical order (floats rounded only for ordering)."""
    rows = db.execute(sql).fetchall()
    return sorted(rows, key=lambda row: repr(tuple(round(v, 6) if isinstance(v, float) else v for v in row)))


def assert_same(got: list[tuple], want: list[tuple]) -> None:
    """Equal rows; floats to 1e-12 relative (the two sides compute the same formula, but may
    differ in the last digit)."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        same = all(
            math.isclose(a, b, rel_tol=1e-12) if isinstance(a, float) and isinstance(b, float) else a == b
            for a, b in zip(g, w, strict=True)
        )
        assert same, (g, w)


def assert_outputs_match(outputs: Path, hits: list[dict]) -> None:
    want = expected(hits)
    got = duckdb.connect()
    for name in ("hits", "sessions", "counts"):
        files = sorted(str(p) for p in (outputs / name).rglob("*.parquet"))
        assert files, f"output {name} was written"
        got.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({files})")
    hits_sql = "SELECT user_id, session, ts, host, browser, km_from_berlin FROM hits"
    assert_same(table(got, hits_sql), table(want, hits_sql))
    sessions_sql = "SELECT user_id, session, browser, hits, hosts FROM sessions"
    got_sessions = table(got, sessions_sql)
    assert_same(got_sessions, table(want, sessions_sql))
    assert len(got_sessions) > 150, "sessions of most users"
    counts_sql = "SELECT kind, name, hits FROM counts"
    assert_same(table(got, counts_sql), table(want, counts_sql))


def run(
    binary: Path, root: Path | str, *extra: str, job: Path = JOB, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES_")}
    args = [str(binary), "run", str(job), "--root", str(root), "--partition", DAY, *extra]
    return subprocess.run(args, capture_output=True, text=True, env={**base, **(env or {})}, timeout=600)


def test_the_example_binary_runs_its_functions_and_matches_an_independent_computation(tmp_path: Path) -> None:
    hits = make_hits()
    write_hits(tmp_path / "raw" / DAY, hits)
    done = run(CLICKSTREAM, tmp_path)
    assert done.returncode == 0, done.stderr
    assert_outputs_match(tmp_path, hits)


def test_the_plain_runner_refuses_the_job_naming_what_it_lacks() -> None:
    for command in ("validate", "describe"):
        plain = subprocess.run([str(RUNNER), command, str(JOB)], capture_output=True, text=True)
        assert plain.returncode != 0
        assert (
            'no operation "sessionize": the built-in ones are parse_json, unnest, explode, flatten, '
            "and this binary's own are none" in plain.stderr
        ), plain.stderr
    ok = subprocess.run([str(CLICKSTREAM), "validate", str(JOB)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "clickstream: 1 step(s), valid" in ok.stdout


def test_the_users_binary_has_every_command_of_the_runner() -> None:
    helps = {}
    for binary in (RUNNER, CLICKSTREAM):
        done = subprocess.run([str(binary), "--help"], capture_output=True, text=True, check=True)
        helps[binary.name] = [
            line.split()[0]
            for line in done.stdout.split("Commands:")[1].split("Options:")[0].splitlines()
            if line.strip()
        ]
    assert helps["clickstream-runner"] == helps["runner"]
    assert {"run", "worker", "fleet", "dist", "validate", "describe"} <= set(helps["runner"])
    # `dist check`, as `make dist` runs it on the user's binary (here the debug build).
    checked = subprocess.run(
        [str(CLICKSTREAM), "dist", "check", str(CLICKSTREAM), "--max-glibc", "9.99"], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    assert "newest glibc needed 2." in checked.stdout, checked.stdout


def test_a_function_given_the_wrong_arguments_fails_at_once_and_publishes_nothing(tmp_path: Path) -> None:
    write_hits(tmp_path / "raw" / DAY, make_hits(200))
    job = tmp_path / "job.toml"
    job.write_text(JOB.read_text().replace("url_host(url) AS host, ua_family", "url_host(lat) AS host, ua_family"))
    failed = run(CLICKSTREAM, tmp_path, job=job)
    assert failed.returncode != 0
    assert "function url_host takes one text argument; it was given lat (f64)" in failed.stderr, failed.stderr
    assert "not retried" in failed.stderr, failed.stderr
    assert not any((tmp_path / name).exists() for name in ("hits", "sessions", "counts")), "nothing is published"


def clickstream_assets():
    @runner_assets(
        job=JOB,
        runner_bin=str(CLICKSTREAM),
        partitions_def=DailyPartitionsDefinition(start_date=DAY, end_date="2024-03-08"),
    )
    def clickstream(context, runner: RunnerPipesClient):  # type: ignore[no-untyped-def]
        yield from runner.run(context=context).stream()

    return clickstream


def test_through_dagster_with_the_users_binary(tmp_path: Path) -> None:
    hits = make_hits()
    write_hits(tmp_path / "raw" / DAY, hits)
    assets = clickstream_assets()
    keys = {s.key.to_user_string() for s in assets.specs}
    assert keys == {"sessionized_hits", "sessions", "hit_counts"}
    client = RunnerPipesClient(runner_bin=str(CLICKSTREAM), root=str(tmp_path), env={"SPOTLAKE_WORKERS": "2"})
    with instance_for_test() as instance:
        result = materialize([assets], resources={"runner": client}, instance=instance, partition_key=DAY)
        assert result.success
        rows = {
            e.materialization.asset_key.to_user_string(): e.materialization.metadata["dagster/row_count"].value
            for e in result.get_asset_materialization_events()
        }
    assert rows["sessionized_hits"] == len(hits)
    assert_outputs_match(tmp_path, hits)


def test_the_component_runs_the_users_binary(tmp_path: Path) -> None:
    hits = make_hits(1000)
    write_hits(tmp_path / "raw" / DAY, hits)
    with create_defs_folder_sandbox() as sandbox:
        folder = sandbox.defs_folder_path / "clicks"
        folder.mkdir(parents=True)
        shutil.copy(JOB, folder / "job.toml")
        (folder / "defs.yaml").write_text(
            textwrap.dedent(
                f"""\
                type: dagster_spotlake.RunnerJobComponent
                attributes:
                  job: job.toml
                  runner_bin: {CLICKSTREAM}
                  root: {tmp_path}
                  partitions:
                    type: daily
                    start_date: "{DAY}"
                """
            )
        )
        with sandbox.build_all_defs() as defs, instance_for_test() as instance:
            keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
            assert keys == {"raw_hits", "sessionized_hits", "sessions", "hit_counts"}
            result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
                instance=instance, partition_key=DAY
            )
            assert result.success
    assert_outputs_match(tmp_path, hits)


def run_on_aws(
    tmp_path: Path, bucket: str, workers: Path, hits: list[dict]
) -> tuple[subprocess.CompletedProcess, bool]:
    """Runs the job with `clickstream-runner` on the aws backend (moto, boot stand-ins) whose
    workers run `workers`; returns the run and whether a fleet booted. Nothing may be left."""
    config = aws_runner_config(tmp_path, bucket, runner=workers)
    raw = tmp_path / "upload" / "raw" / DAY
    write_hits(raw, hits)
    for f in sorted(raw.iterdir()):
        config["s3"].upload_file(str(f), bucket, f"data/raw/{DAY}/{f.name}")
    with FleetStandIn(tmp_path, config["env"]) as fleet:
        done = run(CLICKSTREAM, f"s3://{bucket}/data", "--backend", "aws", env=config["env"])
        assert fleet.running_instances() == 0 and fleet.live_fleets() == 0
        return done, fleet.booted


def test_on_the_aws_backend_the_fleet_runs_the_users_binary(aws_env, tmp_path: Path) -> None:
    hits = make_hits(1500)
    done, booted = run_on_aws(tmp_path, "clicks", CLICKSTREAM, hits)
    assert done.returncode == 0, done.stderr
    assert booted, "the step ran on the fleet"
    outputs = tmp_path / "outputs"
    s3 = boto3.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="clicks", Prefix="data/"):
        for o in page.get("Contents", []):
            if o["Key"].endswith(".parquet") and not o["Key"].startswith("data/raw/"):
                target = outputs / o["Key"].removeprefix("data/")
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file("clicks", o["Key"], str(target))
    assert_outputs_match(outputs, hits)


def test_a_fleet_launched_with_another_binary_fails_at_once_naming_what_it_lacks(aws_env, tmp_path: Path) -> None:
    # The orchestrator is the user's binary (it validates the job); the workers run the plain runner.
    done, _ = run_on_aws(tmp_path, "wrongbin", RUNNER, make_hits(100))
    assert done.returncode != 0
    assert (
        'no operation "sessionize": the built-in ones are parse_json, unnest, explode, flatten, '
        "and this binary's own are none" in done.stderr
    ), done.stderr
    assert "all failed after 1 attempt(s)" in done.stderr, done.stderr
