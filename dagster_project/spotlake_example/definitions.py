"""The code location's entry point: `dagster dev -m spotlake_example.definitions`.

Locally nothing needs setting: the runner built by `make` and data under `.demo/`. With
`SPOTLAKE_BACKEND=aws` the runner reads its data root from `SPOTLAKE_ROOT`, its fleet from
`SPOTLAKE_CONFIG`, and the client its Pipes bucket from `SPOTLAKE_PIPES_BUCKET`."""

from dagster import Definitions
from dagster_spotlake import RunnerPipesClient

from spotlake_example import settings
from spotlake_example.assets.events import events_pipeline, raw_events


def runner_client() -> RunnerPipesClient:
    if settings.backend() == "aws":
        # Everything from the environment, as the runner resolves it.
        return RunnerPipesClient(runner_bin=settings.runner_bin())
    return RunnerPipesClient(runner_bin=settings.runner_bin(), root=settings.root())


defs = Definitions(
    assets=[raw_events, events_pipeline],
    resources={"runner": runner_client()},
)
