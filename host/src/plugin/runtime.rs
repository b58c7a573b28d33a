//! The engine, the linker, per-call stores with limits, and the host functions plugins import.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kith_core::{EntityKind, FilterOp, Query};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    Trap,
};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::convert::{entity_from_record, kind_from_wit};
use super::wit::kith::plugin::host::{self as whost, Level};
use super::wit::kith::plugin::types as w;
use super::wit::{Plugin as Bindings, PluginPre};

/// Per-call limits. Each plugin may be given tighter ones within what the runtime allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time limit of a hook call (describe, validate, compute-fields, score, on-event), counted
    /// in wall-clock epoch ticks from the start of the call, instantiation included. A `score`
    /// batch gets it once per [`SCORE_SHARE`] entities.
    pub hook_timeout: Duration,
    /// Time limit of a report (reports are not run yet).
    pub report_timeout: Duration,
    /// Linear memory, per memory, in bytes.
    pub memory: usize,
    /// Largest input passed to one call, in bytes (approximate encoded size).
    pub max_input: usize,
    /// Largest result of one call, in bytes (approximate encoded size).
    pub max_output: usize,
    /// Most log text kept per call, in bytes; the rest is counted and dropped.
    pub max_log: usize,
    /// Bytes of private key-value storage.
    pub kv_quota: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            hook_timeout: Duration::from_millis(100),
            report_timeout: Duration::from_secs(10),
            memory: 64 << 20,
            max_input: 4 << 20,
            max_output: 1 << 20,
            max_log: 64 << 10,
            kv_quota: 1 << 20,
        }
    }
}

/// Bytes of each pooled linear memory kept mapped between calls (see `Runtime::new`).
const KEEP_RESIDENT: usize = 2 << 20;

/// Entities per hook deadline in a `score` batch.
pub const SCORE_SHARE: usize = 8;

/// How often the ticker advances the engine's epoch; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Why a plugin call failed. Every variant names the plugin and the hook.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The bytes are not a valid component for this host.
    #[error("plugin {plugin}: not a loadable Kith plugin: {reason}")]
    Invalid {
        /// The plugin.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// The call ran past its time limit and was stopped.
    #[error("plugin {plugin}: {hook} ran longer than its {limit:?} limit and was stopped")]
    Timeout {
        /// The plugin.
        plugin: String,
        /// The hook.
        hook: &'static str,
        /// The deadline.
        limit: Duration,
    },
    /// The call tried to use more memory than allowed.
    #[error(
        "plugin {plugin}: {hook} tried to use more than {limit} bytes of memory and was stopped"
    )]
    Memory {
        /// The plugin.
        plugin: String,
        /// The hook.
        hook: &'static str,
        /// The cap.
        limit: usize,
    },
    /// The call's input or output exceeded its size cap.
    #[error("plugin {plugin}: {hook} {what} is about {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// The plugin.
        plugin: String,
        /// The hook.
        hook: &'static str,
        /// "input" or "output".
        what: &'static str,
        /// Its approximate size.
        size: usize,
        /// The cap.
        limit: usize,
    },
    /// The plugin asked for something it was not granted.
    #[error("plugin {plugin}: {hook} was refused: {reason}")]
    Denied {
        /// The plugin.
        plugin: String,
        /// The hook.
        hook: &'static str,
        /// What was refused.
        reason: String,
    },
    /// The plugin ran and reported an error (`on-event`, `on-timer` or `run-report`
    /// returned `err`).
    #[error("plugin {plugin}: {hook} reported an error: {reason}")]
    Failed {
        /// The plugin.
        plugin: String,
        /// The hook.
        hook: &'static str,
        /// Its message.
        reason: String,
    },
    /// The plugin trapped (a panic, a stack overflow, an illegal operation).
    #[error("plugin {plugin}: {hook} failed: {reason}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The hook.
        hook: &'static str,
        /// The trap or panic message.
        reason: String,
    },
}

