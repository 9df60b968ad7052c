//! The job's asset checks after a run, evaluated for each of the run's partitions on that
//! partition's data only. The items measured them where they wrote the data (their parts are in
//! their manifests), so a partition's verdict is a sum, plus, for a `unique` check over several
//! items, the items' distinct keys (the key columns only). Outputs are read again only for items
//! committed before they measured checks: then the partition's output directory, narrowed to
//! the hive directories its items wrote (`day=2024-01-02`), downloaded first from S3. A check
//! passes when it passes for every partition; the result carries each partition's own.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use anyhow::Context;
use runner_backends::storage::{Location, StoreCache, Stores};
use runner_core::summary::{OutputSummary, RunSummary};
use runner_engine::checks::{self, CheckResult};
use runner_spec::JobSpec;
use runner_types::{OutputRef, Severity};

/// A check over the run: the verdict over all its partitions, and each partition's own.
#[derive(Debug, Clone)]
pub struct RunCheck {
    /// Passed only when every partition passed; what was measured, summed.
    pub result: CheckResult,
    /// Each run partition's result (the key is empty for an unpartitioned run).
    pub by_partition: BTreeMap<String, CheckResult>,
}

/// Evaluates every check of the job on the outputs of a run, partition by partition. A check on
/// a step this run did not execute is not this run's to report.
pub async fn run_checks(spec: &JobSpec, summary: &RunSummary, stores: &StoreCache) -> anyhow::Result<Vec<RunCheck>> {
    let ran: BTreeSet<&str> = summary.steps.iter().map(|s| s.name.as_str()).collect();
    let mut data = CheckData::default();
    let mut out = Vec::new();
    for check in spec.checks.iter().filter(|c| ran.contains(c.output().step.as_str())) {
        let mut by_partition = BTreeMap::new();
        let step = summary.steps.iter().find(|s| s.name == check.output().step);
        for (partition, locations) in partition_data(summary, check.output()) {
            let measured = step.and_then(|s| {
                let parts = s.check_parts.get(check.name())?.get(&partition)?;
                (parts.parts.len() == s.by_partition.get(&partition).map_or(0, |p| p.items)).then_some(parts)
            });
            let result = match measured {
                Some(parts) => match data.key_files(stores, &parts.key_files).await {
                    Ok(files) => checks::evaluate_parts(check, &parts.parts, &files),
                    Err(e) => checks::evaluate(check, Err(e)),
                },
                None => checks::evaluate(check, data.local(stores, &locations).await),
            };
            by_partition.insert(partition, result);
        }
        let result = combine(check, &by_partition);
        out.push(RunCheck { result, by_partition });
    }
    Ok(out)
}

/// The verdict over all partitions.
fn combine(check: &runner_spec::CheckSpec, parts: &BTreeMap<String, CheckResult>) -> CheckResult {
    if parts.len() == 1
        && let Some(only) = parts.values().next()
    {
        return only.clone();
    }
    let mut observed: BTreeMap<String, f64> = BTreeMap::new();
    for r in parts.values() {
        for (k, v) in &r.observed {
            *observed.entry(k.clone()).or_default() += v;
        }
    }
    let failed: Vec<String> =
        parts.iter().filter(|(_, r)| !r.passed).map(|(p, r)| format!("{p}: {}", r.description)).collect();
    // The range's verdict is its worst partition's: an error if one failed as an error, else a
    // warning if one warned.
    let severity = if parts.values().any(|r| !r.passed && r.severity == Severity::Error) {
        Severity::Error
    } else if parts.values().any(|r| !r.passed) {
        Severity::Warn
    } else {
        check.severity()
    };
    let description = if failed.is_empty() {
        format!("passed in each of {} partitions", parts.len())
    } else {
        format!("failed in {} of {} partitions ({})", failed.len(), parts.len(), failed.join("; "))
    };
    CheckResult {
        name: check.name().to_string(),
        output: check.output().clone(),
        passed: failed.is_empty() && !parts.is_empty(),
        severity,
        observed,
        description,
    }
}

/// Each run partition's data of one output: its location, narrowed to the hive directories
/// its items wrote.
fn partition_data(summary: &RunSummary, output: &OutputRef) -> BTreeMap<String, Vec<Location>> {
    let mut out: BTreeMap<String, Vec<Location>> = BTreeMap::new();
    let outputs: Vec<&OutputSummary> =
        summary.steps.iter().filter(|s| s.name == output.step).flat_map(|s| s.outputs.get(&output.output)).collect();
    for o in outputs {
        for (partition, loc) in &o.locations {
            let keys = o.by_partition.get(partition).map(|p| &p.rows_by_hive_key);
            let entry = out.entry(partition.clone()).or_default();
            match keys.filter(|k| !k.is_empty()) {
                Some(keys) => entry.extend(keys.keys().map(|k| loc.join(k))),
                None => entry.push(loc.clone()),
            }
        }
    }
    out
}

