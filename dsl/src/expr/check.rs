//! The type checker: infers an expression's type and reports every problem it finds.
//!
//! `any` (a job result, a message payload) passes every check and is checked at run time;
//! `null` fits everywhere. An expression with an error gets type `any` so one mistake is
//! reported once, not again by every operator around it.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::ast::{BinaryOp, BusinessUnit, Expr, ExprKind, UnaryOp};
use super::builtins::{self, ArgError};
use super::types::Type;
use super::value::{parse_date, parse_datetime};
use crate::codes;
use crate::diag::{Diagnostic, FileId, Span};
use crate::suggest::did_you_mean;

/// What the checker knows about names: each variable in scope and its type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    vars: BTreeMap<String, Type>,
}

impl Scope {
    /// An empty scope.
    pub fn new() -> Self {
        Scope::default()
    }

    /// This scope with one more variable (builder style).
    pub fn with(mut self, name: impl Into<String>, ty: Type) -> Self {
        self.insert(name, ty);
        self
    }

    /// Adds or replaces a variable.
    pub fn insert(&mut self, name: impl Into<String>, ty: Type) {
        self.vars.insert(name.into(), ty);
    }

    /// The type of a variable.
    pub fn get(&self, name: &str) -> Option<&Type> {
        self.vars.get(name)
    }

    /// The type of a field path such as `order.customer.name`, walking record types.
    pub fn lookup_path(&self, path: &str) -> Option<Type> {
        let mut segments = path.split('.');
        let mut ty = self.vars.get(segments.next()?)?.clone();
        for segment in segments {
            ty = match ty {
                Type::Record { fields } => fields.get(segment)?.clone(),
                Type::Any => Type::Any,
                _ => return None,
            };
        }
        Some(ty)
    }

    /// The names in scope, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }
}

impl FromIterator<(String, Type)> for Scope {
    fn from_iter<I: IntoIterator<Item = (String, Type)>>(iter: I) -> Self {
        Scope { vars: iter.into_iter().collect() }
    }
}

/// The type of `expr` and every diagnostic found in it (never stops at the first).
pub fn check_expr(expr: &Expr, scope: &Scope, file: FileId) -> (Type, Vec<Diagnostic>) {
    let mut checker = Checker { scope, file, diags: Vec::new() };
    let ty = checker.expr(expr);
    (ty, checker.diags)
}

/// Checks a timer expression: like [`check_expr`], except that a business count alone
/// (`3 business days`) is accepted and means that long after the instant the node is entered.
pub fn check_timer(expr: &Expr, scope: &Scope, file: FileId) -> (Type, Vec<Diagnostic>) {
    let mut checker = Checker { scope, file, diags: Vec::new() };
    let ty = match expr.business() {
        Some((count, _)) => {
            checker.business_count(count, expr.span);
            Type::DateTime
        }
        None => checker.expr(expr),
    };
    (ty, checker.diags)
}

/// Checks an expression used as a condition: it must be a `bool` (or `any`).
pub fn check_condition(expr: &Expr, scope: &Scope, file: FileId) -> Vec<Diagnostic> {
    let mut checker = Checker { scope, file, diags: Vec::new() };
    checker.condition(expr);
    checker.diags
}

/// The type both `a` and `b` fit in (for list elements, `if` branches, `min`), if any.
pub(crate) fn unify(a: &Type, b: &Type) -> Option<Type> {
    use Type::*;
    Some(match (a, b) {
        (x, y) if x == y => x.clone(),
        (Null, t) | (t, Null) => t.clone(),
        (Any, _) | (_, Any) => Any,
        (x, y) if x.is_numeric() && y.is_numeric() => {
            if *x == Money || *y == Money {
                Money
            } else {
                Decimal
            }
        }
        (Text | User, Text | User) => Text,
        (List { of: x }, List { of: y }) => List { of: Box::new(unify(x, y)?) },
        (Record { fields: x }, Record { fields: y }) if x.keys().eq(y.keys()) => Record {
            fields: x
                .iter()
                .zip(y.values())
                .map(|((k, t), u)| Some((k.clone(), unify(t, u)?)))
                .collect::<Option<_>>()?,
        },
        _ => return None,
    })
}

