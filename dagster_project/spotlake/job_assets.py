"""Assets from a job spec. The runner describes its job (`runner describe JOB`: one asset per
output, the assets each is made from, a code version per step, the checks), and this module
turns that description into Dagster asset and check specs, the way dagster-dbt builds them from
dbt's manifest. The job spec is the only place an asset is declared.

`runner_assets` is the decorator (wrap the body for custom logic); `run_selection` runs the
steps of the selected assets, with the steps upstream of them that have nothing committed."""

import json
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    multi_asset,
)

from spotlake.pipes import RunnerPipesClient
from spotlake.pipes.runner_client import RunnerInvocation

# Metadata on each asset spec: which job and step make it (read back by `run_selection`).
JOB_KEY = "spotlake/job"
STEP_KEY = "spotlake/step"

DESCRIPTION_FORMAT = 1


class JobDescriptionError(Exception):
    """The runner could not describe the job (a bad spec, or no runner)."""


@dataclass(frozen=True)
class JobDescription:
    """What `runner describe` says of a job."""

    job: Path
    data: Mapping[str, Any]

    @classmethod
    def load(cls, job: str | Path, runner_bin: str) -> "JobDescription":
        job = Path(job).resolve()
        try:
            out = subprocess.run(
                [runner_bin, "describe", str(job)], check=True, capture_output=True, text=True, timeout=60
            )
        except FileNotFoundError as e:
            raise JobDescriptionError(f"no runner at {runner_bin!r} to describe {job}") from e
        except subprocess.CalledProcessError as e:
            raise JobDescriptionError(f"the runner could not describe {job}: {e.stderr.strip()}") from e
        data = json.loads(out.stdout)
        if data.get("format") != DESCRIPTION_FORMAT:
            raise JobDescriptionError(
                f"{runner_bin} describes jobs in format {data.get('format')}, this code reads {DESCRIPTION_FORMAT}"
            )
        return cls(job=job, data=data)

    @property
    def name(self) -> str:
        return str(self.data["job"])

    def asset_specs(self, group_name: str | None = None) -> list[AssetSpec]:
        return [
            AssetSpec(
                key=AssetKey.from_user_string(a["key"]),
                deps=[AssetKey.from_user_string(d) for d in a["deps"]],
                description=a.get("description"),
                code_version=a["code_version"],
                group_name=group_name,
                kinds={"polars"},
                metadata={
                    JOB_KEY: MetadataValue.path(str(self.job)),
                    STEP_KEY: MetadataValue.text(a["step"]),
                    "path": MetadataValue.text(a["path"]),
                },
            )
            for a in self.data["assets"]
        ]

    def check_specs(self) -> list[AssetCheckSpec]:
        return [
            AssetCheckSpec(
                name=c["name"],
                asset=AssetKey.from_user_string(c["asset"]),
                description=c["description"],
                blocking=False,
                metadata={"severity": MetadataValue.text(c["severity"])},
            )
            for c in self.data["checks"]
        ]

    def source_specs(self, group_name: str | None = None) -> list[AssetSpec]:
        """The assets the job reads and no step writes (external to this job)."""
        made = {a["key"] for a in self.data["assets"]}
        sources = sorted({d for a in self.data["assets"] for d in a["deps"]} - made)
        return [AssetSpec(key=AssetKey.from_user_string(k), group_name=group_name) for k in sources]


def runner_assets(
    *,
    job: str | Path,
    runner_bin: str,
    name: str | None = None,
    group_name: str | None = None,
    partitions_def: PartitionsDefinition | None = None,
    backfill_policy: BackfillPolicy | None = None,
) -> Callable[[Callable[..., Any]], AssetsDefinition]:
    """Builds the job's assets and checks from its spec; the decorated function is their body.

    ```python
    @runner_assets(job="job.toml", runner_bin="runner", partitions_def=daily)
    def events(context: AssetExecutionContext, runner: RunnerPipesClient):
        yield from run_selection(context, runner).get_results()
    ```
    Selecting some of the assets runs only their steps (and upstream steps with nothing
    committed)."""
    description = JobDescription.load(job, runner_bin)

    def wrap(fn: Callable[..., Any]) -> AssetsDefinition:
        return multi_asset(
            name=name or f"{description.name}_job",
            specs=description.asset_specs(group_name),
            check_specs=description.check_specs(),
            partitions_def=partitions_def,
            backfill_policy=backfill_policy,
            can_subset=True,
        )(fn)

    return wrap


def _text(value: Any) -> str:
    return str(getattr(value, "value", value))


def selected_steps(context: AssetExecutionContext) -> tuple[Path, list[str]]:
    """The job and the steps that make the assets this run selected."""
    specs = context.assets_def.specs_by_key
    jobs: set[str] = set()
    steps: list[str] = []
    for key in context.selected_asset_keys:
        jobs.add(_text(specs[key].metadata[JOB_KEY]))
        step = _text(specs[key].metadata[STEP_KEY])
        if step not in steps:
            steps.append(step)
    if len(jobs) != 1:
        raise ValueError(f"the selected assets come from {len(jobs)} job specs; a run needs exactly one")
    return Path(jobs.pop()), steps


def run_selection(
    context: AssetExecutionContext, runner: RunnerPipesClient, extras: Mapping[str, Any] | None = None
) -> RunnerInvocation:
    """Runs the steps of the selected assets, and the steps upstream of them that have nothing
    committed for the run's partitions (all of them: the whole job when everything is selected)."""
    job, steps = selected_steps(context)
    return runner.run(context=context, job=job, steps=steps, missing_upstream=True, extras=extras)


def results(invocation: RunnerInvocation) -> Iterator[MaterializeResult | AssetCheckResult | AssetMaterialization]:
    """What the asset body yields: see `RunnerInvocation.results`."""
    return invocation.results()
