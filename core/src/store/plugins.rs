//! Plugin state in the store: installed plugins, their binaries, private key-value storage
//! and the scores their scorers leave on records. Written only through [`Command`]s, so it
//! shares the writer's batches, transactions and durability.
//!
//! [`Command`]: super::Command

use std::collections::BTreeSet;

use redb::{ReadableTable, Table};

use super::read::Reader;
use super::tables::{self, decode, encode};
use super::write::Tables;
use crate::custom::FieldDef;
use crate::entity::EntityKind;
use crate::error::Error;
use crate::id::Id;
use crate::plugin::{PluginRecord, ScoreBatch, StoredScore, check_plugin_id, score_key};

impl Tables<'_> {
    pub(super) fn put_plugin(
        &mut self,
        plugin: PluginRecord,
        wasm: Option<Vec<u8>>,
        fields: Option<Vec<FieldDef>>,
        last_seq: u64,
    ) -> Result<PluginRecord, Error> {
        check_plugin_id(&plugin.id)?;
        let mut plugins = self.txn.open_table(tables::PLUGINS)?;
        let old: Option<PluginRecord> = match plugins.get(plugin.id.as_str())? {
            Some(v) => Some(decode(v.value(), || format!("plugin {}", plugin.id))?),
            None => None,
        };
        if wasm.is_none() && old.as_ref().is_none_or(|o| o.wasm_hash != plugin.wasm_hash) {
            return Err(Error::invalid(
                "wasm",
                format!("plugin '{}' needs its WebAssembly binary", plugin.id),
            ));
        }
        // Check everything before the first write, so a refusal leaves nothing behind.
        if let Some(fields) = &fields {
            self.check_plugin_fields(&plugin.id, fields)?;
        }
        let mut blobs = self.txn.open_table(tables::PLUGIN_BLOBS)?;
        if let Some(bytes) = wasm {
            blobs.insert(plugin.wasm_hash.as_str(), bytes.as_slice())?;
        }
        let bytes = encode(&plugin)?;
        plugins.insert(plugin.id.as_str(), bytes.as_slice())?;
        if let Some(old) = old
            && old.wasm_hash != plugin.wasm_hash
        {
            drop_unused_blob(&plugins, &mut blobs, &old.wasm_hash)?;
        }
        if let Some(fields) = fields {
            self.replace_plugin_fields(&plugin.id, fields)?;
        }
        self.init_delivery(&plugin.id, last_seq)?;
        Ok(plugin)
    }

    /// A plugin's field must not take a name another owner (a person or another plugin)
    /// already uses for that kind.
    fn check_plugin_fields(&self, plugin: &str, fields: &[FieldDef]) -> Result<(), Error> {
        let mut seen = BTreeSet::new();
        for f in fields {
            if f.plugin.as_deref() != Some(plugin) {
                return Err(Error::invalid(
                    "fields",
                    format!("field {}.{} must name plugin '{plugin}'", f.kind, f.name),
                ));
            }
            if !seen.insert((f.kind, f.name.as_str())) {
                return Err(Error::invalid(
                    "fields",
                    format!("field {}.{} is declared twice", f.kind, f.name),
                ));
            }
            if let Some(v) = self.fields.get((f.kind.name(), f.name.as_str()))? {
                let existing: FieldDef =
                    decode(v.value(), || format!("custom field {}.{}", f.kind, f.name))?;
                if existing.plugin.as_deref() != Some(plugin) {
                    let owner = existing
                        .plugin
                        .map_or_else(|| "an admin".to_owned(), |p| format!("plugin '{p}'"));
                    return Err(Error::Conflict {
                        field: "fields".to_owned(),
                        message: format!("{}.{} is already defined by {owner}", f.kind, f.name),
                    });
                }
            }
        }
        Ok(())
    }

    /// Makes the plugin's field definitions exactly `fields`.
    fn replace_plugin_fields(&mut self, plugin: &str, fields: Vec<FieldDef>) -> Result<(), Error> {
        let mut stale = Vec::new();
        for entry in self.fields.iter()? {
            let (key, value) = entry?;
            let (kind, name) = key.value();
            let def: FieldDef = decode(value.value(), || format!("custom field {kind}.{name}"))?;
            if def.plugin.as_deref() == Some(plugin)
                && !fields
                    .iter()
                    .any(|f| f.kind == def.kind && f.name == def.name)
            {
                stale.push((kind.to_owned(), name.to_owned()));
            }
        }
        for (kind, name) in &stale {
            self.fields.remove((kind.as_str(), name.as_str()))?;
        }
        for f in fields {
            let bytes = encode(&f)?;
            self.fields
                .insert((f.kind.name(), f.name.as_str()), bytes.as_slice())?;
        }
        self.defs.clear();
        Ok(())
    }

    pub(super) fn remove_plugin(&mut self, id: &str) -> Result<(), Error> {
        let mut plugins = self.txn.open_table(tables::PLUGINS)?;
        let old: PluginRecord = match plugins.remove(id)? {
            Some(v) => decode(v.value(), || format!("plugin {id}"))?,
            None => {
                return Err(Error::NoSuch {
                    what: "plugin",
                    name: id.to_owned(),
                });
            }
        };
        let mut blobs = self.txn.open_table(tables::PLUGIN_BLOBS)?;
        drop_unused_blob(&plugins, &mut blobs, &old.wasm_hash)?;
        self.replace_plugin_fields(id, Vec::new())?;
        let mut kv = self.txn.open_table(tables::PLUGIN_KV)?;
        kv.retain_in((id, "")..(id, "\u{10FFFF}"), |_, _| false)?;
        let prefix = format!("{id}/");
        let mut scores = self.txn.open_table(tables::SCORES)?;
        scores.retain(|(_, key), _| !key.starts_with(&prefix))?;
        drop(scores);
        self.remove_delivery(id)?;
        Ok(())
    }

    pub(super) fn plugin_kv(
        &mut self,
        plugin: &str,
        set: Vec<(String, Vec<u8>)>,
        delete: Vec<String>,
        quota: usize,
    ) -> Result<(), Error> {
        let mut kv = self.txn.open_table(tables::PLUGIN_KV)?;
        let mut used = 0usize;
        for entry in kv.range((plugin, "")..(plugin, "\u{10FFFF}"))? {
            let (k, v) = entry?;
            let key = k.value().1;
            if !delete.iter().any(|d| d == key) && !set.iter().any(|(s, _)| s == key) {
                used += key.len() + v.value().len();
            }
        }
        let adding: usize = set.iter().map(|(k, v)| k.len() + v.len()).sum();
        if used + adding > quota {
            return Err(Error::invalid(
                "kv",
                format!(
                    "plugin '{plugin}' would store {} bytes, over its {quota}-byte quota",
                    used + adding
                ),
            ));
        }
        for key in &delete {
            kv.remove((plugin, key.as_str()))?;
        }
        for (key, value) in &set {
            kv.insert((plugin, key.as_str()), value.as_slice())?;
        }
        Ok(())
    }

    pub(super) fn put_scores(&mut self, batch: ScoreBatch) -> Result<(), Error> {
        let key = score_key(&batch.plugin, &batch.scorer);
        let mut scores = self.txn.open_table(tables::SCORES)?;
        for (id, score) in batch.scores {
            // A record deleted since it was scored keeps no score.
            if self.table(batch.kind)?.get(id.as_u128())?.is_none() {
                continue;
            }
            let bytes = encode(&score)?;
            scores.insert((id.as_u128(), key.as_str()), bytes.as_slice())?;
            self.touched.push(id);
        }
        Ok(())
    }

    pub(super) fn remove_scores_of(&mut self, id: Id) -> Result<(), Error> {
        let raw = id.as_u128();
        let mut scores = self.scores()?;
        // Removed key by key (not `retain_in`) so each removal reaches the log.
        let mut keys = Vec::new();
        for entry in scores.range((raw, "")..(raw, "\u{10FFFF}"))? {
            keys.push(entry?.0.value().1.to_owned());
        }
        for key in keys {
            scores.remove((raw, key.as_str()))?;
        }
        self.touched.push(id);
        Ok(())
    }
}

