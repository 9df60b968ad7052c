//! An input's operations: the built-in ones (parse JSON, unnest, explode, flatten) and the
//! table operations the binary brings, as the TOML writes them (`{ op = "name", … }`), read
//! by the `op` name: a built-in one keeps its strict fields, any other is the binary's.

use serde::{Deserialize, Serialize};

use crate::ColumnSpec;
use crate::extensions;

/// One entry of an input's `ops`: a built-in operation, or a table operation the binary brings.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum OpSpec {
    /// One of the runner's own.
    Builtin(BuiltinOp),
    /// One the binary brings (see [`extensions`]); checked against it at validation.
    Custom(CustomOp),
}

/// A table operation the binary brings, as the TOML names it: `{ op = "name", param = value, … }`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CustomOp {
    /// The operation's name.
    pub op: String,
    /// Its parameters.
    #[serde(flatten)]
    pub params: extensions::Params,
}

impl OpSpec {
    /// The operation's name, as the TOML writes it.
    pub fn name(&self) -> String {
        match self {
            Self::Builtin(b) => serde_json::to_value(b)
                .ok()
                .and_then(|v| v.get("op").and_then(|o| o.as_str()).map(str::to_string))
                .unwrap_or_default(),
            Self::Custom(c) => c.op.clone(),
        }
    }
}

/// The names of the built-in operations.
pub const BUILTIN_OPS: &[&str] = &["parse_json", "unnest", "explode", "flatten"];

impl<'de> Deserialize<'de> for OpSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let Some(serde_json::Value::String(name)) = table.get("op").cloned() else {
            return Err(D::Error::custom("an op needs `op = \"name\"`"));
        };
        if BUILTIN_OPS.contains(&name.as_str()) {
            return serde_json::from_value(serde_json::Value::Object(table))
                .map(Self::Builtin)
                .map_err(D::Error::custom);
        }
        table.remove("op");
        let params = serde_json::from_value(serde_json::Value::Object(table))
            .map_err(|e| D::Error::custom(format!("op {name:?}: {e}")))?;
        Ok(Self::Custom(CustomOp { op: name, params }))
    }
}

/// Operations SQL cannot express well, built into the runner.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum BuiltinOp {
    /// Parse a JSON string column into a struct with these fields, then unnest it as
    /// `{column}_{field}` columns.
    ParseJson {
        /// The string column.
        column: String,
        /// Fields to extract and their types.
        fields: Vec<ColumnSpec>,
    },
    /// Turn a struct column into one column per field, `{column}_{field}`.
    Unnest {
        /// The struct column.
        column: String,
    },
    /// One row per element of a list column.
    Explode {
        /// The list column.
        column: String,
    },
    /// Unnest every struct column, recursively, as `parent_child` columns (what AWS Glue's
    /// Relationalize does for nested records), then explode the named list columns.
    Flatten {
        /// List columns to explode after unnesting.
        #[serde(default)]
        explode: Vec<String>,
    },
}
