//! Benchmark program: sends N `log` messages through whatever channel Dagster (or the bench
//! script) set up, then closes. Prints the time spent in the logging loop and in `close` as
//! JSON on stdout.

use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let ctx = match dagster_pipes::open_dagster_pipes() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let log = ctx.logger();
    let start = Instant::now();
    for i in 0..n {
        if let Err(e) = log.info(format!("processed item {i} of the batch")) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let loop_seconds = start.elapsed().as_secs_f64();
    let close_start = Instant::now();
    if let Err(e) = ctx.close() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let close_seconds = close_start.elapsed().as_secs_f64();
    println!(r#"{{"messages": {n}, "loop_seconds": {loop_seconds}, "close_seconds": {close_seconds}}}"#);
    ExitCode::SUCCESS
}