/// Checked data made local: S3 directories downloaded to a temporary directory, once each;
/// local directories read in place.
#[derive(Default)]
struct CheckData {
    local: HashMap<Location, PathBuf>,
    dir: Option<tempfile::TempDir>,
}

impl CheckData {
    async fn local(&mut self, stores: &StoreCache, locations: &[Location]) -> Result<Vec<PathBuf>, String> {
        let mut dirs = Vec::new();
        for loc in locations {
            dirs.push(match loc {
                Location::Local { root, key } => root.join(key),
                s3 => self.download(stores, s3).await.map_err(|e| format!("cannot read {s3} locally: {e:#}"))?,
            });
        }
        Ok(dirs)
    }

    /// The items' distinct-key files, local (downloaded when in S3). One file or none is
    /// never read, so it is not fetched.
    async fn key_files(&mut self, stores: &StoreCache, files: &[Location]) -> Result<Vec<PathBuf>, String> {
        if files.len() < 2 {
            return Ok(files.iter().map(|_| PathBuf::new()).collect());
        }
        let mut out = Vec::new();
        for file in files {
            out.push(match file {
                Location::Local { root, key } => root.join(key),
                s3 => {
                    let target = self.scratch().map_err(|e| format!("{e:#}"))?.join(s3.key().replace('/', "__"));
                    let store = stores.store(s3).await.map_err(|e| format!("cannot read {s3}: {e}"))?;
                    store.get_to_file(s3.key(), &target).await.map_err(|e| format!("cannot read {s3}: {e}"))?;
                    target
                }
            });
        }
        Ok(out)
    }

    /// The temporary directory downloads go to, made on first use.
    fn scratch(&mut self) -> anyhow::Result<PathBuf> {
        if self.dir.is_none() {
            self.dir = Some(tempfile::tempdir().context("a directory for check data")?);
        }
        Ok(self.dir.as_ref().map(|d| d.path().to_path_buf()).unwrap_or_default())
    }

    async fn download(&mut self, stores: &StoreCache, loc: &Location) -> anyhow::Result<PathBuf> {
        if let Some(path) = self.local.get(loc) {
            return Ok(path.clone());
        }
        let target = self.scratch()?.join(format!("{}", self.local.len()));
        let store = stores.store(loc).await?;
        let prefix = format!("{}/", loc.key());
        for object in store.list(&prefix).await? {
            let rel = object.key.strip_prefix(&prefix).unwrap_or(&object.key);
            store.get_to_file(&object.key, &target.join(rel)).await?;
        }
        self.local.insert(loc.clone(), target.clone());
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use runner_engine::checks::CheckResult;
    use runner_spec::CheckSpec;
    use runner_types::{OutputRef, Severity};

    use super::*;

    fn result(passed: bool, severity: Severity) -> CheckResult {
        CheckResult {
            name: "rows".into(),
            output: OutputRef::new("s", "o"),
            passed,
            severity,
            observed: BTreeMap::from([("rows".to_string(), 5.0)]),
            description: if passed { "ok".into() } else { "too few".into() },
        }
    }

    #[test]
    fn a_range_is_its_worst_partition() {
        let check = CheckSpec::RowCount {
            name: "rows".into(),
            output: OutputRef::new("s", "o"),
            severity: None,
            min: Some(1),
            max: None,
            warn_min: Some(3),
            warn_max: None,
        };
        let range = |verdicts: &[(bool, Severity)]| {
            let parts: BTreeMap<String, CheckResult> =
                verdicts.iter().enumerate().map(|(i, (p, s))| (format!("d{i}"), result(*p, *s))).collect();
            let r = combine(&check, &parts);
            (r.passed, r.severity, r.description, r.observed.get("rows").copied())
        };
        let mixed = range(&[(true, Severity::Error), (false, Severity::Warn), (false, Severity::Error)]);
        assert_eq!(
            mixed,
            (false, Severity::Error, "failed in 2 of 3 partitions (d1: too few; d2: too few)".into(), Some(15.0))
        );
        let warned = range(&[(false, Severity::Warn), (true, Severity::Error)]);
        assert_eq!((warned.0, warned.1), (false, Severity::Warn));
        let passed = range(&[(true, Severity::Error), (true, Severity::Error)]);
        assert_eq!((passed.0, passed.1, passed.2.as_str()), (true, Severity::Error, "passed in each of 2 partitions"));
        assert!(!range(&[]).0, "no partition is no pass");
    }
}
