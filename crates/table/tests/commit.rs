//! The commit against a real Delta log on the local file system: what each commit adds and
//! removes, read back from the log's own files, not from the crate's record of what it did.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use deltalake_core::kernel::DataType;
use object_store::local::LocalFileSystem;
use runner_table::schema::{StructField, StructType};
use runner_table::{Commit, CommitError, NewFile, Scope};
use url::Url;

fn schema(extra: &[(&str, DataType)]) -> StructType {
    let base = [("id", DataType::LONG), ("day", DataType::STRING)];
    StructType::try_new(base.iter().chain(extra).map(|(n, t)| StructField::nullable(*n, t.clone()))).unwrap()
}

fn file(day: &str, name: &str, rows: u64) -> NewFile {
    NewFile {
        path: format!("day={day}/{name}.parquet"),
        size: 100,
        partition_values: BTreeMap::from([("day".to_string(), Some(day.to_string()))]),
        stats: format!(r#"{{"numRecords":{rows},"minValues":{{}},"maxValues":{{}},"nullCount":{{}}}}"#),
        modification_time: 0,
    }
}

fn commit(files: Vec<NewFile>, days: &[&str], run: &str) -> Commit {
    Commit {
        table_name: "orders".into(),
        schema: Some(schema(&[])),
        partition_columns: vec!["day".into()],
        may_add_columns: false,
        files,
        scope: Scope {
            whole: false,
            key: Some(("day".into(), days.iter().map(|d| d.to_string()).collect())),
            superseded: BTreeSet::new(),
        },
        app_id: format!("spotlake/{run}/load"),
        info: HashMap::new(),
        predicate: None,
    }
}

/// Each version of the log: its adds and removes, by path, from the JSON files themselves.
fn log(table: &Path) -> Vec<(BTreeSet<String>, BTreeSet<String>)> {
    let mut versions: Vec<_> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    versions.sort();
    versions
        .iter()
        .map(|p| {
            let (mut adds, mut removes) = (BTreeSet::new(), BTreeSet::new());
            for line in std::fs::read_to_string(p).unwrap().lines() {
                let action: serde_json::Value = serde_json::from_str(line).unwrap();
                if let Some(path) = action.pointer("/add/path").and_then(|v| v.as_str()) {
                    adds.insert(path.to_string());
                }
                if let Some(path) = action.pointer("/remove/path").and_then(|v| v.as_str()) {
                    removes.insert(path.to_string());
                }
            }
            (adds, removes)
        })
        .collect()
}

fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|s| s.to_string()).collect()
}

async fn run(table: &Path, c: &Commit) -> Result<runner_table::Committed, CommitError> {
    let url = Url::from_directory_path(table).unwrap();
    runner_table::commit::commit(Arc::new(LocalFileSystem::new()), &url, c).await.map(|done| done.expect("a table"))
}

#[tokio::test]
async fn a_rerun_of_one_partition_is_one_version_that_replaces_only_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let first = commit(vec![file("a", "1", 3), file("b", "2", 4)], &["a", "b"], "r1");
    let done = run(t, &first).await.unwrap();
    assert!(done.created && done.new_version);
    assert_eq!((done.version, done.added, done.removed), (1, 2, 0));
    let rows: u64 = done.files.iter().filter_map(|f| f.rows).sum();
    assert_eq!(rows, 7, "the rows come from the statistics committed");
    // Partition a again, with a new file: its old file goes, b's stays.
    let again = commit(vec![file("a", "3", 5)], &["a"], "r2");
    let done = run(t, &again).await.unwrap();
    assert_eq!((done.version, done.added, done.removed), (2, 1, 1));
    let versions = log(t);
    assert_eq!(versions.len(), 3);
    assert_eq!(versions[1], (set(&["day=a/1.parquet", "day=b/2.parquet"]), set(&[])));
    assert_eq!(versions[2], (set(&["day=a/3.parquet"]), set(&["day=a/1.parquet"])));
    // Nothing new: no version. Nor for the same run's step committed already.
    let same = commit(vec![file("a", "3", 5)], &["a"], "r3");
    let done = run(t, &same).await.unwrap();
    assert!(!done.new_version);
    assert_eq!(done.version, 2);
    assert_eq!(log(t).len(), 3);
}

