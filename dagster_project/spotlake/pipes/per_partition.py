"""Each partition's own numbers in a ranged run (a single-run backfill).

Pipes' `report_asset_materialization` has no partition, so Dagster copies the run's one
metadata set to every partition of the range. It also forces that copy: a step that opened a
Pipes session must yield a result for every selected asset (its typed event stream), and in a
ranged run each result becomes one materialization per partition. So each partition gets two
per run, in a stable order: Dagster's copy of the run's, then its own, built here from the
runner's `partition_rows` message (the run's metadata, with that partition's row count, bytes,
path and share of the cost in their place), which is its latest.

Checks are alike: a ranged run's check is one result over the whole range, and the runner also
sends each partition's verdict; `per_partition_check_evaluations` turns those into one
`AssetCheckEvaluation` per partition, logged before the range's own result, so the range's
verdict stays the check's latest."""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    MaterializeResult,
    MetadataValue,
)

DATA_VERSION_TAG = "dagster/data_version"


def own_numbers(custom_messages: list[Any]) -> dict[AssetKey, dict[str, dict[str, MetadataValue]]]:
    """Each asset's partitions' own metadata, from the runner's `partition_rows` messages."""
    out: dict[AssetKey, dict[str, dict[str, MetadataValue]]] = {}
    for message in custom_messages:
        if not isinstance(message, dict) or message.get("kind") != "partition_rows":
            continue
        rows: dict[str, Any] = message.get("rows_by_partition") or {}
        costs: dict[str, dict[str, float | None]] = message.get("cost_by_partition") or {}
        paths: dict[str, str] = message.get("path_by_partition") or {}
        sizes: dict[str, int] = message.get("bytes_by_partition") or {}
        asset = out.setdefault(AssetKey.from_user_string(message["asset_key"]), {})
        for partition, count in rows.items():
            metadata: dict[str, MetadataValue] = {"dagster/row_count": MetadataValue.int(int(count))}
            if partition in paths:
                metadata["path"] = MetadataValue.path(paths[partition])
            if partition in sizes:
                metadata["bytes_out"] = MetadataValue.int(int(sizes[partition]))
            for name, value in (costs.get(partition) or {}).items():
                if value is not None:
                    metadata[name] = MetadataValue.float(float(value))
            asset[partition] = metadata
    return out


def ranged_materializations(
    results: list[Any], custom_messages: list[Any], partitions: list[str]
) -> Iterator[AssetMaterialization]:
    """One materialization per asset and partition of a ranged run, each with its own numbers."""
    own = own_numbers(custom_messages)
    for result in results:
        if not isinstance(result, MaterializeResult) or result.asset_key is None:
            continue
        key = AssetKey.from_coercible(result.asset_key)
        tags = {DATA_VERSION_TAG: result.data_version.value} if result.data_version else {}
        for partition in partitions:
            yield AssetMaterialization(
                asset_key=key,
                partition=partition,
                metadata={
                    **(result.metadata or {}),
                    "ranged_run_partitions": MetadataValue.int(len(partitions)),
                    **own.get(key, {}).get(partition, {}),
                },
                tags=tags,
            )


def per_partition_check_evaluations(custom_messages: list[Any]) -> Iterator[AssetCheckEvaluation]:
    for message in custom_messages:
        if not isinstance(message, dict) or message.get("kind") != "check_partitions":
            continue
        asset_key = AssetKey.from_user_string(message["asset_key"])
        severity = AssetCheckSeverity(message.get("severity", "ERROR"))
        for partition, verdict in sorted((message.get("by_partition") or {}).items()):
            yield AssetCheckEvaluation(
                asset_key=asset_key,
                check_name=message["check_name"],
                passed=bool(verdict["passed"]),
                partition=partition,
                severity=severity,
                description=verdict.get("description"),
                metadata={"partition": MetadataValue.text(partition)},
            )
