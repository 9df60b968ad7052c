"""Each partition's own numbers in a ranged run.

Pipes' `report_asset_materialization` has no partition: in a ranged run, Dagster copies the one
metadata set to every partition of the range. The runner also sends a custom message with the
row count of every partition and its share of the cost (split by the seconds its items'
attempts ran); from it, this module builds one `AssetMaterialization` per partition carrying
that partition's own `dagster/row_count`, `cost_usd`, `emr_equivalent_usd` and
`instance_hours`. Logged after the run's results, they are each partition's latest
materialization.

Checks are alike: a ranged run's check is one result over the whole range, and the runner also
sends each partition's verdict. `per_partition_check_evaluations` turns those into one
`AssetCheckEvaluation` per partition, which the client logs before the run's own results, so the
range's verdict stays the check's latest."""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    MetadataValue,
    PipesClientCompletedInvocation,
)


def per_partition_materializations(invocation: PipesClientCompletedInvocation) -> Iterator[AssetMaterialization]:
    for message in invocation.get_custom_messages():
        if not isinstance(message, dict) or message.get("kind") != "partition_rows":
            continue
        rows: dict[str, Any] = message.get("rows_by_partition") or {}
        if len(rows) < 2:
            # One partition: the run's own materialization already carries its numbers.
            continue
        costs: dict[str, dict[str, float | None]] = message.get("cost_by_partition") or {}
        asset_key = AssetKey.from_user_string(message["asset_key"])
        for partition, count in sorted(rows.items()):
            metadata: dict[str, MetadataValue] = {
                "dagster/row_count": MetadataValue.int(int(count)),
                "ranged_run_partitions": MetadataValue.int(len(rows)),
            }
            for name, value in (costs.get(partition) or {}).items():
                if value is not None:
                    metadata[name] = MetadataValue.float(float(value))
            yield AssetMaterialization(
                asset_key=asset_key,
                partition=partition,
                description="this partition's own numbers from a ranged run",
                metadata=metadata,
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
