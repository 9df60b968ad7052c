//! Dispatch: one function per command, each in its own module. This module only starts the
//! async runtime, routes the command, and turns an error into a message and a failing exit.

mod config_show;
mod dist;
mod example;
mod fleet_gc;
mod run;
mod setup;
mod validate;
mod worker;

use std::process::ExitCode;

use crate::cli::{Cli, Command, ConfigCommand, DistCommand, FleetCommand};

/// Runs the command line.
pub fn main(cli: Cli) -> ExitCode {
    // Every command: a retired variable still set would be silently ignored otherwise.
    if let Err(e) = crate::settings::check_retired() {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Worker(args) => worker::worker(args).await,
            Command::ExecItem(args) => worker::exec_item(&args).await,
            Command::Fleet { command: FleetCommand::Gc { config, state, backend } } => {
                fleet_gc::gc(config.as_deref(), state, backend).await
            }
            Command::Dist { command: DistCommand::Check { binary, max_glibc } } => dist::check(&binary, &max_glibc),
            Command::Dist { command: DistCommand::Upload { binary, to, max_glibc } } => {
                dist::upload(&binary, &to, &max_glibc).await
            }
            Command::Validate { job } => validate::validate(&job),
            Command::Describe { job, out } => validate::describe(&job, out.as_deref()),
            Command::Config { command: ConfigCommand::Show(args) } => config_show::show(&args),
            Command::Example { command } => example::example(command),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
