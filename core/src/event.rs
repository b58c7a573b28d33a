//! The event log: every committed mutation appends one [`Event`] in the same transaction, with
//! a gap-free sequence number and each changed field's before and after value. Plugins, audit
//! history, timelines and webhooks all read from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::entity::EntityKind;
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

/// The changes of a record's creation from its field map: every non-empty field, from `null`
/// (what [`diff`] against an empty map gives, without copying the values).
pub fn created(after: BTreeMap<String, Value>) -> Vec<FieldChange> {
    after
        .into_iter()
        .filter(|(k, v)| !NOT_DIFFED.contains(&k.as_str()) && !v.is_empty())
        .map(|(field, after)| FieldChange {
            field,
            before: Value::default(),
            after,
        })
        .collect()
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
        let after: BTreeMap<String, Value> = [
            ("first_name", Value::Text("Ada".to_owned())),
            ("email", Value::Null),
            ("title", Value::Text(String::new())),
            ("tags", Value::List(Vec::new())),
            ("updated_at", Value::Text("2026-01-01T00:00:00Z".to_owned())),
            ("custom.tier", Value::Text("gold".to_owned())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let by_diff = diff(&BTreeMap::new(), &after);
        assert_eq!(created(after), by_diff);
        assert_eq!(by_diff.len(), 2, "{by_diff:?}");
    }
}
