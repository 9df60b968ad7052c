"""A job's `[env]` reaches its items everywhere the job runs, and a secret's value goes nowhere
else. The items call `pseudonym(user_id)` (the clickstream binary's keyed pseudonym, whose key is
a secret the job declares and whose version is a plain value); each output is checked against
HMAC-SHA256 computed here with Python's own `hmac`. The secret comes from moto's Secrets Manager
or Parameter Store, on the local backend through Dagster and on the aws backend (moto, with the
boot stand-ins); then every file, object, log line and Dagster event the run left is searched
for the secret's value."""

import hashlib
import hmac
import json
import os
import subprocess
import time
from pathlib import Path

import boto3
import duckdb
import pytest
from dagster import DailyPartitionsDefinition, instance_for_test, materialize
from dagster._serdes import serialize_value
from dagster_spotlake import RunnerPipesClient, runner_assets
from fleet_standin import FleetStandIn, aws_runner_config
from runner_helpers import RUNNER

CLICKSTREAM = RUNNER.parent / "clickstream-runner"
DAY = "2024-03-01"
SECRET = "k3y-Th4t-must-n0t-leak-5e1f9a"
VERSION = "v7"
USERS = [f"u{i:03d}" for i in range(40)]


def job_text(key_source: str) -> str:
    return f"""
name = "pseudonyms"

[env]
PSEUDONYM_VERSION = "{VERSION}"
PSEUDONYM_KEY = {key_source}

[[step]]
name = "mask"
split = "single"

[step.inputs.users]
path = "raw/{{partition_key}}/users.csv"
asset = "raw_users"
format = "csv"
columns = [{{ name = "user_id", dtype = "str", required = true }}]

[step.outputs.masked]
path = "masked"
asset = "masked_users"
sql = "SELECT user_id, pseudonym(user_id) AS pseudonym FROM users"
"""


def expected_pseudonym(user: str) -> str:
    mac = hmac.new(SECRET.encode(), user.encode(), hashlib.sha256).digest()
    return f"{VERSION}:{mac[:16].hex()}"


def write_job(folder: Path, key_source: str) -> Path:
    raw = folder / "lake" / "raw" / DAY
    raw.mkdir(parents=True)
    (raw / "users.csv").write_text("user_id\n" + "\n".join(USERS) + "\n")
    job = folder / "job.toml"
    job.write_text(job_text(key_source))
    return job


def masked_rows(directory: Path) -> dict[str, str]:
    files = sorted(str(p) for p in directory.rglob("*.parquet"))
    assert files, f"no output under {directory}"
    rows = duckdb.sql(f"SELECT user_id, pseudonym FROM read_parquet({files})").fetchall()
    return dict(rows)


def files_holding(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def make_secret(kind: str) -> str:
    """Stores the key in moto (which lives for the whole session: each name is new) and returns
    the job's reference to it."""
    name = f"clickstream/pseudonym-{time.monotonic_ns()}"
    if kind == "secret":
        boto3.client("secretsmanager").create_secret(
            Name=name, SecretString=json.dumps({"key": SECRET, "note": "rotated yearly"})
        )
        return f'{{ secret = "{name}", key = "key" }}'
    boto3.client("ssm").put_parameter(Name=f"/{name}", Value=SECRET, Type="SecureString")
    return f'{{ parameter = "/{name}" }}'


@pytest.mark.parametrize("kind", ["secret", "parameter"])
def test_locally_through_dagster_items_read_the_value_and_the_secret(
    aws_env, tmp_path: Path, kind: str, capfd: pytest.CaptureFixture[str]
) -> None:
    job = write_job(tmp_path, make_secret(kind))

    @runner_assets(job=job, runner_bin=str(CLICKSTREAM), partitions_def=DailyPartitionsDefinition(start_date=DAY))
    def pseudonyms(context, runner: RunnerPipesClient):
        yield from runner.run(context=context).stream()

    client = RunnerPipesClient(runner_bin=str(CLICKSTREAM), root=str(tmp_path / "lake"), env={"SPOTLAKE_WORKERS": "1"})
    with instance_for_test() as instance:
        result = materialize([pseudonyms], resources={"runner": client}, instance=instance, partition_key=DAY)
        assert result.success
        events = [serialize_value(e) for e in instance.all_logs(result.run_id)]
    assert masked_rows(tmp_path / "lake" / "masked") == {u: expected_pseudonym(u) for u in USERS}
    # Nowhere: the lake (outputs, run state, worker logs), Dagster's events, the processes' output.
    assert files_holding(tmp_path, SECRET.encode()) == []
    assert not any(SECRET in e for e in events)
    captured = capfd.readouterr()
    assert SECRET not in captured.out and SECRET not in captured.err


def test_a_secret_the_worker_cannot_read_fails_the_step_at_once_naming_it(aws_env, tmp_path: Path) -> None:
    job = write_job(tmp_path, '{ secret = "no/such/secret" }')
    base = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES_")}
    args = [str(CLICKSTREAM), "run", str(job), "--root", str(tmp_path / "lake"), "--partition", DAY]
    done = subprocess.run(args, capture_output=True, text=True, env={**base, "SPOTLAKE_WORKERS": "1"}, timeout=300)
    assert done.returncode != 0
    assert 'env PSEUDONYM_KEY: reading secret "no/such/secret"' in done.stderr, done.stderr
    assert "ResourceNotFoundException" in done.stderr, done.stderr
    assert not (tmp_path / "lake" / "masked").exists(), "nothing was published"


def test_a_reserved_name_is_refused_when_the_spec_is_read(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text(job_text('"x"').replace("[env]", '[env]\nAWS_REGION = "eu-west-1"'))
    done = subprocess.run([str(CLICKSTREAM), "validate", str(job)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert 'env "AWS_REGION"' in done.stderr and "reserved" in done.stderr, done.stderr


def test_on_the_aws_backend_each_worker_reads_the_secret_itself(aws_env, tmp_path: Path) -> None:
    reference = make_secret("secret")
    config = aws_runner_config(tmp_path, "masked", runner=CLICKSTREAM)
    job = write_job(tmp_path / "spec", reference)
    users = tmp_path / "spec" / "lake" / "raw" / DAY / "users.csv"
    config["s3"].upload_file(str(users), "masked", f"data/raw/{DAY}/users.csv")
    base = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES_")}
    args = [str(CLICKSTREAM), "run", str(job), "--root", "s3://masked/data", "--backend", "aws", "--partition", DAY]
    with FleetStandIn(tmp_path / "fleet", config["env"]) as fleet:
        done = subprocess.run(args, capture_output=True, text=True, env={**base, **config["env"]}, timeout=600)
        assert done.returncode == 0, done.stderr
        assert fleet.booted, "the step ran on the fleet"
        assert fleet.running_instances() == 0 and fleet.live_fleets() == 0
    s3 = boto3.client("s3")
    outputs = tmp_path / "outputs"
    leaked = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="masked"):
        for o in page.get("Contents", []):
            body = s3.get_object(Bucket="masked", Key=o["Key"])["Body"].read()
            if SECRET.encode() in body:
                leaked.append(o["Key"])
            if o["Key"].startswith("data/masked/") and o["Key"].endswith(".parquet"):
                target = outputs / o["Key"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(body)
    assert masked_rows(outputs) == {u: expected_pseudonym(u) for u in USERS}
    # Not in S3 (outputs, state, worker logs, Pipes), not in the instances' files (the boot
    # script, the worker's config, its log), not in the runner's output.
    assert leaked == []
    assert files_holding(tmp_path / "fleet", SECRET.encode()) == []
    assert SECRET not in done.stderr and SECRET not in done.stdout
