//! The planner's choices, shown on plans: where the rules decorrelate, and where the planner
//! follows DuckDB's typing. What the answers are is the differential corpus's business
//! (`tests/sql_corpus`); these pin the shapes that make them right.

use runner_sql::arrow_schema::{DataType, Field};
use runner_sql::{SqlError, Tables, plan};

fn tables() -> Tables {
    let int = |n: &str| Field::new(n, DataType::Int32, true);
    Tables::new()
        .with_table("t", [int("k"), int("v"), Field::new("d", DataType::Decimal128(10, 2), true)])
        .with_table("u", [int("k"), int("v")])
}

fn shape(sql: &str) -> String {
    match plan(sql, &tables()) {
        Ok(p) => p.display_indent().to_string(),
        Err(e) => panic!("{sql}: {e}"),
    }
}

#[test]
fn exists_over_an_ungrouped_aggregate_is_true_for_every_row() {
    let p = shape("SELECT k FROM t WHERE EXISTS (SELECT max(v) FROM u WHERE u.k = t.k)");
    assert!(!p.contains("Join") && !p.contains("TableScan: u"), "no semi join may drop rows:\n{p}");
    let p = shape("SELECT k FROM t WHERE NOT EXISTS (SELECT count(*) FROM u WHERE u.k = t.k)");
    assert!(!p.contains("TableScan: u"), "NOT EXISTS of one row is false for every row:\n{p}");
    // With HAVING the row can go: the subquery stays a join.
    let p = shape("SELECT k FROM t WHERE EXISTS (SELECT max(v) FROM u WHERE u.k = t.k HAVING max(v) > 1)");
    assert!(p.contains("LeftSemi Join"), "{p}");
}

#[test]
fn a_correlated_in_of_an_aggregate_groups_by_the_correlation() {
    let p = shape("SELECT k FROM t WHERE v IN (SELECT min(v) FROM u WHERE u.k = t.k)");
    assert!(p.contains("LeftSemi Join"), "{p}");
    assert!(p.contains("Aggregate: groupBy=[[u.k]]"), "the minimum is per correlation:\n{p}");
}

#[test]
fn a_correlated_scalar_subquery_keeps_outer_rows_with_no_group() {
    let p = shape("SELECT k FROM t WHERE 0 = (SELECT coalesce(sum(v), 0) FROM u WHERE u.k = t.k)");
    assert!(p.contains("Left Join"), "outer rows with no inner group stay:\n{p}");
}

#[test]
fn division_of_exact_numbers_is_a_division_of_doubles() {
    let p = plan("SELECT k / v AS q, d / 2 AS h, k // 2 AS i FROM t", &tables()).unwrap();
    let types: Vec<DataType> = p.schema().fields().iter().map(|f| f.data_type().clone()).collect();
    assert_eq!(types, [DataType::Float64, DataType::Float64, DataType::Int32]);
}

#[test]
fn avg_is_a_double() {
    let p = plan("SELECT avg(d) AS a, avg(k) AS b FROM t", &tables()).unwrap();
    let types: Vec<DataType> = p.schema().fields().iter().map(|f| f.data_type().clone()).collect();
    assert_eq!(types, [DataType::Float64, DataType::Float64]);
    // A decimal reaches the mean as it is (its exact sum over its count), an integer as a double.
    let p = shape("SELECT avg(d) AS a, avg(k) AS b FROM t");
    assert!(p.contains("avg(t.d)") && p.contains("avg(CAST(t.k AS Float64))"), "{p}");
    assert!(plan("SELECT avg('x') FROM t", &tables()).is_err());
}

#[test]
fn floor_ceil_and_trunc_of_a_decimal_have_scale_0() {
    let sql = "SELECT floor(d) AS f, ceil(d) AS c, trunc(d) AS t, trunc(d, 1) AS t1, floor(k) AS i FROM t";
    let p = plan(sql, &tables()).unwrap();
    let types: Vec<DataType> = p.schema().fields().iter().map(|f| f.data_type().clone()).collect();
    // `trunc(d, 1)` keeps its scale; a floor of an integer is DataFusion's double.
    let d0 = DataType::Decimal128(10, 0);
    assert_eq!(types, [d0.clone(), d0.clone(), d0, DataType::Decimal128(10, 2), DataType::Float64]);
}

#[test]
fn a_double_meeting_a_decimal_in_one_value_is_a_double() {
    let types = |sql: &str| -> Vec<DataType> {
        let p = plan(sql, &tables()).unwrap();
        p.schema().fields().iter().map(|f| f.data_type().clone()).collect()
    };
    assert_eq!(
        types("SELECT coalesce(d, 1e0) AS c, CASE WHEN k > 0 THEN d ELSE 0.5e0 END AS w FROM t"),
        [DataType::Float64, DataType::Float64]
    );
    // In a union, the decimal input's column becomes a double, whichever input comes first; the
    // other columns keep their types.
    assert_eq!(
        types("SELECT 3.25e0 AS c, k FROM t UNION ALL SELECT d, k FROM t"),
        [DataType::Float64, DataType::Int32]
    );
    assert_eq!(types("SELECT d AS c FROM t UNION SELECT 3.25e0 FROM u"), [DataType::Float64]);
    let p = shape("SELECT d AS c FROM t UNION ALL SELECT 3.25e0 FROM u");
    assert!(p.contains("CAST(t.d AS Float64)"), "{p}");
    // Two decimals stay a decimal.
    assert!(matches!(types("SELECT d FROM t UNION ALL SELECT 1.5 FROM u")[0], DataType::Decimal128(..)));
}

