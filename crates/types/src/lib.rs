//! # runner-types — the names and records every part of the runner shares
//!
//! Owns the identities that travel between the runner's parts — [`PartitionKey`] and
//! [`Partition`], [`StepName`], [`OutputRef`], [`AssetKey`], [`RunId`], [`WorkItemId`],
//! [`Severity`], [`BackendKind`] and [`Location`] — and [`ItemStats`], what one work item did.
//! Each serializes as the plain string (or record) it always was, so work items, manifests and
//! summaries keep their format; in code, the type says which name a value is.
//!
//! It owns no behaviour beyond parsing and printing these values: no I/O, no Polars, no AWS.
//! Everything else in the runner depends on it, and it depends on nothing of the runner.
//!
//! ```
//! use runner_types::{Location, OutputRef, Partition};
//!
//! let day = Partition::from_key("2024-01-02").unwrap();
//! assert_eq!(day.start.unwrap().to_string(), "2024-01-02 00:00:00");
//! let out: OutputRef = "clean.events".parse().unwrap();
//! assert_eq!(out.step.as_str(), "clean");
//! let lake = Location::parse_absolute("s3://lake/data").unwrap();
//! assert_eq!(lake.join("raw/x.csv").to_string(), "s3://lake/data/raw/x.csv");
//! ```

mod ids;
mod item_env;
mod location;
mod partition;
mod stats;

pub use ids::{AssetKey, BackendKind, OutputRef, RunId, Severity, StepName, WorkItemId, stable_hash};
pub use item_env::{EnvSource, HOT_TABLE_VAR, ItemEnv, refuse_name, refuse_value};
pub use location::Location;
pub use partition::{InvalidPartitionKey, Partition, PartitionKey};
pub use stats::{CheckPart, ItemStats, OutputStats, TableFile, TableFiles};
