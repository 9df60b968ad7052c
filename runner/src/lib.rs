//! # runner — declarative Polars jobs on local workers or an EC2 spot fleet
//!
//! A job spec (TOML) describes steps with named inputs and outputs. The orchestrator turns each
//! step into work items, puts them on a queue, runs workers (local processes, or EC2 spot
//! instances) that execute items with Polars and publish outputs atomically to storage (a local
//! directory or S3), and collects their callbacks. Launched by Dagster, it reports over Pipes.
//!
//! Where things live:
//! - [`spec`]: the job spec format and its validation;
//! - [`engine`]: one work item on local files with Polars;
//! - [`storage`], [`queue`]: the backends, each a trait with a local and an AWS implementation.

pub mod aws;
pub mod engine;
pub mod partition;
pub mod queue;
pub mod spec;
pub mod storage;
