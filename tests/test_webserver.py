"""The code location behind the real webserver: launch a partition over GraphQL and read its
materialization back, terminate a run and check that no fleet survives it, and take a
screenshot of the asset page in headless Chromium (kept under tests/artifacts/). And under
`dagster dev`, webserver and daemon, a backfill of several days launched as from the UI."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runner_helpers import ROOT, RUNNER, parquet_rows

ARTIFACTS = ROOT / "tests" / "artifacts"
WEBSERVER = Path(sys.executable).parent / "dagster-webserver"
DAGSTER = Path(sys.executable).parent / "dagster"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listens_on(pgid: int, port: int) -> bool:
    """Whether a process of group `pgid` (our server, or `dagster dev`'s webserver child) holds
    the socket listening on `port`. A port picked as free can be taken by another process before
    our server binds it; the server then fails, and a wait loop that only connects would talk to
    the other process."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(f"socket:[{fields[9]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.getpgid(int(proc.name)) != pgid:
                continue
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir() if fd.is_symlink()):
                return True
        except OSError:
            continue
    return False


@contextmanager
def webserver(tmp_path: Path, dev: bool = False, **env_extra: str) -> Iterator[tuple[str, Path]]:
    """The webserver alone, or with `dev` the whole of `dagster dev` (webserver and daemon)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    if not dev:
        # Without a daemon, runs must start straight away rather than wait in a queue.
        (home / "dagster.yaml").write_text(
            "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator\n"
        )
    data = tmp_path / "data"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SPOTLAKE_ROOT": str(data),
        "SPOTLAKE_RUNNER_BIN": str(RUNNER),
        "SPOTLAKE_WORKERS": "2",
        **env_extra,
    }
    log = open(tmp_path / "webserver.log", "wb")
    # A port picked as free may be taken before the webserver binds it: then the webserver
    # exits, and we start it again on another port.
    for _attempt in range(3):
        port = free_port()
        proc = subprocess.Popen(
            [*([str(DAGSTER), "dev"] if dev else [str(WEBSERVER)]), *serve_args(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        if _wait_until_serving(proc, url, port):
            break
        log.write(b"\n(the webserver exited; starting it again on another port)\n")
    else:
        raise AssertionError((tmp_path / "webserver.log").read_text())
    try:
        yield url, data
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def serve_args(port: int) -> list[str]:
    return ["-m", "spotlake_example.definitions", "-h", "127.0.0.1", "-p", str(port)]


def _wait_until_serving(proc: subprocess.Popen[bytes], url: str, port: int) -> bool:
    """True once our webserver answers on `port`; False if it exited first."""
    deadline = time.monotonic() + 120
    while proc.poll() is None:
        try:
            urllib.request.urlopen(f"{url}/server_info", timeout=2).read()
            if listens_on(proc.pid, port):
                return True
        except OSError:
            pass
        assert time.monotonic() < deadline, "the webserver did not come up"
        time.sleep(0.5)
    return False


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    out = json.loads(urllib.request.urlopen(req, timeout=60).read())
    assert "errors" not in out, out
    return out["data"]


def launch(url: str, assets: list[str], partition: str) -> str:
    node = graphql(
        url,
        """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
             ... on AssetNode { jobNames repository { name location { name } } } } }""",
        {"key": {"path": [assets[-1]]}},
    )["assetNodeOrError"]
    job = next(j for j in node["jobNames"] if j.startswith("__ASSET_JOB"))
    result = graphql(
        url,
        """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
             __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
        {
            "params": {
                "selector": {
                    "repositoryLocationName": node["repository"]["location"]["name"],
                    "repositoryName": node["repository"]["name"],
                    "jobName": job,
                    "assetSelection": [{"path": [a]} for a in assets],
                },
                "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
            }
        },
    )["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def run_status(url: str, run_id: str) -> str:
    return graphql(url, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id})[
        "runOrError"
    ]["status"]


