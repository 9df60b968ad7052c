//! # runner-table — outputs kept as Delta Lake tables
//!
//! An output declared with `table = "delta"` is still written the runner's way: each item
//! publishes its Parquet files and commits its manifest. Readers see none of it until the step's
//! items have all committed; then the orchestrator makes **one Delta commit per table**: an add
//! for each committed file, a remove for each file it replaces, and the step's run as an
//! application transaction. Readers that read the table by its log (Athena, Spark, Trino,
//! DuckDB's `delta_scan`, Polars' `scan_delta`, `deltalake`) see the old partitions or the new
//! ones, never a mix, and never a file no manifest lists.
//!
//! This crate owns the Delta side: a file's statistics from its footer ([`stats`]), partition
//! values from its folders ([`hive`]), schemas and what may change in them ([`schema`]), and the
//! commit ([`commit`]). Which files a step committed, and which it replaces, is the caller's
//! (`runner-core`, from manifests); where the table is stored is `runner-backends`'.

pub mod commit;
pub mod hive;
pub mod schema;
pub mod stats;

pub use commit::{Commit, CommitError, Committed, NewFile, Scope, TableFileRow};
