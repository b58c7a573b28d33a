//! In-memory projections of the records reports read: one compact row per record with only
//! the fields reports use, repeated text (owners, teams, sources, currencies, stages) interned
//! as small numbers, rows kept in id order.
//!
//! Every row carries its record's `owner` (a user id) and `team` (a team key), interned, so a
//! report run for a caller limited to their own and their team's records can leave out the
//! others with two number comparisons per row ([`Visibility`]).
//!
//! A projection is built by one full scan ([`Store::scan_as`]) and advanced with the records
//! that events since its position touched ([`Store::changes_as`]). Both read one snapshot
//! together with that snapshot's newest event number, so the rows always equal the records
//! as of exactly `seq`: nothing committed before it is missed, nothing after it is seen.
//! Rows decode from a *view* of the stored record naming only the fields they need, which
//! skips building titles, tags and custom fields and makes the first scan several times
//! cheaper than decoding whole records.

use std::collections::HashMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::account::Access;
use crate::clock::Timestamp;
use crate::entity::{DealStatus, Direction, EntityKind, InteractionKind, Priority};
use crate::error::Error;
use crate::store::Store;

/// Interned text: each distinct string gets a number once; 0 stands for "none".
///
/// Strings are never removed (a fresh projection may number them differently), so reports
/// must order and compare groups by the text, never by the number.
#[derive(Debug)]
pub(super) struct Symbols {
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

/// The symbol of "no value".
pub(super) const NONE: u32 = 0;

impl Symbols {
    fn new() -> Self {
        Symbols {
            names: vec![String::new()],
            ids: HashMap::new(),
        }
    }

    /// The number of `s`, adding it if new; [`NONE`] for `None`.
    fn intern(&mut self, s: Option<String>) -> u32 {
        let Some(s) = s else { return NONE };
        if let Some(&id) = self.ids.get(&s) {
            return id;
        }
        // More than four billion distinct owners or sources cannot fit in memory anyway;
        // saturating keeps this total without a panic path.
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(s.clone());
        self.ids.insert(s, id);
        id
    }

    /// The text of a symbol; `None` for [`NONE`].
    pub(super) fn name(&self, sym: u32) -> Option<&str> {
        if sym == NONE {
            return None;
        }
        self.names.get(sym as usize).map(String::as_str)
    }

    /// The number of `text`, if some row has it.
    pub(super) fn lookup(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// For filters: a flag per symbol, set for those whose text is exactly `text`.
    pub(super) fn mask(&self, text: &str) -> Vec<bool> {
        let mut mask = vec![false; self.names.len()];
        if let Some(&id) = self.ids.get(text)
            && let Some(m) = mask.get_mut(id as usize)
        {
            *m = true;
        }
        mask
    }
}

/// One compact row of a projection.
pub(super) trait Row: Sized + Send + 'static {
    /// The record kind it projects.
    const KIND: EntityKind;
    /// The fields of the stored record it is made from.
    type View: DeserializeOwned;
    /// The row of record `id`.
    fn from_view(id: u128, view: Self::View, syms: &mut Symbols) -> Self;
    /// The record's id as a `u128` (rows are kept sorted by it).
    fn id(&self) -> u128;
    /// The symbol of the record's owner (a user id), [`NONE`] without one.
    fn owner(&self) -> u32;
    /// The symbol of the record's team key, [`NONE`] without one.
    fn team(&self) -> u32;
}

/// Which rows of a projection a caller may see. Report code is generic over it, so the
/// unrestricted case ([`Everything`]) compiles to exactly the code without any check.
pub(super) trait Visibility: Copy {
    /// Whether the row is visible.
    fn sees<R: Row>(self, row: &R) -> bool;
}

/// No restriction: every row is visible.
#[derive(Debug, Clone, Copy)]
pub(super) struct Everything;

impl Visibility for Everything {
    #[inline(always)]
    fn sees<R: Row>(self, _row: &R) -> bool {
        true
    }
}

/// The rows a caller limited to their own and their team's records may see, with the
/// caller's user id and team resolved to this projection's symbols once per report, so each
/// row costs two number comparisons instead of string comparisons.
///
/// A row is visible when its owner is the caller or its team is the caller's team, exactly
/// as [`Access::sees`] decides for the un-interned text. `None` stands for "no row has this
/// text" (or the caller has none), which matches nothing: in particular a row without an
/// owner is never the caller's, and a caller without a team shares none.
#[derive(Debug, Clone, Copy)]
pub(super) struct OwnAndTeam {
    user: Option<u32>,
    team: Option<u32>,
}

impl OwnAndTeam {
    /// The visibility of `access` over the rows interned in `syms`; `None` when the access
    /// sees everything.
    pub(super) fn new(access: &Access, syms: &Symbols) -> Option<OwnAndTeam> {
        if access.sees_all {
            return None;
        }
        Some(OwnAndTeam {
            user: access.user.as_deref().and_then(|u| syms.lookup(u)),
            team: access.team.as_deref().and_then(|t| syms.lookup(t)),
        })
    }
}

impl Visibility for OwnAndTeam {
    #[inline]
    fn sees<R: Row>(self, row: &R) -> bool {
        self.user == Some(row.owner()) || self.team == Some(row.team())
    }
}

/// The rows of one record kind as of event `seq`.
pub(super) struct Projection<R> {
    /// The newest event the rows reflect.
    pub(super) seq: u64,
    /// One row per record, in id order.
    pub(super) rows: Vec<R>,
    /// The interned text the rows refer to.
    pub(super) syms: Symbols,
}

impl<R: Row> Projection<R> {
    /// Builds the projection from a full scan.
    pub(super) fn build(store: &Store) -> Result<Self, Error> {
        let mut syms = Symbols::new();
        let mut rows = Vec::new();
        let seq = store.scan_as::<R::View>(R::KIND, |id, view| {
            rows.push(R::from_view(id.as_u128(), view, &mut syms));
            Ok(())
        })?;
        Ok(Projection { seq, rows, syms })
    }

