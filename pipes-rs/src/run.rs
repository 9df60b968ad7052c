//! The entry point that runs the user's code inside a session: an `Err` or a panic becomes
//! `closed` with the exception, and the process exit code says the step failed.

use std::any::Any;
use std::backtrace::Backtrace;
use std::cell::RefCell;
use std::error::Error;
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::Once;

use crate::message::ExceptionInfo;
use crate::session::{PipesBuilder, PipesContext};

type BoxError = Box<dyn Error + Send + Sync + 'static>;

const MAX_FRAMES: usize = 64;

thread_local! {
    static LAST_PANIC: RefCell<Option<(String, Vec<String>)>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Opens a session from the environment, runs `f`, and closes the session with the outcome.
///
/// Returns the exit code for `main`: success only when the session opened, `f` returned `Ok`
/// and `closed` was delivered.
///
/// ```no_run
/// use std::process::ExitCode;
/// fn main() -> ExitCode {
///     dagster_pipes::run(|ctx| {
///         ctx.logger().info("working")?;
///         Ok::<_, dagster_pipes::PipesError>(())
///     })
/// }
/// ```
pub fn run<F, E>(f: F) -> ExitCode
where
    F: FnOnce(&PipesContext) -> Result<(), E>,
    E: Into<BoxError>,
{
    run_with(PipesBuilder::new(), f)
}

/// [`run`] with a configured builder.
pub fn run_with<F, E>(builder: PipesBuilder, f: F) -> ExitCode
where
    F: FnOnce(&PipesContext) -> Result<(), E>,
    E: Into<BoxError>,
{
    let ctx = match builder.open() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("error: could not open the Dagster Pipes session: {}", chain(&e));
            return ExitCode::FAILURE;
        }
    };
    install_panic_hook();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| f(&ctx)));
    let exception = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            let name = type_name::<E>();
            let error: BoxError = e.into();
            let name = name.unwrap_or_else(|| crate::message::guess_error_name(&*error));
            eprintln!("error: {}", chain(&*error));
            Some(ExceptionInfo::from_error(name, &*error).with_stack(capture_stack()))
        }
        Err(payload) => {
            let message = panic_message(&*payload);
            let stack = LAST_PANIC.with(|p| p.borrow_mut().take()).map(|(_, stack)| stack).unwrap_or_default();
            Some(ExceptionInfo::new("panic", message).with_stack(stack))
        }
    };
    let closed = match &exception {
        Some(e) => ctx.close_with_exception(e),
        None => ctx.close(),
    };
    if let Err(e) = &closed {
        eprintln!("error: could not deliver `closed` to Dagster: {}", chain(e));
    }
    if exception.is_some() || closed.is_err() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Error message followed by its causes, for stderr.
fn chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

fn type_name<E>() -> Option<String> {
    let full = std::any::type_name::<E>();
    let base = full.split('<').next().unwrap_or(full);
    let last = base.rsplit("::").next().unwrap_or(base);
    // A boxed, type-erased error says nothing useful about its type.
    (last != "Box").then(|| last.to_string())
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

fn capture_stack() -> Vec<String> {
    frames(&Backtrace::force_capture().to_string())
}

/// Splits a rendered backtrace into one string per frame (its symbol line plus `at` line).
fn frames(rendered: &str) -> Vec<String> {
    let mut frames: Vec<String> = Vec::new();
    for line in rendered.lines() {
        let trimmed = line.trim_start();
        let starts_frame =
            trimmed.split_once(':').is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        match frames.last_mut() {
            Some(last) if !starts_frame => {
                last.push('\n');
                last.push_str(line);
            }
            _ => frames.push(line.to_string()),
        }
    }
    frames.truncate(MAX_FRAMES);
    frames
}

fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let stack = frames(&Backtrace::force_capture().to_string());
            let message = panic_message(info.payload());
            LAST_PANIC.with(|p| *p.borrow_mut() = Some((message, stack)));
            previous(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_short() {
        assert_eq!(type_name::<std::num::ParseIntError>().as_deref(), Some("ParseIntError"));
        assert_eq!(type_name::<BoxError>(), None);
    }

    #[test]
    fn frames_group_symbol_and_location() {
        let text = "   0: a::b\n             at src/x.rs:1:2\n   1: c::d\n";
        let f = frames(text);
        assert_eq!(f.len(), 2);
        assert!(f[0].contains("src/x.rs"));
    }
}
