"""The resource that launches the runner for an asset step and watches it, over Pipes.

`runner.run(context=context)` runs the steps that make the step's selected assets (with the
steps upstream of them that have nothing committed for its partitions) and returns the finished
invocation; `stream()` and `get_results()` both give every result, a ranged run's per-partition
materializations included.

Settings follow the runner's one rule (flag, environment, runner config, job spec, default): an
attribute that is set becomes a flag; one left unset is the runner's to resolve, and the client
asks it (`runner config show`) which backend that is, since the Pipes channel depends on it. The
`local` backend passes the context in a temp file and reads messages from a temp file; `aws`
passes it through S3 and reads with a draining S3 reader. A given context injector or message
reader replaces the backend's. Either way the partitions travel in extras, terminating the
Dagster run cancels the runner (which deletes its fleet), and a run that never sent `closed`
fails the step instead of passing with empty results."""

import copy
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

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
from pydantic import Field, PrivateAttr, field_validator

from dagster_spotlake import binary
from dagster_spotlake.pipes.file_reader import DrainingTempFileMessageReader
from dagster_spotlake.pipes.partitions import partition_extras
from dagster_spotlake.pipes.per_partition import per_partition_check_evaluations, ranged_materializations
from dagster_spotlake.pipes.s3_reader import DrainingS3MessageReader
from dagster_spotlake.pipes.selection import asset_key_extras, selected_steps

Result = MaterializeResult | AssetCheckResult | AssetMaterialization


class RunnerInvocation(PipesClientCompletedInvocation):
    """A finished runner session. `get_results()` (a tuple) and `stream()` (an iterator) give the
    same: the run's results, then in a ranged run one materialization per asset and partition
    with that partition's own numbers (see `per_partition`)."""

    def __init__(self, session: Any, context: AssetExecutionContext) -> None:
        super().__init__(session)
        self._ranged_keys = (
            list(context.partition_keys) if not context.has_partition_key and context.has_partition_key_range else None
        )

    def get_results(self, *, implicit_materializations: bool = True) -> Sequence[Result]:  # type: ignore[override]
        results: list[Result] = list(super().get_results(implicit_materializations=implicit_materializations))
        if self._ranged_keys is not None:
            results.extend(ranged_materializations(results, self.get_custom_messages(), self._ranged_keys))
        # A tuple, as Dagster's own: an asset body may return it, which a list can't be.
        return tuple(results)

    def stream(self) -> Iterator[Result]:
        yield from self.get_results()


