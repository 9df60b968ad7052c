//! The one precedence rule for the settings that say where a run works: the runner config file,
//! the backend, the data root and the state. Highest first:
//!
//! 1. a flag (`--config`, `--backend`, `--root`, `--state`), which is also what a Dagster
//!    resource's or component's attribute becomes: the Python client passes a flag only for an
//!    attribute that was set;
//! 2. the environment variable (`SPOTLAKE_CONFIG`, `SPOTLAKE_BACKEND`, `SPOTLAKE_ROOT`,
//!    `SPOTLAKE_STATE`);
//! 3. the runner config file;
//! 4. the job spec (`root` only, relative to the spec's folder);
//! 5. the default: no config file, `local`, the job spec's folder, `{root}/_runner`.
//!
//! Relative paths from a flag, the environment or the config file resolve against the working
//! directory. `runner config show` prints each setting with where it came from; the Dagster
//! side asks it which backend a run will use (its Pipes channel depends on it), so the rule
//! has this one implementation.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;

use runner_backends::storage::Location;
use runner_spec::JobSpec;
use runner_types::BackendKind;

use crate::config::Config;

/// The environment variable of the runner config file.
pub const CONFIG_ENV: &str = "SPOTLAKE_CONFIG";
/// The environment variable of the backend.
pub const BACKEND_ENV: &str = "SPOTLAKE_BACKEND";
/// The environment variable of the data root.
pub const ROOT_ENV: &str = "SPOTLAKE_ROOT";
/// The environment variable of the state location.
pub const STATE_ENV: &str = "SPOTLAKE_STATE";

/// Names earlier versions read, with the name that replaced each. One still set would be
/// ignored silently (a fleet config that no longer applies runs the job locally), so the
/// runner refuses to start instead.
const RETIRED: [(&str, &str); 11] = [
    ("RUNNER_CONFIG", CONFIG_ENV),
    ("RUNNER_BACKEND", BACKEND_ENV),
    ("RUNNER_ROOT", ROOT_ENV),
    ("RUNNER_STATE", STATE_ENV),
    ("RUNNER_WORKERS", "SPOTLAKE_WORKERS"),
    ("RUNNER_DEPLOYMENT", "SPOTLAKE_DEPLOYMENT"),
    ("RUNNER_LOG", "SPOTLAKE_LOG"),
    ("RUNNER_EXPLAIN", "SPOTLAKE_EXPLAIN"),
    ("RUNNER_AWS_TIMEOUT_SECS", "SPOTLAKE_AWS_TIMEOUT_SECS"),
    ("RUNNER_VCPUS", "SPOTLAKE_VCPUS"),
    ("RUNNER_MEMORY_MIB", "SPOTLAKE_MEMORY_MIB"),
];

/// Refuses a retired variable that is still set, naming its new name (every command checks, at
/// its start).
pub fn check_retired() -> anyhow::Result<()> {
    for (old, new) in RETIRED {
        if std::env::var_os(old).is_some() {
            bail!("{old} is no longer read: the variable is now {new} (set that one, and unset {old})");
        }
    }
    Ok(())
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum Source {
    /// A command-line flag (or the Dagster attribute that became one).
    Flag(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// The runner config file.
    ConfigFile,
    /// The job spec.
    JobSpec,
    /// Nothing set it.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(name) => write!(f, "flag {name}"),
            Source::Env(name) => write!(f, "environment {name}"),
            Source::ConfigFile => write!(f, "runner config"),
            Source::JobSpec => write!(f, "job spec"),
            Source::Default => write!(f, "default"),
        }
    }
}

/// A setting's value and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Chosen<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

/// What the command line said explicitly.
#[derive(Debug, Default, Clone, Copy)]
pub struct Explicit<'a> {
    /// `--config`.
    pub config: Option<&'a Path>,
    /// `--backend`.
    pub backend: Option<BackendKind>,
    /// `--root`.
    pub root: Option<&'a str>,
    /// `--state`.
    pub state: Option<&'a str>,
}

impl<'a> From<&'a crate::cli::SettingsArgs> for Explicit<'a> {
    fn from(args: &'a crate::cli::SettingsArgs) -> Self {
        Explicit {
            config: args.config.as_deref(),
            backend: args.backend,
            root: args.root.as_deref(),
            state: args.state.as_deref(),
        }
    }
}

/// The settings of one command, each with its source.
#[derive(Debug)]
pub struct Settings {
    /// The runner config file, if any.
    pub config_file: Chosen<Option<PathBuf>>,
    /// The loaded config (its `backend`, `root` and `state` already replaced by the chosen ones).
    pub config: Config,
    /// The backend.
    pub backend: Chosen<BackendKind>,
    /// The data root; `None` when nothing gives one and there is no job spec to default to.
    pub root: Option<Chosen<Location>>,
    /// The run state; `None` when there is neither a state nor a root.
    pub state: Option<Chosen<Location>>,
}

