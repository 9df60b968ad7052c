//! Run progress on stderr: a redrawn line on a terminal, plain lines every few seconds
//! otherwise (and those lines reach Dagster as logs when the run is launched through Pipes).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use runner_core::observer::Observer;

/// Progress on stderr: a redrawn line on a terminal, a line every few seconds otherwise.
pub struct TerminalObserver {
    tty: bool,
    last: Mutex<Instant>,
}

impl Default for TerminalObserver {
    fn default() -> Self {
        Self { tty: std::io::stderr().is_terminal(), last: Mutex::new(Instant::now() - Duration::from_secs(60)) }
    }
}

fn bar(done: usize, total: usize) -> String {
    let width = 30;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

impl Observer for TerminalObserver {
    fn step_started(&self, step: &str, index: usize, steps: usize, items: usize, already_committed: usize) {
        if self.tty {
            eprintln!();
        }
        tracing::info!("step {index}/{steps} {step}: {items} items ({already_committed} already committed)");
    }

    fn progress(&self, step: &str, index: usize, steps: usize, done: usize, total: usize) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2Kstep {index}/{steps} {step} {} {done}/{total} items", bar(done, total));
            let _ = err.flush();
        } else if last.elapsed() >= Duration::from_secs(5) || done == total {
            *last = Instant::now();
            tracing::info!("step {index}/{steps}: {done}/{total} items");
        }
    }

    fn item_failed(&self, step: &str, label: &str, attempt: u32, error: &str, will_retry: bool) {
        let then = if will_retry { "will retry" } else { "giving up" };
        tracing::warn!("{step}: {label} failed on attempt {attempt} ({then}): {error}");
    }

    fn item_interrupted(&self, step: &str, label: &str, reason: &str) {
        tracing::warn!("{step}: {label} handed back by its worker: {reason}");
    }

    fn step_finished(&self, step: &str, index: usize, steps: usize, seconds: f64) {
        if self.tty {
            eprintln!();
        }
        tracing::info!("step {index}/{steps} {step} finished in {seconds:.1}s");
    }
}
