"""File message readers that never lose the tail.

Dagster's `PipesFileMessageReader` tails the messages file with `dagster._utils.tail_file`, which
stops as soon as a read finds the end of the file and the session is closed. If the external
process writes its last messages and exits, and the session closes, between that read and that
check, the messages are never read: a fast process can lose everything it wrote, `closed`
included. These readers check for the end of the session first and then read the file to its
end, so whatever the process wrote before the session closed is read.
"""

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from dagster._core.pipes.client import PipesParams
from dagster._core.pipes.utils import PipesFileMessageReader, PipesTempFileMessageReader

if TYPE_CHECKING:
    from threading import Event

    from dagster._core.pipes.context import PipesMessageHandler

POLL_SECONDS = 0.01


def tail_lines(path: str, session_closed: Callable[[], bool], poll: float = POLL_SECONDS) -> Iterator[str]:
    """Yields each complete line appended to `path` until the session is closed, then every line
    left in the file. A partial line waits for its newline while the session is open; what is
    left of it at the end is yielded as it is."""
    with open(path, encoding="utf-8") as stream:
        partial = ""
        while True:
            # Decide before reading: everything written before the close is then read below.
            closing = session_closed()
            chunk = stream.readline()
            while chunk:
                partial += chunk
                if partial.endswith("\n"):
                    yield partial
                    partial = ""
                chunk = stream.readline()
            if closing:
                if partial:
                    yield partial
                return
            time.sleep(poll)


class DrainingFileMessageReader(PipesFileMessageReader):
    """`PipesFileMessageReader` that reads the file to its end once the session is closed."""

    def _reader_thread(self, handler: "PipesMessageHandler", is_resource_complete: "Event") -> None:
        try:
            for line in tail_lines(self._path, is_resource_complete.is_set):
                handler.handle_message(json.loads(line))
        except:
            handler.report_pipes_framework_exception(f"{self.__class__.__name__} reader thread", sys.exc_info())
            raise


class DrainingTempFileMessageReader(PipesTempFileMessageReader):
    """`PipesTempFileMessageReader` over a `DrainingFileMessageReader`."""

    @contextmanager
    def read_messages(self, handler: "PipesMessageHandler") -> Iterator[PipesParams]:
        with tempfile.TemporaryDirectory() as tempdir:
            reader = DrainingFileMessageReader(
                os.path.join(tempdir, "messages"), include_stdio_in_messages=self._include_stdio_in_messages
            )
            with reader.read_messages(handler) as params:
                yield params
