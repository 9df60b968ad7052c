//! The Pipes session: one open channel, the context, and the rules the reference enforces
//! (asset keys, one materialization per asset, nothing after `closed`, exactly one `opened` and
//! one `closed`).

use std::cell::Cell;
use std::collections::HashSet;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::bootstrap::{EnvVarParamsLoader, ParamsLoader};
use crate::context::ContextData;
use crate::context_loader::ContextSource;
use crate::error::{PipesError, Result};
use crate::message::{ExceptionInfo, LogLevel, Message, Severity, Stream};
use crate::metadata::Metadata;
use crate::writer::{MessageSink, MessagesParams, NullSink};
use crate::{S3Options, asset_key};

thread_local! {
    // Set on threads that belong to the Pipes machinery itself (the S3 uploader, the stdio
    // forwarder) and while a message is being written, so the tracing layer never feeds the
    // channel's own diagnostics back into the channel.
    static IN_PIPES: Cell<bool> = const { Cell::new(false) };
}

pub(crate) fn mark_pipes_thread() {
    IN_PIPES.with(|f| f.set(true));
}

pub(crate) fn in_pipes() -> bool {
    IN_PIPES.with(Cell::get)
}

/// Opens a Pipes session with chosen loaders and options.
pub struct PipesBuilder {
    params: Box<dyn ParamsLoader>,
    s3: S3Options,
    warn_when_unorchestrated: bool,
}

impl Default for PipesBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PipesBuilder {
    /// Reads the bootstrap values from the environment (the orchestrator's default).
    pub fn new() -> Self {
        Self { params: Box::new(EnvVarParamsLoader), s3: S3Options::default(), warn_when_unorchestrated: true }
    }

    /// Reads the bootstrap values from somewhere else (CLI args, a map).
    #[must_use]
    pub fn params_loader(mut self, loader: impl ParamsLoader + 'static) -> Self {
        self.params = Box::new(loader);
        self
    }

    /// Options for the S3 context loader and message writer.
    #[must_use]
    pub fn s3_options(mut self, options: S3Options) -> Self {
        self.s3 = options;
        self
    }

    /// Whether to print the one-line warning when the process was not launched by Dagster.
    #[must_use]
    pub fn warn_when_unorchestrated(mut self, warn: bool) -> Self {
        self.warn_when_unorchestrated = warn;
        self
    }

    /// Opens the session: loads the context, opens the channel and sends `opened`.
    ///
    /// Not launched by Dagster → a no-op session and one warning. Launched by Dagster but the
    /// context or channel can't be opened → an error (never a silent fallback).
    pub fn open(self) -> Result<PipesContext> {
        if !self.params.is_dagster_pipes_process() {
            if self.warn_when_unorchestrated {
                eprintln!(
                    "warning: this process was not launched by Dagster Pipes \
                     ({} is not set); Pipes calls will do nothing",
                    crate::bootstrap::CONTEXT_ENV_VAR
                );
            }
            return Ok(PipesContext::from_parts(ContextData::unorchestrated(), Box::new(NullSink), false, false));
        }
        let context_params = self.params.load_context_params()?;
        let messages_params = self.params.load_messages_params()?;
        let data = ContextSource::from_params(&context_params)?.load(&self.s3)?;
        let messages = MessagesParams::from_params(&messages_params)?;
        let sink = messages.open(&self.s3)?;
        let capture = messages.include_stdio_in_messages && sink.allows_stdio_capture();
        let ctx = PipesContext::from_parts(data, sink, true, capture);
        ctx.send_opened()?;
        Ok(ctx)
    }
}

/// Opens a session from the environment, as the orchestrator launches processes by default.
pub fn open_dagster_pipes() -> Result<PipesContext> {
    PipesBuilder::new().open()
}

/// A handle to the Pipes session. Cheap to clone and safe to share between threads.
///
/// It dereferences to [`ContextData`] for the context accessors (`partition_key()`,
/// `asset_key()`, `get_extra()`, ...).
#[derive(Clone)]
pub struct PipesContext {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PipesContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipesContext")
            .field("orchestrated", &self.inner.orchestrated)
            .field("data", &self.inner.data)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    data: ContextData,
    orchestrated: bool,
    state: Mutex<State>,
}

