//! The boot script every worker instance runs as its user data. It fetches the runner binary
//! for its architecture, checks its sha256, runs `runner worker`, ships the worker's log to the
//! step's workers prefix as it goes and at exit, and powers off (the instance terminates). A
//! boot that fails says why in a `boot-failed.txt` object next to the log before it powers off,
//! starting with whether the failure is `permanent` (the same on every instance: a binary that
//! is missing or not what the config says, a worker that refuses to start) or `transient` (this
//! instance's trouble: a download that kept failing, a worker that couldn't reach its queue).
//! The orchestrator fails the step at once on the first kind, and counts the second towards a
//! crash loop while a new instance replaces this one.
//!
//! It relies on bash, coreutils (`sha256sum`), curl and the AWS CLI, which Amazon Linux 2023
//! has. `SPOTLAKE_HOME` (default `/opt/spotlake`) and `AWS_EC2_METADATA_SERVICE_ENDPOINT`
//! (the standard variable) let a test stand-in run the very same script in a sandbox.

use std::collections::BTreeMap;

use runner_types::Location;
use serde::{Deserialize, Serialize};

/// A worker binary: where it is and what its content must hash to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerBinary {
    /// `s3://bucket/key` of the binary (as `runner dist upload` prints it).
    pub uri: String,
    /// Its sha256, lowercase hex.
    pub sha256: String,
}

/// The object a failed boot leaves, per instance, under the step's workers prefix.
pub const BOOT_FAILED: &str = "boot-failed.txt";
/// The worker's log, per instance.
pub const WORKER_LOG: &str = "worker.log";
/// How often the boot script ships the log while the worker runs, in seconds.
pub const SHIP_EVERY_SECS: u64 = 20;

/// The variable the boot script hands the instance id in, for a worker that can't read it from
/// the metadata service itself (check-ins are matched to instances by it).
pub const INSTANCE_ID_ENV: &str = "SPOTLAKE_INSTANCE_ID";
/// Where the worker's wrapper leaves the worker's exit status.
pub const WORKER_STATUS: &str = "worker.status";
/// The systemd unit the worker runs as where systemd runs the machine.
pub const WORKER_UNIT: &str = "spotlake-worker.service";
/// The exit status of a worker that served and then lost its queue (the worker's
/// `LOST_EXIT_CODE`, `EX_TEMPFAIL`): the boot script does not call that a failed boot.
pub const LOST_EXIT_CODE: u8 = 75;
/// The exit status of a worker that can't start for a reason no retry fixes (`EX_CONFIG`): the
/// boot script calls that a permanent failure, which fails the step at once.
pub const REFUSED_EXIT_CODE: u8 = 78;
/// The exit status of a worker that stopped on EC2's spot interruption notice: the boot script
/// then waits for EC2 to reclaim the instance instead of powering it off, so the end stays
/// EC2's interruption (free in the first hour) rather than a termination of the user's.
pub const RECLAIMED_EXIT_CODE: u8 = 76;
/// How long the boot script waits for EC2 to reclaim an instance after a spot notice (EC2 says
/// two minutes) before powering it off itself.
pub const RECLAIM_WAIT_SECS: u64 = 150;
/// How long shutdown waits for the worker to hand its items back and ship its log: under the
/// two minutes between a spot notice and the reclaim.
pub const STOP_TIMEOUT_SECS: u64 = 110;

/// The systemd unit that runs the worker's wrapper from `home`. `KillMode=mixed` signals the
/// wrapper alone first (it hands the signal to the worker, waits for it and ships the log);
/// whatever is left when the wrapper exits, or at the stop timeout, is killed.
pub fn unit(home: &str) -> String {
    format!(
        "[Unit]
Description=spotlake worker (runner worker and its log shipper)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
WorkingDirectory={home}
ExecStart=/bin/bash {home}/worker.sh
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec={STOP_TIMEOUT_SECS}
"
    )
}

