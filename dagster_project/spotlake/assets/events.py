"""The event pipeline as assets: raw files land daily, a cleaning step turns them into
hive-partitioned Parquet, and a shuffle plus a reduce produce per-user daily metrics. The work
runs in the runner; these definitions say what the data is: partitions, checks, versions."""

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetMaterialization,
    AssetSpec,
    BackfillPolicy,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from spotlake import settings
from spotlake.pipes import RunnerPipesClient, per_partition_materializations

daily = DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-03-01")


@asset(
    partitions_def=daily,
    group_name="events",
    code_version="1",
    description="Raw web (headerless CSV) and app (nested NDJSON) events, as they land each day. "
    "The example generates a day's files the first time its partition is materialized.",
)
def raw_events(context: AssetExecutionContext, runner: RunnerPipesClient) -> MaterializeResult:
    day = context.partition_key
    if runner.data_root.startswith("s3://"):
        return _land_in_s3(runner, day)
    root = Path(runner.data_root)
    landed = root / "raw" / day
    if not landed.exists():
        _generate(runner, root, day)
    files = sorted(p for p in landed.iterdir() if p.is_file())
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(landed)),
            "files": MetadataValue.int(len(files)),
            "bytes": MetadataValue.int(sum(p.stat().st_size for p in files)),
        }
    )


def _generate(runner: RunnerPipesClient, root: Path, day: str) -> None:
    subprocess.run(
        [runner.runner_bin, "example", "generate", "--out", str(root), "--start", day, "--days", "1"],
        check=True,
        capture_output=True,
    )


def _land_in_s3(runner: RunnerPipesClient, day: str) -> MaterializeResult:
    bucket, _, prefix = runner.data_root.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    with tempfile.TemporaryDirectory() as tmp:
        _generate(runner, Path(tmp), day)
        files = sorted(p for p in (Path(tmp) / "raw" / day).iterdir() if p.is_file())
        for f in files:
            key = "/".join(x for x in (prefix, "raw", day, f.name) if x)
            runner.s3_client().upload_file(str(f), bucket, key)
        size = sum(p.stat().st_size for p in files)
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(f"{runner.data_root.rstrip('/')}/raw/{day}"),
            "files": MetadataValue.int(len(files)),
            "bytes": MetadataValue.int(size),
        }
    )


@asset(
    deps=[raw_events],
    partitions_def=daily,
    group_name="events",
    code_version="1",
    check_specs=[AssetCheckSpec("user_id_present", asset="clean_events")],
    description="Both sources in one schema, bad rows quarantined, as Parquet partitioned by event day.",
)
def clean_events(
    context: AssetExecutionContext, runner: RunnerPipesClient
) -> Iterator[MaterializeResult | AssetCheckResult | AssetMaterialization]:
    invocation = runner.run(context=context, job=settings.JOB, steps=["clean"])
    yield from invocation.get_results()
    yield from per_partition_materializations(invocation)


@multi_asset(
    specs=[
        AssetSpec(
            "events_by_user",
            deps=[clean_events],
            group_name="events",
            code_version="1",
            description="Clean events shuffled into 16 user buckets (the map side).",
        ),
        AssetSpec(
            "user_daily_metrics",
            deps=["events_by_user"],
            group_name="events",
            code_version="1",
            description="Per-user daily events, purchases, revenue and first/last seen (the reduce side).",
        ),
    ],
    check_specs=[
        AssetCheckSpec("one_row_per_user", asset="user_daily_metrics"),
        AssetCheckSpec("has_users", asset="user_daily_metrics"),
    ],
    partitions_def=daily,
    backfill_policy=BackfillPolicy.single_run(),
    can_subset=False,
)
def user_metrics(
    context: AssetExecutionContext, runner: RunnerPipesClient
) -> Iterator[MaterializeResult | AssetCheckResult | AssetMaterialization]:
    invocation = runner.run(context=context, job=settings.JOB, steps=["shuffle", "user_daily"])
    yield from invocation.get_results()
    yield from per_partition_materializations(invocation)
