"""What the runner says of a job (`runner describe`): its assets, their upstream assets and code
versions, its checks. Read from a prepared file beside the spec when it is fresh (a code server
then needs no runner binary), else from the runner.

A prepared description is `<spec>.describe.json` (`job.toml` → `job.describe.json`), written by
`runner describe job.toml --out job.describe.json`. It records the sha256 of the spec's bytes;
while the spec still hashes to it, it is used. A stale one is not: the runner describes the spec
again, or, with no runner, loading fails naming both."""

import hashlib
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster_spotlake.binary import RunnerNotFoundError, runner_bin

DESCRIPTION_FORMAT = 1


class JobDescriptionError(Exception):
    """The job could not be described (a bad spec, no runner, a stale prepared description)."""


def prepared_path(job: Path) -> Path:
    """Where the prepared description of `job` lives."""
    return job.with_suffix(".describe.json")


def _check_format(data: Mapping[str, Any], origin: str) -> None:
    if data.get("format") != DESCRIPTION_FORMAT:
        raise JobDescriptionError(
            f"{origin} describes the job in format {data.get('format')}; this code reads {DESCRIPTION_FORMAT}"
        )


@dataclass(frozen=True)
class JobDescription:
    """What `runner describe` says of a job, and where it was read from."""

    job: Path
    data: Mapping[str, Any]
    origin: str

    @classmethod
    def load(cls, job: str | Path, runner: str | None = None) -> "JobDescription":
        """The prepared description when fresh, else the runner's (`runner` as in `runner_bin`)."""
        job = Path(job).resolve()
        try:
            spec_bytes = job.read_bytes()
        except OSError as e:
            raise JobDescriptionError(f"cannot read the job spec {job}: {e.strerror}") from e
        prepared = prepared_path(job)
        stale = None
        if prepared.exists():
            data = json.loads(prepared.read_text())
            if data.get("spec_sha256") == hashlib.sha256(spec_bytes).hexdigest():
                _check_format(data, str(prepared))
                return cls(job=job, data=data, origin=str(prepared))
            stale = prepared
        try:
            executable = runner_bin(runner)
        except RunnerNotFoundError as e:
            if stale is not None:
                raise JobDescriptionError(
                    f"{stale} was made from another version of {job.name} (its sha256 differs), and {e}; "
                    f"run `runner describe {job} --out {stale}` again"
                ) from e
            raise JobDescriptionError(str(e)) from e
        try:
            out = subprocess.run(
                [executable, "describe", str(job)], check=True, capture_output=True, text=True, timeout=60
            )
        except subprocess.CalledProcessError as e:
            raise JobDescriptionError(f"the runner could not describe {job}: {e.stderr.strip()}") from e
        data = json.loads(out.stdout)
        _check_format(data, executable)
        return cls(job=job, data=data, origin=executable)

    @property
    def name(self) -> str:
        return str(self.data["job"])

    @property
    def assets(self) -> list[Mapping[str, Any]]:
        return list(self.data["assets"])

    @property
    def checks(self) -> list[Mapping[str, Any]]:
        return list(self.data["checks"])

    def source_keys(self) -> list[str]:
        """The assets the job reads and no step writes (external to this job)."""
        made = {a["key"] for a in self.assets}
        return sorted({d for a in self.assets for d in a["deps"]} - made)
