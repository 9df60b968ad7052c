"""Each partition's own numbers in a ranged run (a single-run backfill).

Pipes' `report_asset_materialization` has no partition, so Dagster copies the run's one
metadata set to every partition of the range. It also forces that copy: a step that opened a
Pipes session must yield a result for every selected asset (its typed event stream), and in a
ranged run each result becomes one materialization per partition. So each partition gets two
per run, in a stable order: Dagster's copy of the run's, then its own, which is its latest.
Its own metadata comes whole from the runner's `partition_metadata` message: the same keys as
the run's, with that partition's rows, bytes, files, path, schema, hive keys, items, rows read
and quarantined, and share of the cost. The keys that are the step's or the run's as a whole
(`step_seconds`, `step_workers`, `run_*`) are the same in every partition. Its data version is
its own too: a hash of the items committed for that partition alone, so a day keeps its version
whatever range it is backfilled in, and only a day whose data changed shows as changed.

Checks are alike: a ranged run's check is one result over the whole range, and the runner also
sends each partition's verdict and severity (a row count check can fail in one partition, warn
in another and pass in the rest); `per_partition_check_evaluations` turns those into one
`AssetCheckEvaluation` per partition, logged before the range's own result, so the range's
verdict, the worst of its partitions', stays the check's latest."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    MaterializeResult,
    MetadataValue,
)
from dagster._core.definitions.metadata import metadata_map_from_external

DATA_VERSION_TAG = "dagster/data_version"


@dataclass(frozen=True)
class PartitionOwn:
    """One partition's own metadata and data version, as the runner sent them."""

    metadata: dict[str, Any]
    data_version: str | None


def own_metadata(custom_messages: list[Any]) -> dict[AssetKey, dict[str, PartitionOwn]]:
    """Each asset's partitions' own metadata, from the runner's `partition_metadata` messages."""
    out: dict[AssetKey, dict[str, PartitionOwn]] = {}
    for message in custom_messages:
        if not isinstance(message, dict) or message.get("kind") != "partition_metadata":
            continue
        asset = out.setdefault(AssetKey.from_escaped_user_string(message["asset_key"]), {})
        versions = message.get("data_versions") or {}
        for partition, metadata in (message.get("by_partition") or {}).items():
            asset[partition] = PartitionOwn(dict(metadata_map_from_external(metadata)), versions.get(partition))
    return out


def ranged_materializations(
    results: list[Any], custom_messages: list[Any], partitions: list[str]
) -> Iterator[AssetMaterialization]:
    """One materialization per asset and partition of a ranged run, each with its own numbers."""
    own = own_metadata(custom_messages)
    for result in results:
        if not isinstance(result, MaterializeResult) or result.asset_key is None:
            continue
        key = AssetKey.from_coercible(result.asset_key)
        for partition in partitions:
            mine = own.get(key, {}).get(partition)
            if mine is None or mine.data_version is None:
                raise ValueError(f"the runner sent no metadata of its own for {key.to_user_string()} {partition}")
            yield AssetMaterialization(
                asset_key=key,
                partition=partition,
                metadata={**mine.metadata, "ranged_run_partitions": MetadataValue.int(len(partitions))},
                tags={DATA_VERSION_TAG: mine.data_version},
            )


def per_partition_check_evaluations(custom_messages: list[Any]) -> Iterator[AssetCheckEvaluation]:
    for message in custom_messages:
        if not isinstance(message, dict) or message.get("kind") != "check_partitions":
            continue
        asset_key = AssetKey.from_escaped_user_string(message["asset_key"])
        for partition, verdict in sorted((message.get("by_partition") or {}).items()):
            yield AssetCheckEvaluation(
                asset_key=asset_key,
                check_name=message["check_name"],
                passed=bool(verdict["passed"]),
                partition=partition,
                severity=AssetCheckSeverity(verdict["severity"]),
                description=verdict.get("description"),
                metadata={"partition": MetadataValue.text(partition)},
            )
