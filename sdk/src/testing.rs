//! A native stand-in for the Kith host, so plugin logic runs under plain `cargo test`.
//!
//! Install one with [`TestHost::install`]; the functions in [`crate::host`] then read its
//! settings, records and storage, and append to its log. Each test thread has its own.
//!
//! Its `query` matches filters like the server does for the common cases: `eq`, `ne` and `in`
//! compare text case-insensitively (a list field matches if any element does); `gt`, `gte`,
//! `lt` and `lte` compare numbers and money as exact decimals, datetimes as instants (the
//! filter value written in RFC 3339, as a bare `YYYY-MM-DD` meaning its midnight UTC, or as
//! microseconds) and other values as text; a record without the field never matches them.
//! Every query is recorded in [`TestHost::queries`], so a test can check which filters a
//! plugin pushed to the host and how it paged.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::{Entity, EntityKind, Field, FieldValue, Filter, Level, Page, Plugin};

/// What the host functions see in a native test.
#[derive(Debug, Clone, Default)]
pub struct TestHost {
    /// The plugin's settings.
    pub settings: Vec<Field>,
    /// Records `get` and `query` can find.
    pub records: Vec<Entity>,
    /// The plugin's key-value storage.
    pub kv: BTreeMap<String, Vec<u8>>,
    /// Everything the plugin logged.
    pub logs: Vec<(Level, String)>,
    /// Kinds the plugin may read; `None` allows all.
    pub readable: Option<Vec<EntityKind>>,
    /// Every `host::query` call so far, in order.
    pub queries: Vec<QueryCall>,
}

/// One `host::query` call, as the plugin made it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryCall {
    /// The kind asked for.
    pub kind: EntityKind,
    /// The filters, as sent.
    pub filters: Vec<Filter>,
    /// The page size asked for.
    pub limit: u32,
    /// The cursor passed back, `None` for the first page.
    pub cursor: Option<String>,
}

thread_local! {
    static HOST: RefCell<TestHost> = RefCell::new(TestHost::default());
}

/// Runs `f` with this thread's test host.
pub fn with<T>(f: impl FnOnce(&mut TestHost) -> T) -> T {
    HOST.with(|h| f(&mut h.borrow_mut()))
}

impl TestHost {
    /// A host whose settings are the plugin's declared defaults.
    pub fn for_plugin<P: Plugin>() -> Self {
        let settings = P::describe()
            .settings
            .into_iter()
            .map(|s| crate::field(&s.name, s.default))
            .collect();
        TestHost {
            settings,
            ..TestHost::default()
        }
    }

    /// Overrides one setting.
    pub fn set(mut self, name: &str, value: FieldValue) -> Self {
        self.settings.retain(|f| f.name != name);
        self.settings.push(crate::field(name, value));
        self
    }

    /// Adds records for `get` and `query`.
    pub fn with_records(mut self, records: impl IntoIterator<Item = Entity>) -> Self {
        self.records.extend(records);
        self
    }

    /// Makes this the current thread's host.
    pub fn install(self) {
        with(|h| *h = self);
    }

    /// Everything logged so far on this thread.
    pub fn logs() -> Vec<(Level, String)> {
        with(|h| h.logs.clone())
    }

    /// Every query made so far on this thread.
    pub fn queries() -> Vec<QueryCall> {
        with(|h| h.queries.clone())
    }

