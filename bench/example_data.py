"""The example generator, as the benchmarks call it: one day of clean events (no bad rows)."""

import subprocess
from pathlib import Path

# The generated web CSV as a job spec input (headerless; one file per item with `split = "file"`).
WEB_INPUT = """
[step.inputs.web]
path = "raw/*/web-*.csv.gz"
format = "csv"
header = false
columns = [["event_id", "str"], ["user_id", "str"], ["ts", "datetime"], ["event_type", "str"],
           ["amount", "f64"], ["country", "str"], ["device", "str"]]
"""


def generate_day(
    runner: Path, root: Path, events: int, files: int, day: str = "2024-01-01", users: int | None = None
) -> None:
    """Writes `raw/{day}/web-*.csv.gz` (70 % of the events, over `files` files) and the day's
    `app.ndjson.gz` under `root`, spread over `users` users (the generator's default if None)."""
    command = [str(runner), "example", "generate", "--out", str(root), "--start", day, "--days", "1"]
    command += ["--events-per-day", str(events), "--csv-files", str(files), "--bad-fraction", "0"]
    if users is not None:
        command += ["--users", str(users)]
    subprocess.run(command, check=True, capture_output=True)
