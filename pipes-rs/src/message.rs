//! The wire messages. Each method has an exact parameter key set: the orchestrator calls
//! `handler(**params)`, so a missing or extra key kills its reader. Absent values are sent as
//! `null`, never omitted.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::PipesError;
use crate::metadata::Metadata;

/// The protocol version sent in every envelope.
pub const PROTOCOL_VERSION: &str = "0.1";

/// `log` levels. There is no TRACE: the orchestrator dies on unknown levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    /// DEBUG
    Debug,
    /// INFO
    Info,
    /// WARNING
    Warning,
    /// ERROR
    Error,
    /// CRITICAL
    Critical,
}

impl LogLevel {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
            Self::Critical => "CRITICAL",
        }
    }
}

impl FromStr for LogLevel {
    type Err = PipesError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "DEBUG" => Ok(Self::Debug),
            "INFO" => Ok(Self::Info),
            "WARNING" | "WARN" => Ok(Self::Warning),
            "ERROR" => Ok(Self::Error),
            "CRITICAL" => Ok(Self::Critical),
            _ => Err(PipesError::Parse {
                what: "log level",
                value: s.to_string(),
                expected: "DEBUG, INFO, WARNING, ERROR, CRITICAL",
            }),
        }
    }
}

/// Asset check severity. Only these two exist; anything else kills the orchestrator's reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// A failed check is a warning.
    Warn,
    /// A failed check is an error (the default, as in Dagster).
    #[default]
    Error,
}

impl FromStr for Severity {
    type Err = PipesError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "WARN" => Ok(Self::Warn),
            "ERROR" => Ok(Self::Error),
            _ => Err(PipesError::Parse { what: "asset check severity", value: s.to_string(), expected: "WARN, ERROR" }),
        }
    }
}

/// The stream a `log_external_stream` chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl FromStr for Stream {
    type Err = PipesError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stdout" => Ok(Self::Stdout),
            "stderr" => Ok(Self::Stderr),
            _ => Err(PipesError::Parse { what: "stream", value: s.to_string(), expected: "stdout, stderr" }),
        }
    }
}

/// An exception as Dagster shows it: all five keys are always sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExceptionInfo {
    /// The bare error message.
    pub message: String,
    /// Stack frames, innermost last.
    pub stack: Vec<String>,
    /// The error's type name.
    pub name: Option<String>,
    /// The error this one was caused by (`source()`).
    pub cause: Option<Box<ExceptionInfo>>,
    /// The error being handled when this one happened (Rust has no such implicit chain).
    pub context: Option<Box<ExceptionInfo>>,
}

impl ExceptionInfo {
    /// An exception with a message and a name, no stack and no chain.
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self { message: message.into(), stack: Vec::new(), name: Some(name.into()), cause: None, context: None }
    }

    /// Builds the exception from an error and its `source()` chain. `name` names the top error;
    /// causes are named from their `Debug` form when it starts with an `...Error` type name.
    pub fn from_error(name: impl Into<String>, error: &(dyn std::error::Error + 'static)) -> Self {
        let mut info = Self::new(name, error.to_string());
        info.cause = error.source().map(|src| Box::new(Self::from_error(guess_error_name(src), src)));
        info
    }

    /// Sets the stack frames.
    #[must_use]
    pub fn with_stack(mut self, stack: Vec<String>) -> Self {
        self.stack = stack;
        self
    }
}

pub(crate) fn guess_error_name(error: &(dyn std::error::Error + 'static)) -> String {
    let debug = format!("{error:?}");
    let ident: String = debug.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
    let last = ident.rsplit("::").next().unwrap_or_default();
    if last.ends_with("Error") { last.to_string() } else { "Error".to_string() }
}

impl fmt::Display for ExceptionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name.as_deref().unwrap_or("Error"), self.message)?;
        let mut cause = self.cause.as_deref();
        while let Some(c) = cause {
            write!(f, "\n  caused by: {}", c.message)?;
            cause = c.cause.as_deref();
        }
        Ok(())
    }
}

/// One message, borrowing what it carries. Variants are named after the protocol's methods.
#[derive(Debug, Clone, Copy)]
#[allow(clippy::enum_variant_names)]
pub(crate) enum Message<'a> {
    Opened {
        extras: &'a Map<String, Value>,
    },
    Closed {
        exception: Option<&'a ExceptionInfo>,
    },
    Log {
        message: &'a str,
        level: LogLevel,
    },
    ReportAssetMaterialization {
        asset_key: &'a str,
        data_version: Option<&'a str>,
        metadata: Option<&'a Metadata>,
    },
    ReportAssetCheck {
        asset_key: &'a str,
        check_name: &'a str,
        passed: bool,
        metadata: Option<&'a Metadata>,
        severity: Severity,
    },
    ReportCustomMessage {
        payload: &'a Value,
    },
    LogExternalStream {
        stream: Stream,
        text: &'a str,
        extras: &'a Map<String, Value>,
    },
}

