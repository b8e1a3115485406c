//! The static types of the expression language and of process variables.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A static type. Money, decimal and int share one runtime representation (an exact decimal);
/// the type keeps the designer's intent and lets the checker refuse a fraction where an int
/// is declared.
///
/// Serialized as the text a designer writes: `"money"`, `"list<text>"`, `"record { a: int }"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// A string.
    Text,
    /// An exact decimal amount of money.
    Money,
    /// An exact decimal.
    Decimal,
    /// A whole number (an exact decimal with no fraction).
    Int,
    /// true or false.
    Bool,
    /// A calendar date with no time zone.
    Date,
    /// An instant (UTC).
    DateTime,
    /// A length of time (days, hours, minutes, seconds).
    Duration,
    /// A user id; compares with text.
    User,
    /// A list of one element type.
    List { of: Box<Type> },
    /// A record with named, typed fields.
    Record { fields: BTreeMap<String, Type> },
    /// The type of `null` alone.
    Null,
    /// Not known until run time (a job's result, a message's payload); checked when used.
    Any,
}

impl Type {
    /// True for money, decimal and int.
    pub fn is_numeric(&self) -> bool {
        matches!(self, Type::Money | Type::Decimal | Type::Int)
    }

    /// True if a value of type `other` may be stored where `self` is expected.
    ///
    /// `Any` and `Null` fit everywhere (checked at run time, and every variable may be null);
    /// money and decimal are interchangeable; an int fits any numeric slot but a decimal does
    /// not fit an int; user and text are interchangeable.
    pub fn accepts(&self, other: &Type) -> bool {
        match (self, other) {
            (_, Type::Any | Type::Null) | (Type::Any, _) => true,
            (Type::Int, t) => *t == Type::Int,
            (Type::Money | Type::Decimal, t) => t.is_numeric(),
            (Type::Text | Type::User, Type::Text | Type::User) => true,
            (Type::List { of: a }, Type::List { of: b }) => a.accepts(b),
            (Type::Record { fields: a }, Type::Record { fields: b }) => {
                a.iter().all(|(name, t)| b.get(name).is_none_or(|u| t.accepts(u)))
            }
            (a, b) => a == b,
        }
    }

    /// True if values of the two types can be compared with `=` and `!=`.
    pub fn comparable_with(&self, other: &Type) -> bool {
        self.accepts(other) || other.accepts(self)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Text => f.write_str("text"),
            Type::Money => f.write_str("money"),
            Type::Decimal => f.write_str("decimal"),
            Type::Int => f.write_str("int"),
            Type::Bool => f.write_str("bool"),
            Type::Date => f.write_str("date"),
            Type::DateTime => f.write_str("datetime"),
            Type::Duration => f.write_str("duration"),
            Type::User => f.write_str("user"),
            Type::List { of } => write!(f, "list<{of}>"),
            Type::Record { fields } => {
                f.write_str("record { ")?;
                for (i, (name, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{name}: {t}")?;
                }
                f.write_str(" }")
            }
            Type::Null => f.write_str("null"),
            Type::Any => f.write_str("any"),
        }
    }
}

impl Serialize for Type {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Type {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Type {
    type Err = String;

    /// Reads the form [`Type`]'s `Display` writes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut rest = s;
        let ty = parse_type(&mut rest, 0)?;
        if rest.trim().is_empty() { Ok(ty) } else { Err(format!("unexpected `{}` after type in `{s}`", rest.trim())) }
    }
}

fn parse_type(rest: &mut &str, depth: usize) -> Result<Type, String> {
    // The same bound as the parser's: a stored definition never nests deeper.
    if depth > super::MAX_DEPTH {
        return Err(format!("type nested more than {} levels deep", super::MAX_DEPTH));
    }
    *rest = rest.trim_start();
    let word: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    *rest = &rest[word.len()..];
    let simple = match word.as_str() {
        "text" => Type::Text,
        "money" => Type::Money,
        "decimal" => Type::Decimal,
        "int" => Type::Int,
        "bool" => Type::Bool,
        "date" => Type::Date,
        "datetime" => Type::DateTime,
        "duration" => Type::Duration,
        "user" => Type::User,
        "null" => Type::Null,
        "any" => Type::Any,
        "list" => {
            expect(rest, "<")?;
            let of = parse_type(rest, depth + 1)?;
            expect(rest, ">")?;
            return Ok(Type::List { of: Box::new(of) });
        }
        "record" => {
            expect(rest, "{")?;
            let mut fields = BTreeMap::new();
            loop {
                *rest = rest.trim_start();
                if rest.starts_with('}') {
                    *rest = &rest[1..];
                    return Ok(Type::Record { fields });
                }
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if name.is_empty() {
                    return Err(format!("expected a field name in record type at `{rest}`"));
                }
                *rest = &rest[name.len()..];
                expect(rest, ":")?;
                let ty = parse_type(rest, depth + 1)?;
                fields.insert(name, ty);
                *rest = rest.trim_start();
                if rest.starts_with(',') {
                    *rest = &rest[1..];
                }
            }
        }
        other => return Err(format!("unknown type `{other}`")),
    };
    Ok(simple)
}

fn expect(rest: &mut &str, token: &str) -> Result<(), String> {
    *rest = rest.trim_start();
    match rest.strip_prefix(token) {
        Some(r) => {
            *rest = r;
            Ok(())
        }
        None => Err(format!("expected `{token}` at `{rest}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_through_their_text() {
        for text in ["money", "list<text>", "record { a: int, b: list<date> }", "record {  }", "any"] {
            let ty: Type = text.parse().expect("parses");
            let again: Type = ty.to_string().parse().expect("parses again");
            assert_eq!(ty, again, "{text}");
        }
        assert_eq!(
            serde_json::to_string(&Type::List { of: Box::new(Type::Money) }).expect("serializes"),
            "\"list<money>\""
        );
        assert!("lisst<text>".parse::<Type>().is_err());
        let deep = format!("{}int{}", "list<".repeat(100_000), ">".repeat(100_000));
        assert!(deep.parse::<Type>().is_err());
    }
}
