//! Input operations SQL cannot express well: parse a JSON string column, unnest a struct,
//! explode a list, and flatten nested records the way AWS Glue's Relationalize does.

use polars::prelude::*;

use super::EngineError;
use super::read::schema_of;
use runner_spec::OpSpec;

const SEPARATOR: &str = "_";

fn explode_opts() -> ExplodeOptions {
    ExplodeOptions { empty_as_null: true, keep_nulls: true }
}

fn unnest(frame: LazyFrame, column: &str) -> LazyFrame {
    frame.unnest(by_name([column], true, false), Some(SEPARATOR.into()))
}

/// Applies the ops in order.
pub(super) fn apply(input: &str, ops: &[OpSpec], mut frame: LazyFrame) -> Result<LazyFrame, EngineError> {
    for op in ops {
        let fail = |detail: String| EngineError::Op { input: input.to_string(), op: format!("{op:?}"), detail };
        let schema = frame.clone().collect_schema().map_err(|e| fail(e.to_string()))?;
        let need = |column: &str| {
            schema.get(column).cloned().ok_or_else(|| {
                fail(format!("no column {column:?}; columns are {:?}", schema.iter_names().collect::<Vec<_>>()))
            })
        };
        frame = match op {
            OpSpec::ParseJson { column, fields } => {
                if need(column)? != DataType::String {
                    return Err(fail(format!("column {column:?} is not text")));
                }
                let dtype = DataType::Struct(schema_of(fields).iter_fields().collect());
                unnest(frame.with_column(col(column.as_str()).str().json_decode(dtype)), column)
            }
            OpSpec::Unnest { column } => {
                if !matches!(need(column)?, DataType::Struct(_)) {
                    return Err(fail(format!("column {column:?} is not a struct")));
                }
                unnest(frame, column)
            }
            OpSpec::Explode { column } => {
                if !matches!(need(column)?, DataType::List(_)) {
                    return Err(fail(format!("column {column:?} is not a list")));
                }
                frame.explode(by_name([column.as_str()], true, false), explode_opts())
            }
            OpSpec::Flatten { explode } => {
                let mut f = frame;
                // Unnest until no struct is left (nested structs surface one level at a time).
                for _ in 0..32 {
                    let s = f.clone().collect_schema().map_err(|e| fail(e.to_string()))?;
                    let structs: Vec<String> = s
                        .iter()
                        .filter(|(_, d)| matches!(d, DataType::Struct(_)))
                        .map(|(n, _)| n.to_string())
                        .collect();
                    if structs.is_empty() {
                        break;
                    }
                    f = f.unnest(by_name(structs, true, false), Some(SEPARATOR.into()));
                }
                for column in explode {
                    f = f.explode(by_name([column.as_str()], true, false), explode_opts());
                }
                f
            }
        };
    }
    Ok(frame)
}
