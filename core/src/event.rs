//! The event log: every committed mutation appends one [`Event`] in the same transaction, with
//! a gap-free sequence number and each changed field's before and after value. Plugins, audit
//! history, timelines and webhooks all read from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::entity::{EntityKind, Record};
use crate::id::Id;
use crate::value::Value;

/// What happened to the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// The record was created.
    Created,
    /// Some of its fields changed.
    Updated,
    /// It was deleted.
    Deleted,
}

/// One field's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Field name (`stage`, `custom.tier`).
    pub field: String,
    /// The value before (`null` on create).
    pub before: Value,
    /// The value after (`null` on delete).
    pub after: Value,
}

/// One committed change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log, starting at 1, without gaps.
    pub seq: u64,
    /// The record's kind.
    pub kind: EntityKind,
    /// The record's id.
    pub id: Id,
    /// What happened.
    pub op: Operation,
    /// The fields that changed.
    pub changes: Vec<FieldChange>,
    /// Who made the change (a user id, `api`, `demo`, later a plugin id).
    pub actor: String,
    /// When.
    #[serde(with = "crate::clock::rfc3339")]
    pub at: Timestamp,
    /// How many plugin reactions led here: 0 for a change a person (or the API) made, one
    /// more than the triggering event's for a change a workflow plugin's action made.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub depth: u8,
}

fn is_zero(d: &u8) -> bool {
    *d == 0
}

/// Fields whose change is bookkeeping, not news: left out of event diffs.
const NOT_DIFFED: &[&str] = &["updated_at"];

/// The changes of a record's creation: every non-empty field, from `null`, in field-name order
/// (what [`diff`] of an empty map against [`crate::entity::field_map`] gives, without building
/// that map: this runs on every create, inside the writer).
pub fn created<R: Record>(r: &R) -> Vec<FieldChange> {
    let change = |field: String, after: Value| FieldChange {
        field,
        before: Value::default(),
        after,
    };
    let mut out: Vec<FieldChange> = r
        .values()
        .into_iter()
        .filter(|(k, v)| !NOT_DIFFED.contains(k) && !v.is_empty())
        .map(|(k, v)| change(k.to_owned(), v))
        .collect();
    out.extend(
        r.custom()
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| change(format!("custom.{k}"), v.clone())),
    );
    // Field names are unique, so this is the field map's order.
    out.sort_unstable_by(|a, b| a.field.cmp(&b.field));
    out
}

/// The changed fields between two field maps (see [`crate::entity::field_map`]).
pub fn diff(before: &BTreeMap<String, Value>, after: &BTreeMap<String, Value>) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for k in keys {
        if NOT_DIFFED.contains(&k.as_str()) {
            continue;
        }
        let b = before.get(k).cloned().unwrap_or_default();
        let a = after.get(k).cloned().unwrap_or_default();
        if b != a && !(b.is_empty() && a.is_empty()) {
            out.push(FieldChange {
                field: k.clone(),
                before: b,
                after: a,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_is_the_diff_from_nothing() {
        use crate::entity::{Contact, field_map};
        let now = chrono::DateTime::from_timestamp(1_780_000_000, 0).expect("in range");
        let mut r = Contact::blank(Id::from_u128(9), now);
        assert_eq!(created(&r), diff(&BTreeMap::new(), &field_map(&r)));
        r.first_name = "Ada".to_owned();
        r.title = Some(String::new());
        r.tags = vec!["vip".to_owned()];
        r.owner = Some("u1".to_owned());
        r.custom
            .insert("tier".to_owned(), Value::Text("gold".to_owned()));
        r.custom
            .insert("a_blank".to_owned(), Value::Text("  ".to_owned()));
        r.custom.insert("zz".to_owned(), Value::Integer(3));
        let by_diff = diff(&BTreeMap::new(), &field_map(&r));
        assert_eq!(created(&r), by_diff);
        let names: Vec<&str> = by_diff.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            names,
            [
                "created_at",
                "custom.tier",
                "custom.zz",
                "first_name",
                "id",
                "lifecycle_stage",
                "owner",
                "tags"
            ]
        );
    }
}
