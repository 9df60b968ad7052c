"""The Pipes side of the runner: the client that launches it, and what it needs."""

from dagster_spotlake.pipes.file_reader import DrainingFileMessageReader, DrainingTempFileMessageReader
from dagster_spotlake.pipes.partitions import partition_extras
from dagster_spotlake.pipes.runner_client import RunnerInvocation, RunnerPipesClient
from dagster_spotlake.pipes.s3_reader import DrainingS3MessageReader

__all__ = [
    "DrainingFileMessageReader",
    "DrainingS3MessageReader",
    "DrainingTempFileMessageReader",
    "RunnerInvocation",
    "RunnerPipesClient",
    "partition_extras",
]
