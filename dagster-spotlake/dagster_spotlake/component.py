"""The job spec as a Dagster component: a `defs.yaml` naming a job spec gives its partitioned,
checked asset graph, with no Python. `dg list components` lists it (the package registers
itself under `dagster_dg_cli.registry_modules`).

```yaml
type: dagster_spotlake.RunnerJobComponent
attributes:
  job: job.toml                  # relative to this folder
  root: s3://lake/prod           # unset: SPOTLAKE_ROOT, the runner config, the job spec
  partitions: {type: daily, start_date: "2024-01-01", timezone: "Europe/Paris"}
  backfill: {type: multi_run, max_partitions_per_run: 7}
  pool: spot_fleets
```

Each component brings its own resource (a client with its own root, backend and binary), so two
components in one code location never clash over a resource key. Override `execute()` to add
logic around the run."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import dagster as dg

from dagster_spotlake.description import JobDescription
from dagster_spotlake.job_assets import job_specs
from dagster_spotlake.pipes import RunnerPipesClient
from dagster_spotlake.translator import RunnerTranslator


class PartitionsModel(dg.Model):
    """How the job's assets are partitioned: Dagster's own fields."""

    type: Literal["daily", "hourly", "weekly", "monthly", "static"]
    start_date: str | None = None
    end_date: str | None = None
    timezone: str | None = None
    end_offset: int = 0
    fmt: str | None = None
    keys: list[str] | None = None

    def build(self) -> dg.PartitionsDefinition:
        if self.type == "static":
            if not self.keys:
                raise ValueError("static partitions need `keys`")
            return dg.StaticPartitionsDefinition(self.keys)
        if not self.start_date:
            raise ValueError(f"{self.type} partitions need `start_date`")
        by_type: dict[str, Any] = {
            "daily": dg.DailyPartitionsDefinition,
            "hourly": dg.HourlyPartitionsDefinition,
            "weekly": dg.WeeklyPartitionsDefinition,
            "monthly": dg.MonthlyPartitionsDefinition,
        }
        optional = {"timezone": self.timezone, "fmt": self.fmt}
        return by_type[self.type](
            start_date=self.start_date,
            end_date=self.end_date,
            end_offset=self.end_offset,
            **{k: v for k, v in optional.items() if v is not None},
        )


class BackfillModel(dg.Model):
    """How a backfill runs: all its partitions in one run, or runs of at most
    `max_partitions_per_run`."""

    type: Literal["single_run", "multi_run"] = "single_run"
    max_partitions_per_run: int | None = None

    def build(self) -> dg.BackfillPolicy:
        if self.type == "single_run":
            if self.max_partitions_per_run is not None:
                raise ValueError("max_partitions_per_run is for a multi_run backfill")
            return dg.BackfillPolicy.single_run()
        return dg.BackfillPolicy.multi_run(self.max_partitions_per_run or 1)


class RetryPolicyModel(dg.Model):
    """Dagster's retry policy for the step."""

    max_retries: int = 1
    delay: float | None = None

    def build(self) -> dg.RetryPolicy:
        return dg.RetryPolicy(max_retries=self.max_retries, delay=self.delay)


class RunnerJobComponent(dg.Component, dg.Model, dg.Resolvable):
    """A runner job spec as assets: one per output, with its checks, code versions and
    upstream assets, run by the runner (locally, or on a spot fleet with `backend: aws`)."""

    job: str
    # The op's name (default `{key prefix}_{job name}_job`: two components of one spec under
    # different prefixes get different ops).
    name: str | None = None
    root: str | None = None
    state: str | None = None
    backend: Literal["local", "aws"] | None = None
    config: str | None = None
    runner_bin: str | None = None
    pipes_bucket: str | None = None
    group_name: str | None = None
    key_prefix: str | list[str] | None = None
    partitions: PartitionsModel | None = None
    backfill: BackfillModel | None = None
    op_tags: dict[str, Any] | None = None
    pool: str | None = None
    retry_policy: RetryPolicyModel | None = None
    blocking_checks: bool = False
    # Also declare the assets the job reads and no step writes (off when another definition
    # makes them).
    include_sources: bool = True

    def translator(self) -> RunnerTranslator:
        """The translator of the job's keys and specs (override to change them)."""
        return RunnerTranslator()

    def resource(self) -> RunnerPipesClient:
        """This component's own client."""
        return RunnerPipesClient(
            runner_bin=self.runner_bin,
            root=self.root,
            state=self.state,
            backend=self.backend,
            config=self.config,
            pipes_bucket=self.pipes_bucket,
        )

    def execute(self, context: dg.AssetExecutionContext, runner: RunnerPipesClient) -> Iterator[Any]:
        """The body of the job's assets: runs the selected assets' steps."""
        yield from runner.run(context=context).stream()

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        job = (Path(context.path) / self.job).resolve()
        description = JobDescription.load(job, self.runner_bin)
        specs, check_specs, sources = job_specs(
            description,
            translator=self.translator(),
            key_prefix=self.key_prefix,
            group_name=self.group_name,
            blocking_checks=self.blocking_checks,
        )
        client = self.resource()
        partitions_def = self.partitions.build() if self.partitions else None
        if self.backfill is not None:
            backfill_policy = self.backfill.build()
        else:
            backfill_policy = dg.BackfillPolicy.single_run() if partitions_def is not None else None

        prefix = [self.key_prefix] if isinstance(self.key_prefix, str) else list(self.key_prefix or [])

        @dg.multi_asset(
            name=self.name or "_".join([*prefix, f"{description.name}_job"]),
            specs=specs,
            check_specs=check_specs,
            partitions_def=partitions_def,
            backfill_policy=backfill_policy,
            can_subset=True,
            op_tags=self.op_tags,
            pool=self.pool,
            retry_policy=self.retry_policy.build() if self.retry_policy else None,
        )
        def assets(context: dg.AssetExecutionContext) -> Iterator[Any]:
            yield from self.execute(context, client)

        return dg.Definitions(assets=[assets, *(sources if self.include_sources else [])])
