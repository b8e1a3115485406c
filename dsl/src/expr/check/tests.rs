//! Tests of the type checker: inferred types, and the diagnostic each mistake gets.

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
        Some("variables in scope: `amount`, `amounts`, `approved`, `approver`, `created`, `due`, `grace`, `name`, …")
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
    check_errors("date(1, 2)", &[("E0201", "`date` takes 1 argument (text) or 3 (year, month, day)", "date(1, 2)")]);
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
