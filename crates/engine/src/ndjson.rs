//! NDJSON input. The fast path hands the files to Polars. For `skip` and `quarantine` (and to
//! explain a failure) each line is checked first: it must be a JSON object whose declared
//! fields have the declared kinds; bad lines are set aside with their line number.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use polars::prelude::*;
use serde_json::Value;

use super::read::{BadSide, ReadInput, counter, schema_of, violation};
use super::{EngineError, LocalFile};
use runner_spec::{BadRows, ColumnSpec, DType, InputSpec};

fn open_text(path: &Path) -> std::io::Result<Box<dyn Read>> {
    let mut file = std::fs::File::open(path)?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic)?;
    let file = std::fs::File::open(path)?;
    Ok(if magic[..n].starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if magic[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(file)?)
    } else {
        Box::new(file)
    })
}

fn kind_fits(value: &Value, dtype: DType) -> bool {
    match (value, dtype) {
        (Value::Null, _) => true,
        (Value::String(_), DType::Str | DType::Date | DType::Datetime) => true,
        (Value::Bool(_), DType::Bool) => true,
        (Value::Number(n), DType::F32 | DType::F64) => n.is_f64() || n.is_i64() || n.is_u64(),
        (Value::Number(n), DType::I8 | DType::I16 | DType::I32 | DType::I64) => n.is_i64() || n.is_u64(),
        (Value::Number(n), DType::U8 | DType::U16 | DType::U32 | DType::U64) => n.is_u64(),
        // Anything may be kept as text.
        (_, DType::Str) => true,
        _ => false,
    }
}

/// Why a line is bad, and on which column; `None` when it is good.
fn check_line(line: &str, columns: &[ColumnSpec]) -> Option<(String, String)> {
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return Some(("*".into(), format!("not valid JSON: {e}"))),
    };
    let Value::Object(map) = value else {
        return Some(("*".into(), "not a JSON object".into()));
    };
    for c in columns {
        let dtype = c.dtype().unwrap_or(DType::Str);
        match map.get(c.name()) {
            None | Some(Value::Null) if c.required() => {
                return Some((c.name().to_string(), "a required value is missing".into()));
            }
            Some(v) if !kind_fits(v, dtype) => {
                return Some((
                    c.name().to_string(),
                    format!("{v} does not fit {}", format!("{dtype:?}").to_lowercase()),
                ));
            }
            _ => {}
        }
    }
    None
}

struct Checked {
    clean: PathBuf,
    good: u64,
    bad: Vec<(String, u64, String, String)>,
}

/// Splits one file into a clean copy and its bad lines.
fn split_file(input: &str, f: &LocalFile, columns: &[ColumnSpec], scratch: &Path) -> Result<Checked, EngineError> {
    let err = |e: std::io::Error| EngineError::Read {
        input: input.to_string(),
        file: f.source.clone(),
        detail: e.to_string(),
    };
    std::fs::create_dir_all(scratch).map_err(err)?;
    let name = f.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let clean = scratch.join(format!("{name}.clean.ndjson"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&clean).map_err(err)?);
    let reader = BufReader::new(open_text(&f.path).map_err(err)?);
    let (mut good, mut bad) = (0, Vec::new());
    for (i, bytes) in reader.split(b'\n').enumerate() {
        let bytes = bytes.map_err(err)?;
        // A line that is not UTF-8 is a bad line, kept (lossily) with the rest.
        let line = match String::from_utf8(bytes) {
            Ok(line) => line,
            Err(e) => {
                let shown = String::from_utf8_lossy(e.as_bytes()).trim_end_matches('\r').to_string();
                bad.push((
                    "*".into(),
                    i as u64 + 1,
                    "not UTF-8 (the bytes that are not are shown as U+FFFD)".into(),
                    shown,
                ));
                continue;
            }
        };
        let line = line.strip_suffix('\r').unwrap_or(&line).to_string();
        if line.trim().is_empty() {
            continue;
        }
        match check_line(&line, columns) {
            None => {
                out.write_all(line.as_bytes()).map_err(err)?;
                out.write_all(b"\n").map_err(err)?;
                good += 1;
            }
            Some((column, reason)) => bad.push((column, i as u64 + 1, reason, line)),
        }
    }
    out.flush().map_err(err)?;
    Ok(Checked { clean, good, bad })
}