/// Read access to CRM data for the `get` and `query` host functions.
pub trait DataAccess: Send + Sync {
    /// One record, or none.
    fn get(&self, kind: EntityKind, id: &str) -> Result<Option<w::Entity>, String>;
    /// A page of records.
    fn query(
        &self,
        kind: EntityKind,
        filters: &[w::Filter],
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<w::Page, String>;
}

/// A plugin's persistent key-value storage, as `kv-get` reads it. Writes made during a call
/// are kept aside and handed back in [`CallReport::kv_changes`] only if the call succeeds, so
/// a failed call changes nothing.
pub trait KvAccess: Send + Sync {
    /// The stored value of `key`.
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    /// Bytes (keys plus values) stored now.
    fn usage(&self) -> usize;
}

/// [`DataAccess`] backed by the CRM store, as someone sees it: everything for hooks and
/// workflows (plugins are limited by their grants instead), or the signed-in user's view when
/// a report runs for them.
pub struct StoreAccess(pub kith_core::Scoped);

impl DataAccess for StoreAccess {
    fn get(&self, kind: EntityKind, id: &str) -> Result<Option<w::Entity>, String> {
        let Ok(id) = id.parse() else {
            return Ok(None);
        };
        match self.0.get(kind, id) {
            Ok(r) => Ok(Some(entity_from_record(&r))),
            Err(kith_core::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn query(
        &self,
        kind: EntityKind,
        filters: &[w::Filter],
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<w::Page, String> {
        let mut q = Query {
            limit: usize::try_from(limit.clamp(1, 1000)).unwrap_or(1000),
            cursor: cursor.map(str::to_owned),
            ..Query::default()
        };
        for f in filters {
            let op = FilterOp::parse(&f.op)
                .ok_or_else(|| format!("unknown filter operator '{}'", f.op))?;
            q.filters.push(kith_core::Filter {
                field: f.field.clone(),
                op,
                value: f.value.clone(),
            });
        }
        let page = self.0.list(kind, &q).map_err(|e| e.to_string())?;
        Ok(w::Page {
            items: page.items.iter().map(entity_from_record).collect(),
            next_cursor: page.next_cursor,
        })
    }
}

/// What a call used and logged.
#[derive(Debug, Clone, Default)]
pub struct CallReport {
    /// Wall time of the call, instantiation included.
    pub elapsed: Duration,
    /// The largest linear memory the call grew to, in bytes.
    pub peak_memory: usize,
    /// Host function calls made.
    pub host_calls: u64,
    /// Log lines, with their levels.
    pub logs: Vec<(Level, String)>,
    /// Log lines dropped past the log cap.
    pub logs_dropped: u64,
    /// Key-value writes of a successful call, to persist: a value to set, or `None` to delete.
    pub kv_changes: Vec<(String, Option<Vec<u8>>)>,
}

/// What the host knows during one call.
pub(crate) struct State {
    /// Built on the first WASI call: most hooks make none, and building it costs more than
    /// the rest of a small call.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    plugin: String,
    limits: Limits,
    peak_memory: usize,
    memory_exceeded: bool,
    log_bytes: usize,
    report: CallReport,
    data: Option<Arc<dyn DataAccess>>,
    readable: Vec<EntityKind>,
    settings: Vec<w::Field>,
    kv: Option<Arc<dyn KvAccess>>,
    /// This call's writes, over what `kv` holds: `None` marks a delete.
    kv_overlay: BTreeMap<String, Option<Vec<u8>>>,
    /// Bytes stored before this call, read on the first `kv-set`.
    kv_base: Option<usize>,
    denied: Option<String>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(sandboxed_wasi),
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for State {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limits.memory {
            self.memory_exceeded = true;
            return Ok(false);
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl State {
    fn check_read(&mut self, kind: EntityKind) -> Result<(), String> {
        if self.readable.contains(&kind) {
            Ok(())
        } else {
            let reason = format!("reading {} records was not granted", kind.name());
            self.denied.get_or_insert(reason.clone());
            Err(reason)
        }
    }
}

impl w::Host for State {}

impl whost::Host for State {
    fn log(&mut self, level: Level, message: String) {
        self.report.host_calls += 1;
        if self.log_bytes + message.len() > self.limits.max_log {
            self.report.logs_dropped += 1;
            return;
        }
        self.log_bytes += message.len();
        tracing::debug!(plugin = %self.plugin, ?level, "{message}");
        self.report.logs.push((level, message));
    }

    fn get(&mut self, kind: w::EntityKind, id: String) -> Result<Option<w::Entity>, String> {
        self.report.host_calls += 1;
        let kind = kind_from_wit(kind);
        self.check_read(kind)?;
        match &self.data {
            Some(d) => d.get(kind, &id),
            None => Ok(None),
        }
    }

    fn query(
        &mut self,
        kind: w::EntityKind,
        filters: Vec<w::Filter>,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<w::Page, String> {
        self.report.host_calls += 1;
        let kind = kind_from_wit(kind);
        self.check_read(kind)?;
        match &self.data {
            Some(d) => d.query(kind, &filters, limit, cursor.as_deref()),
            None => Ok(w::Page {
                items: Vec::new(),
                next_cursor: None,
            }),
        }
    }

    fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
        self.report.host_calls += 1;
        match self.kv_overlay.get(&key) {
            Some(v) => v.clone(),
            None => self.kv.as_ref().and_then(|kv| kv.get(&key)),
        }
    }

    fn kv_set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        self.report.host_calls += 1;
        // An estimate that errs on the safe side (a replaced key counts twice); the store
        // checks the exact figure when the writes are persisted.
        let base = *self
            .kv_base
            .get_or_insert_with(|| self.kv.as_ref().map_or(0, |kv| kv.usage()));
        let pending: usize = self
            .kv_overlay
            .iter()
            .filter(|(k, _)| **k != key)
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        if base + pending + key.len() + value.len() > self.limits.kv_quota {
            return Err(format!(
                "storage quota of {} bytes exceeded",
                self.limits.kv_quota
            ));
        }
        self.kv_overlay.insert(key, Some(value));
        Ok(())
    }

    fn kv_delete(&mut self, key: String) {
        self.report.host_calls += 1;
        self.kv_overlay.insert(key, None);
    }

    fn settings(&mut self) -> Vec<w::Field> {
        self.report.host_calls += 1;
        self.settings.clone()
    }
}

struct Shared {
    engine: Engine,
    linker: Linker<State>,
    limits: Limits,
    stop: Arc<AtomicBool>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The process-wide plugin runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
}

impl Runtime {
    /// Builds the engine and linker and starts the epoch ticker.
    pub fn new(limits: Limits) -> Result<Runtime, PluginError> {
        let fail = |e: wasmtime::Error| PluginError::Invalid {
            plugin: "(runtime)".to_owned(),
            reason: format!("{e:#}"),
        };
        let mut pool = PoolingAllocationConfig::default();
        // The pool reserves address space up front; these bound how many calls run at once.
        pool.total_component_instances(256)
            .total_core_instances(1024)
            .total_memories(512)
            .total_tables(512)
            .max_memory_size(limits.memory);
        // Resetting a slot for reuse: scan for the pages a call dirtied and restore just those
        // (PAGEMAP_SCAN, Linux 6.7+; a plain memset of the low pages elsewhere) instead of
        // unmapping them, which costs a TLB shootdown now and page faults on the next call.
        pool.linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT / 8)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(fail)?;
        let mut linker: Linker<State> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(fail)?;
        Bindings::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s).map_err(fail)?;
        let stop = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.weak();
        let ticker_stop = stop.clone();
        std::thread::Builder::new()
            .name("kith-plugin-epoch".to_owned())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticker_engine.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| fail(e.into()))?;
        Ok(Runtime {
            shared: Arc::new(Shared {
                engine,
                linker,
                limits,
                stop,
            }),
        })
    }

    /// The process-wide runtime with default limits, created on first use. Servers share it:
    /// each runtime reserves address space for its pool of instances, so one per process
    /// (rather than one per server, as tests start many) keeps that bounded.
    pub fn global() -> Result<Runtime, PluginError> {
        Self::global_with(Limits::default())
    }

    /// The process-wide runtime; `limits` (the ceiling every plugin runs within) apply when
    /// this call creates it, and are ignored once it exists.
    pub fn global_with(limits: Limits) -> Result<Runtime, PluginError> {
        static GLOBAL: std::sync::OnceLock<Runtime> = std::sync::OnceLock::new();
        if let Some(r) = GLOBAL.get() {
            return Ok(r.clone());
        }
        let r = Runtime::new(limits)?;
        Ok(GLOBAL.get_or_init(|| r).clone())
    }

    /// The runtime's limits.
    pub fn limits(&self) -> Limits {
        self.shared.limits
    }

    /// Validates and compiles a component and prepares it for fast instantiation.
    pub fn load(&self, plugin: &str, bytes: &[u8]) -> Result<LoadedPlugin, PluginError> {
        let component = self.compile(plugin, bytes)?;
        self.prepare(plugin, &component)
    }

    /// Validates and compiles a component.
    pub fn compile(&self, plugin: &str, bytes: &[u8]) -> Result<Component, PluginError> {
        check_magic(plugin, bytes)?;
        Component::new(&self.shared.engine, bytes).map_err(|e| invalid(plugin, &e))
    }

    /// Like [`compile`](Self::compile), but keeps the compiled code in `cache_dir` under the
    /// binary's content hash, so a restart loads it instead of compiling again.
    pub fn compile_cached(
        &self,
        plugin: &str,
        bytes: &[u8],
        hash: &str,
        cache_dir: &Path,
    ) -> Result<Component, PluginError> {
        check_magic(plugin, bytes)?;
        let path = cache_dir.join(format!("{hash}.cwasm"));
        if let Some(c) = self.deserialize_cached(&path) {
            return Ok(c);
        }
        let artifact = self
            .shared
            .engine
            .precompile_component(bytes)
            .map_err(|e| invalid(plugin, &e))?;
        // The cache only saves time: failing to write it is logged, not fatal.
        let tmp = cache_dir.join(format!("{hash}.cwasm.tmp"));
        let written = std::fs::create_dir_all(cache_dir)
            .and_then(|()| std::fs::write(&tmp, &artifact))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot cache compiled plugin code");
        }
        match self.deserialize_cached(&path) {
            Some(c) => Ok(c),
            None => self.compile(plugin, bytes),
        }
    }

    /// Loads compiled code this engine cached earlier; `None` when absent or unusable.
    #[allow(unsafe_code)]
    fn deserialize_cached(&self, path: &Path) -> Option<Component> {
        if !path.is_file() {
            return None;
        }
        // SAFETY: wasmtime runs deserialized code without checking it, so the file must be
        // one this host's engine wrote. It is: the cache lives in the data directory, is
        // written only by `compile_cached` from bytes that passed validation, and is named by
        // the binary's SHA-256. wasmtime itself refuses artifacts from another wasmtime
        // version or engine configuration (we then recompile). Anyone able to replace the
        // file can also replace the database and the server binary.
        match unsafe { Component::deserialize_file(&self.shared.engine, path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cached plugin code");
                None
            }
        }
    }

    /// Prepares a compiled component for fast instantiation.
    pub fn prepare(
        &self,
        plugin: &str,
        component: &Component,
    ) -> Result<LoadedPlugin, PluginError> {
        let pre = self
            .shared
            .linker
            .instantiate_pre(component)
            .map_err(|e| invalid(plugin, &e))?;
        let pre = PluginPre::new(pre).map_err(|e| invalid(plugin, &e))?;
        Ok(LoadedPlugin {
            name: plugin.to_owned(),
            pre,
            runtime: self.clone(),
            limits: self.shared.limits,
            readable: Vec::new(),
            settings: Vec::new(),
            data: None,
            kv: None,
        })
    }
}

/// The WASI context of a call. Nothing granted: no preopened directories, environment,
/// arguments, stdio or network. Hooks are pure functions of their input (`now` is an
/// argument), so the clocks WASI shows are frozen at the epoch and its random numbers come
/// from a fixed seed.
fn sandboxed_wasi() -> WasiCtx {
    use rand_wasi::SeedableRng as _;
    use rand_wasi::rngs::StdRng;
    WasiCtxBuilder::new()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        .secure_random(StdRng::seed_from_u64(0))
        .insecure_random(StdRng::seed_from_u64(1))
        .insecure_random_seed(0)
        .build()
}

/// The clock plugins see through WASI: always the Unix epoch, never moving.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        0
    }
}

fn invalid(plugin: &str, e: &wasmtime::Error) -> PluginError {
    PluginError::Invalid {
        plugin: plugin.to_owned(),
        reason: format!("{e:#}"),
    }
}

fn check_magic(plugin: &str, bytes: &[u8]) -> Result<(), PluginError> {
    if bytes.starts_with(b"\0asm") {
        Ok(())
    } else {
        Err(PluginError::Invalid {
            plugin: plugin.to_owned(),
            reason: "the file is not WebAssembly (it does not start with \\0asm)".to_owned(),
        })
    }
}

/// A compiled plugin, ready to call. Each call runs in a fresh instance.
pub struct LoadedPlugin {
    name: String,
    pre: PluginPre<State>,
    runtime: Runtime,
    limits: Limits,
    readable: Vec<EntityKind>,
    settings: Vec<w::Field>,
    data: Option<Arc<dyn DataAccess>>,
    kv: Option<Arc<dyn KvAccess>>,
}

impl LoadedPlugin {
    /// The plugin's name in errors and logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limits its calls run under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Calls `describe`, then grants the reads the plugin asks for and gives it its declared
    /// setting defaults: how the dev loop, tests and benchmarks run a plugin as its author
    /// meant it. (Installation grants what an admin approves instead.)
    pub fn as_declared(self) -> Result<(Self, w::PluginInfo), PluginError> {
        let (info, _) = self.describe()?;
        let settings = info
            .settings
            .iter()
            .map(|s| w::Field {
                name: s.name.clone(),
                value: s.default.clone(),
            })
            .collect();
        let readable: Vec<EntityKind> = info
            .capabilities
            .read
            .iter()
            .map(|k| kind_from_wit(*k))
            .collect();
        Ok((self.grant_read(readable).with_settings(settings), info))
    }

