//! Rules that span fields of a job spec. Each error carries its location, e.g.
//! `step "clean" › input "raw" › columns[2]`.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    BadRows, BuiltinOp, CheckSpec, DType, Format, InputSpec, JobSpec, OpSpec, OutputSpec, Split, StepSpec, template,
};
use runner_types::Severity;

type Failure = (String, String);

fn at(location: impl Into<String>, message: impl Into<String>) -> Failure {
    (location.into(), message.into())
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks the whole spec.
pub fn validate(spec: &JobSpec) -> Result<(), Failure> {
    if spec.name.is_empty() || !spec.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
        return Err(at("name", format!("job name {:?} must be letters, digits, `-` or `_`", spec.name)));
    }
    if spec.steps.is_empty() {
        return Err(at("step", "the job has no steps; add a [[step]] table"));
    }
    let mut names = BTreeSet::new();
    for step in &spec.steps {
        let loc = format!("step {:?}", step.name);
        if !is_identifier(&step.name) {
            return Err(at(&loc, "a step name must be an identifier (letters, digits, `_`)"));
        }
        if !names.insert(step.name.as_str()) {
            return Err(at(&loc, "two steps have this name"));
        }
        validate_step(step, &loc)?;
    }
    order(spec).map_err(|m| at("step", m))?;
    validate_tables(spec)?;
    for (name, source) in &spec.env {
        let plain = match source {
            runner_types::EnvSource::Value(v) => runner_types::refuse_value(name, v),
            _ => None,
        };
        if let Some(why) = runner_types::refuse_name(name).or(plain) {
            return Err(at(format!("env {name:?}"), why));
        }
    }
    for (i, check) in spec.checks.iter().enumerate() {
        validate_check(spec, check, &format!("check[{i}] {:?}", check.name()))?;
    }
    Ok(())
}

fn validate_step(step: &StepSpec, loc: &str) -> Result<(), Failure> {
    if step.inputs.is_empty() {
        return Err(at(loc, "the step has no inputs"));
    }
    if step.outputs.is_empty() {
        return Err(at(loc, "the step has no outputs"));
    }
    for (name, input) in &step.inputs {
        let loc = format!("{loc} › input {name:?}");
        if !is_identifier(name) {
            return Err(at(&loc, "an input name is its SQL table name: it must be an identifier"));
        }
        validate_input(input, &loc)?;
    }
    let split_input = step.split_input_name();
    let Some(split_spec) = step.inputs.get(split_input) else {
        return Err(at(
            format!("{loc} › split_input"),
            format!("no input named {split_input:?}; inputs are {:?}", step.inputs.keys().collect::<Vec<_>>()),
        ));
    };
    match &step.split {
        Split::Partition { partition, .. } if !(split_spec.format == Format::Parquet && split_spec.hive) => {
            return Err(at(
                format!("{loc} › split"),
                format!("splitting by partition {partition:?} needs a hive-partitioned Parquet input (hive = true)"),
            ));
        }
        Split::Size { size_mb: 0 } | Split::Partition { size_mb: Some(0), .. } => {
            return Err(at(format!("{loc} › split"), "size_mb must be positive"));
        }
        _ => {}
    }
    if step.max_attempts == Some(0) {
        return Err(at(format!("{loc} › max_attempts"), "must be at least 1"));
    }
    for (name, output) in &step.outputs {
        let loc = format!("{loc} › output {name:?}");
        validate_output(step, name, output, &loc)?;
    }
    Ok(())
}

fn validate_columns(columns: &[super::ColumnSpec], loc: &str) -> Result<(), Failure> {
    let mut seen = BTreeSet::new();
    for (i, c) in columns.iter().enumerate() {
        let cloc = format!("{loc}[{i}]");
        if c.name().is_empty() {
            return Err(at(&cloc, "a column needs a name"));
        }
        if !seen.insert(c.name()) {
            return Err(at(&cloc, format!("column {:?} is declared twice", c.name())));
        }
        let dtype = DType::parse(c.dtype_text()).map_err(|m| at(&cloc, m))?;
        if let Some(format) = c.format() {
            if !matches!(dtype, DType::Date | DType::Datetime) {
                return Err(at(
                    &cloc,
                    format!("`format` applies to date and datetime columns, not {:?}", c.dtype_text()),
                ));
            }
            validate_time_format(format, dtype).map_err(|m| at(&cloc, m))?;
        }
    }
    Ok(())
}

