//! The step's table commits. Once every item of a step has committed, each output kept as a
//! table gets one commit: the files the step's items wrote are added, and the files they replace
//! are removed (what the step's superseded items wrote, and in a partition of the run's own
//! folder, `…/day={partition_key}`, anything else the table lists there). It runs before
//! superseded files are pruned, so a reader of the table never finds a listed file gone; an
//! item killed before its manifest is never in a table, as no manifest lists its files.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use runner_backends::catalog::{self, CatalogTable, Registered};
use runner_backends::storage::{Location, object_store_for};
use runner_spec::{OutputSpec, SchemaChanges, StepSpec, TableLayout};
use runner_table::schema::{self, StructType};
use runner_table::{Commit, CommitError, Committed, NewFile, Scope};
use runner_types::Partition;
use tracing::info;

use super::context::StepContext;
use super::{RunError, infra};
use crate::run_state;
use crate::summary::TableSummary;
use crate::wire::{Manifest, WorkItem};

/// An error a rerun can't fix, naming the step and the output.
fn refused(step: &StepSpec, output: &str, error: impl std::fmt::Display) -> RunError {
    RunError::Table { step: step.name.clone(), error: format!("output {output:?}: {error}") }
}

/// Where an output's table is: never a bucket's or a disk's root itself.
pub(crate) fn table_root(root: &Location, output: &OutputSpec) -> Result<Location, String> {
    let at = Location::resolve(root, &TableLayout::of(output)?.root);
    if at.key().trim_matches('/').is_empty() {
        return Err(format!("a table can't be kept at the root of {at}: give it a folder"));
    }
    Ok(at)
}

/// Refuses, before anything runs, tables that can't be kept where the run's root puts them: one
/// at or inside another's root (each commit would remove the other's files), or one registered
/// in Glue off S3.
pub(crate) fn check_roots(spec: &runner_spec::JobSpec, root: &Location) -> Result<(), String> {
    let mut roots: Vec<(Location, String)> = Vec::new();
    for step in &spec.steps {
        for (name, output) in &step.outputs {
            let Some(table) = &output.table else { continue };
            let here = format!("step {:?} › output {name:?}", step.name);
            let at = table_root(root, output).map_err(|e| format!("{here}: {e}"))?;
            if let Some(db) = &table.glue_database
                && !at.is_s3()
            {
                return Err(format!(
                    "{here}: its table is registered in Glue (glue_database = {db:?}), which needs it on S3, and it \
                     would be at {at}"
                ));
            }
            let inside = |a: &Location, b: &Location| {
                a.same_store(b)
                    && format!("{}/", a.key().trim_end_matches('/'))
                        .starts_with(&format!("{}/", b.key().trim_end_matches('/')))
            };
            if let Some((other, there)) = roots.iter().find(|(other, _)| inside(&at, other) || inside(other, &at)) {
                return Err(format!("{here}: its table at {at} and the table of {there} at {other} overlap"));
            }
            roots.push((at, here));
        }
    }
    Ok(())
}

