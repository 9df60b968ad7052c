"""Which runner executable the integration runs, and the environment variables it reads.

The runner resolves its own settings (config file, backend, root, state) by one rule: flag, then
environment variable, then runner config, then job spec, then default. This side passes a flag
only for an attribute that was set, and asks the runner (`runner config show`) what the rest
resolve to, so the rule has one implementation. The executable is the one setting this side
resolves itself: the attribute, else `SPOTLAKE_RUNNER_BIN`, else `runner` on `PATH`."""

import os
import shutil

RUNNER_BIN_ENV = "SPOTLAKE_RUNNER_BIN"
PIPES_BUCKET_ENV = "SPOTLAKE_PIPES_BUCKET"


class RunnerNotFoundError(Exception):
    """No runner executable where the settings point."""


def runner_bin(explicit: str | None = None) -> str:
    """The runner executable: `explicit`, else `SPOTLAKE_RUNNER_BIN`, else `runner` on `PATH`."""
    chosen = explicit or os.environ.get(RUNNER_BIN_ENV) or "runner"
    found = shutil.which(chosen)
    if found is None:
        where = "runner_bin" if explicit else RUNNER_BIN_ENV if os.environ.get(RUNNER_BIN_ENV) else "PATH"
        raise RunnerNotFoundError(
            f"no runner executable {chosen!r} (from {where}): build it (`cargo build -p runner`) and set "
            f"runner_bin or {RUNNER_BIN_ENV} to its path, or put `runner` on PATH"
        )
    return found


def pipes_bucket(explicit: str | None = None) -> str | None:
    """The bucket for the Pipes context and messages on the aws backend."""
    return explicit or os.environ.get(PIPES_BUCKET_ENV) or None
