"""The code location end to end with the real Dagster orchestrator: one partition, a backfill
as separate runs and as one ranged run, a failing job, the aws backend against moto, and a runner that
forgets `closed`."""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    asset,
    instance_for_test,
    materialize,
)
from dagster_aws.pipes import PipesS3ContextInjector
from dagster_spotlake.pipes import DrainingS3MessageReader, RunnerPipesClient
from fleet_standin import FleetStandIn, aws_runner_config
from runner_helpers import RUNNER, expected_user_daily, parquet_rows
from spotlake_example import settings
from spotlake_example.assets.events import events_pipeline, raw_events

ASSETS = [raw_events, events_pipeline]


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


def local_client(root: Path, **env: str) -> RunnerPipesClient:
    return RunnerPipesClient(runner_bin=str(RUNNER), root=str(root), env={"SPOTLAKE_WORKERS": "2", **env})


def priced_client(root: Path, **env: str) -> RunnerPipesClient:
    """A local client whose cores cost $0.50 an hour, and $2.00 on EMR."""
    config = root / "priced.toml"
    config.write_text("[pricing]\nlocal_core_hour_usd = 0.5\nlocal_emr_core_hour_usd = 2.0\n")
    return local_client(root, SPOTLAKE_CONFIG=str(config), **env)


def materializations(result, key: str) -> list:
    return [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == AssetKey(key)
    ]


def materializations_all(result) -> list:
    return [e.materialization for e in result.get_asset_materialization_events()]


def user_logs(instance: DagsterInstance, run_id: str) -> list[str]:
    return [e.user_message for e in instance.all_logs(run_id) if e.dagster_event is None]


def test_one_partition_locally(tmp_path: Path, instance: DagsterInstance) -> None:
    client = priced_client(tmp_path)
    result = materialize(ASSETS, resources={"runner": client}, instance=instance, partition_key="2024-01-02")
    assert result.success
    (clean,) = materializations(result, "clean_events")
    assert clean.partition == "2024-01-02"
    rows = clean.metadata["dagster/row_count"].value
    assert rows == parquet_rows(tmp_path / "clean" / "day=2024-01-02")
    columns = [c.name for c in clean.metadata["dagster/column_schema"].schema.columns]
    assert columns[:3] == ["event_id", "user_id", "ts"] and "day" in columns
    assert clean.metadata["step_rows_quarantined"].value > 0
    # The bill: the local workers' core-hours at the configured prices.
    cost = clean.metadata["cost_usd"].value
    assert cost > 0 and clean.metadata["instance_hours"].value > 0
    assert clean.metadata["saving_ratio"].value == pytest.approx(1 - 0.5 / 2.0)
    assert clean.metadata["emr_equivalent_usd"].value == pytest.approx(cost * 4)
    assert clean.metadata["cost_per_million_rows"].value == pytest.approx(cost / (rows / 1e6))
    lines = clean.metadata["instances"].records
    assert lines and all(line.data["market"] == "local" for line in lines), lines
    assert sum(line.data["cost_usd"] for line in lines) == pytest.approx(cost)
    (metrics,) = materializations(result, "user_daily_metrics")
    con = expected_user_daily(tmp_path, "2024-01-02")
    assert metrics.metadata["dagster/row_count"].value == con.execute("SELECT COUNT(*) FROM expected").fetchone()[0]
    checks = {(c.asset_key.to_user_string(), c.check_name): c for c in result.get_asset_check_evaluations()}
    assert set(checks) == {
        ("clean_events", "user_id_present"),
        ("user_daily_metrics", "one_row_per_user"),
        ("user_daily_metrics", "has_users"),
    }
    assert all(c.passed for c in checks.values())
    assert checks[("user_daily_metrics", "has_users")].severity.value == "WARN"
    logs = user_logs(instance, result.run_id)
    assert any("step 2/3 shuffle" in line for line in logs), logs
    assert any("step 3/3: 16/16 items" in line for line in logs), logs
    # A rerun finds every item committed: it starts no worker and costs nothing.
    again = materialize(ASSETS, resources={"runner": client}, instance=instance, partition_key="2024-01-02")
    assert again.success
    (rerun,) = materializations(again, "clean_events")
    assert rerun.metadata["step_items_already_committed"].value == rerun.metadata["step_items"].value
    assert rerun.metadata["cost_usd"].value == 0 and rerun.metadata["instance_hours"].value == 0
    # The data version is what was committed: unchanged by the no-op rerun, changed by new data.
    version = {m.asset_key.to_user_string(): m.tags["dagster/data_version"] for m in materializations_all(result)}
    again_version = {m.asset_key.to_user_string(): m.tags["dagster/data_version"] for m in materializations_all(again)}
    assert version == again_version and len(set(version.values())) == 4, version
    regenerate = ["example", "generate", "--out", str(tmp_path), "--start", "2024-01-02", "--days", "1", "--seed", "8"]
    subprocess.run([str(RUNNER), *regenerate], check=True, capture_output=True)
    changed = materialize(
        [events_pipeline], resources={"runner": client}, instance=instance, partition_key="2024-01-02"
    )
    assert changed.success
    new_version = {m.asset_key.to_user_string(): m.tags["dagster/data_version"] for m in materializations_all(changed)}
    assert all(new_version[k] != version[k] for k in new_version), (version, new_version)


