//! The job's asset checks after a run: which directories hold each checked output's data for
//! the run (S3 outputs are downloaded to a temporary directory first, since checks run on the
//! Dagster host), measured by the engine.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use anyhow::Context;
use runner_backends::storage::{Location, StoreCache, Stores};
use runner_core::summary::RunSummary;
use runner_engine::checks::{self, CheckResult};
use runner_spec::JobSpec;
use runner_types::OutputRef;

/// Evaluates every check of the job on the outputs of a run. A check on a step this run did
/// not execute is not this run's to report.
pub async fn run_checks(spec: &JobSpec, summary: &RunSummary, stores: &StoreCache) -> anyhow::Result<Vec<CheckResult>> {
    let data = CheckData::fetch(spec, summary, stores).await?;
    let ran: BTreeSet<&str> = summary.steps.iter().map(|s| s.name.as_str()).collect();
    Ok(spec
        .checks
        .iter()
        .filter(|check| ran.contains(check.output().step.as_str()))
        .map(|check| checks::evaluate(check, data.dirs(summary, check.output())))
        .collect())
}

/// The run's directories of one output.
fn locations<'a>(summary: &'a RunSummary, output: &OutputRef) -> BTreeSet<&'a Location> {
    summary
        .steps
        .iter()
        .filter(|s| s.name == output.step)
        .flat_map(|s| s.outputs.get(&output.output))
        .flat_map(|o| o.locations.values())
        .collect()
}

/// Checked outputs, made local: S3 outputs downloaded to a temporary directory; outputs in a
/// directory are read in place.
struct CheckData {
    local: HashMap<Location, PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl CheckData {
    async fn fetch(spec: &JobSpec, summary: &RunSummary, stores: &StoreCache) -> anyhow::Result<Self> {
        let mut local = HashMap::new();
        let mut dir = None;
        for check in &spec.checks {
            for loc in locations(summary, check.output()) {
                if !loc.is_s3() || local.contains_key(loc) {
                    continue;
                }
                let tmp = match &dir {
                    Some(d) => d,
                    None => dir.insert(tempfile::tempdir().context("a directory for check data")?),
                };
                let target = tmp.path().join(format!("{}", local.len()));
                let store = stores.store(loc).await?;
                let prefix = format!("{}/", loc.key());
                for object in store.list(&prefix).await? {
                    let rel = object.key.strip_prefix(&prefix).unwrap_or(&object.key);
                    store.get_to_file(&object.key, &target.join(rel)).await?;
                }
                local.insert(loc.clone(), target);
            }
        }
        Ok(Self { local, _dir: dir })
    }

    /// The local directories of an output's data for the run.
    fn dirs(&self, summary: &RunSummary, output: &OutputRef) -> Result<Vec<PathBuf>, String> {
        locations(summary, output)
            .into_iter()
            .map(|loc| match (self.local.get(loc), loc) {
                (Some(path), _) => Ok(path.clone()),
                (None, Location::Local { root, key }) => Ok(root.join(key)),
                (None, other) => Err(format!("cannot read {other} locally")),
            })
            .collect()
    }
}
