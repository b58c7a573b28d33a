//! Field metadata and conversions shared by every entity: how a [`Value`] from the outside
//! becomes a typed Rust field ([`FieldCodec`]), what each field is ([`FieldInfo`]), and the
//! syntax checks for emails, URLs, domains and phone numbers.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use crate::clock::Timestamp;
use crate::id::Id;
use crate::value::Value;

/// The type of a built-in field, used to parse filters and to describe the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// Text.
    Text,
    /// A whole number.
    Integer,
    /// An exact decimal (also money amounts).
    Decimal,
    /// A boolean.
    Bool,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// A timestamp, RFC 3339.
    DateTime,
    /// A record id.
    Id,
    /// A list of record ids.
    IdList,
    /// A list of text values (tags).
    TextList,
    /// One of a fixed set of keys.
    Choice(&'static [&'static str]),
}

impl ValueType {
    /// Converts a value given for a filter on a field of this type, e.g. `"1000"` for an
    /// amount. List types are filtered by one element.
    pub fn parse_filter(self, v: Value) -> Result<Value, String> {
        fn via<T: FieldCodec>(v: Value) -> Result<Value, String> {
            T::from_value(v).map(|t| t.to_value())
        }
        match self {
            ValueType::Text | ValueType::TextList => via::<String>(v),
            ValueType::Integer => via::<i64>(v),
            ValueType::Decimal => via::<Decimal>(v),
            ValueType::Bool => via::<bool>(v),
            ValueType::Date => via::<Option<NaiveDate>>(v),
            ValueType::DateTime => via::<Option<Timestamp>>(v),
            ValueType::Id | ValueType::IdList => via::<Option<Id>>(v),
            ValueType::Choice(options) => {
                let given = via::<String>(v)?;
                options
                    .iter()
                    .find(|o| matches!(&given, Value::Text(t) if t.eq_ignore_ascii_case(o)))
                    .map(|o| Value::Text((*o).to_owned()))
                    .ok_or_else(|| format!("must be one of {}", options.join(", ")))
            }
        }
    }

    /// Whether values are lists (filters then match any element).
    pub fn is_list(self) -> bool {
        matches!(self, ValueType::IdList | ValueType::TextList)
    }
}

/// Describes one built-in field of an entity.
#[derive(Debug, Clone, Copy)]
pub struct FieldInfo {
    /// The name, as in JSON.
    pub name: &'static str,
    /// Its type.
    pub ty: ValueType,
    /// Whether a record must have it.
    pub required: bool,
    /// Whether it is set by Kith and refused as input.
    pub read_only: bool,
    /// One line for the API documentation.
    pub doc: &'static str,
}

/// Converts between a typed field and a dynamic [`Value`].
pub trait FieldCodec: Sized {
    /// The field type, for filters and documentation.
    const TYPE: ValueType;
    /// Reads input; the error says what was expected.
    fn from_value(v: Value) -> Result<Self, String>;
    /// The field as a value.
    fn to_value(&self) -> Value;
}

fn expected(what: &str, got: &Value) -> String {
    format!("expected {what}, got {}", got.type_name())
}

/// The most characters a single-line text field may hold.
pub const MAX_TEXT: usize = 1_000;
/// The most characters a long text field (bodies, descriptions) may hold.
pub const MAX_LONG_TEXT: usize = 100_000;

impl FieldCodec for String {
    const TYPE: ValueType = ValueType::Text;
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Null => Ok(String::new()),
            Value::Text(s) => {
                let t = s.trim();
                if t.chars().count() > MAX_LONG_TEXT {
                    return Err(format!("is longer than {MAX_LONG_TEXT} characters"));
                }
                Ok(t.to_owned())
            }
            other => Err(expected("text", &other)),
        }
    }
    fn to_value(&self) -> Value {
        if self.is_empty() {
            Value::Null
        } else {
            Value::Text(self.clone())
        }
    }
}

