//! What an output's SQL reads: the table names, so a spec that reads an unknown table is
//! refused before anything runs.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{Query, Visit, Visitor};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

#[derive(Default)]
struct Tables {
    ctes: BTreeSet<String>,
    relations: BTreeSet<String>,
}

impl Visitor for Tables {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.clone());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &sqlparser::ast::ObjectName) -> ControlFlow<()> {
        self.relations.insert(relation.to_string());
        ControlFlow::Continue(())
    }
}

/// The tables a statement reads (CTE names excluded), or the parser's complaint.
pub fn sql_tables(sql: &str) -> Result<Vec<String>, String> {
    // Placeholders are not SQL; give them a neutral value for parsing.
    let neutral = crate::template::neutral(sql)?;
    let statements =
        Parser::parse_sql(&GenericDialect {}, &neutral).map_err(|e| format!("the SQL does not parse: {e}"))?;
    if statements.len() != 1 {
        return Err(format!("expected one SQL statement, found {}", statements.len()));
    }
    let mut tables = Tables::default();
    let _ = statements.visit(&mut tables);
    Ok(tables.relations.into_iter().filter(|r| !tables.ctes.contains(r)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tables_but_not_ctes() {
        let t = sql_tables("WITH x AS (SELECT * FROM a) SELECT * FROM x JOIN b USING (k) WHERE d = '{partition_key}'")
            .unwrap();
        assert_eq!(t, ["a", "b"]);
        assert!(sql_tables("SELEC nothing").unwrap_err().contains("does not parse"));
    }
}
