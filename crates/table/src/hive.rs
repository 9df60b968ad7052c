//! Partition values from the `key=value/` folders a file sits in, as Polars writes them: each
//! value `%XX`-escaped (`/`, `=`, `%`, `:`, space and control characters), a null as
//! `__HIVE_DEFAULT_PARTITION__`. A Delta log holds the values themselves, decoded.

use std::collections::BTreeMap;

/// The folder name Hive, Spark and Polars give a null partition value.
pub const NULL_VALUE: &str = "__HIVE_DEFAULT_PARTITION__";

/// Why a path's partition values could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the file {path:?} does not sit in one folder per partition column ({columns:?}): {reason}")]
pub struct HivePathError {
    /// The file's path, relative to the output.
    pub path: String,
    /// The columns expected.
    pub columns: Vec<String>,
    /// What is wrong.
    pub reason: String,
}

/// The values of `columns` in the folders of `relative_path`, in that order (its file name
/// last); every column must have exactly its folder.
pub fn partition_values(
    relative_path: &str,
    columns: &[String],
) -> Result<BTreeMap<String, Option<String>>, HivePathError> {
    let err = |reason: String| HivePathError { path: relative_path.to_string(), columns: columns.to_vec(), reason };
    let folders: Vec<&str> = relative_path.split('/').collect();
    let folders = &folders[..folders.len().saturating_sub(1)];
    if folders.len() != columns.len() {
        return Err(err(format!("it sits {} folder(s) deep", folders.len())));
    }
    let mut out = BTreeMap::new();
    for (folder, column) in folders.iter().zip(columns) {
        let Some((key, raw)) = folder.split_once('=') else {
            return Err(err(format!("folder {folder:?} is not `{column}=value`")));
        };
        if key != column {
            return Err(err(format!("folder {folder:?} is not of column {column:?}")));
        }
        let value = (raw != NULL_VALUE).then(|| decode(raw)).transpose().map_err(err)?;
        out.insert(column.clone(), value);
    }
    Ok(out)
}

/// Undoes `%XX` escapes (of UTF-8 bytes).
fn decode(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3).ok_or_else(|| format!("{raw:?} ends inside an escape"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("{raw:?} has a bad escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{raw:?} does not decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn values_are_decoded_and_a_null_folder_is_null() {
        let v =
            partition_values("hour=2024-01-02%2003%3A00/k=__HIVE_DEFAULT_PARTITION__/0.parquet", &cols(&["hour", "k"]))
                .unwrap();
        assert_eq!(v["hour"].as_deref(), Some("2024-01-02 03:00"));
        assert_eq!(v["k"], None);
        let utf8 = partition_values("c=caf%C3%A9%2F%25/x.parquet", &cols(&["c"])).unwrap();
        assert_eq!(utf8["c"].as_deref(), Some("café/%"));
        assert!(partition_values("x.parquet", &[]).unwrap().is_empty());
    }

    #[test]
    fn a_path_that_does_not_match_the_columns_is_refused() {
        assert!(partition_values("0.parquet", &cols(&["day"])).unwrap_err().reason.contains("0 folder"));
        assert!(partition_values("bucket=1/0.parquet", &cols(&["day"])).unwrap_err().reason.contains("not of column"));
        assert!(partition_values("day=%2/0.parquet", &cols(&["day"])).is_err());
    }
}