impl Message<'_> {
    pub(crate) fn method(&self) -> &'static str {
        match self {
            Self::Opened { .. } => "opened",
            Self::Closed { .. } => "closed",
            Self::Log { .. } => "log",
            Self::ReportAssetMaterialization { .. } => "report_asset_materialization",
            Self::ReportAssetCheck { .. } => "report_asset_check",
            Self::ReportCustomMessage { .. } => "report_custom_message",
            Self::LogExternalStream { .. } => "log_external_stream",
        }
    }

    /// Appends the envelope's JSON and a newline to `buf`.
    pub(crate) fn write_line(&self, buf: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(&mut *buf, &Envelope(self))?;
        buf.push(b'\n');
        Ok(())
    }
}

struct Envelope<'m, 'a>(&'m Message<'a>);

impl Serialize for Envelope<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Envelope", 3)?;
        s.serialize_field("__dagster_pipes_version", PROTOCOL_VERSION)?;
        s.serialize_field("method", self.0.method())?;
        s.serialize_field("params", &Params(self.0))?;
        s.end()
    }
}

struct Params<'m, 'a>(&'m Message<'a>);

impl Serialize for Params<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = serializer.serialize_map(None)?;
        match *self.0 {
            Message::Opened { extras } => m.serialize_entry("extras", extras)?,
            Message::Closed { exception } => {
                if let Some(e) = exception {
                    m.serialize_entry("exception", e)?;
                }
            }
            Message::Log { message, level } => {
                m.serialize_entry("message", message)?;
                m.serialize_entry("level", &level)?;
            }
            Message::ReportAssetMaterialization { asset_key, data_version, metadata } => {
                m.serialize_entry("asset_key", asset_key)?;
                m.serialize_entry("data_version", &data_version)?;
                m.serialize_entry("metadata", &metadata)?;
            }
            Message::ReportAssetCheck { asset_key, check_name, passed, metadata, severity } => {
                m.serialize_entry("asset_key", asset_key)?;
                m.serialize_entry("check_name", check_name)?;
                m.serialize_entry("passed", &passed)?;
                m.serialize_entry("metadata", &metadata)?;
                m.serialize_entry("severity", &severity)?;
            }
            Message::ReportCustomMessage { payload } => m.serialize_entry("payload", payload)?,
            Message::LogExternalStream { stream, text, extras } => {
                m.serialize_entry("stream", &stream)?;
                m.serialize_entry("text", text)?;
                m.serialize_entry("extras", extras)?;
            }
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params_keys(msg: Message<'_>) -> Vec<String> {
        let mut buf = Vec::new();
        msg.write_line(&mut buf).unwrap();
        assert_eq!(buf.last(), Some(&b'\n'));
        assert_eq!(buf.iter().filter(|b| **b == b'\n').count(), 1, "one line per message");
        let v: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["__dagster_pipes_version"], PROTOCOL_VERSION);
        v["params"].as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn exact_key_sets_with_nulls() {
        let extras = Map::new();
        assert_eq!(params_keys(Message::Opened { extras: &extras }), ["extras"]);
        assert!(params_keys(Message::Closed { exception: None }).is_empty());
        assert_eq!(
            params_keys(Message::ReportAssetMaterialization { asset_key: "a", data_version: None, metadata: None }),
            ["asset_key", "data_version", "metadata"]
        );
        assert_eq!(
            params_keys(Message::ReportAssetCheck {
                asset_key: "a",
                check_name: "c",
                passed: true,
                metadata: None,
                severity: Severity::Warn
            }),
            ["asset_key", "check_name", "passed", "metadata", "severity"]
        );
        let e = ExceptionInfo::new("E", "boom");
        let mut buf = Vec::new();
        Message::Closed { exception: Some(&e) }.write_line(&mut buf).unwrap();
        let v: Value = serde_json::from_slice(&buf).unwrap();
        let keys: Vec<_> = v["params"]["exception"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["message", "stack", "name", "cause", "context"]);
    }

    #[test]
    fn exception_chain_comes_from_source() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer failed")]
        struct Outer(#[source] std::num::ParseIntError);
        let inner = "x".parse::<i32>().unwrap_err();
        let info = ExceptionInfo::from_error("Outer", &Outer(inner));
        assert_eq!(info.message, "outer failed");
        let cause = info.cause.as_ref().unwrap();
        assert_eq!(cause.name.as_deref(), Some("ParseIntError"));
        assert_eq!(cause.message, "invalid digit found in string");
        assert!(cause.cause.is_none());
    }

    #[test]
    fn levels_and_severities_parse_strictly() {
        assert_eq!("warn".parse::<LogLevel>().unwrap(), LogLevel::Warning);
        assert!("TRACE".parse::<LogLevel>().is_err());
        assert!("FATAL".parse::<Severity>().is_err());
        assert_eq!("WARN".parse::<Severity>().unwrap(), Severity::Warn);
    }
}
