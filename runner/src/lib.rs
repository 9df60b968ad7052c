//! # runner — the command line over the runner's crates, and its Dagster side
//!
//! The `runner` binary: declarative Polars jobs on local workers or an EC2 spot fleet,
//! reporting to Dagster over Pipes. This crate is thin: it parses the command line ([`cli`])
//! and the configuration ([`config`]), wires backends and options for each command
//! ([`commands`]), and reports to Dagster ([`dagster`]): partitions in, materializations,
//! checks ([`checks`]) and cost ([`cost`]) out. The work is done by the library crates, in the
//! order data flows through them:
//!
//! | crate | owns |
//! |---|---|
//! | `runner-types` | the shared identities: partition keys, step and asset names, locations |
//! | `runner-spec` | the job spec: format, validation, placeholders |
//! | `runner-core` | planning, the orchestrator loop, run state, the worker loop |
//! | `runner-engine` | one item with Polars (the only crate that compiles Polars) |
//! | `runner-backends` | storage, queues and fleets: local, and S3/SQS/EC2 |
//!
//! Data flows one way: spec → plan → queue → worker → engine → storage → callback →
//! orchestrator → Pipes.
//!
//! ```text
//! runner example generate --out /tmp/lake --days 1
//! runner run runner/examples/events/job.toml --root /tmp/lake --partition 2024-01-01
//! runner run job.toml --backend aws --config runner.toml --partition 2024-01-02
//! runner fleet gc --config runner.toml
//! ```
//!
//! It owns no planning, execution or backend logic of its own. A user's crate extends it with
//! functions and table operations of its own ([`extend`]): `Extensions::new()….main()`.

mod alloc;
pub mod checks;
pub mod cli;
pub mod commands;
pub mod config;
pub mod cost;
pub mod dagster;
pub mod dist;
pub mod example_data;
pub mod extend;
pub mod logging;
pub mod memory;
pub mod per_partition;
pub mod progress;
pub mod settings;

pub use extend::{Extensions, Main, Param, ParamKind, ParamValue, Params};
/// The Polars the engine is built with (0.55.2, with the engine's features), for the functions
/// a binary brings.
pub use runner_engine::polars;
