//! The evaluator: a pure function of an expression, the variables and the current time.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Timelike, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::ast::{BinaryOp, Expr, ExprKind, UnaryOp};
use super::builtins;
use super::value::Value;
use crate::diag::Span;

/// What an expression is evaluated against: the variables and the time (no clock inside).
#[derive(Debug, Clone, Copy)]
pub struct EvalContext<'a> {
    /// The variables in scope, by name.
    pub vars: &'a BTreeMap<String, Value>,
    /// The current instant; `today()` is its UTC date.
    pub now: DateTime<Utc>,
}

impl<'a> EvalContext<'a> {
    /// A context over `vars` at the instant `now`.
    pub fn new(vars: &'a BTreeMap<String, Value>, now: DateTime<Utc>) -> Self {
        EvalContext { vars, now }
    }

    /// Today's date (UTC).
    pub fn today(&self) -> NaiveDate {
        self.now.date_naive()
    }
}

/// Why an expression could not be evaluated; each carries the span of the failing part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// A name that is not among the variables.
    #[error("unknown variable `{name}`")]
    UnknownVariable {
        /// The name.
        name: String,
        /// Where it is used.
        span: Span,
    },
    /// A function that is not built in.
    #[error("unknown function `{name}`")]
    UnknownFunction {
        /// The name.
        name: String,
        /// The call.
        span: Span,
    },
    /// Operands or arguments of the wrong kind, such as `"a" * 2`.
    #[error("{message}")]
    Type {
        /// What is wrong.
        message: String,
        /// The failing expression.
        span: Span,
    },
    /// A number beyond the decimal range (about 7.9e28), or a date or duration out of range.
    #[error("arithmetic overflow")]
    Overflow {
        /// The failing expression.
        span: Span,
    },
    /// A division by zero: an error, never a silent null.
    #[error("division by zero")]
    DivisionByZero {
        /// The failing division.
        span: Span,
    },
    /// An invalid argument or literal, such as `date("2026-02-30")`.
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
        /// The failing expression.
        span: Span,
    },
}

impl EvalError {
    /// The span of the sub-expression that failed.
    pub fn span(&self) -> Span {
        match self {
            EvalError::UnknownVariable { span, .. }
            | EvalError::UnknownFunction { span, .. }
            | EvalError::Type { span, .. }
            | EvalError::Overflow { span }
            | EvalError::DivisionByZero { span }
            | EvalError::Invalid { span, .. } => *span,
        }
    }
}

/// A failure before its location is known; [`Fail::at`] attaches the span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fail {
    Type(String),
    Overflow,
    DivisionByZero,
    Invalid(String),
}

impl Fail {
    pub(crate) fn at(self, span: Span) -> EvalError {
        match self {
            Fail::Type(message) => EvalError::Type { message, span },
            Fail::Overflow => EvalError::Overflow { span },
            Fail::DivisionByZero => EvalError::DivisionByZero { span },
            Fail::Invalid(message) => EvalError::Invalid { message, span },
        }
    }
}