/// The worker's wrapper: runs the worker, ships its log as it goes and at the end, and leaves
/// the worker's exit status in [`WORKER_STATUS`]. A SIGTERM goes on to the worker, which hands
/// its items back.
fn wrapper() -> String {
    format!(
        r#"#!/bin/bash
set -uo pipefail
cd "$(dirname "$0")" || exit 1
. ./boot.env
ship() {{ aws s3 cp {log} "$PREFIX/$ID/{log}" --only-show-errors || true; }}
(sleep 2; ship; while sleep {every}; do ship; done) &
SHIPPER=$!
trap 'kill -TERM "${{WORKER:-}}" 2>/dev/null; wait "${{WORKER:-}}"; echo $? > {status}; kill "$SHIPPER" 2>/dev/null; ship; exit 0' TERM
{id_env}="$ID" ./runner worker --config-file worker.json >> {log} 2>&1 &
WORKER=$!
wait "$WORKER"
echo $? > {status}
kill "$SHIPPER" 2>/dev/null
ship
"#,
        log = WORKER_LOG,
        every = SHIP_EVERY_SECS,
        status = WORKER_STATUS,
        id_env = INSTANCE_ID_ENV,
    )
}

/// Single-quotes a value for bash.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The user data for one step's instances.
pub fn script(worker_config: &str, workers_prefix: &Location, binaries: &BTreeMap<String, WorkerBinary>) -> String {
    let bin = |arch: &str| binaries.get(arch).map(|b| (quote(&b.uri), quote(&b.sha256)));
    let case_arm = |machine: &str, arch: &str| match bin(arch) {
        Some((uri, sha)) => format!("  {machine}) BIN={uri}; SHA={sha} ;;\n"),
        None => format!(
            "  {machine}) fail permanent \"no runner binary is configured for {arch} (ec2.worker_binaries)\" ;;\n"
        ),
    };
    let prefix = quote(&workers_prefix.to_string());
    format!(
        r#"#!/bin/bash
# spotlake worker boot: fetch and verify the runner, run the worker, ship its log, power off.
set -uo pipefail
HOME_DIR="${{SPOTLAKE_HOME:-/opt/spotlake}}"
mkdir -p "$HOME_DIR" && cd "$HOME_DIR" || exit 1
PREFIX={prefix}
IMDS="${{AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}}"
IMDS="${{IMDS%/}}"
TOKEN=$(curl -sf -m 5 -X PUT "$IMDS/latest/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600')
ID=$(curl -sf -m 5 -H "X-aws-ec2-metadata-token: $TOKEN" "$IMDS/latest/meta-data/instance-id")
[ -n "$ID" ] || ID="unknown-$(hostname)-$$"
# The AWS CLI needs a region; the instance's own is the one its queues and buckets answer in.
if [ -z "${{AWS_DEFAULT_REGION:-}}" ]; then
  AWS_DEFAULT_REGION=$(curl -sf -m 5 -H "X-aws-ec2-metadata-token: $TOKEN" "$IMDS/latest/meta-data/placement/region")
  export AWS_DEFAULT_REGION
fi
touch {log}
ship() {{ aws s3 cp {log} "$PREFIX/$ID/{log}" --only-show-errors || true; }}
# fail permanent|transient WHY: a permanent failure (the same on every instance) fails the
# step at once; a transient one retires this instance, and the step fails only on a crash loop.
fail() {{
  echo "$1: instance $ID: $2" > {failed}
  aws s3 cp {failed} "$PREFIX/$ID/{failed}" --only-show-errors
  ship
  shutdown -h now
  exit 1
}}
cat > worker.json <<'SPOTLAKE_WORKER_JSON'
{worker_config}
SPOTLAKE_WORKER_JSON
case "$(uname -m)" in
{x86}{arm}  *) fail permanent "unsupported machine $(uname -m)" ;;
esac
# A download that fails is tried again (a throttled or unreachable S3 passes, and so do a role
# still propagating and a clock not yet synced, both 403s); a missing object is not. A refusal
# that outlasts the tries is permanent: every instance would meet it.
for WAIT in ${{SPOTLAKE_TEST_BOOT_RETRY_WAITS:-5 15 30}} last; do
  aws s3 cp "$BIN" runner --only-show-errors 2> download.err && break
  if grep -qE '\(404\)|Not Found|NoSuchKey' download.err; then
    fail permanent "downloading the runner from $BIN failed: $(tail -c 1000 download.err)"
  fi
  if [ "$WAIT" = last ]; then
    grep -qE '\(403\)|Forbidden|AccessDenied' download.err && CLASS=permanent || CLASS=transient
    fail "$CLASS" "downloading the runner from $BIN failed at every try: $(tail -c 1000 download.err)"
  fi
  sleep "$WAIT"
done
GOT=$(sha256sum runner | cut -d' ' -f1)
[ "$GOT" = "$SHA" ] || fail permanent "the runner at $BIN has sha256 $GOT, but ec2.worker_binaries says $SHA"
chmod +x runner
# What the worker's wrapper needs from this script, whether systemd starts it or this shell does.
declare -p ID PREFIX AWS_DEFAULT_REGION > boot.env 2>/dev/null
cat > worker.sh <<'SPOTLAKE_WORKER_SH'
{wrapper}SPOTLAKE_WORKER_SH
rm -f {status}
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  # A unit of its own: shutdown stops it in order, with time to hand items back and ship the
  # log while the network is up (user data's cloud-final.service signals only cloud-init).
  cat > /etc/systemd/system/{unit_name} <<SPOTLAKE_UNIT
{unit}SPOTLAKE_UNIT
  systemctl daemon-reload
  systemctl start --wait {unit_name}
else
  /bin/bash worker.sh &
  WRAPPER=$!
  # Terminating the instance stops the worker with SIGTERM first: its items go back to the
  # queue, and its log is shipped before the power goes.
  trap 'kill -TERM "$WRAPPER" 2>/dev/null; wait "$WRAPPER"; exit 0' TERM
  wait "$WRAPPER"
fi
STATUS=$(cat {status} 2>/dev/null || echo 1)
# {lost}: the worker served, then lost its queue for a while: not a boot failure. {refused}: it
# can't start for a reason no retry fixes. Anything else: this instance's trouble.
if [ "$STATUS" -eq {reclaimed} ]; then
  # EC2 reclaims the instance within two minutes of its notice: its end stays EC2's (free in
  # the first hour), not a termination of ours (billed). Powered off only if EC2 doesn't.
  ship
  # In the background, so a TERM (the reclaim itself) is handled at once, not after the sleep.
  sleep {reclaim_wait} &
  wait $!
  shutdown -h now
  exit 0
fi
[ "$STATUS" -eq {refused} ] && fail permanent "the worker can't start; its log ends with: $(tail -c 2000 {log})"
[ "$STATUS" -eq 0 ] || [ "$STATUS" -eq {lost} ] || fail transient "the worker exited with status $STATUS; its log ends with: $(tail -c 2000 {log})"
ship
shutdown -h now
"#,
        log = WORKER_LOG,
        failed = BOOT_FAILED,
        status = WORKER_STATUS,
        lost = LOST_EXIT_CODE,
        refused = REFUSED_EXIT_CODE,
        reclaimed = RECLAIMED_EXIT_CODE,
        reclaim_wait = RECLAIM_WAIT_SECS,
        unit_name = WORKER_UNIT,
        unit = unit("${HOME_DIR}"),
        wrapper = wrapper(),
        x86 = case_arm("x86_64", "x86_64"),
        arm = case_arm("aarch64", "arm64"),
    )
}

