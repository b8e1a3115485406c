//! Tests of the evaluator: exact arithmetic, null and three-valued logic, dates, built-ins and errors.

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

#[test]
fn today_is_the_day_on_the_calendars_clock() {
    let expr = parse_expr("today()", FileId(0)).unwrap();
    let vars = vars();
    // 17:00 UTC on 15 March is 01:00 on 16 March in Shanghai.
    let now = parse_datetime("2026-03-15T17:00:00Z").unwrap();
    let utc = eval(&expr, &EvalContext::new(&vars, now)).unwrap();
    assert_eq!(utc.to_string(), "date(\"2026-03-15\")");
    let shanghai = Calendar::new("cn", chrono_tz::Asia::Shanghai);
    let cn = eval(&expr, &EvalContext::new(&vars, now).with_calendar(Some(&shanghai))).unwrap();
    assert_eq!(cn.to_string(), "date(\"2026-03-16\")");
}
