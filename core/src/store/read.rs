//! The read path: getting, listing, counting, timelines and the event log, all inside one
//! read transaction so a page is a consistent snapshot.

use std::cmp::Ordering;

use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, ReadableTableMetadata};

use super::accounts::visible;
use super::tables::{self, decode};
use crate::account::Access;
use crate::custom::FieldDef;
use crate::entity::{AnyRecord, EntityKind, IntoAny, Record};
use crate::error::Error;
use crate::event::Event;
use crate::id::Id;
use crate::pipeline::Pipeline;
use crate::query::{
    Cursor, FilterOp, Page, Query, Resolved, SortKey, TIMELINE_KINDS, TimelineItem,
};
use crate::value::Value;
use crate::with_kind;

/// Reads the custom field definitions of `kind` from the definitions table.
pub(crate) fn field_defs(
    t: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    kind: EntityKind,
) -> Result<Vec<FieldDef>, Error> {
    let mut out = Vec::new();
    for entry in t.range((kind.name(), "")..)? {
        let (key, value) = entry?;
        let (k, name) = key.value();
        if k != kind.name() {
            break;
        }
        out.push(decode(value.value(), || {
            format!("custom field {k}.{name}")
        })?);
    }
    Ok(out)
}

/// A read snapshot.
pub(crate) struct Reader {
    pub(super) txn: ReadTransaction,
    /// Records outside it are invisible to `get`, `list`, `count` and `timeline`; `None`
    /// means everything is visible.
    access: Option<Access>,
}

impl Reader {
    pub(crate) fn new(txn: ReadTransaction) -> Self {
        Reader { txn, access: None }
    }

    /// The same snapshot, limited to what `access` may see.
    pub(crate) fn restricted(mut self, access: Option<Access>) -> Self {
        self.access = access;
        self
    }

