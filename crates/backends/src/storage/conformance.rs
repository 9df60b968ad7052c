//! The behaviour every `Storage` backend must have: one public function per behaviour, each
//! run against every backend (the local directory in-process, S3 against moto's server) as a
//! test of its own, so a failure names the behaviour and the backend. A behaviour this suite
//! does not pin down is one the backends will disagree on. Each function works under `base`,
//! a key prefix of its own.

use std::sync::Arc;

use super::{Storage, StorageError};

fn fail(what: &str, detail: impl std::fmt::Debug) -> String {
    format!("{what}: {detail:?}")
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(format!($($msg)*));
        }
    };
}

/// An object reads back as written; an overwrite replaces it and changes its version.
pub async fn put_get_overwrite(s: &Arc<dyn Storage>, base: &str) -> Result<(), String> {
    let key = format!("{base}/a/obj.bin");
    s.put_bytes(&key, b"one".to_vec()).await.map_err(|e| fail("put", e))?;
    ensure!(s.get_bytes(&key).await.map_err(|e| fail("get", e))? == b"one", "get returns what was put");
    let first = s.head(&key).await.map_err(|e| fail("head", e))?.ok_or("head finds the object")?;
    ensure!(first.size == 3, "head size {}", first.size);
    s.put_bytes(&key, b"second".to_vec()).await.map_err(|e| fail("overwrite", e))?;
    ensure!(s.get_bytes(&key).await.map_err(|e| fail("get", e))? == b"second", "overwrite replaces");
    let second = s.head(&key).await.map_err(|e| fail("head", e))?.ok_or("head after overwrite")?;
    ensure!(second.version != first.version, "version changes with content");
    Ok(())
}

/// Reading a missing key is `NotFound` naming the key; `head` of it is `None`.
pub async fn not_found(s: &Arc<dyn Storage>, base: &str) -> Result<(), String> {
    let key = format!("{base}/missing/nothing.json");
    match s.get_bytes(&key).await {
        Err(StorageError::NotFound { key: k, .. }) => ensure!(k == key, "NotFound names the key"),
        other => return Err(fail("get of a missing key is NotFound", other.map(|_| ()))),
    }
    ensure!(s.head(&key).await.map_err(|e| fail("head", e))?.is_none(), "head of missing is None");
    match s.get_to_file(&key, &std::env::temp_dir().join("conformance-never")).await {
        Err(StorageError::NotFound { .. }) => Ok(()),
        other => Err(fail("get_to_file of a missing key is NotFound", other)),
    }
}

/// A listing is recursive, sorted by key, and its prefix is a string prefix, as on S3.
pub async fn list_by_prefix(s: &Arc<dyn Storage>, base: &str) -> Result<(), String> {
    let root = format!("{base}/list");
    for k in ["b/2.txt", "a/1.txt", "a/sub/3.txt", "ab.txt", "c.txt"] {
        s.put_bytes(&format!("{root}/{k}"), k.as_bytes().to_vec()).await.map_err(|e| fail("put", e))?;
    }
    let keys = |v: Vec<super::ObjectMeta>| v.into_iter().map(|m| m.key).collect::<Vec<_>>();
    let all = keys(s.list(&format!("{root}/")).await.map_err(|e| fail("list", e))?);
    let want: Vec<String> =
        ["a/1.txt", "a/sub/3.txt", "ab.txt", "b/2.txt", "c.txt"].iter().map(|k| format!("{root}/{k}")).collect();
    ensure!(all == want, "list is recursive and sorted by key: {all:?}");
    let a = keys(s.list(&format!("{root}/a/")).await.map_err(|e| fail("list", e))?);
    ensure!(a == want[..2], "a directory prefix lists only below it: {a:?}");
    let string_prefix = keys(s.list(&format!("{root}/a")).await.map_err(|e| fail("list", e))?);
    ensure!(string_prefix == want[..3], "a prefix is a string prefix, as on S3: {string_prefix:?}");
    let none = s.list(&format!("{root}/zzz/")).await.map_err(|e| fail("list", e))?;
    ensure!(none.is_empty(), "listing an empty prefix is empty");
    Ok(())
}

/// Keys with unicode, spaces, `+`, `%` and `=` round trip and list back unchanged.
pub async fn unicode_and_odd_keys(s: &Arc<dyn Storage>, base: &str) -> Result<(), String> {
    for k in ["día=2024-01-02/файл 1.parquet", "k=a b+c/x%20y.json", "emoji/🦀.txt"] {
        let key = format!("{base}/odd/{k}");
        s.put_bytes(&key, k.as_bytes().to_vec()).await.map_err(|e| fail(k, e))?;
        ensure!(s.get_bytes(&key).await.map_err(|e| fail(k, e))? == k.as_bytes(), "round trip of {k:?}");
    }
    let listed = s.list(&format!("{base}/odd/")).await.map_err(|e| fail("list", e))?;
    ensure!(listed.len() == 3, "odd keys list back: {listed:?}");
    ensure!(listed.iter().any(|m| m.key.ends_with("🦀.txt")), "keys list back unchanged");
    Ok(())
}

