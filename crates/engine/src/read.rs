//! Builds one input's LazyFrame from its local files: the typed fast path, the bad-row paths,
//! Parquet schema checks, and the diagnosis that turns a Polars parse error into
//! "file, row, column".

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use polars::prelude::*;

use super::dtype::PolarsType;
use super::{EngineError, LocalFile, bad_rows, ndjson, temporal};
use runner_spec::{BadRows, ColumnSpec, Format, InputCompression, InputSpec, StepSpec};

/// The sentinel column that catches CSV rows with more fields than declared.
const RAGGED: &str = "__extra_fields";

/// An input ready for SQL.
pub(super) struct ReadInput {
    /// The rows that fit the schema.
    pub frame: LazyFrame,
    /// One pass that counts every row read (`ROWS`) and, on the `fail` path, the rows that
    /// break a `required` column or have too many fields (`VIOLATIONS`, which must be 0).
    /// Absent when neither is needed. Separate counting plans each re-read the input.
    pub counter: Option<LazyFrame>,
    /// The row count, when known without reading the data (Parquet metadata).
    pub known_rows: Option<u64>,
    /// What was set aside, for `skip` and `quarantine`.
    pub bad: Option<BadSide>,
}

/// The counter's row count column.
pub(super) const ROWS: &str = "rows";
/// The counter's violation count column.
pub(super) const VIOLATIONS: &str = "violations";

/// The counting pass over `frame`: its rows, and the rows matching `violation`.
pub(super) fn counter(frame: &LazyFrame, violation: Option<Expr>) -> LazyFrame {
    let mut columns = vec![len().cast(DataType::UInt64).alias(ROWS)];
    columns.extend(violation.map(|v| v.sum().cast(DataType::UInt64).alias(VIOLATIONS)));
    frame.clone().select(columns)
}

/// The rows set aside.
pub(super) struct BadSide {
    /// Counts them.
    pub count: LazyFrame,
    /// Writes them under `_quarantine/` (quarantine only).
    pub quarantine_sink: Option<LazyFrame>,
}

pub(super) fn schema_of(columns: &[ColumnSpec]) -> Schema {
    columns
        .iter()
        .map(|c| Field::new(c.name().into(), c.dtype().map(|d| d.polars()).unwrap_or(DataType::String)))
        .collect()
}

fn paths(files: &[LocalFile]) -> Vec<PlRefPath> {
    files.iter().map(|f| PlRefPath::new(f.path.to_string_lossy().as_ref())).collect()
}

pub(super) fn sources(files: &[LocalFile]) -> ScanSources {
    ScanSources::Paths(paths(files).into())
}

/// The schema the CSV reader is given: columns with a known text format are read as text and
/// parsed afterwards (see `temporal`).
fn csv_schema(columns: &[ColumnSpec], formats: &temporal::Formats) -> Schema {
    let mut schema = schema_of(columns);
    for name in formats.keys() {
        schema.with_column(name.as_str().into(), DataType::String);
    }
    schema
}

/// Parses the columns read as text by `csv_schema`, strictly.
fn parse_formatted(frame: LazyFrame, columns: &[ColumnSpec], formats: &temporal::Formats) -> LazyFrame {
    let parsed: Vec<Expr> = columns
        .iter()
        .filter_map(|c| {
            let format = formats.get(c.name())?;
            let dtype = c.dtype().ok()?;
            Some(temporal::parse(col(c.name()), dtype, Some(format), true).alias(c.name()))
        })
        .collect();
    if parsed.is_empty() { frame } else { frame.with_columns(parsed) }
}

pub(super) fn csv_reader(spec: &InputSpec, sources: ScanSources) -> LazyCsvReader {
    let mut reader = LazyCsvReader::new_with_sources(sources).with_has_header(spec.header);
    if let Some(sep) = spec.separator.as_deref().and_then(|s| s.bytes().next()) {
        reader = reader.with_separator(sep);
    }
    if let Some(q) = &spec.quote {
        reader = reader.with_quote_char(q.bytes().next());
    }
    if !spec.null_values.is_empty() {
        let values = spec.null_values.iter().map(|s| s.as_str().into()).collect();
        reader = reader.with_null_values(Some(NullValues::AllColumns(values)));
    }
    reader
}

