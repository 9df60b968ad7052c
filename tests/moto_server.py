"""moto's server on 127.0.0.1 for every test and benchmark, Rust and Python alike.

Run as a script, it binds port 0 itself and prints the endpoint it owns on its first line, so
a caller never adopts another test's server (picking a free port first and then starting the
server on it races: two callers can pick the same port, the second server fails to bind, and
the second caller talks to the first one's server until that one stops). It serves until its
standard input closes or it gets SIGTERM, so it dies with the test process even when that one
is killed. Imported, `moto()` starts one as a child process and stops it by PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve()


@dataclass(frozen=True)
class MotoProcess:
    endpoint: str
    pid: int


@contextmanager
def moto(log: Path | None = None) -> Iterator[MotoProcess]:
    """Starts moto's server in a child process; yields its endpoint and PID; stops it by PID."""
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, str(HERE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=out,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("http://"):
            proc.wait(timeout=10)
            detail = log.read_text() if log else ""
            raise RuntimeError(f"moto_server did not start (exit {proc.returncode}): {line!r} {detail}")
        yield MotoProcess(endpoint=line, pid=proc.pid)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdin:
            proc.stdin.close()
        if proc.stdout:
            proc.stdout.close()
        if log:
            out.close()  # type: ignore[union-attr]


def _serve() -> None:
    import logging

    from moto.server import ThreadedMotoServer

    # One line per request on stderr drowns the test output, and so does the traceback of
    # every call moto does not implement (DescribeFleetHistory): the caller gets a 500 anyway.
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def lifeline() -> None:
        # EOF on stdin: whoever started us is gone.
        sys.stdin.buffer.read()
        stop.set()

    threading.Thread(target=lifeline, daemon=True).start()
    print(f"http://{host}:{port}", flush=True)
    stop.wait()
    server.stop()
    # The lifeline thread is blocked reading stdin; leave without finalizing around it.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    _serve()
