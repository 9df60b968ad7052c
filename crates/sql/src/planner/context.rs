//! The tables and functions a query may name, as DataFusion's planner asks for them: each input's
//! Arrow schema, and the SQL functions whose lowering to Polars exists (`runner-engine`'s
//! `lower` owns that list's meaning; a name missing here is refused by the planner as unknown).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion_common::config::ConfigOptions;
use datafusion_common::{Result, TableReference, plan_err};
use datafusion_expr::planner::ExprPlanner;
use datafusion_expr::{AggregateUDF, HigherOrderUDF, ScalarUDF, TableProviderFilterPushDown, TableSource, WindowUDF};

/// The inputs a query reads: name → Arrow schema (the engine maps its Polars schemas to these).
#[derive(Debug, Clone, Default)]
pub struct Tables {
    tables: HashMap<String, SchemaRef>,
    stats: HashMap<String, TableStats>,
    functions: Vec<super::UserFunction>,
}

/// What the planner may know of a table's contents, for choosing a join order (never for an
/// answer): its rows, and each integer column's least and greatest value (from Parquet
/// footers), which bound how many distinct values it can hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableStats {
    /// The table's rows.
    pub rows: u64,
    /// Integer columns' (min, max), by column name.
    pub ranges: HashMap<String, (i64, i64)>,
}

impl Tables {
    /// No tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a table of these columns, in order.
    pub fn with_table(mut self, name: impl Into<String>, fields: impl IntoIterator<Item = Field>) -> Self {
        self.tables.insert(name.into(), Arc::new(Schema::new(fields.into_iter().collect::<Vec<_>>())));
        self
    }

    /// Adds what is known of table `name`'s contents.
    pub fn with_stats(mut self, name: impl Into<String>, stats: TableStats) -> Self {
        self.stats.insert(name.into(), stats);
        self
    }

    /// Adds the binary's own functions.
    pub fn with_functions(mut self, functions: impl IntoIterator<Item = super::UserFunction>) -> Self {
        self.functions.extend(functions);
        self
    }

    /// The schema of table `name`, if there is one.
    pub fn schema(&self, name: &str) -> Option<&SchemaRef> {
        self.tables.get(name)
    }
}

/// A table as the planner sees it: a schema, and its statistics when known; filters are never
/// pushed into the scan (Polars pushes them into its own readers).
#[derive(Debug)]
pub(crate) struct Input(SchemaRef, Option<TableStats>);

impl Input {
    /// What is known of the table's contents.
    pub(crate) fn stats(&self) -> Option<&TableStats> {
        self.1.as_ref()
    }
}

impl TableSource for Input {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.0)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&datafusion_expr::Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Unsupported; filters.len()])
    }
}

/// Functions by each of their names (their own and their aliases): scalar, aggregate and window
/// functions have the same methods but no trait in common.
macro_rules! by_name {
    ($functions:expr) => {
        $functions
            .iter()
            .flat_map(|f| {
                std::iter::once(f.name().to_string()).chain(f.aliases().iter().cloned()).map(|n| (n, Arc::clone(f)))
            })
            .collect()
    };
}

/// What `SqlToRel` consults while it plans.
pub(crate) struct Context<'a> {
    tables: &'a Tables,
    options: ConfigOptions,
    scalars: HashMap<String, Arc<ScalarUDF>>,
    aggregates: HashMap<String, Arc<AggregateUDF>>,
    windows: HashMap<String, Arc<WindowUDF>>,
    planners: Vec<Arc<dyn ExprPlanner>>,
}

impl<'a> Context<'a> {
    pub(crate) fn new(tables: &'a Tables, functions: &super::functions::Functions) -> Self {
        let mut options = ConfigOptions::default();
        // DuckDB (the oracle) and Spark read `0.05` as an exact decimal.
        options.sql_parser.parse_float_as_decimal = true;
        options.sql_parser.enable_ident_normalization = true;
        // Strings stay `Utf8`: Polars has one string type, and views would add casts everywhere.
        options.sql_parser.map_string_types_to_utf8view = false;
        options.execution.time_zone = None;
        // DuckDB's order: NULLs last, ascending or descending.
        options.sql_parser.default_null_ordering = "nulls_last".into();
        // Refusals name the line and column of what they refuse.
        options.sql_parser.collect_spans = true;
        let scalars = by_name!(functions.scalars);
        let aggregates = by_name!(functions.aggregates);
        let windows = by_name!(functions.windows);
        let mut context = Self { tables, options, scalars, aggregates, windows, planners: functions.planners.clone() };
        // The binary's functions come last: the binary chose its names (they are checked against
        // SQL's own when it starts), so a name is the binary's.
        for f in &tables.functions {
            if f.aggregate {
                let udf = Arc::new(AggregateUDF::new_from_impl(super::user_functions::UserAggregate::new(f.clone())));
                context.aggregates.insert(f.name.clone(), udf);
            } else {
                let udf = Arc::new(ScalarUDF::new_from_impl(super::user_functions::UserScalar::new(f.clone())));
                context.scalars.insert(f.name.clone(), udf);
            }
        }
        context
    }
}

impl datafusion_expr::planner::ContextProvider for Context<'_> {
    fn get_table_source(&self, name: TableReference) -> Result<Arc<dyn TableSource>> {
        match self.tables.schema(name.table()) {
            Some(schema) if name.schema().is_none() => {
                Ok(Arc::new(Input(Arc::clone(schema), self.tables.stats.get(name.table()).cloned())))
            }
            _ => {
                let mut known: Vec<&String> = self.tables.tables.keys().collect();
                known.sort();
                plan_err!("no table named {name}; the step's inputs are {known:?}")
            }
        }
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.planners
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.scalars.get(name).cloned()
    }

    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.aggregates.get(name).cloned()
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.windows.get(name).cloned()
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        &self.options
    }

    fn udf_names(&self) -> Vec<String> {
        self.scalars.keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.aggregates.keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        self.windows.keys().cloned().collect()
    }
}