    /// Grants read access to these kinds through `get` and `query`.
    pub fn grant_read(mut self, kinds: impl IntoIterator<Item = EntityKind>) -> Self {
        self.readable = kinds.into_iter().collect();
        self
    }

    /// Sets the settings the plugin sees.
    pub fn with_settings(mut self, settings: Vec<w::Field>) -> Self {
        self.settings = settings;
        self
    }

    /// Sets one setting, replacing its current value.
    pub fn with_setting(mut self, name: &str, value: w::FieldValue) -> Self {
        self.settings.retain(|f| f.name != name);
        self.settings.push(w::Field {
            name: name.to_owned(),
            value,
        });
        self
    }

    /// Where `get` and `query` read from.
    pub fn with_data(mut self, data: Arc<dyn DataAccess>) -> Self {
        self.data = Some(data);
        self
    }

    /// Where `kv-get` reads from (without it, storage starts empty on every call).
    pub fn with_kv(mut self, kv: Arc<dyn KvAccess>) -> Self {
        self.kv = Some(kv);
        self
    }

    /// Tightens the limits (they never exceed the runtime's).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        let max = self.runtime.shared.limits;
        self.limits = Limits {
            hook_timeout: limits.hook_timeout.min(max.hook_timeout),
            report_timeout: limits.report_timeout.min(max.report_timeout),
            memory: limits.memory.min(max.memory),
            max_input: limits.max_input.min(max.max_input),
            max_output: limits.max_output.min(max.max_output),
            max_log: limits.max_log.min(max.max_log),
            kv_quota: limits.kv_quota.min(max.kv_quota),
        };
        self
    }

