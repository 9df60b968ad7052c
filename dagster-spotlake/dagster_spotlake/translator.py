"""How the job's description becomes Dagster specs, overridable as dagster-dbt's translator is:
subclass `RunnerTranslator` and override a method to change keys, groups, tags, owners or
checks. Keys the translator changes are passed to the runner, which reports under them."""

from collections.abc import Mapping
from typing import Any

from dagster import AssetCheckSpec, AssetKey, AssetSpec, MetadataValue

# Metadata on each asset spec: which job, step and job asset make it (read back by the
# resource to choose the steps to run and to map keys).
JOB_KEY = "spotlake/job"
STEP_KEY = "spotlake/step"
ASSET_KEY = "spotlake/asset"


class RunnerTranslator:
    """The default translation: the job's keys as they are, its descriptions, code versions and
    the `polars` kind."""

    def get_asset_key(self, asset: Mapping[str, Any]) -> AssetKey:
        """The Dagster key of one of the job's assets (`asset` is its entry in the description)."""
        return AssetKey.from_user_string(asset["key"])

    def get_source_key(self, key: str) -> AssetKey:
        """The Dagster key of an asset the job reads and no step of it writes."""
        return AssetKey.from_user_string(key)

    def get_asset_spec(
        self, asset: Mapping[str, Any], *, key: AssetKey, deps: list[AssetKey], job: str, group_name: str | None
    ) -> AssetSpec:
        """The spec of one of the job's assets, given its key and its upstream keys."""
        metadata: dict[str, Any] = {
            JOB_KEY: MetadataValue.path(job),
            STEP_KEY: MetadataValue.text(asset["step"]),
            ASSET_KEY: MetadataValue.text(asset["key"]),
            "path": MetadataValue.text(asset["path"]),
        }
        table = asset.get("table")
        if table:
            metadata["dagster/table_name"] = MetadataValue.text(table["name"])
        return AssetSpec(
            key=key,
            deps=deps,
            description=_with_table(asset.get("description"), table),
            code_version=asset["code_version"],
            group_name=group_name,
            kinds={"polars", "delta"} if table else {"polars"},
            metadata=metadata,
        )

    def get_check_spec(self, check: Mapping[str, Any], *, asset: AssetKey, blocking: bool) -> AssetCheckSpec:
        """The spec of one of the job's checks, on `asset` (its translated key)."""
        return AssetCheckSpec(
            name=check["name"],
            asset=asset,
            description=check["description"],
            blocking=blocking,
            metadata={"severity": MetadataValue.text(check["severity"])},
        )


def _with_table(description: str | None, table: Mapping[str, Any] | None) -> str | None:
    """The asset's description, with how to query its table when it is kept as one."""
    if not table:
        return description
    root = table["root"]
    where = root if "://" in root or root.startswith("/") else f"{{job root}}/{root}"
    lines = [
        f"Kept as the Delta Lake table `{table['name']}` at `{where}`"
        + (f", partitioned by {', '.join(table['partition_columns'])}." if table["partition_columns"] else "."),
        "Readers see each step's commit whole; query it by its log, not its folder:",
        f"- DuckDB: `SELECT * FROM delta_scan('{where}')`",
        f"- Polars: `pl.scan_delta('{where}')`",
    ]
    if table.get("glue_database"):
        lines.append(f"- Athena (Glue catalog): `SELECT * FROM {table['name']}`")
    text = "\n".join(lines)
    return f"{description}\n\n{text}" if description else text
