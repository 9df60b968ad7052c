//! Names that identify things, as types: a step, an output of a step, a Dagster asset, a run, a
//! work item. Each is a string on the wire (serde-transparent), so formats do not change; in
//! code the type says which name it is.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        // Debug prints the quoted name, as messages that say `step "clean"` always have.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

name_type!(
    /// A step of a job (unique within the job; an identifier).
    StepName
);
name_type!(
    /// The Dagster asset an output materializes (`user_daily_metrics`, or a path `a/b`).
    AssetKey
);
name_type!(
    /// Identifies a run of the orchestrator.
    RunId
);
name_type!(
    /// Identifies a work item: a hash of everything that decides its output. Also names its
    /// output files and its manifest.
    WorkItemId
);

/// One output of one step, written `step.output` (as checks name what they check).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OutputRef {
    /// The step.
    pub step: StepName,
    /// The output's name within the step.
    pub output: String,
}

impl OutputRef {
    /// The output `output` of `step`.
    pub fn new(step: impl Into<StepName>, output: impl Into<String>) -> Self {
        Self { step: step.into(), output: output.into() }
    }
}

impl FromStr for OutputRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.split_once('.') {
            Some((step, output)) if !step.is_empty() && !output.is_empty() && !output.contains('.') => {
                Ok(Self::new(step, output))
            }
            _ => Err(format!("{text:?} must name an output as `step.output`")),
        }
    }
}

impl TryFrom<String> for OutputRef {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<OutputRef> for String {
    fn from(r: OutputRef) -> String {
        r.to_string()
    }
}

impl fmt::Debug for OutputRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string(), f)
    }
}

impl fmt::Display for OutputRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.step, self.output)
    }
}

/// How much a failed check matters, as Dagster grades it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// The check fails the asset (the default).
    #[default]
    Error,
    /// The check only warns.
    Warn,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "ERROR",
            Self::Warn => "WARN",
        })
    }
}

/// Where a run's queues, fleet and workers are: local processes with a SQLite queue, or AWS
/// (SQS and an EC2 spot fleet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Local worker processes and a SQLite queue.
    #[default]
    Local,
    /// SQS queues and an EC2 spot fleet.
    Aws,
}

impl FromStr for BackendKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "local" => Ok(Self::Local),
            "aws" => Ok(Self::Aws),
            other => Err(format!("unknown backend {other:?}: expected local or aws")),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Local => "local",
            Self::Aws => "aws",
        })
    }
}

/// A stable 64-bit FNV-1a hash, as 16 hex digits (item ids must not change across builds).
pub fn stable_hash(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_refs_parse_and_print_as_step_dot_output() {
        let r: OutputRef = "clean.events".parse().unwrap();
        assert_eq!((r.step.as_str(), r.output.as_str()), ("clean", "events"));
        assert_eq!(r.to_string(), "clean.events");
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"clean.events\"");
        for bad in ["clean", ".x", "x.", "a.b.c"] {
            assert!(bad.parse::<OutputRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn severities_and_backends_use_their_written_names() {
        assert_eq!(serde_json::to_string(&Severity::Warn).unwrap(), "\"WARN\"");
        assert_eq!(serde_json::from_str::<Severity>("\"ERROR\"").unwrap(), Severity::Error);
        assert!(serde_json::from_str::<Severity>("\"warn\"").is_err());
        assert_eq!("aws".parse::<BackendKind>().unwrap(), BackendKind::Aws);
        assert_eq!(BackendKind::Local.to_string(), "local");
        assert!("sqs".parse::<BackendKind>().is_err());
    }
}