def test_the_backend_attribute_wins_over_the_runner_config_and_unset_the_config_decides(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    # A config written for AWS (without [ec2], it could not run there).
    config = tmp_path / "aws.toml"
    config.write_text('backend = "aws"\n')
    env = {"SPOTLAKE_WORKERS": "2", "SPOTLAKE_CONFIG": str(config)}
    explicit = RunnerPipesClient(runner_bin=str(RUNNER), root=str(tmp_path), backend="local", env=env)
    result = materialize(ASSETS, resources={"runner": explicit}, instance=instance, partition_key="2024-01-03")
    assert result.success
    assert any("backend=local" in line for line in user_logs(instance, result.run_id))
    # Unset, the runner's rule decides: its config says aws, so the client wants a Pipes bucket.
    unset = local_client(tmp_path, SPOTLAKE_CONFIG=str(config))
    assert unset.backend is None
    failed = materialize(
        ASSETS, resources={"runner": unset}, instance=instance, partition_key="2024-01-03", raise_on_error=False
    )
    assert not failed.success
    failure = next(e for e in failed.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    error, chain = failure.event_specific_data.error, []
    while error is not None:
        chain.append(error.message)
        error = error.cause
    assert any("the aws backend needs a bucket for the Pipes context and messages" in m for m in chain), chain


def test_the_client_takes_its_context_injector_and_message_reader(
    s3_bucket: str, tmp_path: Path, instance: DagsterInstance
) -> None:
    # Local workers, with the Pipes channel through S3 under prefixes of the user's choosing.
    s3 = boto3.client("s3")
    client = RunnerPipesClient(
        runner_bin=str(RUNNER),
        root=str(tmp_path),
        env={"SPOTLAKE_WORKERS": "2"},
        context_injector=PipesS3ContextInjector(bucket=s3_bucket, client=s3, key_prefix="mine/context"),
        message_reader=DrainingS3MessageReader(bucket=s3_bucket, client=s3, key_prefix="mine/messages", interval=0.2),
    )
    # One reader given, two runs. A reader counts its chunks: had the second run reused the
    # first's, it would wait for chunk numbers its session never writes, and fail as unclosed.
    for day in ["2024-01-09", "2024-01-10"]:
        result = materialize(ASSETS, resources={"runner": client}, instance=instance, partition_key=day)
        assert result.success, day
        recorded = {m.asset_key.to_user_string() for m in materializations_all(result)}
        assert recorded == {"raw_events", "clean_events", "events_by_user", "user_daily_metrics"}, day
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    sessions = {k.split("/")[2] for k in keys if k.startswith("mine/messages/")}
    assert len(sessions) == 2, keys
    assert all(k.startswith("mine/") for k in keys), keys


def test_backfill_as_separate_runs(tmp_path: Path, instance: DagsterInstance) -> None:
    client = local_client(tmp_path)
    days = ["2024-01-03", "2024-01-04", "2024-01-05"]
    for day in days:
        result = materialize(ASSETS, resources={"runner": client}, instance=instance, partition_key=day)
        assert result.success
    for day in days:
        con = expected_user_daily(tmp_path, day)
        out = tmp_path / "user_daily" / f"day={day}"
        assert parquet_rows(out) == con.execute("SELECT COUNT(*) FROM expected").fetchone()[0]
        record = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("user_daily_metrics"), asset_partitions=[day]), limit=1
        ).records[0]
        assert record.asset_materialization.metadata["dagster/row_count"].value == parquet_rows(out)


