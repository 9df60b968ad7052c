//! Planning: turns a step and its partitions into work items by listing the inputs in storage
//! and splitting them (per file, per hive key value, by size, or as one item).

use std::collections::{BTreeMap, BTreeSet};

use runner_backends::storage::{GlobMatcher, Location, ObjectMeta, StorageError, Stores};
use runner_spec::validate::overlaps;
use runner_spec::{InputSpec, JobSpec, SimpleSplit, Split, StepSpec, template};
use runner_types::{Partition, RunId, StepName, WorkItemId};

use crate::run_state::{self, manifest_location};
use crate::wire::{InputObject, WorkItem, stable_hash};

/// Planning errors.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A template could not be filled.
    #[error("step {step:?}: {detail}")]
    Template {
        /// The step.
        step: StepName,
        /// Why.
        detail: String,
    },
    /// Listing failed.
    #[error("step {step:?}, input {input:?}: listing {location}: {source}")]
    List {
        /// The step.
        step: StepName,
        /// The input.
        input: String,
        /// Where.
        location: String,
        /// The storage error.
        source: Box<StorageError>,
    },
    /// A required input has no files.
    #[error("step {step:?}, input {input:?}: no files match {location}{partition}{uncommitted}")]
    NoFiles {
        /// The step.
        step: StepName,
        /// The input.
        input: String,
        /// The pattern.
        location: String,
        /// For which partition.
        partition: String,
        /// Files that match but no committed item wrote, when there are any.
        uncommitted: String,
    },
    /// A glob is malformed.
    #[error("step {step:?}, input {input:?}: {detail}")]
    Glob {
        /// The step.
        step: StepName,
        /// The input.
        input: String,
        /// Why.
        detail: String,
    },
}

/// The rendered locations of one step for one partition.
pub struct StepPaths {
    /// Input patterns by name.
    pub inputs: BTreeMap<String, Location>,
    /// Output directories by name.
    pub outputs: BTreeMap<String, Location>,
}

/// Renders a step's paths for a partition.
pub fn step_paths(root: &Location, step: &StepSpec, partition: Option<&Partition>) -> Result<StepPaths, PlanError> {
    let render = |text: &str| {
        template::render(text, partition, template::Context::Path)
            .map_err(|detail| PlanError::Template { step: step.name.clone(), detail })
    };
    let mut inputs = BTreeMap::new();
    for (name, input) in &step.inputs {
        inputs.insert(name.clone(), Location::resolve(root, &render(&input.path)?));
    }
    let mut outputs = BTreeMap::new();
    for (name, output) in &step.outputs {
        outputs.insert(name.clone(), Location::resolve(root, &render(&output.path)?));
    }
    Ok(StepPaths { inputs, outputs })
}

/// The item that wrote a file, from its name (`part-{item id}[-…].parquet`, see the worker's
/// publishing); `None` for a file the runner did not write.
pub(crate) fn written_by(key: &str) -> Option<&str> {
    let name = key.rsplit('/').next()?;
    let id = name.strip_prefix("part-")?.get(..16)?;
    id.bytes().all(|b| b.is_ascii_hexdigit()).then_some(id)
}

fn hive_values(key: &str) -> BTreeMap<&str, &str> {
    key.split('/').filter_map(|c| c.split_once('=')).collect()
}

