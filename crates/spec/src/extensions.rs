//! What the binary brings beyond the built-ins: its user functions (called from SQL) and table
//! operations (named in an input's `ops`), each by name with its version, and for table
//! operations the typed parameters the job's TOML gives them.
//!
//! This is the Polars-free half: validation, `describe` and code versions need names, versions
//! and parameter types only; `runner-engine` holds the functions themselves and installs their
//! [`Signatures`] here when a binary built with `runner::Extensions` starts. The set is a fact of
//! the process (fixed before its first command), so it is kept once, for every spec parsed.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// A table operation's parameter type, as the TOML writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    /// A string.
    Text,
    /// An integer.
    Int,
    /// A number (an integer is taken too).
    Float,
    /// `true` or `false`.
    Bool,
    /// A list of strings.
    Texts,
}

impl ParamKind {
    fn fits(self, value: &ParamValue) -> bool {
        matches!(
            (self, value),
            (Self::Text, ParamValue::Text(_))
                | (Self::Int, ParamValue::Int(_))
                | (Self::Float, ParamValue::Float(_) | ParamValue::Int(_))
                | (Self::Bool, ParamValue::Bool(_))
                | (Self::Texts, ParamValue::Texts(_))
        )
    }

    fn words(self) -> &'static str {
        match self {
            Self::Text => "a string",
            Self::Int => "an integer",
            Self::Float => "a number",
            Self::Bool => "true or false",
            Self::Texts => "a list of strings",
        }
    }
}

/// One parameter a table operation takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Param {
    /// Its key in the op's TOML table.
    pub name: String,
    /// Its type.
    pub kind: ParamKind,
    /// False when the operation has a default for it.
    pub required: bool,
}

impl Param {
    /// A parameter the TOML must give.
    pub fn required(name: impl Into<String>, kind: ParamKind) -> Self {
        Self { name: name.into(), kind, required: true }
    }

    /// A parameter the TOML may leave out.
    pub fn optional(name: impl Into<String>, kind: ParamKind) -> Self {
        Self { name: name.into(), kind, required: false }
    }
}

/// A parameter's value as the TOML gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// A string.
    Text(String),
    /// A list of strings.
    Texts(Vec<String>),
}

/// The parameters a job gives one use of a table operation, checked against its [`Param`]s
/// before any data is read, so the getters' `None` only ever means "left out".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Params(pub BTreeMap<String, ParamValue>);

impl Params {
    /// A string parameter.
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.0.get(name) {
            Some(ParamValue::Text(s)) => Some(s),
            _ => None,
        }
    }

    /// An integer parameter.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.0.get(name) {
            Some(ParamValue::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// A number parameter (an integer in the TOML reads as one).
    pub fn float(&self, name: &str) -> Option<f64> {
        match self.0.get(name) {
            Some(ParamValue::Float(f)) => Some(*f),
            Some(ParamValue::Int(i)) => Some(*i as f64),
            _ => None,
        }
    }

    /// A `true`/`false` parameter.
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.0.get(name) {
            Some(ParamValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// A list-of-strings parameter.
    pub fn texts(&self, name: &str) -> Option<&[String]> {
        match self.0.get(name) {
            Some(ParamValue::Texts(v)) => Some(v),
            _ => None,
        }
    }
}

/// A user function as validation sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionSig {
    /// Its version: a change shows the steps that call it as changed.
    pub version: String,
    /// True for an aggregate (one value per group).
    pub aggregate: bool,
}

/// A table operation as validation sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableOpSig {
    /// Its version: a change shows the steps that use it as changed.
    pub version: String,
    /// The parameters it takes.
    pub params: Vec<Param>,
}

impl TableOpSig {
    /// Checks a use's parameters: every one known and of its type, every required one given.
    pub fn check(&self, params: &Params) -> Result<(), String> {
        let known = || self.params.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ");
        for (name, value) in &params.0 {
            let Some(param) = self.params.iter().find(|p| p.name == *name) else {
                return Err(format!("no parameter {name:?}; its parameters are: {}", known()));
            };
            if !param.kind.fits(value) {
                return Err(format!("parameter {name:?} must be {}", param.kind.words()));
            }
        }
        match self.params.iter().find(|p| p.required && !params.0.contains_key(&p.name)) {
            Some(missing) => Err(format!("parameter {:?} ({}) is required", missing.name, missing.kind.words())),
            None => Ok(()),
        }
    }
}

/// Everything a binary brings, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Signatures {
    /// User functions by lower-cased name (SQL matches them without regard to case).
    pub functions: BTreeMap<String, FunctionSig>,
    /// Table operations by name.
    pub table_ops: BTreeMap<String, TableOpSig>,
}

impl Signatures {
    /// What the binary's functions are called, for messages.
    pub fn function_list(&self) -> String {
        list(self.functions.keys())
    }

    /// What the binary's table operations are called, for messages.
    pub fn table_op_list(&self) -> String {
        list(self.table_ops.keys())
    }
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

static INSTALLED: OnceLock<Signatures> = OnceLock::new();

/// Records what this binary brings; the first call wins (a binary has one set for its life).
pub fn install(signatures: Signatures) {
    let _ = INSTALLED.set(signatures);
}

/// What this binary brings: nothing for the plain `runner`.
pub fn installed() -> &'static Signatures {
    static NONE: OnceLock<Signatures> = OnceLock::new();
    INSTALLED.get().unwrap_or_else(|| NONE.get_or_init(Signatures::default))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessionize() -> TableOpSig {
        TableOpSig {
            version: "1".into(),
            params: vec![
                Param::required("by", ParamKind::Text),
                Param::required("gap_minutes", ParamKind::Float),
                Param::optional("order", ParamKind::Texts),
            ],
        }
    }

    fn params(toml_text: &str) -> Params {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn parameters_are_checked_by_name_and_type() {
        let op = sessionize();
        op.check(&params("by = \"user\"\ngap_minutes = 30")).unwrap();
        op.check(&params("by = \"user\"\ngap_minutes = 2.5\norder = [\"ts\"]")).unwrap();
        assert_eq!(
            op.check(&params("by = \"user\"\ngap_minuts = 30")).unwrap_err(),
            "no parameter \"gap_minuts\"; its parameters are: by, gap_minutes, order"
        );
        assert_eq!(op.check(&params("by = \"user\"")).unwrap_err(), "parameter \"gap_minutes\" (a number) is required");
        assert_eq!(op.check(&params("by = 3\ngap_minutes = 30")).unwrap_err(), "parameter \"by\" must be a string");
        assert_eq!(
            op.check(&params("by = \"u\"\ngap_minutes = \"30\"")).unwrap_err(),
            "parameter \"gap_minutes\" must be a number"
        );
    }

    #[test]
    fn getters_read_what_the_toml_gave() {
        let p = params("by = \"user\"\ngap_minutes = 30\nfast = true\norder = [\"ts\", \"id\"]");
        assert_eq!(p.text("by"), Some("user"));
        assert_eq!(p.float("gap_minutes"), Some(30.0));
        assert_eq!(p.int("gap_minutes"), Some(30));
        assert_eq!(p.bool("fast"), Some(true));
        assert_eq!(p.texts("order"), Some(&["ts".to_string(), "id".to_string()][..]));
        assert_eq!(p.text("missing"), None);
    }
}
