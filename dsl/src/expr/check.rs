//! The type checker: infers an expression's type and reports every problem it finds.
//!
//! `any` (a job result, a message payload) passes every check and is checked at run time;
//! `null` fits everywhere. An expression with an error gets type `any` so one mistake is
//! reported once, not again by every operator around it.

use std::collections::BTreeMap;

use super::ast::{BinaryOp, Expr, ExprKind, UnaryOp};
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
mod tests {
    use super::*;
    use crate::expr::parse_expr;

    fn record(fields: &[(&str, Type)]) -> Type {
        Type::Record { fields: fields.iter().map(|(k, t)| (k.to_string(), t.clone())).collect() }
    }

    fn list(of: Type) -> Type {
        Type::List { of: Box::new(of) }
    }

    fn scope() -> Scope {
        Scope::new()
            .with("amount", Type::Money)
            .with("qty", Type::Int)
            .with("rate", Type::Decimal)
            .with("name", Type::Text)
            .with("approver", Type::User)
            .with("due", Type::Date)
            .with("created", Type::DateTime)
            .with("grace", Type::Duration)
            .with("approved", Type::Bool)
            .with("tags", list(Type::Text))
            .with("amounts", list(Type::Money))
            .with("order", record(&[("customer", record(&[("name", Type::Text)])), ("total", Type::Money)]))
            .with("payload", Type::Any)
    }

    fn run(src: &str) -> (Type, Vec<Diagnostic>) {
        let expr = parse_expr(src, FileId(0)).unwrap_or_else(|d| panic!("{src}: {}", d.message));
        check_expr(&expr, &scope(), FileId(0))
    }

    /// `src` checks cleanly and has type `expect` (as displayed).
    fn check(src: &str, expect: &str) {
        let (ty, diags) = run(src);
        let messages: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
        assert!(diags.is_empty(), "{src}: {messages:?}");
        assert_eq!(ty.to_string(), expect, "{src}");
    }

    /// `src` gives exactly these diagnostics (code, message, the source text under the span).
    fn check_errors(src: &str, expect: &[(&str, &str, &str)]) {
        let (_, diags) = run(src);
        let got: Vec<(&str, &str, &str)> =
            diags.iter().map(|d| (d.code, d.message.as_str(), &src[d.span.start..d.span.end])).collect();
        assert_eq!(got, expect, "{src}");
    }

    fn help(src: &str) -> Option<String> {
        run(src).1.into_iter().next().and_then(|d| d.help)
    }

    #[test]
    fn infers_types() {
        check("1", "int");
        check("1.5", "decimal");
        check("10_000.00", "decimal");
        check("\"x\"", "text");
        check("null", "null");
        check("7d", "duration");
        check("qty + 1", "int");
        check("qty * qty - 2", "int");
        check("qty / 2", "decimal");
        check("qty + rate", "decimal");
        check("amount + qty", "money");
        check("amount * rate", "money");
        check("amount / qty", "money");
        check("amount / amount", "decimal");
        check("rate / amount", "decimal");
        check("2 ** 3", "int");
        check("2 ** -1", "decimal");
        check("amount ** 2", "money");
        check("-qty", "int");
        check("-grace", "duration");
        check("name + \"!\"", "text");
        check("approver + name", "text");
        check("due + 7d", "date");
        check("due + 24h", "date");
        check("due - 1h", "datetime");
        check("due + duration(\"P1D\")", "date");
        check("due + (1d + 2h)", "datetime");
        check("due + grace", "any");
        check("created + grace", "datetime");
        check("due - due", "duration");
        check("created - due", "duration");
        check("grace * 2", "duration");
        check("grace / grace", "decimal");
        check("amount > 100 and approved", "bool");
        check("name = approver", "bool");
        check("due < created", "bool");
        check("amount in [1..10_000]", "bool");
        check("name in tags", "bool");
        check("qty between 1 and 10", "bool");
        check("[1, 2.5]", "list<decimal>");
        check("[amount, 1]", "list<money>");
        check("[]", "list<any>");
        check("[null, \"a\"]", "list<text>");
        check("if approved then 1 else 2.5", "decimal");
        check("if approved then name else null", "text");
        check("order.customer.name", "text");
        check("order.total + 1", "money");
        check("payload.anything.goes + 1", "any");
        check("payload = 1 and payload", "bool");
        check("due.year", "int");
        check("created.hour", "int");
        check("grace.days", "int");
    }

