//! The pest parser generated from `expr.pest` (expressions and lexical rules) and `flow.pest`.

/// The generated parser; its `Rule` enum names every grammar rule.
#[derive(pest_derive::Parser)]
#[grammar = "expr.pest"]
#[grammar = "flow.pest"]
pub struct FlowParser;