fn check_compression(input: &str, spec: &InputSpec, files: &[LocalFile]) -> Result<(), EngineError> {
    let expected: &[u8] = match spec.compression {
        InputCompression::Auto | InputCompression::None => return Ok(()),
        InputCompression::Gzip => &[0x1f, 0x8b],
        InputCompression::Zstd => &[0x28, 0xb5, 0x2f, 0xfd],
    };
    for f in files {
        let mut head = [0u8; 4];
        let n = std::io::Read::read(&mut std::fs::File::open(&f.path).map_err(|e| read_err(input, f, e))?, &mut head)
            .map_err(|e| read_err(input, f, e))?;
        if !head[..n].starts_with(expected) {
            return Err(EngineError::Read {
                input: input.to_string(),
                file: f.source.clone(),
                detail: format!(
                    "declared compression {:?}, but the file does not start with its magic bytes",
                    spec.compression
                ),
            });
        }
    }
    Ok(())
}

/// False for a text file that holds no rows: no bytes, or (an uncompressed CSV with a header)
/// nothing but its header line. Anything unsure is read.
fn may_hold_rows(spec: &InputSpec, f: &LocalFile) -> bool {
    const LOOK: usize = 64 * 1024;
    let Ok(meta) = std::fs::metadata(&f.path) else { return true };
    if meta.len() == 0 {
        return false;
    }
    let compressed = !matches!(spec.compression, InputCompression::None | InputCompression::Auto)
        || [".gz", ".zst", ".zstd"].iter().any(|s| f.source.ends_with(s));
    if spec.format != Format::Csv || !spec.header || compressed || meta.len() > LOOK as u64 {
        return true;
    }
    let Ok(bytes) = std::fs::read(&f.path) else { return true };
    let after_header = bytes.iter().position(|b| *b == b'\n').map_or(&[][..], |i| &bytes[i + 1..]);
    after_header.iter().any(|b| !b.is_ascii_whitespace())
}

/// A CSV file's header fields (decompressed when the file is gzip or zstd).
pub(super) fn csv_header(spec: &InputSpec, f: &LocalFile) -> std::io::Result<Vec<String>> {
    use std::io::{BufRead, Read};
    let mut file = std::fs::File::open(&f.path)?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic)?;
    let file = std::fs::File::open(&f.path)?;
    let reader: Box<dyn Read> = if magic[..n].starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if magic[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::Decoder::new(file)?)
    } else {
        Box::new(file)
    };
    let mut line = Vec::new();
    // A header longer than 1 MiB is not a header.
    std::io::BufReader::new(reader.take(1 << 20)).read_until(b'\n', &mut line)?;
    let text = String::from_utf8_lossy(&line);
    let text = text.trim_start_matches('\u{feff}').trim_end_matches(['\n', '\r']);
    let sep = spec.separator.as_deref().and_then(|s| s.chars().next()).unwrap_or(',');
    let quote = spec.quote.as_deref().and_then(|s| s.chars().next()).unwrap_or('"');
    Ok(text.split(sep).map(|h| h.trim().trim_matches(quote).to_string()).collect())
}

