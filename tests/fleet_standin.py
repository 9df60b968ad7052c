"""Stands in for EC2 instances that moto records but never boots: for every pending or running
instance of the runner, runs its launch template's real user data with bash in a sandbox
directory, as cloud-init would. The boot script's commands are the real ones (the AWS CLI from
the venv against moto, curl against a per-instance metadata stand-in, sha256sum, the runner it
downloads); `shutdown` terminates the instance in moto, which is what powering off does to an
instance whose shutdown behaviour is `terminate`. The same stand-in as the Rust tests'
`support::instances`, for the Dagster-side tests."""

import base64
import datetime
import hashlib
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

import boto3
from runner_helpers import RUNNER

VENV_BIN = Path(sys.executable).parent


def upload_launcher(s3, bucket: str, runner: Path = RUNNER) -> str:  # type: ignore[no-untyped-def]
    """Uploads a stand-in for the worker binary that starts the runner under test (the debug
    binary is too big to send through moto for every instance); returns its config entry."""
    body = f"#!/bin/sh\nexec '{runner}' \"$@\"\n".encode()
    sha = hashlib.sha256(body).hexdigest()
    key = f"bin/{sha}/runner-x86_64"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return f'worker_binaries.x86_64 = {{ uri = "s3://{bucket}/{key}", sha256 = "{sha}" }}'


def aws_runner_config(workdir: Path, bucket: str, extra: str = "", runner: Path = RUNNER) -> dict:
    """A bucket, a VPC with a subnet in two zones, the worker stand-in binary, and a runner
    config for the aws backend over them (moto launches an instance per unit of capacity, so
    the fleet is kept to 2 vCPUs); the workers run `runner`. Returns the S3 client, the env for the runner and the
    config's path."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.2.{i}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
        for i, az in enumerate(["us-east-1a", "us-east-1b"])
    ]
    ami = ec2.describe_images(Filters=[{"Name": "architecture", "Values": ["x86_64"]}])["Images"][0]["ImageId"]
    binary = upload_launcher(s3, bucket, runner)
    config = workdir / "runner.toml"
    config.write_text(
        f"""
