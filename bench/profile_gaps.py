"""Where the seconds go where the runner misses a goal: flat `perf` profiles (self time by
process, library and symbol) of the runner and of the peer it trails, on the same data, for
step 1 (against Python Polars hand-tuned) and for step 3's reduce (against DuckDB, per bucket
and whole). Needs `perf` and the release build; writes `bench/results/profiles.txt`.

Not part of `make bench`: a profile is read once to find a cause, not tracked run to run."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import runner_vs_peers as peers

EVENTS = int(os.environ.get("PROFILE_EVENTS", "28000000"))
STEP3_EVENTS = int(os.environ.get("PROFILE_STEP3_EVENTS", "64000000"))
RESULTS = Path(__file__).resolve().parent / "results" / "profiles.txt"
lines: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    lines.append(line)


def profile(label: str, command: list[str], env: dict[str, str] | None = None) -> None:
    """`perf record` of `command` and every process it starts; the top of the flat report."""
    with tempfile.NamedTemporaryFile(suffix=".perf") as data:
        record = ["perf", "record", "-q", "-F", "999", "-o", data.name, "--", *command]
        subprocess.run(record, check=True, capture_output=True, env=env)
        report = ["perf", "report", "-i", data.name, "--stdio", "--no-children", "--percent-limit", "1"]
        report += ["--sort", "comm,dso,sym"]
        text = subprocess.run(report, check=True, capture_output=True, text=True).stdout
    say(f"\n== {label}")
    say(f"   {' '.join(command[:6])} ...")
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            say(line[:160])


def runner_command(job: Path, root: Path, *extra: str) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES_")}
    config = root / "profile-runner.toml"
    config.write_text("")
    env["RUNNER_CONFIG"] = str(config)
    command = [str(peers.RUNNER), "run", str(job), "--root", str(root), "--partition", peers.DAY, "--force", *extra]
    return command, env


def python_command(code: str, root: Path) -> list[str]:
    return [sys.executable, "-c", code, str(root)]


def main() -> None:
    if shutil.which("perf") is None:
        sys.exit("perf is not installed")
    say(f"runner: {peers.RUNNER}; PROFILE_EVENTS={EVENTS} PROFILE_STEP3_EVENTS={STEP3_EVENTS}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="profile-") as tmp:
        root = Path(tmp)
        peers.generate(root, EVENTS, files=8)
        command, env = runner_command(peers.JOBS / "step1_csv.toml", root, "--workers", "1")
        profile(f"step 1, runner, {EVENTS:,} events in 8 gzip files", command, env)
        profile("step 1, Python Polars hand-tuned", python_command(peers.PY_POLARS_TUNED_STEP1, root))
        profile("step 1, DuckDB", python_command(peers.DUCKDB_STEP1, root))
    with tempfile.TemporaryDirectory(prefix="profile-") as tmp:
        # One gzip stream: where the decoder thread's time goes, beside the parser's.
        root = Path(tmp)
        peers.generate(root, EVENTS // 2, files=1)
        command, env = runner_command(peers.JOBS / "step1_csv.toml", root, "--workers", "1")
        profile(f"step 1, runner, {EVENTS // 2:,} events in 1 gzip file", command, env)
    with tempfile.TemporaryDirectory(prefix="profile-") as tmp:
        root = Path(tmp)
        users = max(STEP3_EVENTS // 100, 1)
        peers.generate(root, STEP3_EVENTS, files=16, users=users)
        peers.shuffle(root)
        shutil.rmtree(root / "raw")
        command, env = runner_command(peers.EXAMPLE_JOB, root, "--step", "user_daily")
        profile(f"step 3, runner, {users:,} users", command, env)
        profile("step 3, DuckDB per bucket", python_command(peers.DUCKDB_STEP3_BUCKETS, root))
        profile("step 3, DuckDB whole", python_command(peers.DUCKDB_STEP3, root))
        profile("step 3, Python Polars per bucket", python_command(peers.PY_POLARS_STEP3_BUCKETS, root))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