/// Commits each table output of the step; returns each one's summary by output name.
pub(crate) async fn commit_step(
    ctx: &StepContext<'_>,
    step: &StepSpec,
    items: &[WorkItem],
    partitions: &[Option<Partition>],
    superseded: &[(Manifest, Location)],
) -> Result<BTreeMap<String, TableSummary>, RunError> {
    let mut out = BTreeMap::new();
    if step.outputs.values().all(|o| o.table.is_none()) {
        return Ok(out);
    }
    let opts = ctx.options;
    let stores = &*ctx.backends.stores;
    let mut manifests = Vec::with_capacity(items.len());
    for item in items {
        let m = run_state::read_manifest(stores, &item.manifest_uri)
            .await
            .ok_or_else(|| infra(format!("item {} has no manifest after its step finished", item.label)))?;
        manifests.push((item, m));
    }
    for (name, output) in &step.outputs {
        let Some(table) = &output.table else { continue };
        let layout = TableLayout::of(output).map_err(|e| refused(step, name, e))?;
        let root = table_root(&opts.root, output).map_err(|e| refused(step, name, e))?;
        let relative = |file: &Location| -> Result<String, RunError> {
            let prefix = format!("{}/", root.key().trim_end_matches('/'));
            file.key()
                .strip_prefix(&prefix)
                .filter(|_| file.same_store(&root))
                .map(str::to_string)
                .ok_or_else(|| infra(format!("{file} is not under its table's root {root}")))
        };
        // What the step's items wrote: the files to hold, and the schema they make.
        let now = chrono::Utc::now().timestamp_millis();
        let mut files = Vec::new();
        let mut schemas: BTreeMap<String, String> = BTreeMap::new();
        let mut files_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (item, m) in &manifests {
            let published = m.files.get(name).map(Vec::as_slice).unwrap_or_default();
            let Some(t) = m.stats.outputs.get(name).and_then(|o| o.table.as_ref()) else {
                return Err(refused(
                    step,
                    name,
                    format!(
                        "item {} committed without the table's statistics (a runner that kept no tables wrote it); run \
                         the step again with --force",
                        item.label
                    ),
                ));
            };
            schemas.entry(t.schema.clone()).or_insert_with(|| item.label.clone());
            let pkey = item.partition.as_ref().map(|p| p.key.to_string()).unwrap_or_default();
            for (location, f) in published.iter().zip(&t.files) {
                let path = relative(location)?;
                files_of.entry(pkey.clone()).or_default().insert(path.clone());
                files.push(NewFile {
                    path,
                    size: f.size,
                    partition_values: f.partition_values.clone(),
                    stats: f.stats.clone(),
                    modification_time: now,
                });
            }
        }
        // No item at all (an input that may be empty): nothing to add, and what the superseded
        // items wrote still goes from the table before it is pruned.
        let schema = one_schema(&schemas).map_err(|e| refused(step, name, e))?;
        let mut scope = Scope { whole: partitions.iter().all(Option::is_none), ..Scope::default() };
        let keys: BTreeSet<String> = partitions.iter().flatten().map(|p| p.key.to_string()).collect();
        if let Some(column) = &layout.key_column {
            scope.key = Some((column.clone(), keys.clone()));
        }
        for (old, _) in superseded {
            // A file outside this root (the output's path was changed since) is in no table of it.
            for file in old.files.get(name).map(Vec::as_slice).unwrap_or_default() {
                if let Ok(path) = relative(file) {
                    scope.superseded.insert(path);
                }
            }
        }
        let table_name = table.name_or(name).to_string();
        let commit = Commit {
            table_name: table_name.clone(),
            schema,
            partition_columns: layout.partition_columns.clone(),
            may_add_columns: table.schema == SchemaChanges::AddColumns,
            files,
            scope,
            app_id: format!("spotlake/{}/{}", opts.run_id, step.name),
            info: HashMap::from([
                ("spotlake.job".to_string(), serde_json::json!(ctx.spec.name)),
                ("spotlake.run_id".to_string(), serde_json::json!(opts.run_id.to_string())),
                ("spotlake.step".to_string(), serde_json::json!(step.name.to_string())),
                ("spotlake.partitions".to_string(), serde_json::json!(keys)),
            ]),
            predicate: layout.key_column.as_ref().filter(|_| !keys.is_empty()).map(|c| {
                let quoted: Vec<String> = keys.iter().map(|k| format!("'{}'", k.replace('\'', "''"))).collect();
                format!("{c} IN ({})", quoted.join(", "))
            }),
        };
        let (object_store, url) = object_store_for(stores.aws(), &root).await.map_err(infra)?;
        let committed = runner_table::commit::commit(object_store, &url, &commit).await.map_err(|e| match e {
            CommitError::Refused { .. } => refused(step, name, e),
            CommitError::Failed { .. } => infra(format!("step {:?} › output {name:?}: {e}", step.name)),
        })?;
        let Some(committed) = committed else { continue };
        info!(
            step = %step.name,
            table = %table_name,
            version = committed.version,
            added = committed.added,
            removed = committed.removed,
            retries = committed.retries,
            "{}",
            if committed.new_version { "committed the step's files to its table" } else { "the table held the step's files already" }
        );
        failpoint_exit_after_commit();
        let catalog = match &table.glue_database {
            None => None,
            Some(db) => Some(register(ctx, db, &table_name, &root, &layout, &committed).await.map_err(infra)?),
        };
        let rows_by_partition = partition_rows(&committed, &layout, partitions, &files_of);
        out.insert(
            name.clone(),
            TableSummary {
                name: table.glue_database.as_ref().map_or(table_name.clone(), |db| format!("{db}.{table_name}")),
                uri: root.to_string(),
                version: committed.version,
                new_version: committed.new_version,
                files_added: committed.added,
                files_removed: committed.removed,
                columns_added: committed.added_columns.clone(),
                schema: committed
                    .schema
                    .fields()
                    .map(|f| (f.name().clone(), schema::type_name(f.data_type())))
                    .collect(),
                rows_by_partition,
                catalog,
            },
        );
    }
    Ok(out)
}

/// The one schema the items' files make; items that disagree are refused, naming two of them.
fn one_schema(schemas: &BTreeMap<String, String>) -> Result<Option<StructType>, String> {
    let mut parsed = schemas.iter().map(|(text, item)| Ok::<_, String>((schema::from_json(text)?, item)));
    let Some(first) = parsed.next() else { return Ok(None) };
    let (first, first_item) = first?;
    if let Some(other) = parsed.next() {
        let (other, other_item) = other?;
        let why = schema::reconcile(&first, &other, false)
            .err()
            .unwrap_or_else(|| "their columns are ordered differently".into());
        return Err(format!(
            "items wrote different columns, so no one table schema holds them (items {first_item} and {other_item}: {why})"
        ));
    }
    Ok(Some(first))
}