    /// Applies every change committed since `seq`. Reads first and changes nothing unless the
    /// read succeeded, so on error the projection stays whole at its old position.
    pub(super) fn refresh(&mut self, store: &Store) -> Result<(), Error> {
        let mut changes: Vec<(u128, Option<R::View>)> = Vec::new();
        let seq = store.changes_as::<R::View>(R::KIND, self.seq, |id, view| {
            changes.push((id.as_u128(), view));
            Ok(())
        })?;
        let mut gone: Vec<u128> = Vec::new();
        let mut added: Vec<R> = Vec::new();
        // `changes` is in id order, one entry per record, so `gone` and `added` are sorted.
        for (key, view) in changes {
            match (self.rows.binary_search_by_key(&key, R::id), view) {
                (Ok(i), Some(v)) => {
                    let row = R::from_view(key, v, &mut self.syms);
                    if let Some(slot) = self.rows.get_mut(i) {
                        *slot = row;
                    }
                }
                (Ok(_), None) => gone.push(key),
                (Err(_), Some(v)) => added.push(R::from_view(key, v, &mut self.syms)),
                // Created and deleted again since the last refresh.
                (Err(_), None) => {}
            }
        }
        if !gone.is_empty() {
            self.rows.retain(|r| gone.binary_search(&r.id()).is_err());
        }
        if let Some(first) = added.first() {
            // New ids are usually the newest, so appending keeps the order; a backdated
            // import makes older ids, and then a stable sort merges the two sorted runs in
            // linear time.
            let in_order = self.rows.last().is_none_or(|last| last.id() < first.id());
            self.rows.extend(added);
            if !in_order {
                self.rows.sort_by_key(R::id);
            }
        }
        self.seq = seq;
        Ok(())
    }
}

fn micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

/// What deal reports read of a deal.
#[derive(Debug, Clone)]
pub(super) struct DealRow {
    pub(super) id: u128,
    pub(super) amount: Option<Decimal>,
    pub(super) currency: u32,
    pub(super) pipeline: u32,
    pub(super) stage: u32,
    pub(super) owner: u32,
    pub(super) team: u32,
    pub(super) source: u32,
    pub(super) status: DealStatus,
    /// Creation time, µs since the epoch.
    pub(super) created: i64,
    /// When it was won or lost, µs since the epoch.
    pub(super) closed: Option<i64>,
    pub(super) expected_close: Option<NaiveDate>,
}

/// The stored fields a [`DealRow`] is made from (names as in [`crate::entity::Deal`]).
#[derive(Deserialize)]
pub(super) struct DealView {
    created_at: Timestamp,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    amount: Option<Decimal>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    pipeline: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    status: DealStatus,
    #[serde(default)]
    expected_close: Option<NaiveDate>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    closed_at: Option<Timestamp>,
}

impl Row for DealRow {
    const KIND: EntityKind = EntityKind::Deal;
    type View = DealView;

    fn from_view(id: u128, v: DealView, syms: &mut Symbols) -> Self {
        DealRow {
            id,
            amount: v.amount,
            currency: syms.intern(v.currency),
            pipeline: syms.intern(Some(v.pipeline)),
            stage: syms.intern(Some(v.stage)),
            owner: syms.intern(v.owner),
            team: syms.intern(v.team),
            source: syms.intern(v.source),
            status: v.status,
            created: micros(v.created_at),
            closed: v.closed_at.map(micros),
            expected_close: v.expected_close,
        }
    }

