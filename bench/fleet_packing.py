"""Instance-seconds per item before and after packing, on moto with stand-in instances that run
the real boot script (tests/fleet_standin.py), for 2-, 8- and 16-vCPU instance types.

Before packing, each worker is told its machine has one item's vCPUs (`SPOTLAKE_VCPUS=1`): one
item at a time whatever the instance's size, which is how workers ran before packing. After,
the worker reads its size (the stand-in passes the type's real vCPUs from moto) and runs
vCPUs ÷ `vcpus_per_item` items at once. The fleet is capped to one instance in both cases, so
the instance-seconds are the same instance's, and the ratio should approach the vCPU ratio.
Items are 32 one-row files, each held 1 s by the runner's item failpoint: the stand-in runs on
this two-core machine, so CPU-bound items could not show 16-way parallelism here; the held
item stands for a CPU-bound item on a real instance, whose cores would be its own."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3
from moto_local import moto_env

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from fleet_standin import FleetStandIn, upload_launcher  # noqa: E402

PROFILE = os.environ.get("BENCH_PROFILE", "release")
RUNNER = ROOT / "target" / PROFILE / "runner"
ITEMS = 32
ITEM_MS = 1000
TYPES = [("m6i.large", 2), ("m6i.2xlarge", 8), ("m6i.4xlarge", 16)]
JOB = ROOT / "runner" / "tests" / "jobs" / "one_file_items.toml"


def setup(env: dict[str, str], work: Path) -> tuple[str, str, str]:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="lake")
    for i in range(ITEMS):
        s3.put_object(Bucket="lake", Key=f"data/many/2024-01-01/part-{i:03}.csv", Body=f"id,n\na{i},{i}\n".encode())
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    ami = ec2.describe_images(Filters=[{"Name": "architecture", "Values": ["x86_64"]}])["Images"][0]["ImageId"]
    return subnet, ami, upload_launcher(s3, "lake", RUNNER)


def run_once(env: dict[str, str], work: Path, network: tuple[str, str, str], itype: str, packed: bool) -> float:
    subnet, ami, binary = network
    config = work / f"runner-{itype}-{packed}.toml"
    config.write_text(
        f"""
backend = "aws"
deployment = "bench"
root = "s3://lake/data"
state = "s3://lake/state"
idle_shutdown_secs = 2
[ec2]
subnets = ["{subnet}"]
amis = {{ x86_64 = "{ami}" }}
{binary}
template_instance_types = {{ x86_64 = "{itype}" }}
subnet_overrides = "separate"
vcpus_per_item = 1
max_vcpus = 1
"""
    )
    run_env = {
        **os.environ,
        **env,
        "SPOTLAKE_CONFIG": str(config),
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9",
    }
    instance_env = {**env, "SPOTLAKE_TEST_ITEM_SLEEP_MS": str(ITEM_MS)}
    log = work / f"{itype}-{packed}.log"
    stand_in = FleetStandIn(work / f"{itype}-{packed}", instance_env, vcpus=None if packed else 1)
    with stand_in as fleet, open(log, "w") as err:
        subprocess.run(
            [str(RUNNER), "run", str(JOB), "--partition", "2024-01-01", "--force"],
            env=run_env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    seconds = sum(end - start for start, end in fleet.lifetimes.values() if end > start)
    return seconds / ITEMS


def main() -> None:
    if not RUNNER.exists():
        sys.exit(f"{RUNNER} is missing: build it first (make bench builds the release binary)")
    with moto_env() as env, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(env)
        work = Path(tmp)
        network = setup(env, work)
        print(f"instance-seconds per item, {ITEMS} items of {ITEM_MS} ms, one stand-in instance (moto):")
        print(f"{'instance':<12} {'vCPUs':>5} {'before':>8} {'after':>8} {'ratio':>6}")
        for itype, vcpus in TYPES:
            before = run_once(env, work, network, itype, packed=False)
            after = run_once(env, work, network, itype, packed=True)
            print(f"{itype:<12} {vcpus:>5} {before:>8.2f} {after:>8.2f} {before / after:>5.1f}x")


if __name__ == "__main__":
    main()
