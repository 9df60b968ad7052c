"""Assets from a job spec. The runner describes its job (one asset per output, the assets each
is made from, a code version per step, the checks); this module turns that description into
Dagster asset and check specs, the way dagster-dbt builds them from dbt's manifest, so the job
spec is the only place an asset is declared.

```python
@runner_assets(job="job.toml", partitions_def=daily)
def events(context: AssetExecutionContext, runner: RunnerPipesClient):
    yield from runner.run(context=context).stream()
```

A relative `job` resolves against the folder of the module that calls `runner_assets`, as a
component's resolves against its own folder."""

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckSpec,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    PartitionsDefinition,
    RetryPolicy,
    multi_asset,
)

from dagster_spotlake.description import JobDescription
from dagster_spotlake.translator import RunnerTranslator


def _prefixed(key: AssetKey, prefix: Sequence[str]) -> AssetKey:
    return AssetKey([*prefix, *key.path]) if prefix else key


def job_specs(
    description: JobDescription,
    *,
    translator: RunnerTranslator | None = None,
    key_prefix: str | Sequence[str] | None = None,
    group_name: str | None = None,
    blocking_checks: bool = False,
) -> tuple[list[AssetSpec], list[AssetCheckSpec], list[AssetSpec]]:
    """The job's asset specs, check specs, and specs of the assets it reads that no step writes.
    `key_prefix` goes in front of the keys of the job's own assets (not of those it reads)."""
    translator = translator or RunnerTranslator()
    prefix = [key_prefix] if isinstance(key_prefix, str) else list(key_prefix or [])
    keys = {a["key"]: _prefixed(translator.get_asset_key(a), prefix) for a in description.assets}

    def key_of(job_key: str) -> AssetKey:
        return keys.get(job_key) or translator.get_source_key(job_key)

    assets = [
        translator.get_asset_spec(
            a, key=keys[a["key"]], deps=[key_of(d) for d in a["deps"]], job=str(description.job), group_name=group_name
        )
        for a in description.assets
    ]
    checks = [
        translator.get_check_spec(c, asset=key_of(c["asset"]), blocking=blocking_checks) for c in description.checks
    ]
    sources = [AssetSpec(key=key_of(k), group_name=group_name) for k in description.source_keys()]
    return assets, checks, sources


def _caller_folder() -> Path:
    """The folder of the module that called the public function calling this (a wrapper of
    `runner_assets` in another module should pass an absolute path)."""
    # One frame, not `inspect.stack()`, which reads the source of every frame at import.
    return Path(sys._getframe(2).f_code.co_filename).resolve().parent


def runner_assets(
    *,
    job: str | Path,
    runner_bin: str | None = None,
    name: str | None = None,
    group_name: str | None = None,
    key_prefix: str | Sequence[str] | None = None,
    translator: RunnerTranslator | None = None,
    partitions_def: PartitionsDefinition | None = None,
    backfill_policy: BackfillPolicy | None = None,
    op_tags: Mapping[str, Any] | None = None,
    pool: str | None = None,
    retry_policy: RetryPolicy | None = None,
    blocking_checks: bool = False,
) -> Callable[[Callable[..., Any]], AssetsDefinition]:
    """Builds the job's assets and checks from its description; the decorated function is their
    body, and `runner.run(context=context)` in it runs the steps of the selected assets (and the
    steps upstream of them with nothing committed for the run's partitions).

    Args:
        job: the job spec; relative to the calling module's folder.
        runner_bin: the runner that describes the job when no fresh prepared description is
            beside it (default: `SPOTLAKE_RUNNER_BIN`, else `runner` on `PATH`).
        name: the op's name (default `{job name}_job`).
        group_name, key_prefix, translator: how the job's assets are named and grouped.
        partitions_def, backfill_policy: as on `multi_asset`.
        op_tags, pool, retry_policy: as on `multi_asset`; `pool` caps how many of these steps
            (and so fleets) run at once.
        blocking_checks: the job's checks block downstream assets when they fail at `ERROR`.
    """
    path = Path(job)
    if not path.is_absolute():
        path = _caller_folder() / path
    description = JobDescription.load(path, runner_bin)
    specs, check_specs, _ = job_specs(
        description,
        translator=translator,
        key_prefix=key_prefix,
        group_name=group_name,
        blocking_checks=blocking_checks,
    )

    def wrap(fn: Callable[..., Any]) -> AssetsDefinition:
        return multi_asset(
            name=name or f"{description.name}_job",
            specs=specs,
            check_specs=check_specs,
            partitions_def=partitions_def,
            backfill_policy=backfill_policy,
            can_subset=True,
            op_tags=op_tags,
            pool=pool,
            retry_policy=retry_policy,
        )(fn)

    return wrap
