//! The built-in functions: one table read by both the checker and the evaluator.
//!
//! Names are FEEL's (`string length`, `starts with`); the parser normalises snake_case aliases
//! (`string_length`) to them. Unless a function says otherwise, a `null` argument gives `null`.

use std::cmp::Ordering;

use chrono::NaiveDate;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use super::check::{is_orderable, unify};
use super::eval::{EvalContext, Fail, compare, midnight, number, values_equal};
use super::types::Type;
use super::value::{Value, format_datetime, format_duration, parse_date, parse_datetime, parse_iso_duration};

/// Why the argument types of a call do not fit.
pub(crate) enum ArgError {
    /// Argument `index` (0-based) should be `expected`.
    Expected { index: usize, expected: &'static str },
    /// Anything else, about the call as a whole.
    Message(String),
}

type CheckFn = fn(&[Type]) -> Result<Type, ArgError>;
type EvalFn = fn(&[Value], &EvalContext<'_>) -> Result<Value, Fail>;

/// One built-in function.
pub(crate) struct Builtin {
    /// Canonical (FEEL) name.
    pub(crate) name: &'static str,
    /// Fewest arguments.
    pub(crate) min_args: usize,
    /// Most arguments (`None`: any number).
    pub(crate) max_args: Option<usize>,
    /// A `null` argument makes the result `null` without calling `eval`.
    pub(crate) null_in_null_out: bool,
    /// Result type from the argument types (the count is already checked).
    pub(crate) check: CheckFn,
    /// The value from the argument values (the count is already checked).
    pub(crate) eval: EvalFn,
}

impl Builtin {
    /// The message for a call with `found` arguments, if that is the wrong number.
    pub(crate) fn arity_error(&self, found: usize) -> Option<String> {
        let fits = found >= self.min_args && self.max_args.is_none_or(|max| found <= max);
        if fits {
            return None;
        }
        let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
        let expected = match self.max_args {
            Some(max) if max == self.min_args => format!("{max} {}", plural(max)),
            Some(max) if max == self.min_args + 1 => format!("{} or {max} arguments", self.min_args),
            Some(max) => format!("{} to {max} arguments", self.min_args),
            None => format!("at least {} {}", self.min_args, plural(self.min_args)),
        };
        Some(format!("`{}` takes {expected}, found {found}", self.name))
    }
}

const fn builtin(
    name: &'static str,
    min_args: usize,
    max_args: Option<usize>,
    check: CheckFn,
    eval: EvalFn,
) -> Builtin {
    Builtin { name, min_args, max_args, null_in_null_out: true, check, eval }
}

const fn null_aware(b: Builtin) -> Builtin {
    Builtin { null_in_null_out: false, ..b }
}

static BUILTINS: &[Builtin] = &[
    null_aware(builtin("min", 1, None, check_extreme, |a, _| extreme(a, Ordering::Less))),
    null_aware(builtin("max", 1, None, check_extreme, |a, _| extreme(a, Ordering::Greater))),
    null_aware(builtin("sum", 1, None, check_sum, eval_sum)),
    builtin("count", 1, Some(1), check_count, eval_count),
    builtin("abs", 1, Some(1), check_abs, eval_abs),
    builtin("round", 1, Some(2), check_round, |a, _| round(a, RoundingStrategy::MidpointAwayFromZero)),
    builtin("round half up", 1, Some(2), check_round, |a, _| round(a, RoundingStrategy::MidpointAwayFromZero)),
    builtin("round half even", 1, Some(2), check_round, |a, _| round(a, RoundingStrategy::MidpointNearestEven)),
    builtin("round up", 1, Some(2), check_round, |a, _| round(a, RoundingStrategy::AwayFromZero)),
    builtin("round down", 1, Some(2), check_round, |a, _| round(a, RoundingStrategy::ToZero)),
    builtin("floor", 1, Some(2), check_round, |a, _| round(a, RoundingStrategy::ToNegativeInfinity)),
    builtin("ceiling", 1, Some(2), check_round, |a, _| round(a, RoundingStrategy::ToPositiveInfinity)),
    builtin("decimal", 2, Some(2), check_round, |a, _| round(a, RoundingStrategy::MidpointNearestEven)),
    builtin("today", 0, Some(0), |_| Ok(Type::Date), |_, ctx| Ok(Value::Date(ctx.today()))),
    builtin("now", 0, Some(0), |_| Ok(Type::DateTime), |_, ctx| Ok(Value::DateTime(ctx.now))),
    builtin("days between", 2, Some(2), check_days_between, eval_days_between),
    builtin("string length", 1, Some(1), check_string_length, eval_string_length),
    builtin("contains", 2, Some(2), check_text_text, |a, _| text_pred(a, "contains", |s, t| s.contains(t))),
    builtin("starts with", 2, Some(2), check_text_text, |a, _| text_pred(a, "starts with", |s, t| s.starts_with(t))),
    builtin("ends with", 2, Some(2), check_text_text, |a, _| text_pred(a, "ends with", |s, t| s.ends_with(t))),
    builtin("upper case", 1, Some(1), check_text_map, |a, _| text_map(a, "upper case", str::to_uppercase)),
    builtin("lower case", 1, Some(1), check_text_map, |a, _| text_map(a, "lower case", str::to_lowercase)),
    builtin("substring", 2, Some(3), check_substring, eval_substring),
    null_aware(builtin("list contains", 2, Some(2), check_list_contains, eval_list_contains)),
    builtin("date", 1, Some(3), check_date, eval_date),
    builtin("date and time", 1, Some(1), check_date_and_time, eval_date_and_time),
    builtin("duration", 1, Some(1), check_from_text::<DURATION>, eval_duration),
    builtin("number", 1, Some(1), check_from_text::<NUMBER>, eval_number),
    builtin("string", 1, Some(1), |_| Ok(Type::Text), eval_string),
];

/// The built-in called `name` (canonical spelling).
pub(crate) fn lookup(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// Every built-in's canonical name.
pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|b| b.name)
}

// ---- argument type checks ----------------------------------------------------------------

fn is_num(t: &Type) -> bool {
    t.is_numeric()
}

fn is_text(t: &Type) -> bool {
    matches!(t, Type::Text | Type::User)
}

fn is_int(t: &Type) -> bool {
    *t == Type::Int
}

fn is_temporal(t: &Type) -> bool {
    matches!(t, Type::Date | Type::DateTime)
}

/// Argument `index`, if present, must satisfy `ok` (`any` and `null` always do).
fn want(types: &[Type], index: usize, ok: fn(&Type) -> bool, expected: &'static str) -> Result<(), ArgError> {
    match types.get(index) {
        Some(Type::Any | Type::Null) | None => Ok(()),
        Some(t) if ok(t) => Ok(()),
        Some(_) => Err(ArgError::Expected { index, expected }),
    }
}

/// The types to compare in `min`/`max`/`sum`: a single list's element type, or every argument.
fn operands(types: &[Type]) -> Vec<(usize, Type)> {
    match types {
        [Type::List { of }] => vec![(0, (**of).clone())],
        _ => types.iter().cloned().enumerate().collect(),
    }
}

fn check_extreme(types: &[Type]) -> Result<Type, ArgError> {
    if let [Type::Any] = types {
        return Ok(Type::Any);
    }
    let mut acc = Type::Null;
    for (index, t) in operands(types) {
        if !is_orderable(&t) {
            return Err(ArgError::Expected { index, expected: "a number, text, date, datetime or duration" });
        }
        acc = unify(&acc, &t).ok_or_else(|| ArgError::Message(format!("cannot compare `{acc}` with `{t}`")))?;
    }
    Ok(acc)
}

fn check_sum(types: &[Type]) -> Result<Type, ArgError> {
    if let [Type::Any] = types {
        return Ok(Type::Any);
    }
    let mut acc = Type::Null;
    for (index, t) in operands(types) {
        if !(matches!(t, Type::Any | Type::Null | Type::Duration) || t.is_numeric()) {
            return Err(ArgError::Expected { index, expected: "numbers or durations" });
        }
        acc = unify(&acc, &t).ok_or_else(|| ArgError::Message(format!("cannot add `{acc}` and `{t}`")))?;
    }
    Ok(if acc == Type::Null { Type::Int } else { acc })
}

fn check_count(types: &[Type]) -> Result<Type, ArgError> {
    want(types, 0, |t| matches!(t, Type::List { .. }), "a list")?;
    Ok(Type::Int)
}

fn check_abs(types: &[Type]) -> Result<Type, ArgError> {
    want(types, 0, |t| t.is_numeric() || *t == Type::Duration, "a number or a duration")?;
    Ok(types[0].clone())
}

fn check_round(types: &[Type]) -> Result<Type, ArgError> {
    want(types, 0, is_num, "a number")?;
    want(types, 1, is_int, "an int scale")?;
    Ok(match (&types[0], types.len()) {
        (Type::Decimal, 1) => Type::Int,
        (t, _) => t.clone(),
    })
}

fn check_days_between(types: &[Type]) -> Result<Type, ArgError> {
    want(types, 0, is_temporal, "a date or a datetime")?;
    want(types, 1, is_temporal, "a date or a datetime")?;
    Ok(Type::Int)
}

fn check_string_length(types: &[Type]) -> Result<Type, ArgError> {
    want(types, 0, is_text, "text")?;
    Ok(Type::Int)
}

fn check_text_text(types: &[Type]) -> Result<Type, ArgError> {
    want(types, 0, is_text, "text")?;
    want(types, 1, is_text, "text")?;
    Ok(Type::Bool)
}

fn check_text_map(types: &[Type]) -> Result<Type, ArgError> {
    want(types, 0, is_text, "text")?;
    Ok(Type::Text)
}

fn check_substring(types: &[Type]) -> Result<Type, ArgError> {
    want(types, 0, is_text, "text")?;
    want(types, 1, is_int, "an int position")?;
    want(types, 2, is_int, "an int length")?;
    Ok(Type::Text)
}

fn check_list_contains(types: &[Type]) -> Result<Type, ArgError> {
    want(types, 0, |t| matches!(t, Type::List { .. }), "a list")?;
    match (&types[0], &types[1]) {
        (Type::List { of }, item) if !super::check::is_equatable(of, item) => {
            Err(ArgError::Message(format!("cannot look for `{item}` in `{}`", types[0])))
        }
        _ => Ok(Type::Bool),
    }
}

fn check_date(types: &[Type]) -> Result<Type, ArgError> {
    match types.len() {
        1 => want(types, 0, |t| is_text(t) || is_temporal(t), "text, a date or a datetime")?,
        3 => {
            for index in 0..3 {
                want(types, index, is_int, "an int")?;
            }
        }
        _ => return Err(ArgError::Message("`date` takes 1 argument (text) or 3 (year, month, day)".into())),
    }
    Ok(Type::Date)
}

fn check_date_and_time(types: &[Type]) -> Result<Type, ArgError> {
    want(types, 0, |t| is_text(t) || is_temporal(t), "text, a date or a datetime")?;
    Ok(Type::DateTime)
}

const DURATION: u8 = 0;
const NUMBER: u8 = 1;

fn check_from_text<const KIND: u8>(types: &[Type]) -> Result<Type, ArgError> {
    want(types, 0, is_text, "text")?;
    Ok(if KIND == DURATION { Type::Duration } else { Type::Decimal })
}

// ---- evaluation ------------------------------------------------------------------------

fn type_error(function: &str, index: usize, v: &Value) -> Fail {
    Fail::Type(format!("argument {} of `{function}` has type `{}`", index + 1, v.type_of()))
}

fn extreme(args: &[Value], want: Ordering) -> Result<Value, Fail> {
    let items = match args {
        [Value::List(items)] => items.as_slice(),
        _ => args,
    };
    let mut best: Option<&Value> = None;
    for item in items {
        if *item == Value::Null {
            return Ok(Value::Null);
        }
        best = match best {
            Some(b) if compare(item, b)? != want => Some(b),
            _ => Some(item),
        };
    }
    Ok(best.cloned().unwrap_or(Value::Null))
}

/// The sum of numbers or of durations; `sum([])` is 0 (not FEEL's null: an empty invoice
/// totals zero); a `null` item makes the sum `null`.
fn eval_sum(args: &[Value], _: &EvalContext<'_>) -> Result<Value, Fail> {
    let items = match args {
        [Value::List(items)] => items.as_slice(),
        [Value::Null] => return Ok(Value::Null),
        _ => args,
    };
    let mut total: Option<Value> = None;
    for (i, item) in items.iter().enumerate() {
        total = Some(match (total, item) {
            (_, Value::Null) => return Ok(Value::Null),
            (None, Value::Number(_) | Value::Duration(_)) => item.clone(),
            (Some(Value::Number(a)), Value::Number(b)) => Value::Number(a.checked_add(*b).ok_or(Fail::Overflow)?),
            (Some(Value::Duration(a)), Value::Duration(b)) => Value::Duration(a.checked_add(*b).ok_or(Fail::Overflow)?),
            _ => return Err(type_error("sum", i, item)),
        });
    }
    Ok(total.unwrap_or(Value::Number(Decimal::ZERO)))
}

fn eval_count(args: &[Value], _: &EvalContext<'_>) -> Result<Value, Fail> {
    match &args[0] {
        Value::List(items) => Ok(Value::Number(Decimal::from(items.len()))),
        other => Err(type_error("count", 0, other)),
    }
}

fn eval_abs(args: &[Value], _: &EvalContext<'_>) -> Result<Value, Fail> {
    match &args[0] {
        Value::Number(n) => Ok(Value::Number(n.abs())),
        Value::Duration(s) => s.checked_abs().map(Value::Duration).ok_or(Fail::Overflow),
        other => Err(type_error("abs", 0, other)),
    }
}

/// Rounds to `scale` places (0 if absent) and shows that many places: `round(2.5) = 3`,
/// `round(1234.5, 2)` is `1234.50`.
fn round(args: &[Value], strategy: RoundingStrategy) -> Result<Value, Fail> {
    let Value::Number(n) = &args[0] else {
        return Err(Fail::Type(format!("cannot round `{}`", args[0].type_of())));
    };
    let scale = match args.get(1) {
        None => 0,
        Some(Value::Number(s)) if s.fract().is_zero() => s.to_u32().filter(|s| *s <= 28).ok_or_else(|| bad_scale(s))?,
        Some(Value::Number(s)) => return Err(bad_scale(s)),
        Some(other) => return Err(Fail::Type(format!("scale must be an int, found `{}`", other.type_of()))),
    };
    let rounded = n.round_dp_with_strategy(scale, strategy);
    let mut padded = rounded;
    padded.rescale(scale);
    Ok(number(if padded == rounded { padded } else { rounded }))
}

fn bad_scale(s: &Decimal) -> Fail {
    Fail::Invalid(format!("scale must be a whole number from 0 to 28, found {s}"))
}

fn eval_days_between(args: &[Value], _: &EvalContext<'_>) -> Result<Value, Fail> {
    let instant = |i: usize| match &args[i] {
        Value::Date(d) => Ok(midnight(*d)),
        Value::DateTime(dt) => Ok(*dt),
        other => Err(type_error("days between", i, other)),
    };
    let (a, b) = (instant(0)?, instant(1)?);
    Ok(Value::Number(Decimal::from((b - a).num_days())))
}

fn text_arg<'v>(args: &'v [Value], i: usize, function: &str) -> Result<&'v str, Fail> {
    match &args[i] {
        Value::Text(s) => Ok(s),
        other => Err(type_error(function, i, other)),
    }
}