struct State {
    sink: Box<dyn MessageSink>,
    line: Vec<u8>,
    opened: bool,
    closed: bool,
    materialized: HashSet<String>,
    capture: Option<crate::stdio_capture::StdioCapture>,
}

impl Deref for PipesContext {
    type Target = ContextData;
    fn deref(&self) -> &ContextData {
        &self.inner.data
    }
}

/// The builder methods a materialization and a check share: which asset, and metadata.
macro_rules! asset_and_metadata {
    () => {
        /// Names the asset (escaped `/`-joined key). Needed when the step has several assets.
        #[must_use]
        pub fn asset_key(mut self, key: impl Into<String>) -> Self {
            self.asset_key = Some(key.into());
            self
        }

        /// Sets all metadata at once.
        #[must_use]
        pub fn metadata(mut self, metadata: Metadata) -> Self {
            self.metadata = Some(metadata);
            self
        }

        /// Adds one metadata entry.
        #[must_use]
        pub fn with(mut self, key: impl Into<String>, value: impl Into<crate::MetadataValue>) -> Self {
            self.metadata.get_or_insert_with(Metadata::new).insert(key, value);
            self
        }
    };
}

/// A materialization to report. Unset fields are sent as `null`.
#[derive(Debug, Clone, Default)]
pub struct AssetMaterialization {
    asset_key: Option<String>,
    data_version: Option<String>,
    metadata: Option<Metadata>,
}

impl AssetMaterialization {
    /// A materialization of the step's only asset.
    pub fn new() -> Self {
        Self::default()
    }

    asset_and_metadata!();

    /// Sets the data version.
    #[must_use]
    pub fn data_version(mut self, version: impl Into<String>) -> Self {
        self.data_version = Some(version.into());
        self
    }
}

/// An asset check result to report. The check must be declared on the asset in Dagster.
#[derive(Debug, Clone)]
pub struct AssetCheck {
    check_name: String,
    passed: bool,
    asset_key: Option<String>,
    severity: Severity,
    metadata: Option<Metadata>,
}

impl AssetCheck {
    /// A result of `check_name` on the step's only asset, with severity ERROR.
    pub fn new(check_name: impl Into<String>, passed: bool) -> Self {
        Self { check_name: check_name.into(), passed, asset_key: None, severity: Severity::Error, metadata: None }
    }

    asset_and_metadata!();

    /// Sets the severity.
    #[must_use]
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
}

impl PipesContext {
    pub(crate) fn from_parts(
        data: ContextData,
        sink: Box<dyn MessageSink>,
        orchestrated: bool,
        capture_stdio: bool,
    ) -> Self {
        let ctx = Self {
            inner: Arc::new(Inner {
                data,
                orchestrated,
                state: Mutex::new(State {
                    sink,
                    line: Vec::with_capacity(256),
                    opened: false,
                    closed: false,
                    materialized: HashSet::new(),
                    capture: None,
                }),
            }),
        };
        if capture_stdio {
            let weak = Arc::downgrade(&ctx.inner);
            match crate::stdio_capture::StdioCapture::start(move |stream, text| {
                if let Some(inner) = weak.upgrade() {
                    let extras = Map::new();
                    let _ = inner.send(Message::LogExternalStream { stream, text: &text, extras: &extras });
                }
            }) {
                Ok(capture) => ctx.inner.lock().capture = Some(capture),
                Err(e) => eprintln!("warning: could not capture stdout/stderr for Dagster: {e}"),
            }
        }
        ctx
    }

    /// A session that writes into any sink, for tests and custom channels.
    pub fn with_sink(data: ContextData, sink: Box<dyn MessageSink>) -> Result<Self> {
        let ctx = Self::from_parts(data, sink, true, false);
        ctx.send_opened()?;
        Ok(ctx)
    }

