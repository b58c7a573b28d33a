//! Installed plugins at run time: install, upgrade, enable, disable, settings, uninstall;
//! the write hook that runs validators and computed fields; scoring; health and metrics.
//!
//! The store is the source of truth (plugin records, binaries, private storage, scores); the
//! registry keeps each installed plugin compiled and configured in memory as an
//! `Arc<Active>`. A call clones the `Arc` first, so an upgrade swaps in the new version while
//! calls already running finish on the old one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kith_core::custom::{FieldType, NewFieldDef};
use kith_core::plugin::{
    PluginLimits, PluginRecord, ScoreBatch, ScoreReason, StoredScore, Suspension,
};
use kith_core::{
    AnyRecord, Command, EntityKind, Error as CoreError, FieldDef, Id, Outcome, Query, Store,
    Timestamp, Value, WriteHook,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::convert::{entity_from_record, kind_from_wit, kind_to_wit, value_from_wit};
use super::manifest::{Manifest, ManifestError};
use super::runtime::{
    CallReport, KvAccess, Limits, LoadedPlugin, PluginError, Runtime, StoreAccess,
};
use super::wit::kith::plugin::types as w;

/// Failures in a row after which a plugin is suspended until an admin resumes it.
pub const SUSPEND_AFTER: u32 = 5;

/// Largest plugin binary accepted, in bytes.
pub const MAX_WASM: usize = 32 << 20;

/// Records scored per `score` call.
const SCORE_BATCH: usize = 64;

/// The actor plugin-made changes carry in the event log.
const ACTOR: &str = "plugins";

/// Why a plugin operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The manifest is malformed.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The binary cannot be loaded, or disagrees with its manifest.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The binary and the manifest disagree.
    #[error("plugin {plugin}: {message}")]
    Mismatch {
        /// The plugin.
        plugin: String,
        /// How.
        message: String,
    },
    /// Capabilities the manifest requests were not all granted.
    #[error(
        "plugin {plugin} requests {} and needs every one granted; not granted: {}",
        requested.join(", "), missing.join(", ")
    )]
    NotGranted {
        /// The plugin.
        plugin: String,
        /// Everything it requests.
        requested: Vec<String>,
        /// What was not granted.
        missing: Vec<String>,
    },
    /// Installing what is already installed, or upgrading what is not.
    #[error("plugin {plugin}: {message}")]
    State {
        /// The plugin.
        plugin: String,
        /// What is wrong.
        message: String,
    },
    /// No such plugin.
    #[error("no plugin named '{0}' is installed")]
    NotFound(String),
    /// A setting value does not fit its definition.
    #[error("plugin {plugin}: setting {setting}: {message}")]
    Setting {
        /// The plugin.
        plugin: String,
        /// The setting.
        setting: String,
        /// What is wrong.
        message: String,
    },
    /// The binary is over [`MAX_WASM`].
    #[error("the plugin binary is {0} bytes; the limit is {MAX_WASM}")]
    TooLarge(usize),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] CoreError),
}

/// Whether an install may replace an installed version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallMode {
    /// Only a plugin not yet installed.
    New,
    /// Only replacing an installed plugin of the same id.
    Upgrade,
}

/// Per-plugin call statistics and failure state, kept in memory (the suspension is also stored).
#[derive(Default)]
pub(super) struct Health {
    calls: u64,
    failures: u64,
    pub(super) consecutive: u32,
    last_error: Option<(String, Timestamp)>,
    /// Recent call durations in µs, newest last (a window for percentiles).
    recent: std::collections::VecDeque<u64>,
    suspended: Option<Suspension>,
}

/// How many recent calls the latency percentiles cover.
const LATENCY_WINDOW: usize = 1000;

/// One installed plugin, compiled and configured.
pub(super) struct Active {
    pub(super) record: PluginRecord,
    manifest: Manifest,
    info: Option<w::PluginInfo>,
    plugin: Option<LoadedPlugin>,
    load_error: Option<String>,
    pub(super) health: Arc<Mutex<Health>>,
}

impl Active {
    /// What the plugin declared, when it loaded.
    pub(super) fn info_ref(&self) -> Option<&w::PluginInfo> {
        self.info.as_ref()
    }

    /// The loaded plugin, when it loaded.
    pub(super) fn plugin_ref(&self) -> Option<&LoadedPlugin> {
        self.plugin.as_ref()
    }

