//! Installed plugins as data: what the store keeps about each one, the scores scorers leave on
//! records, and the hook through which validators and computed fields join the write path.
//!
//! The core never runs plugin code and knows nothing of WebAssembly. It stores a plugin's
//! manifest text, its binary (by content hash), what the admin granted, its settings and its
//! state, and calls a [`WriteHook`] that the host implements.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::entity::{AnyRecord, EntityKind};
use crate::error::Error;
use crate::pipeline::is_slug;
use crate::value::Value;

/// An installed plugin, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginRecord {
    /// Its id from the manifest (a slug, unique per installation).
    pub id: String,
    /// Its version from the manifest.
    pub version: String,
    /// The manifest (`kith-plugin.toml`) as uploaded; the host parses it.
    pub manifest: String,
    /// The SHA-256 of its WebAssembly binary, lower-case hex; the key of the stored binary.
    pub wasm_hash: String,
    /// The capabilities the admin granted (`read:contact`, `action:create-task`).
    pub granted: Vec<String>,
    /// Current setting values by name.
    pub settings: BTreeMap<String, Value>,
    /// Whether it runs at all.
    pub enabled: bool,
    /// Set when repeated failures suspended it; cleared by an admin's resume.
    #[serde(default)]
    pub suspended: Option<Suspension>,
    /// Tighter limits an admin set for this plugin (the server's ceiling applies anyway).
    #[serde(default)]
    pub limits: PluginLimits,
    /// When it was first installed.
    pub installed_at: Timestamp,
    /// When it was last installed, upgraded or reconfigured.
    pub updated_at: Timestamp,
}

/// Per-plugin limits; `None` means the server's own limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginLimits {
    /// Time limit of a hook call, in milliseconds.
    #[serde(default)]
    pub hook_timeout_ms: Option<u64>,
    /// Memory cap, in MiB.
    #[serde(default)]
    pub memory_mib: Option<u64>,
}

/// Why and when a plugin was suspended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspension {
    /// The failure that tipped it over, with the count.
    pub reason: String,
    /// When.
    pub at: Timestamp,
}

/// A score a plugin's scorer gave one record, with its reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredScore {
    /// 0 to 100.
    pub value: u8,
    /// Points and why, in the order the scorer gave them.
    pub reasons: Vec<ScoreReason>,
    /// When it was computed.
    pub at: Timestamp,
}

/// One line of a score's explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreReason {
    /// Points it added (or took away).
    pub points: i32,
    /// Why, for a person.
    pub reason: String,
}

/// The scores of one scorer for many records (ids the store no longer holds are skipped).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreBatch {
    /// The plugin.
    pub plugin: String,
    /// The scorer, as the plugin names it.
    pub scorer: String,
    /// The scored kind.
    pub kind: EntityKind,
    /// The scores by record.
    pub scores: Vec<(crate::id::Id, StoredScore)>,
}

/// The key a score is stored and shown under: `plugin/scorer`.
pub fn score_key(plugin: &str, scorer: &str) -> String {
    format!("{plugin}/{scorer}")
}

/// Checks a plugin id: a slug of lower-case letters, digits, `-` and `_`.
pub fn check_plugin_id(id: &str) -> Result<(), Error> {
    if is_slug(id) {
        Ok(())
    } else {
        Err(Error::invalid(
            "id",
            format!(
                "'{id}' must be 1-64 lower-case letters, digits, '-' or '_', starting with a letter"
            ),
        ))
    }
}

/// Code that runs inside the write path before commit: plugin validators and computed fields.
///
/// The writer calls it for every create and update of a kind it [applies to](Self::applies_to),
/// after the core's own checks and before anything is written, so a rejection leaves nothing
/// behind and a computed value always matches the record it was computed from. It runs on
/// the writer thread, inside the batch's transaction: it must not wait for the store's writer.
pub trait WriteHook: Send + Sync {
    /// Whether anything runs for writes of `kind`; called for every write, so keep it cheap.
    fn applies_to(&self, kind: EntityKind) -> bool;

    /// Checks a record about to be stored (`before` is the stored version on update) and
    /// returns values for computed custom fields. An `Err` rejects the write.
    fn before_write(
        &self,
        record: &AnyRecord,
        before: Option<&AnyRecord>,
        now: Timestamp,
    ) -> Result<BTreeMap<String, Value>, Error>;

    /// A computed value was refused by its field's definition (so it stays unset).
    fn computed_rejected(&self, kind: EntityKind, field: &str, error: &Error) {
        tracing::warn!(%kind, field, %error, "a computed field value was refused");
    }
}
