//! Serde glue for [`Value`]: a self-describing JSON form, so a stored instance reads back
//! exactly without its definition at hand.
//!
//! Null, booleans, text, lists and records are plain JSON; numbers are JSON numbers written with
//! their exact decimal text (`1234.50`, scale kept); dates, datetimes and durations are tagged
//! objects holding [`Value::to_json`]'s text: `{"$date": "2026-01-31"}`,
//! `{"$datetime": "2026-01-31T10:00:00Z"}`, `{"$duration": "P7D"}`. A record that would look like
//! a tag (a single key starting with `$`) is wrapped as `{"$record": {...}}`. Leaves are read
//! back with [`Value::from_json`] and the tag's type.

use std::collections::BTreeMap;

use cloverleaf_dsl::expr::{Type, Value};
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as J;

/// Encodes a value in the self-describing form.
pub fn encode(value: &Value) -> Result<J, String> {
    Ok(match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Text(t) => J::String(t.clone()),
        Value::Number(n) => {
            let number: serde_json::Number =
                serde_json::from_str(&n.to_string()).map_err(|e| format!("number {n}: {e}"))?;
            J::Number(number)
        }
        Value::Date(_) => tagged("$date", value.to_json()),
        Value::DateTime(_) => tagged("$datetime", value.to_json()),
        Value::Duration(_) => tagged("$duration", value.to_json()),
        Value::List(items) => J::Array(items.iter().map(encode).collect::<Result<_, _>>()?),
        Value::Record(fields) => {
            let object: serde_json::Map<String, J> =
                fields.iter().map(|(k, v)| Ok((k.clone(), encode(v)?))).collect::<Result<_, String>>()?;
            let looks_tagged = object.len() == 1 && object.keys().all(|k| k.starts_with('$'));
            if looks_tagged { tagged("$record", J::Object(object)) } else { J::Object(object) }
        }
    })
}

fn tagged(tag: &str, inner: J) -> J {
    J::Object(serde_json::Map::from_iter([(tag.to_string(), inner)]))
}

/// Decodes the self-describing form written by [`encode`].
pub fn decode(json: &J) -> Result<Value, String> {
    let leaf = |j: &J, ty: Type| Value::from_json(j, &ty).map_err(|e| e.to_string());
    Ok(match json {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::String(s) => Value::Text(s.clone()),
        J::Number(_) => leaf(json, Type::Decimal)?,
        J::Array(items) => Value::List(items.iter().map(decode).collect::<Result<_, _>>()?),
        J::Object(object) => {
            if object.len() == 1 {
                let (tag, inner) = object.iter().next().ok_or("empty tag")?;
                match tag.as_str() {
                    "$date" => return leaf(inner, Type::Date),
                    "$datetime" => return leaf(inner, Type::DateTime),
                    "$duration" => return leaf(inner, Type::Duration),
                    "$record" => {
                        let J::Object(fields) = inner else { return Err("`$record` needs an object".into()) };
                        return decode_record(fields);
                    }
                    t if t.starts_with('$') => return Err(format!("unknown value tag `{t}`")),
                    _ => {}
                }
            }
            decode_record(object)?
        }
    })
}

fn decode_record(object: &serde_json::Map<String, J>) -> Result<Value, String> {
    let fields: BTreeMap<String, Value> =
        object.iter().map(|(k, v)| Ok((k.clone(), decode(v)?))).collect::<Result<_, String>>()?;
    Ok(Value::Record(fields))
}

/// `#[serde(with = "value_serde::single")]` for a [`Value`] field.
pub mod single {
    use super::*;

    /// Serializes one value.
    pub fn serialize<S: Serializer>(value: &Value, serializer: S) -> Result<S::Ok, S::Error> {
        encode(value).map_err(S::Error::custom)?.serialize(serializer)
    }

    /// Deserializes one value.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        let json = J::deserialize(deserializer)?;
        decode(&json).map_err(D::Error::custom)
    }
}

/// `#[serde(with = "value_serde::map")]` for a `BTreeMap<String, Value>` field.
pub mod map {
    use super::*;

    /// Serializes a map of values.
    pub fn serialize<S: Serializer>(map: &BTreeMap<String, Value>, serializer: S) -> Result<S::Ok, S::Error> {
        let object: serde_json::Map<String, J> = map
            .iter()
            .map(|(k, v)| Ok((k.clone(), encode(v)?)))
            .collect::<Result<_, String>>()
            .map_err(S::Error::custom)?;
        J::Object(object).serialize(serializer)
    }

    /// Deserializes a map of values.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, Value>, D::Error> {
        let object = serde_json::Map::<String, J>::deserialize(deserializer)?;
        object.iter().map(|(k, v)| Ok((k.clone(), decode(v).map_err(D::Error::custom)?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::{NaiveDate, TimeZone, Utc};
    use rust_decimal::Decimal;

    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let record = BTreeMap::from([("$odd".to_string(), Value::Bool(true))]);
        let values = vec![
            Value::Null,
            Value::Bool(false),
            Value::Number(Decimal::from_str("1234.50").unwrap()),
            Value::Number(Decimal::from_str("-0.000000000000000000000000001").unwrap()),
            Value::Text("P7D".into()),
            Value::Date(NaiveDate::from_ymd_opt(2026, 1, 31).unwrap()),
            Value::DateTime(Utc.with_ymd_and_hms(2026, 1, 31, 10, 0, 0).unwrap()),
            Value::Duration(7 * 86_400 + 5),
            Value::List(vec![Value::Number(Decimal::ONE), Value::Text("a".into()), Value::Null]),
            Value::Record(record),
            Value::Record(BTreeMap::from([("a".to_string(), Value::Duration(60))])),
        ];
        for v in values {
            let json = encode(&v).unwrap();
            let text = serde_json::to_string(&json).unwrap();
            let back = decode(&serde_json::from_str(&text).unwrap()).unwrap();
            assert_eq!(back, v, "{text}");
            if let (Value::Number(a), Value::Number(b)) = (&back, &v) {
                assert_eq!(a.to_string(), b.to_string(), "scale kept");
            }
        }
    }

    #[test]
    fn unknown_tags_are_refused() {
        assert!(decode(&serde_json::json!({"$money": "1"})).is_err());
    }
}
