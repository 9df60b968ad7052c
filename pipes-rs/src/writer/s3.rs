//! The S3 chunked writer: messages are queued in memory and uploaded by a background thread as
//! `{key_prefix}/1.json`, `2.json`, ... — contiguous, newline-joined, never empty, the last one
//! holding `closed`. The caller does not wait on the network while S3 answers. While it does
//! not, at most `max_pending_bytes` wait in memory; past that a write waits for room, and both a
//! write and the close give up after `close_timeout` with an error.

use std::io;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::MessageSink;
use crate::S3Options;
use crate::error::{PipesError, Result};

/// Uploads message chunks to S3 from a background thread.
pub struct S3ChunkSink {
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    /// The uploader's result, sent when it ends.
    done: Option<mpsc::Receiver<Result<u64>>>,
    close_timeout: Duration,
}

/// Messages queued between the writer and the uploader; the uploader's own buffer is bounded
/// in bytes.
const QUEUED: usize = 1024;

impl std::fmt::Debug for S3ChunkSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3ChunkSink").finish_non_exhaustive()
    }
}

impl S3ChunkSink {
    /// Starts the uploader for `s3://{bucket}/{key_prefix}/{n}.json`.
    pub fn start(options: S3Options, bucket: &str, key_prefix: &str) -> Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(QUEUED);
        let (done_tx, done) = mpsc::channel();
        let bucket = bucket.to_string();
        let prefix = key_prefix.trim_end_matches('/').to_string();
        let close_timeout = options.close_timeout;
        // Detached: a close that gives up leaves it to end with the process.
        let _: JoinHandle<()> = std::thread::Builder::new()
            .name("dagster-pipes-s3".into())
            .spawn(move || {
                crate::session::mark_pipes_thread();
                let result = match crate::s3::runtime() {
                    Ok(rt) => rt.block_on(upload_loop(options, bucket, prefix, rx)),
                    Err(e) => Err(PipesError::Write(e)),
                };
                let _ = done_tx.send(result);
            })
            .map_err(|source| PipesError::OpenChannel {
                target: format!("S3 uploader thread for {key_prefix}"),
                source,
            })?;
        Ok(Self { tx: Some(tx), done: Some(done), close_timeout })
    }
}

async fn upload_loop(options: S3Options, bucket: String, prefix: String, rx: mpsc::Receiver<Vec<u8>>) -> Result<u64> {
    let client = crate::s3::client(&options).await;
    let interval = options.upload_interval;
    let mut pending: Vec<u8> = Vec::new();
    let mut uploaded: u64 = 0;
    let mut last_upload = Instant::now();

    let full = |pending: &Vec<u8>| pending.len() >= options.max_pending_bytes;
    loop {
        let wait = interval.saturating_sub(last_upload.elapsed());
        if full(&pending) {
            // No more in memory until S3 takes some: writers wait on the bounded queue.
            std::thread::sleep(wait);
        } else {
            // Blocking here is fine: this runtime lives on this thread alone, and the caller's
            // `send` does not wait for it while the queue has room.
            match rx.recv_timeout(wait) {
                Ok(line) => pending.extend_from_slice(&line),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if last_upload.elapsed() < interval {
            continue;
        }
        // Take everything already queued (within the bound) so one chunk holds it all.
        while !full(&pending)
            && let Ok(line) = rx.try_recv()
        {
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

    // The writer is gone: what it queued last is still to be taken.
    while let Ok(line) = rx.try_recv() {
        pending.extend_from_slice(&line);
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
        let Some(tx) = &self.tx else {
            return Err(io::Error::other("the S3 writer is finished"));
        };
        let deadline = Instant::now() + self.close_timeout;
        let mut message = line.to_vec();
        loop {
            match tx.try_send(message) {
                Ok(()) => return Ok(()),
                Err(mpsc::TrySendError::Disconnected(_)) => {
                    return Err(io::Error::other("the S3 uploader thread has stopped"));
                }
                Err(mpsc::TrySendError::Full(back)) if Instant::now() < deadline => {
                    message = back;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(mpsc::TrySendError::Full(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("S3 has taken no Pipes messages for {:?}; the buffer is full", self.close_timeout),
                    ));
                }
            }
        }
    }

    fn finish(&mut self) -> Result<()> {
        self.tx = None;
        let Some(done) = self.done.take() else { return Ok(()) };
        match done.recv_timeout(self.close_timeout) {
            Ok(result) => result.map(|_| ()),
            Err(RecvTimeoutError::Timeout) => Err(PipesError::Write(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the last Pipes messages did not reach S3 within {:?}", self.close_timeout),
            ))),
            Err(RecvTimeoutError::Disconnected) => {
                Err(PipesError::Write(io::Error::other("the S3 uploader thread panicked")))
            }
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
