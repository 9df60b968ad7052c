"""moto's server for the benchmarks: the tests' launcher (`tests/moto_server.py`, which binds a
port of its own and is stopped by PID), and the AWS variables that point clients at it."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from moto_server import moto


@contextmanager
def moto_env() -> Iterator[dict[str, str]]:
    """Yields the AWS variables that point clients at the running server."""
    with moto() as server:
        yield {
            "AWS_ENDPOINT_URL": server.endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