    /// Calls `describe`.
    pub fn describe(&self) -> Result<(w::PluginInfo, CallReport), PluginError> {
        let (info, report) = self.call("describe", self.limits.hook_timeout, |s, p| {
            p.call_describe(s)
        })?;
        self.check_output("describe", info_size(&info))?;
        Ok((info, report))
    }

    /// Calls `score` with a batch of entities.
    pub fn score(
        &self,
        scorer: &str,
        entities: &[w::Entity],
        now: i64,
    ) -> Result<(Vec<w::Score>, CallReport), PluginError> {
        self.check_input("score", entities.iter().map(entity_size).sum())?;
        // A batch gets the hook deadline once per SCORE_SHARE entities: one call does the work
        // of many, and a runaway plugin is still stopped in proportion to what it was given.
        let shares = u32::try_from(entities.len().div_ceil(SCORE_SHARE).max(1)).unwrap_or(u32::MAX);
        let limit = self.limits.hook_timeout.saturating_mul(shares);
        let (scores, report) = self.call("score", limit, |s, p| {
            p.call_score(s, scorer, entities, now)
        })?;
        let size = scores
            .iter()
            .map(|sc| {
                16 + sc.id.len() + sc.reasons.iter().map(|r| 8 + r.reason.len()).sum::<usize>()
            })
            .sum();
        self.check_output("score", size)?;
        Ok((scores, report))
    }

