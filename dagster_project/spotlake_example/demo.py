"""`make demo`: materializes three days of the example through Dagster one partition at a time,
then three more as one ranged run (a single-run backfill), locally, into a persistent
`DAGSTER_HOME` under `.demo/`, and says where to look."""

import os
import sys
from pathlib import Path

from spotlake_example import settings

HOME = settings.REPO / ".demo" / "dagster_home"
DAYS = ["2024-01-01", "2024-01-02", "2024-01-03"]
BACKFILL = ["2024-01-04", "2024-01-05", "2024-01-06"]


def main() -> int:
    HOME.mkdir(parents=True, exist_ok=True)
    (HOME / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator\n"
    )
    os.environ["DAGSTER_HOME"] = str(HOME)
    from dagster import DagsterInstance, materialize

    from spotlake_example.definitions import defs

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
    # A backfill of several days as one run: each day gets its own row count and check verdicts.
    from spotlake_example.assets.events import events_pipeline, raw_events

    for day in BACKFILL:
        if not materialize([raw_events], resources={"runner": runner}, instance=instance, partition_key=day).success:
            return 1
    tags = {"dagster/asset_partition_range_start": BACKFILL[0], "dagster/asset_partition_range_end": BACKFILL[-1]}
    result = materialize(
        [events_pipeline], resources={"runner": runner}, instance=instance, tags=tags, raise_on_error=False
    )
    if not result.success:
        print(f"backfill {BACKFILL[0]}..{BACKFILL[-1]}: FAILED (run {result.run_id})", file=sys.stderr)
        return 1
    print(f"backfill {BACKFILL[0]}..{BACKFILL[-1]} as one run:")
    own = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if "ranged_run_partitions" in e.materialization.metadata
    ]
    verdicts = [c for c in result.get_asset_check_evaluations() if c.partition]
    for day in BACKFILL:
        rows = ", ".join(
            f"{m.asset_key.to_user_string()}={m.metadata['dagster/row_count'].value}" for m in own if m.partition == day
        )
        passed = [c for c in verdicts if c.partition == day]
        print(f"  {day}: {rows}; checks passed {sum(c.passed for c in passed)}/{len(passed)}")
    data = Path(settings.root())
    print(f"\nOutputs are Delta Lake tables (Parquet files and the log that lists them) under {data}:")
    for name in ("clean", "by_user", "user_daily"):
        print(f"  {data / name}")
    print("Quarantined rows are under", data / "clean" / "_quarantine")
    print("\nQuery them by their log with DuckDB (its `delta` extension), e.g. rows per day:")
    user_daily = data / "user_daily"
    print(f"  SELECT day, COUNT(*) AS users, SUM(revenue) FROM delta_scan('{user_daily}') GROUP BY day ORDER BY day;")
    print(f"  SELECT day, COUNT(*) FROM delta_scan('{data / 'clean'}') GROUP BY day ORDER BY day;")
    print(f"or with Polars: pl.scan_delta('{data / 'user_daily'}').group_by('day').len().collect()")
    print("\nTo see it all in the Dagster UI (runs, materializations, checks, logs):")
    print(f"  DAGSTER_HOME={HOME} .venv/bin/dagster dev -m spotlake_example.definitions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
