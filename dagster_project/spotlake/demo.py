"""`make demo`: materializes three days of the example through Dagster, locally, into a
persistent `DAGSTER_HOME` under `.demo/`, and says where to look."""

import os
import sys
from pathlib import Path

from spotlake import settings

HOME = settings.REPO / ".demo" / "dagster_home"
DAYS = ["2024-01-01", "2024-01-02", "2024-01-03"]


def main() -> int:
    HOME.mkdir(parents=True, exist_ok=True)
    (HOME / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator\n"
    )
    os.environ["DAGSTER_HOME"] = str(HOME)
    from dagster import DagsterInstance, materialize

    from spotlake.definitions import defs

    assets = list(defs.assets or [])
    runner = defs.resources["runner"]
    instance = DagsterInstance.get()
    for day in DAYS:
        result = materialize(
            assets, resources={"runner": runner}, instance=instance, partition_key=day, raise_on_error=False
        )
        if not result.success:
            print(f"{day}: FAILED (run {result.run_id}); see the output above", file=sys.stderr)
            return 1
        rows = {
            e.materialization.asset_key.to_user_string(): e.materialization.metadata.get("dagster/row_count")
            for e in result.get_asset_materialization_events()
        }
        checks = result.get_asset_check_evaluations()
        summary = ", ".join(f"{k}={v.value}" for k, v in rows.items() if v is not None)
        print(f"{day}: {summary}; checks passed {sum(c.passed for c in checks)}/{len(checks)}")
        # Each asset carries its share of the run's bill; the shares add up to the run.
        metadata = [e.materialization.metadata for e in result.get_asset_materialization_events()]
        cost = sum(m["cost_usd"].value for m in metadata if "cost_usd" in m)
        hours = sum(m["instance_hours"].value for m in metadata if "instance_hours" in m)
        print(f"  cost ${cost:.4f} for {hours:.4f} worker-hours (at pricing.local_core_hour_usd, 0 by default)")
    data = Path(settings.data_root())
    print(f"\nOutputs (hive-partitioned Parquet) are under {data}:")
    for name in ("clean", "by_user", "user_daily"):
        print(f"  {data / name}")
    print("Quarantined rows are under", data / "clean" / "_quarantine")
    print("\nTo see it all in the Dagster UI (runs, materializations, checks, logs):")
    print(f"  DAGSTER_HOME={HOME} .venv/bin/dagster dev -m spotlake.definitions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
