"""Log messages per second through the file writer and the S3 writer: pipes-rs (release build)
against Python `dagster-pipes`, in the same run, on the same machine. Prints ratios.

S3 runs against moto's server on 127.0.0.1, started here and stopped by PID."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import boto3
from dagster_pipes import encode_env_var
from moto_local import moto_env

ROOT = Path(__file__).resolve().parent.parent
RUST = ROOT / "target" / "release" / "examples" / "log_throughput"
PY = [sys.executable, str(ROOT / "bench" / "py_log_throughput.py")]
CONTEXT = {
    "asset_keys": ["bench"],
    "code_version_by_asset_key": {"bench": None},
    "provenance_by_asset_key": {"bench": None},
    "partition_key": None,
    "partition_key_range": None,
    "partition_time_window": None,
    "run_id": "bench",
    "job_name": "bench",
    "retry_number": 0,
    "extras": {},
}
REPEATS = 3


def run(cmd: list[str], n: int, messages: dict, extra_env: dict[str, str], workdir: Path) -> dict:
    ctx_path = workdir / "context.json"
    ctx_path.write_text(json.dumps(CONTEXT))
    env = {
        **os.environ,
        **extra_env,
        "DAGSTER_PIPES_CONTEXT": encode_env_var({"path": str(ctx_path)}),
        "DAGSTER_PIPES_MESSAGES": encode_env_var(messages),
    }
    out = subprocess.run(
        [*cmd, str(n), *(["s3"] if "bucket" in messages else [])], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def best(cmd: list[str], n: int, messages_for: Callable[[Path, int], dict], extra_env: dict[str, str]) -> dict:
    results = []
    for i in range(REPEATS):
        with tempfile.TemporaryDirectory() as d:
            workdir = Path(d)
            messages = messages_for(workdir, i)
            r = run(cmd, n, messages, extra_env, workdir)
            if "path" in messages:
                lines = Path(messages["path"]).read_text().splitlines()
                assert len(lines) == n + 2, f"{cmd[0]}: expected {n + 2} lines, got {len(lines)}"
            results.append(r)
    return min(results, key=lambda r: r["loop_seconds"])


def main() -> None:
    n_rust = 1_000_000
    n_py = 100_000
    rows = []

    def file_messages(workdir: Path, _i: int) -> dict:
        return {"path": str(workdir / "messages.jsonl"), "include_stdio_in_messages": False}

    rust = best([str(RUST)], n_rust, file_messages, {})
    py = best(PY, n_py, file_messages, {})
    rows.append(("file", rust, py))

    with moto_env() as aws:
        os.environ.update(aws)
        boto3.client("s3").create_bucket(Bucket="bench")

        def s3_messages(_workdir: Path, i: int) -> dict:
            return {"bucket": "bench", "key_prefix": f"run-{time.monotonic_ns()}-{i}"}

        rust_s3 = best([str(RUST)], n_rust, s3_messages, aws)
        py_s3 = best(PY, n_py, s3_messages, aws)
        rows.append(("s3", rust_s3, py_s3))

    print()
    print(f"Pipes log throughput (messages/s in the logging loop; best of {REPEATS})")
    print(f"{'writer':<8}{'pipes-rs':>14}{'python':>14}{'ratio':>10}{'rs close s':>12}{'py close s':>12}")
    for name, r, p in rows:
        rr = r["messages"] / r["loop_seconds"]
        pr = p["messages"] / p["loop_seconds"]
        print(
            f"{name:<8}{rr:>14,.0f}{pr:>14,.0f}{rr / pr:>9.1f}x{r['close_seconds']:>12.3f}{p['close_seconds']:>12.3f}"
        )


if __name__ == "__main__":
    main()
