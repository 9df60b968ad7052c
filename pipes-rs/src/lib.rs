//! # dagster_pipes — the external side of Dagster Pipes, in Rust
//!
//! A process launched by Dagster (through `PipesSubprocessClient`, or any Pipes client) uses
//! this crate to read its context (which asset, which partition, which run, the user's extras)
//! and to report back: logs, materializations with typed metadata, asset checks, custom
//! messages, and errors.
//!
//! What it covers:
//! - **Bootstrap** from env vars ([`EnvVarParamsLoader`], the default), CLI args
//!   ([`CliArgsParamsLoader`]) or any string map ([`MapParamsLoader`]); values are
//!   `base64(zlib(json))`.
//! - **Context** from a file, inline data or S3 (feature `s3`).
//! - **Messages** to a file, stdout/stderr (direct or buffered) or S3 chunks (feature `s3`),
//!   with optional forwarding of the process's own stdout/stderr.
//! - **Every method** with the exact key sets the orchestrator requires, **every metadata
//!   type** Dagster accepts ([`MetadataValue`]), and the reference implementation's rules:
//!   asset keys must belong to the step, one materialization per asset, nothing after close.
//! - **Error reporting**: [`run`] turns an `Err` or a panic into `closed` with the exception
//!   and a failing exit code.
//! - **`tracing`** (feature `tracing`, on by default): [`PipesLayer`] forwards events as logs.
//!
//! What it does not do: it is not an orchestrator, and it keeps no global state. A process
//! that was not launched by Dagster gets a no-op session and one warning on stderr.
//!
//! ## Example
//!
//! ```no_run
//! use std::process::ExitCode;
//! use dagster_pipes::{AssetCheck, AssetMaterialization, Metadata, MetadataValue, Severity};
//!
//! fn main() -> ExitCode {
//!     dagster_pipes::run(|ctx| -> Result<(), dagster_pipes::PipesError> {
//!         // The partition this run targets (errors when the run is not for one partition).
//!         let day = ctx.partition_key()?.to_string();
//!         ctx.logger().info(format!("processing {day}"))?;
//!
//!         let rows: u64 = 1_234; // ... do the work ...
//!
//!         ctx.report_asset_materialization(
//!             AssetMaterialization::new()
//!                 .data_version(format!("{day}-{rows}"))
//!                 .with("dagster/row_count", rows)
//!                 .with("source", MetadataValue::Url("https://example.com/data".into()))
//!                 .with("seconds", 1.5),
//!         )?;
//!         ctx.report_asset_check(
//!             AssetCheck::new("not_empty", rows > 0)
//!                 .severity(Severity::Warn)
//!                 .metadata(Metadata::new().with("rows", rows)),
//!         )?;
//!         Ok(())
//!     })
//! }
//! ```
//!
//! For finer control, open the session yourself with [`open_dagster_pipes`] or
//! [`PipesBuilder`], and call [`PipesContext::close`] (or
//! [`PipesContext::close_with_exception`]) when done; dropping the last handle closes it too.

#![warn(missing_docs)]

pub mod asset_key;
pub mod bootstrap;
pub mod context;
pub mod context_loader;
mod error;
pub mod message;
pub mod metadata;
mod run;
#[cfg(feature = "s3")]
mod s3;
mod session;
mod stdio_capture;
#[cfg(feature = "tracing")]
mod tracing_layer;
pub mod writer;

use std::time::Duration;

pub use bootstrap::{CliArgsParamsLoader, EnvVarParamsLoader, MapParamsLoader, ParamsLoader};
pub use context::{ContextData, PartitionKeyRange, Provenance, TimeWindow};
pub use error::{PipesError, Result};
pub use message::{ExceptionInfo, LogLevel, Severity, Stream};
pub use metadata::{
    ColumnConstraints, Metadata, MetadataValue, Table, TableCell, TableColumn, TableColumnDep, TableColumnLineage,
    TableSchema,
};
pub use run::{run, run_with};
pub use session::{AssetCheck, AssetMaterialization, Logger, PipesBuilder, PipesContext, open_dagster_pipes};
#[cfg(feature = "tracing")]
pub use tracing_layer::{PipesLayer, pipes_level};

/// Options for S3 (used only with the `s3` feature).
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Path-style addressing. `None` (the default) turns it on when a custom endpoint is
    /// configured (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, or a profile's `endpoint_url`),
    /// as S3-compatible stores need it.
    pub force_path_style: Option<bool>,
    /// How often the chunked writer uploads queued messages. The reference uses 10 s; the stock
    /// reader fetches one chunk per poll, so fewer, larger chunks keep it from falling behind.
    pub upload_interval: Duration,
    /// The longest wait for S3 to answer a request (an attempt may take twice that, a request
    /// with its retries five times): an endpoint that never answers fails the request.
    pub response_timeout: Duration,
    /// How long closing the session may wait for the last messages to reach S3 before it gives
    /// up with an error, and how long a writer whose buffer is full waits for room.
    pub close_timeout: Duration,
    /// The most message bytes held in memory while S3 is unreachable; past it, writing a
    /// message waits for S3 (up to `close_timeout`) instead of growing without bound.
    pub max_pending_bytes: usize,
}

impl Default for S3Options {
    fn default() -> Self {
        Self {
            force_path_style: None,
            upload_interval: Duration::from_secs(10),
            response_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(120),
            max_pending_bytes: 64 * 1024 * 1024,
        }
    }
}