impl FieldCodec for Option<String> {
    const TYPE: ValueType = ValueType::Text;
    fn from_value(v: Value) -> Result<Self, String> {
        let s = String::from_value(v)?;
        Ok((!s.is_empty()).then_some(s))
    }
    fn to_value(&self) -> Value {
        self.as_ref()
            .map_or(Value::Null, |s| Value::Text(s.clone()))
    }
}

impl FieldCodec for i64 {
    const TYPE: ValueType = ValueType::Integer;
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Integer(i) => Ok(i),
            Value::Number(d) if d.fract().is_zero() => {
                i64::try_from(d).map_err(|_| format!("{d} is out of range"))
            }
            Value::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("'{s}' is not a whole number")),
            other => Err(expected("a whole number", &other)),
        }
    }
    fn to_value(&self) -> Value {
        Value::Integer(*self)
    }
}

impl FieldCodec for Option<i64> {
    const TYPE: ValueType = ValueType::Integer;
    fn from_value(v: Value) -> Result<Self, String> {
        if v.is_empty() {
            Ok(None)
        } else {
            i64::from_value(v).map(Some)
        }
    }
    fn to_value(&self) -> Value {
        self.map_or(Value::Null, Value::Integer)
    }
}

impl FieldCodec for bool {
    const TYPE: ValueType = ValueType::Bool;
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Bool(b) => Ok(b),
            Value::Text(s) if s.eq_ignore_ascii_case("true") => Ok(true),
            Value::Text(s) if s.eq_ignore_ascii_case("false") => Ok(false),
            other => Err(expected("true or false", &other)),
        }
    }
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

impl FieldCodec for Decimal {
    const TYPE: ValueType = ValueType::Decimal;
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Integer(i) => Ok(Decimal::from(i)),
            Value::Number(d) => Ok(d),
            Value::Text(s) => s
                .trim()
                .parse::<Decimal>()
                .map_err(|_| format!("'{s}' is not a number")),
            other => Err(expected("a number", &other)),
        }
    }
    fn to_value(&self) -> Value {
        Value::Number(*self)
    }
}

impl FieldCodec for Option<Decimal> {
    const TYPE: ValueType = ValueType::Decimal;
    fn from_value(v: Value) -> Result<Self, String> {
        if v.is_empty() {
            Ok(None)
        } else {
            Decimal::from_value(v).map(Some)
        }
    }
    fn to_value(&self) -> Value {
        self.map_or(Value::Null, Value::Number)
    }
}

impl FieldCodec for Option<NaiveDate> {
    const TYPE: ValueType = ValueType::Date;
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            v if v.is_empty() => Ok(None),
            Value::Date(d) => Ok(Some(d)),
            Value::DateTime(t) => Ok(Some(t.date_naive())),
            Value::Text(s) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map(Some)
                .map_err(|_| format!("'{s}' is not a date (expected YYYY-MM-DD)")),
            other => Err(expected("a date (YYYY-MM-DD)", &other)),
        }
    }
    fn to_value(&self) -> Value {
        self.map_or(Value::Null, Value::Date)
    }
}

impl FieldCodec for Option<Timestamp> {
    const TYPE: ValueType = ValueType::DateTime;
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            v if v.is_empty() => Ok(None),
            Value::DateTime(t) => Ok(Some(t)),
            Value::Text(s) => parse_timestamp(&s).map(Some),
            other => Err(expected("a date-time (RFC 3339)", &other)),
        }
    }
    fn to_value(&self) -> Value {
        self.map_or(Value::Null, Value::DateTime)
    }
}

/// Parses an RFC 3339 timestamp (`2026-03-01T09:30:00Z`), or a bare date as its midnight UTC.
pub fn parse_timestamp(s: &str) -> Result<Timestamp, String> {
    let t = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d")
        && let Some(dt) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(dt.and_utc());
    }
    Err(format!(
        "'{s}' is not a date-time (expected RFC 3339, such as 2026-03-01T09:30:00Z)"
    ))
}

