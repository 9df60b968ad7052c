"""The Pipes side of the runner: the client that launches it, and what it needs."""

from spotlake.pipes.file_reader import DrainingFileMessageReader, DrainingTempFileMessageReader
from spotlake.pipes.partitions import partition_extras
from spotlake.pipes.per_partition import per_partition_materializations
from spotlake.pipes.runner_client import RunnerPipesClient
from spotlake.pipes.s3_reader import DrainingS3MessageReader

__all__ = [
    "DrainingFileMessageReader",
    "DrainingS3MessageReader",
    "DrainingTempFileMessageReader",
    "RunnerPipesClient",
    "partition_extras",
    "per_partition_materializations",
]
