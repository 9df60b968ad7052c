//! The runner as a library you extend: a user's crate depends on `runner`, registers its own
//! functions and table operations, and hands over to the runner's command line, so its binary
//! has every command of `runner` (run, worker, validate, describe, dist, fleet gc, …) and its
//! workers run its functions.
//!
//! ```no_run
//! use runner::{Extensions, Main, ParamKind, Param};
//! use runner::polars::prelude::*;
//!
//! fn main() -> std::process::ExitCode {
//!     Extensions::new()
//!         .text_function("host", "1", |url| url.split('/').nth(2).map(str::to_string))
//!         .table_op("drop_nulls", "1", vec![Param::required("column", ParamKind::Text)], |frame, p| {
//!             let column = p.text("column").unwrap_or_default().to_string();
//!             Ok(frame.filter(col(column.as_str()).is_not_null()))
//!         })
//!         .main()
//! }
//! ```
//!
//! The binary re-runs itself for each item (`exec-item`) and on each worker, so the functions
//! registered in `main` are there wherever an item runs. `runner/EXTENDING.md` walks through it.

use std::process::ExitCode;

use clap::Parser;

pub use runner_engine::extensions::{ColumnFn, Extensions, TableOpFn};
pub use runner_spec::extensions::{Param, ParamKind, ParamValue, Params};

/// Hands a binary over to the runner's command line, with its own functions installed.
pub trait Main {
    /// Installs what the binary brings, parses the command line and runs it.
    fn main(self) -> ExitCode;
}

impl Main for Extensions {
    fn main(self) -> ExitCode {
        crate::alloc::configured();
        runner_engine::extensions::install(self);
        crate::commands::main(crate::cli::Cli::parse())
    }
}
