//! Two commits from one snapshot (held together by the commit's barrier failpoint, process-wide,
//! so alone in this test binary): the one whose snapshot a concurrent commit made stale is made
//! again from a fresh one, and both land in consecutive versions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use deltalake_core::kernel::DataType;
use object_store::local::LocalFileSystem;
use runner_table::schema::{StructField, StructType};
use runner_table::{Commit, NewFile, Scope};
use url::Url;

fn commit(day: &str, name: &str, run: &str) -> Commit {
    let schema = StructType::try_new([
        StructField::nullable("id", DataType::LONG),
        StructField::nullable("day", DataType::STRING),
    ])
    .unwrap();
    Commit {
        table_name: "orders".into(),
        schema: Some(schema),
        partition_columns: vec!["day".into()],
        may_add_columns: false,
        files: vec![NewFile {
            path: format!("day={day}/{name}.parquet"),
            size: 1,
            partition_values: BTreeMap::from([("day".to_string(), Some(day.to_string()))]),
            stats: r#"{"numRecords":1}"#.into(),
            modification_time: 0,
        }],
        scope: Scope {
            whole: false,
            key: Some(("day".into(), BTreeSet::from([day.to_string()]))),
            superseded: BTreeSet::new(),
        },
        app_id: format!("spotlake/{run}/load"),
        info: HashMap::new(),
        predicate: None,
    }
}

#[tokio::test]
async fn a_commit_from_a_stale_snapshot_is_made_again_and_lands() {
    let dir = tempfile::tempdir().unwrap();
    let url = Url::from_directory_path(dir.path().join("t")).unwrap();
    let store = || Arc::new(LocalFileSystem::new());
    runner_table::commit::commit(store(), &url, &commit("a", "1", "r0")).await.unwrap();
    runner_table::commit::commit(store(), &url, &commit("b", "2", "r0b")).await.unwrap();
    let barrier = dir.path().join("barrier");
    // SAFETY: the only test of this binary; no other thread reads the environment.
    unsafe { std::env::set_var("SPOTLAKE_TEST_TABLE_COMMIT_BARRIER", format!("{}:2", barrier.display())) };
    // Both reruns read version 2; each removes a file the other's snapshot lists.
    let (a, b) = (commit("a", "3", "r1"), commit("b", "4", "r2"));
    let (x, y) =
        tokio::join!(runner_table::commit::commit(store(), &url, &a), runner_table::commit::commit(store(), &url, &b),);
    let (x, y) = (x.unwrap().unwrap(), y.unwrap().unwrap());
    let mut versions = [x.version, y.version];
    versions.sort();
    assert_eq!(versions, [3, 4], "consecutive versions");
    assert_eq!(x.retries + y.retries, 1, "exactly one was made again");
    let later = if x.version == 4 { &x } else { &y };
    let mut paths: Vec<&str> = later.files.iter().map(|f| f.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["day=a/3.parquet", "day=b/4.parquet"]);
}
