//! # runner — declarative Polars jobs on local workers or an EC2 spot fleet
//!
//! A job spec (TOML) describes steps with named inputs and outputs. The orchestrator turns each
//! step into work items, puts them on a queue, runs workers (local processes, or EC2 spot
//! instances) that execute items with Polars and publish outputs atomically to storage (a local
//! directory or S3), and collects their callbacks. Launched by Dagster, it reports over Pipes.
//!
//! Data flows one way: [`spec`] → [`plan`] (work items) → [`queue`] → [`worker`] →
//! [`child`]/[`exec`] → [`engine`] (Polars) → [`storage`] → callback → [`orchestrator`] →
//! [`dagster`] (Pipes messages).

pub mod aws;
pub mod checks;
pub mod child;
pub mod cli;
pub mod commands;
pub mod config;
pub mod cost;
pub mod dagster;
pub mod engine;
pub mod example_data;
pub mod exec;
pub mod feed;
pub mod files;
pub mod fleet;
pub mod imds;
pub mod item;
pub mod observer;
pub mod orchestrator;
pub mod partition;
pub mod plan;
pub mod queue;
pub mod spec;
pub mod storage;
pub mod stores;
pub mod worker;
