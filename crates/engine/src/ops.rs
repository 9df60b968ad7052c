//! Input operations SQL cannot express well: parse a JSON string column, unnest a struct,
//! explode a list, and flatten nested records the way AWS Glue's Relationalize does; and the
//! binary's own table operations.

use polars::prelude::*;

use super::EngineError;
use super::extensions::Extensions;
use super::read::schema_of;
use runner_spec::{BuiltinOp, OpSpec};

const SEPARATOR: &str = "_";

fn explode_opts() -> ExplodeOptions {
    ExplodeOptions { empty_as_null: true, keep_nulls: true }
}

fn unnest(frame: LazyFrame, column: &str) -> LazyFrame {
    frame.unnest(by_name([column], true, false), Some(SEPARATOR.into()))
}

/// Applies the ops in order: the built-in ones, and the binary's own from `brought`.
pub(super) fn apply(
    input: &str,
    ops: &[OpSpec],
    mut frame: LazyFrame,
    brought: &Extensions,
) -> Result<LazyFrame, EngineError> {
    for op in ops {
        let fail = |detail: String| EngineError::Op { input: input.to_string(), op: op.name(), detail };
        let builtin = match op {
            OpSpec::Custom(custom) => {
                frame = brought.apply_table_op(&custom.op, frame, &custom.params).map_err(fail)?;
                continue;
            }
            OpSpec::Builtin(builtin) => builtin,
        };
        let schema = frame.clone().collect_schema().map_err(|e| fail(e.to_string()))?;
        let need = |column: &str| {
            schema.get(column).cloned().ok_or_else(|| {
                fail(format!("no column {column:?}; columns are {:?}", schema.iter_names().collect::<Vec<_>>()))
            })
        };
        frame = match builtin {
            BuiltinOp::ParseJson { column, fields } => {
                if need(column)? != DataType::String {
                    return Err(fail(format!("column {column:?} is not text")));
                }
                let dtype = DataType::Struct(schema_of(fields).iter_fields().collect());
                unnest(frame.with_column(col(column.as_str()).str().json_decode(dtype)), column)
            }
            BuiltinOp::Unnest { column } => {
                if !matches!(need(column)?, DataType::Struct(_)) {
                    return Err(fail(format!("column {column:?} is not a struct")));
                }
                unnest(frame, column)
            }
            BuiltinOp::Explode { column } => {
                if !matches!(need(column)?, DataType::List(_)) {
                    return Err(fail(format!("column {column:?} is not a list")));
                }
                frame.explode(by_name([column.as_str()], true, false), explode_opts())
            }
            BuiltinOp::Flatten { explode } => {
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
