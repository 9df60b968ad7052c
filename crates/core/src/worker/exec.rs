//! Executes one work item inside the item's own process: stage the inputs (in place when local,
//! downloaded from S3), run the engine, publish each output file atomically under a name derived
//! from the item id, then commit by writing the item's manifest. A redone item writes the same
//! names, so it replaces its own output and never duplicates it.

use std::collections::BTreeMap;
use std::path::Path;

use runner_backends::storage::{Location, StorageError, Stores};
use runner_engine::{self as engine, EngineError, ItemRun, ItemStats, LocalFile};
use runner_spec::{JobSpec, StepSpec};

use super::engine_panic;
use crate::wire::{Manifest, WorkItem};

/// Why an item failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Reading inputs or publishing outputs failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The job spec of the run could not be read.
    #[error("job spec {uri}: {detail}")]
    Spec {
        /// Where it was.
        uri: Location,
        /// Why.
        detail: String,
    },
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Scratch space trouble.
    #[error("scratch directory {path}: {source}")]
    Scratch {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Polars panicked while it ran the item: the message names the step, its output when it
    /// has one, what Polars said and where in Polars it was.
    #[error("{0}")]
    Panicked(String),
}

impl ExecError {
    /// True when a retry must fail the same way (see [`EngineError::is_permanent`]); a panic
    /// of Polars is met again by every attempt on the same inputs, and a spec this binary can't
    /// take (one naming a function or operation it lacks: a fleet launched with another binary
    /// than the one that validated the job) by every worker of the fleet.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Engine(e) if e.is_permanent()) || matches!(self, Self::Panicked(_) | Self::Spec { .. })
    }
}

/// The error of an item of `step` whose engine panicked with `payload`. The outputs run in one
/// plan, so only a step of one output can say which output it was.
fn panicked(step: &StepSpec, payload: &(dyn std::any::Any + Send)) -> ExecError {
    let output = match step.outputs.keys().collect::<Vec<_>>().as_slice() {
        [name] => format!(", output {name:?}"),
        _ => String::new(),
    };
    let message = engine_panic::message(payload);
    let at = message.as_deref().and_then(engine_panic::location_of).map(|l| format!(" (at {l})")).unwrap_or_default();
    let message = message.unwrap_or_else(|| "a panic with no message".into());
    ExecError::Panicked(format!("step {:?}{output}: Polars panicked while running the item: {message}{at}", step.name))
}

/// The engine thread's stack. Planning and lowering recurse over the query's expressions, and
/// a `WHERE` of thousands of `OR` terms is thousands deep (tokio's blocking threads have 2 MiB,
/// which such a query overflows). Only what is touched is ever resident.
const ENGINE_STACK_BYTES: usize = 512 << 20;

/// Runs `work` (the engine on one item) on a thread of its own; a panic there, Polars' own
/// included, becomes [`ExecError::Panicked`] rather than the end of the process.
async fn run_engine(
    step: &StepSpec,
    work: impl FnOnce() -> Result<ItemStats, EngineError> + Send + 'static,
) -> Result<ItemStats, ExecError> {
    engine_panic::record_locations();
    let failed = |detail: String| ExecError::Engine(EngineError::Execute { step: step.name.clone(), detail });
    let (done, answer) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("engine".into())
        .stack_size(ENGINE_STACK_BYTES)
        .spawn(move || {
            let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)));
        })
        .map_err(|e| failed(format!("the engine thread could not start: {e}")))?;
    match answer.await {
        Ok(Ok(result)) => Ok(result?),
        Ok(Err(payload)) => Err(panicked(step, &*payload)),
        Err(_) => Err(failed("the engine thread ended without an answer".into())),
    }
}

fn scratch_err(path: &Path) -> impl Fn(std::io::Error) -> ExecError + '_ {
    move |source| ExecError::Scratch { path: path.display().to_string(), source }
}