/// The first of an explicit value and an environment variable that is set.
fn flag_or_env<T>(
    explicit: Option<T>,
    flag: &'static str,
    env: &'static str,
    parse: impl Fn(String) -> anyhow::Result<T>,
) -> anyhow::Result<Option<Chosen<T>>> {
    if let Some(value) = explicit {
        return Ok(Some(Chosen { value, source: Source::Flag(flag) }));
    }
    match std::env::var(env) {
        Ok(text) if !text.is_empty() => Ok(Some(Chosen { value: parse(text)?, source: Source::Env(env) })),
        _ => Ok(None),
    }
}

/// A location given as text: `s3://…` or a path, relative to `base`.
pub fn resolve_dir(base: &Path, text: &str) -> anyhow::Result<Location> {
    if let Some(l) = Location::parse_absolute(text) {
        return Ok(l);
    }
    let abs = if Path::new(text).is_absolute() { PathBuf::from(text) } else { base.join(text) };
    let abs = std::path::absolute(&abs).with_context(|| format!("resolving {}", abs.display()))?;
    Location::parse_absolute(&abs.to_string_lossy()).with_context(|| format!("{} is not a usable path", abs.display()))
}

/// Resolves the settings by the rule above. `job` is the spec and its path, when the command
/// has one.
pub fn resolve(explicit: Explicit<'_>, job: Option<(&JobSpec, &Path)>) -> anyhow::Result<Settings> {
    let config_file =
        flag_or_env(explicit.config.map(Path::to_path_buf), "--config", CONFIG_ENV, |t| Ok(PathBuf::from(t)))?
            .map(|c| Chosen { value: Some(c.value), source: c.source })
            .unwrap_or(Chosen { value: None, source: Source::Default });
    let mut config = Config::load_file(config_file.value.as_deref())?;
    let from_file = |present: bool| if present { Source::ConfigFile } else { Source::Default };

    let backend = match flag_or_env(explicit.backend, "--backend", BACKEND_ENV, |t| {
        t.parse::<BackendKind>().map_err(|e| anyhow::anyhow!("{BACKEND_ENV}: {e}"))
    })? {
        Some(c) => c,
        None => Chosen { value: config.backend, source: from_file(config.backend_set) },
    };
    config.backend = backend.value;

    let cwd = std::env::current_dir()?;
    let root = match flag_or_env(explicit.root.map(str::to_string), "--root", ROOT_ENV, Ok)? {
        Some(c) => Some(Chosen { value: resolve_dir(&cwd, &c.value)?, source: c.source }),
        None => match (&config.root, job) {
            (Some(r), _) => Some(Chosen { value: resolve_dir(&cwd, r)?, source: Source::ConfigFile }),
            (None, Some((spec, path))) => {
                let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                match &spec.root {
                    Some(r) => Some(Chosen { value: resolve_dir(dir, r)?, source: Source::JobSpec }),
                    None => Some(Chosen { value: resolve_dir(dir, ".")?, source: Source::Default }),
                }
            }
            (None, None) => None,
        },
    };
    let state = match flag_or_env(explicit.state.map(str::to_string), "--state", STATE_ENV, Ok)? {
        Some(c) => Some(Chosen { value: resolve_dir(&cwd, &c.value)?, source: c.source }),
        None => match (&config.state, &root) {
            (Some(s), _) => Some(Chosen { value: resolve_dir(&cwd, s)?, source: Source::ConfigFile }),
            (None, Some(r)) => Some(Chosen { value: r.value.join("_runner"), source: Source::Default }),
            (None, None) => None,
        },
    };
    config.root = root.as_ref().map(|r| r.value.to_string());
    config.state = state.as_ref().map(|s| s.value.to_string());
    Ok(Settings { config_file, config, backend, root, state })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_read_as_words() {
        assert_eq!(Source::Flag("--root").to_string(), "flag --root");
        assert_eq!(Source::Env(ROOT_ENV).to_string(), "environment SPOTLAKE_ROOT");
        let json = serde_json::to_string(&Source::Env(ROOT_ENV)).unwrap();
        assert_eq!(json, r#"{"kind":"env","name":"SPOTLAKE_ROOT"}"#);
        assert_eq!(serde_json::to_string(&Source::JobSpec).unwrap(), r#"{"kind":"job_spec"}"#);
    }

    #[test]
    fn relative_dirs_resolve_against_their_base() {
        let loc = resolve_dir(Path::new("/srv/jobs"), "lake").unwrap();
        assert_eq!(loc.to_string(), "/srv/jobs/lake");
        let s3 = resolve_dir(Path::new("/srv/jobs"), "s3://b/p").unwrap();
        assert_eq!(s3.to_string(), "s3://b/p");
    }
}