    fn check(&self, kind: EntityKind) -> Result<(), String> {
        match &self.readable {
            Some(kinds) if !kinds.contains(&kind) => {
                Err(format!("the plugin may not read {kind:?} records"))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn get(&self, kind: EntityKind, id: &str) -> Result<Option<Entity>, String> {
        self.check(kind)?;
        Ok(self
            .records
            .iter()
            .find(|e| e.kind == kind && e.id == id)
            .cloned())
    }

    pub(crate) fn query(
        &mut self,
        kind: EntityKind,
        filters: &[Filter],
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page, String> {
        self.queries.push(QueryCall {
            kind,
            filters: filters.to_vec(),
            limit,
            cursor: cursor.map(str::to_owned),
        });
        self.check(kind)?;
        let matching: Vec<&Entity> = self
            .records
            .iter()
            .filter(|e| e.kind == kind && filters.iter().all(|f| matches(e, f)))
            .collect();
        let start: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let end = (start + limit.max(1) as usize).min(matching.len());
        Ok(Page {
            items: matching[start.min(end)..end]
                .iter()
                .map(|e| (*e).clone())
                .collect(),
            next_cursor: (end < matching.len()).then(|| end.to_string()),
        })
    }
}

/// The texts a value stands for, for the simple filter matching of the test host.
fn texts(v: &FieldValue) -> Vec<String> {
    match v {
        FieldValue::Null => Vec::new(),
        FieldValue::Text(s)
        | FieldValue::Number(s)
        | FieldValue::Money(s)
        | FieldValue::Date(s)
        | FieldValue::Choice(s)
        | FieldValue::Reference(s) => vec![s.clone()],
        FieldValue::Integer(i) => vec![i.to_string()],
        FieldValue::Datetime(t) => vec![t.to_string()],
        FieldValue::Boolean(b) => vec![b.to_string()],
        FieldValue::Choices(l) | FieldValue::References(l) => l.clone(),
    }
}

fn matches(e: &Entity, f: &Filter) -> bool {
    let name = f.field.strip_prefix("custom.").unwrap_or(&f.field);
    let value = e
        .fields
        .iter()
        .chain(&e.custom)
        .find(|x| x.name == name)
        .map(|x| &x.value);
    let actual = value.map(texts).unwrap_or_default();
    let any = |want: &str| {
        actual.iter().any(|a| a.eq_ignore_ascii_case(want))
            || value.is_some_and(|v| same_instant(v, want))
    };
    match f.op.as_str() {
        "ne" => !any(&f.value),
        "in" => f.value.split(',').any(any),
        "contains" => actual
            .iter()
            .any(|a| a.to_lowercase().contains(&f.value.to_lowercase())),
        op @ ("gt" | "gte" | "lt" | "lte") => {
            let Some(ord) = value.and_then(|v| compare(v, &f.value)) else {
                return false;
            };
            match op {
                "gt" => ord.is_gt(),
                "gte" => ord.is_ge(),
                "lt" => ord.is_lt(),
                _ => ord.is_le(),
            }
        }
        _ => any(&f.value),
    }
}

/// Whether a datetime value is the instant a filter value writes.
fn same_instant(v: &FieldValue, want: &str) -> bool {
    matches!(v, FieldValue::Datetime(t) if parse_instant(want) == Some(*t))
}

/// How a record's value compares with a filter value; `None` when they cannot be compared (an
/// empty value, or text that is no number or time where one is needed).
fn compare(v: &FieldValue, want: &str) -> Option<Ordering> {
    match v {
        FieldValue::Integer(i) => compare_decimal(&i.to_string(), want),
        FieldValue::Number(d) | FieldValue::Money(d) => compare_decimal(d, want),
        FieldValue::Datetime(t) => Some(t.cmp(&parse_instant(want)?)),
        FieldValue::Boolean(b) => Some(b.cmp(&want.trim().parse::<bool>().ok()?)),
        FieldValue::Text(s)
        | FieldValue::Choice(s)
        | FieldValue::Date(s)
        | FieldValue::Reference(s) => Some(s.to_lowercase().cmp(&want.trim().to_lowercase())),
        FieldValue::Null | FieldValue::Choices(_) | FieldValue::References(_) => None,
    }
}

/// Compares two decimals written as text ("-12.50", "3"), exactly.
fn compare_decimal(a: &str, b: &str) -> Option<Ordering> {
    let (neg_a, int_a, frac_a) = split_decimal(a)?;
    let (neg_b, int_b, frac_b) = split_decimal(b)?;
    let zero = |i: &str, f: &str| i.is_empty() && f.is_empty();
    let (neg_a, neg_b) = (
        neg_a && !zero(&int_a, &frac_a),
        neg_b && !zero(&int_b, &frac_b),
    );
    let magnitude = int_a
        .len()
        .cmp(&int_b.len())
        .then_with(|| int_a.cmp(&int_b))
        .then_with(|| frac_a.cmp(&frac_b));
    Some(match (neg_a, neg_b) {
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    })
}

/// A decimal's sign, integer digits without leading zeros and fraction digits without
/// trailing zeros, so equal numbers split equally.
fn split_decimal(s: &str) -> Option<(bool, String, String)> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    Some((
        neg,
        int.trim_start_matches('0').to_owned(),
        frac.trim_end_matches('0').to_owned(),
    ))
}

/// Microseconds since the Unix epoch from RFC 3339 (`2026-03-01T09:30:00Z`, with an optional
/// fraction and a `Z` or `±HH:MM` offset), a bare date (its midnight UTC), or a number of
/// microseconds, as the server's filters accept.
pub fn parse_instant(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(micros) = s.parse::<i64>() {
        return Some(micros);
    }
    let num = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let date = s.get(..10)?;
    let (y, m, d) = (
        num(date.get(..4)?)?,
        num(date.get(5..7)?)?,
        num(date.get(8..10)?)?,
    );
    if &date[4..5] != "-" || &date[7..8] != "-" || !(1..=12).contains(&m) {
        return None;
    }
    if d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    let rest = &s[10..];
    if rest.is_empty() {
        return Some(days * 86_400_000_000);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (h, mi, sec) = (
        num(rest.get(..2)?)?,
        num(rest.get(3..5)?)?,
        num(rest.get(6..8)?)?,
    );
    if &rest[2..3] != ":" || &rest[5..6] != ":" || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &rest[8..];
    let mut micros = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let f = &frac[..digits];
        let six: String = f.chars().chain(std::iter::repeat('0')).take(6).collect();
        micros = num(&six)?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            if rest.len() != 6 || &rest[3..4] != ":" {
                return None;
            }
            sign * (num(&rest[1..3])? * 60 + num(&rest[4..6])?) * 60
        }
    };
    let secs = days * 86_400 + h * 3_600 + mi * 60 + sec - offset;
    Some(secs * 1_000_000 + micros)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An entity for tests: `entity(EntityKind::Contact, "c1", [field("title", ...)])`.
pub fn entity(kind: EntityKind, id: &str, fields: impl IntoIterator<Item = Field>) -> Entity {
    Entity {
        kind,
        id: id.to_owned(),
        fields: fields.into_iter().collect(),
        custom: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{field, host};

    fn filter(field: &str, op: &str, value: &str) -> Filter {
        Filter {
            field: field.to_owned(),
            op: op.to_owned(),
            value: value.to_owned(),
        }
    }

    fn ids(filters: &[Filter]) -> Vec<String> {
        host::query_all(EntityKind::Deal, filters)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect()
    }

    #[test]
    fn instants_parse_like_the_servers_filters() {
        let day = 86_400_000_000;
        assert_eq!(parse_instant("1970-01-02"), Some(day));
        assert_eq!(parse_instant("1970-01-02T00:00:00Z"), Some(day));
        assert_eq!(parse_instant("1970-01-02T01:00:00+01:00"), Some(day));
        assert_eq!(parse_instant("1970-01-01T00:00:00.25Z"), Some(250_000));
        assert_eq!(parse_instant("2024-02-29"), Some(19_782 * day));
        assert_eq!(parse_instant("123"), Some(123));
        for bad in [
            "2023-02-29",
            "2026-13-01",
            "2026-01-01T25:00:00Z",
            "soon",
            "",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
    }

    #[test]
    fn comparisons_order_numbers_times_and_text() {
        let day = 86_400_000_000;
        TestHost::default()
            .with_records([
                entity(
                    EntityKind::Deal,
                    "a",
                    [
                        field("amount", FieldValue::Money("9.50".into())),
                        field("closed_at", FieldValue::Datetime(10 * day)),
                        field("stage", FieldValue::Text("lead".into())),
                    ],
                ),
                entity(
                    EntityKind::Deal,
                    "b",
                    [
                        field("amount", FieldValue::Money("10".into())),
                        field("closed_at", FieldValue::Datetime(11 * day)),
                        field("stage", FieldValue::Text("won".into())),
                    ],
                ),
                entity(EntityKind::Deal, "c", []),
            ])
            .install();
        assert_eq!(ids(&[filter("amount", "gt", "9.5")]), ["b"]);
        assert_eq!(ids(&[filter("amount", "gte", "9.500")]), ["a", "b"]);
        assert_eq!(ids(&[filter("amount", "lt", "-1")]), Vec::<String>::new());
        assert_eq!(ids(&[filter("closed_at", "gte", "1970-01-12")]), ["b"]);
        assert_eq!(ids(&[filter("closed_at", "lt", "1970-01-12")]), ["a"]);
        assert_eq!(
            ids(&[filter("closed_at", "eq", "1970-01-11T00:00:00Z")]),
            ["a"]
        );
        assert_eq!(ids(&[filter("stage", "lte", "Lead")]), ["a"]);
        assert_eq!(ids(&[filter("stage", "in", "won,lost")]), ["b"]);
        let calls = TestHost::queries();
        assert_eq!(calls.len(), 8);
        assert_eq!(calls[0].kind, EntityKind::Deal);
        assert_eq!(calls[0].filters, [filter("amount", "gt", "9.5")]);
        assert_eq!((calls[0].limit, calls[0].cursor.as_deref()), (1000, None));
    }

    #[test]
    fn decimals_compare_exactly() {
        let check = |a: &str, b: &str, want: Option<Ordering>| {
            assert_eq!(compare_decimal(a, b), want, "{a} vs {b}");
        };
        check("10", "9.99", Some(Ordering::Greater));
        check("0010.10", "10.1", Some(Ordering::Equal));
        check("-0", "0", Some(Ordering::Equal));
        check("-2", "-10", Some(Ordering::Greater));
        check("-1", "1", Some(Ordering::Less));
        check("1e3", "1", None);
    }
}