    #[test]
    fn builtin_result_types() {
        check("min(1, 2)", "int");
        check("max(1, 2.5)", "decimal");
        check("max(amounts)", "money");
        check("min(due, due)", "date");
        check("sum(amounts)", "money");
        check("sum([1, 2])", "int");
        check("sum([])", "any");
        check("sum([1h, 2h])", "duration");
        check("count(tags)", "int");
        check("abs(amount)", "money");
        check("round(rate)", "int");
        check("round(rate, 2)", "decimal");
        check("round(amount, 2)", "money");
        check("round half even(amount, 2)", "money");
        check("decimal(rate, 2)", "decimal");
        check("floor(rate)", "int");
        check("ceiling(amount)", "money");
        check("today()", "date");
        check("now()", "datetime");
        check("days between(due, today())", "int");
        check("string length(name)", "int");
        check("contains(name, \"x\")", "bool");
        check("starts with(approver, \"u\")", "bool");
        check("upper case(name)", "text");
        check("substring(name, 1, 2)", "text");
        check("list contains(tags, name)", "bool");
        check("date(\"2028-02-29\")", "date");
        check("date(2026, 1, 31)", "date");
        check("date(created)", "date");
        check("date and time(\"2026-01-31T10:00:00Z\")", "datetime");
        check("duration(\"P7DT2H\")", "duration");
        check("number(\"1.5\")", "decimal");
        check("string(amount)", "text");
        check("not(approved)", "bool");
        check("round(payload, 2)", "any");
    }

    #[test]
    fn unknown_variables_e0103() {
        check_errors("amont > 1", &[("E0103", "unknown variable `amont`", "amont")]);
        check_errors("1 + nme", &[("E0103", "unknown variable `nme`", "nme")]);
        check_errors("zzz", &[("E0103", "unknown variable `zzz`", "zzz")]);
        assert_eq!(help("amont > 1").as_deref(), Some("did you mean `amount`?"));
        assert_eq!(help("Amount > 1").as_deref(), Some("did you mean `amount`?"));
        assert_eq!(
            help("zzz").as_deref(),
            Some(
                "variables in scope: `amount`, `amounts`, `approved`, `approver`, `created`, `due`, `grace`, `name`, …"
            )
        );
        let expr = parse_expr("x", FileId(0)).unwrap();
        let (_, diags) = check_expr(&expr, &Scope::new(), FileId(0));
        assert_eq!(diags[0].help.as_deref(), Some("no variables are in scope here"));
        assert_eq!(diags[0].label, "not in scope");
    }

    #[test]
    fn unknown_fields_e0107() {
        check_errors("order.totl", &[("E0107", "unknown field `totl`", "order.totl")]);
        check_errors("order.customer.nme", &[("E0107", "unknown field `nme`", "order.customer.nme")]);
        check_errors("due.hour", &[("E0107", "unknown field `hour`", "due.hour")]);
        check_errors("amount.cents", &[("E0107", "unknown field `cents`", "amount.cents")]);
        assert_eq!(help("order.totl").as_deref(), Some("did you mean `total`?"));
        assert_eq!(help("order.xyz").as_deref(), Some("its fields are `customer`, `total`"));
        assert_eq!(help("due.hour").as_deref(), Some("a `date` has fields `year`, `month`, `day`, `weekday`"));
    }

    #[test]
    fn unknown_functions_e0106() {
        check_errors("foo(1)", &[("E0106", "unknown function `foo`", "foo(1)")]);
        check_errors("rond(amount, 2)", &[("E0106", "unknown function `rond`", "rond(amount, 2)")]);
        check_errors("lenght(name)", &[("E0106", "unknown function `lenght`", "lenght(name)")]);
        assert_eq!(help("rond(amount, 2)").as_deref(), Some("did you mean `round`?"));
        assert_eq!(help("sting(1)").as_deref(), Some("did you mean `string`?"));
        assert_eq!(help("foo(1)").as_deref(), Some("the built-in functions are listed in README.md"));
    }

