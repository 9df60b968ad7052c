//! The crate's one error type. Every variant names the thing that was wrong (a key, a path, an
//! asset) so that a failure seen in Dagster's event log points at its cause.

use std::path::PathBuf;

/// Everything that can go wrong while talking Pipes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipesError {
    /// A bootstrap value (`DAGSTER_PIPES_CONTEXT` / `DAGSTER_PIPES_MESSAGES`) could not be decoded.
    #[error("bootstrap value {name} could not be decoded ({stage}): {detail}")]
    Bootstrap {
        /// Which value: the env var name or CLI flag.
        name: String,
        /// `base64`, `zlib` or `json`.
        stage: &'static str,
        /// What the decoder said.
        detail: String,
    },
    /// The context params had none of the recognised shapes.
    #[error("context params not recognised: expected `path`, `data` or `bucket`+`key`, got keys {keys:?}")]
    UnknownContextParams {
        /// The keys that were received.
        keys: Vec<String>,
    },
    /// The messages params had none of the recognised shapes.
    #[error(
        "message writer params not recognised: expected `path`, `stdio`, `buffered_stdio` or `bucket`+`key_prefix`, got keys {keys:?}"
    )]
    UnknownMessageParams {
        /// The keys that were received.
        keys: Vec<String>,
    },
    /// A params value had the wrong JSON type or an unknown value.
    #[error("invalid value for `{key}` in {what} params: {detail}")]
    InvalidParam {
        /// `context` or `messages`.
        what: &'static str,
        /// The offending key.
        key: &'static str,
        /// Why it is invalid.
        detail: String,
    },
    /// The context file could not be read.
    #[error("reading the Pipes context from {path}: {source}")]
    ContextFile {
        /// The file the orchestrator named.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The context JSON did not have the expected shape.
    #[error("the Pipes context is not valid: {0}")]
    ContextData(#[source] serde_json::Error),
    /// A partition time window bound was not an ISO-8601 timestamp with an offset.
    #[error("partition_time_window.{bound} = {value:?} is not an RFC 3339 timestamp: {detail}")]
    TimeWindow {
        /// `start` or `end`.
        bound: &'static str,
        /// The raw value.
        value: String,
        /// The parser's complaint.
        detail: String,
    },
    /// The orchestrator asked for S3 but the crate was built without the `s3` feature.
    #[error("the orchestrator asked for {what} on S3, but pipes-rs was built without its `s3` feature")]
    S3NotEnabled {
        /// The context loader or the message writer.
        what: &'static str,
    },
    /// An S3 request failed.
    #[error("S3 {operation} s3://{bucket}/{key} failed: {detail}")]
    S3 {
        /// `GetObject`, `PutObject`, ...
        operation: &'static str,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The SDK's error, with its chain.
        detail: String,
    },
    /// The message channel could not be opened.
    #[error("opening the Pipes message channel {target}: {source}")]
    OpenChannel {
        /// A path or stream name.
        target: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Writing a message failed.
    #[error("writing a Pipes message failed: {0}")]
    Write(#[source] std::io::Error),
    /// A message was reported after `closed` had been sent.
    #[error("`{method}` called after the Pipes session was closed")]
    Closed {
        /// The method that was refused.
        method: &'static str,
    },
    /// An asset key is not one of the step's assets.
    #[error("asset key {key:?} is not targeted by this step; its assets are {allowed:?}")]
    UnknownAssetKey {
        /// The key given.
        key: String,
        /// The step's asset keys.
        allowed: Vec<String>,
    },
    /// No asset key was given and the step does not have exactly one.
    #[error("no asset key was given and this step targets {count} assets ({keys:?}); name one")]
    AmbiguousAssetKey {
        /// How many assets the step has.
        count: usize,
        /// Their keys.
        keys: Vec<String>,
    },
    /// No asset key was given and the step is not an asset step.
    #[error("no asset key was given and this step targets no assets (an op step): name one")]
    NoAssetKey,
    /// An asset key string is malformed.
    #[error("invalid asset key {key:?}: {reason}")]
    InvalidAssetKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The same asset was materialized twice in one session.
    #[error("asset {key:?} was already materialized in this Pipes session")]
    DuplicateMaterialization {
        /// The asset key.
        key: String,
    },
    /// A context field the caller asked for is null in this step.
    #[error("`{field}` is not defined for this step{hint}")]
    Undefined {
        /// The field.
        field: &'static str,
        /// Why it might be null.
        hint: &'static str,
    },
    /// An extra the caller asked for was not passed by the orchestrator.
    #[error("extra {key:?} was not provided; the extras are {present:?}")]
    MissingExtra {
        /// The requested key.
        key: String,
        /// The keys present.
        present: Vec<String>,
    },
    /// An extra was present but did not have the requested type.
    #[error("extra {key:?} does not have the requested type: {detail}")]
    ExtraType {
        /// The requested key.
        key: String,
        /// The deserializer's complaint.
        detail: String,
    },
    /// A value cannot be expressed in the protocol (for example a NaN float).
    #[error("invalid {what}: {detail}")]
    InvalidValue {
        /// What was being encoded.
        what: String,
        /// Why it was refused.
        detail: String,
    },
    /// A string could not be parsed as a protocol enum (level, severity, stream).
    #[error("{value:?} is not a valid {what}; expected one of {expected}")]
    Parse {
        /// The kind of value.
        what: &'static str,
        /// The value.
        value: String,
        /// The accepted values.
        expected: &'static str,
    },
}

/// Shorthand for results in this crate.
pub type Result<T, E = PipesError> = std::result::Result<T, E>;
