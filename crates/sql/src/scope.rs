//! Names: which table a column belongs to. A [`Catalog`] holds the inputs' columns; a [`Scope`]
//! holds the relations of one `SELECT`'s `FROM` (tables, CTEs, derived tables, with their
//! aliases) and the scope around it, so a rule can tell a local column from an outer one.

use std::collections::{BTreeMap, BTreeSet};

use sqlparser::ast::{Query, Select, SelectItem, SetExpr, TableFactor};

use crate::expr::{ColRef, as_column};
use crate::types::{ColumnType, infer};

/// The tables a query may read, each with its columns in order, and their types where known.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: BTreeMap<String, Vec<(String, ColumnType)>>,
    /// The binary's own functions (user functions), lower-cased: a query may call these and
    /// Polars SQL's.
    functions: BTreeSet<String>,
    /// Those of them that are aggregates.
    aggregates: BTreeSet<String>,
}

impl Catalog {
    /// An empty catalog: every table's columns are unknown, so rules that must resolve names
    /// leave queries as they are.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a table and its columns.
    pub fn with_table(mut self, name: impl Into<String>, columns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.insert(name.into(), columns.into_iter().map(|c| (c.into(), ColumnType::Other)).collect());
        self
    }

    /// Adds (or replaces) a table, its columns and their types.
    pub fn with_typed_table(
        mut self,
        name: impl Into<String>,
        columns: impl IntoIterator<Item = (impl Into<String>, ColumnType)>,
    ) -> Self {
        self.insert(name.into(), columns.into_iter().map(|(c, t)| (c.into(), t)).collect());
        self
    }

    /// Adds the binary's own functions by name (matched without regard to case, as Polars does).
    pub fn with_functions(mut self, names: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.functions.extend(names.into_iter().map(|n| n.as_ref().to_lowercase()));
        self
    }

    /// Marks some of the binary's functions as aggregates (a subquery comparing with one of them
    /// returns one row, as with `max`).
    pub fn with_aggregates(mut self, names: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        let names: Vec<String> = names.into_iter().map(|n| n.as_ref().to_lowercase()).collect();
        self.functions.extend(names.iter().cloned());
        self.aggregates.extend(names);
        self
    }

    /// The binary's own functions, lower-cased.
    pub(crate) fn functions(&self) -> &BTreeSet<String> {
        &self.functions
    }

    /// The binary's own aggregate functions, lower-cased.
    pub(crate) fn aggregates(&self) -> &BTreeSet<String> {
        &self.aggregates
    }

    pub(crate) fn insert(&mut self, name: String, columns: Vec<(String, ColumnType)>) {
        self.tables.insert(name, columns);
    }

    fn get(&self, name: &str) -> Option<&Vec<(String, ColumnType)>> {
        self.tables.get(name)
    }
}

/// One relation of a `FROM`: the name it is bound to, and its columns.
#[derive(Debug, Clone)]
pub(crate) struct Relation {
    /// The alias, or the table's name; empty for an unnamed derived table.
    pub binding: String,
    pub columns: Vec<String>,
    /// The columns' types, in the same order.
    pub types: Vec<ColumnType>,
    /// True when it may have columns beyond `columns` (an unknown table, an unnamed expression).
    pub open: bool,
    /// Which `FROM` item (comma-separated unit) it belongs to.
    pub unit: usize,
}

/// Where a column reference leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// A relation of this scope, by index.
    Local(usize),
    /// A relation of the scope `depth` levels out (1: the enclosing query), by index there.
    Outer { depth: usize, relation: usize },
    /// Ambiguous, or a table whose columns are unknown might hold it.
    Unknown,
}

/// The relations of one `SELECT`, and the scope of the query that encloses it.
#[derive(Debug)]
pub(crate) struct Scope<'a> {
    pub relations: Vec<Relation>,
    pub parent: Option<&'a Scope<'a>>,
}

impl Relation {
    fn new(binding: String, columns: Vec<(String, ColumnType)>, open: bool, unit: usize) -> Self {
        let (columns, types) = columns.into_iter().unzip();
        Self { binding, columns, types, open, unit }
    }

    /// The type of column `name`.
    pub fn type_of(&self, name: &str) -> ColumnType {
        self.columns.iter().position(|c| c == name).map_or(ColumnType::Other, |i| self.types[i])
    }

    /// The relation with its columns renamed (a `(a, b)` alias list), types kept by position.
    fn renamed(mut self, names: Vec<String>) -> Self {
        self.types.resize(names.len(), ColumnType::Other);
        self.columns = names;
        self.open = false;
        self
    }
}

impl<'a> Scope<'a> {
    /// The scope of `select`'s `FROM`.
    pub fn of(select: &Select, catalog: &Catalog, parent: Option<&'a Scope<'a>>) -> Self {
        let mut relations = Vec::new();
        for (unit, twj) in select.from.iter().enumerate() {
            relations.push(relation(&twj.relation, catalog, unit));
            for join in &twj.joins {
                relations.push(relation(&join.relation, catalog, unit));
            }
        }
        Self { relations, parent }
    }

