//! The syntax tree of expressions. Every node keeps its span so the checker can point at it.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::diag::Span;

/// An expression with its location in the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it is (byte offsets into the file it came from).
    pub span: Span,
}

impl Expr {
    /// The direct sub-expressions, in source order.
    pub fn children(&self) -> Vec<&Expr> {
        match &self.kind {
            ExprKind::Field { target, .. } => vec![target],
            ExprKind::List(items) | ExprKind::Call { args: items, .. } => items.iter().collect(),
            ExprKind::Range { low, high, .. } => vec![low, high],
            ExprKind::Unary { operand, .. } => vec![operand],
            ExprKind::Business { count, .. } => vec![count],
            ExprKind::Binary { left, right, .. } => vec![left, right],
            ExprKind::Between { value, low, high } => vec![value, low, high],
            ExprKind::If { cond, then, otherwise } => vec![cond, then, otherwise],
            ExprKind::Null
            | ExprKind::Bool(_)
            | ExprKind::Number(_)
            | ExprKind::Text(_)
            | ExprKind::Duration(_)
            | ExprKind::Name(_) => Vec::new(),
        }
    }

    /// The direct sub-expressions, mutably, in source order.
    pub fn children_mut(&mut self) -> Vec<&mut Expr> {
        match &mut self.kind {
            ExprKind::Field { target, .. } => vec![target],
            ExprKind::List(items) | ExprKind::Call { args: items, .. } => items.iter_mut().collect(),
            ExprKind::Range { low, high, .. } => vec![low, high],
            ExprKind::Unary { operand, .. } => vec![operand],
            ExprKind::Business { count, .. } => vec![count],
            ExprKind::Binary { left, right, .. } => vec![left, right],
            ExprKind::Between { value, low, high } => vec![value, low, high],
            ExprKind::If { cond, then, otherwise } => vec![cond, then, otherwise],
            ExprKind::Null
            | ExprKind::Bool(_)
            | ExprKind::Number(_)
            | ExprKind::Text(_)
            | ExprKind::Duration(_)
            | ExprKind::Name(_) => Vec::new(),
        }
    }
}

/// The kinds of expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExprKind {
    /// `null`
    Null,
    /// `true`, `false`
    Bool(bool),
    /// `10_000`, `0.01` (exact)
    Number(Decimal),
    /// `"text"` (escapes resolved)
    Text(String),
    /// `7d`, `24h`, `30m`, `45s`, `2w`: whole seconds
    Duration(i64),
    /// `3 business days`, `4 business hours`, `n business days`: counted on the process's
    /// calendar; the count is a whole number or a variable's name. Not a value: it moves a date
    /// or a datetime (`due_date + 30 business days`), or alone, as a timer, the instant a node
    /// is entered.
    Business { count: Box<Expr>, unit: BusinessUnit },
    /// A variable or a field path's first segment: `amount`
    Name(String),
    /// `record.field`
    Field { target: Box<Expr>, field: String },
    /// `[a, b, c]`
    List(Vec<Expr>),
    /// `[1..10]`, `(0..100]`: FEEL intervals
    Range { low: Box<Expr>, high: Box<Expr>, low_closed: bool, high_closed: bool },
    /// `-x`, `not x`
    Unary { op: UnaryOp, operand: Box<Expr> },
    /// `a + b`, `a and b`, `a in b`, ...
    Binary { op: BinaryOp, left: Box<Expr>, right: Box<Expr> },
    /// `x between a and b`
    Between { value: Box<Expr>, low: Box<Expr>, high: Box<Expr> },
    /// `if c then a else b`
    If { cond: Box<Expr>, then: Box<Expr>, otherwise: Box<Expr> },
    /// `max(a, b)`, `string length(s)`: the canonical (FEEL) name of a built-in function
    Call { function: String, args: Vec<Expr> },
}

/// What a business count counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusinessUnit {
    /// Working days.
    Days,
    /// Hours of working time.
    Hours,
}

impl Expr {
    /// The count and unit of a bare `3 business days` (or `n business days`), if this is one.
    pub fn business(&self) -> Option<(&Expr, BusinessUnit)> {
        match &self.kind {
            ExprKind::Business { count, unit } => Some((count, *unit)),
            _ => None,
        }
    }

    /// The spans of every business count in the expression, in source order.
    pub fn business_spans(&self) -> Vec<Span> {
        let mut found = Vec::new();
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            if e.business().is_some() {
                found.push(e.span);
            }
            let mut children = e.children();
            children.reverse();
            stack.extend(children);
        }
        found
    }
}

/// Prefix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `not x` / `not(x)`
    Not,
}

/// Infix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryOp {
    /// `or`
    Or,
    /// `and`
    And,
    /// `=` or `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `x in list` / `x in range`
    In,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `**`
    Pow,
}
