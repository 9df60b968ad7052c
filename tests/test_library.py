"""dagster-spotlake as people install it: the wheel `make wheel` builds goes into a fresh
virtualenv beside a new Dagster project (not this repository), whose code location uses the
component and the decorator; it loads, lists the component for `dg`, loads again from prepared
descriptions with no runner binary anywhere, and materializes a partition of each with the
runner. Outputs are checked against the inputs, counted here independently."""

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
from runner_helpers import RUNNER, generate

REPO = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).parent / "uv"
EXAMPLE = REPO / "runner" / "examples" / "events" / "job.toml"
DAY = "2024-01-07"
# The versions this repository tests with, so the fresh install resolves from uv's cache.
PINS = ["dagster==1.13.27", "dagster-aws==0.29.27", "dagster-pipes==1.13.27"]

COPY_JOB = """
name = "signups"

[[step]]
name = "load"
split = "file"

[step.inputs.raw]
path = "signups/{partition_key}/*.csv"
asset = "signup_files"
format = "csv"
columns = [{ name = "email", dtype = "str", required = true }, ["plan", "str"]]

[step.outputs.signups]
path = "signups_by_plan"
asset = "signups_by_plan"
sql = "SELECT plan, count(*) AS signups FROM raw GROUP BY plan"
"""

DEFINITIONS = '''
"""A user's code location: the events job as a component, the signups job by the decorator."""

from pathlib import Path

import dagster as dg
from dagster.components import load_defs
from dagster_spotlake import RunnerPipesClient, runner_assets

import my_lake.defs

daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")


@runner_assets(job="jobs/signups.toml", partitions_def=daily, group_name="signups")
def signups(context: dg.AssetExecutionContext, runner: RunnerPipesClient):
    return runner.run(context=context).get_results()


defs = dg.Definitions.merge(
    load_defs(my_lake.defs, project_root=Path(__file__).parent.parent),
    dg.Definitions(assets=[signups], resources={"runner": RunnerPipesClient()}),
)
'''

COMPONENT = """
type: dagster_spotlake.RunnerJobComponent
attributes:
  job: job.toml
  key_prefix: lake
  group_name: events
  include_sources: true
  partitions: {type: daily, start_date: "2024-01-01", timezone: "UTC"}
  backfill: {type: multi_run, max_partitions_per_run: 2}
  pool: spot_fleets
  op_tags: {team: data}
"""


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The built wheel in a fresh virtualenv, and a new Dagster project beside it."""
    base = tmp_path_factory.mktemp("fresh")
    dist = base / "dist"
    subprocess.run(
        [str(UV), "build", "--quiet", "--wheel", str(REPO / "dagster-spotlake"), "--out-dir", str(dist)], check=True
    )
    (wheel,) = dist.glob("dagster_spotlake-*.whl")
    venv = base / "venv"
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(UV), "pip", "install", "--quiet", "--python", str(python), str(wheel), *PINS], check=True)
    project = base / "project"
    package = project / "my_lake"
    (package / "jobs").mkdir(parents=True)
    (package / "defs" / "events").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "defs" / "__init__.py").write_text("")
    (package / "definitions.py").write_text(DEFINITIONS)
    (package / "jobs" / "signups.toml").write_text(COPY_JOB)
    shutil.copy(EXAMPLE, package / "defs" / "events" / "job.toml")
    (package / "defs" / "events" / "defs.yaml").write_text(COMPONENT)
    lake = base / "lake"
    generate(lake, DAY)
    plans = {}
    for part in range(2):
        rows = [(f"user{part}{i}@example.com", ["free", "pro", "team"][(i * (part + 2)) % 3]) for i in range(50 + part)]
        folder = lake / "signups" / DAY
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"part-{part}.csv").open("w", newline="") as f:
            csv.writer(f).writerows([("email", "plan"), *rows])
        for _, plan in rows:
            plans[plan] = plans.get(plan, 0) + 1
    return {"python": python, "venv": venv, "project": project, "lake": lake, "plans": plans, "base": base}


def in_fresh(fresh: dict, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Runs a command of the fresh virtualenv in the new project, with none of this repository's
    Python on the path."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "SPOTLAKE_", "PYTHON", "VIRTUAL_ENV"))
    }
    clean["PATH"] = f"{fresh['venv'] / 'bin'}:/usr/bin:/bin"
    clean["DAGSTER_HOME"] = str(fresh["base"] / "dagster_home")
    Path(clean["DAGSTER_HOME"]).mkdir(exist_ok=True)
    return subprocess.run(
        list(args), cwd=fresh["project"], env={**clean, **(env or {})}, capture_output=True, text=True, timeout=900
    )


def test_the_wheel_installs_apart_from_the_repository(fresh: dict) -> None:
    where = in_fresh(fresh, str(fresh["python"]), "-c", "import dagster_spotlake; print(dagster_spotlake.__file__)")
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(fresh["venv"])), "imported from the wheel, not the repository"
    # `dg list components` finds components through this entry point group.
    listed = in_fresh(
        fresh,
        str(fresh["python"]),
        "-c",
        "from dagster.components.core.package_entry import discover_entry_point_package_objects as d;"
        "print(sorted(k.to_typename() for k in d()))",
    )
    assert listed.returncode == 0, listed.stderr
    assert "dagster_spotlake.RunnerJobComponent" in listed.stdout, listed.stdout


def test_a_new_project_loads_and_materializes_with_the_component_and_the_decorator(fresh: dict) -> None:
    runner = {"SPOTLAKE_RUNNER_BIN": str(RUNNER), "SPOTLAKE_ROOT": str(fresh["lake"]), "SPOTLAKE_WORKERS": "2"}
    listed = in_fresh(fresh, "dagster", "asset", "list", "-m", "my_lake.definitions", env=runner)
    assert listed.returncode == 0, listed.stderr
    # The materializable assets (the component's source `raw_events` is declared, not listed).
    assert set(listed.stdout.split()) == {
        "lake/clean_events",
        "lake/events_by_user",
        "lake/user_daily_metrics",
        "signups_by_plan",
    }, listed.stdout
    for selection in ("signups_by_plan", "lake/clean_events,lake/events_by_user,lake/user_daily_metrics"):
        done = in_fresh(
            fresh,
            "dagster",
            "asset",
            "materialize",
            "-m",
            "my_lake.definitions",
            "--select",
            selection,
            "--partition",
            DAY,
            env=runner,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        assert "RUN_SUCCESS" in done.stderr, done.stderr[-4000:]
    lake = fresh["lake"]
    got = dict(
        duckdb.sql(
            f"SELECT plan, sum(signups) FROM read_parquet('{lake}/signups_by_plan/**/*.parquet') GROUP BY plan"
        ).fetchall()
    )
    assert got == fresh["plans"]
    # The events job's reduce: one row per user of the day's clean events, as DuckDB counts them.
    users = duckdb.sql(
        f"SELECT count(DISTINCT user_id) FROM read_parquet('{lake}/clean/day=*/**/*.parquet')"
    ).fetchall()
    metrics = duckdb.sql(f"SELECT count(*) FROM read_parquet('{lake}/user_daily/**/*.parquet')").fetchall()
    assert metrics == users and users[0][0] > 100


def test_with_prepared_descriptions_the_code_location_loads_without_a_runner(fresh: dict) -> None:
    package = fresh["project"] / "my_lake"
    specs = [package / "jobs" / "signups.toml", package / "defs" / "events" / "job.toml"]
    for spec in specs:
        out = spec.with_suffix(".describe.json")
        subprocess.run([str(RUNNER), "describe", str(spec), "--out", str(out)], check=True)
        assert json.loads(out.read_text())["spec_sha256"]
    try:
        # No SPOTLAKE_RUNNER_BIN, and no runner on PATH.
        listed = in_fresh(fresh, "dagster", "asset", "list", "-m", "my_lake.definitions")
        assert listed.returncode == 0, listed.stderr
        assert "signups_by_plan" in listed.stdout.split()
        # A spec changed since its description was prepared: the description is not used, and
        # with no runner to describe it again, loading fails naming both.
        spec = specs[0]
        spec.write_text(spec.read_text() + "\n# changed\n")
        stale = in_fresh(fresh, "dagster", "asset", "list", "-m", "my_lake.definitions")
        assert stale.returncode != 0
        assert "signups.describe.json was made from another version of signups.toml" in stale.stderr, stale.stderr
        assert "no runner executable 'runner' (from PATH)" in stale.stderr, stale.stderr
    finally:
        for spec in specs:
            spec.with_suffix(".describe.json").unlink(missing_ok=True)
        specs[0].write_text(COPY_JOB)


PIPES_MAIN = """
use std::process::ExitCode;

