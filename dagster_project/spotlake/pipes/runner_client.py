"""The resource that launches the runner for an asset step and watches it, over Pipes.

The `local` backend (the default) passes the context in a temp file and reads messages from a
temp file; the runner then uses its local workers and storage. The `aws` backend passes the
context through S3 and reads messages with a draining S3 reader; the runner then uses its spot
fleet, SQS and S3 (configured by `RUNNER_CONFIG`). A given context injector or message reader
replaces the backend's. The backend is passed to the runner, so the two never disagree. Either
way the partitions travel in extras, terminating the Dagster run cancels the runner (which
deletes its fleet), and a run that never sent `closed` fails the step instead of passing with
empty results."""

import copy
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetMaterialization,
    ConfigurableResource,
    MaterializeResult,
    PipesClientCompletedInvocation,
    ResourceDependency,
    open_pipes_session,
)
from dagster._annotations import public
from dagster._core.errors import DagsterExecutionInterruptedError, DagsterPipesExecutionError
from dagster._core.pipes.client import PipesContextInjector, PipesMessageReader
from dagster._core.pipes.utils import PipesTempFileContextInjector
from dagster_aws.pipes import PipesS3ContextInjector
from pydantic import Field, PrivateAttr

from spotlake import settings
from spotlake.pipes.file_reader import DrainingTempFileMessageReader
from spotlake.pipes.partitions import partition_extras
from spotlake.pipes.per_partition import per_partition_check_evaluations, ranged_materializations
from spotlake.pipes.s3_reader import DrainingS3MessageReader

Backend = Literal["local", "aws"]


class RunnerInvocation(PipesClientCompletedInvocation):
    """A finished runner session. `results()` is what the asset body yields: the run's results,
    then in a ranged run one materialization per asset and partition with that partition's own
    numbers (see `per_partition`)."""

    def __init__(self, session: Any, context: AssetExecutionContext) -> None:
        super().__init__(session)
        self._context = context

    def results(self) -> Iterator[MaterializeResult | AssetCheckResult | AssetMaterialization]:
        results = list(self.get_results())
        yield from results
        context = self._context
        if not context.has_partition_key and context.has_partition_key_range:
            yield from ranged_materializations(results, self.get_custom_messages(), list(context.partition_keys))


class RunnerPipesClient(ConfigurableResource):
    """Runs `runner run JOB --backend BACKEND` for the current asset step.

    Attributes:
        runner_bin: the runner executable.
        root: where the job's relative paths resolve (a directory or `s3://bucket/prefix`).
        backend: `local` or `aws` (passed to the runner, so the two never disagree).
        pipes_bucket: `aws`: the bucket for the Pipes context and messages.
        env: extra environment for the runner (e.g. `RUNNER_CONFIG`).
        cancel_grace_seconds: how long a cancelled runner gets to delete its fleet.
        context_injector: how the context reaches the runner. Default: a temp file locally,
            S3 (`pipes_bucket`) on AWS.
        message_reader: how the runner's messages come back. Default: a temp file read to its
            end locally, a draining S3 reader on AWS. A reader keeps a chunk counter, so the one
            given is a template: each run reads with a fresh copy of it.
    """

    runner_bin: str = Field(default_factory=settings.runner_bin)
    root: str = Field(default_factory=settings.root)
    backend: Backend = "local"
    pipes_bucket: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    cancel_grace_seconds: float = 120.0
    context_injector: ResourceDependency[PipesContextInjector | None] = None
    message_reader: ResourceDependency[PipesMessageReader | None] = None

    _s3: Any = PrivateAttr(default=None)

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    def s3_client(self) -> Any:
        """A boto3 S3 client from the standard credential and endpoint chains."""
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3")
        return self._s3

    def session_channel(self) -> tuple[PipesContextInjector, PipesMessageReader]:
        """The context injector and a new message reader for one run: a reused reader keeps its
        chunk counter and hears nothing of a new session."""
        injector = self.context_injector
        if injector is None:
            injector = (
                PipesTempFileContextInjector()
                if self.backend == "local"
                else PipesS3ContextInjector(bucket=self._bucket(), client=self.s3_client(), key_prefix="pipes/context")
            )
        if self.message_reader is not None:
            return injector, copy.copy(self.message_reader)
        if self.backend == "local":
            return injector, DrainingTempFileMessageReader()
        s3_reader = DrainingS3MessageReader(bucket=self._bucket(), client=self.s3_client(), key_prefix="pipes/messages")
        return injector, s3_reader

    def _bucket(self) -> str:
        if not self.pipes_bucket:
            raise ValueError("the aws backend needs pipes_bucket for the Pipes context and messages")
        return self.pipes_bucket

    @public
    def run(
        self,
        *,
        context: AssetExecutionContext,
        job: str | Path,
        steps: Sequence[str] = (),
        extras: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        missing_upstream: bool = False,
    ) -> RunnerInvocation:
        """Runs the job (or some of its steps, and with `missing_upstream` the steps upstream of
        them that have nothing committed) for this step's partitions and returns the completed
        invocation; assets call `.get_results()` on it."""
        all_extras = {**partition_extras(context), **(extras or {})}
        injector, reader = self.session_channel()
        command = [
            self.runner_bin,
            "run",
            str(job),
            "--root",
            self.root,
            "--backend",
            self.backend,
            *(f"--step={s}" for s in steps),
        ]
        if missing_upstream and steps:
            command.append("--missing-upstream")
        with open_pipes_session(
            context=context, extras=all_extras, context_injector=injector, message_reader=reader
        ) as session:
            process_env = {**os.environ, **self.env, **(env or {}), **session.get_bootstrap_env_vars()}
            process = subprocess.Popen(command, env=process_env)
            try:
                # Polling, not wait(): Dagster raises the interruption between Python steps.
                while process.poll() is None:
                    time.sleep(0.2)
            except DagsterExecutionInterruptedError:
                context.log.warning("the run was terminated: cancelling the runner so it deletes its fleet")
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=self.cancel_grace_seconds)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                raise
            if process.returncode != 0:
                raise DagsterPipesExecutionError(
                    f"the runner failed (exit code {process.returncode}); its error is in the engine event above"
                )
        if not session.message_handler.received_closed_message:
            raise DagsterPipesExecutionError(
                "the runner never closed its Pipes session: its results cannot be trusted, so the step fails"
            )
        invocation = RunnerInvocation(session, context)
        if not context.has_partition_key:
            # A ranged run (even a range of one day): Dagster records the range's check results
            # with no partition, so each partition's own verdict goes first.
            for evaluation in per_partition_check_evaluations(invocation.get_custom_messages()):
                context.log_event(evaluation)
        return invocation
