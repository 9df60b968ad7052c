//! # runner-core — plans, queues and runs a job's work items
//!
//! The part of the runner between the job spec and the backends. It owns:
//!
//! - the wire types ([`wire`]): work items, callbacks, manifests;
//! - planning ([`plan`]): a step and a partition become work items, by listing inputs;
//! - run state ([`run_state`]): run records, the manifest layout, committed items, pruning;
//! - the orchestrator ([`orchestrator`]): for each step, feed the queue ([`feed`]), launch a
//!   fleet, collect callbacks, and report progress to an [`observer::Observer`];
//! - summaries ([`summary`]): what each step and the run did;
//! - the worker ([`worker`]): the loop that takes items from the queue, runs each in its own
//!   process ([`worker::child`]), and executes it there ([`worker::exec`]) with the engine.
//!
//! It does not parse command lines, read configuration files or speak Dagster Pipes: the
//! `runner` binary does, and hands this crate a [`orchestrator::RunOptions`] and the backends.
//!
//! ```no_run
//! use runner_core::orchestrator::{Backends, LiveResources, RunOptions, run_job};
//! use runner_core::observer::Observer;
//!
//! # async fn demo(spec: &runner_spec::JobSpec, text: &str, options: &RunOptions, backends: &Backends) {
//! struct Quiet;
//! impl Observer for Quiet {}
//! let summary = run_job(spec, text, options, backends, &Quiet, &LiveResources::default()).await;
//! # }
//! ```

pub mod feed;
pub mod key_claims;
pub mod observer;
pub mod orchestrator;
pub mod plan;
pub mod run_state;
pub mod summary;
pub mod wire;
pub mod worker;
