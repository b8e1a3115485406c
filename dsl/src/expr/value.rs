//! Runtime values, their JSON form and their display as FEEL literals.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;

use super::types::Type;

/// A runtime value of the expression language.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// FEEL `null`: absent or unknown.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An exact decimal (money, decimal and int alike).
    Number(Decimal),
    /// A string (also user ids).
    Text(String),
    /// A calendar date.
    Date(NaiveDate),
    /// An instant.
    DateTime(DateTime<Utc>),
    /// A length of time in whole seconds.
    Duration(i64),
    /// A list.
    List(Vec<Value>),
    /// A record (FEEL context).
    Record(BTreeMap<String, Value>),
}

/// A JSON value that does not fit the declared type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct ValueError {
    /// Where in the JSON document, such as `lines[2].qty` (empty for the document itself).
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl ValueError {
    fn new(message: impl Into<String>) -> Self {
        ValueError { path: String::new(), message: message.into() }
    }

    /// The same error, located inside the field `name` (prefixes the path).
    pub fn within(mut self, name: &str) -> Self {
        self.path = match self.path.as_str() {
            "" => name.to_string(),
            p if p.starts_with('[') => format!("{name}{p}"),
            p => format!("{name}.{p}"),
        };
        self
    }

    fn at_index(mut self, index: usize) -> Self {
        self.path = match self.path.as_str() {
            "" => format!("[{index}]"),
            p if p.starts_with('[') => format!("[{index}]{p}"),
            p => format!("[{index}].{p}"),
        };
        self
    }
}

impl Value {
    /// The type of this value; numbers are `decimal`, empty lists `list<any>`.
    pub fn type_of(&self) -> Type {
        match self {
            Value::Null => Type::Null,
            Value::Bool(_) => Type::Bool,
            Value::Number(_) => Type::Decimal,
            Value::Text(_) => Type::Text,
            Value::Date(_) => Type::Date,
            Value::DateTime(_) => Type::DateTime,
            Value::Duration(_) => Type::Duration,
            Value::List(items) => {
                let of = items.iter().find(|v| **v != Value::Null).map_or(Type::Any, Value::type_of);
                Type::List { of: Box::new(of) }
            }
            Value::Record(fields) => {
                Type::Record { fields: fields.iter().map(|(k, v)| (k.clone(), v.type_of())).collect() }
            }
        }
    }

    /// The JSON form: numbers as decimal strings keeping their scale, dates `2026-01-31`,
    /// datetimes RFC 3339 in UTC, durations ISO 8601 (`P7D`, `PT2H30M`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => J::String(n.to_string()),
            Value::Text(t) => J::String(t.clone()),
            Value::Date(d) => J::String(d.format("%Y-%m-%d").to_string()),
            Value::DateTime(dt) => J::String(format_datetime(dt)),
            Value::Duration(s) => J::String(format_duration(*s)),
            Value::List(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::Record(fields) => J::Object(fields.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }

    /// Reads JSON as a value of type `ty`: numbers from decimal strings or exact JSON numbers,
    /// dates, datetimes and durations from strings, records field by field. `null` fits any type.
    pub fn from_json(json: &serde_json::Value, ty: &Type) -> Result<Value, ValueError> {
        use serde_json::Value as J;
        if json.is_null() {
            return Ok(Value::Null);
        }
        let mismatch = || ValueError::new(format!("expected {}, found {}", expected_name(ty), describe(json)));
        match ty {
            Type::Any => Ok(Value::from_json_untyped(json)),
            Type::Null => Err(mismatch()),
            Type::Money | Type::Decimal | Type::Int => {
                let text = match json {
                    J::String(s) => s.trim().to_string(),
                    J::Number(n) => n.to_string(),
                    _ => return Err(mismatch()),
                };
                let n = parse_decimal_text(&text).ok_or_else(mismatch)?;
                if *ty == Type::Int {
                    if !n.fract().is_zero() {
                        return Err(mismatch());
                    }
                    return Ok(Value::Number(n.trunc()));
                }
                Ok(Value::Number(n))
            }
            Type::Text | Type::User => match json {
                J::String(s) => Ok(Value::Text(s.clone())),
                _ => Err(mismatch()),
            },
            Type::Bool => json.as_bool().map(Value::Bool).ok_or_else(mismatch),
            Type::Date => json.as_str().and_then(parse_date).map(Value::Date).ok_or_else(mismatch),
            Type::DateTime => json.as_str().and_then(parse_datetime).map(Value::DateTime).ok_or_else(mismatch),
            Type::Duration => {
                let s = json.as_str().ok_or_else(mismatch)?;
                parse_iso_duration(s)
                    .ok()
                    .or_else(|| super::parse::parse_duration(s.trim()))
                    .map(Value::Duration)
                    .ok_or_else(mismatch)
            }
            Type::List { of } => {
                let items = json.as_array().ok_or_else(mismatch)?;
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(Value::from_json(item, of).map_err(|e| e.at_index(i))?);
                }
                Ok(Value::List(out))
            }
            Type::Record { fields } => {
                let object = json.as_object().ok_or_else(mismatch)?;
                if let Some(extra) = object.keys().find(|k| !fields.contains_key(*k)) {
                    return Err(ValueError::new(format!("unknown field `{extra}`")));
                }
                let mut out = BTreeMap::new();
                for (name, field_ty) in fields {
                    let value = match object.get(name) {
                        Some(v) => Value::from_json(v, field_ty).map_err(|e| e.within(name))?,
                        None => Value::Null,
                    };
                    out.insert(name.clone(), value);
                }
                Ok(Value::Record(out))
            }
        }
    }