/// The rows the table holds for each run partition: in a partition's own folder, every file
/// there; otherwise the files the partition's items wrote. `None` for a partition where a file
/// has no row count (a file the runner did not write).
fn partition_rows(
    committed: &Committed,
    layout: &TableLayout,
    partitions: &[Option<Partition>],
    files_of: &BTreeMap<String, BTreeSet<String>>,
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for partition in partitions {
        let pkey = partition.as_ref().map(|p| p.key.to_string()).unwrap_or_default();
        let owned = |f: &&runner_table::TableFileRow| match (&layout.key_column, partition) {
            (_, None) => true,
            (Some(column), Some(p)) => {
                f.partition_values.get(column).and_then(|v| v.as_deref()) == Some(p.key.as_str())
            }
            (None, Some(_)) => files_of.get(&pkey).is_some_and(|set| set.contains(&f.path)),
        };
        let rows: Option<u64> = committed.files.iter().filter(owned).map(|f| f.rows).sum();
        if let Some(rows) = rows {
            out.insert(pkey, rows);
        }
    }
    out
}

/// Registers the table in a Glue database, with the columns of the committed schema.
async fn register(
    ctx: &StepContext<'_>,
    database: &str,
    name: &str,
    root: &Location,
    layout: &TableLayout,
    committed: &Committed,
) -> Result<String, String> {
    let columns = |partition: bool| -> Vec<(String, String)> {
        committed
            .schema
            .fields()
            .filter(|f| layout.partition_columns.contains(f.name()) == partition)
            .map(|f| (f.name().clone(), schema::hive_type(f.data_type())))
            .collect()
    };
    let mut partition_keys = columns(true);
    // In the table's partition order, not the schema's.
    partition_keys.sort_by_key(|(n, _)| layout.partition_columns.iter().position(|c| c == n));
    let entry = CatalogTable {
        database: database.to_string(),
        name: name.to_string(),
        location: format!("{}/", root.to_string().trim_end_matches('/')),
        columns: columns(false),
        partition_keys,
    };
    let glue = ctx.backends.stores.aws().glue().await;
    let done = catalog::register_in_glue(&glue, &entry).await.map_err(|e| e.to_string())?;
    if done != Registered::Unchanged {
        info!(table = %name, database, "{}", if done == Registered::Created { "registered the table in Glue" } else { "updated the table's Glue entry" });
    }
    Ok("glue".to_string())
}

/// Test-only failpoint: with `SPOTLAKE_TEST_EXIT_AFTER_TABLE_COMMIT` set, the orchestrator
/// exits at once after a table commit lands, before anything is pruned or recorded, as a crash
/// there would.
fn failpoint_exit_after_commit() {
    if std::env::var_os("SPOTLAKE_TEST_EXIT_AFTER_TABLE_COMMIT").is_some() {
        eprintln!("SPOTLAKE_TEST_EXIT_AFTER_TABLE_COMMIT: exiting after the table commit");
        std::process::exit(70);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(outputs: &[(&str, &str)]) -> runner_spec::JobSpec {
        let mut text = String::from(
            "name = \"j\"\n[[step]]\nname = \"s\"\n[step.inputs.i]\npath = \"in/*.csv\"\nformat = \"csv\"\n",
        );
        for (name, table) in outputs {
            text.push_str(&format!(
                "[step.outputs.{name}]\npath = \"{name}\"\nsql = \"SELECT * FROM i\"\ntable = {table}\n"
            ));
        }
        runner_spec::JobSpec::parse(&text, "job.toml").unwrap()
    }

    #[test]
    fn tables_at_nested_roots_or_in_glue_off_s3_are_refused_before_the_run() {
        let local = Location::parse_absolute("/data/lake").unwrap();
        let s3 = Location::parse_absolute("s3://b/lake").unwrap();
        assert!(check_roots(&job(&[("a", "\"delta\""), ("b", "\"delta\"")]), &local).is_ok());
        let mut nested = job(&[("a", "\"delta\""), ("b", "\"delta\"")]);
        nested.steps[0].outputs.get_mut("b").unwrap().path = "a/inner".into();
        let err = check_roots(&nested, &s3).unwrap_err();
        assert!(err.contains("its table at s3://b/lake/a/inner and the table of") && err.contains("overlap"), "{err}");
        let glue = job(&[("a", "{ format = \"delta\", glue_database = \"db\" }")]);
        assert!(check_roots(&glue, &s3).is_ok());
        let err = check_roots(&glue, &local).unwrap_err();
        assert!(err.contains("registered in Glue (glue_database = \"db\"), which needs it on S3"), "{err}");
        let mut at_root = job(&[("a", "\"delta\"")]);
        at_root.steps[0].outputs.get_mut("a").unwrap().path = "s3://b".into();
        assert!(check_roots(&at_root, &s3).unwrap_err().contains("can't be kept at the root of s3://b"));
    }
}