    /// Calls `validate`: `Ok(Err(errors))` when the plugin rejects the record.
    pub fn validate(
        &self,
        entity: &w::Entity,
        before: Option<&w::Entity>,
        now: i64,
    ) -> Result<(Result<(), Vec<w::FieldError>>, CallReport), PluginError> {
        let size = entity_size(entity) + before.map_or(0, entity_size);
        self.check_input("validate", size)?;
        let (verdict, report) = self.call("validate", self.limits.hook_timeout, |s, p| {
            p.call_validate(s, entity, before, now)
        })?;
        if let Err(errors) = &verdict {
            let size = errors.iter().map(|e| e.field.len() + e.message.len()).sum();
            self.check_output("validate", size)?;
        }
        Ok((verdict, report))
    }

    /// Calls `compute-fields`.
    pub fn compute_fields(
        &self,
        entity: &w::Entity,
        now: i64,
    ) -> Result<(Vec<w::Field>, CallReport), PluginError> {
        self.check_input("compute-fields", entity_size(entity))?;
        let (fields, report) = self.call("compute-fields", self.limits.hook_timeout, |s, p| {
            p.call_compute_fields(s, entity, now)
        })?;
        let size = fields
            .iter()
            .map(|f| f.name.len() + value_size(&f.value))
            .sum();
        self.check_output("compute-fields", size)?;
        Ok((fields, report))
    }