    pub(super) fn running(&self) -> Option<(&LoadedPlugin, &w::PluginInfo)> {
        if !self.record.enabled || lock(&self.health).suspended.is_some() {
            return None;
        }
        Some((self.plugin.as_ref()?, self.info.as_ref()?))
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The installed plugins; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    runtime: Runtime,
    store: Store,
    cache_dir: PathBuf,
    active: RwLock<BTreeMap<String, Arc<Active>>>,
    compiled: Mutex<HashMap<String, Component>>,
    /// Bit `tag` is set when some running plugin validates or computes fields of that kind.
    hook_kinds: AtomicU8,
    /// Scoring work for the background scorer.
    scoring: Mutex<Option<std::sync::mpsc::Sender<ScoreWork>>>,
}

enum ScoreWork {
    /// Rescore every record a plugin scores.
    All { plugin: String },
}

/// A plugin as the API and CLI show it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginView {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Version.
    pub version: String,
    /// WIT version it was built against.
    pub wit: String,
    /// What it does.
    pub description: String,
    /// `active`, `disabled`, `suspended` or `failed` (could not be loaded).
    pub status: &'static str,
    /// Whether an admin enabled it.
    pub enabled: bool,
    /// Why it is suspended or failed.
    pub status_reason: Option<String>,
    /// Capabilities it requests.
    pub requested: Vec<String>,
    /// Capabilities granted.
    pub granted: Vec<String>,
    /// Settings with their definitions and current values.
    pub settings: Vec<SettingView>,
    /// Custom fields it declares, as `kind.name`.
    pub fields: Vec<String>,
    /// Scorers, as `plugin/scorer` keys with the kind scored.
    pub scorers: Vec<ScorerView>,
    /// Report ids.
    pub reports: Vec<String>,
    /// Kinds it validates.
    pub validates: Vec<EntityKind>,
    /// Kinds whose events it receives as a workflow (see `/plugins/{id}/delivery`).
    pub subscriptions: Vec<EntityKind>,
    /// Call statistics.
    pub metrics: MetricsView,
    /// The limits its calls run under.
    pub limits: LimitsView,
    /// SHA-256 of its binary.
    pub wasm_sha256: String,
    /// First install.
    pub installed_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A setting as shown.
#[derive(Debug, Clone, Serialize)]
pub struct SettingView {
    /// Name.
    pub name: String,
    /// Label.
    pub label: String,
    /// Type.
    #[serde(rename = "type")]
    pub setting_type: &'static str,
    /// Current value.
    pub value: Value,
    /// Default value.
    pub default: Value,
    /// Options of a choice.
    pub options: Vec<String>,
    /// Help text.
    pub help: Option<String>,
}

/// A scorer as shown.
#[derive(Debug, Clone, Serialize)]
pub struct ScorerView {
    /// The key scores are stored under (`plugin/scorer`).
    pub key: String,
    /// The kind it scores.
    pub kind: EntityKind,
    /// What it measures.
    pub description: String,
}

/// Limits as shown.
#[derive(Debug, Clone, Serialize)]
pub struct LimitsView {
    /// Time limit of a hook call, in milliseconds.
    pub hook_timeout_ms: u64,
    /// Memory cap, in MiB.
    pub memory_mib: u64,
    /// Whether these are the plugin's own (set by an admin) rather than the server's.
    pub custom: bool,
}

/// Call statistics as shown.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsView {
    /// Calls since the server started.
    pub calls: u64,
    /// Failed calls since the server started.
    pub failures: u64,
    /// Failures in a row (it is suspended at [`SUSPEND_AFTER`]).
    pub consecutive_failures: u32,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<Timestamp>,
    /// Median call time over the recent window, in microseconds.
    pub p50_us: Option<u64>,
    /// 99th percentile call time over the recent window, in microseconds.
    pub p99_us: Option<u64>,
}

impl Registry {
    /// Loads every installed plugin from the store; `cache_dir` keeps compiled code.
    /// A plugin that fails to load is kept, shown as `failed`, and never called.
    pub fn open(runtime: Runtime, store: Store, cache_dir: PathBuf) -> Result<Registry, CoreError> {
        let registry = Registry {
            inner: Arc::new(Inner {
                runtime,
                store: store.clone(),
                cache_dir,
                active: RwLock::new(BTreeMap::new()),
                compiled: Mutex::new(HashMap::new()),
                hook_kinds: AtomicU8::new(0),
                scoring: Mutex::new(None),
            }),
        };
        for record in store.plugins()? {
            let id = record.id.clone();
            let active = registry.activate(record, None);
            if let Some(e) = &active.load_error {
                tracing::error!(plugin = %id, error = %e, "plugin failed to load");
            }
            registry.put_active(active);
        }
        Ok(registry)
    }

    /// Starts the background scorer: it follows the event log and rescores what each change
    /// touches. Stops when the registry's last handle is dropped or the store closes.
    pub fn start_scoring(&self) -> Result<(), CoreError> {
        let (tx, rx) = std::sync::mpsc::channel();
        *lock(&self.inner.scoring) = Some(tx);
        let weak = Arc::downgrade(&self.inner);
        let mut cursor = self.inner.store.last_event_seq()?;
        std::thread::Builder::new()
            .name("kith-scoring".to_owned())
            .spawn(move || {
                loop {
                    let work = rx.recv_timeout(Duration::from_millis(100));
                    let Some(inner) = weak.upgrade() else { break };
                    let registry = Registry { inner };
                    match work {
                        Ok(ScoreWork::All { plugin }) => {
                            if let Err(e) = registry.rescore_plugin(&plugin, None, &|_, _| {}) {
                                tracing::warn!(plugin, error = %e, "rescoring failed");
                            }
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                    match registry.follow_events(cursor) {
                        Ok(next) => cursor = next,
                        Err(CoreError::ShuttingDown) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "scoring could not read the event log")
                        }
                    }
                }
            })
            .map_err(|e| CoreError::invalid("scoring", e.to_string()))?;
        Ok(())
    }

    pub(super) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(super) fn all(&self) -> Vec<Arc<Active>> {
        self.inner
            .active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub(super) fn get_active(&self, id: &str) -> Result<Arc<Active>, RegistryError> {
        self.inner
            .active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(id.to_owned()))
    }

    fn put_active(&self, active: Arc<Active>) {
        let mut map = self.inner.active.write().unwrap_or_else(|p| p.into_inner());
        map.insert(active.record.id.clone(), active);
        self.update_hook_kinds(&map);
    }

    fn update_hook_kinds(&self, map: &BTreeMap<String, Arc<Active>>) {
        let mut bits = 0u8;
        for a in map.values() {
            if let Some((_, info)) = a.running() {
                for k in hook_kinds(info) {
                    bits |= 1 << k.tag();
                }
            }
        }
        self.inner.hook_kinds.store(bits, Ordering::Release);
    }

