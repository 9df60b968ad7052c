"""Shared fixtures for the end-to-end tests: built binaries, and moto's server on 127.0.0.1
standing in for S3/SQS/EC2 (started here, stopped by PID)."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from moto_server import MotoProcess, moto

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


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoProcess]:
    with moto(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture
def aws_env(moto_server: MotoProcess, monkeypatch: pytest.MonkeyPatch) -> MotoProcess:
    """Points this process and its children at moto through the standard AWS variables, with
    moto's state cleared first: each test's buckets, fleets, templates and queues are its own, so
    what one test leaks can't fail another, and a "nothing left" check sees only its test's."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_server.endpoint}/moto-api/reset", method="POST")).read()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    return moto_server


@pytest.fixture
def s3_bucket(aws_env: MotoProcess) -> str:
    import boto3

    name = f"pipes-{time.monotonic_ns()}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name
