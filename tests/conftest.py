"""Shared fixtures for the end-to-end tests: built binaries, and moto's server on 127.0.0.1
standing in for S3/SQS/EC2 (started here, stopped by PID)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"


def _build_if_missing(paths: list[Path]) -> None:
    if all(p.exists() for p in paths):
        return
    # `make test` builds first; this keeps a bare `pytest` run working too.
    subprocess.run(
        ["cargo", "build", "--workspace", "--all-features", "--bins", "--examples"],
        cwd=ROOT,
        check=True,
    )


@dataclass(frozen=True)
class Binaries:
    pipes_tests: Path
    partitioned_asset: Path
    protocol_tour: Path


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    b = Binaries(
        pipes_tests=TARGET / "pipes_tests",
        partitioned_asset=TARGET / "examples" / "partitioned_asset",
        protocol_tour=TARGET / "examples" / "protocol_tour",
    )
    _build_if_missing([b.pipes_tests, b.partitioned_asset, b.protocol_tour])
    return b


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Moto:
    endpoint: str
    pid: int

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).read()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    port = _free_port()
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).read()
            break
        except OSError as err:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto_server did not start; see {log}:\n{log.read_text()}") from err
            time.sleep(0.2)
    try:
        yield Moto(endpoint=endpoint, pid=proc.pid)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def aws_env(moto_server: Moto, monkeypatch: pytest.MonkeyPatch) -> Moto:
    """Points this process and its children at moto through the standard AWS variables."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    return moto_server


@pytest.fixture
def s3_bucket(aws_env: Moto) -> str:
    import boto3

    name = f"pipes-{time.monotonic_ns()}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name
