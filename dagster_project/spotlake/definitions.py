"""The code location's entry point: `dagster dev -m spotlake.definitions`.

Locally nothing needs setting: the runner built by `make` and data under `.demo/`. With
`SPOTLAKE_BACKEND=aws` the resource reads its data root and Pipes bucket from `EnvVar`s
(`SPOTLAKE_ROOT`, `SPOTLAKE_PIPES_BUCKET`), and the runner its fleet from `RUNNER_CONFIG`."""

from dagster import Definitions, EnvVar

from spotlake import settings
from spotlake.assets.events import events_pipeline, raw_events
from spotlake.pipes import RunnerPipesClient


def runner_client() -> RunnerPipesClient:
    if settings.backend() == "aws":
        return RunnerPipesClient(
            backend="aws",
            root=EnvVar("SPOTLAKE_ROOT"),
            pipes_bucket=EnvVar("SPOTLAKE_PIPES_BUCKET"),
        )
    return RunnerPipesClient()


defs = Definitions(
    assets=[raw_events, events_pipeline],
    resources={"runner": runner_client()},
)
