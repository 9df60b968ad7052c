//! A `tracing` layer that forwards events to Dagster as Pipes `log` messages, so a program
//! instrumented with `tracing` shows up in the Dagster UI with no extra code.

use std::fmt::Write as _;
use std::sync::Weak;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::message::LogLevel;
use crate::session::{self, Inner, PipesContext};

/// Forwards events at or above a level. Holds the session weakly: it never keeps a session
/// open, and events after `closed` are dropped.
pub struct PipesLayer {
    session: Weak<Inner>,
    max_level: Level,
    with_target: bool,
}

impl PipesLayer {
    /// Forwards INFO and above.
    pub fn new(ctx: &PipesContext) -> Self {
        Self { session: ctx.downgrade(), max_level: Level::INFO, with_target: false }
    }

    /// Forwards events at `level` and above (TRACE is sent as DEBUG: Pipes has no TRACE).
    #[must_use]
    pub fn with_max_level(mut self, level: Level) -> Self {
        self.max_level = level;
        self
    }

    /// Prefixes each message with the event's target (module path).
    #[must_use]
    pub fn with_target(mut self, yes: bool) -> Self {
        self.with_target = yes;
        self
    }
}

/// Maps a `tracing` level onto the five Pipes levels.
pub fn pipes_level(level: &Level) -> LogLevel {
    match *level {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warning,
        Level::INFO => LogLevel::Info,
        _ => LogLevel::Debug,
    }
}

#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for PipesLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        // `Level` orders more verbose as greater.
        if *meta.level() > self.max_level || session::in_pipes() {
            return;
        }
        let Some(ctx) = session::upgrade(&self.session) else {
            return;
        };
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        let mut text = String::new();
        if self.with_target {
            let _ = write!(text, "{}: ", meta.target());
        }
        text.push_str(&visitor.message);
        text.push_str(&visitor.fields);
        // After `closed` the session refuses writes; an event then has nowhere to go.
        let _ = ctx.log(pipes_level(meta.level()), text);
    }
}