    /// Where `c` leads.
    pub fn resolve(&self, c: &ColRef) -> Resolved {
        let local = match &c.qualifier {
            Some(q) => {
                let found: Vec<usize> =
                    (0..self.relations.len()).filter(|&i| &self.relations[i].binding == q).collect();
                match found.as_slice() {
                    [i] if self.relations[*i].columns.contains(&c.name) || self.relations[*i].open => {
                        return Resolved::Local(*i);
                    }
                    [_] => return Resolved::Unknown,
                    [] => None,
                    _ => return Resolved::Unknown,
                }
            }
            None => {
                let found: Vec<usize> =
                    (0..self.relations.len()).filter(|&i| self.relations[i].columns.contains(&c.name)).collect();
                match found.as_slice() {
                    [i] => Some(*i),
                    [] if self.relations.iter().any(|r| r.open) => return Resolved::Unknown,
                    [] => None,
                    _ => return Resolved::Unknown,
                }
            }
        };
        if let Some(i) = local {
            return Resolved::Local(i);
        }
        match self.parent.map(|p| p.resolve(c)) {
            Some(Resolved::Local(relation)) => Resolved::Outer { depth: 1, relation },
            Some(Resolved::Outer { depth, relation }) => Resolved::Outer { depth: depth + 1, relation },
            _ => Resolved::Unknown,
        }
    }

    /// The type of the column `c` leads to.
    pub fn column_type(&self, c: &ColRef) -> ColumnType {
        match self.resolve(c) {
            Resolved::Local(i) => self.relations[i].type_of(&c.name),
            Resolved::Outer { depth, relation } => {
                let mut scope = self;
                for _ in 0..depth {
                    match scope.parent {
                        Some(p) => scope = p,
                        None => return ColumnType::Other,
                    }
                }
                scope.relations[relation].type_of(&c.name)
            }
            Resolved::Unknown => ColumnType::Other,
        }
    }

    /// The type of `e` in this scope.
    pub fn infer(&self, e: &sqlparser::ast::Expr) -> ColumnType {
        infer(e, &|c| self.column_type(c))
    }

    /// `c` written so that it names its relation (`binding.name`), when it is local.
    pub fn qualified(&self, c: &ColRef) -> Option<String> {
        match self.resolve(c) {
            Resolved::Local(i) if !self.relations[i].binding.is_empty() => {
                Some(format!("{}.{}", quote(&self.relations[i].binding), quote(&c.name)))
            }
            _ => None,
        }
    }

    /// The indexes of the local relations `cols` lead to; `None` if any is unknown or outer.
    pub fn locals(&self, cols: &[ColRef]) -> Option<Vec<usize>> {
        let mut out = Vec::new();
        for c in cols {
            match self.resolve(c) {
                Resolved::Local(i) => {
                    if !out.contains(&i) {
                        out.push(i);
                    }
                }
                _ => return None,
            }
        }
        Some(out)
    }
}

/// An identifier, quoted when it needs it.
pub(crate) fn quote(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { name.to_string() } else { format!("\"{}\"", name.replace('"', "\"\"")) }
}

fn relation(factor: &TableFactor, catalog: &Catalog, unit: usize) -> Relation {
    let alias_columns = |alias: &Option<sqlparser::ast::TableAlias>| {
        alias
            .as_ref()
            .filter(|a| !a.columns.is_empty())
            .map(|a| a.columns.iter().map(|c| c.name.value.clone()).collect())
    };
    match factor {
        TableFactor::Table { name, alias, .. } => {
            let binding = alias.as_ref().map(|a| a.name.value.clone()).unwrap_or_else(|| {
                name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.clone()).unwrap_or_default()
            });
            let r = match catalog.get(&name.to_string()) {
                Some(cols) => Relation::new(binding, cols.clone(), false, unit),
                None => Relation::new(binding, Vec::new(), true, unit),
            };
            match alias_columns(alias) {
                Some(names) => r.renamed(names),
                None => r,
            }
        }
        TableFactor::Derived { subquery, alias, .. } => {
            let binding = alias.as_ref().map(|a| a.name.value.clone()).unwrap_or_default();
            let (columns, open) = output_columns(subquery, catalog);
            let r = Relation::new(binding, columns, open, unit);
            match alias_columns(alias) {
                Some(names) => r.renamed(names),
                None => r,
            }
        }
        other => Relation::new(
            match other {
                TableFactor::NestedJoin { alias: Some(a), .. } => a.name.value.clone(),
                _ => String::new(),
            },
            Vec::new(),
            true,
            unit,
        ),
    }
}

/// The columns `query` returns with their types, and whether there may be others the front end
/// can't name.
pub(crate) fn output_columns(query: &Query, catalog: &Catalog) -> (Vec<(String, ColumnType)>, bool) {
    let mut catalog = catalog.clone();
    if let Some(with) = &query.with {
        for cte in &with.cte_tables {
            let columns = cte_columns(cte, &catalog);
            catalog.insert(cte.alias.name.value.clone(), columns);
        }
    }
    set_columns(&query.body, &catalog)
}