    /// Reads JSON with no declared type: numbers become exact decimals (from their text, so
    /// `0.1` stays 0.1; `1e3` is 1000), strings stay text, objects become records. A number
    /// beyond the decimal range is kept as its text.
    pub fn from_json_untyped(json: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => {
                let text = n.to_string();
                parse_decimal_text(&text).map_or(Value::Text(text), Value::Number)
            }
            J::String(s) => Value::Text(s.clone()),
            J::Array(items) => Value::List(items.iter().map(Value::from_json_untyped).collect()),
            J::Object(map) => {
                Value::Record(map.iter().map(|(k, v)| (k.clone(), Value::from_json_untyped(v))).collect())
            }
        }
    }
}

/// A decimal from its text, plain (`1234.50`) or scientific (`1.5e3`), exactly.
fn parse_decimal_text(text: &str) -> Option<Decimal> {
    Decimal::from_str_exact(text)
        .ok()
        .or_else(|| if text.contains(['e', 'E']) { Decimal::from_scientific(text).ok() } else { None })
}

fn expected_name(ty: &Type) -> String {
    match ty {
        Type::List { .. } => "a list".to_string(),
        Type::Record { .. } => "an object".to_string(),
        Type::Date => "a date (\"YYYY-MM-DD\")".to_string(),
        Type::DateTime => "a datetime (RFC 3339)".to_string(),
        Type::Duration => "a duration (ISO 8601, like \"P7D\")".to_string(),
        other => other.to_string(),
    }
}

/// A short description of a JSON value for error messages.
fn describe(json: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match json {
        J::Array(_) => "a list".to_string(),
        J::Object(_) => "an object".to_string(),
        other => {
            let text = other.to_string();
            if text.chars().count() > 40 { format!("{}…", text.chars().take(40).collect::<String>()) } else { text }
        }
    }
}

/// `2026-01-31`.
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// RFC 3339 (`2026-01-31T10:00:00Z`, any offset, converted to UTC); without an offset the time
/// is taken as UTC.
pub(crate) fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
}

