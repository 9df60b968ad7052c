"""The partitions of a step, passed to the runner in Pipes extras.

Dagster sends no partition in the Pipes context of a ranged run (a single-run backfill, or any
chunk of a multi-run one): the host knows the range, so it passes it along itself."""

from typing import Any

from dagster import AssetExecutionContext, TimeWindowPartitionsDefinition


def partition_extras(context: AssetExecutionContext) -> dict[str, Any]:
    """`partitions` (key and time window each), `partition_keys` and `partition_key_range`,
    or nothing for an unpartitioned asset."""
    if not context.has_partition_key_range and not context.has_partition_key:
        return {}
    keys = list(context.partition_keys)
    definition = context.assets_def.partitions_def
    partitions = []
    for key in keys:
        entry: dict[str, Any] = {"key": key}
        if isinstance(definition, TimeWindowPartitionsDefinition):
            window = definition.time_window_for_partition_key(key)
            entry["start"] = window.start.isoformat()
            entry["end"] = window.end.isoformat()
        partitions.append(entry)
    key_range = context.partition_key_range
    return {
        "partitions": partitions,
        "partition_keys": keys,
        "partition_key_range": {"start": key_range.start, "end": key_range.end},
    }