    fn send_opened(&self) -> Result<()> {
        let mut state = self.inner.lock();
        if state.opened {
            return Ok(());
        }
        state.opened = true;
        let extras = &self.inner.data.extras;
        Inner::write(&mut state, Message::Opened { extras })
    }

    /// The context data.
    pub fn data(&self) -> &ContextData {
        &self.inner.data
    }

    /// True when the process was launched by Dagster; false in the no-op mode.
    pub fn is_orchestrated(&self) -> bool {
        self.inner.orchestrated
    }

    /// True once `closed` has been sent.
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Sends a `log` message.
    pub fn log(&self, level: LogLevel, message: impl AsRef<str>) -> Result<()> {
        self.inner.send(Message::Log { message: message.as_ref(), level })
    }

    /// Level-named shortcuts for [`PipesContext::log`].
    pub fn logger(&self) -> Logger<'_> {
        Logger { ctx: self }
    }

    /// Reports a materialization. The asset key may be omitted only when the step has exactly
    /// one asset; each asset may be materialized once per session.
    pub fn report_asset_materialization(&self, m: AssetMaterialization) -> Result<()> {
        let key = self.resolve_asset_key(m.asset_key.as_deref())?;
        if let Some(md) = &m.metadata {
            md.validate()?;
        }
        let mut state = self.inner.lock();
        Inner::check_open(&state, "report_asset_materialization")?;
        if state.materialized.contains(&key) {
            return Err(PipesError::DuplicateMaterialization { key });
        }
        Inner::write(
            &mut state,
            Message::ReportAssetMaterialization {
                asset_key: &key,
                data_version: m.data_version.as_deref(),
                metadata: m.metadata.as_ref(),
            },
        )?;
        state.materialized.insert(key);
        Ok(())
    }

    /// Reports an asset check result.
    pub fn report_asset_check(&self, check: AssetCheck) -> Result<()> {
        let key = self.resolve_asset_key(check.asset_key.as_deref())?;
        if check.check_name.is_empty() {
            return Err(PipesError::InvalidValue {
                what: "asset check".into(),
                detail: "the check name is empty".into(),
            });
        }
        if let Some(md) = &check.metadata {
            md.validate()?;
        }
        self.inner.send(Message::ReportAssetCheck {
            asset_key: &key,
            check_name: &check.check_name,
            passed: check.passed,
            metadata: check.metadata.as_ref(),
            severity: check.severity,
        })
    }

    /// Reports any JSON-serializable payload; the orchestrator collects these.
    pub fn report_custom_message(&self, payload: impl Serialize) -> Result<()> {
        let payload = serde_json::to_value(payload)
            .map_err(|e| PipesError::InvalidValue { what: "custom message payload".into(), detail: e.to_string() })?;
        self.inner.send(Message::ReportCustomMessage { payload: &payload })
    }

    /// Sends text that the orchestrator writes verbatim to its own stdout or stderr.
    pub fn log_external_stream(
        &self,
        stream: Stream,
        text: impl AsRef<str>,
        extras: Option<&Map<String, Value>>,
    ) -> Result<()> {
        let empty = Map::new();
        self.inner.send(Message::LogExternalStream { stream, text: text.as_ref(), extras: extras.unwrap_or(&empty) })
    }

    /// Sends `closed` and releases the channel. Idempotent.
    pub fn close(&self) -> Result<()> {
        self.inner.close(None)
    }

    /// Sends `closed` carrying an exception, so Dagster shows why the process failed.
    /// Idempotent: a session already closed stays as it was.
    pub fn close_with_exception(&self, exception: &ExceptionInfo) -> Result<()> {
        self.inner.close(Some(exception))
    }

    pub(crate) fn downgrade(&self) -> Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    fn resolve_asset_key(&self, given: Option<&str>) -> Result<String> {
        let keys = self.inner.data.asset_keys.as_deref();
        match (given, keys) {
            (Some(key), Some(keys)) => {
                asset_key::validate(key)?;
                if keys.iter().any(|k| k == key) {
                    Ok(key.to_string())
                } else {
                    Err(PipesError::UnknownAssetKey { key: key.to_string(), allowed: keys.to_vec() })
                }
            }
            (Some(key), None) => {
                asset_key::validate(key)?;
                Ok(key.to_string())
            }
            (None, Some([one])) => Ok(one.clone()),
            (None, Some(keys)) => Err(PipesError::AmbiguousAssetKey { count: keys.len(), keys: keys.to_vec() }),
            (None, None) if !self.inner.orchestrated => Ok("unorchestrated".into()),
            (None, None) => Err(PipesError::NoAssetKey),
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent (flags and a buffer), so
        // a poisoned lock is still usable; losing the channel would hide the panic itself.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_open(state: &State, method: &'static str) -> Result<()> {
        if state.closed { Err(PipesError::Closed { method }) } else { Ok(()) }
    }

    fn write(state: &mut State, message: Message<'_>) -> Result<()> {
        let State { sink, line, .. } = state;
        line.clear();
        message.write_line(line).map_err(|e| PipesError::InvalidValue {
            what: format!("`{}` message", message.method()),
            detail: e.to_string(),
        })?;
        let was = IN_PIPES.with(|f| f.replace(true));
        let is_log = matches!(message, Message::Log { .. } | Message::LogExternalStream { .. });
        let result =
            sink.send(line).and_then(|()| if is_log { Ok(()) } else { sink.flush() }).map_err(PipesError::Write);
        IN_PIPES.with(|f| f.set(was));
        result
    }

    pub(crate) fn send(&self, message: Message<'_>) -> Result<()> {
        let mut state = self.lock();
        Self::check_open(&state, message.method())?;
        Self::write(&mut state, message)
    }

    fn close(&self, exception: Option<&ExceptionInfo>) -> Result<()> {
        // The forwarder sends its last chunks through `send`, so stop it before taking the
        // lock for `closed`.
        let capture = {
            let mut state = self.lock();
            if state.closed {
                return Ok(());
            }
            state.capture.take()
        };
        if let Some(capture) = capture {
            capture.stop();
        }
        let mut state = self.lock();
        if state.closed {
            return Ok(());
        }
        let sent = Self::write(&mut state, Message::Closed { exception });
        state.closed = true;
        let finished = state.sink.finish();
        sent.and(finished)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Like leaving Python's `with open_dagster_pipes()` block: close once, on the way out.
        if self.lock().closed {
            return;
        }
        let result = if std::thread::panicking() {
            self.close(Some(&ExceptionInfo::new(
                "panic",
                "the process panicked before closing its Dagster Pipes session",
            )))
        } else {
            self.close(None)
        };
        if let Err(e) = result {
            eprintln!("error: closing the Dagster Pipes session failed: {e}");
        }
    }
}

/// Level-named logging shortcuts.
#[derive(Debug, Clone, Copy)]
pub struct Logger<'a> {
    ctx: &'a PipesContext,
}

impl Logger<'_> {
    /// DEBUG
    pub fn debug(&self, message: impl AsRef<str>) -> Result<()> {
        self.ctx.log(LogLevel::Debug, message)
    }
    /// INFO
    pub fn info(&self, message: impl AsRef<str>) -> Result<()> {
        self.ctx.log(LogLevel::Info, message)
    }
    /// WARNING
    pub fn warning(&self, message: impl AsRef<str>) -> Result<()> {
        self.ctx.log(LogLevel::Warning, message)
    }
    /// ERROR
    pub fn error(&self, message: impl AsRef<str>) -> Result<()> {
        self.ctx.log(LogLevel::Error, message)
    }
    /// CRITICAL
    pub fn critical(&self, message: impl AsRef<str>) -> Result<()> {
        self.ctx.log(LogLevel::Critical, message)
    }
}

pub(crate) fn upgrade(weak: &Weak<Inner>) -> Option<PipesContext> {
    weak.upgrade().map(|inner| PipesContext { inner })
}