/// Every declared column is in each file's header: columns are read by name, so a renamed or
/// missing one is named here rather than read from the wrong field.
fn check_headers(input: &str, spec: &InputSpec, files: &[LocalFile]) -> Result<(), EngineError> {
    let (Some(columns), true, Format::Csv) = (&spec.columns, spec.header, spec.format) else { return Ok(()) };
    for f in files {
        // A header that can't be read is usually a stream that can't be decompressed: say so.
        let header = csv_header(spec, f)
            .map_err(|e| read_err(input, f, check_text_stream(f, false).err().unwrap_or(e.to_string())))?;
        if let Some(missing) = columns.iter().find(|c| !header.iter().any(|h| h == c.name())) {
            return Err(EngineError::Read {
                input: input.to_string(),
                file: f.source.clone(),
                detail: format!(
                    "the header has no column {:?} (it has {}); declared columns are read by name",
                    missing.name(),
                    header.join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// Reads a text file to its end through its decompressor (by its magic bytes), checking that
/// it decompresses and (when `utf8`) is UTF-8; the error says where it breaks. Used on the
/// error path only.
fn check_text_stream(f: &LocalFile, utf8: bool) -> Result<(), String> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let n = std::fs::File::open(&f.path).and_then(|mut h| h.read(&mut magic)).map_err(|e| e.to_string())?;
    let file = std::fs::File::open(&f.path).map_err(|e| e.to_string())?;
    let (kind, mut reader): (&str, Box<dyn Read>) = if magic[..n].starts_with(&[0x1f, 0x8b]) {
        ("gzip", Box::new(flate2::read::MultiGzDecoder::new(file)))
    } else if magic[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        ("zstd", Box::new(zstd::Decoder::new(file).map_err(|e| e.to_string())?))
    } else {
        ("", Box::new(file))
    };
    let mut buf = vec![0u8; 1 << 16];
    // Bytes of a character cut by the chunk boundary, carried into the next chunk.
    let mut carry: Vec<u8> = Vec::new();
    let (mut offset, mut line) = (0u64, 1u64);
    loop {
        let got = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(got) => got,
            Err(e) if kind.is_empty() => return Err(e.to_string()),
            Err(e) => return Err(format!("corrupt {kind} stream after {offset} bytes: {e}")),
        };
        if !utf8 {
            offset += got as u64;
            continue;
        }
        carry.extend_from_slice(&buf[..got]);
        let valid = match std::str::from_utf8(&carry) {
            Ok(_) => carry.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(e) => {
                let at = e.valid_up_to();
                line += carry[..at].iter().filter(|b| **b == b'\n').count() as u64;
                return Err(format!("line {line} (byte {}) is not UTF-8", offset + at as u64));
            }
        };
        line += carry[..valid].iter().filter(|b| **b == b'\n').count() as u64;
        offset += valid as u64;
        carry.drain(..valid);
    }
    if carry.is_empty() { Ok(()) } else { Err(format!("the file ends inside a UTF-8 character at byte {offset}")) }
}

/// Files grouped by their header line, in the order each header first appears (files keep their
/// order within a group, so rows come in listing order where all headers agree; SQL without
/// `ORDER BY` promises no order in any case).
fn same_header_groups(input: &str, spec: &InputSpec, files: &[LocalFile]) -> Result<Vec<Vec<LocalFile>>, EngineError> {
    let mut groups: Vec<(Vec<String>, Vec<LocalFile>)> = Vec::new();
    for f in files {
        let header = csv_header(spec, f).map_err(|e| read_err(input, f, e))?;
        match groups.iter_mut().find(|(h, _)| *h == header) {
            Some((_, group)) => group.push(f.clone()),
            None => groups.push((header, vec![f.clone()])),
        }
    }
    Ok(groups.into_iter().map(|(_, group)| group).collect())
}

fn read_err(input: &str, f: &LocalFile, e: impl std::fmt::Display) -> EngineError {
    EngineError::Read { input: input.to_string(), file: f.source.clone(), detail: e.to_string() }
}

fn empty_frame(spec: &InputSpec) -> LazyFrame {
    let schema = spec.columns.as_deref().map(schema_of).unwrap_or_default();
    DataFrame::empty_with_schema(&schema).lazy()
}

/// Reads one input.
pub(super) fn read_input(
    name: &str,
    spec: &InputSpec,
    files: &[LocalFile],
    out_dir: &Path,
    file_tag: &str,
) -> Result<ReadInput, EngineError> {
    if files.is_empty() {
        if spec.required {
            return Err(EngineError::NoFiles { input: name.to_string(), pattern: spec.path.clone() });
        }
        return Ok(ReadInput { frame: empty_frame(spec), counter: None, known_rows: Some(0), bad: None });
    }
    // A text file of no bytes holds no rows (a header-only one reads as none already); the
    // readers would call it an error, or worse, blame the SQL.
    let nonempty: Vec<LocalFile>;
    let files = if spec.format == Format::Parquet {
        files
    } else {
        nonempty = files.iter().filter(|f| may_hold_rows(spec, f)).cloned().collect();
        if nonempty.is_empty() {
            return Ok(ReadInput { frame: empty_frame(spec), counter: None, known_rows: Some(0), bad: None });
        }
        &nonempty[..]
    };
    check_compression(name, spec, files)?;
    check_headers(name, spec, files)?;
    let err = |e: PolarsError| EngineError::Read {
        input: name.to_string(),
        file: files.iter().map(|f| f.source.as_str()).collect::<Vec<_>>().join(", "),
        detail: e.to_string(),
    };
    match (spec.format, spec.bad_rows) {
        (Format::Csv, BadRows::Fail) => {
            let formats = temporal::csv_formats(name, spec, files)?;
            let mut ragged = None;
            let configure = |reader: LazyCsvReader, ragged: &mut Option<Expr>| match &spec.columns {
                Some(columns) => {
                    let schema = csv_schema(columns, &formats);
                    if spec.header {
                        reader.with_dtype_overwrite(Some(Arc::new(schema)))
                    } else {
                        // One sentinel column more than declared: it is filled only by rows with
                        // too many fields, which the parser would otherwise drop silently.
                        let mut with_sentinel = schema;
                        with_sentinel.with_column(RAGGED.into(), DataType::String);
                        *ragged = Some(col(RAGGED).is_not_null());
                        reader.with_schema(Some(Arc::new(with_sentinel))).with_truncate_ragged_lines(true)
                    }
                }
                None => reader,
            };
            let mut scanned = match (&spec.columns, spec.header) {
                // Columns by name: files are read with their own header and narrowed to the
                // declared columns, so files whose headers differ in order or extras agree. One
                // scan per distinct header, not per file: Polars' streaming engine takes time
                // quadratic in the scans of one query (an item over 2,500 one-row files took
                // 90 s with a scan each, 10,000 more than ten minutes).
                (Some(columns), true) if files.len() > 1 => {
                    let declared: Vec<Expr> = columns.iter().map(|c| col(c.name())).collect();
                    let frames = same_header_groups(name, spec, files)?
                        .iter()
                        .map(|group| {
                            let reader = configure(csv_reader(spec, sources(group)), &mut ragged);
                            reader.finish().map(|lf| lf.select(declared.clone()))
                        })
                        .collect::<PolarsResult<Vec<_>>>()
                        .map_err(err)?;
                    concat(frames, UnionArgs { rechunk: false, parallel: true, ..Default::default() }).map_err(err)?
                }
                _ => configure(csv_reader(spec, sources(files)), &mut ragged).finish().map_err(err)?,
            };
            if let Some(columns) = &spec.columns {
                scanned = parse_formatted(scanned, columns, &formats);
            }
            // One scan for the counter and every output that reads the input. Polars' common
            // subplan elimination finds this by itself for one output, but not when two outputs
            // already share a larger subplan: the counter then scanned the input again.
            let scanned = scanned.cache();
            let counter = Some(counter(&scanned, violation(spec, ragged)));
            let frame = match &spec.columns {
                Some(columns) if !spec.header => {
                    scanned.select(columns.iter().map(|c| col(c.name())).collect::<Vec<_>>())
                }
                _ => scanned,
            };
            Ok(ReadInput { counter, frame, known_rows: None, bad: None })
        }
        (Format::Csv, policy) => {
            let columns = spec.columns.as_deref().unwrap_or_default();
            let formats = temporal::csv_formats(name, spec, files)?;
            let checked = bad_rows::csv_checked(spec, columns, &formats, files).map_err(err)?.cache();
            let good = checked.clone().filter(col(bad_rows::REASON).is_null()).select(bad_rows::typed_columns(columns));
            let bad = checked.clone().filter(col(bad_rows::REASON).is_not_null());
            let quarantine_sink = match policy {
                BadRows::Quarantine => Some(
                    super::write::sink_file(
                        bad.clone().select(bad_rows::quarantine_columns(columns)),
                        &super::quarantine_dir(out_dir, name).join(format!("{file_tag}.parquet")),
                    )
                    .map_err(err)?,
                ),
                _ => None,
            };
            Ok(ReadInput {
                counter: Some(counter(&good, None)),
                frame: good,
                known_rows: None,
                bad: Some(BadSide { count: bad.select([len()]), quarantine_sink }),
            })
        }
        (Format::Ndjson, policy) => ndjson::read(name, spec, files, policy, out_dir, file_tag),
        (Format::Parquet, _) => read_parquet(name, spec, files),
    }
}

/// Matches rows breaking a `required` column or the extra predicate.
pub(super) fn violation(spec: &InputSpec, extra: Option<Expr>) -> Option<Expr> {
    spec.columns
        .iter()
        .flatten()
        .filter(|c| c.required())
        .map(|c| col(c.name()).is_null())
        .chain(extra)
        .reduce(|a, b| a.or(b))
}

fn arrow_schema_text(schema: &ArrowSchema) -> BTreeMap<String, String> {
    schema.iter_values().map(|f| (f.name.to_string(), format!("{:?}", DataType::from_arrow_field(f)))).collect()
}

fn read_parquet(name: &str, spec: &InputSpec, files: &[LocalFile]) -> Result<ReadInput, EngineError> {
    let mut reference: Option<(String, BTreeMap<String, String>)> = None;
    let mut rows = 0u64;
    for f in files {
        let mut file = std::fs::File::open(&f.path).map_err(|e| read_err(name, f, e))?;
        let mut reader = ParquetReader::new(&mut file);
        let schema = reader.schema().map_err(|e| read_err(name, f, e))?;
        rows += reader.num_rows().map_err(|e| read_err(name, f, e))? as u64;
        let text = arrow_schema_text(&schema);
        if spec.hive
            && let Some(key) = super::hive_keys(&f.source).find(|k| text.contains_key(*k))
        {
            return Err(EngineError::Read {
                input: name.to_string(),
                file: f.source.clone(),
                detail: format!(
                    "the hive key {key:?} in its path is also a column of the file; with hive = true the two \
                     can't both be read (rename one where it is written, or read with hive = false)"
                ),
            });
        }
        match &reference {
            None => reference = Some((f.source.clone(), text)),
            Some((ref_file, ref_schema)) if *ref_schema != text => {
                let only = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>| {
                    a.iter().filter(|(k, v)| b.get(*k) != Some(v)).map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>()
                };
                return Err(EngineError::SchemaMismatch {
                    input: name.to_string(),
                    file: f.source.clone(),
                    found: format!("{:?}", only(&text, ref_schema)),
                    reference: ref_file.clone(),
                    expected: format!("{:?}", only(ref_schema, &text)),
                });
            }
            Some(_) => {}
        }
        if let (Some(columns), Some((_, have))) = (&spec.columns, &reference) {
            for c in columns {
                let from_path = spec.hive && f.source.contains(&format!("/{}=", c.name()));
                if !(have.contains_key(c.name()) || from_path) {
                    return Err(EngineError::SchemaMismatch {
                        input: name.to_string(),
                        file: f.source.clone(),
                        found: format!("columns {:?}", have.keys().collect::<Vec<_>>()),
                        reference: "the job spec".into(),
                        expected: format!("a column {:?}", c.name()),
                    });
                }
            }
        }
    }
    let args = ScanArgsParquet {
        hive_options: if spec.hive { HiveOptions::new_enabled() } else { HiveOptions::new_disabled() },
        ..Default::default()
    };
    let mut frame = LazyFrame::scan_parquet_files(paths(files).into(), args).map_err(|e| EngineError::Read {
        input: name.to_string(),
        file: files.first().map(|f| f.source.clone()).unwrap_or_default(),
        detail: e.to_string(),
    })?;
    if let Some(columns) = &spec.columns {
        let casts: Vec<Expr> =
            columns.iter().filter_map(|c| c.dtype().ok().map(|d| col(c.name()).strict_cast(d.polars()))).collect();
        frame = frame.with_columns(casts);
    }
    Ok(ReadInput { counter: None, frame, known_rows: Some(rows), bad: None })
}

/// Reads every page of one Parquet file, keeping nothing.
fn decode_parquet(f: &LocalFile) -> PolarsResult<()> {
    LazyFrame::scan_parquet(PlRefPath::new(f.path.to_string_lossy().as_ref()), ScanArgsParquet::default())?
        .select([all().as_expr().null_count()])
        .collect_with_engine(Engine::Streaming)
        .map(|_| ())
}

/// Turns a failed run into the most precise error available: for inputs on the `fail` policy,
/// find the first row that does not fit and name its file, row and column.
pub(super) fn explain_failure(
    step: &StepSpec,
    inputs: &BTreeMap<String, Vec<LocalFile>>,
    e: PolarsError,
) -> EngineError {
    // A file whose bytes can't be read as what it claims to be (a corrupt compressed stream,
    // text that is not UTF-8) fails deep in a plan, with an error that names no file.
    for (name, spec) in &step.inputs {
        if spec.format == Format::Parquet {
            continue;
        }
        for f in inputs.get(name).map(Vec::as_slice).unwrap_or_default() {
            // Under skip and quarantine, a line that is not UTF-8 is a bad row, not an error.
            if let Err(detail) = check_text_stream(f, spec.bad_rows == BadRows::Fail) {
                return EngineError::Read { input: name.clone(), file: f.source.clone(), detail };
            }
        }
    }
    // A Parquet file whose footer reads but whose pages don't: decode each file alone (on this
    // path only, and only when Polars blamed Parquet) to name it.
    let text = e.to_string();
    if text.contains("parquet") || text.contains("out of specification") {
        for (name, _) in step.inputs.iter().filter(|(_, s)| s.format == Format::Parquet) {
            for f in inputs.get(name).map(Vec::as_slice).unwrap_or_default() {
                if let Err(bad) = decode_parquet(f) {
                    return read_err(name, f, format!("the file is corrupt: {bad}"));
                }
            }
        }
    }
    for (name, spec) in &step.inputs {
        if spec.bad_rows != BadRows::Fail {
            continue;
        }
        let files = inputs.get(name).map(Vec::as_slice).unwrap_or_default();
        let found = match spec.format {
            Format::Csv => bad_rows::first_bad_csv_row(name, spec, files),
            Format::Ndjson => ndjson::first_bad_line(name, spec, files),
            Format::Parquet => None,
        };
        if let Some(bad) = found {
            return bad;
        }
    }
    let mut root = &e;
    while let PolarsError::Context { error, .. } | PolarsError::ExprContext { error, .. } = root {
        root = error;
    }
    match root {
        // What the query itself computes wrong (a division by zero, an overflow, a scalar
        // subquery of several rows, a type that can't be cast) fails the same way every time.
        PolarsError::ComputeError(_)
        | PolarsError::InvalidOperation(_)
        | PolarsError::SchemaMismatch(_)
        | PolarsError::ShapeMismatch(_)
        | PolarsError::ColumnNotFound(_)
        | PolarsError::OutOfBounds(_)
        | PolarsError::SchemaFieldNotFound(_)
        | PolarsError::StructFieldNotFound(_)
        | PolarsError::Duplicate(_) => EngineError::Compute { step: step.name.clone(), detail: e.to_string() },
        _ => EngineError::Execute { step: step.name.clone(), detail: e.to_string() },
    }
}
