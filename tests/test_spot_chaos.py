"""Spot chaos on the Dagster path: a 3-day single-run backfill on the aws backend (moto, with
instances stood in for by processes running the real boot script) while instances running
items get a spot notice, a rebalance recommendation and a hard crash, each landing on an item
just started (the worker's own log shows it in flight). The run succeeds, its outputs equal a
local run's over the same raw files, nothing is left on EC2 or SQS, each event did to its item
what it should (the worker's log: handed back, lost, finished), and the materializations count
exactly one interruption per notice."""

import datetime
import re
from collections.abc import Iterator
from pathlib import Path

import boto3
import duckdb
import pytest
from dagster import AssetKey, DagsterInstance, instance_for_test, materialize
from dagster_spotlake.pipes import RunnerPipesClient
from fleet_standin import FleetStandIn, aws_runner_config
from runner_helpers import RUNNER
from spotlake_example.assets.events import events_pipeline, raw_events

DAYS = ["2024-02-01", "2024-02-02", "2024-02-03"]
RANGE = {"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]}
# Each on the next instance seen running an item; items are held long enough (the item-sleep
# failpoint, longer than the worker's 5 s notice poll) that an event lands mid-item.
CHAOS = ["notice", "crash", "rebalance", "notice"]
ITEM_SLEEP_MS = "7000"
STEP_ASSETS = ["clean_events", "events_by_user", "user_daily_metrics"]


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


def _download(s3, bucket: str, prefix: str, dest: Path) -> int:  # type: ignore[no-untyped-def]
    n = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            target = dest / obj["Key"].removeprefix(prefix).lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(target))
            n += 1
    return n


ITEM_END = re.compile(r" (done|failed|handed back)\b.*item=| item=.* (done|failed|handed back)")


def _worker_log(fleet: FleetStandIn, instance_id: str) -> list[tuple[float, str]]:
    """The worker's own log on an instance: (Unix seconds, line) for each stamped line."""
    out = []
    for line in (fleet.homes[instance_id] / "home" / "worker.log").read_text(errors="replace").splitlines():
        stamp = line.split(" ", 1)[0]
        try:
            out.append((datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp(), line))
        except ValueError:
            continue
    return out


def _rows(directory: Path) -> list[tuple]:
    """Every row of a dataset, sorted (file names differ between runs: they carry item ids)."""
    files = [
        str(p)
        for p in directory.rglob("*.parquet")
        if not any(part.startswith(("_", ".")) for part in p.relative_to(directory).parts)
    ]
    assert files, f"no data in {directory}"
    query = "SELECT * FROM read_parquet(?, hive_partitioning=true) ORDER BY ALL"
    return duckdb.connect().execute(query, [files]).fetchall()


def test_a_backfill_survives_spot_notices_rebalances_and_crashes(
    aws_env, tmp_path: Path, instance: DagsterInstance
) -> None:
    aws = aws_runner_config(tmp_path, "chaos")
    env = {**aws["env"], "SPOTLAKE_TEST_ITEM_SLEEP_MS": ITEM_SLEEP_MS}
    client = RunnerPipesClient(
        runner_bin=str(RUNNER), root="s3://chaos/data", backend="aws", pipes_bucket="chaos", env=env
    )
    # Each worker runs one item at a time, so an event touches at most the one item it lands on.
    with FleetStandIn(tmp_path / "fleet", env, vcpus=1, chaos=list(CHAOS)) as fleet:
        for day in DAYS:
            assert materialize([raw_events], resources={"runner": client}, instance=instance, partition_key=day).success
        result = materialize([events_pipeline], resources={"runner": client}, instance=instance, tags=RANGE)
        assert result.success
        landed = list(zip(fleet.landed, fleet.landed_at, strict=True))
        logs = {instance_id: _worker_log(fleet, instance_id) for (_, instance_id), _ in landed}
        assert fleet.running_instances() == 0, "no instance is left running"
        assert fleet.live_fleets() == 0, "every fleet was deleted"
    assert [event for (event, _), _ in landed] == CHAOS, f"every event must land to test anything: {landed}"

    # Each event landed on an item in flight, as the worker's own log tells it: an item started
    # before the event and not ended by then. Then a notice's item was handed back, a crashed
    # item never ended on its instance, and a rebalanced item finished.
    for (event, instance_id), at in landed:
        lines = logs[instance_id]
        before = [(t, line) for t, line in lines if t <= at]
        after = [(t, line) for t, line in lines if t > at]
        assert before and " running item=" in before[-1][1], (event, instance_id, lines)
        ends_after = [line for _, line in after if ITEM_END.search(line)]
        if event == "notice":
            assert ends_after and "handed back" in ends_after[0], (instance_id, lines)
        elif event == "crash":
            assert ends_after == [], (instance_id, lines)
        else:
            assert ends_after and " done" in ends_after[0], (instance_id, lines)
            assert any("taking no more work" in line for _, line in after), (instance_id, lines)

    # What the run says it survived, exactly: each notice's item handed back is one
    # interruption; a crash's item comes back silently when its visibility lapses; a
    # rebalanced item finishes. No item failed, so no retry.
    whole = {
        e.materialization.asset_key: e.materialization
        for e in reversed(result.get_asset_materialization_events())
        if e.materialization.metadata.get("step_interruptions_survived") is not None
        and "ranged_run_partitions" not in e.materialization.metadata
    }
    interruptions = sum(whole[AssetKey(k)].metadata["step_interruptions_survived"].value for k in STEP_ASSETS)
    retries = sum(whole[AssetKey(k)].metadata["step_retries"].value for k in STEP_ASSETS)
    assert (interruptions, retries) == (CHAOS.count("notice"), 0), (interruptions, retries, landed)

    # Nothing left on EC2 or SQS.
    ec2, sqs = boto3.client("ec2"), boto3.client("sqs")
    templates = ec2.describe_launch_templates(Filters=[{"Name": "tag:spotlake:tool", "Values": ["runner"]}])
    assert templates["LaunchTemplates"] == [], templates["LaunchTemplates"]
    assert sqs.list_queues(QueueNamePrefix="spotlake-").get("QueueUrls", []) == []

    # The outputs equal a local run's over the same raw files.
    local = tmp_path / "local"
    assert _download(aws["s3"], "chaos", "data/raw/", local / "raw") > 0
    on_aws = tmp_path / "on_aws"
    _download(aws["s3"], "chaos", "data/", on_aws)
    local_client = RunnerPipesClient(runner_bin=str(RUNNER), root=str(local), env={"SPOTLAKE_WORKERS": "2"})
    assert materialize([events_pipeline], resources={"runner": local_client}, instance=instance, tags=RANGE).success
    datasets = sorted(p.name for p in local.iterdir() if p.is_dir() and p.name not in ("raw", "_runner"))
    assert {"clean", "user_daily"} <= set(datasets), datasets
    for name in datasets:
        assert _rows(on_aws / name) == _rows(local / name), name
