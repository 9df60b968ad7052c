//! The buffered stdio writer: keeps messages in memory and writes them all at close, so they
//! arrive as one block after the process's other output.

use std::io;

use super::MessageSink;
use super::stdio::write_stream;
use crate::error::{PipesError, Result};
use crate::message::Stream;

/// Holds messages until close.
#[derive(Debug)]
pub struct BufferedStdioSink {
    stream: Stream,
    buffer: Vec<u8>,
}

impl BufferedStdioSink {
    /// A sink that writes to `stream` at close.
    pub fn new(stream: Stream) -> Self {
        Self { stream, buffer: Vec::new() }
    }
}

impl MessageSink for BufferedStdioSink {
    fn send(&mut self, line: &[u8]) -> io::Result<()> {
        self.buffer.extend_from_slice(line);
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        let buffer = std::mem::take(&mut self.buffer);
        write_stream(self.stream, &buffer).map_err(PipesError::Write)
    }

    fn allows_stdio_capture(&self) -> bool {
        false
    }
}
