//! The evaluator: a pure function of an expression, the variables and the current time.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Timelike, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::ast::{BinaryOp, BusinessUnit, Expr, ExprKind, UnaryOp};
use super::builtins;
use super::value::Value;
use crate::calendar::{Calendar, MAX_COUNT};
use crate::diag::Span;

/// What an expression is evaluated against: the variables, the time (no clock inside) and the
/// business calendar, if the process names one.
#[derive(Debug, Clone, Copy)]
pub struct EvalContext<'a> {
    /// The variables in scope, by name.
    pub vars: &'a BTreeMap<String, Value>,
    /// The current instant; `today()` is its date on the calendar's clock (UTC without one).
    pub now: DateTime<Utc>,
    /// The calendar business days and hours count on.
    pub calendar: Option<&'a Calendar>,
}

impl<'a> EvalContext<'a> {
    /// A context over `vars` at the instant `now`, with no calendar.
    pub fn new(vars: &'a BTreeMap<String, Value>, now: DateTime<Utc>) -> Self {
        EvalContext { vars, now, calendar: None }
    }

    /// This context counting business days on `calendar`.
    pub fn with_calendar(self, calendar: Option<&'a Calendar>) -> Self {
        EvalContext { calendar, ..self }
    }

    /// Today's date: on the calendar's clock when the process names one (a Shanghai process's
    /// day begins at midnight in Shanghai, as its business days do), else UTC.
    pub fn today(&self) -> NaiveDate {
        match self.calendar {
            Some(calendar) => self.now.with_timezone(&calendar.zone()).date_naive(),
            None => self.now.date_naive(),
        }
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
        // Alone, as a timer: that much business time after now.
        ExprKind::Business { count, unit } => {
            let count = business_count(count, ctx)?;
            move_by_business(Value::DateTime(ctx.now), count, *unit, false, ctx).map_err(|f| f.at(span))
        }
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
    // `due_date + 30 business days`: the calendar moves a date, no duration value can.
    if matches!(op, BinaryOp::Add | BinaryOp::Sub)
        && let Some((count, unit)) = right.business()
    {
        let (value, count) = (eval(left, ctx)?, business_count(count, ctx)?);
        return move_by_business(value, count, unit, op == BinaryOp::Sub, ctx).map_err(|f| f.at(span));
    }
    if op == BinaryOp::Add
        && let Some((count, unit)) = left.business()
    {
        let (count, value) = (business_count(count, ctx)?, eval(right, ctx)?);
        return move_by_business(value, count, unit, false, ctx).map_err(|f| f.at(span));
    }
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

/// The count of `3 business days` or `n business days`: a whole number from 0 to `MAX_COUNT`,
/// or `None` when the variable is null (then there is no time to count to).
fn business_count(count: &Expr, ctx: &EvalContext<'_>) -> Result<Option<u32>, EvalError> {
    let fail = |message: String| Fail::Invalid(message).at(count.span);
    match eval(count, ctx)? {
        Value::Null => Ok(None),
        Value::Number(n) if n.fract().is_zero() && n >= Decimal::ZERO => match n.to_u32() {
            Some(n) if n <= MAX_COUNT => Ok(Some(n)),
            _ => Err(fail(format!("at most {MAX_COUNT} business days or hours can be counted, found {n}"))),
        },
        Value::Number(n) => Err(fail(format!("a count of business days or hours is a whole number from 0, found {n}"))),
        other => Err(Fail::Type(format!("a count of business days or hours is an `int`, found `{}`", other.type_of()))
            .at(count.span)),
    }
}

/// A date or datetime moved by business days or hours on the context's calendar; null when the
/// count or the value is null.
fn move_by_business(
    value: Value,
    count: Option<u32>,
    unit: BusinessUnit,
    back: bool,
    ctx: &EvalContext<'_>,
) -> Result<Value, Fail> {
    let Some(calendar) = ctx.calendar else {
        return Err(Fail::Invalid("business days need a calendar, and the process names none".into()));
    };
    let Some(count) = count else { return Ok(Value::Null) };
    let n = if back { -i64::from(count) } else { i64::from(count) };
    let moved = match (value, unit) {
        (Value::Null, _) => return Ok(Value::Null),
        (Value::Date(d), BusinessUnit::Days) => calendar.add_days_to_date(d, n).map(Value::Date),
        (Value::Date(d), BusinessUnit::Hours) => {
            calendar.start_of(d).and_then(|t| calendar.add_working_time(t, n * 3600)).map(Value::DateTime)
        }
        (Value::DateTime(t), BusinessUnit::Days) => calendar.add_days(t, n).map(Value::DateTime),
        (Value::DateTime(t), BusinessUnit::Hours) => calendar.add_working_time(t, n * 3600).map(Value::DateTime),
        (other, _) => {
            let message = format!("business days and hours move a date or a datetime, found `{}`", other.type_of());
            return Err(Fail::Type(message));
        }
    };
    moved.ok_or_else(|| Fail::Invalid(format!("business time out of range on calendar `{}`", calendar.name())))
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
mod tests;