    /// Compiles (or finds compiled) and configures a stored plugin.
    fn activate(&self, record: PluginRecord, health: Option<Arc<Mutex<Health>>>) -> Arc<Active> {
        let health = health.unwrap_or_default();
        lock(&health).suspended.clone_from(&record.suspended);
        let manifest = Manifest::parse(&record.manifest);
        let loaded = manifest
            .clone()
            .map_err(|e| e.to_string())
            .and_then(|m| self.configure(&record, &m).map_err(|e| e.to_string()));
        let manifest = manifest.unwrap_or_else(|_| placeholder_manifest(&record));
        match loaded {
            Ok((plugin, info)) => Arc::new(Active {
                record,
                manifest,
                info: Some(info),
                plugin: Some(plugin),
                load_error: None,
                health,
            }),
            Err(e) => Arc::new(Active {
                record,
                manifest,
                info: None,
                plugin: None,
                load_error: Some(e),
                health,
            }),
        }
    }

    fn compiled(
        &self,
        id: &str,
        hash: &str,
        wasm: Option<&[u8]>,
    ) -> Result<Component, RegistryError> {
        if let Some(c) = lock(&self.inner.compiled).get(hash) {
            return Ok(c.clone());
        }
        let stored;
        let bytes = match wasm {
            Some(b) => b,
            None => {
                stored = self
                    .store()
                    .plugin_wasm(hash)?
                    .ok_or_else(|| RegistryError::State {
                        plugin: id.to_owned(),
                        message: format!("its binary {hash} is missing from the database"),
                    })?;
                &stored
            }
        };
        let c = self
            .inner
            .runtime
            .compile_cached(id, bytes, hash, &self.inner.cache_dir)?;
        lock(&self.inner.compiled).insert(hash.to_owned(), c.clone());
        Ok(c)
    }

    /// A loaded plugin with the record's grants, settings, data and storage.
    fn configure(
        &self,
        record: &PluginRecord,
        manifest: &Manifest,
    ) -> Result<(LoadedPlugin, w::PluginInfo), RegistryError> {
        let component = self.compiled(&record.id, &record.wasm_hash, None)?;
        // Errors and logs name the plugin as `id@version`.
        let bare = self
            .inner
            .runtime
            .prepare(&format!("{}@{}", record.id, record.version), &component)?;
        let (info, _) = bare.describe()?;
        let readable: Vec<EntityKind> = manifest
            .readable()
            .into_iter()
            .filter(|k| record.granted.contains(&format!("read:{}", k.name())))
            .collect();
        let settings = info
            .settings
            .iter()
            .map(|s| w::Field {
                name: s.name.clone(),
                value: record
                    .settings
                    .get(&s.name)
                    .map_or_else(|| s.default.clone(), |v| setting_to_wit(s.setting_type, v)),
            })
            .collect();
        let ceiling = self.inner.runtime.limits();
        let limits = Limits {
            hook_timeout: record
                .limits
                .hook_timeout_ms
                .map_or(ceiling.hook_timeout, Duration::from_millis),
            memory: record
                .limits
                .memory_mib
                .and_then(|m| usize::try_from(m.saturating_mul(1 << 20)).ok())
                .unwrap_or(ceiling.memory),
            ..ceiling
        };
        let plugin = bare
            .with_limits(limits)
            .grant_read(readable)
            .with_settings(settings)
            .with_data(Arc::new(StoreAccess(
                self.store().scoped(kith_core::Access::everything()),
            )))
            .with_kv(Arc::new(StoreKv {
                store: self.store().clone(),
                plugin: record.id.clone(),
            }));
        Ok((plugin, info))
    }