/// The columns of a CTE, renamed by its `name (a, b)` list when it has one.
pub(crate) fn cte_columns(cte: &sqlparser::ast::Cte, catalog: &Catalog) -> Vec<(String, ColumnType)> {
    let (mut columns, _) = output_columns(&cte.query, catalog);
    if !cte.alias.columns.is_empty() {
        columns.resize(cte.alias.columns.len(), (String::new(), ColumnType::Other));
        for (c, name) in columns.iter_mut().zip(&cte.alias.columns) {
            c.0 = name.name.value.clone();
        }
    }
    columns
}

fn set_columns(body: &SetExpr, catalog: &Catalog) -> (Vec<(String, ColumnType)>, bool) {
    match body {
        SetExpr::Select(select) => select_columns(select, catalog),
        SetExpr::Query(q) => output_columns(q, catalog),
        SetExpr::SetOperation { left, .. } => set_columns(left, catalog),
        _ => (Vec::new(), true),
    }
}

fn select_columns(select: &Select, catalog: &Catalog) -> (Vec<(String, ColumnType)>, bool) {
    let scope = Scope::of(select, catalog, None);
    let mut columns = Vec::new();
    let mut open = false;
    for item in &select.projection {
        match item {
            SelectItem::ExprWithAlias { alias, expr } => columns.push((alias.value.clone(), scope.infer(expr))),
            SelectItem::UnnamedExpr(e) => match as_column(e) {
                Some(c) => columns.push((c.name, scope.infer(e))),
                // Kept in place, nameless, so an alias list `AS t (a, b)` names it by position.
                None => {
                    columns.push((String::new(), scope.infer(e)));
                    open = true;
                }
            },
            SelectItem::Wildcard(_) => {
                for r in &scope.relations {
                    columns.extend(r.columns.iter().cloned().zip(r.types.iter().copied()));
                    open |= r.open;
                }
            }
            SelectItem::QualifiedWildcard(kind, _) => {
                let name = kind.to_string();
                let name = name.trim_end_matches(".*");
                match scope.relations.iter().find(|r| r.binding == name) {
                    Some(r) => {
                        columns.extend(r.columns.iter().cloned().zip(r.types.iter().copied()));
                        open |= r.open;
                    }
                    None => open = true,
                }
            }
            _ => open = true,
        }
    }
    (columns, open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::parse_select;

    fn catalog() -> Catalog {
        Catalog::new().with_table("part", ["p_partkey", "p_name"]).with_table("lineitem", ["l_partkey", "l_quantity"])
    }

    fn col(text: &str) -> ColRef {
        as_column(&crate::expr::parse_expr(text).unwrap()).unwrap()
    }

    #[test]
    fn resolves_local_outer_and_unknown() {
        let outer_select = parse_select("SELECT * FROM part p").unwrap();
        let outer = Scope::of(&outer_select, &catalog(), None);
        let inner_select = parse_select("SELECT * FROM lineitem, (SELECT 1 AS one) AS d").unwrap();
        let inner = Scope::of(&inner_select, &catalog(), Some(&outer));
        assert_eq!(inner.resolve(&col("l_partkey")), Resolved::Local(0));
        assert_eq!(inner.resolve(&col("one")), Resolved::Local(1));
        assert_eq!(inner.resolve(&col("p_partkey")), Resolved::Outer { depth: 1, relation: 0 });
        assert_eq!(inner.resolve(&col("p.p_name")), Resolved::Outer { depth: 1, relation: 0 });
        assert_eq!(inner.resolve(&col("part.p_name")), Resolved::Unknown, "the alias hides the table's name");
        assert_eq!(inner.resolve(&col("nope")), Resolved::Unknown);
        assert_eq!(inner.qualified(&col("l_quantity")).as_deref(), Some("lineitem.l_quantity"));
    }

    #[test]
    fn an_unknown_table_makes_unqualified_names_unknown() {
        let outer_select = parse_select("SELECT * FROM part").unwrap();
        let outer = Scope::of(&outer_select, &catalog(), None);
        let inner_select = parse_select("SELECT * FROM mystery").unwrap();
        let inner = Scope::of(&inner_select, &catalog(), Some(&outer));
        assert_eq!(inner.resolve(&col("p_partkey")), Resolved::Unknown, "mystery might hold it");
    }

    #[test]
    fn derived_tables_expose_their_output_names() {
        let select = parse_select(
            "SELECT * FROM (SELECT p_partkey AS k, p_name, count(*) FROM part GROUP BY 1, 2) AS d, \
             (SELECT * FROM lineitem) AS l (a, b)",
        )
        .unwrap();
        let scope = Scope::of(&select, &catalog(), None);
        assert_eq!(scope.relations[0].columns, ["k", "p_name", ""], "count(*) keeps its place, nameless");
        assert!(scope.relations[0].open, "count(*) has no name the front end knows");
        assert_eq!(scope.relations[1].columns, ["a", "b"]);
        assert!(!scope.relations[1].open);
        assert_eq!(quote("Mixed"), "\"Mixed\"");
        assert_eq!(quote("l_x1"), "l_x1");
    }
}