use dagster_pipes::AssetMaterialization;

fn main() -> ExitCode {
    dagster_pipes::run(|ctx| -> Result<(), dagster_pipes::PipesError> {
        let day = ctx.partition_key()?.to_string();
        ctx.report_asset_materialization(AssetMaterialization::new().with("day_seen", day))
    })
}
"""


def test_pipes_rs_builds_from_another_cargo_project_and_reports_to_dagster(tmp_path: Path) -> None:
    from dagster import AssetExecutionContext, DailyPartitionsDefinition, PipesSubprocessClient, asset, materialize

    project = tmp_path / "my_step"
    (project / "src").mkdir(parents=True)
    # The line pipes-rs/README.md tells users to add (the path form; the git form is the same
    # crate from the repository's URL).
    (project / "Cargo.toml").write_text(
        textwrap.dedent(
            f"""\
            [package]
            name = "my_step"
            version = "0.1.0"
            edition = "2024"

            [dependencies]
            pipes-rs = {{ path = "{REPO / "pipes-rs"}", default-features = false }}
            """
        )
    )
    (project / "src" / "main.rs").write_text(PIPES_MAIN)
    shutil.copy(REPO / "Cargo.lock", project / "Cargo.lock")
    built = subprocess.run(
        ["cargo", "build", "--quiet", "--offline"],
        cwd=project,
        env={**os.environ, "CARGO_TARGET_DIR": str(tmp_path / "target")},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr
    binary = tmp_path / "target" / "debug" / "my_step"

    @asset(partitions_def=DailyPartitionsDefinition(start_date="2024-01-01"))
    def rust_step(context: AssetExecutionContext, pipes: PipesSubprocessClient):  # type: ignore[no-untyped-def]
        return pipes.run(context=context, command=[str(binary)]).get_materialize_result()

    result = materialize([rust_step], resources={"pipes": PipesSubprocessClient()}, partition_key=DAY)
    assert result.success
    (m,) = [e.materialization for e in result.get_asset_materialization_events()]
    assert m.metadata["day_seen"].value == DAY