/// The worker configuration a script carries (a test stand-in, or an operator reading a
/// launch template, can get it back).
pub fn worker_config_of(script: &str) -> Option<&str> {
    script.split("<<'SPOTLAKE_WORKER_JSON'\n").nth(1)?.split("\nSPOTLAKE_WORKER_JSON\n").next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binaries() -> BTreeMap<String, WorkerBinary> {
        [("x86_64".to_string(), WorkerBinary { uri: "s3://b/bin/x'y".into(), sha256: "ab12".into() })].into()
    }

    #[test]
    fn the_script_carries_the_config_and_quotes_what_it_interpolates() {
        let prefix = Location::parse_absolute("s3://lake/state/runs/r/workers/clean").unwrap();
        let s = script(r#"{"a": 1}"#, &prefix, &binaries());
        assert_eq!(worker_config_of(&s), Some(r#"{"a": 1}"#));
        assert!(s.contains(r"BIN='s3://b/bin/x'\''y'; SHA='ab12'"), "{s}");
        assert!(s.contains("PREFIX='s3://lake/state/runs/r/workers/clean'"), "{s}");
    }

    #[test]
    fn the_worker_runs_as_a_unit_under_systemd_and_from_the_shell_elsewhere() {
        let prefix = Location::parse_absolute("s3://lake/w").unwrap();
        let s = script("{}", &prefix, &binaries());
        // The unit, written with the home directory the script runs in.
        assert!(s.contains("cat > /etc/systemd/system/spotlake-worker.service <<SPOTLAKE_UNIT\n[Unit]"), "{s}");
        assert!(s.contains("ExecStart=/bin/bash ${HOME_DIR}/worker.sh\nKillMode=mixed"), "{s}");
        assert!(s.contains("systemctl start --wait spotlake-worker.service"), "{s}");
        // The fallback, and the status both paths leave.
        assert!(s.contains("  /bin/bash worker.sh &\n"), "{s}");
        assert!(s.contains(r#"[ "$STATUS" -eq 0 ] || [ "$STATUS" -eq 75 ] || fail transient"#), "{s}");
        assert!(s.contains(r#"[ "$STATUS" -eq 78 ] && fail permanent"#), "{s}");
        assert!(s.contains("if [ \"$STATUS\" -eq 76 ]; then\n"), "{s}");
        let wait = s.split("if [ \"$STATUS\" -eq 76 ]; then\n").nth(1).unwrap_or_default();
        assert!(
            wait.contains("  sleep 150 &\n  wait $!\n  shutdown -h now\n"),
            "a reclaimed instance waits for EC2: {s}"
        );
        // The instance id goes to the worker.
        assert!(s.contains(r#"SPOTLAKE_INSTANCE_ID="$ID" ./runner worker"#), "{s}");
        assert_eq!(LOST_EXIT_CODE, 75);
    }

    #[test]
    fn the_unit_is_one_systemd_accepts() {
        let u = unit("/opt/spotlake");
        assert!(u.contains("TimeoutStopSec=110\n") && u.contains("After=network-online.target\n"), "{u}");
        // systemd's own checker (Debian's systemd package).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WORKER_UNIT);
        std::fs::write(&path, u.replace("/opt/spotlake", &dir.path().to_string_lossy())).unwrap();
        std::fs::write(dir.path().join("worker.sh"), "#!/bin/bash\n").unwrap();
        // `make test` installs it (`make tools`); a machine without it fails here, never passes
        // unchecked.
        let out = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .expect("systemd-analyze runs (make tools installs Debian's systemd package)");
        let said = String::from_utf8_lossy(&out.stderr);
        // verify exits 0 even for a setting it ignores ("Failed to parse kill mode
        // specification, ignoring"), but names the file in each complaint: it must have none
        // about the unit.
        assert!(!said.contains(WORKER_UNIT), "{said}");
    }

    #[test]
    fn an_architecture_without_a_binary_fails_loudly_at_boot() {
        let prefix = Location::parse_absolute("s3://lake/w").unwrap();
        let s = script("{}", &prefix, &binaries());
        assert!(s.contains(r#"aarch64) fail permanent "no runner binary is configured for arm64"#), "{s}");
    }
}
