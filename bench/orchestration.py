"""Orchestration overhead per item (10,000 no-op items through the local queue and through SQS
on moto), the full per-item cost of a tiny real item (child process included), and the time
from a worker's death to its item's completion elsewhere."""

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from example_data import WEB_INPUT, generate_day
from moto_local import moto_env

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / os.environ.get("BENCH_PROFILE", "release")
RUNNER = RELEASE / "runner"
OVERHEAD = RELEASE / "examples" / "orchestration_overhead"
MAP_JOB = (
    """
name = "recovery"
[[step]]
name = "map"
split = "file"
"""
    + WEB_INPUT
    + """[step.outputs.out]
path = "out"
"""
)


def overhead(kind: str, items: int, env: dict) -> dict:
    out = subprocess.run([str(OVERHEAD), kind, str(items), "4"], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def tiny_items(n: int, config: str = "[warm_items]\nenabled = false\n") -> float:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        generate_day(RUNNER, root, events=n * 10, files=n)
        job = root / "job.toml"
        job.write_text(MAP_JOB)
        (root / "runner.toml").write_text(config)
        env = {**os.environ, "SPOTLAKE_CONFIG": str(root / "runner.toml")}
        start = time.perf_counter()
        command = [str(RUNNER), "run", str(job), "--root", str(root), "--workers", "2"]
        subprocess.run(command, check=True, capture_output=True, env=env)
        return (time.perf_counter() - start) * 1000 / n


def children(pid: int) -> list[int]:
    """Every thread's children: a worker starts its items from whichever thread runs the task."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def recovery(visibility: int) -> float:
    """Seconds from killing a worker mid-item to that item's commit by another worker."""
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        generate_day(RUNNER, root, events=4000, files=4)
        (root / "job.toml").write_text(MAP_JOB)
        heartbeat = max(1, visibility // 3)
        # Fresh item processes, so the item process's command line names its item (a warm one
        # is handed its items on stdin). What is measured is the queue's redelivery, the same
        # either way.
        (root / "runner.toml").write_text(
            f"visibility_secs = {visibility}\nheartbeat_secs = {heartbeat}\nidle_shutdown_secs = 30\n"
            "[warm_items]\nenabled = false\n"
        )
        env = {**os.environ, "SPOTLAKE_CONFIG": str(root / "runner.toml"), "SPOTLAKE_TEST_ITEM_SLEEP_MS": "1000"}
        run = subprocess.Popen(
            [str(RUNNER), "run", str(root / "job.toml"), "--root", str(root), "--workers", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        fleets = root / "_runner" / "fleets"
        while True:
            if run.poll() is not None:
                raise RuntimeError(f"the run ended (exit {run.returncode}) before a worker was seen running an item")
            pids = [p for f in fleets.glob("*.json") for p in json.loads(f.read_text() or "{}").get("pids", [])]
            busy = [(p, c) for p in pids for c in children(p)]
            if busy:
                break
            time.sleep(0.02)
        worker, item_process = busy[0]
        # The child may not have exec'd yet: wait for its command line.
        while len(args := Path(f"/proc/{item_process}/cmdline").read_bytes().split(b"\0")) < 4:
            time.sleep(0.01)
        item_file = Path(args[3].decode())
        item_id = json.loads(item_file.read_text())["id"]
        os.kill(worker, signal.SIGKILL)
        killed = time.perf_counter()
        manifest = next((root / "_runner" / "items" / "recovery" / "map").glob("*"), None)
        while True:
            found = list((root / "_runner" / "items" / "recovery" / "map").rglob(f"{item_id}.json"))
            if found:
                break
            time.sleep(0.02)
        elapsed = time.perf_counter() - killed
        run.wait()
        del manifest
        return elapsed


def main() -> None:
    env = dict(os.environ)
    print("10,000 no-op items through each queue backend (4 worker tasks):")
    local = overhead("local", 10_000, env)
    print(f"  local (SQLite): {local['ms_per_item']:.3f} ms/item ({local['total_seconds']:.1f} s)")
    sqs_items = int(os.environ.get("BENCH_SQS_ITEMS", "10000"))
    with moto_env() as moto:
        aws = {**env, **moto}
        # The orchestrator feeds the queue a window at a time (256 here). moto scans its whole
        # queue on every receive and delete, so enqueuing everything at once measures moto, not
        # us: 165 ms/item with 2,000 queued, and 10,000 did not finish in 10 minutes.
        if sqs_items:
            sqs = overhead("sqs", sqs_items, aws)
            print(
                f"  SQS on moto ({sqs_items:,} items, window {sqs['window']}): "
                f"{sqs['ms_per_item']:.3f} ms/item ({sqs['total_seconds']:.1f} s)"
            )
    per_item = tiny_items(200)
    print(f"\nfull cost of a tiny real item (own process, Polars, publish, commit), 2 workers: {per_item:.1f} ms/item")
    warm = tiny_items(200, "[warm_items]\nmax_growth = 2.0\n")
    print(f"  the same in warm item processes: {warm:.1f} ms/item")
    print("\nworker killed mid-item → its item committed elsewhere:")
    for visibility in (5, 30):
        print(f"  visibility timeout {visibility:>2} s: {recovery(visibility):.1f} s (item takes ~1 s)")


if __name__ == "__main__":
    main()
