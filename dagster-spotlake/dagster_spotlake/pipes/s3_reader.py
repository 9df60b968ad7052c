"""An S3 message reader that keeps up with a fast writer.

The stock `PipesS3MessageReader` downloads one chunk per poll; a writer that uploads faster
builds a backlog, and the tail (metadata and `closed` included) is lost when the reader gives
up after the process ends. This reader takes every chunk that is there on each poll, and nests
its chunks under a prefix of ours instead of the bucket root."""

import random
import string
from collections.abc import Iterator
from contextlib import contextmanager

from dagster._core.pipes.client import PipesParams
from dagster_aws.pipes import PipesS3MessageReader


class DrainingS3MessageReader(PipesS3MessageReader):
    """Reads every available chunk on each poll. Make a new one for every run: a reader keeps
    its chunk counter, so a reused one would wait for chunk numbers a new session never writes."""

    def __init__(self, *, bucket: str, client: object, key_prefix: str = "pipes", interval: float = 1.0) -> None:
        super().__init__(bucket=bucket, client=client, interval=interval)
        self.key_prefix = key_prefix.strip("/")

    @contextmanager
    def get_params(self) -> Iterator[PipesParams]:
        run_prefix = "".join(random.choices(string.ascii_letters, k=30))
        yield {
            "bucket": self.bucket,
            "key_prefix": f"{self.key_prefix}/{run_prefix}",
            "include_stdio_in_messages": False,
        }

    def download_messages(self, cursor: int | None, params: PipesParams) -> tuple[int, str] | None:
        chunks = []
        while (chunk := self.download_messages_chunk(self.counter, params)) is not None:
            chunks.append(chunk)
            self.counter += 1
        if not chunks:
            return None
        return self.counter, "\n".join(chunks)