    /// Calls `on-event`; a plugin's `err` becomes [`PluginError::Failed`].
    pub fn on_event(
        &self,
        event: &w::Event,
        now: i64,
    ) -> Result<(Vec<w::Action>, CallReport), PluginError> {
        self.check_input("on-event", event_size(event))?;
        let (verdict, report) = self.call("on-event", self.limits.hook_timeout, |s, p| {
            p.call_on_event(s, event, now)
        })?;
        self.actions("on-event", verdict, report)
    }

    /// Calls `on-timer`; a plugin's `err` becomes [`PluginError::Failed`].
    pub fn on_timer(
        &self,
        payload: &str,
        due: i64,
        now: i64,
    ) -> Result<(Vec<w::Action>, CallReport), PluginError> {
        self.check_input("on-timer", payload.len())?;
        let (verdict, report) = self.call("on-timer", self.limits.hook_timeout, |s, p| {
            p.call_on_timer(s, payload, due, now)
        })?;
        self.actions("on-timer", verdict, report)
    }

    fn actions(
        &self,
        hook: &'static str,
        verdict: Result<Vec<w::Action>, String>,
        report: CallReport,
    ) -> Result<(Vec<w::Action>, CallReport), PluginError> {
        match verdict {
            Ok(actions) => {
                self.check_output(hook, actions.iter().map(action_size).sum())?;
                Ok((actions, report))
            }
            Err(reason) => Err(PluginError::Failed {
                plugin: self.name.clone(),
                hook,
                reason: truncate(reason, 1000),
            }),
        }
    }

