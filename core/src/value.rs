//! [`Value`]: the dynamic value of one field, used for inputs, custom fields, filters, sort keys
//! and the before/after of event-log changes.
//!
//! In human-readable formats (JSON at the HTTP edge) a value is written plainly: `"text"`, `12`,
//! `"1234.50"` (decimals are strings so money stays exact), `true`, `null`, `[..]`. In binary
//! formats (the MessagePack records in redb) it is written as a tagged enum so it reads back as
//! exactly the same variant.

use std::cmp::Ordering;
use std::fmt;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::clock::Timestamp;
use crate::id::Id;

/// One field's value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// No value.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A whole number.
    Integer(i64),
    /// An exact decimal (numbers with a fraction, money).
    Number(Decimal),
    /// Text.
    Text(String),
    /// A calendar date.
    Date(NaiveDate),
    /// A point in time.
    DateTime(Timestamp),
    /// A reference to another record.
    Ref(Id),
    /// A list (multi-choice values, tags, several references).
    List(Vec<Value>),
}

impl Value {
    /// Whether this is `Null`, empty text or an empty list: "not filled in".
    pub fn is_empty(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Text(s) => s.trim().is_empty(),
            Value::List(l) => l.is_empty(),
            _ => false,
        }
    }

    /// A short name of the variant, for error messages ("expected a date, got text").
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Integer(_) => "an integer",
            Value::Number(_) => "a number",
            Value::Text(_) => "text",
            Value::Date(_) => "a date",
            Value::DateTime(_) => "a date-time",
            Value::Ref(_) => "a reference",
            Value::List(_) => "a list",
        }
    }

    /// The value as a decimal, when it is numeric.
    pub fn as_decimal(&self) -> Option<Decimal> {
        match self {
            Value::Integer(i) => Some(Decimal::from(*i)),
            Value::Number(d) => Some(*d),
            _ => None,
        }
    }

    /// Orders two values of comparable kinds; `None` when they cannot be compared.
    ///
    /// Null sorts before everything, numbers compare across integer and decimal, text compares
    /// case-insensitively.
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        use Value::*;
        match (self, other) {
            (Null, Null) => Some(Ordering::Equal),
            (Null, _) => Some(Ordering::Less),
            (_, Null) => Some(Ordering::Greater),
            (Bool(a), Bool(b)) => Some(a.cmp(b)),
            (Text(a), Text(b)) => Some(cmp_text(a, b)),
            (Date(a), Date(b)) => Some(a.cmp(b)),
            (DateTime(a), DateTime(b)) => Some(a.cmp(b)),
            (Ref(a), Ref(b)) => Some(a.cmp(b)),
            (List(a), List(b)) => Some(a.len().cmp(&b.len())),
            (a, b) => match (a.as_decimal(), b.as_decimal()) {
                (Some(x), Some(y)) => Some(x.cmp(&y)),
                _ => None,
            },
        }
    }

    /// A total order used for sorting lists: like [`Value::compare`], falling back to the
    /// variant order for values that cannot be compared.
    pub fn sort_cmp(&self, other: &Value) -> Ordering {
        self.compare(other)
            .unwrap_or_else(|| self.rank().cmp(&other.rank()))
    }

    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Integer(_) | Value::Number(_) => 2,
            Value::Text(_) => 3,
            Value::Date(_) => 4,
            Value::DateTime(_) => 5,
            Value::Ref(_) => 6,
            Value::List(_) => 7,
        }
    }
}

fn cmp_text(a: &str, b: &str) -> Ordering {
    let lower = |s: &str| s.chars().flat_map(char::to_lowercase).collect::<String>();
    lower(a).cmp(&lower(b)).then_with(|| a.cmp(b))
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Number(d) => write!(f, "{d}"),
            Value::Text(s) => f.write_str(s),
            Value::Date(d) => write!(f, "{d}"),
            Value::DateTime(t) => write!(f, "{}", t.to_rfc3339()),
            Value::Ref(id) => write!(f, "{id}"),
            Value::List(items) => {
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                Ok(())
            }
        }
    }
}

