"""Stands in for EC2 instances that moto cannot boot: watches the launch templates the runner
creates, and for each one starts real `runner worker` processes with the configuration the
template's user data would give an instance at boot."""

import base64
import os
import subprocess
import threading
from pathlib import Path
from types import TracebackType

import boto3
from runner_helpers import RUNNER


class FleetStandIn:
    def __init__(self, workdir: Path, env: dict[str, str], workers_per_template: int = 2) -> None:
        self.workdir = workdir
        self.env = env
        self.per_template = workers_per_template
        self.booted: set[str] = set()
        self.workers: list[subprocess.Popen[bytes]] = []
        self.max_running_instances = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.ec2 = boto3.client("ec2")

    def __enter__(self) -> "FleetStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for w in self.workers:
            w.kill()
            w.wait()

    def running_instances(self) -> int:
        out = self.ec2.describe_instances(
            Filters=[
                {"Name": "tag:spotlake:tool", "Values": ["runner"]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )
        return sum(len(r["Instances"]) for r in out["Reservations"])

    def live_fleets(self) -> int:
        fleets = self.ec2.describe_fleets()["Fleets"]
        return sum(1 for f in fleets if not f["FleetState"].startswith("deleted"))

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                templates = self.ec2.describe_launch_templates()["LaunchTemplates"]
                self.max_running_instances = max(self.max_running_instances, self.running_instances())
            except Exception:  # moto restarting between tests, say
                continue
            for t in templates:
                name = t["LaunchTemplateName"]
                if not name.startswith("spotlake-") or not name.endswith("-x86_64") or name in self.booted:
                    continue
                version = self.ec2.describe_launch_template_versions(LaunchTemplateName=name)["LaunchTemplateVersions"][
                    0
                ]
                script = base64.b64decode(version["LaunchTemplateData"]["UserData"]).decode()
                config = script.split("<<'JSON'\n", 1)[1].split("\nJSON\n", 1)[0]
                path = self.workdir / f"{name}.json"
                path.write_text(config)
                env = {**os.environ, **self.env}
                for _ in range(self.per_template):
                    self.workers.append(
                        subprocess.Popen(
                            [str(RUNNER), "worker", "--config-file", str(path)],
                            env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    )
                self.booted.add(name)
