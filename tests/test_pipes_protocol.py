"""pipes-rs against the real Dagster orchestrator: every injector and reader, every method,
every metadata type, checks, errors, multi-assets and stdio. Mirrors the cases of Dagster's
conformance harness for non-Python implementations, and adds the ones it lacks."""

import json
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Binaries
from dagster import (
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    DagsterInstance,
    DailyPartitionsDefinition,
    MetadataValue,
    PipesSubprocessClient,
    instance_for_test,
    materialize,
    multi_asset,
)
from dagster._core.definitions.metadata import (
    BoolMetadataValue,
    DagsterAssetMetadataValue,
    DagsterRunMetadataValue,
    FloatMetadataValue,
    IntMetadataValue,
    JsonMetadataValue,
    MarkdownMetadataValue,
    NotebookMetadataValue,
    NullMetadataValue,
    PathMetadataValue,
    TableColumnLineageMetadataValue,
    TableMetadataValue,
    TableSchemaMetadataValue,
    TextMetadataValue,
    TimestampMetadataValue,
    UrlMetadataValue,
)
from dagster_spotlake.pipes import DrainingFileMessageReader
from pipes_harness import make_injector, make_reader, run_external

GOLDEN = Path(__file__).resolve().parent.parent / "pipes-rs" / "tests" / "golden"
EXTRAS_CASES: list[dict[str, Any]] = json.loads((GOLDEN / "extras_cases.json").read_text())
EXTRAS_CASES.append({**EXTRAS_CASES[-1], "corge": None})
STATIC_METADATA: dict[str, Any] = json.loads((GOLDEN / "static_metadata.json").read_text())


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


def expected_value(raw: Any, kind: str) -> MetadataValue:
    return {
        "text": MetadataValue.text,
        "url": MetadataValue.url,
        "path": MetadataValue.path,
        "notebook": MetadataValue.notebook,
        "json": MetadataValue.json,
        "md": MetadataValue.md,
        "float": MetadataValue.float,
        "int": MetadataValue.int,
        "bool": MetadataValue.bool,
        "dagster_run": MetadataValue.dagster_run,
        "asset": lambda v: MetadataValue.asset(AssetKey.from_user_string(v)),
        "null": lambda _: MetadataValue.null(),
    }[kind](raw)


def assert_static_metadata(metadata: dict[str, Any]) -> None:
    assert set(metadata) >= set(STATIC_METADATA), f"missing: {set(STATIC_METADATA) - set(metadata)}"
    for key, entry in STATIC_METADATA.items():
        want = expected_value(entry["raw_value"], entry["type"])
        assert metadata[key] == want, key
        assert type(metadata[key]) is type(want), key


def no_silence(outcome: Any) -> None:
    text = "\n".join(m for _, m in outcome.user_logs())
    assert "did not receive any messages" not in text
    assert "did not receive closed message" not in text.lower()


# ---------------------------------------------------------------- channels


@pytest.mark.parametrize("injector_kind", ["env", "tempfile", "s3"])
@pytest.mark.parametrize("reader_kind", ["tempfile", "s3"])
def test_components(
    injector_kind: str, reader_kind: str, binaries: Binaries, instance: DagsterInstance, request: pytest.FixtureRequest
) -> None:
    bucket = request.getfixturevalue("s3_bucket") if "s3" in (injector_kind, reader_kind) else None
    cmd = [str(binaries.pipes_tests), "--env", "--test-name", "test_components"]
    if injector_kind == "s3":
        cmd += ["--context-loader", "s3"]
    if reader_kind == "s3":
        cmd += ["--message-writer", "s3"]
    out = run_external(
        cmd, instance, injector=make_injector(injector_kind, bucket), reader=make_reader(reader_kind, bucket)
    )
    assert out.result.success
    assert out.custom_messages == ["Hello from external process!"]
    no_silence(out)