/// The binary (storage) form: an externally tagged enum that round-trips every variant.
/// Written through [`TaggedRef`].
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
enum Tagged {
    N,
    B(bool),
    I(i64),
    D(Decimal),
    T(String),
    Dt(NaiveDate),
    Ts(Timestamp),
    R(Id),
    L(Vec<Value>),
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            match self {
                Value::Null => s.serialize_unit(),
                Value::Bool(b) => s.serialize_bool(*b),
                Value::Integer(i) => s.serialize_i64(*i),
                Value::Number(d) => s.collect_str(d),
                Value::Text(t) => s.serialize_str(t),
                Value::Date(d) => s.collect_str(d),
                Value::DateTime(t) => s.serialize_str(&t.to_rfc3339()),
                Value::Ref(id) => s.collect_str(id),
                Value::List(items) => items.serialize(s),
            }
        } else {
            match self {
                Value::Null => TaggedRef::N,
                Value::Bool(b) => TaggedRef::B(*b),
                Value::Integer(i) => TaggedRef::I(*i),
                Value::Number(d) => TaggedRef::D(d),
                Value::Text(t) => TaggedRef::T(t),
                Value::Date(d) => TaggedRef::Dt(d),
                Value::DateTime(t) => TaggedRef::Ts(t),
                Value::Ref(id) => TaggedRef::R(id),
                Value::List(items) => TaggedRef::L(items),
            }
            .serialize(s)
        }
    }
}

/// [`Tagged`] as written: the same enum, borrowing the value instead of copying its text or
/// list (values are written on every store of a record and of its event).
#[derive(Serialize)]
#[serde(rename = "Tagged")]
enum TaggedRef<'a> {
    N,
    B(bool),
    I(i64),
    D(&'a Decimal),
    T(&'a str),
    Dt(&'a NaiveDate),
    Ts(#[serde(with = "crate::clock::rfc3339")] &'a Timestamp),
    R(&'a Id),
    L(&'a [Value]),
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            d.deserialize_any(PlainVisitor)
        } else {
            Ok(match Tagged::deserialize(d)? {
                Tagged::N => Value::Null,
                Tagged::B(b) => Value::Bool(b),
                Tagged::I(i) => Value::Integer(i),
                Tagged::D(x) => Value::Number(x),
                Tagged::T(t) => Value::Text(t),
                Tagged::Dt(x) => Value::Date(x),
                Tagged::Ts(t) => Value::DateTime(t),
                Tagged::R(id) => Value::Ref(id),
                Tagged::L(l) => Value::List(l),
            })
        }
    }
}

/// Reads plain (JSON-like) input. Objects are refused: a field value is a scalar or a list.
struct PlainVisitor;

impl<'de> Visitor<'de> for PlainVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a text, number, boolean, null or list value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        match i64::try_from(v) {
            Ok(i) => Ok(Value::Integer(i)),
            Err(_) => Ok(Value::Number(Decimal::from(v))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // A JSON number with a fraction arrives as f64. Its shortest round-trip text is what
        // the sender wrote for every number with up to 15 significant digits, so parsing that
        // text keeps "19.99" exact. Senders needing more digits can send a string.
        if !v.is_finite() {
            return Err(E::custom("numbers must be finite"));
        }
        v.to_string()
            .parse::<Decimal>()
            .or_else(|_| Decimal::from_scientific(&format!("{v:e}")))
            .map(Value::Number)
            .map_err(|_| E::custom(format!("the number {v} is out of range")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Text(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Text(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<Value, A::Error> {
        Err(de::Error::custom(
            "an object is not a field value (expected text, number, boolean, null or a list)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values are stored as the owning [`Tagged`] enum always wrote them, and read back equal.
    #[test]
    fn stored_values_keep_their_bytes() {
        let t = chrono::DateTime::from_timestamp(1_780_000_000, 123_456_000).expect("in range");
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Integer(-42),
            Value::Number(Decimal::new(1999, 2)),
            Value::Text("Ada".to_owned()),
            Value::Date(NaiveDate::from_ymd_opt(2026, 12, 4).expect("a date")),
            Value::DateTime(t),
            Value::Ref(Id::from_u128(7)),
            Value::List(vec![Value::Text("a".to_owned()), Value::Integer(1)]),
        ];
        for v in values {
            let owned = match v.clone() {
                Value::Null => Tagged::N,
                Value::Bool(b) => Tagged::B(b),
                Value::Integer(i) => Tagged::I(i),
                Value::Number(d) => Tagged::D(d),
                Value::Text(t) => Tagged::T(t),
                Value::Date(d) => Tagged::Dt(d),
                Value::DateTime(t) => Tagged::Ts(t),
                Value::Ref(id) => Tagged::R(id),
                Value::List(l) => Tagged::L(l),
            };
            let bytes = rmp_serde::to_vec_named(&v).expect("encodes");
            assert_eq!(
                bytes,
                rmp_serde::to_vec_named(&owned).expect("encodes"),
                "{v:?}"
            );
            let back: Value = rmp_serde::from_slice(&bytes).expect("decodes");
            assert_eq!(back, v);
        }
    }
}