    /// Calls `run-report` under the (longer) report time limit. With `data`, the report
    /// reads through it instead of the plugin's usual access (the caller's view of records).
    pub fn run_report(
        &self,
        id: &str,
        parameters: &[w::Field],
        now: i64,
        data: Option<Arc<dyn DataAccess>>,
    ) -> Result<(w::ReportTable, CallReport), PluginError> {
        let size = id.len()
            + parameters
                .iter()
                .map(|f| f.name.len() + value_size(&f.value))
                .sum::<usize>();
        self.check_input("run-report", size)?;
        let (verdict, report) =
            self.call_with("run-report", self.limits.report_timeout, data, |s, p| {
                p.call_run_report(s, id, parameters, now)
            })?;
        match verdict {
            Ok(table) => {
                let size = table
                    .rows
                    .iter()
                    .map(|r| r.iter().map(value_size).sum::<usize>() + 8)
                    .sum::<usize>()
                    + table
                        .columns
                        .iter()
                        .map(|c| c.name.len() + c.label.len())
                        .sum::<usize>();
                self.check_output("run-report", size)?;
                Ok((table, report))
            }
            Err(reason) => Err(PluginError::Failed {
                plugin: self.name.clone(),
                hook: "run-report",
                reason: truncate(reason, 1000),
            }),
        }
    }

    fn check_input(&self, hook: &'static str, size: usize) -> Result<(), PluginError> {
        if size > self.limits.max_input {
            return Err(PluginError::TooLarge {
                plugin: self.name.clone(),
                hook,
                what: "input",
                size,
                limit: self.limits.max_input,
            });
        }
        Ok(())
    }

    fn check_output(&self, hook: &'static str, size: usize) -> Result<(), PluginError> {
        if size > self.limits.max_output {
            return Err(PluginError::TooLarge {
                plugin: self.name.clone(),
                hook,
                what: "output",
                size,
                limit: self.limits.max_output,
            });
        }
        Ok(())
    }

    fn call<T>(
        &self,
        hook: &'static str,
        timeout: Duration,
        f: impl FnOnce(&mut Store<State>, &Bindings) -> wasmtime::Result<T>,
    ) -> Result<(T, CallReport), PluginError> {
        self.call_with(hook, timeout, None, f)
    }

    fn call_with<T>(
        &self,
        hook: &'static str,
        timeout: Duration,
        data: Option<Arc<dyn DataAccess>>,
        f: impl FnOnce(&mut Store<State>, &Bindings) -> wasmtime::Result<T>,
    ) -> Result<(T, CallReport), PluginError> {
        let start = Instant::now();
        let state = State {
            wasi: None,
            table: ResourceTable::new(),
            plugin: self.name.clone(),
            limits: self.limits,
            peak_memory: 0,
            memory_exceeded: false,
            log_bytes: 0,
            report: CallReport::default(),
            data: data.or_else(|| self.data.clone()),
            readable: self.readable.clone(),
            settings: self.settings.clone(),
            kv: self.kv.clone(),
            kv_overlay: BTreeMap::new(),
            kv_base: None,
            denied: None,
        };
        let mut store = Store::new(&self.runtime.shared.engine, state);
        store.limiter(|s| s);
        let ticks = timeout.as_millis().div_ceil(EPOCH_TICK.as_millis()).max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
        let result = self
            .pre
            .instantiate(&mut store)
            .and_then(|instance| f(&mut store, &instance));
        let state = store.into_data();
        let mut report = state.report;
        report.kv_changes = state.kv_overlay.into_iter().collect();
        report.elapsed = start.elapsed();
        report.peak_memory = state.peak_memory;
        let plugin = self.name.clone();
        match result {
            Ok(_) if state.denied.is_some() => Err(PluginError::Denied {
                plugin,
                hook,
                reason: state.denied.unwrap_or_default(),
            }),
            Ok(v) => Ok((v, report)),
            Err(e) => Err(classify(
                e,
                plugin,
                hook,
                timeout,
                &state.limits,
                state.memory_exceeded,
                &report,
            )),
        }
    }
}