def wait_status(url: str, run_id: str, wanted: set[str], timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while (status := run_status(url, run_id)) not in wanted:
        assert status not in {"FAILURE", "CANCELED"} - wanted, status
        assert time.monotonic() < deadline, f"run still {status}"
        time.sleep(0.5)
    return status


def screenshot(url: str, target: Path, profile: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is not installed: `make test` installs it (apt-get install chromium)"
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1400,1000",
            "--virtual-time-budget=20000",
            f"--screenshot={target}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_launch_over_graphql_read_metadata_and_screenshot(tmp_path: Path) -> None:
    with webserver(tmp_path) as (url, data):
        run_id = launch(url, ["raw_events", "clean_events"], "2024-01-02")
        wait_status(url, run_id, {"SUCCESS"})
        latest = graphql(
            url,
            """{ assetOrError(assetKey: {path: ["clean_events"]}) { ... on Asset {
                 assetMaterializations(limit: 1) { partition runId metadataEntries { label
                   ... on IntMetadataEntry { intValue } ... on PathMetadataEntry { path } } } } } }""",
        )["assetOrError"]["assetMaterializations"][0]
        assert latest["partition"] == "2024-01-02" and latest["runId"] == run_id
        entries = {e["label"]: e for e in latest["metadataEntries"]}
        assert entries["dagster/row_count"]["intValue"] > 0
        assert entries["path"]["path"] == str(data / "clean")
        checks = graphql(
            url,
            """{ assetCheckExecutions(assetKey: {path: ["clean_events"]}, checkName: "user_id_present", limit: 1) {
                 status evaluation { severity } } }""",
        )["assetCheckExecutions"]
        assert checks[0]["status"] == "SUCCEEDED"
        # The first visit shows a community sign-up dialog over the page; mark it seen.
        graphql(url, "mutation { setNuxSeen }")
        target = ARTIFACTS / "clean_events_asset_page.png"
        screenshot(f"{url}/assets/clean_events", target, tmp_path / "chromium")
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and target.stat().st_size > 20_000
        # The lineage the UI draws is the job spec's data flow.
        nodes = graphql(url, "{ assetNodes { assetKey { path } dependencyKeys { path } } }")["assetNodes"]
        upstream = {
            "/".join(n["assetKey"]["path"]): sorted("/".join(d["path"]) for d in n["dependencyKeys"]) for n in nodes
        }
        assert upstream == {
            "raw_events": [],
            "clean_events": ["raw_events"],
            "events_by_user": ["clean_events"],
            "user_daily_metrics": ["events_by_user"],
        }, upstream
        lineage = ARTIFACTS / "asset_lineage.png"
        screenshot(f"{url}/asset-groups", lineage, tmp_path / "chromium")
        assert lineage.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and lineage.stat().st_size > 20_000


def fleet_pids(data: Path) -> list[int]:
    pids = []
    for record in (data / "_runner" / "fleets").glob("*.json"):
        try:
            pids += json.loads(record.read_text())["pids"]
        except (OSError, ValueError):
            continue
    return pids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_terminating_a_run_leaves_no_fleet(tmp_path: Path) -> None:
    with webserver(tmp_path, SPOTLAKE_TEST_ITEM_SLEEP_MS="60000") as (url, data):
        run_id = launch(url, ["raw_events", "clean_events"], "2024-01-03")
        deadline = time.monotonic() + 120
        while not (pids := [p for p in fleet_pids(data) if alive(p)]):
            assert time.monotonic() < deadline, "the runner never launched its workers"
            time.sleep(0.5)
        result = graphql(
            url,
            """mutation($id: String!) { terminateRun(runId: $id) { __typename
                 ... on TerminateRunFailure { message } ... on PythonError { message } } }""",
            {"id": run_id},
        )["terminateRun"]
        assert result["__typename"] == "TerminateRunSuccess", result
        wait_status(url, run_id, {"CANCELED"}, timeout=120)
        deadline = time.monotonic() + 60
        while any(alive(p) for p in pids) or fleet_pids(data):
            assert time.monotonic() < deadline, f"workers still alive: {[p for p in pids if alive(p)]}"
            time.sleep(0.5)


def test_a_backfill_from_the_ui_under_dagster_dev(tmp_path: Path) -> None:
    """What a user does: `dagster dev`, select the assets and three days, backfill. The daemon
    lands each day's raw files, then runs the job's assets as single runs over the ranges."""
    days = ["2024-01-02", "2024-01-03", "2024-01-04"]
    assets = ["raw_events", "clean_events", "events_by_user", "user_daily_metrics"]
    with webserver(tmp_path, dev=True) as (url, data):
        launched = graphql(
            url,
            """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
                 __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
            {"p": {"partitionNames": days, "assetSelection": [{"path": [a]} for a in assets], "fromFailure": False}},
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        query = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
                     ... on PartitionBackfill { status runs(limit: 20) { runId status } } } }"""
        deadline = time.monotonic() + 600
        while (backfill := graphql(url, query, {"id": launched["backfillId"]})["partitionBackfillOrError"])[
            "status"
        ] not in {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}:
            assert time.monotonic() < deadline, backfill
            time.sleep(2)
        assert backfill["status"] in {"COMPLETED", "COMPLETED_SUCCESS"}, backfill
        assert all(r["status"] == "SUCCESS" for r in backfill["runs"]), backfill
        latest = graphql(
            url,
            """query($partitions: [String!]) { assetOrError(assetKey: {path: ["user_daily_metrics"]}) { ... on Asset {
                 assetMaterializations(partitions: $partitions) { partition runId
                   metadataEntries { label ... on IntMetadataEntry { intValue } } } } } }""",
            {"partitions": days},
        )["assetOrError"]["assetMaterializations"]
        own: dict[str, int] = {}
        for m in latest:  # newest first: each partition's latest is its own count
            entries = {e["label"]: e.get("intValue") for e in m["metadataEntries"]}
            own.setdefault(m["partition"], entries["dagster/row_count"])
        assert own == {day: parquet_rows(data / "user_daily" / f"day={day}") for day in days}, own
        checks = graphql(
            url,
            """{ assetCheckExecutions(assetKey: {path: ["user_daily_metrics"]}, checkName: "one_row_per_user",
                 limit: 20) { status evaluation { partition } } }""",
        )["assetCheckExecutions"]
        passed = {c["evaluation"]["partition"] for c in checks if c["status"] == "SUCCEEDED"}
        assert set(days) <= passed and all(c["status"] == "SUCCEEDED" for c in checks), checks
