"""The Python reference doing what examples/log_throughput.rs does: N `log` messages, then close."""

from __future__ import annotations

import json
import sys
import time

from dagster_pipes import PipesDefaultMessageWriter, PipesS3MessageWriter, open_dagster_pipes


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    writer = PipesDefaultMessageWriter()
    if len(sys.argv) > 2 and sys.argv[2] == "s3":
        import boto3

        writer = PipesS3MessageWriter(client=boto3.client("s3"))
    pipes = open_dagster_pipes(message_writer=writer)
    log = pipes.log
    start = time.perf_counter()
    for i in range(n):
        log.info(f"processed item {i} of the batch")
    loop_seconds = time.perf_counter() - start
    close_start = time.perf_counter()
    pipes.close()
    close_seconds = time.perf_counter() - close_start
    print(json.dumps({"messages": n, "loop_seconds": loop_seconds, "close_seconds": close_seconds}))


if __name__ == "__main__":
    main()
