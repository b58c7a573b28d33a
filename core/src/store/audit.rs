//! Reading the event log as audit history: one record's changes through the per-record
//! index, or a search of the whole log newest first, bounded per page.

use super::read::Reader;
use super::tables::{self, decode};
use crate::audit::{AuditPage, AuditQuery, SCAN_LIMIT};
use crate::entity::EntityKind;
use crate::error::Error;
use crate::event::Event;
use crate::id::Id;

impl Reader {
    /// The changes of one record, newest first, from `before` (exclusive).
    pub(crate) fn history(
        &self,
        kind: EntityKind,
        id: Id,
        before: Option<u64>,
        limit: usize,
    ) -> Result<AuditPage, Error> {
        // Ids are unique across kinds, but the URL names a kind: hold it to it.
        let q = AuditQuery {
            kind: Some(kind),
            record: Some(id),
            before,
            limit,
            ..AuditQuery::default()
        };
        let page = self.history_any(id, &q)?;
        if page.items.is_empty() && before.is_none() && self.get(kind, id).is_err() {
            return Err(Error::NotFound { kind, id });
        }
        Ok(page)
    }

    /// Events matching `q`, newest first.
    pub(crate) fn audit(&self, q: &AuditQuery) -> Result<AuditPage, Error> {
        if let Some(id) = q.record {
            // The per-record index answers without reading the whole log.
            return self.history_any(id, q);
        }
        let events = self.txn.open_table(tables::EVENTS)?;
        let end = q.before.unwrap_or(u64::MAX);
        let mut items = Vec::new();
        let mut last_seen = None;
        for (scanned, entry) in events.range(..end)?.rev().enumerate() {
            let (k, v) = entry?;
            let seq = k.value();
            if items.len() == q.limit || scanned == SCAN_LIMIT {
                return Ok(AuditPage {
                    items,
                    next_before: last_seen,
                });
            }
            last_seen = Some(seq);
            let event: Event = decode(v.value(), || format!("event {seq}"))?;
            if q.matches(&event) {
                items.push(event);
            }
        }
        Ok(AuditPage {
            items,
            next_before: None,
        })
    }

    fn history_any(&self, id: Id, q: &AuditQuery) -> Result<AuditPage, Error> {
        let by_record = self.txn.open_table(tables::EVENTS_BY_RECORD)?;
        let events = self.txn.open_table(tables::EVENTS)?;
        let raw = id.as_u128();
        let end = q.before.unwrap_or(u64::MAX);
        let mut items = Vec::new();
        let mut last_seen = None;
        for entry in by_record.range((raw, 0)..(raw, end))?.rev() {
            let seq = entry?.0.value().1;
            if items.len() == q.limit {
                return Ok(AuditPage {
                    items,
                    next_before: last_seen,
                });
            }
            last_seen = Some(seq);
            if let Some(bytes) = events.get(seq)? {
                let event: Event = decode(bytes.value(), || format!("event {seq}"))?;
                if q.matches(&event) {
                    items.push(event);
                }
            }
        }
        Ok(AuditPage {
            items,
            next_before: None,
        })
    }
}