backend = "aws"
state = "s3://{bucket}/state"
visibility_secs = 5
heartbeat_secs = 1
idle_shutdown_secs = 4
{extra}
[ec2]
subnets = {json.dumps(subnets)}
amis = {{ x86_64 = "{ami}" }}
{binary}
subnet_overrides = "separate"
vcpus_per_item = 1
max_vcpus = 2
"""
    )
    env = {"SPOTLAKE_CONFIG": str(config), "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9"}
    return {"s3": s3, "env": env, "config": config}


def _metadata_service(
    instance_id: str, instance_type: str, zone: str
) -> tuple[http.server.HTTPServer, str, dict[str, str]]:
    """A metadata service for one instance; the answers it returns can be added to while it runs
    (a spot notice, a rebalance recommendation)."""
    answers = {
        "/latest/meta-data/instance-id": instance_id,
        "/latest/meta-data/instance-type": instance_type,
        "/latest/meta-data/placement/availability-zone": zone,
        "/latest/meta-data/placement/region": zone[:-1],
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            self._answer(200, "stand-in-token") if self.path == "/latest/api/token" else self._answer(404, "")

        def do_GET(self) -> None:
            body = answers.get(self.path)
            self._answer(200, body) if body else self._answer(404, "")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", answers


SPOT_ACTION = "/latest/meta-data/spot/instance-action"
REBALANCE = "/latest/meta-data/events/recommendations/rebalance"
#: What `FleetStandIn(chaos=...)` can do to an instance running an item.
CHAOS_EVENTS = ("notice", "rebalance", "crash")
# How long after a spot notice the stand-in reclaims the instance.
RECLAIM_AFTER_SECONDS = 10.0
# A worker log's item lines: a start, or an end of any kind.
ITEM_LINE = re.compile(r" (running|done|failed|handed back)\b.*item=| item=.* (done|failed|handed back)")
# An event lands on an item started at most this long ago.
JUST_STARTED = 1.5


class FleetStandIn:
    def __init__(
        self, workdir: Path, env: dict[str, str], vcpus: int | None = None, chaos: list[str] | None = None
    ) -> None:
        """`vcpus` overrides what each instance's worker sees of its machine (the benchmark's
        "before packing": one item's worth, whatever the instance's size). `chaos` lists events
        (`CHAOS_EVENTS`) to bring, in order, each on the next instance seen running an item: a
        spot notice (the metadata service answers `spot/instance-action`), a rebalance
        recommendation, or a hard crash (its processes killed, the instance terminated). The
        events that landed, with their instances, are in `landed`."""
        assert all(e in CHAOS_EVENTS for e in chaos or []), chaos
        self.chaos = list(chaos or [])
        self.landed: list[tuple[str, str]] = []
        # When each event landed (Unix seconds), for checking it against the worker's own log.
        self.landed_at: list[float] = []
        # When EC2 reclaims each instance given a spot notice (EC2 says within two minutes; here
        # sooner), as EC2 does: the worker hands its items back and waits for it.
        self.reclaim_at: dict[str, float] = {}
        self.answers: dict[str, dict[str, str]] = {}
        self.homes: dict[str, Path] = {}
        self.workdir = workdir
        self.env = env
        self.vcpus = vcpus
        # Instance id → (booted, ended) on the monotonic clock: what the instance was billed for.
        self.lifetimes: dict[str, list[float]] = {}
        self.booted: dict[str, subprocess.Popen[bytes]] = {}
        self.ended: set[str] = set()
        self.servers: list[http.server.HTTPServer] = []
        self.max_running_instances = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.ec2 = boto3.client("ec2")
        bin_dir = workdir / "standin-bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        shutdown = bin_dir / "shutdown"
        shutdown.write_text(
            '#!/bin/sh\naws ec2 terminate-instances --instance-ids "$STANDIN_INSTANCE_ID" > /dev/null\n'
        )
        shutdown.chmod(0o755)
        self.path = f"{bin_dir}:{VENV_BIN}:{os.environ.get('PATH', '')}"

    def __enter__(self) -> "FleetStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for instance_id in list(self.booted):
            self._kill(instance_id, signal.SIGKILL)
        for server in self.servers:
            server.shutdown()

    def _instances(self, states: list[str]) -> list[dict]:
        out = self.ec2.describe_instances(
            Filters=[
                {"Name": "tag:spotlake:tool", "Values": ["runner"]},
                {"Name": "instance-state-name", "Values": states},
            ]
        )
        return [i for r in out["Reservations"] for i in r["Instances"]]

    def running_instances(self) -> int:
        return len(self._instances(["pending", "running"]))

    def live_fleets(self) -> int:
        fleets = self.ec2.describe_fleets()["Fleets"]
        return sum(1 for f in fleets if not f["FleetState"].startswith("deleted"))

    def _user_data(self, tags: dict[str, str]) -> str | None:
        templates = self.ec2.describe_launch_templates(
            Filters=[
                {"Name": "tag:spotlake:run-id", "Values": [tags.get("spotlake:run-id", "")]},
                {"Name": "tag:spotlake:step", "Values": [tags.get("spotlake:step", "")]},
            ]
        )["LaunchTemplates"]
        if not templates:
            return None
        versions = self.ec2.describe_launch_template_versions(LaunchTemplateName=templates[0]["LaunchTemplateName"])
        return base64.b64decode(versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"]).decode()

    def _kill(self, instance_id: str, sig: int) -> None:
        proc = self.booted.get(instance_id)
        if proc is None or instance_id in self.ended:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        self.ended.add(instance_id)
        self.lifetimes[instance_id][1] = time.monotonic()

    def _boot(self, instance: dict, script: str) -> None:
        instance_id, instance_type = instance["InstanceId"], instance["InstanceType"]
        zone = instance.get("Placement", {}).get("AvailabilityZone", "us-east-1a")
        kind = self.ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"][0]
        server, endpoint, answers = _metadata_service(instance_id, instance_type, zone)
        self.servers.append(server)
        self.answers[instance_id] = answers
        home = self.workdir / "instances" / instance_id
        self.homes[instance_id] = home
        home.mkdir(parents=True, exist_ok=True)
        (home / "user-data.sh").write_text(script)
        env = {
            **os.environ,
            **self.env,
            "PATH": self.path,
            "SPOTLAKE_HOME": str(home / "home"),
            "STANDIN_INSTANCE_ID": instance_id,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": endpoint,
            "AWS_EC2_METADATA_DISABLED": "false",
            "SPOTLAKE_VCPUS": str(self.vcpus or kind["VCpuInfo"]["DefaultVCpus"]),
            "SPOTLAKE_MEMORY_MIB": str(kind["MemoryInfo"]["SizeInMiB"]),
        }
        self.lifetimes[instance_id] = [time.monotonic(), 0.0]
        with open(home / "console.log", "wb") as log:
            self.booted[instance_id] = subprocess.Popen(
                ["bash", str(home / "user-data.sh")],
                cwd=home,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _running_an_item(self, instance_id: str) -> bool:
        """Whether the worker's own log says an item is in flight and started just now: its last
        item line is a start (`running item=…`, no `done`, `failed` or `handed back` after it)
        written within `JUST_STARTED` seconds, so an event lands mid-item with the item's whole
        run (the item-sleep failpoint) still ahead, not on an instance that once ran one."""
        log = self.homes[instance_id] / "home" / "worker.log"
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            return False
        items = [line for line in lines if ITEM_LINE.search(line)]
        if not items or " running item=" not in items[-1]:
            return False
        stamp = items[-1].split(" ", 1)[0]
        try:
            started = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return False
        return time.time() - started <= JUST_STARTED

    def _bring_chaos(self, up_ids: set[str]) -> None:
        """The next chaos event, on an instance up and running an item that has had none."""
        if not self.chaos:
            return
        struck = {instance_id for _, instance_id in self.landed}
        for instance_id in sorted(up_ids & set(self.booted) - struck - self.ended):
            if not self._running_an_item(instance_id):
                continue
            event = self.chaos.pop(0)
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            if event == "notice":
                reclaim = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 120))
                self.answers[instance_id][SPOT_ACTION] = f'{{"action": "terminate", "time": "{reclaim}"}}'
                self.reclaim_at[instance_id] = time.time() + RECLAIM_AFTER_SECONDS
            elif event == "rebalance":
                self.answers[instance_id][REBALANCE] = f'{{"noticeTime": "{now}"}}'
            else:
                self._kill(instance_id, signal.SIGKILL)
                self.ec2.terminate_instances(InstanceIds=[instance_id])
            self.landed.append((event, instance_id))
            self.landed_at.append(time.time())
            return

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                up = self._instances(["pending", "running"])
                self.max_running_instances = max(self.max_running_instances, len(up))
                up_ids = {i["InstanceId"] for i in up}
                for instance_id in set(self.booted) - up_ids:
                    # Terminated: the instance shuts down (SIGTERM, then what is left goes).
                    self._kill(instance_id, signal.SIGTERM)
                self._bring_chaos(up_ids)
                for instance_id, at in list(self.reclaim_at.items()):
                    if time.time() >= at:
                        del self.reclaim_at[instance_id]
                        if instance_id in up_ids:
                            self.ec2.terminate_instances(InstanceIds=[instance_id])
                for instance in up:
                    if instance["InstanceId"] in self.booted:
                        continue
                    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                    script = self._user_data(tags)
                    if script:
                        self._boot(instance, script)
            except Exception:  # moto restarting between tests, say
                continue