async fn list_input(
    stores: &dyn Stores,
    step: &StepSpec,
    name: &str,
    input: &InputSpec,
    location: &Location,
    partition: Option<&Partition>,
) -> Result<Vec<(Location, ObjectMeta)>, PlanError> {
    let store = stores.store(location).await.map_err(|source| PlanError::List {
        step: step.name.clone(),
        input: name.to_string(),
        location: location.to_string(),
        source: Box::new(source),
    })?;
    let glob = GlobMatcher::new(location.key()).map_err(|detail| PlanError::Glob {
        step: step.name.clone(),
        input: name.to_string(),
        detail,
    })?;
    let listed = store.list(glob.list_prefix()).await.map_err(|source| PlanError::List {
        step: step.name.clone(),
        input: name.to_string(),
        location: location.to_string(),
        source: Box::new(source),
    })?;
    let mut filters = BTreeMap::new();
    for (k, v) in &input.hive_filter {
        // Compared with directory names as written: the key in its escaped path form.
        let v = template::render(v, partition, template::Context::Path)
            .map_err(|detail| PlanError::Template { step: step.name.clone(), detail })?;
        filters.insert(k.clone(), v);
    }
    Ok(listed
        .into_iter()
        .filter(|m| glob.matches(&m.key))
        .filter(|m| {
            // Hive key pruning at listing time: other keys' files are never read.
            let values = hive_values(&m.key);
            filters.iter().all(|(k, v)| values.get(k.as_str()).is_some_and(|x| x == v))
        })
        .map(|m| (location.with_key(m.key.clone()), m))
        .collect())
}

/// What planning needs to know about the run.
pub struct PlanContext<'a> {
    /// Where inputs are listed.
    pub stores: &'a dyn Stores,
    /// The run.
    pub run_id: &'a RunId,
    /// The job.
    pub job: &'a JobSpec,
    /// Where the run's copy of the spec is.
    pub spec_uri: &'a Location,
    /// Where relative paths resolve.
    pub root: &'a Location,
    /// Where run state lives.
    pub state: &'a Location,
}