#[tokio::test]
async fn outside_its_partitions_a_commit_removes_only_the_files_it_supersedes() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    run(t, &commit(vec![file("a", "1", 1), file("a", "2", 1)], &[], "r1")).await.unwrap();
    let mut later = commit(vec![file("a", "3", 1)], &[], "r2");
    later.scope = Scope { whole: false, key: None, superseded: set(&["day=a/1.parquet"]) };
    let done = run(t, &later).await.unwrap();
    assert_eq!((done.added, done.removed), (1, 1));
    assert_eq!(log(t)[2], (set(&["day=a/3.parquet"]), set(&["day=a/1.parquet"])));
    let mut whole = commit(vec![file("b", "4", 1)], &[], "r3");
    whole.scope = Scope { whole: true, ..Scope::default() };
    run(t, &whole).await.unwrap();
    assert_eq!(log(t)[3].1, set(&["day=a/2.parquet", "day=a/3.parquet"]), "an unpartitioned run owns the table");
}

#[tokio::test]
async fn a_column_the_table_lacks_is_refused_by_name_until_adding_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    run(t, &commit(vec![file("a", "1", 1)], &["a"], "r1")).await.unwrap();
    let mut wider = commit(vec![file("b", "2", 1)], &["b"], "r2");
    wider.schema = Some(schema(&[("note", DataType::STRING)]));
    let err = run(t, &wider).await.unwrap_err();
    assert!(err.is_permanent());
    let text = err.to_string();
    assert!(text.contains("column \"note\" (string) is new"), "{text}");
    assert_eq!(log(t).len(), 2, "nothing was committed");
    wider.may_add_columns = true;
    let done = run(t, &wider).await.unwrap();
    assert_eq!(done.added_columns, ["note"]);
    assert_eq!(done.schema, schema(&[("note", DataType::STRING)]));
    let mut other_keys = commit(vec![file("c", "3", 1)], &["c"], "r3");
    other_keys.partition_columns = vec![];
    other_keys.schema = Some(schema(&[("note", DataType::STRING)]));
    let err = run(t, &other_keys).await.unwrap_err().to_string();
    assert!(err.contains("the table is partitioned by [\"day\"], and the output by []"), "{err}");
}

#[tokio::test]
async fn a_step_that_wrote_nothing_still_removes_what_it_replaces_and_makes_no_table_of_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t");
    let mut nothing = commit(vec![], &["a"], "r0");
    nothing.schema = None;
    let url = Url::from_directory_path(&t).unwrap();
    let none = runner_table::commit::commit(Arc::new(LocalFileSystem::new()), &url, &nothing).await.unwrap();
    assert!(none.is_none() && !t.exists(), "no table is made of nothing");
    run(&t, &commit(vec![file("a", "1", 2), file("b", "2", 2)], &["a", "b"], "r1")).await.unwrap();
    let done = run(&t, &nothing).await.unwrap();
    assert_eq!((done.version, done.removed), (2, 1));
    assert_eq!(log(&t)[2], (set(&[]), set(&["day=a/1.parquet"])));
}

#[tokio::test]
async fn a_new_column_without_a_zone_is_refused_on_a_table_made_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    run(t, &commit(vec![file("a", "1", 1)], &["a"], "r1")).await.unwrap();
    let mut later = commit(vec![file("b", "2", 1)], &["b"], "r2");
    later.schema = Some(schema(&[("at", DataType::TIMESTAMP_NTZ)]));
    later.may_add_columns = true;
    let err = run(t, &later).await.unwrap_err().to_string();
    assert!(err.contains("needs Delta's timestamp_ntz, which the table was made without"), "{err}");
}