/// A format must be valid strftime and name the parts its type needs: without them a
/// value could never parse, and every row would be bad.
fn validate_time_format(format: &str, dtype: DType) -> Result<(), String> {
    use chrono::format::{Fixed, Item, Numeric, StrftimeItems};
    let mut has = BTreeSet::new();
    for item in StrftimeItems::new(format) {
        match item {
            Item::Error => return Err(format!("format {format:?} is not a valid strftime format")),
            Item::Fixed(Fixed::TimezoneOffset | Fixed::TimezoneOffsetColon | Fixed::TimezoneOffsetZ) => {
                return Err(format!(
                    "format {format:?} has a time-zone offset, but datetime columns have no time zone; \
                     match a literal suffix instead (for example `Z`)"
                ));
            }
            Item::Numeric(n, _) => {
                has.insert(format!("{n:?}"));
            }
            _ => {}
        }
    }
    let date_parts = [Numeric::Year, Numeric::Month, Numeric::Day];
    let missing: Vec<String> = date_parts.iter().map(|n| format!("{n:?}")).filter(|n| !has.contains(n)).collect();
    // %F and %D expand to numeric items, so checking numerics covers the shorthands too.
    let by_ordinal = has.contains("Ordinal") && has.contains("Year");
    if !missing.is_empty() && !by_ordinal {
        return Err(format!("format {format:?} needs a year, month and day (%Y, %m, %d)"));
    }
    if dtype == DType::Datetime && !has.contains("Hour") && !has.contains("Hour12") {
        return Err(format!("format {format:?} of a datetime column needs an hour (%H)"));
    }
    Ok(())
}

fn validate_input(input: &InputSpec, loc: &str) -> Result<(), Failure> {
    template::placeholders(&input.path).map_err(|m| at(format!("{loc} › path"), m))?;
    if let Some(columns) = &input.columns {
        validate_columns(columns, &format!("{loc} › columns"))?;
    }
    match input.format {
        Format::Csv => {
            if !input.header && input.columns.is_none() {
                return Err(at(
                    format!("{loc} › columns"),
                    "a CSV without a header needs `columns` (names and dtypes, in file order)",
                ));
            }
            for (key, value) in [("separator", &input.separator), ("quote", &input.quote)] {
                if let Some(v) = value
                    && (v.len() > 1 || (key == "separator" && v.is_empty()))
                {
                    return Err(at(format!("{loc} › {key}"), format!("{key} must be a single byte, got {v:?}")));
                }
            }
            if input.bad_rows != BadRows::Fail && input.columns.is_none() {
                return Err(at(
                    format!("{loc} › bad_rows"),
                    "skipping or quarantining bad rows needs declared `columns` to judge rows against",
                ));
            }
        }
        Format::Ndjson | Format::Parquet => {
            if input.separator.is_some() || input.quote.is_some() || !input.null_values.is_empty() || !input.header {
                return Err(at(loc, "separator, quote, null_values and header apply to CSV inputs only"));
            }
        }
    }
    if input.format != Format::Parquet && (input.hive || !input.hive_filter.is_empty()) {
        return Err(at(format!("{loc} › hive"), "hive keys are read from Parquet inputs only"));
    }
    if !input.hive_filter.is_empty() && !input.hive {
        return Err(at(format!("{loc} › hive_filter"), "hive_filter needs hive = true"));
    }
    if !input.required && input.columns.is_none() {
        return Err(at(
            format!("{loc} › required"),
            "an optional input that matches no file is read as an empty table, which needs its columns: declare `columns`",
        ));
    }
    if input.format == Format::Parquet && input.bad_rows != BadRows::Fail {
        return Err(at(format!("{loc} › bad_rows"), "Parquet is typed: bad_rows applies to CSV and NDJSON"));
    }
    for value in input.hive_filter.values() {
        template::placeholders(value).map_err(|m| at(format!("{loc} › hive_filter"), m))?;
    }
    for (i, op) in input.ops.iter().enumerate() {
        match op {
            OpSpec::Builtin(BuiltinOp::ParseJson { fields, .. }) => {
                validate_columns(fields, &format!("{loc} › ops[{i}] › fields"))?;
            }
            OpSpec::Builtin(_) => {}
            OpSpec::Custom(custom) => {
                let brought = crate::extensions::installed();
                let Some(sig) = brought.table_ops.get(&custom.op) else {
                    return Err(at(
                        format!("{loc} › ops[{i}]"),
                        format!(
                            "no operation {:?}: the built-in ones are {}, and this binary's own are {}",
                            custom.op,
                            crate::BUILTIN_OPS.join(", "),
                            brought.table_op_list()
                        ),
                    ));
                };
                sig.check(&custom.params).map_err(|m| at(format!("{loc} › ops[{i}] › {}", custom.op), m))?;
            }
        }
    }
    Ok(())
}

