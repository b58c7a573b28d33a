//! Every redb table, its key and value encoding, and the on-disk format version.
//!
//! Records are MessagePack maps with named fields (`rmp_serde::to_vec_named`), so a field added
//! later reads back from old records as its default. Index tables hold no data of their own:
//! every entry is derivable from a record, and the store rewrites them in the same
//! transaction as the record.
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `&str` name | bytes (`format_version`: u32 little-endian) |
//! | `records.<kind>` | id as `u128` | MessagePack record |
//! | `idx.unique` | (index, value) | id `u128` |
//! | `idx.text` | (index, value, id) | `()` |
//! | `idx.ref` | (target id, timeline time µs, source id) | source kind tag `u8` |
//! | `idx.time` | (index, time µs, id) | `()` |
//! | `events` | sequence `u64` | MessagePack event |
//! | `idx.events_by_record` | (record id, sequence) | `()` |
//! | `field_defs` | (kind, name) | MessagePack field definition |
//! | `pipelines` | key | MessagePack pipeline |
//! | `plugins` | plugin id | MessagePack plugin record |
//! | `plugin_blobs` | SHA-256 hex | WebAssembly binary |
//! | `plugin_kv` | (plugin id, key) | bytes the plugin stored |
//! | `scores` | (record id, `plugin/scorer`) | MessagePack score |
//! | `plugin_delivery` | plugin id | MessagePack delivery state (event cursor, recent failures) |
//! | `timers` | (plugin id, due µs, timer id) | MessagePack timer |
//! | `timer_keys` | (plugin id, key) | (due µs, timer id) of the pending timer with that key |
//! | `users` | user id `u128` | MessagePack user (password as an Argon2id PHC string) |
//! | `user_emails` | email, lower-cased | user id `u128` |
//! | `teams` | team key | MessagePack team |
//! | `tokens` | token id `u128` | MessagePack token (SHA-256 of the secret, never the secret) |
//! | `sessions` | SHA-256 of the session secret | MessagePack session |
//!
//! `meta` also holds `org_settings` (MessagePack organisation settings) once they are set,
//! and `wal_batch` (u64 little-endian): the number of the newest batch the file holds, which
//! tells replay where the write-ahead log (`kith.wal`, see `store::wal`) takes over.
//!
//! Format history: 2 added the write-ahead log beside the file (the tables are unchanged, so
//! opening a version-1 file only rewrites the number); a version-1 build must not open a
//! version-2 directory, since it would ignore the log.

use redb::TableDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::entity::EntityKind;
use crate::error::StoreError;

/// The on-disk format this build writes. Bump it with every incompatible change and teach
/// `Store::open` to migrate from the previous one.
pub const FORMAT_VERSION: u32 = 2;

/// Database-wide settings, starting with the format version.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The key of the format version in [`META`].
pub const FORMAT_KEY: &str = "format_version";

const CONTACTS: TableDefinition<u128, &[u8]> = TableDefinition::new("records.contact");
const COMPANIES: TableDefinition<u128, &[u8]> = TableDefinition::new("records.company");
const DEALS: TableDefinition<u128, &[u8]> = TableDefinition::new("records.deal");
const TICKETS: TableDefinition<u128, &[u8]> = TableDefinition::new("records.ticket");
const INTERACTIONS: TableDefinition<u128, &[u8]> = TableDefinition::new("records.interaction");
const TASKS: TableDefinition<u128, &[u8]> = TableDefinition::new("records.task");

/// The record table of a kind.
pub fn records(kind: EntityKind) -> TableDefinition<'static, u128, &'static [u8]> {
    match kind {
        EntityKind::Contact => CONTACTS,
        EntityKind::Company => COMPANIES,
        EntityKind::Deal => DEALS,
        EntityKind::Ticket => TICKETS,
        EntityKind::Interaction => INTERACTIONS,
        EntityKind::Task => TASKS,
    }
}

/// Unique values (contact email, lower-cased) to the id holding them.
pub const UNIQUE: TableDefinition<(&str, &str), u128> = TableDefinition::new("idx.unique");
/// Non-unique text values: deal stage and status, ticket status and assignee, company domain.
pub const TEXT: TableDefinition<(&str, &str, u128), ()> = TableDefinition::new("idx.text");
/// References between records, ordered by the referencing record's timeline time.
pub const REFS: TableDefinition<(u128, i64, u128), u8> = TableDefinition::new("idx.ref");
/// Points in time: task due times.
pub const TIME: TableDefinition<(&str, i64, u128), ()> = TableDefinition::new("idx.time");
/// The event log.
pub const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// Events of each record, for timelines and history.
pub const EVENTS_BY_RECORD: TableDefinition<(u128, u64), ()> =
    TableDefinition::new("idx.events_by_record");
/// Custom field definitions.
pub const FIELD_DEFS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("field_defs");
/// Deal pipelines.
pub const PIPELINES: TableDefinition<&str, &[u8]> = TableDefinition::new("pipelines");

/// Installed plugins.
pub const PLUGINS: TableDefinition<&str, &[u8]> = TableDefinition::new("plugins");
/// Plugin binaries by content hash, shared by installs of identical bytes.
pub const PLUGIN_BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("plugin_blobs");
/// Each plugin's private key-value storage.
pub const PLUGIN_KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("plugin_kv");
/// Scores that plugins' scorers gave records.
pub const SCORES: TableDefinition<(u128, &str), &[u8]> = TableDefinition::new("scores");
/// Each workflow plugin's place in the event log and its recent delivery failures.
pub const PLUGIN_DELIVERY: TableDefinition<&str, &[u8]> = TableDefinition::new("plugin_delivery");
/// Pending timers, per plugin in due order.
pub const TIMERS: TableDefinition<(&str, i64, u128), &[u8]> = TableDefinition::new("timers");
/// Keyed timers: which pending timer holds each (plugin, key).
pub const TIMER_KEYS: TableDefinition<(&str, &str), (i64, u128)> =
    TableDefinition::new("timer_keys");

/// Users.
pub const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
/// Users by lower-cased email (unique).
pub const USER_EMAILS: TableDefinition<&str, u128> = TableDefinition::new("user_emails");
/// Teams by key.
pub const TEAMS: TableDefinition<&str, &[u8]> = TableDefinition::new("teams");
/// API tokens by id.
pub const TOKENS: TableDefinition<u128, &[u8]> = TableDefinition::new("tokens");
/// Sign-in sessions by the hash of their secret.
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// The key of the organisation settings in [`META`].
pub const ORG_SETTINGS_KEY: &str = "org_settings";

/// Encodes a value for storage.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::with_capacity(128);
    encode_into(&mut buf, v)?;
    Ok(buf)
}

/// Encodes a value for storage into `buf` (emptied first), so the write path can reuse one
/// buffer instead of growing a fresh one for every record and event it stores.
pub fn encode_into<T: Serialize>(buf: &mut Vec<u8>, v: &T) -> Result<(), StoreError> {
    buf.clear();
    rmp_serde::encode::write_named(buf, v).map_err(|e| StoreError::Corrupt {
        what: "value to store".to_owned(),
        reason: e.to_string(),
    })
}

/// Decodes a stored value; `what` names it in the error.
pub fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what: what(),
        reason: e.to_string(),
    })
}
