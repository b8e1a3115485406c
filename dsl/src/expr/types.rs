//! The static types of the expression language and of process variables.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A static type. Money, decimal and int share one runtime representation (an exact decimal);
/// the type keeps the designer's intent and lets the checker refuse a fraction where an int
/// is declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
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