impl FieldCodec for Option<Id> {
    const TYPE: ValueType = ValueType::Id;
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            v if v.is_empty() => Ok(None),
            Value::Ref(id) => Ok(Some(id)),
            Value::Text(s) => s.parse().map(Some),
            other => Err(expected("a record id", &other)),
        }
    }
    fn to_value(&self) -> Value {
        self.map_or(Value::Null, Value::Ref)
    }
}

impl FieldCodec for Vec<Id> {
    const TYPE: ValueType = ValueType::IdList;
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Null => Ok(Vec::new()),
            Value::List(items) => {
                let mut ids = Vec::with_capacity(items.len());
                for item in items {
                    if let Some(id) = Option::<Id>::from_value(item)?
                        && !ids.contains(&id)
                    {
                        ids.push(id);
                    }
                }
                Ok(ids)
            }
            other => Err(expected("a list of record ids", &other)),
        }
    }
    fn to_value(&self) -> Value {
        Value::List(self.iter().copied().map(Value::Ref).collect())
    }
}

impl FieldCodec for Vec<String> {
    const TYPE: ValueType = ValueType::TextList;
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Null => Ok(Vec::new()),
            Value::List(items) => {
                let mut out: Vec<String> = Vec::with_capacity(items.len());
                for item in items {
                    let s = String::from_value(item)?;
                    if s.chars().count() > MAX_TEXT {
                        return Err(format!("has an item longer than {MAX_TEXT} characters"));
                    }
                    if !s.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(&s)) {
                        out.push(s);
                    }
                }
                Ok(out)
            }
            other => Err(expected("a list of text values", &other)),
        }
    }
    fn to_value(&self) -> Value {
        Value::List(self.iter().cloned().map(Value::Text).collect())
    }
}

/// Declares a closed set of keys stored as a Rust enum and written as snake_case strings.
macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $key:literal),+ $(,)? } default $default:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vm])* #[doc = concat!("`", $key, "`")] $variant,)+
        }

        #[allow(dead_code)]
        impl $name {
            /// Every key, in declaration order.
            pub const KEYS: &'static [&'static str] = &[$($key),+];

            /// The key as written in JSON.
            pub fn key(self) -> &'static str {
                match self { $($name::$variant => $key,)+ }
            }

            /// Parses a key (case-insensitive).
            pub fn parse(s: &str) -> Option<Self> {
                let s = s.trim();
                $(if s.eq_ignore_ascii_case($key) { return Some($name::$variant); })+
                None
            }
        }

        impl Default for $name {
            fn default() -> Self { $name::$default }
        }

        impl $crate::schema::FieldCodec for $name {
            const TYPE: $crate::schema::ValueType = $crate::schema::ValueType::Choice($name::KEYS);
            fn from_value(v: $crate::value::Value) -> Result<Self, String> {
                match &v {
                    $crate::value::Value::Null => Ok($name::$default),
                    $crate::value::Value::Text(s) => $name::parse(s).ok_or_else(|| {
                        format!("'{}' is not one of {}", s, $name::KEYS.join(", "))
                    }),
                    other => Err(format!("expected one of {}, got {}", $name::KEYS.join(", "), other.type_name())),
                }
            }
            fn to_value(&self) -> $crate::value::Value {
                $crate::value::Value::Text(self.key().to_owned())
            }
        }

        impl $crate::schema::FieldCodec for Option<$name> {
            const TYPE: $crate::schema::ValueType = $crate::schema::ValueType::Choice($name::KEYS);
            fn from_value(v: $crate::value::Value) -> Result<Self, String> {
                if v.is_empty() { Ok(None) } else { <$name as $crate::schema::FieldCodec>::from_value(v).map(Some) }
            }
            fn to_value(&self) -> $crate::value::Value {
                self.map_or($crate::value::Value::Null, |e| $crate::value::Value::Text(e.key().to_owned()))
            }
        }
    };
}
pub(crate) use string_enum;

