//! The binary's own functions (`runner-engine`'s extensions) as the planner sees them: a name,
//! what they take and what they return. Planning types the calls and coerces their arguments;
//! Polars calls the functions (the planner never does).

use arrow_schema::DataType;
use datafusion_common::{Result, not_impl_err};
use datafusion_expr::function::AccumulatorArgs;
use datafusion_expr::{
    Accumulator, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// What a user function takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Takes {
    /// Anything its own code accepts (checked when it runs).
    Any,
    /// One text value.
    Text,
    /// This many numbers (coerced to doubles).
    Numbers(usize),
}

/// A function the binary brings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserFunction {
    /// Its lower-case name.
    pub name: String,
    /// What it takes.
    pub takes: Takes,
    /// The type of its values.
    pub returns: DataType,
    /// True for an aggregate (one value per group).
    pub aggregate: bool,
}

impl UserFunction {
    /// Any arguments: the function's own check (in the engine, when Polars types the call)
    /// refuses what it doesn't take, naming the columns it was given; the planner would
    /// instead coerce a number to text.
    fn signature(&self) -> Signature {
        Signature::variadic_any(Volatility::Immutable)
    }
}

/// A scalar user function, for planning.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct UserScalar {
    function: UserFunction,
    signature: Signature,
}

impl UserScalar {
    pub(crate) fn new(function: UserFunction) -> Self {
        Self { signature: function.signature(), function }
    }
}

impl ScalarUDFImpl for UserScalar {
    fn name(&self) -> &str {
        &self.function.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.function.returns.clone())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        not_impl_err!("{} is called by Polars", self.function.name)
    }
}

/// An aggregate user function, for planning.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct UserAggregate {
    function: UserFunction,
    signature: Signature,
}

impl UserAggregate {
    pub(crate) fn new(function: UserFunction) -> Self {
        Self { signature: function.signature(), function }
    }
}

impl AggregateUDFImpl for UserAggregate {
    fn name(&self) -> &str {
        &self.function.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.function.returns.clone())
    }

    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        not_impl_err!("{} is called by Polars", self.function.name)
    }
}