@pytest.mark.parametrize("case", range(len(EXTRAS_CASES)))
@pytest.mark.parametrize("injector_kind", ["env", "tempfile", "s3"])
def test_extras(
    case: int,
    injector_kind: str,
    binaries: Binaries,
    instance: DagsterInstance,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    extras = EXTRAS_CASES[case]
    bucket = request.getfixturevalue("s3_bucket") if injector_kind == "s3" else None
    path = tmp_path / "extras.json"
    path.write_text(json.dumps(extras))
    cmd = [
        str(binaries.pipes_tests),
        "--test-name",
        "test_extras",
        f"--extras={path}",
        "--job-name=__ephemeral_asset_job__",
    ]
    out = run_external(cmd, instance, injector=make_injector(injector_kind, bucket), extras=extras)
    assert out.result.success
    no_silence(out)


def test_extras_mismatch_fails_the_step(binaries: Binaries, instance: DagsterInstance, tmp_path: Path) -> None:
    path = tmp_path / "extras.json"
    path.write_text(json.dumps({"foo": "bar"}))
    out = run_external([str(binaries.pipes_tests), f"--extras={path}"], instance, extras={"foo": "baz"})
    assert not out.result.success


def test_wrong_job_name_fails_the_step(binaries: Binaries, instance: DagsterInstance) -> None:
    out = run_external([str(binaries.pipes_tests), "--job-name", "not_this_job"], instance)
    assert not out.result.success


# ---------------------------------------------------------------- methods


def test_error_reporting(binaries: Binaries, instance: DagsterInstance, tmp_path: Path) -> None:
    messages = tmp_path / "messages"
    out = run_external(
        [str(binaries.pipes_tests), "--test-name", "test_error_reporting"],
        instance,
        reader=DrainingFileMessageReader(str(messages), cleanup_file=False),
    )
    assert not out.result.success
    lines = [json.loads(line) for line in messages.read_text().splitlines()]
    assert [m["method"] for m in lines] == ["opened", "closed"]
    exc = lines[-1]["params"]["exception"]
    assert exc["message"] == "Very bad error has happened!"
    assert exc["name"] and isinstance(exc["stack"], list) and exc["stack"]
    (error,) = out.engine_errors()
    assert error.message == "Very bad error has happened!"
    assert error.cls_name == "VeryBadError"


def test_error_cause_chain_reaches_dagster(binaries: Binaries, instance: DagsterInstance) -> None:
    out = run_external([str(binaries.protocol_tour), "error-chain"], instance)
    assert not out.result.success
    (error,) = out.engine_errors()
    assert error.message == "loading the day's events failed"
    assert error.cls_name == "LoadError"
    assert error.cause is not None and error.cause.message == "events.csv is missing"


def test_panic_is_reported(binaries: Binaries, instance: DagsterInstance) -> None:
    out = run_external([str(binaries.protocol_tour), "panic"], instance)
    assert not out.result.success
    (error,) = out.engine_errors()
    assert error.message == "tour panicked on purpose"
    assert error.cls_name == "panic"
    assert error.stack, "a panic carries its backtrace"


def test_message_log_levels(binaries: Binaries, instance: DagsterInstance) -> None:
    out = run_external([str(binaries.pipes_tests), "--test-name", "test_message_log"], instance)
    assert out.result.success
    logs = out.user_logs()
    want = {
        "Debug message": logging.DEBUG,
        "Info message": logging.INFO,
        "Warning message": logging.WARNING,
        "Error message": logging.ERROR,
        "Critical message": logging.CRITICAL,
    }
    for text, level in want.items():
        assert (level, text) in [(lvl, msg.split(" - ")[-1]) for lvl, msg in logs], text


def test_tracing_events_become_logs(binaries: Binaries, instance: DagsterInstance) -> None:
    out = run_external([str(binaries.protocol_tour), "tracing"], instance)
    assert out.result.success
    logs = [(lvl, msg.split(" - ")[-1]) for lvl, msg in out.user_logs()]
    assert (logging.DEBUG, "tour trace") in logs
    assert (logging.INFO, "tour info rows=3") in logs
    assert (logging.WARNING, "tour warn") in logs
    assert (logging.ERROR, "tour error") in logs


CUSTOM_PAYLOADS: list[Any] = [None, 1, 1.5, "text", True, [1, "a", None], {"nested": {"list": [1, 2], "x": None}}]


@pytest.mark.parametrize("payload", CUSTOM_PAYLOADS)
def test_custom_message(payload: Any, binaries: Binaries, instance: DagsterInstance, tmp_path: Path) -> None:
    path = tmp_path / "payload.json"
    path.write_text(json.dumps({"payload": payload}))
    out = run_external([str(binaries.pipes_tests), "--custom-payload", str(path)], instance)
    assert out.result.success
    assert out.custom_messages == [payload]


@pytest.mark.parametrize("writer", ["file", "s3"])
def test_a_huge_message_arrives_whole(
    writer: str, binaries: Binaries, instance: DagsterInstance, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # 16 MiB of text and 200,000 list items in one message, far past any line buffer, through
    # both channels: a temp file read by the draining reader, and one S3 chunk.
    payload = {"blob": "x" * (16 << 20), "items": list(range(200_000))}
    path = tmp_path / "payload.json"
    path.write_text(json.dumps({"payload": payload}))
    command = [str(binaries.pipes_tests), "--custom-payload", str(path)]
    reader = None
    if writer == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        command += ["--message-writer", "s3"]
        reader = make_reader("s3", bucket)
    out = run_external(command, instance, reader=reader)
    assert out.result.success
    assert len(out.custom_messages) == 1
    got = out.custom_messages[0]
    assert len(got["blob"]) == 16 << 20 and set(got["blob"]) == {"x"}
    assert got["items"] == payload["items"]


@pytest.mark.parametrize("data_version", [None, "alpha"])
@pytest.mark.parametrize("asset_key", [None, "my_asset"])
def test_report_asset_materialization(
    data_version: str | None, asset_key: str | None, binaries: Binaries, instance: DagsterInstance, tmp_path: Path
) -> None:
    spec: dict[str, Any] = {}
    if data_version:
        spec["dataVersion"] = data_version
    if asset_key:
        spec["assetKey"] = asset_key
    path = tmp_path / "mat.json"
    path.write_text(json.dumps(spec))
    out = run_external([str(binaries.pipes_tests), "--report-asset-materialization", str(path)], instance)
    assert out.result.success
    (mat,) = out.materializations()
    assert_static_metadata(dict(mat.metadata))
    tags = mat.tags or {}
    if data_version:
        assert tags.get("dagster/data_version") == data_version
    else:
        assert "dagster/data_version" not in tags or tags.get("dagster/data_version") != "alpha"


@pytest.mark.parametrize("passed", [True, False])
@pytest.mark.parametrize("severity", ["WARN", "ERROR"])
@pytest.mark.parametrize("asset_key", [None, "my_asset"])
def test_report_asset_check(
    passed: bool, severity: str, asset_key: str | None, binaries: Binaries, instance: DagsterInstance, tmp_path: Path
) -> None:
    spec: dict[str, Any] = {"passed": passed, "severity": severity, "checkName": "my_check"}
    if asset_key:
        spec["assetKey"] = asset_key
    path = tmp_path / "check.json"
    path.write_text(json.dumps(spec))
    out = run_external(
        [str(binaries.pipes_tests), "--report-asset-check", str(path)],
        instance,
        check_specs=[AssetCheckSpec(name="my_check", asset="my_asset")],
    )
    (evaluation,) = out.result.get_asset_check_evaluations()
    assert evaluation.passed == passed
    assert evaluation.severity == AssetCheckSeverity(severity)
    assert_static_metadata(dict(evaluation.metadata))
    # A failed ERROR check does not fail the step in Dagster; only a crash would.
    assert out.result.success


def test_every_metadata_type_arrives_typed(binaries: Binaries, instance: DagsterInstance) -> None:
    out = run_external([str(binaries.protocol_tour), "every-metadata"], instance)
    assert out.result.success
    (mat,) = out.materializations()
    md = dict(mat.metadata)
    expected_types = {
        "infer": JsonMetadataValue,
        "text": TextMetadataValue,
        "url": UrlMetadataValue,
        "path": PathMetadataValue,
        "notebook": NotebookMetadataValue,
        "md": MarkdownMetadataValue,
        "dagster_run": DagsterRunMetadataValue,
        "json": JsonMetadataValue,
        "float": FloatMetadataValue,
        "int": IntMetadataValue,
        "bool": BoolMetadataValue,
        "timestamp": TimestampMetadataValue,
        "null": NullMetadataValue,
        "asset": DagsterAssetMetadataValue,
        "table": TableMetadataValue,
        "table_schema": TableSchemaMetadataValue,
        "table_column_lineage": TableColumnLineageMetadataValue,
    }
    for key, kind in expected_types.items():
        assert isinstance(md[key], kind), (key, md[key])
    assert md["float"].value == 2.0
    assert md["int"].value == 42
    assert md["timestamp"].value == 1704067200.5
    assert md["asset"].value == AssetKey(["upstream", "events"])
    assert md["json"].value == {"nested": {"list": [1, None, "x"]}}
    table = md["table"].value
    assert [r.data for r in table.records] == [
        {"day": "2024-01-01", "rows": 10, "share": 0.25, "ok": True},
        {"day": "2024-01-02", "rows": 30, "share": 0.75, "ok": None},
    ]
    rows_col = table.schema.columns[1]
    assert rows_col.description == "rows that day"
    assert rows_col.constraints.nullable is False
    assert table.schema.columns[2].tags == {"unit": "ratio"}
    assert [c.name for c in md["table_schema"].value.columns] == ["day", "rows"]
    dep = md["table_column_lineage"].value.deps_by_column["rows"][0]
    assert dep.asset_key == AssetKey(["upstream", "events"]) and dep.column_name == "id"


def test_multi_asset_step(binaries: Binaries, instance: DagsterInstance) -> None:
    @multi_asset(
        specs=[AssetSpec("a1"), AssetSpec(["grp", "a2"])],
        check_specs=[
            AssetCheckSpec("non_empty", asset="a1"),
            AssetCheckSpec("non_empty", asset=AssetKey(["grp", "a2"])),
        ],
    )
    def both(context: AssetExecutionContext, pipes: PipesSubprocessClient):  # type: ignore[no-untyped-def]
        yield from pipes.run(context=context, command=[str(binaries.protocol_tour), "multi-asset"]).get_results()

    client = PipesSubprocessClient(message_reader=make_reader("tempfile"))
    result = materialize([both], resources={"pipes": client}, instance=instance)
    assert result.success
    mats = {e.materialization.asset_key: e.materialization for e in result.get_asset_materialization_events()}
    assert mats[AssetKey("a1")].metadata["which"] == MetadataValue.text("a1")
    assert mats[AssetKey(["grp", "a2"])].metadata["which"] == MetadataValue.text("grp/a2")
    evaluations = result.get_asset_check_evaluations()
    assert {(e.asset_key, e.passed) for e in evaluations} == {(AssetKey("a1"), True), (AssetKey(["grp", "a2"]), True)}


@pytest.mark.parametrize("reader_kind", ["file", "s3"])
def test_stdio_is_forwarded_when_asked(
    reader_kind: str, binaries: Binaries, instance: DagsterInstance, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if reader_kind == "file":
        messages = tmp_path / "messages"
        reader = DrainingFileMessageReader(str(messages), include_stdio_in_messages=True, cleanup_file=False)
    else:
        bucket = request.getfixturevalue("s3_bucket")
        reader = make_reader("s3", bucket, include_stdio=True)
    out = run_external([str(binaries.protocol_tour), "stdio"], instance, reader=reader)
    assert out.result.success
    if reader_kind == "file":
        lines = [json.loads(line) for line in messages.read_text().splitlines()]
    else:
        import boto3

        s3 = boto3.client("s3")
        keys = sorted(
            (o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]),
            key=lambda k: int(k.rsplit("/", 1)[1].split(".")[0]),
        )
        lines = [
            json.loads(line)
            for k in keys
            for line in s3.get_object(Bucket=bucket, Key=k)["Body"].read().decode().splitlines()
        ]
    streams = {(m["params"]["stream"], m["params"]["text"]) for m in lines if m["method"] == "log_external_stream"}
    assert any(s == "stdout" and "tour-stdout-line" in t for s, t in streams), streams
    assert any(s == "stderr" and "tour-stderr-line" in t for s, t in streams), streams
    assert lines[-1]["method"] == "closed"
    assert [m["method"] for m in lines].count("closed") == 1


def test_s3_chunks_are_contiguous_and_end_with_closed(
    binaries: Binaries, instance: DagsterInstance, s3_bucket: str
) -> None:
    out = run_external(
        [str(binaries.pipes_tests), "--test-name", "test_message_log", "--message-writer", "s3"],
        instance,
        reader=make_reader("s3", s3_bucket),
    )
    assert out.result.success
    import boto3

    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    numbers = sorted(int(k.rsplit("/", 1)[1].removesuffix(".json")) for k in keys)
    assert numbers == list(range(1, len(numbers) + 1))
    last = max(keys, key=lambda k: int(k.rsplit("/", 1)[1].removesuffix(".json")))
    body = s3.get_object(Bucket=s3_bucket, Key=last)["Body"].read().decode()
    assert not body.endswith("\n")
    assert json.loads(body.splitlines()[-1])["method"] == "closed"


# ---------------------------------------------------------------- the example program


def events_for(day: str) -> int:
    return sum(day.encode()) * 10


def test_partitioned_example_single_partition(binaries: Binaries, instance: DagsterInstance) -> None:
    out = run_external(
        [str(binaries.partitioned_asset)],
        instance,
        partitions_def=DailyPartitionsDefinition(start_date="2024-01-01"),
        partition_key="2024-01-02",
        check_specs=[AssetCheckSpec("has_events", asset="my_asset")],
    )
    assert out.result.success
    (mat,) = out.materializations()
    assert mat.partition == "2024-01-02"
    assert mat.metadata["dagster/row_count"] == MetadataValue.int(events_for("2024-01-02"))
    (evaluation,) = out.result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.severity == AssetCheckSeverity.WARN


def test_partitioned_example_ranged_run_uses_extras(binaries: Binaries, instance: DagsterInstance) -> None:
    days = ["2024-01-02", "2024-01-03", "2024-01-04"]
    out = run_external(
        [str(binaries.partitioned_asset)],
        instance,
        partitions_def=DailyPartitionsDefinition(start_date="2024-01-01"),
        tags={"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]},
        check_specs=[AssetCheckSpec("has_events", asset="my_asset")],
        extras_fn=lambda ctx: {"partition_keys": list(ctx.partition_keys)},
    )
    assert out.result.success
    mats = out.materializations()
    assert sorted(m.partition for m in mats) == days
    total = sum(events_for(d) for d in days)
    assert all(m.metadata["dagster/row_count"] == MetadataValue.int(total) for m in mats)


# ---------------------------------------------------------------- outside Dagster


def test_unorchestrated_run_warns_once_and_succeeds(binaries: Binaries) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES_")}
    proc = subprocess.run([str(binaries.protocol_tour), "every-metadata"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("not launched by Dagster Pipes") == 1


def test_orchestrated_but_broken_exits_non_zero(binaries: Binaries) -> None:
    env = {**os.environ, "DAGSTER_PIPES_CONTEXT": "not-base64!", "DAGSTER_PIPES_MESSAGES": "x"}
    proc = subprocess.run([str(binaries.protocol_tour), "every-metadata"], env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "DAGSTER_PIPES_CONTEXT" in proc.stderr and "base64" in proc.stderr