/// Declared columns fix their types; the rest (nested records included) is inferred.
fn reader(spec: &InputSpec, paths: Vec<PlRefPath>) -> LazyJsonLineReader {
    let mut r =
        LazyJsonLineReader::new_paths(paths.into()).with_infer_schema_length(std::num::NonZeroUsize::new(10_000));
    if let Some(columns) = &spec.columns {
        r = r.with_schema_overwrite(Some(Arc::new(schema_of(columns))));
    }
    r
}

/// Reads an NDJSON input under its policy.
pub(super) fn read(
    name: &str,
    spec: &InputSpec,
    files: &[LocalFile],
    policy: BadRows,
    out_dir: &Path,
    file_tag: &str,
) -> Result<ReadInput, EngineError> {
    let read_err = |e: PolarsError| EngineError::Read {
        input: name.to_string(),
        file: files.iter().map(|f| f.source.as_str()).collect::<Vec<_>>().join(", "),
        detail: e.to_string(),
    };
    if policy == BadRows::Fail {
        let paths = files.iter().map(|f| PlRefPath::new(f.path.to_string_lossy().as_ref())).collect();
        // One scan for the counter and every output (see the CSV `fail` path).
        let frame = reader(spec, paths).finish().map_err(read_err)?.cache();
        return Ok(ReadInput {
            counter: Some(counter(&frame, violation(spec, None))),
            frame,
            known_rows: None,
            bad: None,
        });
    }
    let columns = spec.columns.as_deref().unwrap_or_default();
    let scratch = out_dir.join(".ndjson").join(name);
    let mut clean = Vec::new();
    let (mut good, mut bad_rows) = (0u64, Vec::new());
    for f in files {
        let checked = split_file(name, f, columns, &scratch)?;
        good += checked.good;
        clean.push(PlRefPath::new(checked.clean.to_string_lossy().as_ref()));
        bad_rows.extend(checked.bad.into_iter().map(|(_c, row, reason, line)| (f.source.clone(), row, reason, line)));
    }
    let frame = reader(spec, clean).finish().map_err(read_err)?;
    let bad_count = bad_rows.len() as u64;
    let quarantine_sink = if policy == BadRows::Quarantine && !bad_rows.is_empty() {
        let df = df!(
            "file" => bad_rows.iter().map(|b| b.0.clone()).collect::<Vec<_>>(),
            "row" => bad_rows.iter().map(|b| b.1).collect::<Vec<_>>(),
            "reason" => bad_rows.iter().map(|b| b.2.clone()).collect::<Vec<_>>(),
            "line" => bad_rows.iter().map(|b| b.3.clone()).collect::<Vec<_>>(),
        )
        .map_err(read_err)?;
        let target = super::quarantine_dir(out_dir, name).join(format!("{file_tag}.parquet"));
        Some(super::write::sink_file(df.lazy(), &target).map_err(read_err)?)
    } else {
        None
    };
    let count = df!("len" => [bad_count as u32]).map_err(read_err)?.lazy();
    Ok(ReadInput { counter: None, frame, known_rows: Some(good), bad: Some(BadSide { count, quarantine_sink }) })
}

/// The first bad line of any file, as an error.
pub(super) fn first_bad_line(input: &str, spec: &InputSpec, files: &[LocalFile]) -> Option<EngineError> {
    let columns = spec.columns.as_deref().unwrap_or_default();
    for f in files {
        let reader = BufReader::new(open_text(&f.path).ok()?);
        for (i, line) in reader.lines().enumerate() {
            let line = line.ok()?;
            if line.trim().is_empty() {
                continue;
            }
            if let Some((column, detail)) = check_line(&line, columns) {
                return Some(EngineError::BadRow {
                    input: input.to_string(),
                    file: f.source.clone(),
                    row: i as u64 + 1,
                    column,
                    detail,
                });
            }
        }
    }
    None
}