/// Runs the item and commits it. Returns its stats.
pub async fn execute(item: &WorkItem, stores: &dyn Stores, scratch: &Path) -> Result<ItemStats, ExecError> {
    let spec_text = stores.read(&item.spec_uri).await?;
    let spec_text = String::from_utf8(spec_text)
        .map_err(|e| ExecError::Spec { uri: item.spec_uri.clone(), detail: e.to_string() })?;
    let job = JobSpec::parse(&spec_text, &item.spec_uri.to_string())
        .map_err(|e| ExecError::Spec { uri: item.spec_uri.clone(), detail: e.to_string() })?;
    let step = job
        .step(&item.step)
        .ok_or_else(|| ExecError::Spec { uri: item.spec_uri.clone(), detail: format!("no step {:?}", item.step) })?
        .clone();

    let inputs = stage_inputs(item, stores, &scratch.join("in")).await?;
    let out_dir = scratch.join("out");
    std::fs::create_dir_all(&out_dir).map_err(scratch_err(&out_dir))?;
    let tag = item.id.to_string();
    let partition = item.partition.clone();
    let engine_out = out_dir.clone();
    let checks = job.checks.clone();
    let engine_step = step.clone();
    let mut stats = run_engine(&step, move || {
        engine::run_item(ItemRun {
            step: &engine_step,
            partition: partition.as_ref(),
            inputs,
            out_dir: &engine_out,
            file_tag: &tag,
            checks: &checks,
        })
    })
    .await?;

    failpoint_sleep(item.partition.as_ref().map(|p| p.key.as_str())).await;
    // Another attempt of this run may have committed the item while this one ran (a delivery
    // that outlived its visibility while the queue or the store did not answer). Its files are
    // the same names and rows; publishing again would only rewrite them under a reader.
    if let Some(earlier) = committed_in_this_run(item, stores).await? {
        tracing::info!(item = %item.label, "another attempt of this run committed the item; not publishing again");
        return Ok(earlier.stats);
    }
    let files = publish(item, stores, &out_dir).await?;
    // Keys are relative to the output directory in the stats; report what was published.
    for (name, published) in &files {
        if let Some(o) = stats.outputs.get_mut(name) {
            o.files = o.files.iter().zip(published.iter()).map(|((_, rows), uri)| (uri.to_string(), *rows)).collect();
        }
    }
    let manifest = Manifest {
        item: item.id.clone(),
        run_id: Some(item.run_id.clone()),
        step: item.step.clone(),
        partition: item.partition.as_ref().map(|p| p.key.clone()),
        files,
        stats: stats.clone(),
    };
    let body = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    stores.write(&item.manifest_uri, body).await?;
    stats.wall_seconds = stats.wall_seconds.max(0.0);
    Ok(stats)
}

