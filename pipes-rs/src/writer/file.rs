//! The file writer: appends one complete line per message with a single `write`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::MessageSink;
use crate::error::{PipesError, Result};

/// Appends messages to a file the orchestrator tails.
#[derive(Debug)]
pub struct FileSink {
    file: File,
}

impl FileSink {
    /// Opens `path` for appending, creating it if needed.
    pub fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| PipesError::OpenChannel { target: path.display().to_string(), source })?;
        Ok(Self { file })
    }
}

impl MessageSink for FileSink {
    fn send(&mut self, line: &[u8]) -> io::Result<()> {
        // An unbuffered `File` turns this into one write(2) of the whole line: the reader never
        // sees half a message. O_APPEND keeps concurrent writers' lines whole too.
        self.file.write_all(line)
    }

    fn finish(&mut self) -> Result<()> {
        self.file.flush().map_err(PipesError::Write)
    }
}