fn classify(
    e: wasmtime::Error,
    plugin: String,
    hook: &'static str,
    timeout: Duration,
    limits: &Limits,
    memory_exceeded: bool,
    report: &CallReport,
) -> PluginError {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginError::Timeout {
            plugin,
            hook,
            limit: timeout,
        },
        _ if memory_exceeded => PluginError::Memory {
            plugin,
            hook,
            limit: limits.memory,
        },
        Some(Trap::StackOverflow) => PluginError::Trap {
            plugin,
            hook,
            reason: "stack overflow (unbounded recursion?)".to_owned(),
        },
        trap => {
            // The SDK's panic hook logs "panic: ..." before the trap, which says more than
            // the trap itself ("unreachable").
            let panic = report
                .logs
                .iter()
                .rev()
                .find(|(_, m)| m.starts_with("panic: "))
                .map(|(_, m)| m.clone());
            let reason = match (panic, trap) {
                (Some(p), _) => p,
                (None, Some(t)) => t.to_string(),
                (None, None) => format!("{e:#}"),
            };
            PluginError::Trap {
                plugin,
                hook,
                reason,
            }
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn event_size(e: &w::Event) -> usize {
    64 + e.id.len()
        + e.actor.len()
        + e.changes
            .iter()
            .map(|c| c.field.len() + value_size(&c.before) + value_size(&c.after))
            .sum::<usize>()
}

fn action_size(a: &w::Action) -> usize {
    let fields = |f: &[w::Field]| {
        f.iter()
            .map(|f| f.name.len() + value_size(&f.value))
            .sum::<usize>()
    };
    32 + match a {
        w::Action::UpdateFields(u) => u.id.len() + fields(&u.fields),
        w::Action::CreateTask(t) => {
            t.title.len() + t.linked_id.len() + t.assignee.as_ref().map_or(0, String::len)
        }
        w::Action::LogInteraction(i) => {
            i.body.len() + i.subject.as_ref().map_or(0, String::len) + i.linked_id.len()
        }
        w::Action::AssignOwner(o) => o.id.len() + o.owner.len(),
        w::Action::AddTag(t) | w::Action::RemoveTag(t) => t.id.len() + t.tag.len(),
        w::Action::ChangeTicket(t) => t.id.len() + 16,
        w::Action::MoveDeal(m) => m.id.len() + m.stage.len(),
        w::Action::Schedule(t) => t.payload.len() + t.key.as_ref().map_or(0, String::len),
        w::Action::CancelTimer(k) => k.len(),
    }
}

fn value_size(v: &w::FieldValue) -> usize {
    match v {
        w::FieldValue::Text(s)
        | w::FieldValue::Number(s)
        | w::FieldValue::Money(s)
        | w::FieldValue::Date(s)
        | w::FieldValue::Choice(s)
        | w::FieldValue::Reference(s) => s.len() + 4,
        w::FieldValue::Choices(l) | w::FieldValue::References(l) => {
            l.iter().map(|s| s.len() + 4).sum()
        }
        _ => 9,
    }
}

fn entity_size(e: &w::Entity) -> usize {
    e.id.len()
        + e.fields
            .iter()
            .chain(&e.custom)
            .map(|f| f.name.len() + value_size(&f.value))
            .sum::<usize>()
}

fn info_size(i: &w::PluginInfo) -> usize {
    i.name.len()
        + i.description.len()
        + i.fields
            .iter()
            .map(|f| {
                f.name.len() + f.label.len() + f.options.iter().map(String::len).sum::<usize>()
            })
            .sum::<usize>()
        + i.settings
            .iter()
            .map(|s| s.name.len() + s.label.len() + value_size(&s.default))
            .sum::<usize>()
        + i.scorers
            .iter()
            .map(|s| s.name.len() + s.description.len())
            .sum::<usize>()
        + i.reports
            .iter()
            .map(|r| r.id.len() + r.name.len() + r.description.len())
            .sum::<usize>()
}
