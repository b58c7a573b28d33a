//! List queries: filters, sort, cursor pagination, and the timeline item type.
//!
//! A [`Query`] arrives with filter values still as the caller wrote them; the store resolves
//! each against the field's type (built-in or custom) before scanning, so a malformed filter
//! fails fast with an error naming the field.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::entity::{AnyRecord, EntityKind};
use crate::error::Error;
use crate::event::Event;
use crate::id::Id;
use crate::value::Value;

/// The default page size.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest page a caller may ask for.
pub const MAX_LIMIT: usize = 1_000;

/// How a filter compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    /// Equal (text case-insensitively; a list field matches if any element is equal).
    Eq,
    /// Not equal.
    Ne,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Text contains, case-insensitively.
    Contains,
    /// Equal to one of a comma-separated list.
    In,
}

impl FilterOp {
    /// Parses the operator name used in `field[op]=value`.
    pub fn parse(s: &str) -> Option<FilterOp> {
        Some(match s {
            "eq" => FilterOp::Eq,
            "ne" => FilterOp::Ne,
            "gt" => FilterOp::Gt,
            "gte" => FilterOp::Gte,
            "lt" => FilterOp::Lt,
            "lte" => FilterOp::Lte,
            "contains" => FilterOp::Contains,
            "in" => FilterOp::In,
            _ => return None,
        })
    }

    /// Every operator name.
    pub const NAMES: &'static [&'static str] =
        &["eq", "ne", "gt", "gte", "lt", "lte", "contains", "in"];
}

/// One filter as the caller wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Field name (`stage`, `custom.tier`).
    pub field: String,
    /// Comparison.
    pub op: FilterOp,
    /// The value, as text.
    pub value: String,
}

/// The sort order of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// Field name.
    pub field: String,
    /// Largest first.
    pub descending: bool,
}

impl SortKey {
    /// Parses `field` or `-field`.
    pub fn parse(s: &str) -> SortKey {
        match s.strip_prefix('-') {
            Some(f) => SortKey {
                field: f.to_owned(),
                descending: true,
            },
            None => SortKey {
                field: s.to_owned(),
                descending: false,
            },
        }
    }
}

/// A list request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    /// All must match.
    pub filters: Vec<Filter>,
    /// Free text matched against names, emails, domains and subjects.
    pub search: Option<String>,
    /// Order; newest first when `None`.
    pub sort: Option<SortKey>,
    /// Page size; [`DEFAULT_LIMIT`] when 0.
    pub limit: usize,
    /// Where the previous page ended.
    pub cursor: Option<String>,
}

impl Query {
    /// The effective page size.
    pub fn page_size(&self) -> Result<usize, Error> {
        match self.limit {
            0 => Ok(DEFAULT_LIMIT),
            n if n > MAX_LIMIT => Err(Error::bad_query(
                "limit",
                format!("must be at most {MAX_LIMIT}"),
            )),
            n => Ok(n),
        }
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The records.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A filter resolved against its field's type.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub field: String,
    pub op: FilterOp,
    pub values: Vec<Value>,
}

impl Resolved {
    pub(crate) fn matches(&self, actual: &Value) -> bool {
        match self.op {
            FilterOp::Eq | FilterOp::In => self.values.iter().any(|v| equal(actual, v)),
            FilterOp::Ne => !self.values.iter().any(|v| equal(actual, v)),
            FilterOp::Contains => self.values.iter().any(|v| contains(actual, v)),
            FilterOp::Gt | FilterOp::Gte | FilterOp::Lt | FilterOp::Lte => {
                let Some(want) = self.values.first() else {
                    return false;
                };
                if actual.is_empty() {
                    return false;
                }
                let Some(ord) = actual.compare(want) else {
                    return false;
                };
                match self.op {
                    FilterOp::Gt => ord.is_gt(),
                    FilterOp::Gte => ord.is_ge(),
                    FilterOp::Lt => ord.is_lt(),
                    _ => ord.is_le(),
                }
            }
        }
    }
}

fn equal(actual: &Value, want: &Value) -> bool {
    match (actual, want) {
        (Value::List(items), w) if !matches!(w, Value::List(_)) => {
            if w.is_empty() {
                items.is_empty()
            } else {
                items.iter().any(|i| equal(i, w))
            }
        }
        (a, w) if a.is_empty() || w.is_empty() => a.is_empty() && w.is_empty(),
        (Value::Text(a), Value::Text(b)) => {
            a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
        }
        (a, b) => a.compare(b).is_some_and(|o| o.is_eq()),
    }
}

fn contains(actual: &Value, want: &Value) -> bool {
    let needle = want.to_string().to_lowercase();
    match actual {
        Value::List(items) => items.iter().any(|i| contains(i, want)),
        Value::Null => false,
        other => other.to_string().to_lowercase().contains(&needle),
    }
}

/// Where a page ended: the last item's sort value and id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    pub value: Value,
    pub id: Id,
}

impl Cursor {
    pub(crate) fn encode(&self) -> String {
        // Serialising a Value and an Id to MessagePack cannot fail: both are plain data.
        let bytes = rmp_serde::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub(crate) fn decode(s: &str) -> Result<Cursor, Error> {
        let bad = || Error::bad_query("cursor", "is not a cursor returned by this list");
        let bytes = URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| bad())?;
        rmp_serde::from_slice(&bytes).map_err(|_| bad())
    }
}

/// One entry of a record's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineItem {
    /// When it happened.
    pub at: Timestamp,
    /// `interaction`, `task`, `deal` or `ticket` for linked records, `change` for the record's
    /// own events.
    #[serde(rename = "type")]
    pub item_type: String,
    /// The linked record's id, or the changed record's id.
    pub id: Id,
    /// One line describing it.
    pub summary: String,
    /// The linked record, for record items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<AnyRecord>,
    /// The event, for field changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
}

/// Kinds that appear on timelines as linked records.
pub const TIMELINE_KINDS: [EntityKind; 4] = [
    EntityKind::Interaction,
    EntityKind::Task,
    EntityKind::Ticket,
    EntityKind::Deal,
];
