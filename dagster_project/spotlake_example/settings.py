"""The example's own defaults, which point into this repository (the library's never do): the
runner built by `make`, the example job, data under `.demo/`. Each is an environment variable
first, the same ones the library and the runner read."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
JOB = REPO / "runner" / "examples" / "events" / "job.toml"


def runner_bin() -> str:
    """`SPOTLAKE_RUNNER_BIN`, else the runner `make` built (the newer of release and debug)."""
    if explicit := os.environ.get("SPOTLAKE_RUNNER_BIN"):
        return explicit
    built = [REPO / "target" / p / "runner" for p in ("release", "debug")]
    present = [p for p in built if p.exists()]
    if not present:
        return "runner"
    return str(max(present, key=lambda p: p.stat().st_mtime))


def root() -> str:
    """`SPOTLAKE_ROOT`, else `.demo/data` in the repository."""
    return os.environ.get("SPOTLAKE_ROOT", str(REPO / ".demo" / "data"))


def backend() -> str:
    return os.environ.get("SPOTLAKE_BACKEND", "local")