    #[test]
    fn wrong_argument_counts_e0203() {
        check_errors("round(1, 2, 3)", &[("E0203", "`round` takes 1 or 2 arguments, found 3", "round(1, 2, 3)")]);
        check_errors("today(1)", &[("E0203", "`today` takes 0 arguments, found 1", "today(1)")]);
        check_errors("abs()", &[("E0203", "`abs` takes 1 argument, found 0", "abs()")]);
        check_errors("min()", &[("E0203", "`min` takes at least 1 argument, found 0", "min()")]);
        check_errors(
            "date(1, 2)",
            &[("E0201", "`date` takes 1 argument (text) or 3 (year, month, day)", "date(1, 2)")],
        );
    }

    #[test]
    fn type_mismatches_e0201() {
        check_errors("name + amount", &[("E0201", "cannot add `text` and `money`", "name + amount")]);
        assert_eq!(help("name + amount").as_deref(), Some("to join text and a number, convert it with `string(x)`"));
        check_errors("due > 5", &[("E0201", "cannot compare `date` with `int`", "due > 5")]);
        check_errors("due = 5", &[("E0201", "cannot compare `date` with `int`", "due = 5")]);
        check_errors("name < 5", &[("E0201", "cannot compare `text` with `int`", "name < 5")]);
        check_errors("approved < true", &[("E0201", "cannot compare `bool` with `bool`", "approved < true")]);
        check_errors("grace - due", &[("E0201", "cannot subtract `date` from `duration`", "grace - due")]);
        check_errors("name * 2", &[("E0201", "cannot multiply `text` by `int`", "name * 2")]);
        check_errors("due / 2", &[("E0201", "cannot divide `date` by `int`", "due / 2")]);
        check_errors("qty in tags", &[("E0201", "cannot look for `int` in `list<text>`", "tags")]);
        check_errors("qty in name", &[("E0201", "`in` needs a list or a range, found `text`", "name")]);
        check_errors(
            "due in [1..2]",
            &[("E0201", "cannot compare `date` with `int`", "1"), ("E0201", "cannot compare `date` with `int`", "2")],
        );
        check_errors("qty between \"a\" and 3", &[("E0201", "cannot compare `int` with `text`", "\"a\"")]);
        check_errors("[1, \"a\"]", &[("E0201", "list elements have different types: `int` and `text`", "\"a\"")]);
        check_errors("amount and approved", &[("E0201", "`and` needs bool operands, found `money`", "amount")]);
        check_errors("not name", &[("E0201", "`not` needs a bool, found `text`", "name")]);
        check_errors("-name", &[("E0201", "cannot negate `text`", "-name")]);
        check_errors(
            "if approved then 1 else \"x\"",
            &[("E0201", "`if` branches have different types: `int` and `text`", "if approved then 1 else \"x\"")],
        );
        check_errors("[1..2]", &[("E0201", "a range can only be used after `in`", "[1..2]")]);
        check_errors(
            "string length(amount)",
            &[("E0201", "argument 1 of `string length` has type `money`, expected text", "amount")],
        );
        check_errors(
            "round(amount, rate)",
            &[("E0201", "argument 2 of `round` has type `decimal`, expected an int scale", "rate")],
        );
        check_errors("max(1, name)", &[("E0201", "cannot compare `int` with `text`", "max(1, name)")]);
        check_errors(
            "list contains(tags, 1)",
            &[("E0201", "cannot look for `int` in `list<text>`", "list contains(tags, 1)")],
        );
        check_errors("qty < 1 < 2", &[("E0201", "cannot compare `bool` with `int`", "qty < 1 < 2")]);
    }

    #[test]
    fn months_move_dates() {
        check("due + duration(\"P1M\")", "date");
        check("due - duration(\"P1Y2M\")", "date");
        check("duration(\"P3M\") + due", "date");
        check("created + duration(\"P1Y\")", "datetime");
        check("payload + duration(\"P1M\")", "any");
        check("due + duration(\"P1M\") + 3d", "date");
        check_errors(
            "qty + duration(\"P1M\")",
            &[(
                "E0201",
                "a duration in months or years can only move a date or a datetime, found `int`",
                "qty + duration(\"P1M\")",
            )],
        );
        check_errors(
            "grace + duration(\"P1M\")",
            &[(
                "E0201",
                "a duration in months or years can only move a date or a datetime, found `duration`",
                "grace + duration(\"P1M\")",
            )],
        );
        check_errors(
            "duration(\"P1M\") - due",
            &[("E0303", "a duration in months or years (\"P1M\") has no fixed length", "\"P1M\"")],
        );
    }