def test_single_run_range_reports_each_partitions_rows(tmp_path: Path, instance: DagsterInstance) -> None:
    client = priced_client(tmp_path)
    days = ["2024-01-06", "2024-01-07", "2024-01-08"]
    for day in days:
        assert materialize([raw_events], resources={"runner": client}, instance=instance, partition_key=day).success
    tags = {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}
    result = materialize([events_pipeline], resources={"runner": client}, instance=instance, tags=tags)
    assert result.success
    own = {}
    for day in days:
        own[day] = parquet_rows(tmp_path / "user_daily" / f"day={day}")
        latest = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("user_daily_metrics"), asset_partitions=[day]), limit=1
        ).records[0]
        assert latest.asset_materialization.metadata["dagster/row_count"].value == own[day], day
    assert len(set(own.values())) > 1, "the partitions differ, so a shared count could not pass"
    # Per asset and partition: Dagster's copy of the run's materialization (Pipes forces it),
    # then the partition's own, last.
    for key in ["clean_events", "events_by_user", "user_daily_metrics"]:
        mats = materializations(result, key)
        assert sorted(m.partition for m in mats) == sorted(days * 2), (key, [m.partition for m in mats])
        assert all("ranged_run_partitions" in m.metadata for m in mats[len(days) :]), key
    parts = materializations(result, "user_daily_metrics")[len(days) :]
    assert {m.partition: m.metadata["dagster/row_count"].value for m in parts} == own
    assert {m.partition: m.metadata["path"].value for m in parts} == {
        day: str(tmp_path / "user_daily" / f"day={day}") for day in days
    }
    whole = materializations(result, "user_daily_metrics")[0]
    # Every figure the data has per partition is the partition's own: they add up to the run's.
    for figure in ["bytes_out", "files", "step_items", "step_rows_in"]:
        values = [m.metadata[figure].value for m in parts]
        assert all(v > 0 for v in values) and sum(values) == whole.metadata[figure].value, (figure, values)
    clean_parts = materializations(result, "clean_events")[len(days) :]
    clean_whole = materializations(result, "clean_events")[0]
    quarantined = [m.metadata["step_rows_quarantined"].value for m in clean_parts]
    assert sum(quarantined) == clean_whole.metadata["step_rows_quarantined"].value > 0, quarantined
    for m in clean_parts:
        # The hive keys a partition wrote are its own day's alone, and so is its schema's source.
        assert [r.data["hive_key"] for r in m.metadata["rows_by_hive_key"].records] == [f"day={m.partition}"]
        assert m.metadata["dagster/column_schema"] == clean_whole.metadata["dagster/column_schema"]
        assert "rows_by_partition" not in m.metadata, "the run's table of partitions is not a partition's"
    # Each partition carries its share of the range's cost, split by its work.
    assert all(m.metadata["cost_usd"].value > 0 for m in parts)
    assert len({m.metadata["cost_usd"].value for m in parts}) > 1, "shares follow each day's work"
    # Each partition's own check verdicts (measured per day by the runner), then the range's.
    evaluations = result.get_asset_check_evaluations()
    for check in ["user_id_present", "one_row_per_user", "has_users"]:
        mine = [e for e in evaluations if e.check_name == check]
        assert {e.partition for e in mine if e.partition} == set(days), (check, mine)
        assert all(e.passed for e in mine), (check, mine)
        assert mine[-1].partition is None, "the range's own result comes last, as the check's latest"


def test_failing_job_fails_the_step_with_the_runners_error(tmp_path: Path, instance: DagsterInstance) -> None:
    # No raw data for this day: the runner refuses to run, and says why.
    result = materialize(
        [events_pipeline],
        selection=["clean_events"],
        resources={"runner": local_client(tmp_path)},
        instance=instance,
        partition_key="2024-02-10",
        raise_on_error=False,
    )
    assert not result.success
    errors = [
        e.dagster_event.engine_event_data.error
        for e in instance.all_logs(result.run_id)
        if e.dagster_event is not None
        and e.dagster_event.event_type == DagsterEventType.ENGINE_EVENT
        and e.dagster_event.engine_event_data.error is not None
    ]
    assert any("no files match" in (err.message or "") for err in errors), errors


