"""What a step's selection means to the runner: the job and steps that make the selected
assets, and the Dagster key of each of the job's assets (which a translator or key prefix may
have changed), read back from the metadata `runner_assets` puts on each spec."""

from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext

from dagster_spotlake.translator import ASSET_KEY, JOB_KEY, STEP_KEY

# The extra the runner reads the key map from (the runner's `DAGSTER_ASSET_KEYS`).
DAGSTER_ASSET_KEYS = "dagster_asset_keys"


def _text(value: Any) -> str:
    return str(getattr(value, "value", value))


def selected_steps(context: AssetExecutionContext) -> tuple[Path, list[str]]:
    """The job and the steps that make the assets this run selected."""
    specs = context.assets_def.specs_by_key
    jobs: set[str] = set()
    steps: list[str] = []
    for key in context.selected_asset_keys:
        metadata = specs[key].metadata
        if JOB_KEY not in metadata:
            raise ValueError(f"{key.to_user_string()} was not made by runner_assets: give run() a job")
        jobs.add(_text(metadata[JOB_KEY]))
        step = _text(metadata[STEP_KEY])
        if step not in steps:
            steps.append(step)
    if len(jobs) != 1:
        raise ValueError(f"the selected assets come from {len(jobs)} job specs; a run needs exactly one")
    return Path(jobs.pop()), steps


def asset_key_extras(context: AssetExecutionContext) -> dict[str, Any]:
    """`{DAGSTER_ASSET_KEYS: {job key: Dagster key, escaped}}` for the keys that differ, or
    nothing."""
    try:
        specs = context.assets_def.specs_by_key
    except Exception:
        return {}
    # Escaped, as Pipes writes keys in the context and reads them in messages (a prefix part
    # with a `/` in it stays one part).
    renamed = {
        _text(spec.metadata[ASSET_KEY]): key.to_escaped_user_string()
        for key, spec in specs.items()
        if ASSET_KEY in spec.metadata and _text(spec.metadata[ASSET_KEY]) != key.to_escaped_user_string()
    }
    return {DAGSTER_ASSET_KEYS: renamed} if renamed else {}