/// Removes a binary when no installed plugin refers to it any more.
fn drop_unused_blob(
    plugins: &Table<'_, &'static str, &'static [u8]>,
    blobs: &mut Table<'_, &'static str, &'static [u8]>,
    hash: &str,
) -> Result<(), Error> {
    for entry in plugins.iter()? {
        let (k, v) = entry?;
        let p: PluginRecord = decode(v.value(), || format!("plugin {}", k.value()))?;
        if p.wasm_hash == hash {
            return Ok(());
        }
    }
    blobs.remove(hash)?;
    Ok(())
}

impl Reader {
    pub(crate) fn plugins(&self) -> Result<Vec<PluginRecord>, Error> {
        let t = self.txn.open_table(tables::PLUGINS)?;
        let mut out = Vec::new();
        for entry in t.iter()? {
            let (k, v) = entry?;
            out.push(decode(v.value(), || format!("plugin {}", k.value()))?);
        }
        Ok(out)
    }

    pub(crate) fn plugin(&self, id: &str) -> Result<Option<PluginRecord>, Error> {
        let t = self.txn.open_table(tables::PLUGINS)?;
        match t.get(id)? {
            Some(v) => Ok(Some(decode(v.value(), || format!("plugin {id}"))?)),
            None => Ok(None),
        }
    }

    pub(crate) fn plugin_wasm(&self, hash: &str) -> Result<Option<Vec<u8>>, Error> {
        let t = self.txn.open_table(tables::PLUGIN_BLOBS)?;
        Ok(t.get(hash)?.map(|v| v.value().to_vec()))
    }

    pub(crate) fn plugin_kv(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let t = self.txn.open_table(tables::PLUGIN_KV)?;
        Ok(t.get((plugin, key))?.map(|v| v.value().to_vec()))
    }

    pub(crate) fn plugin_kv_usage(&self, plugin: &str) -> Result<usize, Error> {
        let t = self.txn.open_table(tables::PLUGIN_KV)?;
        let mut used = 0;
        for entry in t.range((plugin, "")..(plugin, "\u{10FFFF}"))? {
            let (k, v) = entry?;
            used += k.value().1.len() + v.value().len();
        }
        Ok(used)
    }

    pub(crate) fn scores(&self, id: Id) -> Result<Vec<(String, StoredScore)>, Error> {
        let t = self.txn.open_table(tables::SCORES)?;
        let raw = id.as_u128();
        let mut out = Vec::new();
        for entry in t.range((raw, "")..(raw, "\u{10FFFF}"))? {
            let (k, v) = entry?;
            let key = k.value().1.to_owned();
            out.push((
                key.clone(),
                decode(v.value(), || format!("score {key} of {id}"))?,
            ));
        }
        Ok(out)
    }

    /// Records of `kind` that refer to `target` (for rescoring what a change touches).
    pub(crate) fn referrers_of(&self, target: Id, kind: EntityKind) -> Result<Vec<Id>, Error> {
        self.referrers(target, Some(kind))
    }
}
