//! Hostile partition keys on the S3 backend (moto's server, the real runner with local workers):
//! each key's data lands in its own folder and reads back, with the key itself in its rows; keys
//! that would leave their folder are refused before anything is written; two keys that differ
//! only in case are refused, naming both.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Output};

use polars::prelude::{ParquetReader, SerReader};
use runner_backends::aws::AwsClients;

struct Lake {
    moto: support::Moto,
    s3: aws_sdk_s3::Client,
    job: std::path::PathBuf,
}

impl Lake {
    async fn new() -> Self {
        let moto = support::Moto::start();
        let s3 = AwsClients::for_endpoint(&moto.endpoint, "us-east-1").await.s3().await;
        s3.create_bucket().bucket("lake").send().await.unwrap();
        let job = support::workspace().join("runner/tests/jobs/keyed.toml");
        Lake { moto, s3, job }
    }

    fn run(&self, keys: &[&str]) -> Output {
        let mut cmd = Command::new(support::runner_bin());
        cmd.arg("run").arg(&self.job).args(["--root", "s3://lake/data", "--state", "s3://lake/state"]);
        cmd.args(["--workers", "1"]);
        for key in keys {
            cmd.args(["--partition", key]);
        }
        cmd.envs(self.moto.env()).env_remove("DAGSTER_PIPES_CONTEXT").env_remove("DAGSTER_PIPES_MESSAGES");
        cmd.output().unwrap()
    }

    async fn put(&self, key: &str, body: String) {
        self.s3.put_object().bucket("lake").key(key).body(body.into_bytes().into()).send().await.unwrap();
    }

    async fn keys(&self, prefix: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut pages = self.s3.list_objects_v2().bucket("lake").prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            out.extend(page.unwrap().contents().iter().filter_map(|o| o.key().map(String::from)));
        }
        out
    }

    /// Every row of the Parquet objects under `prefix`: (id, key).
    async fn rows(&self, prefix: &str) -> Vec<(String, String)> {
        let mut rows = Vec::new();
        for key in self.keys(prefix).await.iter().filter(|k| k.ends_with(".parquet") && !k.contains("/_")) {
            let body = self.s3.get_object().bucket("lake").key(key).send().await.unwrap().body.collect().await;
            let df = ParquetReader::new(std::io::Cursor::new(body.unwrap().into_bytes().to_vec())).finish().unwrap();
            let (ids, keys) = (df.column("id").unwrap().str().unwrap(), df.column("key").unwrap().str().unwrap());
            for (id, k) in ids.iter().zip(keys.iter()) {
                rows.push((id.unwrap_or_default().to_string(), k.unwrap_or_default().to_string()));
            }
        }
        rows
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A key of 200 bytes (the longest folder name accepted), with two-byte letters.
fn longest_key() -> String {
    format!("long key x{}", "ß".repeat(95))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_keys_each_keep_their_own_folder_in_s3_and_read_back() {
    let lake = Lake::new().await;
    let long = longest_key();
    assert_eq!(long.len(), 200);
    // Each key and the folder its escaped form names (what Hive and Spark read back).
    let keys: Vec<(&str, &str)> = vec![
        ("a b", "a b"),
        ("100%", "100%25"),
        ("o'brien", "o%27brien"),
        ("' OR '1'='1", "%27 OR %271%27%3D%271"),
        ("Zürich 東京", "Zürich 東京"),
        ("a:b", "a%3Ab"),
        (&long, &long),
    ];
    for (i, (key, folder)) in keys.iter().enumerate() {
        lake.put(&format!("data/in/{folder}/p.csv"), format!("id,n\nrow-{i},{i}\n")).await;
        let out = lake.run(&[key]);
        assert!(out.status.success(), "{key:?}: {}", stderr(&out));
    }
    // Every key's row is in its own folder, after every other key's run, with the key itself.
    for (i, (key, folder)) in keys.iter().enumerate() {
        let rows = lake.rows(&format!("data/out/k={folder}/")).await;
        assert_eq!(rows, vec![(format!("row-{i}"), key.to_string())], "{key:?}");
    }
    let folders: BTreeSet<String> = lake
        .keys("data/out/")
        .await
        .iter()
        .filter_map(|k| k.strip_prefix("data/out/")?.split('/').next().map(String::from))
        .collect();
    let expected: BTreeSet<String> = keys.iter().map(|(_, f)| format!("k={f}")).collect();
    assert_eq!(folders, expected);

    // Keys that would leave their folder, or are too long: refused, and nothing is written.
    let before = lake.keys("").await;
    let too_long = format!("{long}x");
    for key in ["a/b", "..", "../data/out", "a\\b", too_long.as_str()] {
        let out = lake.run(&[key]);
        assert!(!out.status.success(), "{key:?} was accepted");
        assert!(stderr(&out).contains("partition key"), "{key:?}: {}", stderr(&out));
        assert_eq!(lake.keys("").await, before, "{key:?} wrote something");
    }

    // Two keys that differ only in case: S3 could hold both, a Mac could not; refused everywhere.
    lake.put("data/in/EU/p.csv", "id,n\nupper,1\n".into()).await;
    lake.put("data/in/eu/p.csv", "id,n\nlower,1\n".into()).await;
    assert!(lake.run(&["EU"]).status.success());
    let out = lake.run(&["eu"]);
    assert!(!out.status.success(), "eu was accepted beside EU");
    assert!(stderr(&out).contains(r#"partition key "eu" differs only in case from "EU""#), "{}", stderr(&out));
    assert!(lake.keys("data/out/k=eu/").await.is_empty());
    assert_eq!(lake.rows("data/out/k=EU/").await, vec![("upper".to_string(), "EU".to_string())]);
}
