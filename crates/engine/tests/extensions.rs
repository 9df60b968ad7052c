//! The binary's own functions and table operations in an item's SQL and ops: everywhere SQL may
//! call a function (select, where, group by, a CTE, a subquery, a derived table, a union), and
//! the failures that name the function. This test binary installs one set for the process, as a
//! binary built with `runner::Extensions` does.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;
use runner_engine::extensions::{Extensions, install};
use runner_engine::{EngineError, ItemRun, LocalFile, run_item};
use runner_spec::JobSpec;
use runner_spec::extensions::{Param, ParamKind};

const EVENTS: &str = "user_id,url,m,x,y
u1,https://a.com/x,1500,0,0
u1,https://b.org/y,500,3,4
u2,https://a.com/z,2000,6,8
u2,,0,1,1
";

fn setup() {
    install(
        Extensions::new()
            .text_function("host", "1", |url| url.split('/').nth(2).map(str::to_string))
            .number_function("km", "1", 1, |v| Some(v[0] / 1000.0))
            .number_function("dist", "1", 4, |v| Some(((v[2] - v[0]).powi(2) + (v[3] - v[1]).powi(2)).sqrt()))
            .scalar("boom", "1", DataType::String, |args| {
                let text = args[0].str()?;
                if text.iter().any(|v| v == Some("https://b.org/y")) {
                    panic!("cannot parse https://b.org/y");
                }
                Ok(args[0].clone())
            })
            .number_aggregate("geomean", "1", |v| {
                (!v.is_empty()).then(|| (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp())
            })
            .scalar("short", "1", DataType::String, |args| Ok(args[0].head(Some(1))))
            .scalar("wrongtype", "1", DataType::String, |args| Ok(Column::new("n".into(), vec![1i64; args[0].len()])))
            .table_op(
                "scale",
                "1",
                vec![Param::required("column", ParamKind::Text), Param::required("factor", ParamKind::Float)],
                |frame, params| {
                    let column = params.text("column").unwrap_or_default().to_string();
                    let factor = params.float("factor").unwrap_or(1.0);
                    Ok(frame.with_column((col(column.as_str()) * lit(factor)).alias(column.as_str())))
                },
            ),
    );
}

fn job(ops: &str, sql: &str) -> JobSpec {
    setup();
    let text = format!(
        r#"
name = "web"
[[step]]
name = "clean"
[step.inputs.raw]
path = "raw/*.csv"
format = "csv"
columns = [["user_id", "str"], ["url", "str"], ["m", "f64"], ["x", "f64"], ["y", "f64"]]
ops = [{ops}]
[step.outputs.out]
path = "out"
sql = """{sql}"""
"#
    );
    JobSpec::parse(&text, "job.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn run(job: &JobSpec, dir: &Path) -> Result<DataFrame, EngineError> {
    run_on(job, dir, EVENTS, "out")
}

/// Runs `job` over `data` as its one input file; returns output `output`.
fn run_on(job: &JobSpec, dir: &Path, data: &str, output: &str) -> Result<DataFrame, EngineError> {
    let file = dir.join("a.csv");
    std::fs::write(&file, data).unwrap();
    let inputs = BTreeMap::from([(
        "raw".to_string(),
        vec![LocalFile { path: file.clone(), source: "raw/a.csv".into(), size: data.len() as u64 }],
    )]);
    let out = dir.join("out");
    run_item(ItemRun { step: &job.steps[0], partition: None, inputs, out_dir: &out, file_tag: "i", checks: &[] })?;
    Ok(LazyFrame::scan_parquet(PlRefPath::new(out.join(output).to_string_lossy().as_ref()), Default::default())
        .unwrap()
        .collect()
        .unwrap())
}

fn query(sql: &str) -> DataFrame {
    let dir = tempfile::tempdir().unwrap();
    run(&job("", sql), dir.path()).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn texts(df: &DataFrame, column: &str) -> Vec<Option<String>> {
    df.column(column).unwrap().str().unwrap().iter().map(|v| v.map(str::to_string)).collect()
}

fn numbers(df: &DataFrame, column: &str) -> Vec<Option<f64>> {
    df.column(column).unwrap().cast(&DataType::Float64).unwrap().f64().unwrap().iter().collect()
}

#[test]
fn functions_stand_in_select_where_and_group_by() {
    let df = query(
        "SELECT host(url) AS h, sum(km(m)) AS k, count(*) AS n FROM raw \
         WHERE host(url) IS NOT NULL GROUP BY host(url) ORDER BY h",
    );
    assert_eq!(texts(&df, "h"), [Some("a.com".into()), Some("b.org".into())]);
    assert_eq!(numbers(&df, "k"), [Some(3.5), Some(0.5)]);
    assert_eq!(numbers(&df, "n"), [Some(2.0), Some(1.0)]);
    // Null in, null out; literals broadcast; several arguments.
    let df = query("SELECT host(url) AS h, dist(0, 0, x, y) AS d FROM raw ORDER BY d");
    assert_eq!(texts(&df, "h"), [Some("a.com".into()), None, Some("b.org".into()), Some("a.com".into())]);
    assert_eq!(numbers(&df, "d"), [Some(0.0), Some(2f64.sqrt()), Some(5.0), Some(10.0)]);
    // A null argument gives null without a call.
    let df = query("SELECT km(NULLIF(m, 0)) AS k, dist(x, y, NULLIF(x, 0), 0) AS d FROM raw ORDER BY m");
    assert_eq!(numbers(&df, "k"), [None, Some(0.5), Some(1.5), Some(2.0)]);
    assert_eq!(numbers(&df, "d"), [Some(1.0), Some(4.0), None, Some(8.0)]);
}

#[test]
fn functions_stand_in_ctes_subqueries_derived_tables_and_unions() {
    let df = query(
        "WITH hosts AS (SELECT user_id, host(url) AS h FROM raw) \
         SELECT h AS v FROM hosts WHERE user_id IN (SELECT user_id FROM raw WHERE dist(0, 0, x, y) > 6) \
         UNION ALL SELECT CAST(d.k AS VARCHAR) AS v FROM (SELECT km(m) AS k FROM raw WHERE user_id = 'u1') AS d",
    );
    let mut v = texts(&df, "v");
    v.sort();
    assert_eq!(v, [None, Some("0.5".into()), Some("1.5".into()), Some("a.com".into())]);
}

#[test]
fn aggregates_stand_in_group_by_ctes_and_whole_queries() {
    // m: u1 1500, 500; u2 2000, 0. geomean(1500, 500) = sqrt(750000); (2000, 0) = 0.
    let df = query(
        "WITH g AS (SELECT user_id, geomean(m) AS gm, count(*) AS n FROM raw GROUP BY user_id) \
         SELECT user_id, gm, n FROM g ORDER BY user_id",
    );
    assert_eq!(texts(&df, "user_id"), [Some("u1".into()), Some("u2".into())]);
    let gm = numbers(&df, "gm");
    assert!((gm[0].unwrap() - 750_000f64.sqrt()).abs() < 1e-9, "{gm:?}");
    assert_eq!(gm[1], Some(0.0));
    let whole = query("SELECT geomean(x + 1) AS g FROM raw");
    // x + 1: 1, 4, 7, 2 → (56)^(1/4).
    assert!((numbers(&whole, "g")[0].unwrap() - 56f64.powf(0.25)).abs() < 1e-9);
}

#[test]
fn functions_stand_in_having_order_by_join_on_and_over_aggregates() {
    let df = query(
        "SELECT user_id, geomean(m + 1) AS g, km(sum(m)) AS total FROM raw GROUP BY user_id \
         HAVING geomean(m + 1) > 100 ORDER BY total DESC",
    );
    // u1: 1501, 501 → sqrt(752001) ≈ 867; u2: 2001, 1 → sqrt(2001) ≈ 44.7, dropped by HAVING.
    assert_eq!(texts(&df, "user_id"), [Some("u1".into())]);
    assert_eq!(numbers(&df, "total"), [Some(2.0)]);
    let df = query(
        "SELECT a.user_id AS a, b.user_id AS b FROM raw AS a JOIN raw AS b ON host(a.url) = host(b.url) \
         WHERE a.user_id < b.user_id ORDER BY host(a.url), a.user_id",
    );
    // a.com: u1 and u2.
    assert_eq!(texts(&df, "a"), [Some("u1".into())]);
    assert_eq!(texts(&df, "b"), [Some("u2".into())]);
}

#[test]
fn empty_inputs_literal_arguments_and_untyped_nulls_are_rows_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let header_only = "user_id,url,m,x,y\n";
    let job = job("", "SELECT dist(x, y, 0, 0) AS d, host(url) AS h, km(2500) AS k FROM raw");
    let df = run_on(&job, dir.path(), header_only, "out").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(df.height(), 0);
    let df = query("SELECT host(NULL) AS h, km(NULL) AS k, km(2500) AS c FROM raw");
    assert_eq!(texts(&df, "h"), [None, None, None, None]);
    assert_eq!(numbers(&df, "k"), [None, None, None, None]);
    assert_eq!(numbers(&df, "c"), [Some(2.5); 4]);
}

#[test]
fn each_output_is_planned_apart_so_names_of_one_never_reach_another() {
    setup();
    // Output "a" names a derived table `s` (Polars keeps it among its context's tables), and
    // output "b" a CTE `s`: "b" must read its own.
    let text = r#"
name = "two"
[[step]]
name = "clean"
[step.inputs.raw]
path = "raw/*.csv"
format = "csv"
columns = [["user_id", "str"], ["url", "str"], ["m", "f64"], ["x", "f64"], ["y", "f64"]]
[step.outputs.a]
path = "a"
sql = "SELECT s.h, count(*) AS n FROM (SELECT host(url) AS h FROM raw) AS s GROUP BY s.h"
[step.outputs.b]
path = "b"
sql = "WITH s AS (SELECT user_id FROM raw) SELECT * FROM s"
"#;
    let job = JobSpec::parse(text, "job.toml").unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let b = run_on(&job, dir.path(), EVENTS, "b").unwrap_or_else(|e| panic!("{e}"));
    let mut users = texts(&b, "user_id");
    users.sort();
    assert_eq!(users, [Some("u1".into()), Some("u1".into()), Some("u2".into()), Some("u2".into())]);
}

#[test]
fn a_subquery_of_one_aggregate_of_the_binarys_is_one_value() {
    // geomean(m + 1) of all rows: (1501 · 501 · 2001 · 1)^¼ ≈ 196.9.
    let df = query("SELECT m FROM raw WHERE m > (SELECT geomean(m + 1) FROM raw) ORDER BY m");
    assert_eq!(numbers(&df, "m"), [Some(500.0), Some(1500.0), Some(2000.0)]);
    // Per user: u1 √(1501 · 501) ≈ 867.2, u2 √(2001 · 1) ≈ 44.7.
    let df = query(
        "SELECT user_id, m FROM raw WHERE m >= (SELECT geomean(r.m + 1) FROM raw AS r WHERE r.user_id = raw.user_id) \
         ORDER BY user_id",
    );
    assert_eq!(numbers(&df, "m"), [Some(1500.0), Some(2000.0)]);
}

#[test]
fn literals_inside_functions_of_floats_are_floats() {
    // `decimal_literals` leaves 52.52 a float here: Polars' trigonometry refuses decimals.
    let df = query("SELECT COS(RADIANS(52.52)) AS c, SQRT(x + 0.25) AS r FROM raw ORDER BY x");
    assert_eq!(numbers(&df, "c")[0], Some(52.52f64.to_radians().cos()));
    assert_eq!(numbers(&df, "r"), [Some(0.5), Some(1.25f64.sqrt()), Some(3.25f64.sqrt()), Some(2.5)]);
}

#[test]
fn a_table_operation_takes_its_parameters_from_the_toml() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(r#"{ op = "scale", column = "m", factor = 0.001 }"#, "SELECT user_id, m FROM raw ORDER BY m");
    let df = run(&job, dir.path()).unwrap();
    assert_eq!(numbers(&df, "m"), [Some(0.0), Some(0.5), Some(1.5), Some(2.0)]);
}

fn failure(sql: &str) -> (EngineError, bool) {
    let dir = tempfile::tempdir().unwrap();
    let e = run(&job("", sql), dir.path()).unwrap_err();
    let permanent = e.is_permanent();
    (e, permanent)
}

#[test]
fn a_panic_a_wrong_length_or_a_wrong_type_fails_the_item_naming_function_step_and_file() {
    let (e, permanent) = failure("SELECT boom(url) AS b FROM raw");
    assert_eq!(
        e.to_string(),
        "step \"clean\": function boom panicked: cannot parse https://b.org/y (the item's files: raw/a.csv)"
    );
    assert!(permanent, "a retry can't fix it");
    let (e, _) = failure("SELECT short(url) AS s FROM raw");
    assert_eq!(
        e.to_string(),
        "step \"clean\": function short returned 1 rows for 4 (a function returns one value per row) \
         (the item's files: raw/a.csv)"
    );
    let (e, _) = failure("WITH c AS (SELECT wrongtype(url) AS w FROM raw) SELECT w FROM c");
    assert_eq!(
        e.to_string(),
        "step \"clean\": function wrongtype returned i64 values, not the str it declares (the item's files: raw/a.csv)"
    );
}

#[test]
fn wrong_arguments_are_refused_when_the_query_is_planned() {
    let (e, permanent) = failure("SELECT host(m) AS h FROM raw");
    assert!(permanent);
    assert!(e.to_string().contains("function host takes one text argument; it was given m (f64)"), "{e}");
    let (e, _) = failure("SELECT dist(x, y) AS d FROM raw");
    assert!(e.to_string().contains("function dist takes 4 numeric arguments; it was given x (f64), y (f64)"), "{e}");
}

#[test]
fn the_planners_own_functions_are_not_the_binarys_to_take() {
    assert!(runner_sql::is_builtin("round") && runner_sql::is_builtin("count") && runner_sql::is_builtin("rank"));
    assert!(runner_sql::is_builtin("strptime"), "DuckDB's functions the lowering brings count too");
    assert!(!runner_sql::is_builtin("ua_family"));
    let taken = std::panic::catch_unwind(|| {
        runner_engine::extensions::Extensions::new().text_function("lower", "1", |s| Some(s.into()))
    });
    assert!(taken.is_err(), "a binary can't bring a function named like one of SQL's");
}
