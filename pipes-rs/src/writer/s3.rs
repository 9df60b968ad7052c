//! The S3 chunked writer: messages are queued in memory and uploaded by a background thread as
//! `{key_prefix}/1.json`, `2.json`, ... — contiguous, newline-joined, never empty, the last one
//! holding `closed`. The caller does not wait on the network while S3 keeps up. At most
//! `max_pending_bytes` (and one line) wait in memory; past that a write waits for room, and
//! both a write and the close give up after `close_timeout` with an error.

use std::io;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::MessageSink;
use crate::S3Options;
use crate::error::{PipesError, Result};

/// Uploads message chunks to S3 from a background thread.
pub struct S3ChunkSink {
    shared: Arc<Shared>,
    /// The uploader's result, sent when it ends; `None` once finished.
    done: Option<mpsc::Receiver<Result<u64>>>,
    close_timeout: Duration,
}

/// What the writer and the uploader share. Writers append whole lines to `queued`; the
/// uploader takes all of it at once. Appending under a lock, with no per-message channel send
/// or wake-up, is what keeps a logging loop at memory speed.
struct Shared {
    /// The most bytes held (queued and being uploaded) before a writer waits.
    max_pending_bytes: usize,
    /// Queued bytes at which the uploader goes at once rather than at its interval: half the
    /// bound, so the writer fills the other half while this chunk is uploaded.
    upload_early_at: usize,
    state: Mutex<State>,
    /// Tells the uploader that the buffer is full or the writer has closed.
    to_uploader: Condvar,
    /// Tells writers that the uploader made room (or is gone).
    room: Condvar,
}

#[derive(Default)]
struct State {
    /// Lines (each with its `\n`) not yet taken by the uploader.
    queued: Vec<u8>,
    /// Bytes the uploader holds: a chunk being uploaded, or kept for a retry.
    held: usize,
    /// The writer has finished: upload what is left, then end.
    closed: bool,
    /// The uploader has ended; nothing will make room again.
    uploader_gone: bool,
}

impl State {
    fn pending(&self) -> usize {
        self.queued.len() + self.held
    }
}

impl Shared {
    fn new(max_pending_bytes: usize) -> Self {
        let max_pending_bytes = max_pending_bytes.max(2);
        Self {
            max_pending_bytes,
            upload_early_at: max_pending_bytes / 2,
            state: Mutex::default(),
            to_uploader: Condvar::new(),
            room: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A writer that panicked mid-append leaves whole lines behind it, so the state is sound.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for S3ChunkSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3ChunkSink").finish_non_exhaustive()
    }
}

impl S3ChunkSink {
    /// Starts the uploader for `s3://{bucket}/{key_prefix}/{n}.json`.
    pub fn start(options: S3Options, bucket: &str, key_prefix: &str) -> Result<Self> {
        let shared = Arc::new(Shared::new(options.max_pending_bytes));
        let (done_tx, done) = mpsc::channel();
        let bucket = bucket.to_string();
        let prefix = key_prefix.trim_end_matches('/').to_string();
        let close_timeout = options.close_timeout;
        let uploader = Arc::clone(&shared);
        // Detached: a close that gives up leaves it to end with the process.
        let _: JoinHandle<()> = std::thread::Builder::new()
            .name("dagster-pipes-s3".into())
            .spawn(move || {
                crate::session::mark_pipes_thread();
                // However the uploader ends, a panic included, waiting writers learn of it.
                let _gone = UploaderGone(&uploader);
                let result = match crate::s3::runtime() {
                    Ok(rt) => rt.block_on(upload_loop(options, bucket, prefix, &uploader)),
                    Err(e) => Err(PipesError::Write(e)),
                };
                let _ = done_tx.send(result);
            })
            .map_err(|source| PipesError::OpenChannel {
                target: format!("S3 uploader thread for {key_prefix}"),
                source,
            })?;
        Ok(Self { shared, done: Some(done), close_timeout })
    }
}

/// Marks the uploader gone when dropped, and wakes the writers waiting for room.
struct UploaderGone<'a>(&'a Shared);

impl Drop for UploaderGone<'_> {
    fn drop(&mut self) {
        self.0.lock().uploader_gone = true;
        self.0.room.notify_all();
    }
}

/// Uploads what is queued every `upload_interval`, and at once when half the bound is queued
/// (waiting out the interval then would only stall the writer once the other half fills),
/// unless the last upload failed: then it waits out the interval before trying again.
async fn upload_loop(options: S3Options, bucket: String, prefix: String, shared: &Shared) -> Result<u64> {
    let client = crate::s3::client(&options).await;
    let interval = options.upload_interval;
    let mut chunk: Vec<u8> = Vec::new();
    let mut uploaded: u64 = 0;
    let mut last_upload = Instant::now();
    let mut last_failed = false;
    loop {
        let closed = {
            let mut state = shared.lock();
            let due = last_upload + interval;
            loop {
                let now = Instant::now();
                if state.closed || now >= due || (state.queued.len() >= shared.upload_early_at && !last_failed) {
                    break;
                }
                state = shared.to_uploader.wait_timeout(state, due - now).unwrap_or_else(|p| p.into_inner()).0;
            }
            // On failure the chunk is kept and retried under the same number, with what came
            // since appended: a gap in the numbering would stall the reader forever.
            chunk.append(&mut state.queued);
            state.held = chunk.len();
            state.closed
        };
        shared.room.notify_all();
        if closed {
            break;
        }
        if !chunk.is_empty() {
            let key = format!("{prefix}/{}.json", uploaded + 1);
            last_failed = crate::s3::put_object(&client, &bucket, &key, chunk_body(&chunk)).await.is_err();
            if !last_failed {
                chunk.clear();
                uploaded += 1;
                shared.lock().held = 0;
                shared.room.notify_all();
            }
        }
        last_upload = Instant::now();
    }

    // The writer is gone, and everything it wrote is in `chunk`.
    let mut backoff = Duration::from_millis(200);
    let mut attempt = 0;
    while !chunk.is_empty() {
        let key = format!("{prefix}/{}.json", uploaded + 1);
        match crate::s3::put_object(&client, &bucket, &key, chunk_body(&chunk)).await {
            Ok(()) => {
                chunk.clear();
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
    /// Appends the line. While the buffer (queued and held by the uploader) is at its bound,
    /// waits for room, up to `close_timeout`; a line is never split, so the buffer may pass
    /// the bound by one line.
    fn send(&mut self, line: &[u8]) -> io::Result<()> {
        if self.done.is_none() {
            return Err(io::Error::other("the S3 writer is finished"));
        }
        let deadline = Instant::now() + self.close_timeout;
        let mut state = self.shared.lock();
        while state.pending() >= self.shared.max_pending_bytes {
            if state.uploader_gone {
                return Err(io::Error::other("the S3 uploader thread has stopped"));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("S3 has taken no Pipes messages for {:?}; the buffer is full", self.close_timeout),
                ));
            }
            self.shared.to_uploader.notify_one();
            state = self.shared.room.wait_timeout(state, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
        if state.uploader_gone {
            return Err(io::Error::other("the S3 uploader thread has stopped"));
        }
        state.queued.extend_from_slice(line);
        if state.queued.len() >= self.shared.upload_early_at {
            self.shared.to_uploader.notify_one();
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        let Some(done) = self.done.take() else { return Ok(()) };
        self.shared.lock().closed = true;
        self.shared.to_uploader.notify_one();
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
