//! The environment a job declares for its items (the spec's `[env]` table): each variable is a
//! plain value or a reference to a secret that each worker resolves for itself, so a secret's
//! value never travels with the job, the work items or the boot script.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Where one variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    untagged,
    deny_unknown_fields,
    expecting = "a value (a string), { secret = \"name or ARN\" } with an optional key = \"field\", or { parameter = \"name\" }"
)]
pub enum EnvSource {
    /// The value itself (not for secrets: it is in the spec and the worker's config).
    Value(String),
    /// An AWS Secrets Manager secret: its `SecretString`, or with `key` one field of it read as
    /// a JSON object.
    Secret {
        /// The secret's name or ARN.
        secret: String,
        /// A field of a JSON secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// An AWS Systems Manager Parameter Store parameter (a `SecureString` is decrypted).
    Parameter {
        /// The parameter's name (`/prod/api-token`) or ARN.
        parameter: String,
    },
}

impl fmt::Display for EnvSource {
    /// The reference, never a secret's value (a plain value is shown: it is in the spec).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvSource::Value(v) => write!(f, "the value {v:?}"),
            EnvSource::Secret { secret, key: None } => write!(f, "secret {secret:?}"),
            EnvSource::Secret { secret, key: Some(k) } => write!(f, "key {k:?} of secret {secret:?}"),
            EnvSource::Parameter { parameter } => write!(f, "parameter {parameter:?}"),
        }
    }
}

/// The declared environment, by variable name.
pub type ItemEnv = BTreeMap<String, EnvSource>;

/// Prefixes of names a job may not set: the runner's own settings, the AWS SDK's (the item's
/// credentials and endpoints), and the Pipes bootstrap.
const RESERVED_PREFIXES: [&str; 3] = ["SPOTLAKE_", "AWS_", "DAGSTER_PIPES_"];
/// Names a job may not set: the worker sizes each item's thread pool itself.
const RESERVED_NAMES: [&str; 1] = ["POLARS_MAX_THREADS"];

/// Why a name can't be declared, or `None` when it can.
pub fn refuse_name(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !well_formed {
        return Some(format!("{name:?} is not a variable name (letters, digits and _, not starting with a digit)"));
    }
    if let Some(p) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(*p)) {
        return Some(format!("{name} is reserved: names starting {p} belong to the runner, the AWS SDK or Pipes"));
    }
    if RESERVED_NAMES.contains(&name) {
        return Some(format!("{name} is reserved: the worker sets it for each item"));
    }
    None
}

/// Polars' hot-table size, which Polars panics on in every group-by unless it is a power of two
/// above 1.
pub const HOT_TABLE_VAR: &str = "POLARS_HOT_TABLE_SIZE";

/// Why a value can't be given to items under `name`, or `None` when it can. The reason never
/// repeats the value (it may come from a secret).
pub fn refuse_value(name: &str, value: &str) -> Option<String> {
    if name != HOT_TABLE_VAR {
        return None;
    }
    match value.parse::<u32>() {
        Ok(n) if n > 1 && n.is_power_of_two() => None,
        _ => Some(format!("{HOT_TABLE_VAR} must be a power of two above 1 (such as 262144), or left unset")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        env: ItemEnv,
    }

    #[test]
    fn the_three_forms_parse() {
        let doc: Doc = serde_json::from_str(
            r#"{"env": {"A": "x", "B": {"secret": "prod/db", "key": "password"}, "C": {"parameter": "/p"}}}"#,
        )
        .unwrap();
        assert_eq!(doc.env["A"], EnvSource::Value("x".into()));
        assert_eq!(doc.env["B"], EnvSource::Secret { secret: "prod/db".into(), key: Some("password".into()) });
        assert_eq!(doc.env["C"], EnvSource::Parameter { parameter: "/p".into() });
        assert_eq!(doc.env["B"].to_string(), r#"key "password" of secret "prod/db""#);
    }

    #[test]
    fn a_misspelt_reference_is_refused() {
        assert!(serde_json::from_str::<Doc>(r#"{"env": {"A": {"secrets": "x"}}}"#).is_err());
        assert!(serde_json::from_str::<Doc>(r#"{"env": {"A": {"secret": "x", "keys": "y"}}}"#).is_err());
    }

    #[test]
    fn a_hot_table_size_polars_would_panic_on_is_refused() {
        assert_eq!(refuse_value(HOT_TABLE_VAR, "4096"), None);
        assert!(refuse_value(HOT_TABLE_VAR, "5000").unwrap().contains("power of two"));
        assert!(refuse_value(HOT_TABLE_VAR, "1").is_some());
        assert_eq!(refuse_value("OTHER", "5000"), None);
    }

    #[test]
    fn reserved_and_malformed_names_are_refused() {
        assert_eq!(refuse_name("DB_PASSWORD"), None);
        assert_eq!(refuse_name("_x1"), None);
        assert!(refuse_name("AWS_REGION").unwrap().contains("reserved"));
        assert!(refuse_name("SPOTLAKE_ROOT").unwrap().contains("reserved"));
        assert!(refuse_name("POLARS_MAX_THREADS").unwrap().contains("worker sets it"));
        assert!(refuse_name("1A").unwrap().contains("not a variable name"));
        assert!(refuse_name("A-B").unwrap().contains("not a variable name"));
    }
}
