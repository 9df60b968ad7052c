//! The S3 chunked writer: messages are queued in memory and uploaded by a background thread as
//! `{key_prefix}/1.json`, `2.json`, ... — contiguous, newline-joined, never empty, the last one
//! holding `closed`. The caller never waits on the network.

use std::io;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::MessageSink;
use crate::S3Options;
use crate::error::{PipesError, Result};

/// Uploads message chunks to S3 from a background thread.
pub struct S3ChunkSink {
    tx: Option<mpsc::Sender<Vec<u8>>>,
    worker: Option<JoinHandle<Result<u64>>>,
}

impl std::fmt::Debug for S3ChunkSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3ChunkSink").finish_non_exhaustive()
    }
}

impl S3ChunkSink {
    /// Starts the uploader for `s3://{bucket}/{key_prefix}/{n}.json`.
    pub fn start(options: S3Options, bucket: &str, key_prefix: &str) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let bucket = bucket.to_string();
        let prefix = key_prefix.trim_end_matches('/').to_string();
        let worker = std::thread::Builder::new()
            .name("dagster-pipes-s3".into())
            .spawn(move || {
                crate::session::mark_pipes_thread();
                let rt = crate::s3::runtime().map_err(PipesError::Write)?;
                rt.block_on(upload_loop(options, bucket, prefix, rx))
            })
            .map_err(|source| PipesError::OpenChannel {
                target: format!("S3 uploader thread for {key_prefix}"),
                source,
            })?;
        Ok(Self { tx: Some(tx), worker: Some(worker) })
    }
}

async fn upload_loop(options: S3Options, bucket: String, prefix: String, rx: mpsc::Receiver<Vec<u8>>) -> Result<u64> {
    let client = crate::s3::client(&options).await;
    let interval = options.upload_interval;
    let mut pending: Vec<u8> = Vec::new();
    let mut uploaded: u64 = 0;
    let mut last_upload = Instant::now();

    loop {
        let wait = interval.saturating_sub(last_upload.elapsed());
        // Blocking here is fine: this runtime lives on this thread alone, and the caller's
        // `send` never waits for it.
        match rx.recv_timeout(wait) {
            Ok(line) => pending.extend_from_slice(&line),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_upload.elapsed() < interval {
            continue;
        }
        // Take everything already queued so one chunk holds all that is available.
        while let Ok(line) = rx.try_recv() {
            pending.extend_from_slice(&line);
        }
        if !pending.is_empty() {
            let key = format!("{prefix}/{}.json", uploaded + 1);
            // On failure the chunk is kept and retried under the same number: a gap in the
            // numbering would stall the reader forever.
            if crate::s3::put_object(&client, &bucket, &key, chunk_body(&pending)).await.is_ok() {
                pending.clear();
                uploaded += 1;
            }
        }
        last_upload = Instant::now();
    }

    let mut backoff = Duration::from_millis(200);
    let mut attempt = 0;
    while !pending.is_empty() {
        let key = format!("{prefix}/{}.json", uploaded + 1);
        match crate::s3::put_object(&client, &bucket, &key, chunk_body(&pending)).await {
            Ok(()) => {
                pending.clear();
                uploaded += 1;
            }
            Err(e) if attempt >= 4 => return Err(e),
            Err(_) => {
                attempt += 1;
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
    }
    Ok(uploaded)
}

/// Lines arrive with their `\n`; a chunk is the lines joined by `\n`, without a trailing one.
fn chunk_body(pending: &[u8]) -> Vec<u8> {
    pending.strip_suffix(b"\n").unwrap_or(pending).to_vec()
}

impl MessageSink for S3ChunkSink {
    fn send(&mut self, line: &[u8]) -> io::Result<()> {
        match &self.tx {
            Some(tx) => tx.send(line.to_vec()).map_err(|_| io::Error::other("the S3 uploader thread has stopped")),
            None => Err(io::Error::other("the S3 writer is finished")),
        }
    }

    fn finish(&mut self) -> Result<()> {
        self.tx = None;
        match self.worker.take() {
            Some(worker) => worker
                .join()
                .unwrap_or_else(|_| Err(PipesError::Write(io::Error::other("the S3 uploader thread panicked"))))
                .map(|_| ()),
            None => Ok(()),
        }
    }
}

impl Drop for S3ChunkSink {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunk_has_no_trailing_newline() {
        assert_eq!(super::chunk_body(b"{\"a\":1}\n{\"b\":2}\n"), b"{\"a\":1}\n{\"b\":2}");
    }
}
