//! An output kept as a table: the `table` key of an output, and where its table is.
//!
//! ```toml
//! [step.outputs.user_daily]
//! path = "user_daily/day={partition_key}"
//! table = "delta"                      # or, in full:
//! # table = { format = "delta", name = "user_daily", glue_database = "analytics", schema = "add_columns" }
//! ```
//!
//! The table's root is the output's path without a last `column={partition_key}` segment: that
//! column is the table's first partition column (its value is the partition key, as a string),
//! and the output's `partition_by` columns follow it. A path with no such segment is the table's
//! root itself. This module owns that layout and the rules a table output's spec must follow;
//! committing files to the table is the runner's (`runner-table`).

use serde::{Deserialize, Serialize};

use crate::OutputSpec;

/// The formats a table can be kept in.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TableFormat {
    /// A Delta Lake table: Parquet files and the `_delta_log/` that lists them.
    Delta,
}

/// How a table's schema may change when an output's columns do.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SchemaChanges {
    /// Any difference from the table's schema fails the step, naming the columns (the default).
    #[default]
    Fixed,
    /// New columns are added to the table (older files read them as null); any other difference
    /// fails the step, naming the columns.
    AddColumns,
}

/// An output's table.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(try_from = "TableText")]
pub struct TableSpec {
    /// The format. Part of the step's definition: it decides how some types are written.
    pub format: TableFormat,
    /// The table's name: in the catalog, and in Dagster's `dagster/table_name`. Defaults to the
    /// output's name. Not part of the step's definition (it changes no file).
    #[serde(skip_serializing)]
    pub name: Option<String>,
    /// Registers the table in this AWS Glue Data Catalog database, for Athena (S3 roots only).
    #[serde(skip_serializing)]
    pub glue_database: Option<String>,
    /// How its schema may change.
    #[serde(skip_serializing)]
    pub schema: SchemaChanges,
}

/// A table as written: a format's name, or a table of keys. Read by hand, so that a misspelt
/// key or format is an error naming it and the ones there are.
#[derive(Deserialize)]
#[serde(untagged)]
enum TableText {
    Word(String),
    Table(std::collections::BTreeMap<String, toml::Value>),
}

const KEYS: &str = "format, name, glue_database and schema";

fn format_of(word: &str) -> Result<TableFormat, String> {
    match word {
        "delta" => Ok(TableFormat::Delta),
        other => Err(format!("unknown table format {other:?}; the one format is \"delta\"")),
    }
}

impl TryFrom<TableText> for TableSpec {
    type Error = String;

    fn try_from(text: TableText) -> Result<Self, String> {
        let table = match text {
            TableText::Word(word) => {
                return Ok(Self {
                    format: format_of(&word)?,
                    name: None,
                    glue_database: None,
                    schema: SchemaChanges::Fixed,
                });
            }
            TableText::Table(table) => table,
        };
        if let Some(key) = table.keys().find(|k| !["format", "name", "glue_database", "schema"].contains(&k.as_str())) {
            return Err(format!("unknown key {key:?} in table; its keys are {KEYS}"));
        }
        let text = |key: &str| -> Result<Option<String>, String> {
            match table.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!("table's {key} must be a string, got {other}")),
            }
        };
        let format = format_of(&text("format")?.ok_or("a table needs a format: format = \"delta\"")?)?;
        let schema = match text("schema")?.as_deref() {
            None | Some("fixed") => SchemaChanges::Fixed,
            Some("add_columns") => SchemaChanges::AddColumns,
            Some(other) => return Err(format!("unknown table schema {other:?}; it is \"fixed\" or \"add_columns\"")),
        };
        Ok(Self { format, name: text("name")?, glue_database: text("glue_database")?, schema })
    }
}

/// The placeholder a table's keyed segment holds.
const KEY: &str = "{partition_key}";

/// Where an output's table is, from its path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLayout {
    /// The table's root, relative to the job root or absolute (no placeholder).
    pub root: String,
    /// The column whose value is the partition key (`day` of `…/day={partition_key}`), if any.
    pub key_column: Option<String>,
    /// Partition columns in order: the key column, then the output's `partition_by`.
    pub partition_columns: Vec<String>,
}

impl TableLayout {
    /// The layout of an output's table; an error says what in the path keeps it from being one.
    pub fn of(output: &OutputSpec) -> Result<Self, String> {
        let path = output.path.trim_end_matches('/');
        let (root, key_column) = match path.rsplit_once('/') {
            Some((root, last)) if last.ends_with(&format!("={KEY}")) => {
                (root.to_string(), Some(last.trim_end_matches(KEY).trim_end_matches('=').to_string()))
            }
            None if path.ends_with(&format!("={KEY}")) => {
                return Err(format!(
                    "a table's path needs a root folder above its `column={KEY}` folder, as in \"name/{path}\""
                ));
            }
            _ => (path.to_string(), None),
        };
        if root.contains('{') {
            return Err(format!(
                "a table's path may hold a placeholder only as its last folder, `column={KEY}`: the folders above \
                 it are the table's root, the same for every partition (got {:?})",
                output.path
            ));
        }
        if root.is_empty() {
            return Err("a table's path needs a root folder".into());
        }
        if let Some(key) = &key_column {
            if !is_table_identifier(key) {
                return Err(format!(
                    "the partition column {key:?} of `{key}={KEY}` must be letters, digits and `_`, starting \
                     with a letter or `_`"
                ));
            }
            if output.partition_by.contains(key) {
                return Err(format!("{key:?} is both the path's partition column and in partition_by"));
            }
        }
        let partition_columns = key_column.iter().cloned().chain(output.partition_by.iter().cloned()).collect();
        Ok(Self { root, key_column, partition_columns })
    }
}

