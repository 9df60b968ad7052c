"""What Dagster shows for a partition is that partition's own, with the real Dagster: its data
version whatever range it ran in, its share of a ranged run's bill, and its own check verdict
(failing, warning or passing) beside the range's, the worst of them."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    BackfillPolicy,
    DagsterInstance,
    instance_for_test,
    materialize,
)
from dagster_spotlake import runner_assets
from dagster_spotlake.pipes import RunnerPipesClient
from runner_helpers import RUNNER, expected_user_daily, generate, run_job
from spotlake_example.assets.events import daily, events_pipeline, raw_events
from test_dagster_project import materializations, priced_client

EXAMPLE = Path(__file__).resolve().parents[1] / "runner" / "examples" / "events" / "job.toml"
ASSET_KEYS = ["clean_events", "events_by_user", "user_daily_metrics"]


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


def ranged(assets, client: RunnerPipesClient, instance: DagsterInstance, first: str, last: str):
    """A single-run backfill of `first`..`last`, as Dagster launches one."""
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    result = materialize([assets], resources={"runner": client}, instance=instance, tags=tags)
    assert result.success
    return result


def versions(instance: DagsterInstance, days: list[str]) -> dict[tuple[str, str], str]:
    """The data version Dagster holds for each asset and day: its latest materialization's."""
    out = {}
    for key in ASSET_KEYS:
        for day in days:
            (record,) = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=AssetKey(key), asset_partitions=[day]), limit=1
            ).records
            out[(key, day)] = record.asset_materialization.tags["dagster/data_version"]
    return out


def test_a_days_data_version_is_its_own_whatever_range_it_ran_in(tmp_path: Path, instance: DagsterInstance) -> None:
    client = priced_client(tmp_path)
    days = ["2024-01-10", "2024-01-11", "2024-01-12", "2024-01-13"]
    for day in days:
        assert materialize([raw_events], resources={"runner": client}, instance=instance, partition_key=day).success
    day = days[1]
    alone = materialize([events_pipeline], resources={"runner": client}, instance=instance, partition_key=day)
    assert alone.success
    mine = versions(instance, [day])
    ranged(events_pipeline, client, instance, days[0], days[1])
    assert versions(instance, [day]) == mine, "a range with a neighbour before it"
    ranged(events_pipeline, client, instance, days[1], days[3])
    before = versions(instance, days)
    assert {k: v for k, v in before.items() if k[1] == day} == mine, "a range with neighbours after it"
    assert len(set(before.values())) == len(ASSET_KEYS) * len(days), before
    # New raw files for one day: that day's versions change, and no other day's.
    generate(tmp_path, start=days[2], days=1, seed=8)
    ranged(events_pipeline, client, instance, days[0], days[3])
    after = versions(instance, days)
    assert {k for k in before if after[k] != before[k]} == {(key, days[2]) for key in ASSET_KEYS}


def seconds_floor(key: str) -> int:
    """Items per day of the step that makes an asset: one clean file, 16 user buckets."""
    return {"clean_events": 1, "events_by_user": 1, "user_daily_metrics": 16}[key]


def test_a_ranged_runs_bill_follows_each_days_work_and_adds_up(tmp_path: Path, instance: DagsterInstance) -> None:
    days = ["2024-01-15", "2024-01-16", "2024-01-17"]
    # The work is known by construction: every item of the third day is held 3 s (the test
    # failpoint), an item of the second day takes what its data takes (well under a second).
    # Both days have the same items in each step (one clean file, 16 user buckets).
    client = priced_client(tmp_path, SPOTLAKE_TEST_ITEM_SLEEP_MS_IN=f"{days[2]}=3000")
    for day in days:
        assert materialize([raw_events], resources={"runner": client}, instance=instance, partition_key=day).success
    # The first day done already: in the range it has nothing to do.
    assert materialize(
        [events_pipeline], resources={"runner": client}, instance=instance, partition_key=days[0]
    ).success
    result = ranged(events_pipeline, client, instance, days[0], days[2])
    for key in ASSET_KEYS:
        mats = materializations(result, key)
        whole, parts = mats[0], mats[len(days) :]
        cost = {m.partition: m.metadata["cost_usd"].value for m in parts}
        seconds = {m.partition: m.metadata["step_attempt_seconds"].value for m in parts}
        assert cost[days[0]] == 0 and seconds[days[0]] == 0, (key, cost, seconds)
        run_cost = whole.metadata["cost_usd"].value
        assert sum(cost.values()) == pytest.approx(run_cost, rel=1e-12), (key, cost, run_cost)
        # The held day's items ran at least 3 s each; the other day's, a fraction of that. Its
        # share of the step's bill is the share of the work: at least 3/(3+1) even if the other
        # day's items took a whole second each, and short of all of it.
        assert seconds[days[2]] >= 3.0 * seconds_floor(key), (key, seconds)
        assert 0.75 * run_cost <= cost[days[2]] < run_cost, (key, cost, run_cost)
    # A no-op rerun of the range: nothing ran, so every day costs 0, a known 0.
    again = ranged(events_pipeline, client, instance, days[0], days[2])
    for key in ASSET_KEYS:
        parts = materializations(again, key)[len(days) :]
        assert [m.partition for m in parts] == days
        for m in parts:
            assert "cost_unknown" not in m.metadata, (key, m.partition, m.metadata.get("cost_unknown"))
            assert (m.metadata["cost_usd"].value, m.metadata["instance_hours"].value) == (0, 0), (key, m.partition)


