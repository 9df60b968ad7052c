//! The stdio writer: one JSON line per message on stdout or stderr, flushed at once.

use std::io::{self, Write};

use super::MessageSink;
use crate::error::{PipesError, Result};
use crate::message::Stream;

/// Writes each message to a standard stream.
#[derive(Debug)]
pub struct StdioSink {
    stream: Stream,
}

impl StdioSink {
    /// A sink on `stream`.
    pub fn new(stream: Stream) -> Self {
        Self { stream }
    }
}

pub(super) fn write_stream(stream: Stream, bytes: &[u8]) -> io::Result<()> {
    match stream {
        Stream::Stdout => {
            let mut out = io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()
        }
        Stream::Stderr => {
            let mut err = io::stderr().lock();
            err.write_all(bytes)?;
            err.flush()
        }
    }
}

impl MessageSink for StdioSink {
    fn send(&mut self, line: &[u8]) -> io::Result<()> {
        write_stream(self.stream, line)
    }

    fn finish(&mut self) -> Result<()> {
        write_stream(self.stream, b"").map_err(PipesError::Write)
    }

    fn allows_stdio_capture(&self) -> bool {
        false
    }
}