/// Letters, digits and `_`, not starting with a digit, lower-case: what Glue, Athena and Hive
/// keep as written (Glue lower-cases names, so `Daily` would be a different name there).
pub fn is_table_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl TableSpec {
    /// The table's name: its own, or the output's.
    pub fn name_or<'a>(&'a self, output_name: &'a str) -> &'a str {
        self.name.as_deref().unwrap_or(output_name)
    }

    /// The rules a table output follows; `output_name` names the output.
    pub fn validate(&self, output_name: &str, output: &OutputSpec) -> Result<(), (String, String)> {
        let name = self.name_or(output_name);
        if !is_table_identifier(name) {
            let field = if self.name.is_some() { "table › name" } else { "table" };
            return Err((
                field.into(),
                format!(
                    "the table's name {name:?} must be lower-case letters, digits and `_`, starting with a letter \
                     or `_` (what Glue and Athena keep as written); set `name` in `table = {{ format = \"delta\", \
                     name = \"…\" }}`"
                ),
            ));
        }
        if let Some(db) = &self.glue_database
            && !is_table_identifier(db)
        {
            return Err((
                "table › glue_database".into(),
                format!("{db:?} must be lower-case letters, digits and `_`, starting with a letter or `_`"),
            ));
        }
        TableLayout::of(output).map_err(|m| ("path".into(), m))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(path: &str, partition_by: &[&str]) -> OutputSpec {
        let text = format!(
            "path = {path:?}\npartition_by = {:?}\ntable = \"delta\"",
            partition_by.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn the_last_keyed_folder_is_the_first_partition_column_and_the_rest_is_the_root() {
        let l = TableLayout::of(&output("by_user/day={partition_key}", &["user_bucket"])).unwrap();
        assert_eq!(l.root, "by_user");
        assert_eq!(l.key_column.as_deref(), Some("day"));
        assert_eq!(l.partition_columns, ["day", "user_bucket"]);
        let flat = TableLayout::of(&output("s3://b/lake/clean", &["day"])).unwrap();
        assert_eq!(
            (flat.root.as_str(), flat.key_column, flat.partition_columns),
            ("s3://b/lake/clean", None, vec!["day".to_string()])
        );
    }

    #[test]
    fn a_placeholder_above_the_last_folder_or_a_root_of_nothing_is_refused() {
        let err = TableLayout::of(&output("out/{partition_key}/t", &[])).unwrap_err();
        assert!(err.contains("only as its last folder"), "{err}");
        assert!(TableLayout::of(&output("t/{partition_key}", &[])).unwrap_err().contains("only as its last"));
        assert!(TableLayout::of(&output("day={partition_key}", &[])).unwrap_err().contains("root folder"));
        let twice = TableLayout::of(&output("t/day={partition_key}", &["day"])).unwrap_err();
        assert!(twice.contains("both"), "{twice}");
    }

    #[test]
    fn the_short_and_the_long_form_read_the_same_and_only_the_format_is_part_of_the_definition() {
        let short = output("t", &[]);
        let long: OutputSpec =
            toml::from_str("path = \"t\"\ntable = { format = \"delta\", name = \"events\", schema = \"add_columns\" }")
                .unwrap();
        assert_eq!(short.table.as_ref().unwrap().format, TableFormat::Delta);
        let t = long.table.as_ref().unwrap();
        assert_eq!((t.name.as_deref(), t.schema), (Some("events"), SchemaChanges::AddColumns));
        assert_eq!(serde_json::to_value(t).unwrap(), serde_json::json!({"format": "delta"}));
        let unknown =
            toml::from_str::<OutputSpec>("path = \"t\"\ntable = { format = \"delta\", nmae = \"x\" }").unwrap_err();
        assert!(unknown.to_string().contains("unknown key \"nmae\" in table"), "{unknown}");
        let format = toml::from_str::<OutputSpec>("path = \"t\"\ntable = \"iceberg\"").unwrap_err();
        assert!(format.to_string().contains("unknown table format \"iceberg\""), "{format}");
    }

    #[test]
    fn names_are_what_glue_keeps_as_written() {
        let t = TableSpec { format: TableFormat::Delta, name: None, glue_database: None, schema: SchemaChanges::Fixed };
        assert!(t.validate("user_daily", &output("t", &[])).is_ok());
        let (field, why) = t.validate("UserDaily", &output("t", &[])).unwrap_err();
        assert_eq!(field, "table");
        assert!(why.contains("lower-case"), "{why}");
        let db = TableSpec { glue_database: Some("an-db".into()), ..t };
        assert_eq!(db.validate("t", &output("t", &[])).unwrap_err().0, "table › glue_database");
    }
}