    fn id(&self) -> u128 {
        self.id
    }

    fn owner(&self) -> u32 {
        self.owner
    }

    fn team(&self) -> u32 {
        self.team
    }
}

/// What the ticket report reads of a ticket.
#[derive(Debug, Clone)]
pub(super) struct TicketRow {
    pub(super) id: u128,
    pub(super) created: i64,
    pub(super) priority: Priority,
    /// The owner (a user id), which need not be the assignee.
    pub(super) owner: u32,
    pub(super) team: u32,
    pub(super) assignee: u32,
    pub(super) first_response: Option<i64>,
    pub(super) resolved: Option<i64>,
    pub(super) first_response_due: Option<i64>,
    pub(super) resolution_due: Option<i64>,
}

/// The stored fields a [`TicketRow`] is made from.
#[derive(Deserialize)]
pub(super) struct TicketView {
    created_at: Timestamp,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    priority: Priority,
    #[serde(default)]
    assignee: Option<String>,
    #[serde(default)]
    first_response_at: Option<Timestamp>,
    #[serde(default)]
    resolved_at: Option<Timestamp>,
    #[serde(default)]
    first_response_due: Option<Timestamp>,
    #[serde(default)]
    resolution_due: Option<Timestamp>,
}

impl Row for TicketRow {
    const KIND: EntityKind = EntityKind::Ticket;
    type View = TicketView;

    fn from_view(id: u128, v: TicketView, syms: &mut Symbols) -> Self {
        TicketRow {
            id,
            created: micros(v.created_at),
            priority: v.priority,
            owner: syms.intern(v.owner),
            team: syms.intern(v.team),
            assignee: syms.intern(v.assignee),
            first_response: v.first_response_at.map(micros),
            resolved: v.resolved_at.map(micros),
            first_response_due: v.first_response_due.map(micros),
            resolution_due: v.resolution_due.map(micros),
        }
    }

    fn id(&self) -> u128 {
        self.id
    }

    fn owner(&self) -> u32 {
        self.owner
    }

    fn team(&self) -> u32 {
        self.team
    }
}

/// What the interaction report reads of an interaction.
#[derive(Debug, Clone)]
pub(super) struct InteractionRow {
    pub(super) id: u128,
    /// When it happened (its `occurred_at`, else its creation time), µs since the epoch.
    pub(super) at: i64,
    pub(super) kind: Option<InteractionKind>,
    pub(super) direction: Option<Direction>,
    pub(super) owner: u32,
    pub(super) team: u32,
    pub(super) duration_seconds: Option<i64>,
}

/// The stored fields an [`InteractionRow`] is made from.
#[derive(Deserialize)]
pub(super) struct InteractionView {
    created_at: Timestamp,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    kind: Option<InteractionKind>,
    #[serde(default)]
    direction: Option<Direction>,
    #[serde(default)]
    occurred_at: Option<Timestamp>,
    #[serde(default)]
    duration_seconds: Option<i64>,
}

impl Row for InteractionRow {
    const KIND: EntityKind = EntityKind::Interaction;
    type View = InteractionView;

    fn from_view(id: u128, v: InteractionView, syms: &mut Symbols) -> Self {
        InteractionRow {
            id,
            at: micros(v.occurred_at.unwrap_or(v.created_at)),
            kind: v.kind,
            direction: v.direction,
            owner: syms.intern(v.owner),
            team: syms.intern(v.team),
            duration_seconds: v.duration_seconds,
        }
    }

    fn id(&self) -> u128 {
        self.id
    }

    fn owner(&self) -> u32 {
        self.owner
    }

    fn team(&self) -> u32 {
        self.team
    }
}

/// What the new-contacts report reads of a contact.
#[derive(Debug, Clone)]
pub(super) struct ContactRow {
    pub(super) id: u128,
    pub(super) created: i64,
    pub(super) owner: u32,
    pub(super) team: u32,
    pub(super) source: u32,
}

/// The stored fields a [`ContactRow`] is made from.
#[derive(Deserialize)]
pub(super) struct ContactView {
    created_at: Timestamp,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

impl Row for ContactRow {
    const KIND: EntityKind = EntityKind::Contact;
    type View = ContactView;

    fn from_view(id: u128, v: ContactView, syms: &mut Symbols) -> Self {
        ContactRow {
            id,
            created: micros(v.created_at),
            owner: syms.intern(v.owner),
            team: syms.intern(v.team),
            source: syms.intern(v.source),
        }
    }

    fn id(&self) -> u128 {
        self.id
    }

    fn owner(&self) -> u32 {
        self.owner
    }

    fn team(&self) -> u32 {
        self.team
    }
}
