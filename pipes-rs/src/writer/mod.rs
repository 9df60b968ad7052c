//! Message writers: where messages go, as the messages params say. Each sink receives complete
//! lines (JSON plus `\n`) and never writes a partial one.

mod buffered_stdio;
mod file;
#[cfg(feature = "s3")]
mod s3;
mod stdio;

use std::io;
use std::path::PathBuf;

use serde_json::Value;

pub use buffered_stdio::BufferedStdioSink;
pub use file::FileSink;
#[cfg(feature = "s3")]
pub use s3::S3ChunkSink;
pub use stdio::StdioSink;

use crate::bootstrap::Params;
use crate::error::{PipesError, Result};
use crate::message::Stream;

/// A destination for serialized messages.
pub trait MessageSink: Send {
    /// Writes one message. `line` is a complete JSON document followed by `\n`. A sink may
    /// hold it briefly (logs); see [`MessageSink::flush`].
    fn send(&mut self, line: &[u8]) -> io::Result<()>;

    /// Writes anything held back. Called after every message that is not a log, so only logs
    /// ever wait.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Flushes and releases the channel. Called once, after `closed` was sent.
    fn finish(&mut self) -> Result<()>;

    /// True when the process's own stdout/stderr can be captured and forwarded without feeding
    /// this sink's output back into itself.
    fn allows_stdio_capture(&self) -> bool {
        true
    }
}

/// The channel the messages params describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageTarget {
    /// Append to a file.
    File(PathBuf),
    /// Write each message to a standard stream as it happens.
    Stdio(Stream),
    /// Hold messages and write them all to a standard stream at close.
    BufferedStdio(Stream),
    /// Upload chunks `{key_prefix}/{n}.json` to S3.
    S3 {
        /// Bucket.
        bucket: String,
        /// Prefix of the chunk keys.
        key_prefix: String,
    },
}

/// Parsed messages params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesParams {
    /// Where messages go.
    pub target: MessageTarget,
    /// Whether to forward the process's stdout/stderr as `log_external_stream` messages.
    pub include_stdio_in_messages: bool,
}

impl MessagesParams {
    /// Interprets messages params. Unknown shapes are an error naming the keys received.
    pub fn from_params(params: &Params) -> Result<Self> {
        let string = |key: &'static str| -> Result<Option<&str>> {
            match params.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(other) => Err(PipesError::InvalidParam {
                    what: "messages",
                    key,
                    detail: format!("expected a string, got {}", crate::bootstrap::json_kind(other)),
                }),
            }
        };
        let stream = |key: &'static str, value: &str| -> Result<Stream> {
            value.parse().map_err(|_| PipesError::InvalidParam {
                what: "messages",
                key,
                detail: format!("{value:?} is not `stdout` or `stderr`"),
            })
        };
        let include_stdio_in_messages = match params.get("include_stdio_in_messages") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(PipesError::InvalidParam {
                    what: "messages",
                    key: "include_stdio_in_messages",
                    detail: format!("expected a boolean, got {}", crate::bootstrap::json_kind(other)),
                });
            }
        };
        let target = if let Some(path) = string("path")? {
            MessageTarget::File(path.into())
        } else if let Some(s) = string("stdio")? {
            MessageTarget::Stdio(stream("stdio", s)?)
        } else if let Some(s) = string("buffered_stdio")? {
            MessageTarget::BufferedStdio(stream("buffered_stdio", s)?)
        } else if let (Some(bucket), Some(key_prefix)) = (string("bucket")?, string("key_prefix")?) {
            MessageTarget::S3 { bucket: bucket.to_string(), key_prefix: key_prefix.to_string() }
        } else {
            return Err(PipesError::UnknownMessageParams { keys: params.keys().cloned().collect() });
        };
        Ok(Self { target, include_stdio_in_messages })
    }

    /// Opens the sink.
    pub fn open(&self, s3: &crate::S3Options) -> Result<Box<dyn MessageSink>> {
        Ok(match &self.target {
            MessageTarget::File(path) => Box::new(FileSink::open(path)?),
            MessageTarget::Stdio(stream) => Box::new(StdioSink::new(*stream)),
            MessageTarget::BufferedStdio(stream) => Box::new(BufferedStdioSink::new(*stream)),
            MessageTarget::S3 { bucket, key_prefix } => open_s3(bucket, key_prefix, s3)?,
        })
    }
}

#[cfg(feature = "s3")]
fn open_s3(bucket: &str, key_prefix: &str, s3: &crate::S3Options) -> Result<Box<dyn MessageSink>> {
    Ok(Box::new(S3ChunkSink::start(s3.clone(), bucket, key_prefix)?))
}

#[cfg(not(feature = "s3"))]
fn open_s3(_: &str, _: &str, _: &crate::S3Options) -> Result<Box<dyn MessageSink>> {
    Err(PipesError::S3NotEnabled { what: "the message writer" })
}

/// Discards everything: the sink of an un-orchestrated process.
#[derive(Debug, Default)]
pub struct NullSink;

impl MessageSink for NullSink {
    fn send(&mut self, _line: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
    fn allows_stdio_capture(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<MessagesParams> {
        MessagesParams::from_params(v.as_object().unwrap())
    }

    #[test]
    fn recognises_every_shape() {
        assert_eq!(
            parse(json!({"path": "/m", "include_stdio_in_messages": true})).unwrap(),
            MessagesParams { target: MessageTarget::File("/m".into()), include_stdio_in_messages: true }
        );
        assert_eq!(parse(json!({"stdio": "stderr"})).unwrap().target, MessageTarget::Stdio(Stream::Stderr));
        assert_eq!(
            parse(json!({"buffered_stdio": "stdout"})).unwrap().target,
            MessageTarget::BufferedStdio(Stream::Stdout)
        );
        assert_eq!(
            parse(json!({"bucket": "b", "key_prefix": "p"})).unwrap().target,
            MessageTarget::S3 { bucket: "b".into(), key_prefix: "p".into() }
        );
    }

    #[test]
    fn unknown_shapes_are_errors_not_panics() {
        let err = parse(json!({"socket": "/x", "port": 3})).unwrap_err().to_string();
        assert!(err.contains("\"socket\"") && err.contains("\"port\""), "{err}");
        assert!(parse(json!({"stdio": "stdlog"})).is_err());
        assert!(parse(json!({"path": 7})).is_err());
        assert!(parse(json!({"path": "/m", "include_stdio_in_messages": "yes"})).is_err());
        assert!(parse(json!({"bucket": "b"})).is_err());
    }
}
