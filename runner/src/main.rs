//! The `runner` binary: the runner with no functions of its own.

use std::process::ExitCode;

use runner::{Extensions, Main};

fn main() -> ExitCode {
    Extensions::new().main()
}