    /// Installs or upgrades a plugin from its manifest and binary. `grant` must list every
    /// capability the manifest requests (see [`Manifest::requested`]).
    pub fn install(
        &self,
        manifest_text: &str,
        wasm: &[u8],
        grant: &[String],
        mode: InstallMode,
    ) -> Result<PluginView, RegistryError> {
        if wasm.len() > MAX_WASM {
            return Err(RegistryError::TooLarge(wasm.len()));
        }
        let manifest = Manifest::parse(manifest_text)?;
        let id = manifest.id.clone();
        let existing = self.store().plugin(&id)?;
        match (&existing, mode) {
            (Some(old), InstallMode::New) => {
                return Err(RegistryError::State {
                    plugin: id,
                    message: format!(
                        "version {} is already installed; upgrade it instead",
                        old.version
                    ),
                });
            }
            (None, InstallMode::Upgrade) => return Err(RegistryError::NotFound(id)),
            _ => {}
        }
        let hash = sha256_hex(wasm);
        let component = self.compiled(&id, &hash, Some(wasm))?;
        let (info, _) = self
            .inner
            .runtime
            .prepare(&format!("{id}@{}", manifest.version), &component)?
            .describe()?;
        check_agreement(&manifest, &info)?;
        let requested = manifest.requested();
        let missing: Vec<String> = requested
            .iter()
            .filter(|r| !grant.contains(r))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(RegistryError::NotGranted {
                plugin: id,
                requested,
                missing,
            });
        }
        let now = self.store().clock().now();
        let fields = plugin_fields(&id, &info, now)?;
        // An upgrade keeps the values of settings that still exist with the same type.
        let mut settings = BTreeMap::new();
        for s in &info.settings {
            let kept = existing
                .as_ref()
                .and_then(|old| old.settings.get(&s.name))
                .filter(|v| check_setting(&id, s, (*v).clone()).is_ok());
            settings.insert(
                s.name.clone(),
                kept.cloned().unwrap_or_else(|| value_from_wit(&s.default)),
            );
        }
        let record = PluginRecord {
            id: id.clone(),
            version: manifest.version.clone(),
            manifest: manifest_text.to_owned(),
            wasm_hash: hash,
            granted: requested,
            settings,
            enabled: existing.as_ref().is_none_or(|o| o.enabled),
            suspended: None,
            limits: existing.as_ref().map(|o| o.limits).unwrap_or_default(),
            installed_at: existing.as_ref().map_or(now, |o| o.installed_at),
            updated_at: now,
        };
        let stored = match self.store().execute(
            Command::PutPlugin {
                plugin: record,
                wasm: Some(wasm.to_vec()),
                fields: Some(fields),
            },
            ACTOR,
        )? {
            Outcome::Plugin(p) => p,
            _ => return Err(RegistryError::NotFound(id)),
        };
        let active = self.activate(stored, None);
        if let Some(e) = &active.load_error {
            tracing::error!(plugin = %id, error = %e, "installed plugin failed to load");
        }
        self.put_active(active);
        self.queue_rescore(&id);
        tracing::info!(plugin = %id, version = %manifest.version, "plugin installed");
        self.view(&id)
    }

    /// Changes a stored plugin record and reloads it. Health carries over.
    fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut PluginRecord) -> Result<(), RegistryError>,
    ) -> Result<PluginView, RegistryError> {
        let old = self.get_active(id)?;
        let mut record = self
            .store()
            .plugin(id)?
            .ok_or_else(|| RegistryError::NotFound(id.to_owned()))?;
        change(&mut record)?;
        record.updated_at = self.store().clock().now();
        let stored = match self.store().execute(
            Command::PutPlugin {
                plugin: record,
                wasm: None,
                fields: None,
            },
            ACTOR,
        )? {
            Outcome::Plugin(p) => p,
            _ => return Err(RegistryError::NotFound(id.to_owned())),
        };
        self.put_active(self.activate(stored, Some(old.health.clone())));
        self.view(id)
    }

    /// Lets a plugin run.
    pub fn enable(&self, id: &str) -> Result<PluginView, RegistryError> {
        let view = self.update(id, |r| {
            r.enabled = true;
            Ok(())
        })?;
        self.queue_rescore(id);
        Ok(view)
    }

    /// Stops a plugin from running; its fields and scores stay.
    pub fn disable(&self, id: &str) -> Result<PluginView, RegistryError> {
        self.update(id, |r| {
            r.enabled = false;
            Ok(())
        })
    }

    /// Lifts a suspension and clears the failure count.
    pub fn resume(&self, id: &str) -> Result<PluginView, RegistryError> {
        let active = self.get_active(id)?;
        {
            let mut h = lock(&active.health);
            h.consecutive = 0;
            h.suspended = None;
        }
        let view = self.update(id, |r| {
            r.suspended = None;
            Ok(())
        })?;
        self.queue_rescore(id);
        Ok(view)
    }

    /// Changes settings (only those named); each value is checked against its definition.
    pub fn set_settings(
        &self,
        id: &str,
        values: BTreeMap<String, Value>,
    ) -> Result<PluginView, RegistryError> {
        let active = self.get_active(id)?;
        let info = active.info.clone().ok_or_else(|| RegistryError::State {
            plugin: id.to_owned(),
            message: "it failed to load, so its settings are unknown".to_owned(),
        })?;
        let mut checked = BTreeMap::new();
        for (name, v) in values {
            let def = info
                .settings
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| RegistryError::Setting {
                    plugin: id.to_owned(),
                    setting: name.clone(),
                    message: format!(
                        "no such setting (settings: {})",
                        info.settings
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })?;
            let v = if v.is_empty() && !matches!(def.setting_type, w::SettingType::TextList) {
                value_from_wit(&def.default)
            } else {
                check_setting(id, def, v)?
            };
            checked.insert(name, v);
        }
        let view = self.update(id, |r| {
            r.settings.extend(checked);
            Ok(())
        })?;
        self.queue_rescore(id);
        Ok(view)
    }

    /// Sets a plugin's own limits (`None`: the server's). They cannot exceed the server's.
    pub fn set_limits(&self, id: &str, limits: PluginLimits) -> Result<PluginView, RegistryError> {
        let ceiling = self.inner.runtime.limits();
        let bad = |setting: &str, message: String| RegistryError::Setting {
            plugin: id.to_owned(),
            setting: setting.to_owned(),
            message,
        };
        let max_ms = u64::try_from(ceiling.hook_timeout.as_millis()).unwrap_or(u64::MAX);
        if let Some(ms) = limits.hook_timeout_ms
            && !(1..=max_ms).contains(&ms)
        {
            return Err(bad(
                "hook_timeout_ms",
                format!("{ms} is outside 1-{max_ms} (the server's limit)"),
            ));
        }
        let max_mib = (ceiling.memory >> 20) as u64;
        if let Some(m) = limits.memory_mib
            && !(1..=max_mib).contains(&m)
        {
            return Err(bad(
                "memory_mib",
                format!("{m} is outside 1-{max_mib} (the server's limit)"),
            ));
        }
        self.update(id, |r| {
            r.limits = limits;
            Ok(())
        })
    }

    /// Uninstalls a plugin. Values of its custom fields stay on records as plain data.
    pub fn remove(&self, id: &str) -> Result<(), RegistryError> {
        self.get_active(id)?;
        self.store()
            .execute(Command::RemovePlugin { id: id.to_owned() }, ACTOR)?;
        let mut map = self.inner.active.write().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
        self.update_hook_kinds(&map);
        tracing::info!(plugin = %id, "plugin uninstalled");
        Ok(())
    }

    /// Every installed plugin.
    pub fn list(&self) -> Vec<PluginView> {
        self.all().iter().map(|a| view_of(a)).collect()
    }

    /// One installed plugin.
    pub fn view(&self, id: &str) -> Result<PluginView, RegistryError> {
        Ok(view_of(&*self.get_active(id)?))
    }

    /// Records the outcome of a call; suspends the plugin after [`SUSPEND_AFTER`] failures in
    /// a row. `wait` says whether the suspension may be stored synchronously (never on the
    /// writer thread).
    pub(super) fn record<T>(
        &self,
        active: &Active,
        hook: &str,
        result: &Result<(T, CallReport), PluginError>,
        wait: bool,
    ) {
        let now = self.store().clock().now();
        let suspend = {
            let mut h = lock(&active.health);
            h.calls += 1;
            match result {
                Ok((_, report)) => {
                    h.consecutive = 0;
                    let us = u64::try_from(report.elapsed.as_micros()).unwrap_or(u64::MAX);
                    if h.recent.len() == LATENCY_WINDOW {
                        h.recent.pop_front();
                    }
                    h.recent.push_back(us);
                    None
                }
                Err(e) => {
                    h.failures += 1;
                    h.consecutive += 1;
                    h.last_error = Some((e.to_string(), now));
                    tracing::warn!(plugin = %active.record.id, hook, error = %e, "plugin call failed");
                    if h.consecutive >= SUSPEND_AFTER && h.suspended.is_none() {
                        let s = Suspension {
                            reason: format!("{} failures in a row; the last: {e}", h.consecutive),
                            at: now,
                        };
                        h.suspended = Some(s.clone());
                        Some(s)
                    } else {
                        None
                    }
                }
            }
        };
        if let Ok((_, report)) = result
            && !report.kv_changes.is_empty()
        {
            self.persist_kv(active, report.kv_changes.clone(), wait);
        }
        if let Some(s) = suspend {
            tracing::error!(plugin = %active.record.id, reason = %s.reason, "plugin suspended");
            let mut record = active.record.clone();
            record.suspended = Some(s);
            self.submit(
                Command::PutPlugin {
                    plugin: record,
                    wasm: None,
                    fields: None,
                },
                wait,
            );
            let map = self.inner.active.read().unwrap_or_else(|p| p.into_inner());
            self.update_hook_kinds(&map);
        }
    }

    fn persist_kv(&self, active: &Active, changes: Vec<(String, Option<Vec<u8>>)>, wait: bool) {
        let (mut set, mut delete) = (Vec::new(), Vec::new());
        for (k, v) in changes {
            match v {
                Some(v) => set.push((k, v)),
                None => delete.push(k),
            }
        }
        let quota = active.plugin.as_ref().map_or(0, |p| p.limits().kv_quota);
        self.submit(
            Command::PluginKv {
                plugin: active.record.id.clone(),
                set,
                delete,
                quota,
            },
            wait,
        );
    }

    /// Runs a command; on the writer thread (`wait` false) only queues it.
    fn submit(&self, cmd: Command, wait: bool) {
        if wait {
            if let Err(e) = self.store().execute(cmd, ACTOR) {
                tracing::warn!(error = %e, "a plugin state change was not stored");
            }
        } else {
            self.store().submit(
                cmd,
                ACTOR,
                Box::new(|r| {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "a plugin state change was not stored");
                    }
                }),
            );
        }
    }

    fn queue_rescore(&self, plugin: &str) {
        if let Some(tx) = lock(&self.inner.scoring).as_ref() {
            let _ = tx.send(ScoreWork::All {
                plugin: plugin.to_owned(),
            });
        }
    }

    /// Rescores everything the running scorers cover (only `kind`, when given), calling
    /// `progress(done, total)` as it goes. Returns how many records were scored.
    pub fn rescore(
        &self,
        kind: Option<EntityKind>,
        progress: &dyn Fn(u64, u64),
    ) -> Result<u64, RegistryError> {
        let mut total = 0;
        let mut plan = Vec::new();
        for a in self.all() {
            if let Some((_, info)) = a.running() {
                for s in &info.scorers {
                    let k = kind_from_wit(s.kind);
                    if kind.is_none_or(|want| want == k) {
                        total += self.store().count(k, &Query::default())?;
                        plan.push(a.record.id.clone());
                    }
                }
            }
        }
        plan.dedup();
        let done = std::cell::Cell::new(0u64);
        for id in plan {
            let base = done.get();
            let n = self.rescore_plugin(&id, kind, &|d, _| progress(base + d, total))?;
            done.set(base + n);
        }
        progress(done.get(), total);
        Ok(done.get())
    }

    /// Rescores every record one plugin's scorers cover (only `kind`, when given).
    pub fn rescore_plugin(
        &self,
        id: &str,
        kind: Option<EntityKind>,
        progress: &dyn Fn(u64, u64),
    ) -> Result<u64, RegistryError> {
        let active = self.get_active(id)?;
        let Some((_, info)) = active.running() else {
            return Ok(0);
        };
        let mut done = 0;
        for scorer in &info.scorers {
            let k = kind_from_wit(scorer.kind);
            if kind.is_some_and(|want| want != k) {
                continue;
            }
            let total = self.store().count(k, &Query::default())?;
            let mut cursor = None;
            loop {
                let page = self.store().list(
                    k,
                    &Query {
                        limit: SCORE_BATCH,
                        cursor,
                        ..Query::default()
                    },
                )?;
                self.score_records(&active, &scorer.name, k, &page.items)?;
                done += page.items.len() as u64;
                progress(done, total);
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
        Ok(done)
    }

    /// Scores records with one scorer and stores the scores. A failing call is recorded and
    /// the records keep their previous scores (fail open).
    fn score_records(
        &self,
        active: &Active,
        scorer: &str,
        kind: EntityKind,
        records: &[AnyRecord],
    ) -> Result<(), RegistryError> {
        let Some((plugin, _)) = active.running() else {
            return Ok(());
        };
        if records.is_empty() {
            return Ok(());
        }
        let entities: Vec<w::Entity> = records.iter().map(entity_from_record).collect();
        let now = self.store().clock().now();
        let result = plugin.score(scorer, &entities, now.timestamp_micros());
        self.record(active, "score", &result, true);
        let Ok((scores, _)) = result else {
            return Ok(());
        };
        // Only records it was given: a plugin cannot score what it was not asked about.
        let asked: BTreeSet<Id> = records.iter().map(AnyRecord::id).collect();
        let scores = scores
            .into_iter()
            .filter_map(|s| {
                let id: Id = s.id.parse().ok().filter(|id| asked.contains(id))?;
                Some((
                    id,
                    StoredScore {
                        value: s.value.min(100),
                        reasons: s
                            .reasons
                            .into_iter()
                            .map(|r| ScoreReason {
                                points: r.points,
                                reason: r.reason,
                            })
                            .collect(),
                        at: now,
                    },
                ))
            })
            .collect();
        self.store().execute(
            Command::PutScores(ScoreBatch {
                plugin: active.record.id.clone(),
                scorer: scorer.to_owned(),
                kind,
                scores,
            }),
            ACTOR,
        )?;
        Ok(())
    }

    /// Rescores what the events after `cursor` touched; returns the new cursor.
    fn follow_events(&self, mut cursor: u64) -> Result<u64, CoreError> {
        let any_scorer = self.all().iter().any(|a| {
            a.running()
                .is_some_and(|(_, info)| !info.scorers.is_empty())
        });
        if !any_scorer {
            // Nothing to rescore: skip the events rather than read them.
            return self.store().last_event_seq();
        }
        loop {
            let events = self.store().events(cursor, 1000)?;
            let Some(last) = events.last() else {
                return Ok(cursor);
            };
            let next = last.seq;
            let scorers: Vec<(Arc<Active>, String, EntityKind, Vec<EntityKind>)> = self
                .all()
                .into_iter()
                .filter_map(|a| {
                    let (_, info) = a.running()?;
                    let list: Vec<_> = info
                        .scorers
                        .iter()
                        .map(|s| {
                            (
                                s.name.clone(),
                                kind_from_wit(s.kind),
                                s.depends_on.iter().map(|k| kind_from_wit(*k)).collect(),
                            )
                        })
                        .collect();
                    Some((a.clone(), list))
                })
                .flat_map(|(a, list)| list.into_iter().map(move |(n, k, d)| (a.clone(), n, k, d)))
                .collect();
            for (active, scorer, kind, depends) in scorers {
                let mut ids = BTreeSet::new();
                for e in &events {
                    if e.actor == ACTOR && e.kind != kind {
                        continue;
                    }
                    if e.kind == kind {
                        if e.op != kith_core::Operation::Deleted {
                            ids.insert(e.id);
                        }
                    } else if depends.contains(&e.kind) {
                        // Records of the scored kind this one points at, before or after...
                        for c in &e.changes {
                            for v in [&c.before, &c.after] {
                                refs_in(v, &mut ids);
                            }
                        }
                        // ...and those that point at it.
                        ids.extend(self.store().referrers(e.id, kind)?);
                    }
                }
                let records: Vec<AnyRecord> = ids
                    .into_iter()
                    .filter_map(|id| self.store().get(kind, id).ok())
                    .collect();
                for chunk in records.chunks(SCORE_BATCH) {
                    if let Err(e) = self.score_records(&active, &scorer, kind, chunk) {
                        tracing::warn!(plugin = %active.record.id, error = %e, "scoring failed");
                    }
                }
            }
            cursor = next;
        }
    }
}

fn refs_in(v: &Value, out: &mut BTreeSet<Id>) {
    match v {
        Value::Ref(id) => {
            out.insert(*id);
        }
        Value::List(items) => items.iter().for_each(|i| refs_in(i, out)),
        _ => {}
    }
}

impl WriteHook for Registry {
    fn applies_to(&self, kind: EntityKind) -> bool {
        self.inner.hook_kinds.load(Ordering::Acquire) & (1 << kind.tag()) != 0
    }

    fn before_write(
        &self,
        record: &AnyRecord,
        before: Option<&AnyRecord>,
        now: Timestamp,
    ) -> Result<BTreeMap<String, Value>, CoreError> {
        let kind = record.kind();
        let wkind = kind_to_wit(kind);
        let entity = entity_from_record(record);
        let before = before.map(entity_from_record);
        let now_us = now.timestamp_micros();
        let mut computed = BTreeMap::new();
        for active in self.all() {
            let Some((plugin, info)) = active.running() else {
                continue;
            };
            let id = &active.record.id;
            if info.validates.contains(&wkind) {
                let result = plugin.validate(&entity, before.as_ref(), now_us);
                self.record(&active, "validate", &result, false);
                match result {
                    Ok((Ok(()), _)) => {}
                    Ok((Err(errors), _)) => {
                        return Err(rejection(id, info, kind, &errors));
                    }
                    // A validator that cannot run must not let unchecked data in.
                    Err(e) => {
                        return Err(CoreError::invalid(
                            "plugin",
                            format!("the write could not be validated: {e}"),
                        ));
                    }
                }
            }
            let owned: Vec<&str> = info
                .fields
                .iter()
                .filter(|f| f.computed && f.kind == wkind)
                .map(|f| f.name.as_str())
                .collect();
            if owned.is_empty() {
                continue;
            }
            let result = plugin.compute_fields(&entity, now_us);
            self.record(&active, "compute-fields", &result, false);
            // Fail open: the write goes through, and the plugin's computed fields are left
            // unset rather than keeping values computed from an older version of the record.
            match result {
                Ok((fields, _)) => {
                    for f in fields {
                        if owned.contains(&f.name.as_str()) {
                            computed.insert(f.name, value_from_wit(&f.value));
                        }
                    }
                }
                Err(_) => {
                    for name in owned {
                        computed.insert(name.to_owned(), Value::Null);
                    }
                }
            }
        }
        Ok(computed)
    }

    fn computed_rejected(&self, kind: EntityKind, field: &str, error: &CoreError) {
        tracing::warn!(%kind, field, %error, "a plugin computed a value its field refuses");
    }
}

/// A validator's rejection as a core error naming the field (`custom.x` for the plugin's own
/// fields) and the plugin.
fn rejection(
    id: &str,
    info: &w::PluginInfo,
    kind: EntityKind,
    errors: &[w::FieldError],
) -> CoreError {
    let wkind = kind_to_wit(kind);
    let Some(first) = errors.first() else {
        return CoreError::invalid("plugin", format!("rejected by plugin {id}"));
    };
    let custom = info
        .fields
        .iter()
        .any(|f| f.kind == wkind && f.name == first.field);
    let field = if custom && !first.field.starts_with("custom.") {
        format!("custom.{}", first.field)
    } else {
        first.field.clone()
    };
    let more = match errors.len() {
        1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    CoreError::invalid(field, format!("{} (plugin {id}){more}", first.message))
}

/// Kinds a plugin runs on during writes.
fn hook_kinds(info: &w::PluginInfo) -> Vec<EntityKind> {
    info.validates
        .iter()
        .copied()
        .chain(info.fields.iter().filter(|f| f.computed).map(|f| f.kind))
        .map(kind_from_wit)
        .collect()
}

/// The binary must not want more than its manifest asks the admin for, and must be the
/// version the manifest says.
fn check_agreement(m: &Manifest, info: &w::PluginInfo) -> Result<(), RegistryError> {
    let mismatch = |message: String| RegistryError::Mismatch {
        plugin: m.id.clone(),
        message,
    };
    if info.version != m.version {
        return Err(mismatch(format!(
            "the binary is version {} but the manifest says {}",
            info.version, m.version
        )));
    }
    let readable = m.readable();
    for k in &info.capabilities.read {
        let k = kind_from_wit(*k);
        if !readable.contains(&k) {
            return Err(mismatch(format!(
                "the binary asks to read {k} records, which its manifest does not request"
            )));
        }
    }
    for a in &info.capabilities.actions {
        if !m.capabilities.actions.contains(a) {
            return Err(mismatch(format!(
                "the binary asks for action '{a}', which its manifest does not request"
            )));
        }
    }
    for s in &m.settings {
        match info.settings.iter().find(|d| d.name == s.name) {
            None => {
                return Err(mismatch(format!(
                    "the manifest declares setting '{}', which the binary does not have",
                    s.name
                )));
            }
            Some(d) if setting_type_name(d.setting_type) != s.setting_type => {
                return Err(mismatch(format!(
                    "setting '{}' is {} in the manifest but {} in the binary",
                    s.name,
                    s.setting_type,
                    setting_type_name(d.setting_type)
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The plugin's declared fields as core definitions it owns.
fn plugin_fields(
    id: &str,
    info: &w::PluginInfo,
    now: Timestamp,
) -> Result<Vec<FieldDef>, RegistryError> {
    info.fields
        .iter()
        .map(|f| {
            let def = NewFieldDef {
                name: f.name.clone(),
                label: Some(f.label.clone()),
                field_type: field_type(f.field_type),
                required: f.required && !f.computed,
                options: f.options.clone(),
                help: f.help.clone(),
                reference_kind: f.reference_kind.map(kind_from_wit),
            };
            let mut def =
                def.into_def(kind_from_wit(f.kind), now)
                    .map_err(|e| RegistryError::Mismatch {
                        plugin: id.to_owned(),
                        message: format!(
                            "its field {}.{} is invalid: {e}",
                            kind_from_wit(f.kind),
                            f.name
                        ),
                    })?;
            def.plugin = Some(id.to_owned());
            def.computed = f.computed;
            Ok(def)
        })
        .collect()
}

fn field_type(t: w::FieldType) -> FieldType {
    match t {
        w::FieldType::Text => FieldType::Text,
        w::FieldType::LongText => FieldType::LongText,
        w::FieldType::Number => FieldType::Number,
        w::FieldType::Integer => FieldType::Integer,
        w::FieldType::Money => FieldType::Money,
        w::FieldType::Date => FieldType::Date,
        w::FieldType::Datetime => FieldType::Datetime,
        w::FieldType::Boolean => FieldType::Boolean,
        w::FieldType::Choice => FieldType::Choice,
        w::FieldType::MultiChoice => FieldType::MultiChoice,
        w::FieldType::Url => FieldType::Url,
        w::FieldType::Email => FieldType::Email,
        w::FieldType::Phone => FieldType::Phone,
        w::FieldType::Reference => FieldType::Reference,
    }
}

fn setting_type_name(t: w::SettingType) -> &'static str {
    match t {
        w::SettingType::Text => "text",
        w::SettingType::Integer => "integer",
        w::SettingType::Number => "number",
        w::SettingType::Boolean => "boolean",
        w::SettingType::Choice => "choice",
        w::SettingType::TextList => "text-list",
    }
}

/// Checks and normalises a setting value.
fn check_setting(plugin: &str, def: &w::SettingDef, v: Value) -> Result<Value, RegistryError> {
    let bad = |message: String| RegistryError::Setting {
        plugin: plugin.to_owned(),
        setting: def.name.clone(),
        message,
    };
    match (def.setting_type, v) {
        (w::SettingType::Text, Value::Text(s)) => Ok(Value::Text(s)),
        (w::SettingType::Integer, Value::Integer(i)) => Ok(Value::Integer(i)),
        (w::SettingType::Integer, Value::Number(d)) if d.fract().is_zero() => i64::try_from(d)
            .map(Value::Integer)
            .map_err(|_| bad("is out of range".to_owned())),
        (w::SettingType::Number, Value::Integer(i)) => Ok(Value::Number(i.into())),
        (w::SettingType::Number, Value::Number(d)) => Ok(Value::Number(d)),
        (w::SettingType::Boolean, Value::Bool(b)) => Ok(Value::Bool(b)),
        (w::SettingType::Choice, Value::Text(s)) => {
            if def.options.is_empty() || def.options.contains(&s) {
                Ok(Value::Text(s))
            } else {
                Err(bad(format!(
                    "'{s}' is not one of {}",
                    def.options.join(", ")
                )))
            }
        }
        (w::SettingType::TextList, Value::List(items)) => items
            .into_iter()
            .map(|i| match i {
                Value::Text(s) => Ok(Value::Text(s)),
                other => Err(bad(format!("{other} is not text"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::List),
        (t, v) => Err(bad(format!("{v} is not a valid {}", setting_type_name(t)))),
    }
}

/// A stored setting value as the plugin sees it.
fn setting_to_wit(t: w::SettingType, v: &Value) -> w::FieldValue {
    match (t, v) {
        (_, Value::Null) => w::FieldValue::Null,
        (w::SettingType::Integer, Value::Integer(i)) => w::FieldValue::Integer(*i),
        (w::SettingType::Number, Value::Number(d)) => w::FieldValue::Number(d.to_string()),
        (w::SettingType::Number, Value::Integer(i)) => w::FieldValue::Number(i.to_string()),
        (w::SettingType::Boolean, Value::Bool(b)) => w::FieldValue::Boolean(*b),
        (w::SettingType::Choice, Value::Text(s)) => w::FieldValue::Choice(s.clone()),
        (w::SettingType::TextList, Value::List(items)) => {
            w::FieldValue::Choices(items.iter().map(ToString::to_string).collect())
        }
        (_, other) => w::FieldValue::Text(other.to_string()),
    }
}

fn view_of(a: &Active) -> PluginView {
    let h = lock(&a.health);
    let status = if a.load_error.is_some() {
        "failed"
    } else if h.suspended.is_some() {
        "suspended"
    } else if !a.record.enabled {
        "disabled"
    } else {
        "active"
    };
    let mut sorted: Vec<u64> = h.recent.iter().copied().collect();
    sorted.sort_unstable();
    let pct = |p: usize| (!sorted.is_empty()).then(|| sorted[(sorted.len() - 1) * p / 100]);
    let info = a.info.as_ref();
    let id = &a.record.id;
    PluginView {
        id: id.clone(),
        name: a.manifest.name.clone(),
        version: a.record.version.clone(),
        wit: a.manifest.wit.clone(),
        description: a.manifest.description.clone(),
        status,
        enabled: a.record.enabled,
        status_reason: a
            .load_error
            .clone()
            .or_else(|| h.suspended.as_ref().map(|s| s.reason.clone())),
        requested: a.manifest.requested(),
        granted: a.record.granted.clone(),
        settings: info
            .map(|i| {
                i.settings
                    .iter()
                    .map(|s| SettingView {
                        name: s.name.clone(),
                        label: s.label.clone(),
                        setting_type: setting_type_name(s.setting_type),
                        value: a
                            .record
                            .settings
                            .get(&s.name)
                            .cloned()
                            .unwrap_or_else(|| value_from_wit(&s.default)),
                        default: value_from_wit(&s.default),
                        options: s.options.clone(),
                        help: s.help.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        fields: info
            .map(|i| {
                i.fields
                    .iter()
                    .map(|f| format!("{}.{}", kind_from_wit(f.kind).name(), f.name))
                    .collect()
            })
            .unwrap_or_default(),
        scorers: info
            .map(|i| {
                i.scorers
                    .iter()
                    .map(|s| ScorerView {
                        key: kith_core::plugin::score_key(id, &s.name),
                        kind: kind_from_wit(s.kind),
                        description: s.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        reports: info
            .map(|i| i.reports.iter().map(|r| r.id.clone()).collect())
            .unwrap_or_default(),
        validates: info
            .map(|i| i.validates.iter().map(|k| kind_from_wit(*k)).collect())
            .unwrap_or_default(),
        subscriptions: info
            .map(|i| i.subscriptions.iter().map(|k| kind_from_wit(*k)).collect())
            .unwrap_or_default(),
        metrics: MetricsView {
            calls: h.calls,
            failures: h.failures,
            consecutive_failures: h.consecutive,
            last_error: h.last_error.as_ref().map(|(e, _)| e.clone()),
            last_error_at: h.last_error.as_ref().map(|(_, t)| *t),
            p50_us: pct(50),
            p99_us: pct(99),
        },
        limits: {
            let l = a.plugin.as_ref().map(LoadedPlugin::limits);
            LimitsView {
                hook_timeout_ms: l.map_or(0, |l| {
                    u64::try_from(l.hook_timeout.as_millis()).unwrap_or(u64::MAX)
                }),
                memory_mib: l.map_or(0, |l| (l.memory >> 20) as u64),
                custom: a.record.limits != PluginLimits::default(),
            }
        },
        wasm_sha256: a.record.wasm_hash.clone(),
        installed_at: a.record.installed_at,
        updated_at: a.record.updated_at,
    }
}

/// Stands in for a stored manifest that no longer parses (so the plugin can still be listed
/// and removed).
fn placeholder_manifest(r: &PluginRecord) -> Manifest {
    Manifest {
        id: r.id.clone(),
        name: r.id.clone(),
        version: r.version.clone(),
        wit: String::new(),
        description: String::new(),
        capabilities: super::manifest::Capabilities::default(),
        settings: Vec::new(),
    }
}

/// SHA-256 of bytes as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A plugin's stored key-value data.
struct StoreKv {
    store: Store,
    plugin: String,
}

impl KvAccess for StoreKv {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.store.plugin_kv(&self.plugin, key).ok().flatten()
    }

    fn usage(&self) -> usize {
        self.store.plugin_kv_usage(&self.plugin).unwrap_or(0)
    }
}
