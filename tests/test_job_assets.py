"""The job spec is the asset graph: `runner_assets` and `RunnerJobComponent` build assets,
dependencies, checks and code versions from `runner describe`, with the real Dagster."""

import shutil
import textwrap
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, instance_for_test, materialize
from dagster.components.testing import create_defs_folder_sandbox
from dagster_spotlake import JobDescriptionError, runner_assets
from dagster_spotlake.pipes import RunnerPipesClient
from runner_helpers import RUNNER
from spotlake_example.assets.events import events_pipeline

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "runner" / "examples" / "events" / "job.toml"


@pytest.fixture
def instance():
    with instance_for_test() as inst:
        yield inst


def graph(assets) -> dict[str, tuple[list[str], str | None]]:
    """Each asset's upstream assets and code version."""
    return {
        spec.key.to_user_string(): (sorted(d.asset_key.to_user_string() for d in spec.deps), spec.code_version)
        for spec in assets.specs
    }


def checks(assets) -> set[tuple[str, str]]:
    return {(k.asset_key.to_user_string(), k.name) for k in assets.check_keys}


def build(job: Path):
    @runner_assets(job=job, runner_bin=str(RUNNER), name="copy")
    def copy(context, runner: RunnerPipesClient):  # type: ignore[no-untyped-def]
        yield from runner.run(context=context).stream()

    return copy


def test_the_example_is_built_from_its_job_spec() -> None:
    assert graph(events_pipeline) == {
        "clean_events": (["raw_events"], graph(events_pipeline)["clean_events"][1]),
        "events_by_user": (["clean_events"], graph(events_pipeline)["events_by_user"][1]),
        "user_daily_metrics": (["events_by_user"], graph(events_pipeline)["user_daily_metrics"][1]),
    }
    assert checks(events_pipeline) == {
        ("clean_events", "user_id_present"),
        ("user_daily_metrics", "one_row_per_user"),
        ("user_daily_metrics", "has_users"),
    }
    versions = {v for _, v in graph(events_pipeline).values()}
    assert len(versions) == 3 and all(v and len(v) == 16 for v in versions), versions


def test_a_spec_change_shows_in_dagster_with_no_python_change(tmp_path: Path) -> None:
    before = build(EXAMPLE)
    spec = EXAMPLE.read_text()
    # A new output of the reduce step, and a renamed check.
    spec = spec.replace(
        '[[check]]\nkind = "no_nulls"',
        '[step.outputs.big_spenders]\npath = "big_spenders/day={partition_key}"\n'
        'sql = "SELECT user_id FROM events WHERE amount > 100"\n\n[[check]]\nkind = "no_nulls"',
        1,
    )
    spec = spec.replace("COUNT(*) AS events,", "COUNT(*) AS events_seen,", 1)
    spec = spec.replace('name = "has_users"', 'name = "has_any_user"')
    job = tmp_path / "job.toml"
    job.write_text(spec)
    after = build(job)
    g_before, g_after = graph(before), graph(after)
    assert set(g_after) == set(g_before) | {"big_spenders"}
    assert g_after["big_spenders"][0] == ["events_by_user"]
    assert ("user_daily_metrics", "has_any_user") in checks(after)
    assert ("user_daily_metrics", "has_users") not in checks(after)
    # Only the step that changed has a new code version.
    assert g_after["user_daily_metrics"][1] != g_before["user_daily_metrics"][1]
    assert g_after["clean_events"][1] == g_before["clean_events"][1]
    assert g_after["events_by_user"][1] == g_before["events_by_user"][1]


def test_a_bad_spec_fails_at_load_naming_it(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text('name = "x"\n[[step]]\nname = "s"\n')
    with pytest.raises(JobDescriptionError, match=r"job\.toml"):
        build(job)


def generate(root: Path, day: str) -> None:
    import subprocess

    subprocess.run(
        [str(RUNNER), "example", "generate", "--out", str(root), "--start", day, "--days", "1"],
        check=True,
        capture_output=True,
    )


def step_lines(instance: DagsterInstance, run_id: str) -> list[str]:
    return [
        e.user_message
        for e in instance.all_logs(run_id)
        if e.dagster_event is None and "step " in e.user_message and "items (" in e.user_message
    ]


def test_selecting_one_asset_runs_its_step_and_only_missing_upstream_ones(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    generate(tmp_path, "2024-01-05")
    client = RunnerPipesClient(runner_bin=str(RUNNER), root=str(tmp_path), env={"SPOTLAKE_WORKERS": "2"})
    day = "2024-01-05"

    def select_the_reduce():  # type: ignore[no-untyped-def]
        return materialize(
            [events_pipeline],
            selection=["user_daily_metrics"],
            resources={"runner": client},
            instance=instance,
            partition_key=day,
        )

    # Nothing made yet: the reduce needs the shuffle, which needs the clean step.
    first = select_the_reduce()
    assert first.success
    assert [m.asset_key for m in (e.materialization for e in first.get_asset_materialization_events())] == [
        AssetKey("user_daily_metrics")
    ], "only the selected asset is materialized"
    assert [line.split(":")[0] for line in step_lines(instance, first.run_id)] == [
        "step 1/3 clean",
        "step 2/3 shuffle",
        "step 3/3 user_daily",
    ]
    # Upstream outputs exist now: selecting the reduce again runs the reduce alone.
    again = select_the_reduce()
    assert again.success
    assert [line.split(":")[0] for line in step_lines(instance, again.run_id)] == ["step 1/1 user_daily"]
    assert {e.check_name for e in again.get_asset_check_evaluations()} == {"one_row_per_user", "has_users"}


def test_the_component_loads_from_defs_yaml_and_materializes(tmp_path: Path, instance: DagsterInstance) -> None:
    data = tmp_path / "lake"
    generate(data, "2024-01-07")
    with create_defs_folder_sandbox() as sandbox:
        folder = sandbox.defs_folder_path / "events"
        folder.mkdir(parents=True)
        shutil.copy(EXAMPLE, folder / "job.toml")
        (folder / "defs.yaml").write_text(
            textwrap.dedent(
                f"""\
                type: dagster_spotlake.RunnerJobComponent
                attributes:
                  job: job.toml
                  runner_bin: {RUNNER}
                  root: {data}
                  group_name: events
                  partitions:
                    type: daily
                    start_date: "2024-01-01"
                """
            )
        )
        with sandbox.build_all_defs() as defs:
            ag = defs.resolve_asset_graph()
            keys = {k.to_user_string() for k in ag.get_all_asset_keys()}
            assert keys == {"raw_events", "clean_events", "events_by_user", "user_daily_metrics"}
            assert not ag.get(AssetKey("raw_events")).is_materializable, "the job's source is external"
            job = defs.resolve_implicit_global_asset_job_def()
            result = job.execute_in_process(instance=instance, partition_key="2024-01-07")
            assert result.success
            made = {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
            assert made == {"clean_events", "events_by_user", "user_daily_metrics"}
            evaluations = result.get_asset_check_evaluations()
            verdicts = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in evaluations}
            assert verdicts == {
                ("clean_events", "user_id_present"): True,
                ("user_daily_metrics", "one_row_per_user"): True,
                ("user_daily_metrics", "has_users"): True,
            }