/// A deleted object is gone, and deleting it again succeeds.
pub async fn delete_is_idempotent(s: &Arc<dyn Storage>, base: &str) -> Result<(), String> {
    let key = format!("{base}/del/x");
    s.put_bytes(&key, vec![1]).await.map_err(|e| fail("put", e))?;
    s.delete(&key).await.map_err(|e| fail("delete", e))?;
    ensure!(s.head(&key).await.map_err(|e| fail("head", e))?.is_none(), "deleted object is gone");
    s.delete(&key).await.map_err(|e| fail("second delete succeeds", e))?;
    Ok(())
}

/// Empty, absolute, `..`, `.` and empty-component keys are refused.
pub async fn invalid_keys(s: &Arc<dyn Storage>, _base: &str) -> Result<(), String> {
    for k in ["", "/abs", "a/../b", "a//b", "./x"] {
        match s.put_bytes(k, vec![]).await {
            Err(StorageError::InvalidKey { .. }) => {}
            other => return Err(fail(&format!("key {k:?} is refused"), other)),
        }
    }
    Ok(())
}

/// Of eight racing conditional writers, exactly one wins and its bytes are stored.
pub async fn put_if_absent_has_one_winner(s: &Arc<dyn Storage>, base: &str) -> Result<(), String> {
    let key = format!("{base}/cas/commit.json");
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let s = s.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move { (i, s.put_if_absent(&key, vec![i]).await) }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (i, r) = t.await.map_err(|e| fail("join", e))?;
        match r {
            Ok(()) => winners.push(i),
            Err(StorageError::AlreadyExists { .. }) => {}
            Err(e) => return Err(fail("put_if_absent", e)),
        }
    }
    ensure!(winners.len() == 1, "exactly one conditional writer wins: {winners:?}");
    let stored = s.get_bytes(&key).await.map_err(|e| fail("get", e))?;
    ensure!(stored == vec![winners[0]], "the winner's bytes are stored");
    Ok(())
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// A large file (multipart where the backend has it) round trips byte for byte.
pub async fn files_round_trip(s: &Arc<dyn Storage>, base: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| fail("tempdir", e))?;
    // Large enough to take the multipart path where the backend has one.
    let data = pattern(12 * 1024 * 1024 + 123, 7);
    let src = dir.path().join("src.bin");
    std::fs::write(&src, &data).map_err(|e| fail("write", e))?;
    let key = format!("{base}/files/big.bin");
    s.put_file(&key, &src).await.map_err(|e| fail("put_file", e))?;
    let dst = dir.path().join("nested/dir/dst.bin");
    s.get_to_file(&key, &dst).await.map_err(|e| fail("get_to_file", e))?;
    let back = std::fs::read(&dst).map_err(|e| fail("read", e))?;
    ensure!(back == data, "a file round trips byte for byte ({} vs {} bytes)", back.len(), data.len());
    Ok(())
}

/// Reads during overwrites see a whole old or new object, and no temporary object is listed.
pub async fn readers_never_see_partial_objects(s: &Arc<dyn Storage>, base: &str) -> Result<(), String> {
    let key = format!("{base}/atomic/data.bin");
    let versions: Vec<Vec<u8>> = (0..4).map(|i| pattern(3 * 1024 * 1024, i)).collect();
    s.put_bytes(&key, versions[0].clone()).await.map_err(|e| fail("put", e))?;
    let writer = {
        let (s, key, versions) = (s.clone(), key.clone(), versions.clone());
        tokio::spawn(async move {
            for round in 0..6 {
                s.put_bytes(&key, versions[round % versions.len()].clone()).await?;
            }
            Ok::<_, StorageError>(())
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads < 3 {
        let got = s.get_bytes(&key).await.map_err(|e| fail("get during writes", e))?;
        ensure!(versions.contains(&got), "a read during overwrites saw a partial object ({} bytes)", got.len());
        reads += 1;
    }
    writer.await.map_err(|e| fail("join", e))?.map_err(|e| fail("writer", e))?;
    let leftovers = s.list(&format!("{base}/atomic/")).await.map_err(|e| fail("list", e))?;
    ensure!(leftovers.len() == 1, "no temporary objects are visible: {leftovers:?}");
    Ok(())
}
