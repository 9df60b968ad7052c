"""Where things are, from env vars with defaults that work in a fresh clone: the runner built
by `make`, data under `.demo/` of the repository."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
JOB = Path(os.environ.get("SPOTLAKE_JOB", REPO / "runner" / "examples" / "events" / "job.toml"))


def runner_bin() -> str:
    if explicit := os.environ.get("SPOTLAKE_RUNNER_BIN"):
        return explicit
    for profile in ("release", "debug"):
        candidate = REPO / "target" / profile / "runner"
        if candidate.exists():
            return str(candidate)
    return "runner"


def root() -> str:
    return os.environ.get("SPOTLAKE_ROOT", str(REPO / ".demo" / "data"))


def backend() -> str:
    return os.environ.get("SPOTLAKE_BACKEND", "local")


def pipes_bucket() -> str | None:
    return os.environ.get("SPOTLAKE_PIPES_BUCKET")
