"""`make demo` (until the runner's example lands): materializes three daily partitions of the
pipes-rs example asset through the real Dagster orchestrator, into a persistent DAGSTER_HOME
under .demo/, and prints where to look."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".demo" / "dagster_home"
HOME.mkdir(parents=True, exist_ok=True)
os.environ["DAGSTER_HOME"] = str(HOME)

from dagster import (  # noqa: E402
    AssetCheckSpec,
    AssetExecutionContext,
    DagsterInstance,
    DailyPartitionsDefinition,
    PipesSubprocessClient,
    asset,
    materialize,
)

EXAMPLE = ROOT / "target" / "debug" / "examples" / "partitioned_asset"


@asset(
    partitions_def=DailyPartitionsDefinition(start_date="2024-01-01"),
    check_specs=[AssetCheckSpec("has_events", asset="daily_events")],
    code_version="v1",
)
def daily_events(context: AssetExecutionContext, pipes: PipesSubprocessClient):  # type: ignore[no-untyped-def]
    yield from pipes.run(context=context, command=[str(EXAMPLE)]).get_results()


def main() -> None:
    instance = DagsterInstance.get()
    for day in ("2024-01-01", "2024-01-02", "2024-01-03"):
        result = materialize(
            [daily_events], resources={"pipes": PipesSubprocessClient()}, instance=instance, partition_key=day
        )
        mat = result.get_asset_materialization_events()[0].materialization
        print(f"{day}: success={result.success} row_count={mat.metadata['dagster/row_count'].value}")
    print(f"\nRuns and materializations are in {HOME}. To browse them:")
    print(f"  DAGSTER_HOME={HOME} .venv/bin/dagster-webserver -f tests/demo_pipes.py")


if __name__ == "__main__":
    main()