class RunnerPipesClient(ConfigurableResource):
    """Runs `runner run JOB` for the current asset step.

    Attributes:
        runner_bin: the runner executable (default `SPOTLAKE_RUNNER_BIN`, else `runner` on PATH).
        root: where the job's relative paths resolve (a directory or `s3://bucket/prefix`).
        state: where run state lives.
        backend: `local` or `aws`.
        config: the runner config file.
            Unset, each of these four is the runner's to resolve: its environment variable
            (`SPOTLAKE_ROOT`, `SPOTLAKE_STATE`, `SPOTLAKE_BACKEND`, `SPOTLAKE_CONFIG`), the runner
            config, the job spec, the default.
        pipes_bucket: `aws`: the bucket for the Pipes context and messages (default
            `SPOTLAKE_PIPES_BUCKET`).
        env: extra environment for the runner process.
        cancel_grace_seconds: how long a cancelled runner gets to delete its fleet.
        context_injector: how the context reaches the runner. Default: a temp file locally,
            S3 (`pipes_bucket`) on AWS.
        message_reader: how the runner's messages come back. Default: a temp file read to its
            end locally, a draining S3 reader on AWS. A reader keeps a chunk counter, so the one
            given is a template: each run reads with a fresh copy of it.
    """

    runner_bin: str | None = None
    root: str | None = None
    state: str | None = None
    backend: str | None = None
    config: str | None = None
    pipes_bucket: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    cancel_grace_seconds: float = 120.0
    context_injector: ResourceDependency[PipesContextInjector | None] = None
    message_reader: ResourceDependency[PipesMessageReader | None] = None

    _s3: Any = PrivateAttr(default=None)

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str | None) -> str | None:
        # Dagster's config types have no optional Literal: the choices are checked here.
        if value is not None and value not in ("local", "aws"):
            raise ValueError(f"backend must be local or aws, not {value!r}")
        return value

    def executable(self) -> str:
        return binary.runner_bin(self.runner_bin)

    def s3_client(self) -> Any:
        """A boto3 S3 client from the standard credential and endpoint chains."""
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3")
        return self._s3

    def flags(self) -> list[str]:
        """The flags of the attributes that are set."""
        out: list[str] = []
        for flag, value in (("--root", self.root), ("--state", self.state), ("--config", self.config)):
            if value:
                out += [flag, value]
        if self.backend:
            out += ["--backend", self.backend]
        return out

    def process_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, **self.env, **(extra or {})}

    def resolved_settings(self, job: str | Path | None = None, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """What the runner resolves the settings to, with their sources (`runner config show`)."""
        command = [self.executable(), "config", "show", "--json", *self.flags()]
        if job is not None:
            command += ["--job", str(job)]
        out = subprocess.run(command, capture_output=True, text=True, env=self.process_env(env), timeout=60)
        if out.returncode != 0:
            raise DagsterPipesExecutionError(f"the runner's settings are not usable: {out.stderr.strip()}")
        return json.loads(out.stdout)

    def session_channel(self, backend: str) -> tuple[PipesContextInjector, PipesMessageReader]:
        """The context injector and a new message reader for one run: a reused reader keeps its
        chunk counter and hears nothing of a new session."""
        injector = self.context_injector
        if injector is None:
            injector = (
                PipesTempFileContextInjector()
                if backend == "local"
                else PipesS3ContextInjector(bucket=self._bucket(), client=self.s3_client(), key_prefix="pipes/context")
            )
        if self.message_reader is not None:
            return injector, copy.copy(self.message_reader)
        if backend == "local":
            return injector, DrainingTempFileMessageReader()
        s3_reader = DrainingS3MessageReader(bucket=self._bucket(), client=self.s3_client(), key_prefix="pipes/messages")
        return injector, s3_reader

    def _bucket(self) -> str:
        bucket = binary.pipes_bucket(self.pipes_bucket)
        if not bucket:
            raise ValueError(
                f"the aws backend needs a bucket for the Pipes context and messages: set pipes_bucket "
                f"or {binary.PIPES_BUCKET_ENV}"
            )
        return bucket

    @public
    def run(
        self,
        *,
        context: AssetExecutionContext,
        job: str | Path | None = None,
        steps: Sequence[str] = (),
        extras: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        missing_upstream: bool | None = None,
    ) -> RunnerInvocation:
        """Runs the runner for this step's partitions and returns the finished invocation.

        With no `job`, runs the steps that make the selected assets (from the assets' metadata,
        as `runner_assets` and the component set it) and the steps upstream of them with nothing
        committed. With a `job`, runs its `steps` (all of them when empty), and with
        `missing_upstream` the steps upstream of them with nothing committed."""
        if job is None:
            job, steps = selected_steps(context)
            missing_upstream = True if missing_upstream is None else missing_upstream
        all_extras = {**partition_extras(context), **asset_key_extras(context), **(extras or {})}
        backend: str = self.backend or self.resolved_settings(job, env)["backend"]["value"]
        injector, reader = self.session_channel(backend)
        command = [self.executable(), "run", str(job), *self.flags(), *(f"--step={s}" for s in steps)]
        if not self.backend:
            command += ["--backend", backend]
        if missing_upstream and steps:
            command.append("--missing-upstream")
        with open_pipes_session(
            context=context, extras=all_extras, context_injector=injector, message_reader=reader
        ) as session:
            process = subprocess.Popen(
                command, env=self.process_env({**(env or {}), **session.get_bootstrap_env_vars()})
            )
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
        if not context.has_partition_key:
            # A ranged run (even a range of one day): Dagster records the range's check results
            # with no partition, so each partition's own verdict goes first.
            for evaluation in per_partition_check_evaluations(session.get_custom_messages()):
                context.log_event(evaluation)
        return RunnerInvocation(session, context)