    fn records(&self, kind: EntityKind) -> Result<ReadOnlyTable<u128, &'static [u8]>, Error> {
        Ok(self.txn.open_table(tables::records(kind))?)
    }

    pub(crate) fn load<R: Record>(&self, id: Id) -> Result<Option<R>, Error> {
        load_from(&self.records(R::KIND)?, id)
    }

    pub(crate) fn get(&self, kind: EntityKind, id: Id) -> Result<AnyRecord, Error> {
        let access = self.access.as_ref();
        with_kind!(kind, R => self
            .load::<R>(id)?
            .filter(|r| visible(access, r))
            .map(IntoAny::into_any))
        .ok_or(Error::NotFound { kind, id })
    }

    pub(crate) fn field_defs(&self, kind: EntityKind) -> Result<Vec<FieldDef>, Error> {
        field_defs(&self.txn.open_table(tables::FIELD_DEFS)?, kind)
    }

    pub(crate) fn pipelines(&self) -> Result<Vec<Pipeline>, Error> {
        let t = self.txn.open_table(tables::PIPELINES)?;
        let mut out = Vec::new();
        for entry in t.iter()? {
            let (k, v) = entry?;
            out.push(decode(v.value(), || format!("pipeline {}", k.value()))?);
        }
        Ok(out)
    }

    pub(crate) fn count_all(&self, kind: EntityKind) -> Result<u64, Error> {
        Ok(self.records(kind)?.len()?)
    }

    pub(crate) fn events(&self, after: u64, limit: usize) -> Result<Vec<Event>, Error> {
        let t = self.txn.open_table(tables::EVENTS)?;
        let mut out = Vec::new();
        for entry in t.range(after.saturating_add(1)..)?.take(limit) {
            let (k, v) = entry?;
            out.push(decode(v.value(), || format!("event {}", k.value()))?);
        }
        Ok(out)
    }

    pub(crate) fn last_seq(&self) -> Result<u64, Error> {
        let t = self.txn.open_table(tables::EVENTS)?;
        Ok(t.last()?.map_or(0, |(k, _)| k.value()))
    }

    /// Recomputes every index entry from the records and compares with the index tables.
    /// Returns one line per discrepancy; empty means consistent.
    pub(crate) fn verify(&self) -> Result<Vec<String>, Error> {
        use std::collections::BTreeSet;
        let mut want_unique = BTreeSet::new();
        let mut want_text = BTreeSet::new();
        let mut want_refs = BTreeSet::new();
        let mut want_time = BTreeSet::new();
        for kind in EntityKind::ALL {
            let table = self.records(kind)?;
            for entry in table.iter()? {
                let (k, v) = entry?;
                let id = Id::from_u128(k.value());
                let keys = with_kind!(kind, R => {
                    let r: R = decode(v.value(), || format!("{kind} {id}"))?;
                    crate::entity::all_index_keys(&r)
                });
                for key in keys {
                    match key {
                        crate::entity::IndexKey::Unique { index, value } => {
                            want_unique.insert((index.to_owned(), value, id.as_u128()));
                        }
                        crate::entity::IndexKey::Text { index, value } => {
                            want_text.insert((index.to_owned(), value, id.as_u128()));
                        }
                        crate::entity::IndexKey::Ref { target, time } => {
                            want_refs.insert((target.as_u128(), time, id.as_u128(), kind.tag()));
                        }
                        crate::entity::IndexKey::Time { index, time } => {
                            want_time.insert((index.to_owned(), time, id.as_u128()));
                        }
                    }
                }
            }
        }
        let mut have_unique = BTreeSet::new();
        for e in self.txn.open_table(tables::UNIQUE)?.iter()? {
            let (k, v) = e?;
            let (i, val) = k.value();
            have_unique.insert((i.to_owned(), val.to_owned(), v.value()));
        }
        let mut have_text = BTreeSet::new();
        for e in self.txn.open_table(tables::TEXT)?.iter()? {
            let (k, _) = e?;
            let (i, val, id) = k.value();
            have_text.insert((i.to_owned(), val.to_owned(), id));
        }
        let mut have_refs = BTreeSet::new();
        for e in self.txn.open_table(tables::REFS)?.iter()? {
            let (k, v) = e?;
            let (t, time, id) = k.value();
            have_refs.insert((t, time, id, v.value()));
        }
        let mut have_time = BTreeSet::new();
        for e in self.txn.open_table(tables::TIME)?.iter()? {
            let (k, _) = e?;
            let (i, time, id) = k.value();
            have_time.insert((i.to_owned(), time, id));
        }
        let mut problems = Vec::new();
        fn compare<T: Ord + std::fmt::Debug>(
            name: &str,
            want: &std::collections::BTreeSet<T>,
            have: &std::collections::BTreeSet<T>,
            out: &mut Vec<String>,
        ) {
            for missing in want.difference(have) {
                out.push(format!("{name}: missing entry {missing:?}"));
            }
            for extra in have.difference(want) {
                out.push(format!("{name}: dangling entry {extra:?}"));
            }
        }
        compare("idx.unique", &want_unique, &have_unique, &mut problems);
        compare("idx.text", &want_text, &have_text, &mut problems);
        compare("idx.ref", &want_refs, &have_refs, &mut problems);
        compare("idx.time", &want_time, &have_time, &mut problems);
        Ok(problems)
    }

    /// Resolves filters against field types; unknown fields and bad values fail here.
    fn resolve(&self, kind: EntityKind, q: &Query) -> Result<Vec<Resolved>, Error> {
        let defs = self.field_defs(kind)?;
        let mut out = Vec::with_capacity(q.filters.len());
        for f in &q.filters {
            let parse = |text: &str| -> Result<Value, Error> {
                if text.trim().is_empty() {
                    return Ok(Value::Null);
                }
                let v = Value::Text(text.to_owned());
                let parsed = if f.op == FilterOp::Contains {
                    Ok(v)
                } else if let Some(name) = f.field.strip_prefix("custom.") {
                    let def = defs.iter().find(|d| d.name == name).ok_or_else(|| {
                        Error::bad_query(&f.field, format!("{kind} has no custom field '{name}'"))
                    })?;
                    def.parse_filter(v)
                } else {
                    let info = kind.field(&f.field).ok_or_else(|| {
                        Error::bad_query(&f.field, format!("{kind} has no field '{}'", f.field))
                    })?;
                    info.ty.parse_filter(v)
                };
                parsed.map_err(|m| Error::bad_query(&f.field, m))
            };
            let values = if f.op == FilterOp::In {
                f.value
                    .split(',')
                    .map(parse)
                    .collect::<Result<Vec<_>, _>>()?
            } else {
                vec![parse(&f.value)?]
            };
            // Check the field exists even when the value is empty or a `contains` text.
            self.check_field(kind, &defs, &f.field)?;
            out.push(Resolved {
                field: f.field.clone(),
                op: f.op,
                values,
            });
        }
        Ok(out)
    }

    fn check_field(&self, kind: EntityKind, defs: &[FieldDef], field: &str) -> Result<(), Error> {
        let known = match field.strip_prefix("custom.") {
            Some(name) => defs.iter().any(|d| d.name == name),
            None => kind.field(field).is_some(),
        };
        if known {
            Ok(())
        } else {
            Err(Error::bad_query(
                field,
                format!("{kind} has no field '{field}'"),
            ))
        }
    }

    /// Ids that may match, from an index, when a filter allows it; `None` means scan all.
    fn candidates(&self, kind: EntityKind, filters: &[Resolved]) -> Result<Option<Vec<Id>>, Error> {
        for f in filters.iter().filter(|f| f.op == FilterOp::Eq) {
            let Some(value) = f.values.first().filter(|v| !v.is_empty()) else {
                continue;
            };
            let text_index = match (kind, f.field.as_str()) {
                (EntityKind::Contact, "email") => {
                    let t = self.txn.open_table(tables::UNIQUE)?;
                    let key = value.to_string().to_lowercase();
                    let hit = t.get(("contact.email", key.as_str()))?;
                    return Ok(Some(
                        hit.map(|v| Id::from_u128(v.value())).into_iter().collect(),
                    ));
                }
                (EntityKind::Company, "domain") => Some("company.domain"),
                (EntityKind::Deal, "stage") => Some("deal.stage"),
                (EntityKind::Deal, "status") => Some("deal.status"),
                (EntityKind::Ticket, "status") => Some("ticket.status"),
                (EntityKind::Ticket, "assignee") => Some("ticket.assignee"),
                (EntityKind::Task, "assignee") => Some("task.assignee"),
                _ => None,
            };
            if let Some(index) = text_index {
                let t = self.txn.open_table(tables::TEXT)?;
                let key = value.to_string().to_lowercase();
                let mut ids = Vec::new();
                for entry in t.range((index, key.as_str(), 0)..=(index, key.as_str(), u128::MAX))? {
                    ids.push(Id::from_u128(entry?.0.value().2));
                }
                return Ok(Some(ids));
            }
            let is_ref = kind.field(&f.field).is_some_and(|i| {
                matches!(
                    i.ty,
                    crate::schema::ValueType::Id | crate::schema::ValueType::IdList
                )
            }) && f.field != "id";
            if let (true, Value::Ref(target)) = (is_ref, value) {
                return Ok(Some(self.referrers(*target, Some(kind))?));
            }
        }
        Ok(None)
    }

    /// Records referring to `target`, optionally only of one kind.
    pub(super) fn referrers(&self, target: Id, only: Option<EntityKind>) -> Result<Vec<Id>, Error> {
        Ok(self
            .referrer_entries(target)?
            .into_iter()
            .filter(|(k, _)| only.is_none_or(|o| o == *k))
            .map(|(_, id)| id)
            .collect())
    }

    fn referrer_entries(&self, target: Id) -> Result<Vec<(EntityKind, Id)>, Error> {
        let t = self.txn.open_table(tables::REFS)?;
        let raw = target.as_u128();
        let mut out = Vec::new();
        for entry in t.range((raw, i64::MIN, 0)..=(raw, i64::MAX, u128::MAX))? {
            let (k, tag) = entry?;
            if let Some(kind) = EntityKind::from_tag(tag.value()) {
                out.push((kind, Id::from_u128(k.value().2)));
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    pub(crate) fn list(&self, kind: EntityKind, q: &Query) -> Result<Page<AnyRecord>, Error> {
        with_kind!(kind, R => self.list_of::<R>(q))
    }

    pub(crate) fn count(&self, kind: EntityKind, q: &Query) -> Result<u64, Error> {
        if q.filters.is_empty() && q.search.is_none() && self.access.is_none() {
            return self.count_all(kind);
        }
        with_kind!(kind, R => self.count_of::<R>(q))
    }

    /// The predicate a record must pass: every resolved filter, and the free-text search.
    fn matcher<'a, R: Record>(
        &'a self,
        filters: &'a [Resolved],
        q: &Query,
    ) -> impl Fn(&R) -> bool + 'a {
        let access = self.access.as_ref();
        let search = q
            .search
            .as_ref()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty());
        move |r: &R| {
            visible(access, r)
                && filters
                    .iter()
                    .all(|f| f.matches(&r.get(&f.field).unwrap_or(Value::Null)))
                && search
                    .as_ref()
                    .is_none_or(|s| searchable(r).contains(s.as_str()))
        }
    }

    fn count_of<R: Record>(&self, q: &Query) -> Result<u64, Error> {
        let filters = self.resolve(R::KIND, q)?;
        let matches = self.matcher::<R>(&filters, q);
        let table = self.records(R::KIND)?;
        let mut n = 0;
        match self.candidates(R::KIND, &filters)? {
            Some(ids) => {
                for id in ids {
                    if load_from::<R>(&table, id)?.is_some_and(|r| matches(&r)) {
                        n += 1;
                    }
                }
            }
            None => {
                for entry in table.iter()? {
                    let (k, v) = entry?;
                    let r: R = decode(v.value(), || {
                        format!("{} {}", R::KIND, Id::from_u128(k.value()))
                    })?;
                    if matches(&r) {
                        n += 1;
                    }
                }
            }
        }
        Ok(n)
    }

    fn list_of<R: Record>(&self, q: &Query) -> Result<Page<AnyRecord>, Error> {
        let limit = q.page_size()?;
        let filters = self.resolve(R::KIND, q)?;
        let matches = self.matcher::<R>(&filters, q);
        let sort = q.sort.clone().unwrap_or(SortKey {
            field: "created_at".to_owned(),
            descending: true,
        });
        let defs = self.field_defs(R::KIND)?;
        self.check_field(R::KIND, &defs, &sort.field).map_err(|_| {
            Error::bad_query(
                "sort",
                format!("{} has no field '{}' to sort by", R::KIND, sort.field),
            )
        })?;
        let cursor = q.cursor.as_deref().map(Cursor::decode).transpose()?;
        let table = self.records(R::KIND)?;
        let candidates = self.candidates(R::KIND, &filters)?;
        let by_id = sort.field == "created_at" || sort.field == "id";

        let mut items: Vec<R> = Vec::with_capacity(limit + 1);
        if by_id {
            // Ids are time-ordered, so creation order is key order: walk the table (or the
            // index hits) from the cursor and stop as soon as the page is full.
            let after = cursor.map(|c| c.id);
            let past = |id: Id| after.is_none_or(|a| if sort.descending { id < a } else { id > a });
            match candidates {
                Some(mut ids) => {
                    ids.sort();
                    if sort.descending {
                        ids.reverse();
                    }
                    for id in ids.into_iter().filter(|id| past(*id)) {
                        if let Some(r) = load_from::<R>(&table, id)?
                            && matches(&r)
                        {
                            items.push(r);
                            if items.len() > limit {
                                break;
                            }
                        }
                    }
                }
                None => {
                    let range = match (after, sort.descending) {
                        (None, _) => table.iter()?,
                        (Some(a), true) => table.range(..a.as_u128())?,
                        (Some(a), false) => table.range(a.as_u128().saturating_add(1)..)?,
                    };
                    let mut push = |entry: Result<
                        (redb::AccessGuard<u128>, redb::AccessGuard<&[u8]>),
                        redb::StorageError,
                    >|
                     -> Result<bool, Error> {
                        let (k, v) = entry?;
                        let r: R = decode(v.value(), || {
                            format!("{} {}", R::KIND, Id::from_u128(k.value()))
                        })?;
                        if matches(&r) {
                            items.push(r);
                        }
                        Ok(items.len() > limit)
                    };
                    if sort.descending {
                        for entry in range.rev() {
                            if push(entry)? {
                                break;
                            }
                        }
                    } else {
                        for entry in range {
                            if push(entry)? {
                                break;
                            }
                        }
                    }
                }
            }
            let next = (items.len() > limit).then(|| {
                items.truncate(limit);
                items.last().map(|r| {
                    Cursor {
                        value: Value::Null,
                        id: r.id(),
                    }
                    .encode()
                })
            });
            return Ok(Page {
                items: items.into_iter().map(IntoAny::into_any).collect(),
                next_cursor: next.flatten(),
            });
        }

        // Any other order needs every match: collect, sort by (value, id), page from cursor.
        let mut all: Vec<(Value, R)> = Vec::new();
        let mut keep = |r: R| {
            if matches(&r) {
                all.push((r.get(&sort.field).unwrap_or(Value::Null), r));
            }
        };
        match candidates {
            Some(ids) => {
                for id in ids {
                    if let Some(r) = load_from::<R>(&table, id)? {
                        keep(r);
                    }
                }
            }
            None => {
                for entry in table.iter()? {
                    let (k, v) = entry?;
                    keep(decode(v.value(), || {
                        format!("{} {}", R::KIND, Id::from_u128(k.value()))
                    })?);
                }
            }
        }
        let order = |a: (&Value, Id), b: (&Value, Id)| -> Ordering {
            let o = a.0.sort_cmp(b.0).then(a.1.cmp(&b.1));
            if sort.descending { o.reverse() } else { o }
        };
        all.sort_by(|a, b| order((&a.0, a.1.id()), (&b.0, b.1.id())));
        let start = match &cursor {
            Some(c) => all.partition_point(|(v, r)| {
                order((v, r.id()), (&c.value, c.id)) != Ordering::Greater
            }),
            None => 0,
        };
        let mut page: Vec<(Value, R)> = all.into_iter().skip(start).take(limit + 1).collect();
        let next = (page.len() > limit).then(|| {
            page.truncate(limit);
            page.last().map(|(v, r)| {
                Cursor {
                    value: v.clone(),
                    id: r.id(),
                }
                .encode()
            })
        });
        Ok(Page {
            items: page.into_iter().map(|(_, r)| r.into_any()).collect(),
            next_cursor: next.flatten(),
        })
    }

    pub(crate) fn timeline(
        &self,
        kind: EntityKind,
        id: Id,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<TimelineItem>, Error> {
        self.get(kind, id)?;
        let mut items: Vec<(u64, TimelineItem)> = Vec::new();
        for (k, source) in self.referrer_entries(id)? {
            if !TIMELINE_KINDS.contains(&k) {
                continue;
            }
            if let Ok(record) = self.get(k, source) {
                items.push((
                    0,
                    TimelineItem {
                        at: record.timeline_time(),
                        item_type: k.name().to_owned(),
                        id: source,
                        summary: record.summary(),
                        record: Some(record),
                        event: None,
                    },
                ));
            }
        }
        let by_record = self.txn.open_table(tables::EVENTS_BY_RECORD)?;
        let events = self.txn.open_table(tables::EVENTS)?;
        let raw = id.as_u128();
        for entry in by_record.range((raw, 0)..=(raw, u64::MAX))? {
            let seq = entry?.0.value().1;
            if let Some(bytes) = events.get(seq)? {
                let event: Event = decode(bytes.value(), || format!("event {seq}"))?;
                let summary = match event.op {
                    crate::event::Operation::Created => format!("{kind} created"),
                    crate::event::Operation::Deleted => format!("{kind} deleted"),
                    crate::event::Operation::Updated => format!(
                        "changed {}",
                        event
                            .changes
                            .iter()
                            .map(|c| c.field.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                items.push((
                    seq,
                    TimelineItem {
                        at: event.at,
                        item_type: "change".to_owned(),
                        id,
                        summary,
                        record: None,
                        event: Some(event),
                    },
                ));
            }
        }
        // Newest first; ties broken by event sequence, then id, so paging is stable.
        let key = |(seq, item): &(u64, TimelineItem)| (item.at, *seq, item.id);
        items.sort_by_key(|e| std::cmp::Reverse(key(e)));
        let start = match cursor.map(Cursor::decode).transpose()? {
            Some(Cursor {
                value: Value::List(parts),
                id: cid,
            }) => {
                let (at, seq) = match parts.as_slice() {
                    [Value::DateTime(at), Value::Integer(seq)] => {
                        (*at, u64::try_from(*seq).unwrap_or(0))
                    }
                    _ => {
                        return Err(Error::bad_query(
                            "cursor",
                            "is not a cursor returned by this timeline",
                        ));
                    }
                };
                items.partition_point(|e| key(e) >= (at, seq, cid))
            }
            Some(_) => {
                return Err(Error::bad_query(
                    "cursor",
                    "is not a cursor returned by this timeline",
                ));
            }
            None => 0,
        };
        let mut page: Vec<(u64, TimelineItem)> =
            items.into_iter().skip(start).take(limit + 1).collect();
        let next = (page.len() > limit).then(|| {
            page.truncate(limit);
            page.last().map(|(seq, item)| {
                Cursor {
                    value: Value::List(vec![
                        Value::DateTime(item.at),
                        Value::Integer(i64::try_from(*seq).unwrap_or(i64::MAX)),
                    ]),
                    id: item.id,
                }
                .encode()
            })
        });
        Ok(Page {
            items: page.into_iter().map(|(_, i)| i).collect(),
            next_cursor: next.flatten(),
        })
    }

    /// Decodes every record of `kind` as `T`, in id order, and hands each to `f`.
    ///
    /// `T` may be a view that names only some of the record's fields: records are MessagePack
    /// maps with named fields, so the fields `T` leaves out are skipped without being built,
    /// which is what makes a full scan cheap enough for in-memory projections (reports).
    pub(crate) fn scan_as<T: serde::de::DeserializeOwned>(
        &self,
        kind: EntityKind,
        f: &mut dyn FnMut(Id, T) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let table = self.records(kind)?;
        for entry in table.iter()? {
            let (k, v) = entry?;
            let id = Id::from_u128(k.value());
            f(id, decode(v.value(), || format!("{kind} {id}"))?)?;
        }
        Ok(())
    }

    /// One record of `kind` decoded as `T` (see [`Reader::scan_as`]); `None` if absent.
    pub(crate) fn get_as<T: serde::de::DeserializeOwned>(
        &self,
        kind: EntityKind,
        id: Id,
    ) -> Result<Option<T>, Error> {
        match self.records(kind)?.get(id.as_u128())? {
            Some(bytes) => Ok(Some(decode(bytes.value(), || format!("{kind} {id}"))?)),
            None => Ok(None),
        }
    }

    /// The ids of the records of `kind` that events after `after` touched, each once, in id
    /// order. Only each event's kind and id are decoded; its field changes are skipped.
    pub(crate) fn changed_ids(&self, kind: EntityKind, after: u64) -> Result<Vec<Id>, Error> {
        /// The part of a stored [`Event`] this needs.
        #[derive(serde::Deserialize)]
        struct Head {
            kind: EntityKind,
            id: Id,
        }
        let t = self.txn.open_table(tables::EVENTS)?;
        let mut ids = Vec::new();
        for entry in t.range(after.saturating_add(1)..)? {
            let (k, v) = entry?;
            let head: Head = decode(v.value(), || format!("event {}", k.value()))?;
            if head.kind == kind {
                ids.push(head.id);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }
}

fn load_from<R: Record>(
    t: &ReadOnlyTable<u128, &'static [u8]>,
    id: Id,
) -> Result<Option<R>, Error> {
    match t.get(id.as_u128())? {
        Some(bytes) => Ok(Some(decode(bytes.value(), || format!("{} {id}", R::KIND))?)),
        None => Ok(None),
    }
}

/// The lower-cased text free-text search looks in: the summary, plus email and domain.
fn searchable<R: Record>(r: &R) -> String {
    let mut s = r.summary().to_lowercase();
    for f in ["email", "domain"] {
        if let Some(Value::Text(t)) = r.get(f) {
            s.push(' ');
            s.push_str(&t.to_lowercase());
        }
    }
    s
}