def test_an_item_whose_manifest_is_found_before_its_callback_keeps_its_seconds(tmp_path: Path) -> None:
    # Every item is held 0.5 s before it publishes and its callback 1 s after, while the
    # orchestrator reads pending manifests every 0.1 s: each commit is found by its manifest
    # first, and the attempt's seconds come only with the late callback.
    day = "2024-01-25"
    generate(tmp_path, start=day, days=1)
    env = {
        "SPOTLAKE_TEST_ITEM_SLEEP_MS": "500",
        "SPOTLAKE_TEST_CALLBACK_DELAY_MS": "1000",
        "SPOTLAKE_TEST_MANIFEST_POLL_MS": "100",
    }
    summary = run_job(tmp_path, day, env=env)
    steps = {s["name"]: s for s in summary["steps"]}
    for name, items in {"clean": 1, "shuffle": 1, "user_daily": 16}.items():
        assert steps[name]["items"] == items, (name, steps[name]["items"])
        assert steps[name]["by_partition"][day]["attempt_seconds"] >= 0.5 * items, (name, steps[name])


def test_a_check_fails_warns_and_passes_per_day_and_the_range_is_its_worst(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    days = ["2024-01-20", "2024-01-21", "2024-01-22"]
    for day, events in zip(days, [300, 2_000, 20_000], strict=True):
        generate(tmp_path, start=day, days=1, events=events)
    users = {d: expected_user_daily(tmp_path, d).execute("SELECT COUNT(*) FROM expected").fetchone()[0] for d in days}
    assert users[days[0]] < users[days[1]] < users[days[2]], users
    # Fewer users than the second day's fails; fewer than the third day's warns.
    job = tmp_path / "job.toml"
    example = EXAMPLE.read_text()
    graded = example.replace('min = 1\nseverity = "WARN"', f"min = {users[days[1]]}\nwarn_min = {users[days[2]]}")
    assert graded != example
    job.write_text(graded)

    @runner_assets(
        job=job,
        runner_bin=str(RUNNER),
        name="graded",
        partitions_def=daily,
        backfill_policy=BackfillPolicy.single_run(),
    )
    def graded_assets(context: AssetExecutionContext, runner: RunnerPipesClient):  # type: ignore[no-untyped-def]
        yield from runner.run(context=context).stream()

    client = RunnerPipesClient(runner_bin=str(RUNNER), root=str(tmp_path), env={"SPOTLAKE_WORKERS": "2"})

    def verdicts(result, check: str = "has_users") -> tuple[dict[str, tuple[bool, str]], tuple[bool, str]]:
        mine = [e for e in result.get_asset_check_evaluations() if e.check_name == check]
        own = {e.partition: (e.passed, e.severity.value) for e in mine if e.partition}
        assert mine[-1].partition is None, "the range's own result comes last, as the check's latest"
        return own, (mine[-1].passed, mine[-1].severity.value)

    first = ranged(graded_assets, client, instance, days[0], days[2])
    own, whole = verdicts(first)
    assert own == {days[0]: (False, "ERROR"), days[1]: (False, "WARN"), days[2]: (True, "ERROR")}
    assert whole == (False, "ERROR")
    # The other checks pass in every day: one day's failure is not spread to the others.
    for check in ["one_row_per_user", "user_id_present"]:
        own, whole = verdicts(first, check)
        assert own == {day: (True, "ERROR") for day in days} and whole == (True, "ERROR"), check
    # Without the failing day, the worst left is the warning.
    own, whole = verdicts(ranged(graded_assets, client, instance, days[1], days[2]))
    assert own == {days[1]: (False, "WARN"), days[2]: (True, "ERROR")}
    assert whole == (False, "WARN")