/// The item's manifest, when an attempt of this same run wrote it (a forced rerun rewrites
/// what earlier runs committed, so their manifests don't count).
async fn committed_in_this_run(item: &WorkItem, stores: &dyn Stores) -> Result<Option<Manifest>, ExecError> {
    let bytes = match stores.read(&item.manifest_uri).await {
        Ok(bytes) => bytes,
        Err(StorageError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // An unreadable manifest is rewritten by this attempt.
    Ok(serde_json::from_slice::<Manifest>(&bytes).ok().filter(|m| m.run_id.as_ref() == Some(&item.run_id)))
}

/// Test-only failpoint: with `SPOTLAKE_TEST_HANG_AFTER_PUBLISH` naming a file that does not
/// exist yet, the first item to publish a file creates it and then hangs, so a fault test can
/// kill the run between an item's first published file and its manifest.
async fn failpoint_hang_after_publish() {
    let Some(marker) = std::env::var_os("SPOTLAKE_TEST_HANG_AFTER_PUBLISH") else { return };
    if std::fs::OpenOptions::new().write(true).create_new(true).open(&marker).is_ok() {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    }
}

/// Test-only failpoints: `SPOTLAKE_TEST_ITEM_SLEEP_MS` holds every item this long before it
/// publishes, so fault tests can kill or interrupt a worker mid-item, and
/// `SPOTLAKE_TEST_ITEM_SLEEP_MS_IN` (`KEY=MS`) holds only the items of partition `KEY`, so a
/// test knows how one partition's work compares with another's; `SPOTLAKE_TEST_ITEM_ABORT`
/// prints its value to stderr and aborts the item's process, as a crash in native code would.
async fn failpoint_sleep(partition: Option<&str>) {
    if let Ok(message) = std::env::var("SPOTLAKE_TEST_ITEM_ABORT") {
        eprintln!("{message}");
        std::process::abort();
    }
    let ms = |v: String| v.parse::<u64>().ok();
    let only_in = std::env::var("SPOTLAKE_TEST_ITEM_SLEEP_MS_IN")
        .ok()
        .and_then(|v| v.split_once('=').and_then(|(k, v)| (Some(k) == partition).then(|| ms(v.to_string()))?));
    if let Some(ms) = std::env::var("SPOTLAKE_TEST_ITEM_SLEEP_MS").ok().and_then(ms).or(only_in) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// How many input objects an item downloads at once: an item over thousands of small objects
/// would otherwise wait on each request's latency in turn (10,000 objects at 20 ms is over
/// three minutes).
const STAGE_AT_ONCE: usize = 32;

async fn stage_inputs(
    item: &WorkItem,
    stores: &dyn Stores,
    dir: &Path,
) -> Result<BTreeMap<String, Vec<LocalFile>>, ExecError> {
    use futures_util::stream::{self, StreamExt as _, TryStreamExt as _};
    let mut out = BTreeMap::new();
    for (name, objects) in &item.inputs {
        let stage_one = |o: &crate::wire::InputObject| {
            let (loc, size) = (o.uri.clone(), o.size);
            async move {
                let store = stores.store(&loc).await?;
                let path = match store.local_path(loc.key()) {
                    Some(p) => p,
                    None => {
                        // Keep the key's directories: hive columns are read from them.
                        let p = dir.join(name).join(loc.key());
                        store.get_to_file(loc.key(), &p).await?;
                        p
                    }
                };
                Ok::<_, ExecError>(LocalFile { path, source: loc.to_string(), size })
            }
        };
        // `buffered` keeps the objects' order: the engine reads them as listed.
        let files: Vec<LocalFile> =
            stream::iter(objects.iter().map(stage_one)).buffered(STAGE_AT_ONCE).try_collect().await?;
        out.insert(name.clone(), files);
    }
    Ok(out)
}

/// The final name of a written file: the directories stay (hive keys), the file name
/// gets the item id, so items never collide and a redo overwrites its own files.
fn final_key(base: &Location, rel: &Path, tag: &str) -> String {
    let dir = rel.parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = rel.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = if stem == tag { format!("part-{tag}.parquet") } else { format!("part-{tag}-{stem}.parquet") };
    let mut parts = vec![base.key().to_string()];
    if !dir.is_empty() {
        parts.push(dir);
    }
    parts.push(name);
    parts.retain(|p| !p.is_empty());
    parts.join("/")
}

async fn publish(
    item: &WorkItem,
    stores: &dyn Stores,
    out_dir: &Path,
) -> Result<BTreeMap<String, Vec<Location>>, ExecError> {
    let mut published = BTreeMap::new();
    for (name, base) in &item.outputs {
        let files = publish_dir(stores, base, &engine::output_dir(out_dir, name), item.id.as_str()).await?;
        published.insert(name.clone(), files);
    }
    // A unique check's distinct keys go to the run state, beside the manifest that lists them.
    for name in item.outputs.keys() {
        let keys = engine::check_keys_dir(out_dir, name);
        if keys.exists() {
            let files = publish_dir(stores, &item.check_keys_location(), &keys, item.id.as_str()).await?;
            published.insert(format!("_checks/{name}"), files);
        }
    }
    // Quarantined rows go beside the first output, under `_quarantine/` (never read as input).
    let quarantine = out_dir.join("_quarantine");
    if quarantine.exists()
        && let Some((_, base)) = item.outputs.iter().next()
    {
        let files = publish_dir(stores, &base.join("_quarantine"), &quarantine, item.id.as_str()).await?;
        published.insert("_quarantine".to_string(), files);
    }
    Ok(published)
}

/// Publishes every Parquet file under a scratch directory below `base`, each atomically.
async fn publish_dir(stores: &dyn Stores, base: &Location, dir: &Path, tag: &str) -> Result<Vec<Location>, ExecError> {
    let store = stores.store(base).await?;
    let mut published = Vec::new();
    for rel in engine::files::parquet_files(dir, false).map_err(scratch_err(dir))? {
        let key = final_key(base, &rel, tag);
        store.put_file(&key, &dir.join(&rel)).await?;
        published.push(base.with_key(key));
        failpoint_hang_after_publish().await;
    }
    Ok(published)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Step `q10` of a job, with these `[step.outputs.*]` tables.
    fn step(outputs: &str) -> StepSpec {
        let text = format!(
            "name = \"tpch\"\n[[step]]\nname = \"q10\"\nsplit = \"single\"\n\
             [step.inputs.lineitem]\npath = \"lineitem/*.parquet\"\nformat = \"parquet\"\n{outputs}"
        );
        JobSpec::parse(&text, "job.toml").unwrap().steps[0].clone()
    }

    #[tokio::test]
    async fn a_panic_in_the_engine_fails_the_item_for_good_naming_the_step_the_output_and_where() {
        let one = step("[step.outputs.revenue]\npath = \"out/revenue\"\n");
        let err = run_engine(&one, || panic!("not implemented for dtype Int128")).await.unwrap_err();
        let line = line!() - 1;
        assert!(err.is_permanent(), "it would panic again: {err}");
        let said = err.to_string();
        let expected = "step \"q10\", output \"revenue\": Polars panicked while running the item: \
                        not implemented for dtype Int128 (at ";
        assert!(said.starts_with(expected), "{said}");
        assert!(said.contains(&format!("{}:{line}:", file!())), "where it panicked: {said}");
    }

    #[tokio::test]
    async fn a_step_of_several_outputs_is_named_without_one_and_errors_still_pass_through() {
        let two = step(
            "[step.outputs.a]\npath = \"out/a\"\nsql = \"SELECT * FROM lineitem\"\n\
             [step.outputs.b]\npath = \"out/b\"\nsql = \"SELECT * FROM lineitem\"\n",
        );
        let err = run_engine(&two, || std::panic::panic_any(String::from("index out of bounds"))).await.unwrap_err();
        assert!(
            err.to_string().starts_with("step \"q10\": Polars panicked while running the item: index out of bounds"),
            "{err}"
        );
        let err = run_engine(&two, || Err(EngineError::Template("no window".into()))).await.unwrap_err();
        assert!(matches!(&err, ExecError::Engine(EngineError::Template(_))), "an error is not a panic: {err}");
        assert_eq!(err.to_string(), "no window");
    }
}