/// How `decide` and `if` read a condition: only `true` is true; `null` and `false` are not.
pub fn is_true(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

/// Evaluates `expr`. Arithmetic is exact; overflow and division by zero are errors.
///
/// Recursion follows the tree, whose depth the parser bounds (`MAX_DEPTH`); each kind of node
/// is evaluated by a function of its own so that the frames on the recursive path stay small.
pub fn eval(expr: &Expr, ctx: &EvalContext<'_>) -> Result<Value, EvalError> {
    let span = expr.span;
    match &expr.kind {
        ExprKind::Null => Ok(Value::Null),
        ExprKind::Bool(b) => Ok(Value::Bool(*b)),
        ExprKind::Number(n) => Ok(Value::Number(*n)),
        ExprKind::Text(t) => Ok(Value::Text(t.clone())),
        ExprKind::Duration(s) => Ok(Value::Duration(*s)),
        ExprKind::Name(name) => {
            ctx.vars.get(name).cloned().ok_or_else(|| EvalError::UnknownVariable { name: name.clone(), span })
        }
        ExprKind::Field { target, field } => eval_field(target, field, span, ctx),
        ExprKind::List(items) => eval_list(items, ctx),
        ExprKind::Range { .. } => Err(Fail::Type("a range can only be used after `in`".into()).at(span)),
        ExprKind::Unary { op, operand } => eval_unary(*op, operand, span, ctx),
        ExprKind::Binary { op: BinaryOp::And, left, right } => eval_and(left, right, ctx),
        ExprKind::Binary { op: BinaryOp::Or, left, right } => eval_or(left, right, ctx),
        ExprKind::Binary { op: BinaryOp::In, left, right } => eval_in(left, right, span, ctx),
        ExprKind::Binary { op, left, right } => eval_binary(*op, left, right, span, ctx),
        ExprKind::Between { value, low, high } => eval_between(value, low, high, span, ctx),
        ExprKind::If { cond, then, otherwise } => eval_if(cond, then, otherwise, ctx),
        ExprKind::Call { function, args } => eval_call(function, args, span, ctx),
    }
}

#[inline(never)]
fn eval_field(target: &Expr, field: &str, span: Span, ctx: &EvalContext<'_>) -> Result<Value, EvalError> {
    field_of(eval(target, ctx)?, field).map_err(|f| f.at(span))
}

#[inline(never)]
fn eval_list(items: &[Expr], ctx: &EvalContext<'_>) -> Result<Value, EvalError> {
    Ok(Value::List(items.iter().map(|i| eval(i, ctx)).collect::<Result<_, _>>()?))
}

#[inline(never)]
fn eval_unary(op: UnaryOp, operand: &Expr, span: Span, ctx: &EvalContext<'_>) -> Result<Value, EvalError> {
    let v = eval(operand, ctx)?;
    unary(op, v).map_err(|f| f.at(span))
}

#[inline(never)]
fn eval_and(left: &Expr, right: &Expr, ctx: &EvalContext<'_>) -> Result<Value, EvalError> {
    let l = as_bool(eval(left, ctx)?, "and").map_err(|f| f.at(left.span))?;
    if l == Some(false) {
        return Ok(Value::Bool(false));
    }
    let r = as_bool(eval(right, ctx)?, "and").map_err(|f| f.at(right.span))?;
    Ok(match (l, r) {
        (_, Some(false)) => Value::Bool(false),
        (Some(true), Some(true)) => Value::Bool(true),
        _ => Value::Null,
    })
}

#[inline(never)]
fn eval_or(left: &Expr, right: &Expr, ctx: &EvalContext<'_>) -> Result<Value, EvalError> {
    let l = as_bool(eval(left, ctx)?, "or").map_err(|f| f.at(left.span))?;
    if l == Some(true) {
        return Ok(Value::Bool(true));
    }
    let r = as_bool(eval(right, ctx)?, "or").map_err(|f| f.at(right.span))?;
    Ok(match (l, r) {
        (_, Some(true)) => Value::Bool(true),
        (Some(false), Some(false)) => Value::Bool(false),
        _ => Value::Null,
    })
}

#[inline(never)]
fn eval_in(left: &Expr, right: &Expr, span: Span, ctx: &EvalContext<'_>) -> Result<Value, EvalError> {
    let v = eval(left, ctx)?;
    if let ExprKind::Range { low, high, low_closed, high_closed } = &right.kind {
        let (lo, hi) = (eval(low, ctx)?, eval(high, ctx)?);
        return in_range(&v, &lo, &hi, *low_closed, *high_closed).map_err(|f| f.at(span));
    }
    let r = eval(right, ctx)?;
    match (&v, &r) {
        (Value::Null, _) | (_, Value::Null) => Ok(Value::Null),
        (_, Value::List(items)) => {
            for item in items {
                if values_equal(&v, item).map_err(|f| f.at(span))? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        _ => Err(Fail::Type(format!("`in` needs a list or a range, found `{}`", r.type_of())).at(right.span)),
    }
}

#[inline(never)]
fn eval_binary(op: BinaryOp, left: &Expr, right: &Expr, span: Span, ctx: &EvalContext<'_>) -> Result<Value, EvalError> {
    // `date + duration("P1M")`: calendar months, which no duration value can hold.
    if matches!(op, BinaryOp::Add | BinaryOp::Sub)
        && let Some(months) = builtins::months_literal(right)
    {
        let months = if op == BinaryOp::Sub { -months } else { months };
        return builtins::add_months(eval(left, ctx)?, months).map_err(|f| f.at(span));
    }
    if op == BinaryOp::Add
        && let Some(months) = builtins::months_literal(left)
    {
        return builtins::add_months(eval(right, ctx)?, months).map_err(|f| f.at(span));
    }
    let l = eval(left, ctx)?;
    let r = eval(right, ctx)?;
    binary(op, l, r).map_err(|f| f.at(span))
}

#[inline(never)]
fn eval_between(value: &Expr, low: &Expr, high: &Expr, span: Span, ctx: &EvalContext<'_>) -> Result<Value, EvalError> {
    let (v, lo, hi) = (eval(value, ctx)?, eval(low, ctx)?, eval(high, ctx)?);
    in_range(&v, &lo, &hi, true, true).map_err(|f| f.at(span))
}

#[inline(never)]
fn eval_if(cond: &Expr, then: &Expr, otherwise: &Expr, ctx: &EvalContext<'_>) -> Result<Value, EvalError> {
    match eval(cond, ctx)? {
        Value::Bool(true) => eval(then, ctx),
        Value::Bool(false) | Value::Null => eval(otherwise, ctx),
        other => {
            let message = format!("condition has type `{}`, expected `bool`", other.type_of());
            Err(Fail::Type(message).at(cond.span))
        }
    }
}

#[inline(never)]
fn eval_call(function: &str, args: &[Expr], span: Span, ctx: &EvalContext<'_>) -> Result<Value, EvalError> {
    let Some(builtin) = builtins::lookup(function) else {
        return Err(EvalError::UnknownFunction { name: function.to_string(), span });
    };
    if let Some(message) = builtin.arity_error(args.len()) {
        return Err(Fail::Invalid(message).at(span));
    }
    let values = args.iter().map(|a| eval(a, ctx)).collect::<Result<Vec<_>, _>>()?;
    if builtin.null_in_null_out && values.contains(&Value::Null) {
        return Ok(Value::Null);
    }
    (builtin.eval)(&values, ctx).map_err(|f| f.at(span))
}

/// A number result, never negative zero (`-0` displays as `0`).
pub(crate) fn number(mut d: Decimal) -> Value {
    if d.is_zero() {
        d.set_sign_positive(true);
    }
    Value::Number(d)
}

fn as_bool(v: Value, op: &str) -> Result<Option<bool>, Fail> {
    match v {
        Value::Bool(b) => Ok(Some(b)),
        Value::Null => Ok(None),
        other => Err(Fail::Type(format!("`{op}` needs bool operands, found `{}`", other.type_of()))),
    }
}

fn unary(op: UnaryOp, v: Value) -> Result<Value, Fail> {
    match (op, v) {
        (_, Value::Null) => Ok(Value::Null),
        (UnaryOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
        (UnaryOp::Neg, Value::Number(n)) => Ok(number(-n)),
        (UnaryOp::Neg, Value::Duration(s)) => s.checked_neg().map(Value::Duration).ok_or(Fail::Overflow),
        (UnaryOp::Not, other) => Err(Fail::Type(format!("`not` needs a bool, found `{}`", other.type_of()))),
        (UnaryOp::Neg, other) => Err(Fail::Type(format!("cannot negate `{}`", other.type_of()))),
    }
}

fn field_of(target: Value, field: &str) -> Result<Value, Fail> {
    let int = |n: i64| Ok(Value::Number(Decimal::from(n)));
    match (&target, field) {
        (Value::Null, _) => Ok(Value::Null),
        (Value::Record(fields), _) => Ok(fields.get(field).cloned().unwrap_or(Value::Null)),
        (Value::Date(d), "year") => int(d.year().into()),
        (Value::Date(d), "month") => int(d.month().into()),
        (Value::Date(d), "day") => int(d.day().into()),
        (Value::Date(d), "weekday") => int(d.weekday().number_from_monday().into()),
        (Value::DateTime(d), "year") => int(d.year().into()),
        (Value::DateTime(d), "month") => int(d.month().into()),
        (Value::DateTime(d), "day") => int(d.day().into()),
        (Value::DateTime(d), "weekday") => int(d.weekday().number_from_monday().into()),
        (Value::DateTime(d), "hour") => int(d.hour().into()),
        (Value::DateTime(d), "minute") => int(d.minute().into()),
        (Value::DateTime(d), "second") => int(d.second().into()),
        (Value::Duration(s), "days") => int(s / 86_400),
        (Value::Duration(s), "hours") => int(s % 86_400 / 3_600),
        (Value::Duration(s), "minutes") => int(s % 3_600 / 60),
        (Value::Duration(s), "seconds") => int(s % 60),
        _ => Err(Fail::Type(format!("`{}` has no field `{field}`", target.type_of()))),
    }
}

/// Midnight UTC at the start of `d`.
pub(crate) fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(chrono::NaiveTime::MIN).and_utc()
}

fn add_seconds_to_date(d: NaiveDate, secs: i64) -> Result<Value, Fail> {
    if secs % 86_400 == 0 {
        let days = TimeDelta::try_days(secs / 86_400).ok_or(Fail::Overflow)?;
        d.checked_add_signed(days).map(Value::Date).ok_or(Fail::Overflow)
    } else {
        add_seconds_to_datetime(midnight(d), secs)
    }
}

fn add_seconds_to_datetime(dt: DateTime<Utc>, secs: i64) -> Result<Value, Fail> {
    let delta = TimeDelta::try_seconds(secs).ok_or(Fail::Overflow)?;
    dt.checked_add_signed(delta).map(Value::DateTime).ok_or(Fail::Overflow)
}

/// A number of seconds, rounded half away from zero to a whole second.
fn whole_seconds(d: Decimal) -> Result<Value, Fail> {
    let rounded = d.round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    rounded.to_i64().map(Value::Duration).ok_or(Fail::Overflow)
}

fn decimal_div(a: Decimal, b: Decimal) -> Result<Decimal, Fail> {
    if b.is_zero() {
        return Err(Fail::DivisionByZero);
    }
    a.checked_div(b).ok_or(Fail::Overflow)
}

/// `base ** exp` for a whole exponent from -999 to 999, by repeated squaring.
fn power(base: Decimal, exp: Decimal) -> Result<Decimal, Fail> {
    let bad = || Fail::Invalid(format!("exponent must be a whole number from -999 to 999, found {exp}"));
    if !exp.fract().is_zero() {
        return Err(bad());
    }
    let e = exp.to_i64().filter(|e| e.abs() <= 999).ok_or_else(bad)?;
    let (mut result, mut square, mut n) = (Decimal::ONE, base, e.unsigned_abs());
    while n > 0 {
        if n & 1 == 1 {
            result = result.checked_mul(square).ok_or(Fail::Overflow)?;
        }
        n >>= 1;
        if n > 0 {
            square = square.checked_mul(square).ok_or(Fail::Overflow)?;
        }
    }
    if e < 0 { decimal_div(Decimal::ONE, result) } else { Ok(result) }
}

fn binary(op: BinaryOp, l: Value, r: Value) -> Result<Value, Fail> {
    use BinaryOp::*;
    use Value::{Date, DateTime as Dt, Duration as Dur, Null, Number as Num, Text};
    match op {
        Eq => return values_equal(&l, &r).map(Value::Bool),
        Ne => return values_equal(&l, &r).map(|b| Value::Bool(!b)),
        Lt | Le | Gt | Ge => {
            if l == Null || r == Null {
                return Ok(Null);
            }
            let ord = compare(&l, &r)?;
            let b = match op {
                Lt => ord == Ordering::Less,
                Le => ord != Ordering::Greater,
                Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            };
            return Ok(Value::Bool(b));
        }
        _ => {}
    }
    if l == Null || r == Null {
        return Ok(Null);
    }
    let mismatch = |l: &Value, r: &Value| {
        let (a, b) = (l.type_of(), r.type_of());
        Err(Fail::Type(match op {
            Add => format!("cannot add `{a}` and `{b}`"),
            Sub => format!("cannot subtract `{b}` from `{a}`"),
            Mul => format!("cannot multiply `{a}` by `{b}`"),
            Div => format!("cannot divide `{a}` by `{b}`"),
            _ => format!("cannot raise `{a}` to the power `{b}`"),
        }))
    };
    match (op, &l, &r) {
        (Add, Num(a), Num(b)) => a.checked_add(*b).map(number).ok_or(Fail::Overflow),
        (Sub, Num(a), Num(b)) => a.checked_sub(*b).map(number).ok_or(Fail::Overflow),
        (Mul, Num(a), Num(b)) => a.checked_mul(*b).map(number).ok_or(Fail::Overflow),
        // A quotient shows no trailing zeros: `7 / 2` is 3.5, not 3.50.
        (Div, Num(a), Num(b)) => decimal_div(*a, *b).map(|q| number(q.normalize())),
        (Pow, Num(a), Num(b)) => power(*a, *b).map(number),
        (Add, Text(a), Text(b)) => Ok(Text(format!("{a}{b}"))),
        (Add, Date(d), Dur(s)) | (Add, Dur(s), Date(d)) => add_seconds_to_date(*d, *s),
        (Sub, Date(d), Dur(s)) => add_seconds_to_date(*d, s.checked_neg().ok_or(Fail::Overflow)?),
        (Add, Dt(d), Dur(s)) | (Add, Dur(s), Dt(d)) => add_seconds_to_datetime(*d, *s),
        (Sub, Dt(d), Dur(s)) => add_seconds_to_datetime(*d, s.checked_neg().ok_or(Fail::Overflow)?),
        (Sub, Date(a), Date(b)) => Ok(Dur((*a - *b).num_days() * 86_400)),
        (Sub, Dt(a), Dt(b)) => Ok(Dur((*a - *b).num_seconds())),
        (Sub, Date(a), Dt(b)) => Ok(Dur((midnight(*a) - *b).num_seconds())),
        (Sub, Dt(a), Date(b)) => Ok(Dur((*a - midnight(*b)).num_seconds())),
        (Add, Dur(a), Dur(b)) => a.checked_add(*b).map(Dur).ok_or(Fail::Overflow),
        (Sub, Dur(a), Dur(b)) => a.checked_sub(*b).map(Dur).ok_or(Fail::Overflow),
        (Mul, Dur(s), Num(n)) | (Mul, Num(n), Dur(s)) => {
            whole_seconds(Decimal::from(*s).checked_mul(*n).ok_or(Fail::Overflow)?)
        }
        (Div, Dur(s), Num(n)) => whole_seconds(decimal_div(Decimal::from(*s), *n)?),
        (Div, Dur(a), Dur(b)) => decimal_div(Decimal::from(*a), Decimal::from(*b)).map(Num),
        _ => mismatch(&l, &r),
    }
}

/// FEEL equality: `null = null`, numbers by value (`1.50 = 1.5`), a date equals the datetime
/// at its midnight UTC, lists and records element by element. Values of unrelated kinds are an
/// error rather than silently unequal.
pub(crate) fn values_equal(a: &Value, b: &Value) -> Result<bool, Fail> {
    use Value::*;
    Ok(match (a, b) {
        (Null, Null) => true,
        (Null, _) | (_, Null) => false,
        (Bool(x), Bool(y)) => x == y,
        (List(x), List(y)) => {
            if x.len() != y.len() {
                return Ok(false);
            }
            for (i, j) in x.iter().zip(y) {
                if !values_equal(i, j)? {
                    return Ok(false);
                }
            }
            true
        }
        (Record(x), Record(y)) => {
            if x.len() != y.len() || x.keys().ne(y.keys()) {
                return Ok(false);
            }
            for (i, j) in x.values().zip(y.values()) {
                if !values_equal(i, j)? {
                    return Ok(false);
                }
            }
            true
        }
        _ => compare(a, b)? == Ordering::Equal,
    })
}

/// The order of two non-null values of the same kind (a date and a datetime compare at the
/// date's midnight UTC); other pairs are an error.
pub(crate) fn compare(a: &Value, b: &Value) -> Result<Ordering, Fail> {
    use Value::*;
    match (a, b) {
        (Number(x), Number(y)) => Ok(x.cmp(y)),
        (Text(x), Text(y)) => Ok(x.cmp(y)),
        (Date(x), Date(y)) => Ok(x.cmp(y)),
        (DateTime(x), DateTime(y)) => Ok(x.cmp(y)),
        (Date(x), DateTime(y)) => Ok(midnight(*x).cmp(y)),
        (DateTime(x), Date(y)) => Ok(x.cmp(&midnight(*y))),
        (Duration(x), Duration(y)) => Ok(x.cmp(y)),
        _ => Err(Fail::Type(format!("cannot compare `{}` with `{}`", a.type_of(), b.type_of()))),
    }
}

fn in_range(v: &Value, lo: &Value, hi: &Value, low_closed: bool, high_closed: bool) -> Result<Value, Fail> {
    if [v, lo, hi].contains(&&Value::Null) {
        return Ok(Value::Null);
    }
    let above = match compare(v, lo)? {
        Ordering::Greater => true,
        Ordering::Equal => low_closed,
        Ordering::Less => false,
    };
    let below = match compare(v, hi)? {
        Ordering::Less => true,
        Ordering::Equal => high_closed,
        Ordering::Greater => false,
    };
    Ok(Value::Bool(above && below))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::diag::FileId;
    use crate::expr::parse_expr;
    use crate::expr::value::{parse_date, parse_datetime};

    fn vars() -> BTreeMap<String, Value> {
        let num = |s: &str| Value::Number(Decimal::from_str(s).unwrap());
        let text = |s: &str| Value::Text(s.to_string());
        let record =
            |fields: Vec<(&str, Value)>| Value::Record(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let mut vars = BTreeMap::new();
        vars.insert("amount".into(), num("1234.50"));
        vars.insert("zero".into(), num("0"));
        vars.insert("big".into(), Value::Number(Decimal::MAX));
        vars.insert("risk".into(), text("A"));
        vars.insert("n".into(), Value::Null);
        vars.insert("yes".into(), Value::Bool(true));
        vars.insert("no".into(), Value::Bool(false));
        vars.insert("due".into(), Value::Date(parse_date("2026-01-31").unwrap()));
        vars.insert("created".into(), Value::DateTime(parse_datetime("2026-01-31T10:00:00Z").unwrap()));
        vars.insert("grace".into(), Value::Duration(3 * 86_400));
        vars.insert("items".into(), Value::List(vec![num("1"), num("2"), num("3")]));
        vars.insert(
            "order".into(),
            record(vec![("customer", record(vec![("name", text("ACME"))])), ("total", num("100.00"))]),
        );
        vars
    }

    fn run(src: &str) -> Result<Value, EvalError> {
        let expr = parse_expr(src, FileId(0)).unwrap_or_else(|d| panic!("{src}: {}", d.message));
        let vars = vars();
        let now = parse_datetime("2026-03-15T12:30:00Z").unwrap();
        eval(&expr, &EvalContext::new(&vars, now))
    }

    /// Evaluates `src` and compares the value's display (a FEEL literal).
    fn check(src: &str, expect: &str) {
        match run(src) {
            Ok(v) => assert_eq!(v.to_string(), expect, "{src}"),
            Err(e) => panic!("{src}: unexpected error: {e}"),
        }
    }

    /// Evaluates `src` and expects an error with this message, at the bytes `at` of `src`.
    fn check_err(src: &str, message: &str, at: &str) {
        let err = run(src).expect_err(src);
        assert_eq!(err.to_string(), message, "{src}");
        let span = err.span();
        assert_eq!(&src[span.start..span.end], at, "{src}");
    }

    #[test]
    fn arithmetic() {
        check("1 + 2 * 3", "7");
        check("1 + 2 * 3 = 7", "true");
        check("(1 + 2) * 3", "9");
        check("10 - 4 - 3", "3");
        check("7 / 2", "3.5");
        check("-2 ** 2", "4");
        check("2 ** 3 ** 2", "512");
        check("2 ** 10", "1024");
        check("2 ** -2", "0.25");
        check("1.5 ** 2", "2.25");
        check("0 ** 0", "1");
        check("amount * 2", "2469.00");
        check("amount - amount", "0.00");
        check("-amount", "-1234.50");
        check("--1", "1");
        check("-0", "0");
        check("-0.00", "0.00");
        check("0 * -1", "0");
        check("1.50 * 2", "3.00");
        check("\"ab\" + \"cd\"", "\"abcd\"");
        check("risk + \"-\" + string(amount)", "\"A-1234.50\"");
    }

    #[test]
    fn decimal_traps() {
        check("0.1 + 0.2 = 0.3", "true");
        check("0.1 + 0.2", "0.3");
        check("1 / 3 * 3 = 1", "false");
        check("1 / 3 * 3", "0.9999999999999999999999999999");
        check("round(1 / 3 * 3, 2) = 1", "true");
        check("10_000.00 = 10000", "true");
        check("1.50 = 1.5", "true");
        check("1.50 != 1.5", "false");
        check("[1.0, 2] = [1, 2.00]", "true");
        check("2 / 3", "0.6666666666666666666666666667");
    }

    #[test]
    fn overflow_and_division_by_zero_are_errors() {
        check_err("big + 1", "arithmetic overflow", "big + 1");
        check_err("big * 2", "arithmetic overflow", "big * 2");
        check_err("-big - 1", "arithmetic overflow", "-big - 1");
        check_err("10 ** 29", "arithmetic overflow", "10 ** 29");
        check_err("1 + amount / zero", "division by zero", "amount / zero");
        check_err("1 / 0", "division by zero", "1 / 0");
        check_err("0 ** -1", "division by zero", "0 ** -1");
        check_err("grace / 0", "division by zero", "grace / 0");
        check_err("grace / 0d", "division by zero", "grace / 0d");
        check_err("2 ** 0.5", "exponent must be a whole number from -999 to 999, found 0.5", "2 ** 0.5");
        check_err("2 ** 1000", "exponent must be a whole number from -999 to 999, found 1000", "2 ** 1000");
        check_err("due + 99999999w", "arithmetic overflow", "due + 99999999w");
        check_err("grace * big", "arithmetic overflow", "grace * big");
    }

    #[test]
    fn null_behaviour() {
        check("n + 1", "null");
        check("1 - n", "null");
        check("n * amount", "null");
        check("n / 0", "null");
        check("-n", "null");
        check("not n", "null");
        check("n < 1", "null");
        check("n >= 1", "null");
        check("n = null", "true");
        check("null = null", "true");
        check("1 = null", "false");
        check("amount != null", "true");
        check("n != null", "false");
        check("order.missing", "null");
        check("n.field", "null");
        check("n in [1, 2]", "null");
        check("1 in n", "null");
        check("n in [1..2]", "null");
        check("n between 1 and 2", "null");
        check("\"a\" + n", "null");
    }

    #[test]
    fn three_valued_logic() {
        check("true and true", "true");
        check("true and false", "false");
        check("false and null", "false");
        check("null and false", "false");
        check("true and null", "null");
        check("null and null", "null");
        check("true or null", "true");
        check("null or true", "true");
        check("false or null", "null");
        check("false or false", "false");
        check("not true", "false");
        check("not(false)", "true");
        check("not yes and no", "false");
        check("not no = yes", "true");
        check("not(no) = yes", "true");
        check("false and 1 / 0 = 1", "false");
        check("true or 1 / 0 = 1", "true");
        check_err("1 and true", "`and` needs bool operands, found `decimal`", "1");
        check_err("no or \"x\"", "`or` needs bool operands, found `text`", "\"x\"");
        check_err("not 1", "`not` needs a bool, found `decimal`", "not 1");
    }

    #[test]
    fn comparisons() {
        check("1 < 2", "true");
        check("2 <= 2", "true");
        check("3 > 2.99", "true");
        check("2 >= 3", "false");
        check("1 == 1", "true");
        check("\"abc\" < \"abd\"", "true");
        check("\"B\" > \"A\"", "true");
        check("risk = \"A\"", "true");
        check("due < created", "true");
        check("due = date and time(\"2026-01-31T00:00:00Z\")", "true");
        check("due < date(\"2026-02-01\")", "true");
        check("1d < 25h", "true");
        check("7d = 1w", "true");
        check("yes = true", "true");
        check("[1, 2] = [1, 2]", "true");
        check("[1, 2] = [2, 1]", "false");
        check("[1] = [1, 2]", "false");
        check("order = order", "true");
        check_err("1 = \"1\"", "cannot compare `decimal` with `text`", "1 = \"1\"");
        check_err("yes < no", "cannot compare `bool` with `bool`", "yes < no");
        check_err("due < 1", "cannot compare `date` with `decimal`", "due < 1");
    }

    #[test]
    fn membership_and_ranges() {
        check("risk in [\"A\", \"B\"]", "true");
        check("\"C\" in [\"A\", \"B\"]", "false");
        check("2 in items", "true");
        check("2.00 in items", "true");
        check("5 in items", "false");
        check("1 in []", "false");
        check("null in [null]", "null");
        check("1 in [null, 1]", "true");
        check("5 in [1..10]", "true");
        check("1 in [1..10]", "true");
        check("10 in [1..10]", "true");
        check("1 in (1..10]", "false");
        check("10 in [1..10)", "false");
        check("10 in ]1..10[", "false");
        check("5 in (1..10)", "true");
        check("0.5 in [0..1]", "true");
        check("amount in [1_000..10_000]", "true");
        check("due in [date(\"2026-01-01\")..date(\"2026-01-31\")]", "true");
        check("due in [date(\"2026-01-01\")..date(\"2026-01-31\"))", "false");
        check("\"m\" in [\"a\"..\"z\"]", "true");
        check("1 in [1..n]", "null");
        check("5 between 1 and 10", "true");
        check("1 between 1 and 10", "true");
        check("10 between 1 and 10", "true");
        check("11 between 1 and 10", "false");
        check("amount between 1000 and 2000 and yes", "true");
        check_err("1 in 1", "`in` needs a list or a range, found `decimal`", "1");
        check_err("[1..2]", "a range can only be used after `in`", "[1..2]");
        check_err("1 in [\"a\"..\"b\"]", "cannot compare `decimal` with `text`", "1 in [\"a\"..\"b\"]");
    }

    #[test]
    fn if_then_else() {
        check("if yes then 1 else 2", "1");
        check("if no then 1 else 2", "2");
        check("if n then 1 else 2", "2");
        check("if n > 1 then 1 else 2", "2");
        check("if amount > 1000 then \"big\" else if amount > 100 then \"mid\" else \"small\"", "\"big\"");
        check("1 + if no then 1 else 2", "3");
        check("if yes then 1 else 1 / 0", "1");
        check_err("if 1 then 2 else 3", "condition has type `decimal`, expected `bool`", "1");
    }

    #[test]
    fn dates_and_durations() {
        check("due + 7d", "date(\"2026-02-07\")");
        check("due + 1d", "date(\"2026-02-01\")");
        check("due + 24h", "date(\"2026-02-01\")");
        check("due + 1h", "date and time(\"2026-01-31T01:00:00Z\")");
        check("due - 31d", "date(\"2025-12-31\")");
        check("7d + due", "date(\"2026-02-07\")");
        check("date(\"2028-02-28\") + 1d", "date(\"2028-02-29\")");
        check("date(\"2028-02-29\") + 1d", "date(\"2028-03-01\")");
        check("date(\"2027-02-28\") + 1d", "date(\"2027-03-01\")");
        check("date(\"2028-03-01\") - date(\"2028-02-01\")", "duration(\"P29D\")");
        check("date(\"2027-03-01\") - date(\"2027-02-01\")", "duration(\"P28D\")");
        check("date(\"2026-01-01\") - date(\"2026-01-31\")", "duration(\"-P30D\")");
        check("date(\"2026-12-31\") + 1d", "date(\"2027-01-01\")");
        check("created + 90m", "date and time(\"2026-01-31T11:30:00Z\")");
        check("created - 1d", "date and time(\"2026-01-30T10:00:00Z\")");
        check("created - due", "duration(\"PT10H\")");
        check("due - created", "duration(\"-PT10H\")");
        check("now() - created", "duration(\"P43DT2H30M\")");
        check("1d + 2h", "duration(\"P1DT2H\")");
        check("1d - 2h", "duration(\"PT22H\")");
        check("grace * 2", "duration(\"P6D\")");
        check("2 * grace", "duration(\"P6D\")");
        check("1h * 0.5", "duration(\"PT30M\")");
        check("1s * 0.5", "duration(\"PT1S\")");
        check("1d / 3", "duration(\"PT8H\")");
        check("1d / 1h", "24");
        check("-grace", "duration(\"-P3D\")");
        check("1.5h", "duration(\"PT1H30M\")");
        check("2w", "duration(\"P14D\")");
        check("due.year", "2026");
        check("due.month", "1");
        check("due.day", "31");
        check("due.weekday", "6");
        check("created.hour", "10");
        check("created.minute", "0");
        check("(1d + 2h + 3m + 4s).hours", "2");
        check("(1d + 2h + 3m + 4s).days", "1");
        check("(1d + 2h + 3m + 4s).minutes", "3");
        check("(1d + 2h + 3m + 4s).seconds", "4");
        check("date(\"2026-01-31\").month + 1", "2");
        check_err("due + 1", "cannot add `date` and `decimal`", "due + 1");
        check_err("due.hour", "`date` has no field `hour`", "due.hour");
        check_err("1d - due", "cannot subtract `date` from `duration`", "1d - due");
        check_err("amount.x", "`decimal` has no field `x`", "amount.x");
    }

    #[test]
    fn records_and_lists() {
        check("order.customer.name", "\"ACME\"");
        check("order.total", "100.00");
        check("order.customer.phone", "null");
        check("[1, \"a\", null]", "[1, \"a\", null]");
        check("[amount, -1]", "[1234.50, -1]");
        check("[]", "[]");
        check_err("missing + 1", "unknown variable `missing`", "missing");
        check_err("foo(1)", "unknown function `foo`", "foo(1)");
    }

    #[test]
    fn builtins() {
        check("min(3, 1, 2)", "1");
        check("max(3, 1, 2)", "3");
        check("min(items)", "1");
        check("max([1.5, 2.25])", "2.25");
        check("min([])", "null");
        check("max(1, n)", "null");
        check("max([1, null])", "null");
        check("min(due, date(\"2020-01-01\"))", "date(\"2020-01-01\")");
        check("max(\"b\", \"a\")", "\"b\"");
        check("max(1h, 1d)", "duration(\"P1D\")");
        check("sum(items)", "6");
        check("sum([0.1, 0.2])", "0.3");
        check("sum(1, 2.5)", "3.5");
        check("sum([])", "0");
        check("sum([1, null])", "null");
        check("sum([1h, 2h])", "duration(\"PT3H\")");
        check("count(items)", "3");
        check("count([])", "0");
        check("count([null])", "1");
        check("abs(-1.5)", "1.5");
        check("abs(5)", "5");
        check("abs(-grace)", "duration(\"P3D\")");
        check("round(2.5)", "3");
        check("round(-2.5)", "-3");
        check("round(1234.5, 2)", "1234.50");
        check("round(1.005, 2)", "1.01");
        check("round(1.004, 2)", "1.00");
        check("round(amount * 0.19, 2)", "234.56");
        check("round half up(0.125, 2)", "0.13");
        check("round half even(0.125, 2)", "0.12");
        check("round half even(2.5)", "2");
        check("round_half_even(3.5)", "4");
        check("decimal(0.125, 2)", "0.12");
        check("decimal(0.135, 2)", "0.14");
        check("round up(1.01)", "2");
        check("round(-0.4)", "0");
        check("round down(-1.99)", "-1");
        check("floor(1.99)", "1");
        check("floor(-1.01)", "-2");
        check("ceiling(1.01)", "2");
        check("ceiling(-1.99)", "-1");
        check("floor(1.555, 2)", "1.55");
        check("round(n, 2)", "null");
        check_err("round(1, 29)", "scale must be a whole number from 0 to 28, found 29", "round(1, 29)");
        check_err("round(1, -1)", "scale must be a whole number from 0 to 28, found -1", "round(1, -1)");
        check_err("round(1, 2, 3)", "`round` takes 1 or 2 arguments, found 3", "round(1, 2, 3)");
        check("today()", "date(\"2026-03-15\")");
        check("now()", "date and time(\"2026-03-15T12:30:00Z\")");
        check("today() - due", "duration(\"P43D\")");
        check("days between(due, today())", "43");
        check("days_between(today(), due)", "-43");
        check("days between(created, date and time(\"2026-02-01T09:59:59Z\"))", "0");
        check("days between(created, date and time(\"2026-02-01T10:00:00Z\"))", "1");
        check("days between(date(\"2028-02-01\"), date(\"2028-03-01\"))", "29");
        check("string length(\"héllo\")", "5");
        check("string_length(\"\")", "0");
        check("contains(\"invoice 42\", \"42\")", "true");
        check("contains(\"abc\", \"d\")", "false");
        check("starts with(\"INV-1\", \"INV\")", "true");
        check("starts_with(\"INV-1\", \"inv\")", "false");
        check("ends with(\"a.pdf\", \".pdf\")", "true");
        check("ends_with(\"a.pdf\", \".xml\")", "false");
        check("upper case(\"straße\")", "\"STRASSE\"");
        check("lower_case(\"ABC\")", "\"abc\"");
        check("substring(\"foobar\", 3)", "\"obar\"");
        check("substring(\"foobar\", 3, 3)", "\"oba\"");
        check("substring(\"foobar\", -2, 1)", "\"a\"");
        check("substring(\"foobar\", 5, 10)", "\"ar\"");
        check("substring(\"foobar\", 10)", "\"\"");
        check_err(
            "substring(\"foobar\", 0)",
            "start position 0 is invalid: positions start at 1",
            "substring(\"foobar\", 0)",
        );
        check("list contains(items, 2)", "true");
        check("list_contains(items, 4)", "false");
        check("list contains([null], null)", "true");
        check("list contains(n, 1)", "null");
        check("contains(n, \"a\")", "null");
        check("date(\"2028-02-29\")", "date(\"2028-02-29\")");
        check("date(2026, 1, 31)", "date(\"2026-01-31\")");
        check("date(created)", "date(\"2026-01-31\")");
        check_err("date(\"2026-02-30\")", "invalid date \"2026-02-30\"", "date(\"2026-02-30\")");
        check_err("date(\"2027-02-29\")", "invalid date \"2027-02-29\"", "date(\"2027-02-29\")");
        check_err("date(2026, 2, 30)", "invalid date 2026-2-30", "date(2026, 2, 30)");
        check("date and time(\"2026-01-31T10:00:00+02:00\")", "date and time(\"2026-01-31T08:00:00Z\")");
        check("datetime(\"2026-01-31T10:00:00\")", "date and time(\"2026-01-31T10:00:00Z\")");
        check("date and time(due)", "date and time(\"2026-01-31T00:00:00Z\")");
        check_err("date and time(\"yesterday\")", "invalid datetime \"yesterday\"", "date and time(\"yesterday\")");
        check("duration(\"P7DT2H\")", "duration(\"P7DT2H\")");
        check("duration(\"PT36H\")", "duration(\"P1DT12H\")");
        // Calendar months: the day is clamped to the end of a shorter month.
        check("date(\"2026-01-31\") + duration(\"P1M\")", "date(\"2026-02-28\")");
        check("date(\"2028-01-31\") + duration(\"P1M\")", "date(\"2028-02-29\")");
        check("date(\"2026-03-31\") - duration(\"P1M\")", "date(\"2026-02-28\")");
        check("date(\"2026-02-28\") + duration(\"P1M\")", "date(\"2026-03-28\")");
        check("date(\"2028-02-29\") + duration(\"P1Y\")", "date(\"2029-02-28\")");
        check("duration(\"P1Y2M\") + date(\"2026-01-15\")", "date(\"2027-03-15\")");
        check("date(\"2026-01-31\") + duration(\"-P1M\")", "date(\"2025-12-31\")");
        check("date and time(\"2026-01-31T10:00:00Z\") + duration(\"P1M\")", "date and time(\"2026-02-28T10:00:00Z\")");
        check("due + duration(\"P12M\")", "date(\"2027-01-31\")");
        check("null + duration(\"P1M\")", "null");
        check_err(
            "duration(\"P1M\")",
            "invalid duration \"P1M\": years and months have no fixed length, use days",
            "duration(\"P1M\")",
        );
        check_err("0.5s", "invalid duration `0.5s`: not a whole number of seconds, or too large", "0.5s");
        check("number(\"1_000.50\")", "1000.50");
        check("number(\"1e3\")", "1000");
        check_err("number(\"abc\")", "invalid number \"abc\"", "number(\"abc\")");
        check_err(
            "123456789012345678901234567890",
            "invalid number \"123456789012345678901234567890\"",
            "123456789012345678901234567890",
        );
        check("string(1.50)", "\"1.50\"");
        check("string(due)", "\"2026-01-31\"");
        check("string(grace)", "\"P3D\"");
        check("string(yes)", "\"true\"");
        check("string(n)", "null");
    }

    #[test]
    fn is_true_only_for_true() {
        assert!(is_true(&Value::Bool(true)));
        assert!(!is_true(&Value::Bool(false)));
        assert!(!is_true(&Value::Null));
        assert!(!is_true(&Value::Text("true".into())));
    }
}
