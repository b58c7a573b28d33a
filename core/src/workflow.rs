//! Workflow delivery as data: a plugin's place in the event log, the effects its calls ask
//! for, its durable timers, and its recent failures.
//!
//! The host calls workflow plugins; the core makes the outcome exactly-once. A
//! [`Delivery`] carries one call's effects together with the cursor (or fired timer) they
//! answer, and the store applies both in one transaction, checking that the cursor is still
//! where the caller read it. So after any crash an event has either been handled (its
//! effects and the cursor past it are stored) or not (neither is), and a retried call can
//! never apply its effects twice.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::entity::EntityKind;
use crate::id::Id;
use crate::store::Input;

/// How long a chain of plugin reactions may grow: an event caused by a plugin's action
/// caused by another plugin's action ... is cut off past this depth, as Salesforce stops
/// recursive triggers at 16.
pub const MAX_CHAIN_DEPTH: u8 = 16;

/// The most bytes of a timer's payload.
pub const MAX_TIMER_PAYLOAD: usize = 64 << 10;

/// The most characters of a timer's key.
pub const MAX_TIMER_KEY: usize = 200;

/// How many recent failures a plugin's delivery state keeps.
pub const KEPT_FAILURES: usize = 20;

/// One change a workflow plugin asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Create a record (a task, an interaction).
    Create {
        /// Its kind.
        kind: EntityKind,
        /// Its fields.
        input: Input,
    },
    /// Change fields of a record (also owner, ticket status, a deal's stage).
    Update {
        /// Its kind.
        kind: EntityKind,
        /// Its id.
        id: Id,
        /// The fields to change.
        input: Input,
    },
    /// Add or remove one tag, read and written in the same transaction so concurrent tag
    /// changes do not overwrite each other.
    Tag {
        /// The record's kind (contact, company, deal or ticket).
        kind: EntityKind,
        /// Its id.
        id: Id,
        /// The tag.
        tag: String,
        /// Add (true) or remove (false).
        add: bool,
    },
    /// Store a timer; with a key, it replaces the plugin's pending timer of that key.
    Schedule {
        /// When it fires.
        at: Timestamp,
        /// Handed back to the plugin.
        payload: String,
        /// Optional key for replacing and cancelling.
        key: Option<String>,
    },
    /// Remove the plugin's pending timer with this key, if any.
    CancelTimer {
        /// The key it was scheduled with.
        key: String,
    },
}

impl Effect {
    /// Whether applying it writes a record (and so can fail validation after an earlier
    /// effect of the same call was written).
    pub fn writes_record(&self) -> bool {
        matches!(
            self,
            Effect::Create { .. } | Effect::Update { .. } | Effect::Tag { .. }
        )
    }
}

/// Which timer fired: its key in the timer table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerRef {
    /// When it was due, µs since the epoch.
    pub at: i64,
    /// Its id.
    pub id: u128,
}

/// A stored timer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTimer {
    /// When it fires.
    pub at: Timestamp,
    /// What to hand back.
    pub payload: String,
    /// The key it was scheduled with.
    pub key: Option<String>,
    /// When it was scheduled.
    pub created_at: Timestamp,
}

/// The outcome of one workflow call, applied by [`crate::Command::Deliver`] in one
/// transaction: every effect, the plugin's storage changes, and the cursor move or the
/// removal of the fired timer — all, or none.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The plugin.
    pub plugin: String,
    /// For events: the cursor the caller read, and the new one (the sequence number of the
    /// last event handled). Refused with a conflict when the stored cursor differs, so a
    /// stale or repeated delivery applies nothing.
    pub cursor: Option<(u64, u64)>,
    /// For a timer: the one that fired. Refused with a conflict when it is already gone.
    pub timer: Option<TimerRef>,
    /// The depth of the chain the effects continue: the triggering event's depth plus one.
    pub depth: u8,
    /// What the plugin asked for, in order.
    pub effects: Vec<Effect>,
    /// Private storage changes the call made: keys to set and keys to delete.
    pub kv: Vec<(String, Option<Vec<u8>>)>,
    /// The plugin's storage quota in bytes (checked when `kv` is not empty).
    pub kv_quota: usize,
    /// A failure to record along with the move (a chain cut off at [`MAX_CHAIN_DEPTH`]).
    pub note: Option<DeliveryFailure>,
}

impl Delivery {
    /// Whether the writer must run it in a transaction of its own: with two or more writes
    /// that can fail, a later one may fail validation after an earlier one was written, and
    /// only aborting the transaction takes the earlier one back.
    pub fn needs_own_transaction(&self) -> bool {
        let writes = self.effects.iter().filter(|e| e.writes_record()).count();
        // Storage changes are checked (quota) and written before the effects, so with any
        // record write after them they too need the transaction to be abortable.
        writes + usize::from(!self.kv.is_empty()) > 1
    }
}

/// A failed (or cut-off) delivery, kept for admins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryFailure {
    /// When.
    pub at: Timestamp,
    /// The event it was about, if any.
    pub seq: Option<u64>,
    /// The timer payload's first characters, when a timer call failed.
    #[serde(default)]
    pub timer: Option<String>,
    /// What went wrong.
    pub message: String,
}

/// A plugin's place in the event log and its recent failures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryState {
    /// The sequence number of the last event handled.
    pub cursor: u64,
    /// Recent failures, oldest first (at most [`KEPT_FAILURES`]).
    #[serde(default)]
    pub failures: Vec<DeliveryFailure>,
}

impl DeliveryState {
    /// Adds a failure, dropping the oldest past [`KEPT_FAILURES`].
    pub fn push_failure(&mut self, f: DeliveryFailure) {
        if self.failures.len() >= KEPT_FAILURES {
            self.failures.remove(0);
        }
        self.failures.push(f);
    }
}
