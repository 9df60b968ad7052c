//! A stand-in for EC2 instances booting. moto records instances but never runs their user
//! data; this does, for every pending or running instance of this tool: it fetches the user
//! data of the instance's launch template and runs it with bash in a sandbox directory, as
//! cloud-init would. The script's commands are the real ones: the AWS CLI (pip `awscli`, from
//! the project's venv) against moto, `sha256sum`, curl against a per-instance metadata
//! stand-in, and the runner it downloads. `shutdown` is the one command replaced: it
//! terminates the instance in moto, which is what powering off does to an instance whose
//! shutdown behaviour is `terminate`. The instance's size reaches the worker through
//! `SPOTLAKE_VCPUS` / `SPOTLAKE_MEMORY_MIB`, from moto's `DescribeInstanceTypes`.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use aws_sdk_ec2::types::Filter;
use base64::Engine as _;

use super::imds;

/// One booted stand-in.
pub struct Booted {
    pub child: Child,
    pub dir: PathBuf,
    pub instance_type: String,
}

/// Booted instances by id.
pub struct StandIns {
    root: PathBuf,
    env: Vec<(&'static str, String)>,
    /// Variables set only in the first so many instances booted.
    first_env: Vec<(usize, &'static str, String)>,
    pub booted: BTreeMap<String, Booted>,
    /// Instances terminated (by moto, the fleet or the test) whose stand-in was stopped.
    pub ended: Vec<String>,
}

impl StandIns {
    /// Stand-ins that live under `root`, talking to moto with `env`.
    pub fn new(root: &Path, env: Vec<(&'static str, String)>) -> Self {
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let shutdown = bin.join("shutdown");
        std::fs::write(
            &shutdown,
            "#!/bin/sh\n# Powering off terminates the instance.\n\
             aws ec2 terminate-instances --instance-ids \"$STANDIN_INSTANCE_ID\" > /dev/null\n",
        )
        .unwrap();
        std::fs::set_permissions(&shutdown, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        Self { root: root.to_path_buf(), env, first_env: Vec::new(), booted: BTreeMap::new(), ended: Vec::new() }
    }

    /// Sets a variable in every instance's environment (a failpoint the test needs there).
    pub fn with_env(mut self, key: &'static str, value: &str) -> Self {
        self.env.push((key, value.to_string()));
        self
    }

    /// Sets a variable in the first `n` instances booted only (one instance's trouble).
    pub fn with_env_for_first(mut self, n: usize, key: &'static str, value: &str) -> Self {
        self.first_env.push((n, key, value.to_string()));
        self
    }

    /// Boots every instance of this tool not booted yet; stops the stand-ins of instances that
    /// moto no longer runs.
    pub async fn tick(&mut self, ec2: &aws_sdk_ec2::Client) {
        let Ok(out) = ec2
            .describe_instances()
            .filters(Filter::builder().name("tag:spotlake:tool").values("runner").build())
            .send()
            .await
        else {
            return;
        };
        for r in out.reservations() {
            for i in r.instances() {
                let id = i.instance_id().unwrap_or_default().to_string();
                let state = i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default();
                let up = state == "pending" || state == "running";
                if !up {
                    if self.booted.contains_key(&id) && !self.ended.contains(&id) {
                        self.stop(&id);
                    }
                    continue;
                }
                if self.booted.contains_key(&id) {
                    continue;
                }
                let tag = |k: &str| i.tags().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).unwrap_or("");
                let (run, step) = (tag("spotlake:run-id").to_string(), tag("spotlake:step").to_string());
                let Some(script) = user_data(ec2, &run, &step).await else { continue };
                let instance_type = i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default();
                let az = i.placement().and_then(|p| p.availability_zone()).unwrap_or("us-east-1a").to_string();
                let (vcpus, memory) = size(ec2, &instance_type).await;
                self.boot(&id, &instance_type, &az, &script, vcpus, memory);
            }
        }
    }

    fn boot(&mut self, id: &str, instance_type: &str, az: &str, script: &str, vcpus: i32, memory_mib: i64) {
        let dir = self.root.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("user-data.sh");
        std::fs::write(&path, script).unwrap();
        let endpoint = imds::serve(
            imds::Identity {
                instance_id: id.into(),
                instance_type: instance_type.into(),
                availability_zone: az.into(),
            },
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let venv_bin = super::workspace().join(".venv/bin");
        let path_var = format!(
            "{}:{}:{}",
            self.root.join("bin").display(),
            venv_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new("bash")
            .arg(&path)
            .current_dir(&dir)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(self.first_env.iter().filter(|(n, _, _)| self.booted.len() < *n).map(|(_, k, v)| (*k, v.as_str())))
            .env("PATH", path_var)
            .env("SPOTLAKE_HOME", dir.join("home"))
            .env("STANDIN_INSTANCE_ID", id)
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint)
            .env("AWS_EC2_METADATA_DISABLED", "false")
            .env("SPOTLAKE_VCPUS", vcpus.to_string())
            .env("SPOTLAKE_MEMORY_MIB", memory_mib.to_string())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("console.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("console.err")).unwrap())
            // Its own process group: terminating the instance stops everything it started.
            .process_group(0)
            .spawn()
            .unwrap();
        self.booted.insert(id.to_string(), Booted { child, dir, instance_type: instance_type.to_string() });
    }

    /// Stops an instance's processes as a shutdown does: SIGTERM to all of them, and SIGKILL to
    /// what is left after a grace period.
    pub fn stop(&mut self, id: &str) {
        self.signal(id, libc::SIGTERM, std::time::Duration::from_secs(15));
    }

    fn signal(&mut self, id: &str, first: i32, grace: std::time::Duration) {
        if let Some(b) = self.booted.get_mut(id) {
            let group = -(b.child.id() as i32);
            // SAFETY: signalling the process group this stand-in started.
            unsafe {
                libc::kill(group, first);
            }
            let deadline = std::time::Instant::now() + grace;
            while b.child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            // SAFETY: as above; whatever is left of the instance goes.
            unsafe {
                libc::kill(group, libc::SIGKILL);
            }
            let _ = b.child.wait();
            self.ended.push(id.to_string());
        }
    }

    /// Takes an instance away at once, as a reclaim without notice would: in moto, and its
    /// processes killed.
    pub async fn reclaim(&mut self, ec2: &aws_sdk_ec2::Client, id: &str) {
        ec2.terminate_instances().instance_ids(id).send().await.unwrap();
        self.signal(id, libc::SIGKILL, std::time::Duration::ZERO);
    }

    /// What an instance's boot printed, for assertion messages.
    pub fn console(&self, id: &str) -> String {
        let Some(b) = self.booted.get(id) else { return String::new() };
        let read = |f: &str| std::fs::read_to_string(b.dir.join(f)).unwrap_or_default();
        let log = std::fs::read_to_string(b.dir.join("home/worker.log")).unwrap_or_default();
        format!("--- {id} stdout\n{}--- stderr\n{}--- worker.log\n{log}", read("console.log"), read("console.err"))
    }

    /// Every console, for assertion messages.
    pub fn consoles(&self) -> String {
        self.booted.keys().map(|id| self.console(id)).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for StandIns {
    fn drop(&mut self) {
        let ids: Vec<String> = self.booted.keys().cloned().collect();
        for id in ids {
            if !self.ended.contains(&id) {
                self.signal(&id, libc::SIGKILL, std::time::Duration::ZERO);
            }
        }
    }
}

/// The user data of the step's launch template (the script is the same for each architecture).
async fn user_data(ec2: &aws_sdk_ec2::Client, run: &str, step: &str) -> Option<String> {
    let templates = ec2
        .describe_launch_templates()
        .filters(Filter::builder().name("tag:spotlake:run-id").values(run).build())
        .filters(Filter::builder().name("tag:spotlake:step").values(step).build())
        .send()
        .await
        .ok()?;
    let name = templates.launch_templates().first()?.launch_template_name()?.to_string();
    let versions = ec2.describe_launch_template_versions().launch_template_name(&name).send().await.ok()?;
    let data = versions.launch_template_versions().first()?.launch_template_data()?.user_data()?.to_string();
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(data).ok()?).ok()
}

/// vCPUs and memory of an instance type, as moto knows them.
async fn size(ec2: &aws_sdk_ec2::Client, instance_type: &str) -> (i32, i64) {
    let out = ec2.describe_instance_types().instance_types(instance_type.into()).send().await.ok();
    let t = out.as_ref().and_then(|o| o.instance_types().first());
    (
        t.and_then(|t| t.v_cpu_info()).and_then(|v| v.default_v_cpus()).unwrap_or(2),
        t.and_then(|t| t.memory_info()).and_then(|m| m.size_in_mib()).unwrap_or(8192),
    )
}
