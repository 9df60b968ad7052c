"""dagster-spotlake: Polars jobs run by the spotlake runner (on local worker processes or an
EC2 spot fleet) as Dagster assets, through Dagster Pipes.

- `RunnerPipesClient`: the resource; `runner.run(context=context).stream()` in an asset body.
- `runner_assets`: a decorator that builds a job spec's assets and checks.
- `RunnerJobComponent`: the same as a component (`defs.yaml`), no Python.
- `RunnerTranslator`: how the job's assets and checks become Dagster specs."""

from dagster_spotlake.component import RunnerJobComponent
from dagster_spotlake.description import JobDescription, JobDescriptionError
from dagster_spotlake.job_assets import runner_assets
from dagster_spotlake.pipes import RunnerInvocation, RunnerPipesClient
from dagster_spotlake.translator import RunnerTranslator

__version__ = "0.1.0"

__all__ = [
    "JobDescription",
    "JobDescriptionError",
    "RunnerInvocation",
    "RunnerJobComponent",
    "RunnerPipesClient",
    "RunnerTranslator",
    "runner_assets",
]
