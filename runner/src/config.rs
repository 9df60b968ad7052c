//! Runner configuration: one TOML file (`--config` or `SPOTLAKE_CONFIG`, see [`crate::settings`]
//! for which wins) and a few env vars on top. The local backend is the default and needs nothing; the aws backend adds the `[ec2]`
//! table and uses the standard AWS chains (`AWS_REGION`, `AWS_ENDPOINT_URL*`, profiles) for everything else.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use runner_backends::fleet::ec2::Ec2Config;
use runner_types::BackendKind;

/// The configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Backend.
    #[serde(default)]
    pub backend: BackendKind,
    /// Whether the file set `backend` (so `runner config show` can say where it came from).
    #[serde(skip)]
    pub backend_set: bool,
    /// Where relative job paths resolve (a directory or `s3://bucket/prefix`).
    #[serde(default)]
    pub root: Option<String>,
    /// Where run state lives (default `{root}/_runner`).
    #[serde(default)]
    pub state: Option<String>,
    /// Local worker processes (default: the number of cores).
    #[serde(default)]
    pub workers: Option<usize>,
    /// Give up on a run after this long (`90s`, `30m`, `6h`); default 12h.
    #[serde(default)]
    pub max_runtime: Option<String>,
    /// Item visibility timeout in seconds.
    #[serde(default)]
    pub visibility_secs: Option<u64>,
    /// Heartbeat period in seconds.
    #[serde(default)]
    pub heartbeat_secs: Option<u64>,
    /// Worker idle shutdown in seconds.
    #[serde(default)]
    pub idle_shutdown_secs: Option<u64>,
    /// Attempts per item.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Workers' scratch directory.
    #[serde(default)]
    pub scratch_dir: Option<String>,
    /// Poll IMDS for spot notices (default: on for the aws backend).
    #[serde(default)]
    pub poll_imds: Option<bool>,
    /// Deliveries an item may have beyond its attempts (interruptions) before it goes to the
    /// dead-letter queue.
    #[serde(default)]
    pub interruption_allowance: Option<u32>,
    /// Work items kept in a step's queue at a time (default: 4 per fleet slot, at least 256).
    #[serde(default)]
    pub enqueue_window: Option<usize>,
    /// `[warm_items]`: an item process takes the next item while its resident set after an
    /// item stays under `max_rss_after_mib` and `max_growth` × what it held after its first
    /// (on by default, `max_growth = 2`); `enabled = false` runs every item in a fresh process.
    #[serde(default)]
    pub warm_items: runner_core::worker::warm::WarmBudget,
    /// The deployment (`prod`, `staging`): in every queue name and resource tag, so `fleet gc`
    /// for one never touches another's. Lowercase letters and digits; default `default`.
    #[serde(default)]
    pub deployment: Option<String>,
    /// A step fails when no worker checks in this long after its first instance starts (or no
    /// instance starts this long after the launch); default 300.
    #[serde(default)]
    pub boot_timeout_secs: Option<u64>,
    /// A step fails when this many instances end without their worker checking in; default 3.
    #[serde(default)]
    pub crash_loop_after: Option<usize>,
    /// How long a step waits for another run of the same partition to finish before it fails
    /// naming that run; default 0 (it fails at once).
    #[serde(default)]
    pub lease_wait_secs: Option<u64>,
    /// How long a lease in S3 outlives a holder that stopped renewing it (a killed
    /// orchestrator); default 60.
    #[serde(default)]
    pub lease_ttl_secs: Option<u64>,
    /// EC2 fleet settings (AWS backend).
    #[serde(default)]
    pub ec2: Option<Ec2Config>,
    /// Prices that win over AWS's, and the price of a local core (`[pricing]`).
    #[serde(default)]
    pub pricing: Option<crate::cost::PricingConfig>,
}

impl Config {
    /// The deployment name.
    pub fn deployment(&self) -> &str {
        self.deployment.as_deref().unwrap_or("default")
    }
}

/// Parses `90s`, `30m`, `6h`, `1d`, or plain seconds.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().with_context(|| format!("duration {text:?} has no number"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        other => bail!("duration {text:?}: unknown unit {other:?} (s, m, h, d)"),
    };
    Ok(Duration::from_secs(secs))
}

impl Config {
    /// Loads the file at `path` (the defaults without one), then applies `SPOTLAKE_WORKERS` and
    /// `SPOTLAKE_DEPLOYMENT`. The file's backend, root and state are replaced by what
    /// [`crate::settings::resolve`] chooses.
    pub fn load_file(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut config: Config = match path {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("reading runner config {}", p.display()))?;
                let mut config: Config = toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {}", p.display(), e.to_string().trim_end()))?;
                config.backend_set = text.parse::<toml::Table>().is_ok_and(|t| t.contains_key("backend"));
                config
            }
            None => Config::default(),
        };
        if let Ok(w) = std::env::var("SPOTLAKE_WORKERS") {
            config.workers = Some(w.parse().with_context(|| format!("SPOTLAKE_WORKERS={w:?}"))?);
        }
        if let Ok(d) = std::env::var("SPOTLAKE_DEPLOYMENT") {
            config.deployment = Some(d);
        }
        runner_core::orchestrator::check_deployment(config.deployment()).map_err(anyhow::Error::msg)?;
        runner_core::worker::item_env::check_user_env().map_err(anyhow::Error::msg)?;
        if let Some(rt) = &config.max_runtime {
            parse_duration(rt).context("max_runtime")?;
        }
        // Whether the backend has what it needs is checked once the command line has had its
        // say (`--backend` overrides the file).
        if let Some(p) = &config.pricing {
            p.validate()?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert!(parse_duration("2 weeks").is_err());
    }
}