/// RFC 3339 in UTC with a `Z`, seconds always shown, fractions only when present.
pub(crate) fn format_datetime(dt: &DateTime<Utc>) -> String {
    dt.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// ISO 8601 days-time duration (`P7D`, `PT24H` is written `P1D`, `P1DT2H30M`, `-PT5S`, `PT0S`).
pub(crate) fn format_duration(seconds: i64) -> String {
    let sign = if seconds < 0 { "-" } else { "" };
    let mut rest = seconds.unsigned_abs();
    let days = rest / 86_400;
    rest %= 86_400;
    let (hours, minutes, secs) = (rest / 3_600, rest % 3_600 / 60, rest % 60);
    let mut out = format!("{sign}P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if rest > 0 || days == 0 {
        out.push('T');
        if hours > 0 {
            out.push_str(&format!("{hours}H"));
        }
        if minutes > 0 {
            out.push_str(&format!("{minutes}M"));
        }
        if secs > 0 || rest == 0 {
            out.push_str(&format!("{secs}S"));
        }
    }
    out
}

/// Parses an ISO 8601 days-time duration (`P7D`, `PT2H30M`, `P1DT12H`, `P2W`, `-PT5S`) into
/// whole seconds. Years and months are refused: their length in seconds is not fixed.
pub(crate) fn parse_iso_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let invalid = || format!("invalid duration \"{s}\": expected ISO 8601 like \"P7D\" or \"PT2H30M\"");
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let body = body.strip_prefix('P').ok_or_else(invalid)?;
    if body.is_empty() {
        return Err(invalid());
    }
    let mut total = Decimal::ZERO;
    let mut in_time = false;
    let mut number = String::new();
    let mut seen_any = false;
    let mut last_rank = 0;
    for c in body.chars() {
        match c {
            'T' if !in_time && number.is_empty() => in_time = true,
            '0'..='9' | '.' | ',' => number.push(if c == ',' { '.' } else { c }),
            unit => {
                let (rank, per_unit) = match (in_time, unit) {
                    (false, 'W') => (1, 604_800),
                    (false, 'D') => (2, 86_400),
                    (true, 'H') => (3, 3_600),
                    (true, 'M') => (4, 60),
                    (true, 'S') => (5, 1),
                    (false, 'Y' | 'M') => {
                        return Err(format!(
                            "invalid duration \"{s}\": years and months have no fixed length, use days"
                        ));
                    }
                    _ => return Err(invalid()),
                };
                if rank <= last_rank || number.is_empty() {
                    return Err(invalid());
                }
                last_rank = rank;
                let amount = Decimal::from_str(&number).map_err(|_| invalid())?;
                total = amount
                    .checked_mul(Decimal::from(per_unit))
                    .and_then(|v| total.checked_add(v))
                    .ok_or_else(invalid)?;
                number.clear();
                seen_any = true;
            }
        }
    }
    if !number.is_empty() || !seen_any || (in_time && last_rank < 3) {
        return Err(invalid());
    }
    if !total.fract().is_zero() {
        return Err(format!("invalid duration \"{s}\": not a whole number of seconds"));
    }
    let seconds = i64::try_from(total).map_err(|_| invalid())?;
    Ok(if negative { -seconds } else { seconds })
}

fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Writes `s` as a double-quoted literal with the language's escapes.
pub(crate) fn write_quoted(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl fmt::Display for Value {
    /// As a FEEL literal a designer would type: `1234.50`, `"text"`, `date("2026-01-31")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) => write!(f, "{n}"),
            Value::Text(t) => write_quoted(f, t),
            Value::Date(d) => write!(f, "date(\"{}\")", d.format("%Y-%m-%d")),
            Value::DateTime(dt) => write!(f, "date and time(\"{}\")", format_datetime(dt)),
            Value::Duration(s) => write!(f, "duration(\"{}\")", format_duration(*s)),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Record(fields) => {
                f.write_str("{")?;
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    if is_plain_name(name) {
                        f.write_str(name)?;
                    } else {
                        write_quoted(f, name)?;
                    }
                    write!(f, ": {value}")?;
                }
                f.write_str("}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dec(s: &str) -> Value {
        Value::Number(Decimal::from_str(s).unwrap())
    }

    fn date(s: &str) -> Value {
        Value::Date(parse_date(s).unwrap())
    }

    fn list(of: Type) -> Type {
        Type::List { of: Box::new(of) }
    }

    fn record(fields: &[(&str, Type)]) -> Type {
        Type::Record { fields: fields.iter().map(|(k, t)| (k.to_string(), t.clone())).collect() }
    }

    /// Parses JSON text (exactly, numbers keep their text) and reads it as `ty`.
    fn read(text: &str, ty: &Type) -> Result<Value, String> {
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        Value::from_json(&json, ty).map_err(|e| e.to_string())
    }

    fn check_read(text: &str, ty: Type, expect: Value) {
        assert_eq!(read(text, &ty), Ok(expect), "{text} as {ty}");
    }

    fn check_refuse(text: &str, ty: Type, message: &str) {
        assert_eq!(read(text, &ty), Err(message.to_string()), "{text} as {ty}");
    }

    fn check_display(v: Value, expect: &str) {
        assert_eq!(v.to_string(), expect);
    }

    fn check_round_trip(v: Value, ty: Type, json: serde_json::Value) {
        assert_eq!(v.to_json(), json, "{v}");
        assert_eq!(Value::from_json(&json, &ty), Ok(v));
    }

    #[test]
    fn reads_typed_json() {
        check_read(r#""1234.50""#, Type::Money, dec("1234.50"));
        check_read("1234.50", Type::Money, dec("1234.50"));
        check_read("0.1", Type::Decimal, dec("0.1"));
        check_read("0.30000000000000004", Type::Decimal, dec("0.30000000000000004"));
        check_read("1e3", Type::Decimal, dec("1000"));
        check_read("42", Type::Int, dec("42"));
        check_read(r#""7""#, Type::Int, dec("7"));
        check_read("3.0", Type::Int, dec("3"));
        check_read(r#""abc""#, Type::Text, Value::Text("abc".into()));
        check_read(r#""u-17""#, Type::User, Value::Text("u-17".into()));
        check_read("true", Type::Bool, Value::Bool(true));
        check_read(r#""2028-02-29""#, Type::Date, date("2028-02-29"));
        check_read(r#""P7D""#, Type::Duration, Value::Duration(604_800));
        check_read(r#""7d""#, Type::Duration, Value::Duration(604_800));
        check_read("null", Type::Int, Value::Null);
        check_read("[1, null]", list(Type::Int), Value::List(vec![dec("1"), Value::Null]));
        check_read(
            r#""2026-01-31T11:00:00+01:00""#,
            Type::DateTime,
            Value::DateTime(parse_datetime("2026-01-31T10:00:00Z").unwrap()),
        );
        check_read(
            r#"{"a": 1}"#,
            record(&[("a", Type::Int), ("b", Type::Text)]),
            Value::Record([("a".into(), dec("1")), ("b".into(), Value::Null)].into()),
        );
        check_read(r#"{"x": [1, "a"]}"#, Type::Any, Value::from_json_untyped(&json!({"x": [1, "a"]})));
    }

    #[test]
    fn refuses_typed_json_with_a_path() {
        check_refuse("1.5", Type::Int, "expected int, found 1.5");
        check_refuse(r#""1.5""#, Type::Int, "expected int, found \"1.5\"");
        check_refuse(r#""abc""#, Type::Money, "expected money, found \"abc\"");
        check_refuse("12", Type::Text, "expected text, found 12");
        check_refuse(r#""yes""#, Type::Bool, "expected bool, found \"yes\"");
        check_refuse(r#""2026-02-30""#, Type::Date, "expected a date (\"YYYY-MM-DD\"), found \"2026-02-30\"");
        check_refuse(r#""31/01/2026""#, Type::Date, "expected a date (\"YYYY-MM-DD\"), found \"31/01/2026\"");
        check_refuse(r#""P1M""#, Type::Duration, "expected a duration (ISO 8601, like \"P7D\"), found \"P1M\"");
        check_refuse("{}", list(Type::Int), "expected a list, found an object");
        check_refuse(
            r#"{"lines": [{"qty": 1}, {"qty": 2}, {"qty": "abc"}]}"#,
            record(&[("lines", list(record(&[("qty", Type::Int)])))]),
            "lines[2].qty: expected int, found \"abc\"",
        );
        check_refuse(r#"[[1], ["x"]]"#, list(list(Type::Int)), "[1][0]: expected int, found \"x\"");
        check_refuse(r#"{"a": 1, "ab": 2}"#, record(&[("a", Type::Int)]), "unknown field `ab`");
        check_refuse("1", Type::Null, "expected null, found 1");
        let err = Value::from_json(&json!("x"), &Type::Int).unwrap_err().within("qty").within("order");
        assert_eq!(err.to_string(), "order.qty: expected int, found \"x\"");
    }

    #[test]
    fn round_trips() {
        check_round_trip(dec("1234.50"), Type::Money, json!("1234.50"));
        check_round_trip(dec("0.1"), Type::Decimal, json!("0.1"));
        check_round_trip(dec("-7"), Type::Int, json!("-7"));
        check_round_trip(date("2026-01-31"), Type::Date, json!("2026-01-31"));
        check_round_trip(
            Value::DateTime(parse_datetime("2026-01-31T10:00:00Z").unwrap()),
            Type::DateTime,
            json!("2026-01-31T10:00:00Z"),
        );
        check_round_trip(Value::Duration(604_800), Type::Duration, json!("P7D"));
        check_round_trip(Value::Duration(86_400 + 7_200), Type::Duration, json!("P1DT2H"));
        check_round_trip(Value::Duration(9_000), Type::Duration, json!("PT2H30M"));
        check_round_trip(Value::Duration(0), Type::Duration, json!("PT0S"));
        check_round_trip(Value::Duration(-5), Type::Duration, json!("-PT5S"));
        check_round_trip(Value::List(vec![dec("1.0"), Value::Null]), list(Type::Decimal), json!(["1.0", null]));
        check_round_trip(
            Value::Record([("n".into(), Value::Text("x".into()))].into()),
            record(&[("n", Type::Text)]),
            json!({"n": "x"}),
        );
    }

    #[test]
    fn reads_untyped_json_exactly() {
        let v = |text: &str| Value::from_json_untyped(&serde_json::from_str(text).unwrap());
        assert_eq!(v("0.1"), dec("0.1"));
        assert_eq!(v("1e3"), dec("1000"));
        assert_eq!(v("1.5E-2"), dec("0.015"));
        assert_eq!(v("-12.340"), dec("-12.340"));
        assert_eq!(v("\"2026-01-31\""), Value::Text("2026-01-31".into()));
        assert_eq!(v("1e400"), Value::Text("1e+400".into()));
        assert_eq!(v("[true, null]"), Value::List(vec![Value::Bool(true), Value::Null]));
        assert_eq!(v(r#"{"a": {"b": 1}}"#).to_string(), "{a: {b: 1}}");
    }

    #[test]
    fn displays_as_feel_literals() {
        check_display(dec("1234.50"), "1234.50");
        check_display(dec("-0.01"), "-0.01");
        check_display(Value::Text("say \"hi\"\n".into()), r#""say \"hi\"\n""#);
        check_display(date("2026-01-31"), "date(\"2026-01-31\")");
        check_display(
            Value::DateTime(parse_datetime("2026-01-31T10:00:00Z").unwrap()),
            "date and time(\"2026-01-31T10:00:00Z\")",
        );
        check_display(Value::Duration(604_800), "duration(\"P7D\")");
        check_display(Value::List(vec![dec("1"), dec("2")]), "[1, 2]");
        check_display(Value::List(vec![]), "[]");
        check_display(Value::Record([("a".into(), dec("1"))].into()), "{a: 1}");
        check_display(Value::Record([("first name".into(), Value::Null)].into()), "{\"first name\": null}");
        check_display(Value::Null, "null");
        check_display(Value::Bool(true), "true");
    }

    #[test]
    fn iso_durations() {
        let ok = |s: &str, secs: i64| assert_eq!(parse_iso_duration(s), Ok(secs), "{s}");
        ok("P7D", 604_800);
        ok("PT24H", 86_400);
        ok("P1DT2H", 93_600);
        ok("PT1.5H", 5_400);
        ok("P2W", 1_209_600);
        ok("PT90S", 90);
        ok("-P1D", -86_400);
        let bad = |s: &str| assert!(parse_iso_duration(s).is_err(), "{s}");
        for s in ["", "P", "PT", "7D", "P1H", "PT1D", "P1DT", "PT0.5S", "P1Y", "P1M", "PT1H2H", "PT1M1H", "PTH"] {
            bad(s);
        }
        assert_eq!(
            parse_iso_duration("P1M").unwrap_err(),
            "invalid duration \"P1M\": years and months have no fixed length, use days"
        );
    }

    #[test]
    fn types_of_values() {
        assert_eq!(dec("1").type_of(), Type::Decimal);
        assert_eq!(Value::List(vec![Value::Null, Value::Bool(true)]).type_of(), list(Type::Bool));
        assert_eq!(Value::List(vec![]).type_of(), list(Type::Any));
        assert_eq!(Value::Duration(1).type_of(), Type::Duration);
    }
}