#[test]
fn unknown_names_are_refused_by_name() {
    let e = plan("SELECT nope FROM t", &tables()).unwrap_err();
    assert!(matches!(&e, SqlError::Plan(m) if m.contains("nope")), "{e}");
    let e = plan("SELECT k FROM missing", &tables()).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    let e = plan("SELECT k, max(v) AS m FROM t", &tables()).unwrap_err();
    assert!(e.to_string().to_lowercase().contains("group by") || e.to_string().contains("aggregate"), "{e}");
}

#[test]
fn a_date_plus_an_integer_counts_days_and_is_a_date() {
    let t = Tables::new()
        .with_table("t", [Field::new("dt", DataType::Date32, true), Field::new("n", DataType::Int64, true)]);
    let p = plan("SELECT dt + 1 AS a, dt - n AS b FROM t", &t).unwrap();
    let types: Vec<DataType> = p.schema().fields().iter().map(|f| f.data_type().clone()).collect();
    assert_eq!(types, [DataType::Date32, DataType::Date32]);
    assert!(!p.display_indent().to_string().contains("Interval"), "{}", p.display_indent());
}

#[test]
fn an_in_that_is_a_where_condition_stays_a_semi_join() {
    let p = shape("SELECT k FROM t WHERE v IN (SELECT v FROM u)");
    assert!(p.contains("LeftSemi Join"), "{p}");
    let p = shape("SELECT k FROM t WHERE v NOT IN (SELECT v FROM u)");
    assert!(p.contains("LeftAnti Join"), "{p}");
}

#[test]
fn an_in_under_not_or_in_the_select_list_keeps_its_null() {
    // DataFusion's mark join is true or false only: NOT (v IN …) would be true where SQL's IN is
    // NULL. The rules test three things: a match (an equi-join), a NULL on either side.
    let p = shape("SELECT k FROM t WHERE NOT (v IN (SELECT v FROM u)) OR k > 1");
    assert!(p.contains("LeftMark Join: t.v = __correlated_sq_1.v"), "the match is an equi-join:\n{p}");
    assert!(p.contains("THEN Boolean(NULL)"), "the IN can be NULL:\n{p}");
    for sql in [
        "SELECT k, v IN (SELECT v FROM u WHERE u.k = t.k) AS found FROM t",
        "SELECT k FROM t WHERE v > ALL (SELECT v FROM u)",
    ] {
        let p = shape(sql);
        assert!(p.contains("THEN Boolean(NULL)"), "{sql}: the answer can be NULL:\n{p}");
        assert!(!p.contains("Subquery:"), "{sql}: every subquery is decorrelated:\n{p}");
    }
}

#[test]
fn an_exists_in_the_select_list_is_a_count_joined_on_the_correlation() {
    let p = shape("SELECT k, EXISTS (SELECT 1 FROM u WHERE u.k = t.k) AS e FROM t");
    assert!(p.contains("Left Join"), "every outer row stays:\n{p}");
    assert!(p.contains("Aggregate: groupBy=[[u.k]]"), "one count per correlation:\n{p}");
    let types: Vec<DataType> = plan("SELECT EXISTS (SELECT 1 FROM u WHERE u.k = t.k) AS e FROM t", &tables())
        .unwrap()
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(types, [DataType::Boolean]);
}

#[test]
fn except_all_and_intersect_all_join_numbered_copies() {
    for (sql, join) in [
        ("SELECT k FROM t EXCEPT ALL SELECT k FROM u", "LeftAnti Join"),
        ("SELECT k FROM t INTERSECT ALL SELECT k FROM u", "LeftSemi Join"),
    ] {
        let p = shape(sql);
        assert!(p.contains(join), "{sql}:\n{p}");
        assert!(p.matches("row_number()").count() >= 2, "{sql}: both sides numbered:\n{p}");
    }
    // Without ALL, duplicates go and nothing is numbered.
    let p = shape("SELECT k FROM t EXCEPT SELECT k FROM u");
    assert!(!p.contains("row_number()"), "{p}");
}

#[test]
fn an_aggregate_joined_with_a_filtered_relation_groups_only_its_keys() {
    // Q17's shape: the subquery's average per key is needed for the keys of u's filtered rows.
    let p = shape(
        "SELECT sum(t.v) AS s FROM t, u WHERE t.k = u.k AND u.v = 3 AND t.v < (SELECT avg(v) FROM t t2 WHERE t2.k = u.k)",
    );
    assert!(p.contains("__spotlake_keys"), "the aggregate's input is reduced to the filtered keys:\n{p}");
    let reduced = p.split("Aggregate: groupBy=[[t2.k]]").nth(1).unwrap_or_default();
    assert!(reduced.contains("LeftSemi Join: t2.k = __spotlake_keys.k"), "{p}");
    assert!(reduced.contains("Filter: u.v = Int32(3)"), "the keys are the filtered relation's:\n{p}");
    // Nothing filters the outer side: every key is needed, and the plan is left as it was.
    let p = shape("SELECT k FROM t WHERE v < (SELECT avg(v) FROM u WHERE u.k = t.k)");
    assert!(!p.contains("__spotlake_keys"), "{p}");
}