fn validate_output(step: &StepSpec, output_name: &str, output: &OutputSpec, loc: &str) -> Result<(), Failure> {
    template::placeholders(&output.path).map_err(|m| at(format!("{loc} › path"), m))?;
    if output.path.contains('*') {
        return Err(at(format!("{loc} › path"), "an output path is a directory, not a glob"));
    }
    if output.sql.is_none() && (step.inputs.len() > 1 || step.outputs.len() > 1) {
        return Err(at(loc, "with several inputs or outputs, each output needs `sql` saying what it holds"));
    }
    if let Some(sql) = &output.sql {
        template::check_sql(sql).map_err(|m| at(format!("{loc} › sql"), m))?;
        for table in crate::sql::sql_tables(sql).map_err(|m| at(format!("{loc} › sql"), m))? {
            if !step.inputs.contains_key(&table) {
                return Err(at(
                    format!("{loc} › sql"),
                    format!(
                        "the SQL reads table {table:?}, which is not an input of this step; inputs are {:?}",
                        step.inputs.keys().collect::<Vec<_>>()
                    ),
                ));
            }
        }
        // What is refused on the text alone is refused now, before any data is read; the rest
        // when the item plans its query over the inputs' real schemas (and fails at once).
        let neutral = template::neutral(sql).map_err(|m| at(format!("{loc} › sql"), m))?;
        let theirs = crate::extensions::installed().functions.keys().cloned().collect();
        runner_sql::check(&neutral, &theirs).map_err(|e| at(format!("{loc} › sql"), e.to_string()))?;
    }
    for key in &output.partition_by {
        if key.is_empty() || key.contains('/') || key.contains('=') {
            return Err(at(format!("{loc} › partition_by"), format!("{key:?} is not a usable column name")));
        }
    }
    if let Some(level) = output.compression_level {
        let ok = match output.compression {
            super::OutputCompression::Zstd => (1..=22).contains(&level),
            super::OutputCompression::Gzip => (0..=9).contains(&level),
            _ => false,
        };
        if !ok {
            return Err(at(format!("{loc} › compression_level"), format!("level {level} does not fit the codec")));
        }
    }
    if output.row_group_size == Some(0) {
        return Err(at(format!("{loc} › row_group_size"), "must be positive"));
    }
    if output.max_rows_per_file == Some(0) {
        return Err(at(format!("{loc} › max_rows_per_file"), "must be positive"));
    }
    if let Some(table) = &output.table {
        table.validate(output_name, output).map_err(|(field, m)| at(format!("{loc} › {field}"), m))?;
    }
    Ok(())
}

/// Two table outputs of a job may not share a root (each commit would remove the other's
/// files) or a name in one catalog database.
fn validate_tables(spec: &JobSpec) -> Result<(), Failure> {
    let mut roots = BTreeMap::new();
    let mut names = BTreeMap::new();
    for step in &spec.steps {
        for (name, output) in &step.outputs {
            let Some(table) = &output.table else { continue };
            let loc = format!("step {:?} › output {name:?} › table", step.name);
            let layout = super::TableLayout::of(output).map_err(|m| at(&loc, m))?;
            if let Some(other) = roots.insert(layout.root.clone(), loc.clone()) {
                return Err(at(
                    &loc,
                    format!("{other} is kept at the same root {:?}; give each table its own", layout.root),
                ));
            }
            let catalog_name = (table.glue_database.clone(), table.name_or(name).to_string());
            if let Some(other) = names.insert(catalog_name.clone(), loc.clone()) {
                return Err(at(
                    &loc,
                    format!("{other} has the same table name {:?}; set `name` on one", catalog_name.1),
                ));
            }
        }
    }
    Ok(())
}