    #[test]
    fn conditions_e0202() {
        let cond = |src: &str| {
            let expr = parse_expr(src, FileId(0)).unwrap();
            check_condition(&expr, &scope(), FileId(0))
                .into_iter()
                .map(|d| (d.code, d.message, src[d.span.start..d.span.end].to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(cond("amount"), [("E0202", "condition has type `money`, expected `bool`".into(), "amount".into())]);
        assert_eq!(
            cond("name + \"x\""),
            [("E0202", "condition has type `text`, expected `bool`".into(), "name + \"x\"".into())]
        );
        assert!(cond("amount > 1 and approved").is_empty());
        assert!(cond("payload").is_empty());
        check_errors("if qty then 1 else 2", &[("E0202", "condition has type `int`, expected `bool`", "qty")]);
        check_errors(
            "if order.total then 1 else 2",
            &[("E0202", "condition has type `money`, expected `bool`", "order.total")],
        );
    }

    #[test]
    fn invalid_literals_e0303() {
        check_errors("date(\"2026-02-30\")", &[("E0303", "invalid date \"2026-02-30\"", "\"2026-02-30\"")]);
        check_errors("date(\"2027-02-29\") < due", &[("E0303", "invalid date \"2027-02-29\"", "\"2027-02-29\"")]);
        check_errors(
            "date and time(\"2026-01-31 10h\")",
            &[("E0303", "invalid datetime \"2026-01-31 10h\"", "\"2026-01-31 10h\"")],
        );
        check_errors(
            "duration(\"P1M\")",
            &[("E0303", "a duration in months or years (\"P1M\") has no fixed length", "\"P1M\"")],
        );
        check_errors(
            "duration(\"7 days\")",
            &[("E0303", "invalid duration \"7 days\": expected ISO 8601 like \"P7D\" or \"PT2H30M\"", "\"7 days\"")],
        );
        check_errors(
            "due + 0.5s",
            &[("E0303", "invalid duration `0.5s`: not a whole number of seconds, or too large", "0.5s")],
        );
        check_errors(
            "123456789012345678901234567890 + 1",
            &[("E0303", "invalid number \"123456789012345678901234567890\"", "123456789012345678901234567890")],
        );
        check_errors("number(\"abc\")", &[("E0303", "invalid number \"abc\"", "\"abc\"")]);
    }

    #[test]
    fn reports_every_error() {
        check_errors(
            "amont + nme > date(\"2026-13-01\") and foo(1) or order.totl",
            &[
                ("E0103", "unknown variable `amont`", "amont"),
                ("E0103", "unknown variable `nme`", "nme"),
                ("E0303", "invalid date \"2026-13-01\"", "\"2026-13-01\""),
                ("E0106", "unknown function `foo`", "foo(1)"),
                ("E0107", "unknown field `totl`", "order.totl"),
            ],
        );
        check_errors(
            "[name + 1, due * 2, round(1, 2, 3)]",
            &[
                ("E0201", "cannot add `text` and `int`", "name + 1"),
                ("E0201", "cannot multiply `date` by `int`", "due * 2"),
                ("E0203", "`round` takes 1 or 2 arguments, found 3", "round(1, 2, 3)"),
            ],
        );
    }

    #[test]
    fn scope_paths() {
        let s = scope();
        assert_eq!(s.lookup_path("order.customer.name"), Some(Type::Text));
        assert_eq!(s.lookup_path("order.total"), Some(Type::Money));
        assert_eq!(s.lookup_path("order.nope"), None);
        assert_eq!(s.lookup_path("payload.a.b"), Some(Type::Any));
        assert_eq!(s.lookup_path("amount.x"), None);
        assert_eq!(s.lookup_path("missing"), None);
        let built: Scope = [("a".to_string(), Type::Int)].into_iter().collect();
        assert_eq!(built.get("a"), Some(&Type::Int));
        assert_eq!(built.names().collect::<Vec<_>>(), ["a"]);
    }
}
