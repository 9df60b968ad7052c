"""100 consecutive items in one worker, with a fresh process per item and with warm item
processes: the time per item, and whether the item processes' memory stays flat. The item
processes' resident set is sampled every 20 ms; the peak over the first tenth of the run is set
against the peak over the last tenth. Rounds interleave the two modes; it prints medians and
ranges, and writes the output to `bench/results/warm_items.txt`."""

import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from example_data import WEB_INPUT, generate_day

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(os.environ.get("BENCH_RUNNER", ROOT / "target" / "release" / "runner"))
ITEMS = int(os.environ.get("BENCH_WARM_ITEMS", "100"))
EVENTS_PER_ITEM = int(os.environ.get("BENCH_WARM_EVENTS_PER_ITEM", "20000"))
REPEATS = max(int(os.environ.get("BENCH_REPEATS", "3")), 1)
RESULTS = Path(__file__).resolve().parent / "results" / "warm_items.txt"
JOB = (
    """
name = "warm"
[[step]]
name = "map"
split = "file"
"""
    + WEB_INPUT
    + """[step.outputs.out]
path = "out"
partition_by = ["event_type"]
sql = "SELECT user_id, event_type, count(*) AS events, sum(amount) AS revenue FROM web GROUP BY user_id, event_type"
"""
)
MODES = {"fresh": "[warm_items]\nenabled = false\n", "warm": "[warm_items]\nmax_growth = 2.0\n"}


def item_process_rss() -> int:
    """The resident set of every `runner exec-item` process, in bytes."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            if len(args) > 1 and args[1] == b"exec-item":
                status = (proc / "status").read_text()
                total += int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) * 1024
        except (OSError, StopIteration, ValueError):
            continue
    return total


def one_run(root: Path, mode: str) -> tuple[float, int, int]:
    """Milliseconds per item, and the item processes' peak RSS over the first and last tenth."""
    (root / "runner.toml").write_text(MODES[mode])
    env = {**os.environ, "SPOTLAKE_CONFIG": str(root / "runner.toml")}
    command = [str(RUNNER), "run", str(root / "job.toml"), "--root", str(root), "--workers", "1", "--force"]
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.perf_counter(), item_process_rss()))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    start = time.perf_counter()
    sampler.start()
    try:
        subprocess.run(command, check=True, capture_output=True, env=env)
    finally:
        done.set()
        sampler.join()
    elapsed = time.perf_counter() - start
    busy = [(t, rss) for t, rss in samples if rss > 0]
    first, last = busy[0][0], busy[-1][0]
    tenth = (last - first) / 10
    head = max(rss for t, rss in busy if t <= first + tenth)
    tail = max(rss for t, rss in busy if t >= last - tenth)
    return elapsed * 1000 / ITEMS, head, tail


def main() -> None:
    lines: list[str] = []

    def out(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    out(f"runner: {RUNNER}")
    out(f"BENCH_WARM_ITEMS={ITEMS} BENCH_WARM_EVENTS_PER_ITEM={EVENTS_PER_ITEM} BENCH_REPEATS={REPEATS}; 1 worker")
    runs: dict[str, list[tuple[float, int, int]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="warm-") as d:
        root = Path(d)
        generate_day(RUNNER, root, events=ITEMS * EVENTS_PER_ITEM * 10 // 7, files=ITEMS)
        (root / "raw" / "2024-01-01" / "app.ndjson.gz").unlink()
        (root / "job.toml").write_text(JOB)
        for round_ in range(REPEATS):
            for mode in MODES:
                runs[mode].append(one_run(root, mode))
            out(
                f"  round {round_ + 1}: "
                + ", ".join(
                    f"{m} {r[-1][0]:.1f} ms/item, RSS {r[-1][1] >> 20}→{r[-1][2] >> 20} MiB" for m, r in runs.items()
                )
            )
    out(f"\n{ITEMS} consecutive items, one worker: median (range) over {REPEATS} rounds")
    out(f"{'mode':<8}{'ms/item':>22}{'peak RSS, first tenth':>26}{'peak RSS, last tenth':>26}")
    for mode, values in runs.items():
        ms = sorted(v[0] for v in values)
        head = sorted(v[1] >> 20 for v in values)
        tail = sorted(v[2] >> 20 for v in values)
        out(
            f"{mode:<8}{statistics.median(ms):>10.1f} ({ms[0]:.1f}-{ms[-1]:.1f})"
            f"{statistics.median(head):>14.0f} MiB ({head[0]}-{head[-1]})"
            f"{statistics.median(tail):>14.0f} MiB ({tail[0]}-{tail[-1]})"
        )
    fresh = [v[0] for v in runs["fresh"]]
    warm = [v[0] for v in runs["warm"]]
    ratios = sorted(f / w for f, w in zip(fresh, warm, strict=True))
    out(f"\nfresh time / warm time: {statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
