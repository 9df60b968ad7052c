//! What the planner is told of each input's contents, read from the Parquet footers the item
//! already has on disk. To choose a join order (never for an answer): its rows, and each integer
//! column's least and greatest value. And the columns no file holds a NULL in (every footer
//! counts 0 of them), which the planner then types as `NOT NULL`: a grouped `sum` of one needs
//! no count beside it. Text inputs are counted from their bytes (a guess of 100 bytes a row)
//! and have no ranges and no `NOT NULL` columns: knowing either would mean reading them.

use std::collections::{HashMap, HashSet};

use runner_spec::Format;
use runner_sql::TableStats;

use super::LocalFile;

/// What the footers tell of one input.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    pub stats: TableStats,
    /// The columns no row of any file is NULL in.
    pub never_null: HashSet<String>,
}

/// The facts of one input of `format` over `files` (`known_rows` when the reader counted them).
pub(crate) fn of_input(format: Format, files: &[LocalFile], known_rows: Option<u64>) -> Facts {
    let bytes: u64 = files.iter().map(|f| f.size).sum();
    let rows = known_rows.unwrap_or(bytes / 100);
    let mut facts = Facts { stats: TableStats { rows, ranges: HashMap::new() }, never_null: HashSet::new() };
    if format != Format::Parquet || files.is_empty() {
        return facts;
    }
    let mut ranges: Option<HashMap<String, (i64, i64)>> = None;
    let mut never_null: Option<HashSet<String>> = None;
    for f in files {
        let Some(footer) = footer(f) else { return facts };
        ranges = Some(match ranges {
            None => footer.ranges,
            Some(before) => before
                .into_iter()
                .filter_map(|(c, (lo, hi))| footer.ranges.get(&c).map(|(l, h)| (c, (lo.min(*l), hi.max(*h)))))
                .collect(),
        });
        never_null = Some(match never_null {
            None => footer.never_null,
            Some(before) => before.intersection(&footer.never_null).cloned().collect(),
        });
    }
    facts.stats.ranges = ranges.unwrap_or_default();
    facts.never_null = never_null.unwrap_or_default();
    facts
}

/// One file's footer: its integer columns' bounds, and the top-level columns it counts no
/// NULL in.
struct Footer {
    ranges: HashMap<String, (i64, i64)>,
    never_null: HashSet<String>,
}

fn footer(f: &LocalFile) -> Option<Footer> {
    let text = runner_table::stats::of_file(&f.path).ok()?;
    let stats: serde_json::Value = serde_json::from_str(&text).ok()?;
    let (mins, maxs) = (stats.get("minValues")?.as_object()?, stats.get("maxValues")?.as_object()?);
    let ranges = mins.iter().filter_map(|(c, lo)| Some((c.clone(), (lo.as_i64()?, maxs.get(c)?.as_i64()?)))).collect();
    // A nested column's counts are an object: only a top-level count of 0 says NOT NULL.
    let never_null = stats
        .get("nullCount")
        .and_then(serde_json::Value::as_object)
        .map(|m| m.iter().filter(|(_, n)| n.as_u64() == Some(0)).map(|(c, _)| c.clone()).collect())
        .unwrap_or_default();
    Some(Footer { ranges, never_null })
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    fn parquet(dir: &std::path::Path, name: &str, k: &[i64], s: &[Option<&str>]) -> LocalFile {
        let path = dir.join(name);
        let mut df = df!("k" => k, "s" => s).expect("frame");
        ParquetWriter::new(std::fs::File::create(&path).expect("file")).finish(&mut df).expect("written");
        let size = std::fs::metadata(&path).expect("meta").len();
        LocalFile { path, source: name.into(), size }
    }

    #[test]
    fn ranges_and_not_null_columns_hold_over_every_file_and_text_has_neither() {
        let dir = tempfile::tempdir().expect("dir");
        let files = [
            parquet(dir.path(), "a.parquet", &[5, -3, 9], &[Some("x"), Some("y"), Some("z")]),
            parquet(dir.path(), "b.parquet", &[12, 0], &[Some("w"), None]),
        ];
        let facts = of_input(Format::Parquet, &files, Some(5));
        assert_eq!(facts.stats.rows, 5);
        assert_eq!(facts.stats.ranges, HashMap::from([("k".to_string(), (-3, 12))]));
        // `s` has a NULL in the second file only.
        assert_eq!(facts.never_null, HashSet::from(["k".to_string()]));
        let first = of_input(Format::Parquet, &files[..1], Some(3));
        assert_eq!(first.never_null, HashSet::from(["k".to_string(), "s".to_string()]));
        let text = of_input(Format::Csv, &files[..1], None);
        assert_eq!(text.stats.rows, files[0].size / 100);
        assert!(text.stats.ranges.is_empty() && text.never_null.is_empty());
    }
}