fn validate_check(spec: &JobSpec, check: &CheckSpec, loc: &str) -> Result<(), Failure> {
    let output = check.output();
    let exists = spec.step(output.step.as_str()).is_some_and(|s| s.outputs.contains_key(&output.output));
    if !exists {
        return Err(at(loc, format!("no output {:?} in the job", output.to_string())));
    }
    if let Some(sev) = check.severity_text()
        && sev != "WARN"
        && sev != "ERROR"
    {
        return Err(at(loc, format!("severity must be WARN or ERROR, got {sev:?}")));
    }
    if let CheckSpec::RowCount { min, max, warn_min, warn_max, .. } = check {
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            return Err(at(loc, format!("min {lo} is above max {hi}")));
        }
        if (warn_min.is_some() || warn_max.is_some()) && check.severity() == Severity::Warn {
            return Err(at(loc, "warn_min and warn_max are softer bounds of an ERROR check; this one is WARN"));
        }
        // A softer bound outside the hard one could never be what fails.
        let bounds = [("warn_min", *warn_min, "min", *min, true), ("warn_max", *warn_max, "max", *max, false)];
        for (soft_name, soft, hard_name, hard, is_min) in bounds {
            if let (Some(s), Some(h)) = (soft, hard)
                && (if is_min { s < h } else { s > h })
            {
                return Err(at(loc, format!("{soft_name} {s} is outside {hard_name} {h}")));
            }
        }
        if let (Some(lo), Some(hi)) = (warn_min, warn_max)
            && lo > hi
        {
            return Err(at(loc, format!("warn_min {lo} is above warn_max {hi}")));
        }
    }
    Ok(())
}

/// The literal directory prefix of a path: everything before the first placeholder or glob.
fn literal_prefix(path: &str) -> &str {
    let cut = path.find(['{', '*', '?', '[']).unwrap_or(path.len());
    path[..cut].trim_end_matches('/')
}

/// True when data read from `input` may be written by `output` (one is inside the other).
/// Whether an output path and an input path can name the same files (one's literal prefix is
/// a directory of the other's).
pub fn overlaps(output: &str, input: &str) -> bool {
    let (o, i) = (literal_prefix(output), literal_prefix(input));
    let under = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
    !o.is_empty() && !i.is_empty() && (under(i, o) || under(o, i))
}

/// Steps in dependency order: a step runs after every step whose outputs its inputs read.
pub fn order(spec: &JobSpec) -> Result<Vec<&StepSpec>, String> {
    let mut deps: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for step in &spec.steps {
        let entry = deps.entry(step.name.as_str()).or_default();
        for other in &spec.steps {
            if other.name == step.name {
                continue;
            }
            let reads = step.inputs.values().any(|i| other.outputs.values().any(|o| overlaps(&o.path, &i.path)));
            if reads {
                entry.insert(other.name.as_str());
            }
        }
        for input in step.inputs.values() {
            if step.outputs.values().any(|o| overlaps(&o.path, &input.path)) {
                return Err(format!("step {:?} reads its own output ({:?})", step.name, input.path));
            }
        }
    }
    let mut done: Vec<&StepSpec> = Vec::new();
    while done.len() < spec.steps.len() {
        let ready = spec.steps.iter().find(|s| {
            !done.iter().any(|d| d.name == s.name)
                && deps[s.name.as_str()].iter().all(|d| done.iter().any(|x| x.name == *d))
        });
        match ready {
            Some(step) => done.push(step),
            None => {
                let stuck: Vec<_> = spec
                    .steps
                    .iter()
                    .filter(|s| !done.iter().any(|d| d.name == s.name))
                    .map(|s| s.name.as_str())
                    .collect();
                return Err(format!("steps {stuck:?} depend on each other in a cycle"));
            }
        }
    }
    Ok(done)
}

/// The steps `step` depends on.
pub fn upstream<'a>(spec: &'a JobSpec, step: &StepSpec) -> Vec<&'a StepSpec> {
    spec.steps
        .iter()
        .filter(|other| {
            other.name != step.name
                && step.inputs.values().any(|i| other.outputs.values().any(|o| overlaps(&o.path, &i.path)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_by_literal_prefix() {
        assert!(overlaps("clean", "clean/day={partition_key}/*.parquet"));
        assert!(overlaps("out/{partition_key}", "out/*/x.parquet"));
        assert!(!overlaps("clean", "cleaner/*.parquet"));
    }
}