fn eval_string_length(args: &[Value], _: &EvalContext<'_>) -> Result<Value, Fail> {
    Ok(Value::Number(Decimal::from(text_arg(args, 0, "string length")?.chars().count())))
}

fn text_pred(args: &[Value], function: &str, pred: fn(&str, &str) -> bool) -> Result<Value, Fail> {
    Ok(Value::Bool(pred(text_arg(args, 0, function)?, text_arg(args, 1, function)?)))
}

fn text_map(args: &[Value], function: &str, map: fn(&str) -> String) -> Result<Value, Fail> {
    Ok(Value::Text(map(text_arg(args, 0, function)?)))
}

fn int_arg(args: &[Value], i: usize, what: &str) -> Result<i64, Fail> {
    match &args[i] {
        Value::Number(n) if n.fract().is_zero() => {
            n.to_i64().ok_or_else(|| Fail::Invalid(format!("{what} {n} is out of range")))
        }
        Value::Number(n) => Err(Fail::Invalid(format!("{what} must be a whole number, found {n}"))),
        other => Err(Fail::Type(format!("{what} must be an int, found `{}`", other.type_of()))),
    }
}

/// FEEL `substring(s, start, length?)`: `start` is 1-based, negative counts from the end.
fn eval_substring(args: &[Value], _: &EvalContext<'_>) -> Result<Value, Fail> {
    let chars: Vec<char> = text_arg(args, 0, "substring")?.chars().collect();
    let len = chars.len() as i64;
    let start = int_arg(args, 1, "start position")?;
    let from = match start {
        0 => return Err(Fail::Invalid("start position 0 is invalid: positions start at 1".into())),
        s if s > 0 => s - 1,
        s => (len + s).max(0),
    }
    .min(len);
    let take = match args.get(2) {
        Some(_) => int_arg(args, 2, "length")?,
        None => len,
    };
    if take < 0 {
        return Err(Fail::Invalid(format!("length must not be negative, found {take}")));
    }
    let to = from.saturating_add(take).min(len);
    Ok(Value::Text(chars[from as usize..to as usize].iter().collect()))
}