def test_a_runner_that_never_closes_fails_the_step(tmp_path: Path, instance: DagsterInstance) -> None:
    # A real Pipes process (the Python reference) that exits 0 without `closed`.
    script = tmp_path / "no_closed.py"
    script.write_text(
        "from dagster_pipes import open_dagster_pipes\n"
        "pipes = open_dagster_pipes()\n"
        "pipes.log.info('working')\n"
        "import os; os._exit(0)\n"
    )
    wrapper = tmp_path / "fake_runner"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {script}\n")
    wrapper.chmod(0o755)
    client = RunnerPipesClient(runner_bin=str(wrapper), root=str(tmp_path), backend="local")
    result = materialize(
        [events_pipeline],
        selection=["clean_events"],
        resources={"runner": client},
        instance=instance,
        partition_key="2024-01-02",
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    error, chain = failure.event_specific_data.error, []
    while error is not None:
        chain.append(error.message)
        error = error.cause
    assert any("never closed" in m for m in chain), chain


def engine_errors(instance: DagsterInstance, run_id: str) -> list[str]:
    """Each error the runner reported, with its causes, as one line."""
    found = []
    for e in instance.all_logs(run_id):
        if e.dagster_event is None or e.dagster_event.event_type != DagsterEventType.ENGINE_EVENT:
            continue
        error, chain = e.dagster_event.engine_event_data.error, []
        while error is not None:
            chain.append(error.message or "")
            error = error.cause
        if chain:
            found.append(": ".join(chain))
    return found


@pytest.mark.parametrize(
    ("partitions", "named"),
    [
        ([{"key": "2024-01-01", "start": "yesterday", "end": "2024-01-02T00:00:00"}], "is not an ISO-8601 timestamp"),
        ([{"key": "2024-01-01", "start": "2024-01-02T00:00:00", "end": "2024-01-01T00:00:00"}], "ends"),
        ([{"key": "2024-01-01", "start": "2024-01-01T00:00:00"}], "needs both start and end"),
        ([{"key": "../2024-01-01"}], "2024-01-01"),
        ({"key": "2024-01-01"}, "expected a list"),
    ],
)
def test_a_malformed_partition_window_in_extras_fails_naming_it(
    partitions: object, named: str, tmp_path: Path, instance: DagsterInstance
) -> None:
    # What a hand-made client (or a newer Dagster) might send. Falling through to an
    # unpartitioned run would rewrite every day, so the runner must refuse, and say where.
    @asset(name="clean_events")
    def malformed(context: AssetExecutionContext, runner: RunnerPipesClient):
        return runner.run(
            context=context, job=settings.JOB, steps=["clean"], extras={"partitions": partitions}
        ).get_results()

    result = materialize(
        [malformed], resources={"runner": local_client(tmp_path)}, instance=instance, raise_on_error=False
    )
    assert not result.success
    errors = engine_errors(instance, result.run_id)
    assert any("extras `partitions`" in m and named in m for m in errors), errors
    assert not (tmp_path / "clean").exists(), "nothing was written"


# Prices for the bill: a cent a second on spot, so cents mean something (moto's own spot price is
# $0.00001 an hour).
PRICES = """
[pricing]
spot = { "m6i.large" = 36.0 }
on_demand = { "m6i.large" = 72.0 }
emr = { "m6i.large" = 18.0 }
"""


@pytest.fixture
def aws(aws_env, tmp_path: Path) -> Iterator[dict]:
    yield aws_runner_config(tmp_path, "lake", extra=PRICES)


def instance_lives(run_id: str, step: str) -> list[tuple[str, float, float]]:
    """Each instance of a run's step as moto records it: (id, launch, end) in Unix seconds, the
    end read from its state-transition reason ("User initiated (2026-12-01 20:23:45 GMT)")."""
    ec2 = boto3.client("ec2")
    filters = [
        {"Name": "tag:spotlake:run-id", "Values": [run_id]},
        {"Name": "tag:spotlake:step", "Values": [step]},
    ]
    lives = []
    for reservation in ec2.describe_instances(Filters=filters)["Reservations"]:
        for i in reservation["Instances"]:
            stamp = re.search(r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", i["StateTransitionReason"])
            assert stamp, i["StateTransitionReason"]
            end = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
            lives.append((i["InstanceId"], i["LaunchTime"].timestamp(), end))
    return lives


def test_aws_mode_over_s3_sqs_and_a_spot_fleet(aws: dict, tmp_path: Path, instance: DagsterInstance) -> None:
    client = RunnerPipesClient(
        runner_bin=str(RUNNER),
        root="s3://lake/data",
        backend="aws",
        pipes_bucket="lake",
        env=aws["env"],
    )
    with FleetStandIn(tmp_path, aws["env"]) as fleet:
        one = materialize(ASSETS, resources={"runner": client}, instance=instance, partition_key="2024-01-02")
        assert one.success
        for day in ["2024-01-03", "2024-01-04"]:
            assert materialize([raw_events], resources={"runner": client}, instance=instance, partition_key=day).success
        tags = {"dagster/asset_partition_range_start": "2024-01-03", "dagster/asset_partition_range_end": "2024-01-04"}
        ranged = materialize([events_pipeline], resources={"runner": client}, instance=instance, tags=tags)
        assert ranged.success
        assert fleet.booted, "fleets were created on EC2"
        assert fleet.max_running_instances > 0
        assert fleet.running_instances() == 0, "no instance is left running"
        assert fleet.live_fleets() == 0, "every fleet was deleted"
    (metrics,) = materializations(one, "user_daily_metrics")
    assert metrics.metadata["dagster/row_count"].value > 0
    evaluations = one.get_asset_check_evaluations()
    assert len(evaluations) == 3 and all(e.passed for e in evaluations), evaluations
    assert str(metrics.metadata["path"].value).startswith("s3://lake/data/user_daily/day=2024-01-02")
    # The materialization links the workers' logs, which the boot script shipped there.
    logs = str(metrics.metadata["step_worker_logs"].value)
    assert logs.startswith("s3://lake/state/runs/") and logs.endswith("/workers/user_daily"), logs
    prefix = logs.removeprefix("s3://lake/")
    shipped = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket="lake", Prefix=prefix)["Contents"]]
    assert any(k.endswith("/worker.log") for k in shipped), shipped
    assert metrics.metadata["step_peak_items_per_worker"].value >= 1
    # The bill from the instances moto launched: spot at moto's price history, the EMR
    # equivalent from the shipped table (moto has no Price List).
    lines = metrics.metadata["instances"].records
    assert {(line.data["instance_type"], line.data["market"]) for line in lines} == {("m6i.large", "spot")}, lines
    # To the cent, from moto's own record of each instance's life (a minute at least each):
    # spot at $36 an hour, EMR as on-demand $72 and its $18 charge.
    lives = instance_lives(metrics.metadata["run_id"].value, "user_daily")
    assert lives, "the step's instances are in moto's record"
    billed = sum(max(end - launch, 60.0) for _, launch, end in lives)
    assert round(metrics.metadata["cost_usd"].value * 100) == round(billed * 36 / 3600 * 100), (metrics, lives)
    assert round(metrics.metadata["emr_equivalent_usd"].value * 100) == round(billed * 90 / 3600 * 100), lives
    # 1 - 36/90, less a hair: the root volumes (8 GiB at the shipped $0.10 a GB-month, about
    # $0.0000003 a second against the instance's $0.01) are on both sides of the ratio.
    ratio = metrics.metadata["saving_ratio"].value
    assert 1 - 36 / 90 - 1e-4 < ratio < 1 - 36 / 90, ratio
    assert metrics.metadata["instance_hours"].value * 3600 >= 60, "a minute at least"
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket="lake", Prefix="data/user_daily/")["Contents"]]
    days = {"day=2024-01-02", "day=2024-01-03", "day=2024-01-04"}
    assert {k.split("/")[2] for k in keys} == days | {"_delta_log"}, "the three days, and the table's log"
    assert any(
        k.startswith("pipes/messages/")
        for k in (o["Key"] for o in aws["s3"].list_objects_v2(Bucket="lake", Prefix="pipes/")["Contents"])
    )
    assert os.environ.get("AWS_ENDPOINT_URL"), "the runner reached moto through the standard endpoint variable"