/// True for the types `<` orders: numbers, text, dates, datetimes and durations.
pub(crate) fn is_orderable(t: &Type) -> bool {
    t.is_numeric()
        || matches!(t, Type::Text | Type::User | Type::Date | Type::DateTime | Type::Duration | Type::Any | Type::Null)
}

/// True if `a` and `b` may be compared with `=`.
pub(crate) fn is_equatable(a: &Type, b: &Type) -> bool {
    use Type::*;
    match (a, b) {
        (Any | Null, _) | (_, Any | Null) => true,
        (x, y) if x.is_numeric() && y.is_numeric() => true,
        (Text | User, Text | User) | (Date | DateTime, Date | DateTime) => true,
        (List { of: x }, List { of: y }) => is_equatable(x, y),
        (Record { fields: x }, Record { fields: y }) => {
            x.iter().all(|(k, t)| y.get(k).is_none_or(|u| is_equatable(t, u)))
        }
        (x, y) => x == y,
    }
}

/// True if `a < b` makes sense.
fn is_ordered_pair(a: &Type, b: &Type) -> bool {
    is_orderable(a) && is_orderable(b) && is_equatable(a, b)
}

/// The closest candidate to `name`, if close enough to be a likely typo (case is ignored).
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let candidates: Vec<&str> = candidates.collect();
    let lower: Vec<String> = candidates.iter().map(|c| c.to_lowercase()).collect();
    let name = name.to_lowercase();
    let best = match lower.iter().find(|c| **c == name) {
        Some(same) => same.as_str(),
        None => did_you_mean(&name, lower.iter().map(String::as_str))?,
    };
    lower.iter().position(|c| c == best).map(|i| candidates[i])
}

/// A short list of names for a help line: `a, b, c, …`.
fn brief_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    let mut shown = names.iter().take(8).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    if names.len() > 8 {
        shown.push_str(", …");
    }
    shown
}

/// The value of a duration known before run time: `7d`, `-1h`, `duration("P1D")`, `1d + 2h`.
fn const_duration(e: &Expr) -> Option<i64> {
    match &e.kind {
        ExprKind::Duration(s) => Some(*s),
        ExprKind::Unary { op: UnaryOp::Neg, operand } => const_duration(operand)?.checked_neg(),
        ExprKind::Binary { op: BinaryOp::Add, left, right } => {
            const_duration(left)?.checked_add(const_duration(right)?)
        }
        ExprKind::Binary { op: BinaryOp::Sub, left, right } => {
            const_duration(left)?.checked_sub(const_duration(right)?)
        }
        ExprKind::Call { function, args } if function == "duration" => match args.as_slice() {
            [Expr { kind: ExprKind::Text(s), .. }] => builtins::duration_from_text(s).ok(),
            _ => None,
        },
        _ => None,
    }
}

const DATE_FIELDS: &[&str] = &["year", "month", "day", "weekday"];
const DATETIME_FIELDS: &[&str] = &["year", "month", "day", "weekday", "hour", "minute", "second"];
const DURATION_FIELDS: &[&str] = &["days", "hours", "minutes", "seconds"];

