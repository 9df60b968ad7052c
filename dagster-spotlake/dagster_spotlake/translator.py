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
        return AssetSpec(
            key=key,
            deps=deps,
            description=asset.get("description"),
            code_version=asset["code_version"],
            group_name=group_name,
            kinds={"polars"},
            metadata={
                JOB_KEY: MetadataValue.path(job),
                STEP_KEY: MetadataValue.text(asset["step"]),
                ASSET_KEY: MetadataValue.text(asset["key"]),
                "path": MetadataValue.text(asset["path"]),
            },
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
