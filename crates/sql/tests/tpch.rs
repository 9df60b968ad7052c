//! The 22 TPC-H queries of `runner/examples/tpch` through the front end: which rules each one
//! needs, and that what comes out parses again. (`runner/tests/tpch.rs` runs them on data.)

use runner_sql::{Catalog, ColumnType, prepare};

fn catalog() -> Catalog {
    // The types tpchgen-cli writes: keys and counts integers, money and quantities DECIMAL(15,2).
    let t = |c: &str| {
        c.split(' ')
            .map(|name| {
                let ty = match name {
                    _ if name.ends_with("key")
                        || name.ends_with("size")
                        || name.ends_with("availqty")
                        || name.ends_with("linenumber")
                        || name.ends_with("shippriority") =>
                    {
                        ColumnType::Int
                    }
                    _ if name.ends_with("price")
                        || name.ends_with("acctbal")
                        || name.ends_with("cost")
                        || name.ends_with("quantity")
                        || name.ends_with("discount")
                        || name.ends_with("tax") =>
                    {
                        ColumnType::Decimal { scale: 2 }
                    }
                    _ => ColumnType::Other,
                };
                (name.to_string(), ty)
            })
            .collect::<Vec<_>>()
    };
    Catalog::new()
        .with_typed_table("part", t("p_partkey p_name p_mfgr p_brand p_type p_size p_container p_retailprice p_comment"))
        .with_typed_table("supplier", t("s_suppkey s_name s_address s_nationkey s_phone s_acctbal s_comment"))
        .with_typed_table("partsupp", t("ps_partkey ps_suppkey ps_availqty ps_supplycost ps_comment"))
        .with_typed_table("customer", t("c_custkey c_name c_address c_nationkey c_phone c_acctbal c_mktsegment c_comment"))
        .with_typed_table(
            "orders",
            t("o_orderkey o_custkey o_orderstatus o_totalprice o_orderdate o_orderpriority o_clerk o_shippriority o_comment"),
        )
        .with_typed_table(
            "lineitem",
            t("l_orderkey l_partkey l_suppkey l_linenumber l_quantity l_extendedprice l_discount l_tax l_returnflag \
               l_linestatus l_shipdate l_commitdate l_receiptdate l_shipinstruct l_shipmode l_comment"),
        )
        .with_typed_table("nation", t("n_nationkey n_name n_regionkey n_comment"))
        .with_typed_table("region", t("r_regionkey r_name r_comment"))
}

fn query(n: usize) -> String {
    let path = format!("{}/../../runner/examples/tpch/q{n:02}.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let start = text.find("sql = \"\"\"").expect("an sql key") + 9;
    let end = start + text[start..].find("\"\"\"").expect("the closing quotes");
    text[start..end].to_string()
}

#[test]
fn every_query_is_rewritten_by_the_rules_it_needs() {
    let expected: [&[&str]; 22] = [
        &["decimal_products", "standard_intervals"],
        &["comma_joins", "scalar_subqueries"],
        &["comma_joins", "decimal_products"],
        &["semi_anti_joins", "standard_intervals"],
        &["comma_joins", "decimal_products", "standard_intervals"],
        &["decimal_literals", "decimal_products", "standard_intervals"],
        &["comma_joins", "decimal_products", "or_table_filters"],
        &["comma_joins", "decimal_products", "float_division"],
        &["comma_joins", "decimal_products"],
        &["comma_joins", "decimal_products", "standard_intervals"],
        &["comma_joins", "decimal_literals", "decimal_products", "scalar_subqueries"],
        &["comma_joins", "standard_intervals"],
        &["join_conditions"],
        &["comma_joins", "decimal_literals", "decimal_products", "float_division", "standard_intervals"],
        &["comma_joins", "decimal_products", "scalar_subqueries", "standard_intervals"],
        &["comma_joins", "semi_anti_joins"],
        &["comma_joins", "decimal_literals", "float_division", "scalar_subqueries"],
        &["comma_joins", "semi_anti_joins"],
        &["comma_joins", "common_or_factors", "decimal_products", "or_table_filters"],
        &[
            "comma_joins",
            "decimal_literals",
            "decimal_products",
            "scalar_subqueries",
            "semi_anti_joins",
            "standard_intervals",
        ],
        &["comma_joins", "semi_anti_joins"],
        &["decimal_literals", "scalar_subqueries", "semi_anti_joins"],
    ];
    for (i, rules) in expected.iter().enumerate() {
        let n = i + 1;
        let prepared = prepare(&query(n), &catalog()).unwrap_or_else(|e| panic!("Q{n}: {e}"));
        if std::env::var_os("SHOW_RULES").is_some() {
            println!("Q{n}: {:?}", prepared.rules);
            continue;
        }
        assert_eq!(prepared.rules, *rules, "Q{n} became {}", prepared.sql);
        // What Polars is handed parses, and a second pass finds no structure left to rewrite.
        // (Only `decimal_products` may fire again: it can't tell its own casts from a user's.)
        let again = prepare(&prepared.sql, &catalog()).unwrap_or_else(|e| panic!("Q{n} again: {e}"));
        assert!(again.rules.iter().all(|r| *r == "decimal_products"), "Q{n} again: {:?}", again.rules);
        if std::env::var_os("SHOW_SQL").is_some() {
            println!("Q{n}: {}\n", prepared.sql);
        }
    }
}