fn eval_list_contains(args: &[Value], _: &EvalContext<'_>) -> Result<Value, Fail> {
    match &args[0] {
        Value::Null => Ok(Value::Null),
        Value::List(items) => {
            for item in items {
                if values_equal(item, &args[1])? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        other => Err(type_error("list contains", 0, other)),
    }
}

/// The message for a text that is not a valid date.
pub(crate) fn invalid_date(s: &str) -> String {
    format!("invalid date \"{s}\"")
}

/// The message for a text that is not a valid datetime.
pub(crate) fn invalid_datetime(s: &str) -> String {
    format!("invalid datetime \"{s}\"")
}

/// The message for a text that is not a valid number.
pub(crate) fn invalid_number(s: &str) -> String {
    format!("invalid number \"{s}\"")
}

/// Parses the text of a `duration(...)`: ISO 8601, or the shorthand a literal like `0.5s`
/// falls back to when it is not whole seconds.
pub(crate) fn duration_from_text(s: &str) -> Result<i64, String> {
    let shorthand = s.len() > 1
        && s.ends_with(['w', 'd', 'h', 'm', 's'])
        && s[..s.len() - 1].chars().all(|c| c.is_ascii_digit() || c == '_' || c == '.');
    if shorthand {
        return super::parse::parse_duration(s)
            .ok_or_else(|| format!("invalid duration `{s}`: not a whole number of seconds, or too large"));
    }
    parse_iso_duration(s)
}

/// The number of months of a years-and-months duration (`P1M`, `P1Y`, `P1Y6M`, `-P3M`); `None`
/// for any other text. Months have no fixed length, so such a duration is never a value of its
/// own (durations are whole seconds): it is only added to or subtracted from a date or datetime.
pub(crate) fn months_from_text(s: &str) -> Option<i64> {
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let body = body.strip_prefix('P')?;
    let (mut months, mut number, mut last_rank, mut seen) = (0i64, String::new(), 0, false);
    for c in body.chars() {
        match c {
            '0'..='9' => number.push(c),
            'Y' | 'M' => {
                let rank = if c == 'Y' { 1 } else { 2 };
                if rank <= last_rank || number.is_empty() {
                    return None;
                }
                let n: i64 = number.parse().ok()?;
                months = months.checked_add(n.checked_mul(if c == 'Y' { 12 } else { 1 })?)?;
                (last_rank, seen) = (rank, true);
                number.clear();
            }
            _ => return None,
        }
    }
    (seen && number.is_empty() && months <= 120_000).then_some(if negative { -months } else { months })
}

/// The months of `duration("P1M")` written as a literal, the only way a years-and-months
/// duration appears in an expression.
pub(crate) fn months_literal(e: &super::ast::Expr) -> Option<i64> {
    use super::ast::ExprKind;
    match &e.kind {
        ExprKind::Call { function, args } if function == "duration" => match args.as_slice() {
            [super::ast::Expr { kind: ExprKind::Text(s), .. }] => months_from_text(s),
            _ => None,
        },
        _ => None,
    }
}

/// `value` moved by `months` calendar months. The end-of-month rule: when the day does not
/// exist in the target month, the result is that month's last day (Jan 31 + P1M = Feb 28, or
/// Feb 29 in a leap year; Mar 31 - P1M = Feb 28). A datetime keeps its time of day (UTC).
pub(crate) fn add_months(value: Value, months: i64) -> Result<Value, Fail> {
    let amount = chrono::Months::new(u32::try_from(months.unsigned_abs()).map_err(|_| Fail::Overflow)?);
    match value {
        Value::Null => Ok(Value::Null),
        Value::Date(d) => {
            let moved = if months >= 0 { d.checked_add_months(amount) } else { d.checked_sub_months(amount) };
            moved.map(Value::Date).ok_or(Fail::Overflow)
        }
        Value::DateTime(dt) => {
            let moved = if months >= 0 { dt.checked_add_months(amount) } else { dt.checked_sub_months(amount) };
            moved.map(Value::DateTime).ok_or(Fail::Overflow)
        }
        other => Err(Fail::Type(format!(
            "a duration in months or years can only move a date or a datetime, found `{}`",
            other.type_of()
        ))),
    }
}

/// Parses the text of a `number(...)`: digits with an optional fraction, `_` separators or an
/// exponent.
pub(crate) fn number_from_text(s: &str) -> Option<Decimal> {
    let s = s.trim();
    super::parse::parse_number(s)
        .or_else(|| Decimal::from_str_exact(s).ok())
        .or_else(|| if s.contains(['e', 'E']) { Decimal::from_scientific(s).ok() } else { None })
}

fn eval_date(args: &[Value], _: &EvalContext<'_>) -> Result<Value, Fail> {
    match args {
        [Value::Text(s)] => parse_date(s).map(Value::Date).ok_or_else(|| Fail::Invalid(invalid_date(s))),
        [Value::Date(d)] => Ok(Value::Date(*d)),
        [Value::DateTime(dt)] => Ok(Value::Date(dt.date_naive())),
        [_, _, _] => {
            let (y, m, d) = (int_arg(args, 0, "year")?, int_arg(args, 1, "month")?, int_arg(args, 2, "day")?);
            let date = (|| NaiveDate::from_ymd_opt(y.try_into().ok()?, m.try_into().ok()?, d.try_into().ok()?))();
            date.map(Value::Date).ok_or_else(|| Fail::Invalid(format!("invalid date {y}-{m}-{d}")))
        }
        [other] => Err(type_error("date", 0, other)),
        _ => Err(Fail::Invalid("`date` takes 1 argument (text) or 3 (year, month, day)".into())),
    }
}

fn eval_date_and_time(args: &[Value], _: &EvalContext<'_>) -> Result<Value, Fail> {
    match &args[0] {
        Value::Text(s) => parse_datetime(s).map(Value::DateTime).ok_or_else(|| Fail::Invalid(invalid_datetime(s))),
        Value::Date(d) => Ok(Value::DateTime(midnight(*d))),
        Value::DateTime(dt) => Ok(Value::DateTime(*dt)),
        other => Err(type_error("date and time", 0, other)),
    }
}

fn eval_duration(args: &[Value], _: &EvalContext<'_>) -> Result<Value, Fail> {
    let s = text_arg(args, 0, "duration")?;
    duration_from_text(s).map(Value::Duration).map_err(Fail::Invalid)
}

fn eval_number(args: &[Value], _: &EvalContext<'_>) -> Result<Value, Fail> {
    let s = text_arg(args, 0, "number")?;
    number_from_text(s).map(Value::Number).ok_or_else(|| Fail::Invalid(invalid_number(s)))
}

/// FEEL `string(x)`: text as is, numbers with their scale, dates and durations in ISO form.
fn eval_string(args: &[Value], _: &EvalContext<'_>) -> Result<Value, Fail> {
    Ok(Value::Text(match &args[0] {
        Value::Text(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Date(d) => d.format("%Y-%m-%d").to_string(),
        Value::DateTime(dt) => format_datetime(dt),
        Value::Duration(s) => format_duration(*s),
        other => other.to_string(),
    }))
}
