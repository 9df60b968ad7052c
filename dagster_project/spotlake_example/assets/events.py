"""The event pipeline as assets: raw files land daily (`raw_events`, plain Python), and the job
spec (`runner/examples/events/job.toml`) is the rest of the graph: a cleaning step into
hive-partitioned Parquet, a shuffle and a reduce into per-user daily metrics, with their checks
and code versions, read from the spec by `runner_assets`. The work runs in the runner."""

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetMaterialization,
    BackfillPolicy,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)
from dagster_spotlake import RunnerPipesClient, runner_assets

from spotlake_example import settings

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
    data_root = _data_root(runner)
    if data_root.startswith("s3://"):
        return _land_in_s3(runner, data_root, day)
    root = Path(data_root)
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


def _data_root(runner: RunnerPipesClient) -> str:
    """The resource's root, else what the runner resolves it to (`SPOTLAKE_ROOT`, its config)."""
    return runner.root or str(runner.resolved_settings(settings.JOB)["root"]["value"])


def _generate(runner: RunnerPipesClient, root: Path, day: str) -> None:
    subprocess.run(
        [runner.executable(), "example", "generate", "--out", str(root), "--start", day, "--days", "1"],
        check=True,
        capture_output=True,
    )


def _land_in_s3(runner: RunnerPipesClient, data_root: str, day: str) -> MaterializeResult:
    bucket, _, prefix = data_root.removeprefix("s3://").partition("/")
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
            "path": MetadataValue.path(f"{data_root.rstrip('/')}/raw/{day}"),
            "files": MetadataValue.int(len(files)),
            "bytes": MetadataValue.int(size),
        }
    )


@runner_assets(
    job=settings.JOB,
    runner_bin=settings.runner_bin(),
    name="events_pipeline",
    group_name="events",
    partitions_def=daily,
    backfill_policy=BackfillPolicy.single_run(),
)
def events_pipeline(
    context: AssetExecutionContext, runner: RunnerPipesClient
) -> Iterator[MaterializeResult | AssetCheckResult | AssetMaterialization]:
    """clean_events, events_by_user and user_daily_metrics, with their checks: all from the job
    spec. Selecting some runs only their steps."""
    yield from runner.run(context=context).stream()