/// Packs units (each a size and its files), in order, into groups of at most `target` bytes; a
/// unit is never split, so one bigger than `target` is a group of its own.
fn pack<T>(units: impl IntoIterator<Item = (u64, Vec<T>)>, target: u64) -> Vec<Vec<T>> {
    let mut groups = Vec::new();
    let mut current: Vec<T> = Vec::new();
    let mut size = 0;
    for (unit_size, files) in units {
        if !current.is_empty() && size + unit_size > target {
            groups.push(std::mem::take(&mut current));
            size = 0;
        }
        size += unit_size;
        current.extend(files);
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

/// Whole hive-key values packed into items of at most `target` bytes, in key order. An item's
/// unit names its only value, or its first and last and how many (the order is the keys' text
/// order, so the values between are not a numeric range).
fn pack_values(
    by: BTreeMap<String, Vec<(Location, ObjectMeta)>>,
    target: u64,
) -> Vec<(String, Vec<(Location, ObjectMeta)>)> {
    let units = by.into_iter().map(|(value, files)| (files.iter().map(|f| f.1.size).sum(), vec![(value, files)]));
    pack(units, target)
        .into_iter()
        .map(|group| {
            let unit = match (group.first(), group.last()) {
                (Some((first, _)), Some((last, _))) if group.len() > 1 => {
                    format!("{first} … {last} ({} values)", group.len())
                }
                (Some((only, _)), _) => only.clone(),
                _ => String::new(),
            };
            (unit, group.into_iter().flat_map(|(_, files)| files).collect())
        })
        .collect()
}

/// Plans one step for one partition.
pub async fn plan_step(
    ctx: &PlanContext<'_>,
    step: &StepSpec,
    partition: Option<&Partition>,
) -> Result<Vec<WorkItem>, PlanError> {
    let PlanContext { stores, run_id, job, spec_uri, root, state } = *ctx;
    let paths = step_paths(root, step, partition)?;
    let mut listed: BTreeMap<String, Vec<(Location, ObjectMeta)>> = BTreeMap::new();
    for (name, input) in &step.inputs {
        let mut files = list_input(stores, step, name, input, &paths.inputs[name], partition).await?;
        // An input another step of this job writes is read only through committed items: a file
        // of an item that was killed before its manifest, or whose manifest was pruned, is not.
        let producers: Vec<&StepName> = job
            .steps
            .iter()
            .filter(|s| s.name != step.name && s.outputs.values().any(|o| overlaps(&o.path, &input.path)))
            .map(|s| &s.name)
            .collect();
        let mut uncommitted = 0;
        if !producers.is_empty() {
            let mut committed = BTreeSet::new();
            for producer in producers {
                committed.extend(run_state::committed_ids_of_step(stores, state, &job.name, producer).await.map_err(
                    |source| PlanError::List {
                        step: step.name.clone(),
                        input: name.clone(),
                        location: state.to_string(),
                        source: Box::new(source),
                    },
                )?);
            }
            let before = files.len();
            files.retain(|(_, meta)| written_by(&meta.key).is_none_or(|id| committed.contains(id)));
            uncommitted = before - files.len();
        }
        if files.is_empty() && input.required {
            return Err(PlanError::NoFiles {
                step: step.name.clone(),
                input: name.clone(),
                location: paths.inputs[name].to_string(),
                partition: partition.map(|p| format!(" (partition {})", p.key)).unwrap_or_default(),
                uncommitted: match uncommitted {
                    0 => String::new(),
                    n => format!("; {n} file(s) there were written by items that never committed, and are not read"),
                },
            });
        }
        listed.insert(name.clone(), files);
    }
    let split_input = step.split_input_name().to_string();
    let to_objects = |files: &[(Location, ObjectMeta)]| -> Vec<InputObject> {
        files.iter().map(|(l, m)| InputObject { uri: l.clone(), size: m.size, version: m.version.clone() }).collect()
    };
    let shared: BTreeMap<String, Vec<InputObject>> =
        listed.iter().filter(|(n, _)| **n != split_input).map(|(n, f)| (n.clone(), to_objects(f))).collect();
    let split_files = listed.get(&split_input).cloned().unwrap_or_default();
    let groups: Vec<(String, Vec<(Location, ObjectMeta)>)> = match &step.split {
        Split::Simple(SimpleSplit::Single) => vec![("all".to_string(), split_files)],
        Split::Simple(SimpleSplit::File) => split_files
            .into_iter()
            .map(|f| (f.1.key.rsplit('/').next().unwrap_or_default().to_string(), vec![f]))
            .collect(),
        Split::Partition { partition: key, size_mb } => {
            let mut by: BTreeMap<String, Vec<(Location, ObjectMeta)>> = BTreeMap::new();
            for f in split_files {
                let value = hive_values(&f.1.key).get(key.as_str()).map(|v| v.to_string()).unwrap_or_default();
                by.entry(format!("{key}={value}")).or_default().push(f);
            }
            match size_mb {
                None => by.into_iter().collect(),
                Some(mb) => pack_values(by, mb * 1024 * 1024),
            }
        }
        Split::Size { size_mb } => {
            let files = split_files.into_iter().map(|f| (f.1.size, vec![f]));
            pack(files, size_mb * 1024 * 1024).into_iter().enumerate().map(|(i, g)| (format!("group{i}"), g)).collect()
        }
    };
    // The step's definition, canonical: any change to it makes new items.
    let mut definition = definition_of(step, runner_spec::extensions::installed());
    // The declared environment can change what an item computes: a new value makes new items.
    if let Some(declared) = runner_spec::describe::env_definition(&job.env) {
        definition.push_str("\u{1}env ");
        definition.push_str(&declared);
    }
    let mut items = Vec::new();
    for (unit, files) in groups {
        let mut inputs = shared.clone();
        inputs.insert(split_input.clone(), to_objects(&files));
        let mut parts: Vec<String> =
            vec![job.name.clone(), definition.clone(), partition.map(|p| p.key.to_string()).unwrap_or_default()];
        for (name, objects) in &inputs {
            for o in objects {
                parts.push(format!("{name}\u{1}{}\u{1}{}", o.uri, o.version));
            }
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let id = WorkItemId::from(stable_hash(&refs));
        items.push(WorkItem {
            run_id: run_id.clone(),
            job: job.name.clone(),
            spec_uri: spec_uri.clone(),
            step: step.name.clone(),
            label: format!("{}[{}] {unit}", step.name, partition.map(|p| p.key.as_str()).unwrap_or("-")),
            inputs,
            outputs: paths.outputs.clone(),
            manifest_uri: manifest_location(state, &job.name, &step.name, partition, &id),
            partition: partition.cloned(),
            memory_limit_mb: step.memory_limit_mb,
            id,
        });
    }
    Ok(items)
}

/// What an item's id holds of its step: the step as written and, when it uses the binary's own
/// functions or operations, their versions, so a new version of one makes new items (the old
/// outputs are stale) while a step that uses none keeps its ids.
fn definition_of(step: &StepSpec, brought: &runner_spec::extensions::Signatures) -> String {
    let written = serde_json::to_string(step).unwrap_or_default();
    let used = runner_spec::describe::extensions_used(step, brought);
    if used.is_empty() { written } else { format!("{written}\u{1}{}", used.join(" ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(key: &str, size: u64) -> (Location, ObjectMeta) {
        let meta = ObjectMeta { key: key.to_string(), size, version: String::new() };
        (Location::parse_absolute(&format!("/lake/{key}")).unwrap(), meta)
    }

    fn keys(group: &[(Location, ObjectMeta)]) -> Vec<&str> {
        group.iter().map(|f| f.1.key.as_str()).collect()
    }

    #[test]
    fn a_new_version_of_a_used_function_makes_new_items_and_others_keep_theirs() {
        use runner_spec::extensions::{FunctionSig, Signatures};
        let job = |sql: &str| {
            let text = format!(
                r#"{{"name": "j", "step": [{{"name": "s", "inputs": {{"raw": {{"path": "raw/*.csv", "format": "csv"}}}},
                    "outputs": {{"out": {{"path": "out", "sql": "{sql}"}}}}}}]}}"#
            );
            // Read without validation: this test's process brings no functions.
            serde_json::from_str::<JobSpec>(&text).unwrap()
        };
        let brought = |version: &str| {
            let mut s = Signatures::default();
            s.functions.insert("host".into(), FunctionSig { version: version.into(), aggregate: false });
            s
        };
        let uses = job("SELECT host(url) AS h FROM raw");
        assert_ne!(definition_of(&uses.steps[0], &brought("1")), definition_of(&uses.steps[0], &brought("2")));
        let plain = job("SELECT url FROM raw");
        assert_eq!(
            definition_of(&plain.steps[0], &brought("1")),
            serde_json::to_string(&plain.steps[0]).unwrap(),
            "a step using none keeps the ids it had"
        );
    }

    #[test]
    fn packing_keeps_the_order_fills_up_to_the_target_and_never_splits_a_unit() {
        let units = [("a", 3), ("b", 3), ("c", 3), ("d", 10), ("e", 1), ("f", 2)].map(|(k, s)| (s, vec![k]));
        let groups = pack(units, 6);
        assert_eq!(groups, vec![vec!["a", "b"], vec!["c"], vec!["d"], vec!["e", "f"]]);
    }

    #[test]
    fn packed_hive_values_stay_whole_and_name_their_first_and_last_value() {
        let mut by: BTreeMap<String, Vec<(Location, ObjectMeta)>> = BTreeMap::new();
        for (value, files) in
            [("k=0", vec![("k=0/x", 2), ("k=0/y", 2)]), ("k=1", vec![("k=1/x", 3)]), ("k=2", vec![("k=2/x", 9)])]
        {
            by.insert(value.to_string(), files.into_iter().map(|(key, size)| file(key, size)).collect());
        }
        let items = pack_values(by, 8);
        let units: Vec<&str> = items.iter().map(|(unit, _)| unit.as_str()).collect();
        assert_eq!(units, ["k=0 … k=1 (2 values)", "k=2"]);
        assert_eq!(keys(&items[0].1), ["k=0/x", "k=0/y", "k=1/x"]);
        assert_eq!(keys(&items[1].1), ["k=2/x"], "a value over the target is an item of its own");
    }
}
