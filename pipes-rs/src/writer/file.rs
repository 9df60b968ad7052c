//! The file writer. The orchestrator parses the file line by line with no tolerance for a
//! partial line, so every `write(2)` holds complete lines only. Log lines are coalesced for up
//! to [`COALESCE`] and written together by a flusher thread; every other message (opened,
//! materializations, checks, closed, ...) is written at once, with whatever logs precede it,
//! so nothing that matters waits and order is kept.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::MessageSink;
use crate::error::{PipesError, Result};

/// The longest a log line waits before it is written.
pub const COALESCE: Duration = Duration::from_millis(20);
/// Above this many buffered bytes, lines are written without waiting.
const HIGH_WATER: usize = 256 * 1024;

struct State {
    file: File,
    pending: Vec<u8>,
    finished: bool,
    error: Option<io::ErrorKind>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn write_pending(state: &mut State) -> io::Result<()> {
    if state.pending.is_empty() {
        return Ok(());
    }
    // One write of whole lines; an unbuffered `File` with O_APPEND keeps them whole.
    let result = state.file.write_all(&state.pending);
    state.pending.clear();
    if let Err(e) = &result {
        state.error = Some(e.kind());
    }
    result
}

/// Appends messages to a file the orchestrator tails.
pub struct FileSink {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink").finish_non_exhaustive()
    }
}

impl FileSink {
    /// Opens `path` for appending, creating it if needed.
    pub fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| PipesError::OpenChannel { target: path.display().to_string(), source })?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State { file, pending: Vec::with_capacity(64 * 1024), finished: false, error: None }),
            wake: Condvar::new(),
        });
        let flusher = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("dagster-pipes-file".into())
                .spawn(move || flush_loop(&shared))
                .map_err(|source| PipesError::OpenChannel { target: path.display().to_string(), source })?
        };
        Ok(Self { shared, flusher: Some(flusher) })
    }
}

fn flush_loop(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        while state.pending.is_empty() && !state.finished {
            state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        if state.finished {
            return;
        }
        // Let more lines join the batch, then write them all.
        let (s, _) = shared.wake.wait_timeout(state, COALESCE).unwrap_or_else(|p| p.into_inner());
        state = s;
        let _ = write_pending(&mut state);
    }
}

impl MessageSink for FileSink {
    fn send(&mut self, line: &[u8]) -> io::Result<()> {
        let mut state = self.shared.lock();
        if let Some(kind) = state.error {
            return Err(io::Error::new(kind, "an earlier write to the messages file failed"));
        }
        let was_empty = state.pending.is_empty();
        state.pending.extend_from_slice(line);
        if state.pending.len() >= HIGH_WATER {
            return write_pending(&mut state);
        }
        if was_empty {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        write_pending(&mut self.shared.lock())
    }

    fn finish(&mut self) -> Result<()> {
        {
            let mut state = self.shared.lock();
            let written = write_pending(&mut state);
            state.finished = true;
            self.shared.wake.notify_all();
            written.and_then(|()| state.file.flush()).map_err(PipesError::Write)?;
        }
        if let Some(f) = self.flusher.take() {
            let _ = f.join();
        }
        Ok(())
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesced_lines_arrive_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        let mut sink = FileSink::open(&path).unwrap();
        for i in 0..10_000 {
            sink.send(format!("{{\"n\": {i}}}\n").as_bytes()).unwrap();
        }
        // A message that is not a log is written at once, with the logs before it.
        sink.send(b"{\"closed\": true}\n").unwrap();
        sink.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("{\"closed\": true}\n"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10_001);
        for (i, l) in lines.iter().take(10_000).enumerate() {
            assert_eq!(*l, format!("{{\"n\": {i}}}"));
        }
        sink.finish().unwrap();
    }

    #[test]
    fn buffered_logs_reach_the_file_without_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        let mut sink = FileSink::open(&path).unwrap();
        sink.send(b"{\"log\": 1}\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&path).unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the flusher never wrote the line");
            std::thread::sleep(Duration::from_millis(5));
        }
        sink.finish().unwrap();
    }
}
