"""The job spec as a Dagster component: a `defs.yaml` naming a job spec gives its partitioned,
checked asset graph, with no Python.

```yaml
type: spotlake.RunnerJobComponent
attributes:
  job: job.toml                  # relative to this folder
  root: /data/lake               # or s3://bucket/prefix (default: SPOTLAKE_ROOT)
  partitions: {type: daily, start: "2024-01-01"}
```"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import dagster as dg

from spotlake import settings
from spotlake.job_assets import JobDescription, results, run_selection, runner_assets
from spotlake.pipes import RunnerPipesClient


class PartitionsModel(dg.Model):
    """How the job's assets are partitioned."""

    type: Literal["daily", "hourly", "weekly", "monthly", "static"]
    start: str | None = None
    end: str | None = None
    keys: list[str] | None = None

    def build(self) -> dg.PartitionsDefinition:
        if self.type == "static":
            if not self.keys:
                raise ValueError("static partitions need `keys`")
            return dg.StaticPartitionsDefinition(self.keys)
        if not self.start:
            raise ValueError(f"{self.type} partitions need `start`")
        by_type: dict[str, Any] = {
            "daily": dg.DailyPartitionsDefinition,
            "hourly": dg.HourlyPartitionsDefinition,
            "weekly": dg.WeeklyPartitionsDefinition,
            "monthly": dg.MonthlyPartitionsDefinition,
        }
        return by_type[self.type](start_date=self.start, end_date=self.end)


class RunnerJobComponent(dg.Component, dg.Model, dg.Resolvable):
    """A runner job spec as assets: one per output, with its checks, code versions and
    upstream assets, run by the runner (locally, or on a spot fleet with `backend: aws`)."""

    job: str
    root: str | None = None
    runner_bin: str | None = None
    backend: Literal["local", "aws"] = "local"
    pipes_bucket: str | None = None
    group_name: str | None = None
    partitions: PartitionsModel | None = None
    backfill: Literal["single_run", "multi_run"] = "single_run"
    # Also declare the assets the job reads and no step writes (off when another definition
    # makes them, as the example's `raw_events`).
    include_sources: bool = True

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        job = (Path(context.path) / self.job).resolve()
        runner_bin = self.runner_bin or settings.runner_bin()
        description = JobDescription.load(job, runner_bin)

        @runner_assets(
            job=job,
            runner_bin=runner_bin,
            name=f"{description.name}_job",
            group_name=self.group_name,
            partitions_def=self.partitions.build() if self.partitions else None,
            backfill_policy=dg.BackfillPolicy.single_run() if self.backfill == "single_run" else None,
        )
        def assets(context: dg.AssetExecutionContext, runner: RunnerPipesClient) -> Iterator[Any]:
            yield from results(run_selection(context, runner))

        sources = description.source_specs(self.group_name) if self.include_sources else []
        client = RunnerPipesClient(
            runner_bin=runner_bin,
            root=self.root or settings.root(),
            backend=self.backend,
            pipes_bucket=self.pipes_bucket,
        )
        return dg.Definitions(assets=[assets, *sources], resources={"runner": client})
