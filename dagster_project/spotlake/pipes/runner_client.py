"""The resource that launches the runner for an asset step and watches it, over Pipes.

The `local` backend (the default) passes the context in a temp file and reads messages from a
temp file; the runner then uses its local workers and storage. The `aws` backend passes the
context through S3 and reads messages with a draining S3 reader made fresh for every run; the
runner then uses its spot fleet, SQS and S3 (configured by `RUNNER_CONFIG`). The backend is
passed to the runner, so the two never disagree. Either way the partitions travel in extras,
terminating the Dagster run cancels the runner (which deletes its fleet), and a run that never
sent `closed` fails the step instead of passing with empty results."""

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

    Its context injector and message reader follow the backend: temp files locally, S3 with a
    draining reader on AWS. A subclass can override `context_injector` and `message_reader` to
    pass them some other way.

    Attributes:
        runner_bin: the runner executable.
        data_root: where the job's relative paths resolve (a directory or `s3://bucket/prefix`).
        backend: `local` or `aws` (passed to the runner, so the two never disagree).
        pipes_bucket: `aws`: the bucket for the Pipes context and messages.
        env: extra environment for the runner (e.g. `RUNNER_CONFIG`).
        cancel_grace_seconds: how long a cancelled runner gets to delete its fleet.
    """

    runner_bin: str = Field(default_factory=settings.runner_bin)
    data_root: str = Field(default_factory=settings.data_root)
    backend: Backend = "local"
    pipes_bucket: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    cancel_grace_seconds: float = 120.0

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

    def context_injector(self) -> PipesContextInjector:
        if self.backend == "local":
            return PipesTempFileContextInjector()
        return PipesS3ContextInjector(bucket=self._bucket(), client=self.s3_client(), key_prefix="pipes/context")

    def message_reader(self) -> PipesMessageReader:
        """A new reader for every run: a reused one keeps its chunk counter and hears nothing."""
        if self.backend == "local":
            return DrainingTempFileMessageReader()
        return DrainingS3MessageReader(bucket=self._bucket(), client=self.s3_client(), key_prefix="pipes/messages")

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
        injector, reader = self.context_injector(), self.message_reader()
        command = [
            self.runner_bin,
            "run",
            str(job),
            "--root",
            self.data_root,
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
        # Each partition's own check verdicts in a ranged run, before the range's results.
        for evaluation in per_partition_check_evaluations(invocation.get_custom_messages()):
            context.log_event(evaluation)
        return invocation