struct Checker<'a> {
    scope: &'a Scope,
    file: FileId,
    diags: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, code: &'static str, span: Span, message: String, label: &str, help: Option<String>) {
        // Every diagnostic says how to fix it; these are the general fixes per kind.
        let help = help.unwrap_or_else(|| {
            match code {
                codes::TYPE_MISMATCH => {
                    "use values of matching types: numbers with numbers, text with text, dates with durations"
                }
                codes::ARITY => "the built-in functions and their arguments are listed in README.md",
                codes::UNKNOWN_FUNCTION => "the built-in functions are listed in README.md",
                codes::UNKNOWN_VARIABLE => "declare it with `var name: type` or as an input",
                codes::UNKNOWN_FIELD => "check the field names of the record type",
                _ => "see the expression reference in README.md",
            }
            .to_string()
        });
        self.diags.push(Diagnostic::error(code, self.file, span, message).with_label(label).with_help(help));
    }

    fn mismatch(&mut self, span: Span, message: String, label: &str, help: Option<String>) -> Type {
        self.error(codes::TYPE_MISMATCH, span, message, label, help);
        Type::Any
    }

    fn condition(&mut self, e: &Expr) {
        let ty = self.expr(e);
        if !matches!(ty, Type::Bool | Type::Any) {
            self.not_bool(e, &ty);
        }
    }

    #[inline(never)]
    fn not_bool(&mut self, e: &Expr, ty: &Type) {
        {
            self.error(
                codes::NOT_BOOL,
                e.span,
                format!("condition has type `{ty}`, expected `bool`"),
                &format!("this is `{ty}`"),
                Some("a condition must be true or false: compare the value, for example `x > 0`".into()),
            );
        }
    }

    /// The type of `e`. Recursion follows the tree, whose depth the parser bounds; each kind of
    /// node has a function of its own, and the diagnostics are built outside the recursive
    /// path, so that the frames on it stay small.
    fn expr(&mut self, e: &Expr) -> Type {
        match &e.kind {
            ExprKind::Null => Type::Null,
            ExprKind::Bool(_) => Type::Bool,
            ExprKind::Number(n) => {
                if n.scale() == 0 {
                    Type::Int
                } else {
                    Type::Decimal
                }
            }
            ExprKind::Text(_) => Type::Text,
            ExprKind::Duration(_) => Type::Duration,
            ExprKind::Business { count, .. } => self.business_alone(count, e.span),
            ExprKind::Name(name) => self.name(name, e.span),
            ExprKind::Field { target, field } => {
                let target_ty = self.expr(target);
                self.field(&target_ty, field, e.span)
            }
            ExprKind::List(items) => self.list(items),
            ExprKind::Range { low, high, .. } => {
                self.expr(low);
                self.expr(high);
                self.range_outside_in(e.span)
            }
            ExprKind::Unary { op, operand } => {
                let t = self.expr(operand);
                self.unary(*op, t, operand.span, e.span)
            }
            ExprKind::Binary { op, left, right } => self.binary(*op, left, right, e.span),
            ExprKind::Between { value, low, high } => {
                let (v, lo, hi) = (self.expr(value), self.expr(low), self.expr(high));
                self.between(&v, (low.span, &lo), (high.span, &hi))
            }
            ExprKind::If { cond, then, otherwise } => {
                self.condition(cond);
                let (a, b) = (self.expr(then), self.expr(otherwise));
                self.branches(&a, &b, e.span)
            }
            ExprKind::Call { function, args } => {
                let types: Vec<Type> = args.iter().map(|a| self.expr(a)).collect();
                self.call(function, args, &types, e.span)
            }
        }
    }

    fn list(&mut self, items: &[Expr]) -> Type {
        let mut acc = Type::Null;
        for item in items {
            let t = self.expr(item);
            acc = self.list_item(acc, t, item.span);
        }
        Type::List { of: Box::new(if items.is_empty() { Type::Any } else { acc }) }
    }

    #[inline(never)]
    fn list_item(&mut self, acc: Type, t: Type, span: Span) -> Type {
        match unify(&acc, &t) {
            Some(u) => u,
            None => {
                let message = format!("list elements have different types: `{acc}` and `{t}`");
                self.mismatch(span, message, &format!("this is `{t}`"), None);
                Type::Any
            }
        }
    }

    #[inline(never)]
    fn range_outside_in(&mut self, span: Span) -> Type {
        self.mismatch(
            span,
            "a range can only be used after `in`".into(),
            "range here",
            Some("write `x in [1..10]`".into()),
        )
    }

    #[inline(never)]
    fn unary(&mut self, op: UnaryOp, t: Type, operand: Span, span: Span) -> Type {
        match (op, &t) {
            (_, Type::Any) => Type::Any,
            (UnaryOp::Not, Type::Bool | Type::Null) => Type::Bool,
            (UnaryOp::Neg, Type::Null) => Type::Null,
            (UnaryOp::Neg, t) if t.is_numeric() || *t == Type::Duration => t.clone(),
            (UnaryOp::Not, t) => {
                let message = format!("`not` needs a bool, found `{t}`");
                self.mismatch(operand, message, &format!("this is `{t}`"), None)
            }
            (UnaryOp::Neg, t) => self.mismatch(span, format!("cannot negate `{t}`"), &format!("this is `{t}`"), None),
        }
    }

    #[inline(never)]
    fn between(&mut self, v: &Type, low: (Span, &Type), high: (Span, &Type)) -> Type {
        for (span, t) in [low, high] {
            if !is_ordered_pair(v, t) {
                let message = format!("cannot compare `{v}` with `{t}`");
                self.mismatch(span, message, &format!("this is `{t}`"), None);
            }
        }
        Type::Bool
    }

    #[inline(never)]
    fn branches(&mut self, a: &Type, b: &Type, span: Span) -> Type {
        match unify(a, b) {
            Some(t) => t,
            None => {
                let message = format!("`if` branches have different types: `{a}` and `{b}`");
                self.mismatch(span, message, "the branches differ", None)
            }
        }
    }

    fn name(&mut self, name: &str, span: Span) -> Type {
        if let Some(t) = self.scope.get(name) {
            return t.clone();
        }
        let help = match closest(name, self.scope.names()) {
            Some(best) => format!("did you mean `{best}`?"),
            None if self.scope.vars.is_empty() => "no variables are in scope here".to_string(),
            None => format!("variables in scope: {}", brief_list(self.scope.names())),
        };
        self.error(codes::UNKNOWN_VARIABLE, span, format!("unknown variable `{name}`"), "not in scope", Some(help));
        Type::Any
    }

    fn field(&mut self, target: &Type, field: &str, span: Span) -> Type {
        let known: &[&str] = match target {
            Type::Any | Type::Null => return Type::Any,
            Type::Record { fields } => {
                if let Some(t) = fields.get(field) {
                    return t.clone();
                }
                let help = match closest(field, fields.keys().map(String::as_str)) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => format!("its fields are {}", brief_list(fields.keys().map(String::as_str))),
                };
                let message = format!("unknown field `{field}`");
                self.error(codes::UNKNOWN_FIELD, span, message, "not a field of this record", Some(help));
                return Type::Any;
            }
            Type::Date => DATE_FIELDS,
            Type::DateTime => DATETIME_FIELDS,
            Type::Duration => DURATION_FIELDS,
            _ => &[],
        };
        if known.contains(&field) {
            return Type::Int;
        }
        let help = if known.is_empty() {
            None
        } else {
            Some(format!("a `{target}` has fields {}", brief_list(known.iter().copied())))
        };
        let label = format!("`{target}` has no field `{field}`");
        self.error(codes::UNKNOWN_FIELD, span, format!("unknown field `{field}`"), &label, help);
        Type::Any
    }

    fn binary(&mut self, op: BinaryOp, left: &Expr, right: &Expr, span: Span) -> Type {
        // `due_date + 30 business days` (or `3 business days + x`): the calendar moves a date.
        if matches!(op, BinaryOp::Add | BinaryOp::Sub)
            && let Some((count, unit)) = right.business()
        {
            let a = self.expr(left);
            return self.moved_by_business(a, count, unit, left.span, right.span);
        }
        if op == BinaryOp::Add
            && let Some((count, unit)) = left.business()
        {
            let b = self.expr(right);
            return self.moved_by_business(b, count, unit, right.span, left.span);
        }
        // `date + duration("P1M")` (or `P1M + date`): calendar months move a date.
        if matches!(op, BinaryOp::Add | BinaryOp::Sub) && builtins::months_literal(right).is_some() {
            let a = self.expr(left);
            return self.moved_by_months(a, left.span, span);
        }
        if op == BinaryOp::Add && builtins::months_literal(left).is_some() {
            let b = self.expr(right);
            return self.moved_by_months(b, right.span, span);
        }
        let a = self.expr(left);
        if op == BinaryOp::In {
            return self.membership(&a, right);
        }
        let b = self.expr(right);
        self.binary_result(op, &a, &b, left, right, span)
    }

    /// The type of a date or datetime moved by business days or hours: a date stays a date when
    /// moved by days; business hours give a datetime.
    #[inline(never)]
    fn moved_by_business(&mut self, t: Type, count: &Expr, unit: BusinessUnit, operand: Span, business: Span) -> Type {
        self.business_count(count, business);
        match (t, unit) {
            (Type::Date, BusinessUnit::Hours) => Type::DateTime,
            (t @ (Type::Date | Type::DateTime | Type::Any | Type::Null), _) => t,
            (other, _) => {
                let message = format!("business days and hours move a date or a datetime, found `{other}`");
                let help = "write `due_date + 30 business days`, or `now() + 4 business hours`";
                self.error(codes::TYPE_MISMATCH, operand, message, &format!("this is `{other}`"), Some(help.into()));
                Type::Any
            }
        }
    }

    /// A business count alone, outside a timer: it is not a value.
    #[inline(never)]
    fn business_alone(&mut self, count: &Expr, span: Span) -> Type {
        self.business_count(count, span);
        let message = "business days and hours are not a value: they move a date or a datetime".to_string();
        let help = "add them to a date (`due_date + 3 business days`, `now() + 4 business hours`), or write them \
                    alone where a timer is expected (`due 3 business days`, `escalate after 2 business days -> x`)";
        self.error(codes::INVALID_LITERAL, span, message, "not a value here", Some(help.into()));
        Type::Any
    }

    /// A business count is a whole number up to `MAX_COUNT`, or a variable holding one (checked
    /// again when it is evaluated).
    fn business_count(&mut self, count: &Expr, span: Span) {
        match &count.kind {
            ExprKind::Number(n) if *n > Decimal::from(crate::calendar::MAX_COUNT) => {
                let message = format!("at most {} business days or hours can be counted", crate::calendar::MAX_COUNT);
                let help = "count fewer business days, or move a date in calendar time (`due_date + 365d`)";
                self.error(codes::INVALID_LITERAL, span, message, "too many", Some(help.into()));
            }
            ExprKind::Name(name) => match self.name(name, count.span) {
                Type::Int | Type::Any | Type::Null => {}
                other => {
                    let message = format!("a count of business days or hours must be an `int`, found `{other}`");
                    let help = format!(
                        "declare `{name}` as `int` (whole days or hours), or write a number such as `3 business days`"
                    );
                    self.error(codes::TYPE_MISMATCH, count.span, message, &format!("this is `{other}`"), Some(help));
                }
            },
            _ => {}
        }
    }

    /// The type of a date or datetime moved by a number of months.
    #[inline(never)]
    fn moved_by_months(&mut self, t: Type, operand: Span, span: Span) -> Type {
        match t {
            Type::Date | Type::DateTime | Type::Any | Type::Null => t,
            other => {
                let message =
                    format!("a duration in months or years can only move a date or a datetime, found `{other}`");
                let help = "months have no fixed length: write `due_date + duration(\"P1M\")`, or use days (`30d`)";
                self.error(
                    codes::TYPE_MISMATCH,
                    operand.to(span),
                    message,
                    &format!("this is `{other}`"),
                    Some(help.into()),
                );
                Type::Any
            }
        }
    }

    #[inline(never)]
    fn binary_result(&mut self, op: BinaryOp, a: &Type, b: &Type, left: &Expr, right: &Expr, span: Span) -> Type {
        use Type::*;
        let (a, b) = (a.clone(), b.clone());
        let pair = format!("left is `{a}`, right is `{b}`");
        match op {
            BinaryOp::And | BinaryOp::Or => {
                let word = if op == BinaryOp::And { "and" } else { "or" };
                for (side, t) in [(left, &a), (right, &b)] {
                    if !matches!(t, Bool | Null | Any) {
                        let message = format!("`{word}` needs bool operands, found `{t}`");
                        self.mismatch(side.span, message, &format!("this is `{t}`"), None);
                    }
                }
                return Bool;
            }
            BinaryOp::Eq | BinaryOp::Ne => {
                if !is_equatable(&a, &b) {
                    self.mismatch(span, format!("cannot compare `{a}` with `{b}`"), &pair, None);
                }
                return Bool;
            }
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                if !is_ordered_pair(&a, &b) {
                    self.mismatch(span, format!("cannot compare `{a}` with `{b}`"), &pair, None);
                }
                return Bool;
            }
            _ => {}
        }
        if a == Any || b == Any {
            return Any;
        }
        if a == Null || b == Null {
            return if a == Null { b } else { a };
        }
        let numeric = a.is_numeric() && b.is_numeric();
        let money = a == Money || b == Money;
        let result = match (op, &a, &b) {
            (BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul, _, _) if numeric => {
                if money {
                    Some(Money)
                } else if a == Int && b == Int {
                    Some(Int)
                } else {
                    Some(Decimal)
                }
            }
            (BinaryOp::Div, Money, Money) => Some(Decimal),
            (BinaryOp::Div, Money, _) if numeric => Some(Money),
            (BinaryOp::Div, _, _) if numeric => Some(Decimal),
            (BinaryOp::Pow, Int, Int) => {
                let whole = matches!(&right.kind, ExprKind::Number(n) if n.is_sign_positive() || n.is_zero());
                Some(if whole { Int } else { Decimal })
            }
            (BinaryOp::Pow, base, _) if numeric => Some(if *base == Int { Decimal } else { base.clone() }),
            (BinaryOp::Add, Text | User, Text | User) => Some(Text),
            (BinaryOp::Add, Date, Duration) | (BinaryOp::Sub, Date, Duration) => Some(match const_duration(right) {
                Some(s) if s % 86_400 == 0 => Date,
                Some(_) => DateTime,
                None => Any,
            }),
            (BinaryOp::Add, Duration, Date) => Some(match const_duration(left) {
                Some(s) if s % 86_400 == 0 => Date,
                Some(_) => DateTime,
                None => Any,
            }),
            (BinaryOp::Add, DateTime, Duration)
            | (BinaryOp::Sub, DateTime, Duration)
            | (BinaryOp::Add, Duration, DateTime) => Some(DateTime),
            (BinaryOp::Sub, Date | DateTime, Date | DateTime) => Some(Duration),
            (BinaryOp::Add | BinaryOp::Sub, Duration, Duration) => Some(Duration),
            (BinaryOp::Mul, Duration, n) | (BinaryOp::Mul, n, Duration) if n.is_numeric() => Some(Duration),
            (BinaryOp::Div, Duration, n) if n.is_numeric() => Some(Duration),
            (BinaryOp::Div, Duration, Duration) => Some(Decimal),
            _ => None,
        };
        if let Some(t) = result {
            return t;
        }
        let message = match op {
            BinaryOp::Add => format!("cannot add `{a}` and `{b}`"),
            BinaryOp::Sub => format!("cannot subtract `{b}` from `{a}`"),
            BinaryOp::Mul => format!("cannot multiply `{a}` by `{b}`"),
            BinaryOp::Div => format!("cannot divide `{a}` by `{b}`"),
            _ => format!("cannot raise `{a}` to the power `{b}`"),
        };
        let text_and_number = op == BinaryOp::Add
            && (matches!(a, Text | User) || matches!(b, Text | User))
            && (numeric || a.is_numeric() || b.is_numeric());
        let help = text_and_number.then(|| "to join text and a number, convert it with `string(x)`".to_string());
        self.mismatch(span, message, &pair, help)
    }

    /// `x in list` or `x in [a..b]`.
    fn membership(&mut self, item: &Type, right: &Expr) -> Type {
        if let ExprKind::Range { low, high, .. } = &right.kind {
            let (lo, hi) = (self.expr(low), self.expr(high));
            return self.between(item, (low.span, &lo), (high.span, &hi));
        }
        let container = self.expr(right);
        self.membership_result(item, container, right)
    }

    #[inline(never)]
    fn membership_result(&mut self, item: &Type, container: Type, right: &Expr) -> Type {
        match &container {
            Type::Any | Type::Null => {}
            Type::List { of } => {
                if !is_equatable(item, of) {
                    let message = format!("cannot look for `{item}` in `{container}`");
                    let label = format!("this is `{container}`");
                    self.mismatch(right.span, message, &label, None);
                }
            }
            other => {
                let message = format!("`in` needs a list or a range, found `{other}`");
                let help = Some("write `x in [a, b]` or `x in [low..high]`".to_string());
                self.mismatch(right.span, message, &format!("this is `{other}`"), help);
            }
        }
        Type::Bool
    }

    #[inline(never)]
    fn call(&mut self, function: &str, args: &[Expr], types: &[Type], span: Span) -> Type {
        let Some(builtin) = builtins::lookup(function) else {
            let help = closest(function, builtins::names()).map(|best| format!("did you mean `{best}`?"));
            let message = format!("unknown function `{function}`");
            self.error(codes::UNKNOWN_FUNCTION, span, message, "not a built-in function", help);
            return Type::Any;
        };
        if let Some(message) = builtin.arity_error(args.len()) {
            let label = format!("{} given", args.len());
            self.error(codes::ARITY, span, message, &label, None);
            return Type::Any;
        }
        self.literal_argument(function, args);
        // A months literal outside `date ± ...` was reported above: it has no type of its own.
        if let [arg] = args
            && function == "duration"
            && matches!(&arg.kind, ExprKind::Text(t) if builtins::months_from_text(t).is_some())
        {
            return Type::Any;
        }
        match (builtin.check)(types) {
            Ok(t) => t,
            Err(ArgError::Expected { index, expected }) => {
                let found = &types[index];
                let message = format!("argument {} of `{function}` has type `{found}`, expected {expected}", index + 1);
                self.mismatch(args[index].span, message, &format!("this is `{found}`"), None)
            }
            Err(ArgError::Message(message)) => self.mismatch(span, message, "in this call", None),
        }
    }

    /// Reports constructor calls on a literal that is not valid: `date("2026-02-30")`.
    fn literal_argument(&mut self, function: &str, args: &[Expr]) {
        let [Expr { kind: ExprKind::Text(text), span }] = args else {
            return;
        };
        let problem = match function {
            "date" if parse_date(text).is_none() => Some((
                builtins::invalid_date(text),
                "not a calendar date in the form YYYY-MM-DD",
                "write a date as `date(\"2026-01-31\")`".to_string(),
            )),
            "date and time" if parse_datetime(text).is_none() => Some((
                builtins::invalid_datetime(text),
                "not an RFC 3339 datetime",
                "write a datetime as `date and time(\"2026-01-31T10:00:00Z\")`".to_string(),
            )),
            "duration" if builtins::months_from_text(text).is_some() => Some((
                format!("a duration in months or years (\"{text}\") has no fixed length"),
                "only a date or a datetime can be moved by it",
                "add it to a date, as in `invoice_date + duration(\"P1M\")`, or use days (`30d`)".to_string(),
            )),
            "duration" => builtins::duration_from_text(text).err().map(|message| {
                (message, "not a days-time duration", "write `7d`, `24h`, `90m` or `duration(\"P1DT2H\")`".to_string())
            }),
            "number" if builtins::number_from_text(text).is_none() => {
                let digits = text.chars().all(|c| c.is_ascii_digit() || c == '_' || c == '.');
                let label = if digits { "too many digits for an exact decimal" } else { "not a number" };
                Some((builtins::invalid_number(text), label, "numbers have at most 28 significant digits".to_string()))
            }
            _ => None,
        };
        if let Some((message, label, help)) = problem {
            self.error(codes::INVALID_LITERAL, *span, message, label, Some(help));
        }
    }
}

#[cfg(test)]
mod tests;