/// Checks an email address's syntax and returns it trimmed, with the domain lower-cased.
pub fn email(s: &str) -> Result<String, String> {
    let t = s.trim();
    let bad = || format!("'{s}' is not a valid email address");
    if t.len() > 254 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = t.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty() || local.len() > 64 || local.contains('@') || local.starts_with('.') {
        return Err(bad());
    }
    let domain = domain.to_ascii_lowercase();
    if !is_hostname(&domain) {
        return Err(bad());
    }
    Ok(format!("{local}@{domain}"))
}

/// Checks an http(s) URL.
pub fn url(s: &str) -> Result<String, String> {
    let t = s.trim();
    match url::Url::parse(t) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some() => {
            Ok(t.to_owned())
        }
        _ => Err(format!(
            "'{s}' is not a valid web address (expected http:// or https://)"
        )),
    }
}

/// Normalises a company domain (`https://www.Acme.com/about` becomes `acme.com`) and checks it.
pub fn domain(s: &str) -> Result<String, String> {
    let mut t = s.trim().to_ascii_lowercase();
    for prefix in ["https://", "http://"] {
        if let Some(rest) = t.strip_prefix(prefix) {
            t = rest.to_owned();
        }
    }
    if let Some((host, _path)) = t.split_once('/') {
        t = host.to_owned();
    }
    if let Some(rest) = t.strip_prefix("www.") {
        t = rest.to_owned();
    }
    if is_hostname(&t) {
        Ok(t)
    } else {
        Err(format!("'{s}' is not a valid domain (such as example.com)"))
    }
}

fn is_hostname(h: &str) -> bool {
    let labels: Vec<&str> = h.split('.').collect();
    h.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()))
}

/// Checks a phone number: digits with the usual separators, 5 to 20 digits.
pub fn phone(s: &str) -> Result<String, String> {
    let t = s.trim();
    let digits = t.chars().filter(char::is_ascii_digit).count();
    let allowed = |c: char| c.is_ascii_digit() || " +-().x/".contains(c);
    if (5..=20).contains(&digits) && t.chars().all(allowed) {
        Ok(t.to_owned())
    } else {
        Err(format!("'{s}' is not a valid phone number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(f: fn(&str) -> Result<String, String>, input: &str, expected: Option<&str>) {
        assert_eq!(f(input).ok().as_deref(), expected, "input {input:?}");
    }

    #[test]
    fn emails() {
        check(email, " Ada@Example.COM ", Some("Ada@example.com"));
        check(
            email,
            "a.b+tag@mail.example.org",
            Some("a.b+tag@mail.example.org"),
        );
        for bad in [
            "",
            "bob",
            "bob@",
            "@x.com",
            "bob@x",
            "bo b@x.com",
            "bob@x..com",
            "bob@-x.com",
        ] {
            check(email, bad, None);
        }
    }

    #[test]
    fn domains() {
        check(domain, "https://www.Acme.com/about", Some("acme.com"));
        check(domain, "sub.acme.co.uk", Some("sub.acme.co.uk"));
        for bad in ["acme", "acme.c", "ac me.com", "-acme.com", ""] {
            check(domain, bad, None);
        }
    }

    #[test]
    fn urls_and_phones() {
        check(
            url,
            "https://acme.com/x?y=1",
            Some("https://acme.com/x?y=1"),
        );
        check(url, "ftp://acme.com", None);
        check(url, "acme.com", None);
        check(phone, "+1 (555) 010-2030", Some("+1 (555) 010-2030"));
        check(phone, "12", None);
        check(phone, "call me", None);
    }

    #[test]
    fn codecs_name_what_they_expected() {
        assert_eq!(
            i64::from_value(Value::Text("x".into())).unwrap_err(),
            "'x' is not a whole number"
        );
        assert_eq!(
            Option::<NaiveDate>::from_value(Value::Bool(true)).unwrap_err(),
            "expected a date (YYYY-MM-DD), got a boolean"
        );
        assert_eq!(
            Vec::<String>::from_value(Value::List(vec![
                Value::Text("vip".into()),
                Value::Text("VIP".into()),
            ])),
            Ok(vec!["vip".to_owned()])
        );
    }
}
