"""Hostile partition keys through the real Dagster: in a ranged run they reach the runner in the
Pipes extras, alone in the Pipes context; either way each key's data lands in its own folder
and reads back with the key itself, and each partition's materialization is its own. Keys that
would leave their folder are refused, naming the key, before anything is written."""

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    DagsterInstance,
    StaticPartitionsDefinition,
    instance_for_test,
    materialize,
)
from dagster_spotlake import runner_assets
from dagster_spotlake.pipes import RunnerPipesClient
from runner_helpers import RUNNER
from test_dagster_project import engine_errors, materializations

JOB = Path(__file__).resolve().parents[1] / "runner" / "tests" / "jobs" / "keyed.toml"

LONGEST = "long key x" + "ß" * 95  # a 200-byte folder name, the longest accepted
# Each key and the folder its escaped form names (Hive's and Spark's escaping).
KEYS = {
    "a b": "a b",
    "100%": "100%25",
    "o'brien": "o%27brien",
    "' OR '1'='1": "%27 OR %271%27%3D%271",
    "Zürich 東京": "Zürich 東京",
    "a:b": "a%3Ab",
    LONGEST: LONGEST,
}
REFUSED = {"a/b": "path separator", "..": "name a folder", LONGEST + "x": "longer than 200 bytes"}


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


@pytest.fixture
def keyed(tmp_path: Path):
    for i, folder in enumerate(KEYS.values()):
        (tmp_path / "data" / "in" / folder).mkdir(parents=True)
        (tmp_path / "data" / "in" / folder / "p.csv").write_text(f"id,n\nrow-{i},{i}\n")

    @runner_assets(
        job=JOB,
        runner_bin=str(RUNNER),
        name="keyed",
        partitions_def=StaticPartitionsDefinition([*KEYS, *REFUSED]),
        backfill_policy=BackfillPolicy.single_run(),
    )
    def keyed_assets(context: AssetExecutionContext, runner: RunnerPipesClient):  # type: ignore[no-untyped-def]
        yield from runner.run(context=context).stream()

    client = RunnerPipesClient(runner_bin=str(RUNNER), root=str(tmp_path / "data"), env={"SPOTLAKE_WORKERS": "1"})
    return keyed_assets, client, tmp_path / "data"


def rows(folder: Path) -> list[tuple[str, str]]:
    return duckdb.sql(f"SELECT id, key FROM read_parquet('{folder}/**/*.parquet') ORDER BY id").fetchall()


def test_hostile_keys_travel_through_dagster_and_read_back(keyed, instance: DagsterInstance) -> None:
    assets, client, root = keyed
    keys = list(KEYS)
    # One alone: the key comes in the Pipes context.
    alone = materialize([assets], resources={"runner": client}, instance=instance, partition_key="o'brien")
    assert alone.success
    (mat,) = materializations(alone, "out")
    assert (mat.partition, mat.metadata["dagster/row_count"].value) == ("o'brien", 1)
    # All of them in one ranged run: the keys come in the extras.
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    ranged = materialize([assets], resources={"runner": client}, instance=instance, tags=tags)
    assert ranged.success
    own = materializations(ranged, "out")[len(keys) :]
    assert [m.partition for m in own] == keys
    for i, (key, folder) in enumerate(KEYS.items()):
        assert rows(root / "out" / f"k={folder}") == [(f"row-{i}", key)], key
    assert {m.partition: m.metadata["path"].value for m in own} == {
        key: str(root / "out" / f"k={folder}") for key, folder in KEYS.items()
    }
    assert {m.partition: m.metadata["dagster/row_count"].value for m in own} == dict.fromkeys(keys, 1)
    assert sorted(p.name for p in (root / "out").iterdir()) == sorted(f"k={f}" for f in KEYS.values())


@pytest.mark.parametrize("key", list(REFUSED))
def test_a_key_that_would_leave_its_folder_is_refused_naming_it(key: str, keyed, instance: DagsterInstance) -> None:
    assets, client, root = keyed
    result = materialize(
        [assets], resources={"runner": client}, instance=instance, partition_key=key, raise_on_error=False
    )
    assert not result.success
    errors = engine_errors(instance, result.run_id)
    assert any(f"partition key {key!r}".replace("'", '"') in m and REFUSED[key] in m for m in errors), errors
    # Nothing was written: no output, no item state, no live run left (the runner's state is
    # under the root's `_runner`).
    state = root / "_runner"
    assert not (root / "out").exists() and not (state / "items").exists(), sorted(map(str, state.rglob("*")))
    assert not any((state / "live").glob("*")), sorted(map(str, state.rglob("*")))
