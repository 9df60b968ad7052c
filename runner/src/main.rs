//! The `runner` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// jemalloc returns freed memory to the OS in the background, as the Polars wheel configures it.
#[cfg(not(target_env = "msvc"))]
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:500,muzzy_decay_ms:1000\0";

fn main() -> ExitCode {
    let cli = runner::cli::Cli::parse();
    runner::commands::main(cli)
}
