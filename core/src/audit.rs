//! Audit history: the event log read as who changed what, when, with each field's value
//! before and after. It is the log itself, not a copy: append-only, written in the same
//! transaction as every change, so history can never disagree with the data.

use crate::clock::Timestamp;
use crate::entity::EntityKind;
use crate::event::Event;
use crate::id::Id;

/// The most events one audit search looks at before it answers with what it found so far
/// and a cursor to go on, so a search for something rare never ties up a reader for long.
pub const SCAN_LIMIT: usize = 100_000;

/// What to look for in the whole log; every field left `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// Who made the change: `user:<id>` (which also matches that user's tokens,
    /// `user:<id>/token:<id>`), `plugin:<id>`, `demo`, `cli`.
    pub actor: Option<String>,
    /// Changes to records of this kind.
    pub kind: Option<EntityKind>,
    /// Changes to this record.
    pub record: Option<Id>,
    /// Changes at or after this time.
    pub from: Option<Timestamp>,
    /// Changes before this time.
    pub to: Option<Timestamp>,
    /// Only events older than this sequence number (the previous page's `next_before`).
    pub before: Option<u64>,
    /// The most events to return (1 to 1,000).
    pub limit: usize,
}

impl AuditQuery {
    /// Whether an event matches (the cursor aside).
    pub fn matches(&self, e: &Event) -> bool {
        self.actor.as_deref().is_none_or(|a| {
            e.actor == a
                || e.actor
                    .strip_prefix(a)
                    .is_some_and(|rest| rest.starts_with('/'))
        }) && self.kind.is_none_or(|k| e.kind == k)
            && self.record.is_none_or(|r| e.id == r)
            && self.from.is_none_or(|t| e.at >= t)
            && self.to.is_none_or(|t| e.at < t)
    }
}

/// A page of history, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    /// Matching events, newest first.
    pub items: Vec<Event>,
    /// Pass as `before` for the next page; `None` when the log has been read to its start.
    /// A page may hold fewer than `limit` events (even none) and still have a next one, when
    /// the search stopped at [`SCAN_LIMIT`] events.
    pub next_before: Option<u64>,
}
