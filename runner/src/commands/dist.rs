//! `runner dist check` and `runner dist upload`: a worker binary is checked against the AMIs'
//! glibc, then stored under its own sha256 (content-addressed, so a path never changes
//! meaning), and the config entry that pins it is printed.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use runner_backends::aws::AwsClients;
use runner_backends::storage::{Location, StorageError, StoreCache, Stores};
use sha2::Digest as _;

use crate::dist::{Requirements, parse_version, requirements};

fn checked(binary: &Path, max_glibc: &str) -> anyhow::Result<(Vec<u8>, Requirements)> {
    let max = parse_version(max_glibc).with_context(|| format!("--max-glibc {max_glibc:?} is not like 2.34"))?;
    let bytes = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    let needs = requirements(&bytes).with_context(|| format!("{} is not a worker binary", binary.display()))?;
    let above = needs.above(max);
    if !above.is_empty() {
        bail!(
            "{} needs a newer glibc than {max_glibc}, so it would not start on the instances: {}. \
             Build it with `make dist`, which links against glibc {max_glibc}",
            binary.display(),
            above.join("; ")
        );
    }
    Ok((bytes, needs))
}

pub(super) fn check(binary: &Path, max_glibc: &str) -> anyhow::Result<ExitCode> {
    let (_, needs) = checked(binary, max_glibc)?;
    let newest = needs.glibc.keys().next_back().map(|(a, b)| format!("{a}.{b}")).unwrap_or_else(|| "none".into());
    println!("{}: {} binary, newest glibc needed {newest} (at most {max_glibc}: ok)", binary.display(), needs.arch);
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn upload(binary: &Path, to: &str, max_glibc: &str) -> anyhow::Result<ExitCode> {
    let (bytes, needs) = checked(binary, max_glibc)?;
    let prefix = Location::parse_absolute(to).filter(Location::is_s3).context("--to must be s3://bucket/prefix")?;
    let sha: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let at = prefix.join(&format!("{sha}/runner-{}", needs.arch));
    let stores = StoreCache::new(Arc::new(AwsClients::new()));
    let store = stores.store(&at).await?;
    // The name is the content: an object already there is this very binary.
    match store.put_if_absent(at.key(), bytes).await {
        Ok(()) | Err(StorageError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e).with_context(|| format!("uploading to {at}")),
    }
    eprintln!("uploaded {} ({}) to {at}", binary.display(), needs.arch);
    println!("worker_binaries.{} = {{ uri = \"{at}\", sha256 = \"{sha}\" }}", needs.arch);
    Ok(ExitCode::SUCCESS)
}
