"""The code location's entry point: `dagster dev -m spotlake.definitions`."""

from dagster import Definitions

from spotlake import settings
from spotlake.assets.events import events_pipeline, raw_events
from spotlake.pipes import RunnerPipesClient


def runner_client() -> RunnerPipesClient:
    return RunnerPipesClient(
        runner_bin=settings.runner_bin(),
        data_root=settings.data_root(),
        mode=settings.mode(),  # type: ignore[arg-type]
        pipes_bucket=settings.pipes_bucket(),
    )


defs = Definitions(
    assets=[raw_events, events_pipeline],
    resources={"runner": runner_client()},
)
