"""The integration's contract with Dagster users: both Pipes idioms give a ranged run's
per-partition materializations; one precedence rule decides root, state, backend and config for
the CLI, the environment, the runner config, the job spec, the resource and the component; two
components with different roots live in one code location; keys can be prefixed or translated
and the runner reports under them; op tags, pool, retry policy and blocking checks reach the
assets."""

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    BackfillPolicy,
    DailyPartitionsDefinition,
    RetryPolicy,
    instance_for_test,
    materialize,
)
from dagster.components.testing import create_defs_folder_sandbox
from dagster_spotlake import RunnerPipesClient, RunnerTranslator, runner_assets
from runner_helpers import RUNNER, expected_user_daily, generate

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "runner" / "examples" / "events" / "job.toml"
DAYS = ["2024-01-08", "2024-01-09"]
daily = DailyPartitionsDefinition(start_date="2024-01-01")


def users_on(root: Path, day: str) -> int:
    """Users in a day's clean events, as DuckDB counts them from the raw files."""
    return expected_user_daily(root, day).execute("SELECT COUNT(*) FROM expected").fetchone()[0]


@pytest.mark.parametrize("idiom", ["stream", "get_results"])
def test_both_idioms_give_each_partition_of_a_ranged_run_its_own_materialization(tmp_path: Path, idiom: str) -> None:
    for day in DAYS:
        generate(tmp_path, start=day, days=1, events=400 if day == DAYS[0] else 3_000)
    expected = {d: users_on(tmp_path, d) for d in DAYS}
    assert expected[DAYS[0]] != expected[DAYS[1]], "the days differ, so a copied count would show"

    decorate = runner_assets(
        job=EXAMPLE, runner_bin=str(RUNNER), partitions_def=daily, backfill_policy=BackfillPolicy.single_run()
    )

    # The two idioms as users write them: a generator, and a function that returns the results.
    def streamed(context, runner: RunnerPipesClient):  # type: ignore[no-untyped-def]
        yield from runner.run(context=context).stream()

    def returned(context, runner: RunnerPipesClient):  # type: ignore[no-untyped-def]
        return runner.run(context=context).get_results()

    events = decorate(streamed if idiom == "stream" else returned)

    client = RunnerPipesClient(runner_bin=str(RUNNER), root=str(tmp_path), env={"SPOTLAKE_WORKERS": "2"})
    tags = {"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[1]}
    with instance_for_test() as instance:
        result = materialize([events], resources={"runner": client}, instance=instance, tags=tags)
        assert result.success
    own = {
        e.materialization.partition: e.materialization.metadata["dagster/row_count"].value
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == AssetKey("user_daily_metrics")
        and "ranged_run_partitions" in e.materialization.metadata
    }
    assert own == expected
    evaluations = [e for e in result.get_asset_check_evaluations() if e.check_name == "one_row_per_user"]
    assert sorted(e.partition for e in evaluations if e.partition) == DAYS
    assert all(e.passed for e in evaluations)


# --- one precedence rule --------------------------------------------------------------------


def show(*flags: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPOTLAKE_")}
    done = subprocess.run(
        [str(RUNNER), "config", "show", "--json", *flags],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def layers(tmp_path: Path) -> dict[str, Path]:
    """A job spec with a root, a runner config with a root, state and backend."""
    job_dir = tmp_path / "jobs"
    job_dir.mkdir()
    job = job_dir / "job.toml"
    job.write_text(EXAMPLE.read_text().replace('name = "events"', 'name = "events"\nroot = "spec-lake"', 1))
    config = tmp_path / "runner.toml"
    config.write_text(f'root = "{tmp_path}/config-lake"\nstate = "{tmp_path}/config-state"\n')
    return {"job": job, "config": config, "dir": tmp_path}


def value(shown: dict, name: str) -> tuple[str, str]:
    entry = shown[name]
    return entry["value"], entry["source"]["kind"]


def test_root_comes_from_flag_then_env_then_config_then_spec_then_default(layers: dict[str, Path]) -> None:
    d, job, config = layers["dir"], str(layers["job"]), str(layers["config"])
    env = {"SPOTLAKE_ROOT": f"{d}/env-lake"}
    assert value(show("--job", job, "--root", f"{d}/flag-lake", "--config", config, env=env), "root") == (
        f"{d}/flag-lake",
        "flag",
    )
    assert value(show("--job", job, "--config", config, env=env), "root") == (f"{d}/env-lake", "env")
    assert value(show("--job", job, "--config", config), "root") == (f"{d}/config-lake", "config_file")
    assert value(show("--job", job), "root") == (f"{d}/jobs/spec-lake", "job_spec")
    plain = d / "plain.toml"
    plain.write_text(EXAMPLE.read_text())
    assert value(show("--job", str(plain)), "root") == (str(d), "default")


def test_state_backend_and_config_follow_the_same_rule(layers: dict[str, Path]) -> None:
    d, job, config = layers["dir"], str(layers["job"]), str(layers["config"])
    # The config file itself: flag, then SPOTLAKE_CONFIG, then none.
    other = d / "other.toml"
    other.write_text('backend = "local"\n')
    assert value(show("--config", config, env={"SPOTLAKE_CONFIG": str(other)}), "config") == (config, "flag")
    assert value(show(env={"SPOTLAKE_CONFIG": str(other)}), "config") == (str(other), "env")
    assert show()["config"] is None
    # State: flag, env, config, then the root's `_runner`.
    assert value(show("--job", job, "--config", config, "--state", f"{d}/s1"), "state") == (f"{d}/s1", "flag")
    assert value(show("--job", job, "--config", config, env={"SPOTLAKE_STATE": f"{d}/s2"}), "state") == (
        f"{d}/s2",
        "env",
    )
    assert value(show("--job", job, "--config", config), "state") == (f"{d}/config-state", "config_file")
    assert value(show("--job", job), "state") == (f"{d}/jobs/spec-lake/_runner", "default")
    # Backend: flag, env, config, default.
    assert value(show("--backend", "local", env={"SPOTLAKE_BACKEND": "aws"}), "backend") == ("local", "flag")
    assert value(show(env={"SPOTLAKE_BACKEND": "aws"}), "backend") == ("aws", "env")
    assert value(show("--config", str(other)), "backend") == ("local", "config_file")
    assert value(show(), "backend") == ("local", "default")


def test_a_retired_variable_is_refused_naming_its_new_name(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPOTLAKE_")}
    done = subprocess.run(
        [str(RUNNER), "config", "show"], capture_output=True, text=True, env={**base, "RUNNER_CONFIG": "x.toml"}
    )
    assert done.returncode != 0
    assert "RUNNER_CONFIG is no longer read: the variable is now SPOTLAKE_CONFIG" in done.stderr, done.stderr
    # Every command, not only those that read the config.
    job = REPO / "runner" / "examples" / "events" / "job.toml"
    done = subprocess.run(
        [str(RUNNER), "validate", str(job)], capture_output=True, text=True, env={**base, "RUNNER_LOG": "debug"}
    )
    assert done.returncode != 0
    assert "RUNNER_LOG is no longer read: the variable is now SPOTLAKE_LOG" in done.stderr, done.stderr


def test_the_resource_passes_only_what_is_set_so_the_environment_decides_the_rest(tmp_path: Path) -> None:
    generate(tmp_path / "env-lake", start=DAYS[0], days=1, events=300)
    generate(tmp_path / "attr-lake", start=DAYS[0], days=1, events=300)

    @runner_assets(job=EXAMPLE, runner_bin=str(RUNNER), partitions_def=daily)
    def events(context, runner: RunnerPipesClient):  # type: ignore[no-untyped-def]
        yield from runner.run(context=context).stream()

    env = {"SPOTLAKE_ROOT": str(tmp_path / "env-lake"), "SPOTLAKE_WORKERS": "1"}
    unset = RunnerPipesClient(runner_bin=str(RUNNER), env=env)
    assert unset.flags() == []
    assert unset.resolved_settings(EXAMPLE)["root"] == {
        "value": str(tmp_path / "env-lake"),
        "source": {"kind": "env", "name": "SPOTLAKE_ROOT"},
    }
    explicit = RunnerPipesClient(runner_bin=str(RUNNER), root=str(tmp_path / "attr-lake"), env=env)
    with instance_for_test() as instance:
        for client in (unset, explicit):
            done = materialize([events], resources={"runner": client}, instance=instance, partition_key=DAYS[0])
            assert done.success
    for lake in ("env-lake", "attr-lake"):
        assert list((tmp_path / lake / "user_daily").rglob("*.parquet")), f"{lake}: the run wrote here"


# --- components, keys and Dagster's own settings ---------------------------------------------


def component_yaml(root: Path, prefix: str) -> str:
    return textwrap.dedent(
        f"""\
        type: dagster_spotlake.RunnerJobComponent
        attributes:
          job: job.toml
          runner_bin: {RUNNER}
          root: {root}
          key_prefix: {prefix}
          include_sources: false
          partitions: {{type: daily, start_date: "2024-01-01", end_offset: 1}}
          backfill: {{type: multi_run, max_partitions_per_run: 3}}
          op_tags: {{team: {prefix}}}
          pool: fleets
          retry_policy: {{max_retries: 2, delay: 5}}
          blocking_checks: true
        """
    )


def test_two_components_with_their_own_roots_in_one_code_location(tmp_path: Path) -> None:
    for name in ("eu", "us"):
        generate(tmp_path / name, start=DAYS[0], days=1, events=300 if name == "eu" else 900)
    with create_defs_folder_sandbox() as sandbox:
        for name in ("eu", "us"):
            folder = sandbox.defs_folder_path / name
            folder.mkdir(parents=True)
            shutil.copy(EXAMPLE, folder / "job.toml")
            (folder / "defs.yaml").write_text(component_yaml(tmp_path / name, name))
        with sandbox.build_all_defs() as defs, instance_for_test() as instance:
            graph = defs.resolve_asset_graph()
            assets_def = graph.assets_def_for_key(AssetKey(["eu", "user_daily_metrics"]))
            (op,) = [assets_def.node_def]
            assert op.tags["team"] == "eu" and op.pool == "fleets"
            assert op.retry_policy == RetryPolicy(max_retries=2, delay=5)
            assert assets_def.backfill_policy == BackfillPolicy.multi_run(3)
            assert all(spec.blocking for spec in assets_def.check_specs)
            assert assets_def.partitions_def.end_offset == 1
            job = defs.resolve_implicit_global_asset_job_def()
            result = job.execute_in_process(instance=instance, partition_key=DAYS[0])
            assert result.success
            made = {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
            assert made == {
                f"{r}/{k}" for r in ("eu", "us") for k in ("clean_events", "events_by_user", "user_daily_metrics")
            }
            rows = {
                e.materialization.asset_key.path[0]: e.materialization.metadata["dagster/row_count"].value
                for e in result.get_asset_materialization_events()
                if e.materialization.asset_key.path[-1] == "user_daily_metrics"
            }
    assert rows == {name: users_on(tmp_path / name, DAYS[0]) for name in ("eu", "us")}


class Upper(RunnerTranslator):
    def get_asset_key(self, asset):  # type: ignore[no-untyped-def]
        return AssetKey(["warehouse", asset["key"].upper()])


def test_a_translator_renames_keys_and_the_runner_reports_under_them(tmp_path: Path) -> None:
    generate(tmp_path, start=DAYS[0], days=1, events=300)

    @runner_assets(job=EXAMPLE, runner_bin=str(RUNNER), partitions_def=daily, translator=Upper())
    def events(context, runner: RunnerPipesClient):  # type: ignore[no-untyped-def]
        yield from runner.run(context=context).stream()

    assert {k.to_user_string() for k in events.keys} == {
        "warehouse/CLEAN_EVENTS",
        "warehouse/EVENTS_BY_USER",
        "warehouse/USER_DAILY_METRICS",
    }
    deps = {d.asset_key.to_user_string() for spec in events.specs for d in spec.deps}
    assert deps == {"raw_events", "warehouse/CLEAN_EVENTS", "warehouse/EVENTS_BY_USER"}, "a source keeps its key"
    client = RunnerPipesClient(runner_bin=str(RUNNER), root=str(tmp_path), env={"SPOTLAKE_WORKERS": "1"})
    with instance_for_test() as instance:
        # Only the reduce selected: its upstream steps run too, and only its key is reported.
        result = materialize(
            [events],
            resources={"runner": client},
            instance=instance,
            partition_key=DAYS[0],
            selection=[AssetKey(["warehouse", "USER_DAILY_METRICS"])],
        )
        assert result.success
    (metrics,) = [e.materialization for e in result.get_asset_materialization_events()]
    assert metrics.asset_key == AssetKey(["warehouse", "USER_DAILY_METRICS"])
    assert metrics.metadata["dagster/row_count"].value == users_on(tmp_path, DAYS[0])
    checks = {(e.asset_key.to_user_string(), e.check_name) for e in result.get_asset_check_evaluations()}
    assert checks == {
        ("warehouse/USER_DAILY_METRICS", "one_row_per_user"),
        ("warehouse/USER_DAILY_METRICS", "has_users"),
    }


def test_a_partition_of_another_timezone_keeps_its_own_date(tmp_path: Path) -> None:
    # Dagster gives the window of `2024-01-08` in Paris as 2024-01-08T00:00+01:00; the runner
    # reads its wall-clock date, as `runner run --partition 2024-01-08` does (in UTC it would be
    # the 7th, whose files don't exist).
    generate(tmp_path, start=DAYS[0], days=1, events=300)
    job = tmp_path / "job.toml"
    job.write_text(EXAMPLE.read_text().replace("raw/{partition_key}/", "raw/{partition_start_date}/"))
    paris = DailyPartitionsDefinition(start_date="2024-01-01", timezone="Europe/Paris")

    @runner_assets(job=job, runner_bin=str(RUNNER), partitions_def=paris)
    def events(context, runner: RunnerPipesClient):  # type: ignore[no-untyped-def]
        yield from runner.run(context=context).stream()

    client = RunnerPipesClient(runner_bin=str(RUNNER), root=str(tmp_path), env={"SPOTLAKE_WORKERS": "1"})
    with instance_for_test() as instance:
        result = materialize([events], resources={"runner": client}, instance=instance, partition_key=DAYS[0])
        assert result.success
    (metrics,) = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == AssetKey("user_daily_metrics")
    ]
    assert metrics.metadata["dagster/row_count"].value == users_on(tmp_path, DAYS[0])
