"""Helpers that run an external command as a Dagster asset through the real orchestrator
(`PipesSubprocessClient` under `dagster.materialize`) and collect what came back."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    EventLogEntry,
    ExecuteInProcessResult,
    PipesSubprocessClient,
    asset,
    materialize,
)
from dagster._core.pipes.client import PipesContextInjector, PipesMessageReader
from dagster._core.pipes.utils import PipesEnvContextInjector, PipesTempFileContextInjector
from dagster_aws.pipes import PipesS3ContextInjector, PipesS3MessageReader
from dagster_spotlake.pipes import DrainingTempFileMessageReader


def make_injector(kind: str, bucket: str | None = None) -> PipesContextInjector:
    if kind == "env":
        return PipesEnvContextInjector()
    if kind == "tempfile":
        return PipesTempFileContextInjector()
    if kind == "s3":
        assert bucket
        return PipesS3ContextInjector(bucket=bucket, client=boto3.client("s3"))
    raise ValueError(kind)


def make_reader(kind: str, bucket: str | None = None, include_stdio: bool = False) -> PipesMessageReader:
    if kind == "tempfile":
        # Dagster's own temp-file reader can lose every message of a fast process (see
        # spotlake.pipes.file_reader); the tests must not flake on it.
        return DrainingTempFileMessageReader(include_stdio_in_messages=include_stdio)
    if kind == "s3":
        assert bucket
        return PipesS3MessageReader(
            bucket=bucket,
            client=boto3.client("s3"),
            interval=0.5,
            include_stdio_in_messages=include_stdio,
        )
    raise ValueError(kind)


@dataclass
class Outcome:
    result: ExecuteInProcessResult
    instance: DagsterInstance
    custom_messages: list[Any] = field(default_factory=list)

    @property
    def logs(self) -> list[EventLogEntry]:
        return list(self.instance.all_logs(self.result.run_id))

    def user_logs(self) -> list[tuple[int, str]]:
        return [(e.level, e.user_message) for e in self.logs if e.dagster_event is None]

    def engine_errors(self) -> list[Any]:
        errors = []
        for e in self.logs:
            ev = e.dagster_event
            if ev is not None and ev.event_type == DagsterEventType.ENGINE_EVENT:
                data = ev.engine_event_data
                if data is not None and data.error is not None and "closed with exception" in (e.user_message or ""):
                    errors.append(data.error)
        return errors

    def materializations(self, key: str | None = None) -> list[Any]:
        events = self.result.get_asset_materialization_events()
        mats = [e.materialization for e in events]
        if key is not None:
            mats = [m for m in mats if m.asset_key == AssetKey.from_user_string(key)]
        return mats


def run_external(
    command: Sequence[str],
    instance: DagsterInstance,
    *,
    injector: PipesContextInjector | None = None,
    reader: PipesMessageReader | None = None,
    extras: Mapping[str, Any] | None = None,
    check_specs: Sequence[AssetCheckSpec] = (),
    env: Mapping[str, str] | None = None,
    partitions_def: Any = None,
    partition_key: str | None = None,
    tags: Mapping[str, str] | None = None,
    asset_name: str = "my_asset",
    extras_fn: Callable[[AssetExecutionContext], Mapping[str, Any]] | None = None,
) -> Outcome:
    outcome_messages: list[Any] = []

    @asset(name=asset_name, check_specs=list(check_specs), partitions_def=partitions_def)
    def the_asset(context: AssetExecutionContext, pipes: PipesSubprocessClient):  # type: ignore[no-untyped-def]
        all_extras = dict(extras or {})
        if extras_fn is not None:
            all_extras.update(extras_fn(context))
        invocation = pipes.run(context=context, command=list(command), extras=all_extras, env=dict(env or {}))
        outcome_messages.extend(invocation.get_custom_messages())
        yield from invocation.get_results()

    # Not Dagster's default temp-file reader, which can lose every message of a fast process.
    client = PipesSubprocessClient(context_injector=injector, message_reader=reader or make_reader("tempfile"))
    result = materialize(
        [the_asset],
        resources={"pipes": client},
        instance=instance,
        raise_on_error=False,
        partition_key=partition_key,
        tags=tags,
    )
    return Outcome(result=result, instance=instance, custom_messages=outcome_messages)
