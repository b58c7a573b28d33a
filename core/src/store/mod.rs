//! The store: a redb file, one writer thread that group-commits, and snapshot reads.
//!
//! Writes go through [`Store::submit`]: the command joins a queue; the writer thread takes
//! everything waiting (up to a batch limit), applies each command in one write transaction
//! and commits once; the batch is made durable by one append and sync of the write-ahead log
//! (see [`wal`]), or by a durable redb commit, and only then is each caller answered. A
//! command that fails validation fails alone; the rest of its batch commits. Reads open their
//! own read transaction; they never wait for the writer, only (briefly) for the log to sync
//! a batch they could otherwise see before it is durable.

mod accounts;
mod audit;
mod delivery;
mod plugins;
mod read;
pub mod tables;
mod wal;
mod write;

#[cfg(test)]
mod account_tests;
#[cfg(test)]
mod delivery_tests;
#[cfg(test)]
mod plugin_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable, ReadableTableMetadata};

pub use self::accounts::NewToken;
pub use self::delivery::TimerSummary;
use self::read::Reader;
use self::tables::{FORMAT_KEY, FORMAT_VERSION, META, encode};
pub use self::write::{Command, Input, Outcome};
use self::write::{Ctx, OwnerMemo, Tables};
use crate::account::{Access, Directory};
use crate::clock::Timestamp;
use crate::clock::{Clock, SystemClock};
use crate::custom::FieldDef;
use crate::entity::{AnyRecord, EntityKind};
use crate::error::{Error, StoreError};
use crate::event::Event;
use crate::id::{Id, IdGenerator};
use crate::pipeline::Pipeline;
use crate::plugin::{PluginRecord, StoredScore, WriteHook};
use crate::query::{Page, Query, TimelineItem};
use crate::workflow::{DeliveryState, StoredTimer, TimerRef};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "kith.redb";

/// Who is making a change, as recorded in the event log.
pub type Actor = String;

/// How to open a store.
pub struct StoreConfig {
    /// The data directory; created if missing.
    pub dir: PathBuf,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// The most commands committed in one transaction. 1 turns group commit off (one
    /// transaction and one fsync per command), which exists to measure what group commit buys.
    pub max_batch: usize,
    /// With group commit on, how often at most the redb file is brought up to date with the
    /// write-ahead log (a checkpoint, see [`wal`]); also how long the writer waits idle before
    /// one. Longer means fewer full commits and a longer replay after a crash.
    pub checkpoint_every: Duration,
}

impl StoreConfig {
    /// Defaults: system clock, group commit on with batches of up to 1,024 commands.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            dir: dir.into(),
            clock: Arc::new(SystemClock),
            max_batch: 1024,
            checkpoint_every: CHECKPOINT_EVERY,
        }
    }
}

/// The callback that receives a command's result once its batch is durable.
pub type Reply = Box<dyn FnOnce(Result<Outcome, Error>) + Send>;

/// Like [`Reply`], also given the command's [`Stamp`].
pub type StampedReply = Box<dyn FnOnce(Result<Outcome, Error>, Stamp) + Send>;

/// A command's place in commit order: every committed command gets the next number, so a
/// read that began after the command with stamp `s` committed sees everything up to `s`.
/// Caches use it to tell a fresh copy of a record from one a later write has outdated.
pub type Stamp = u64;

/// What one committed batch changed, as a [`CommitObserver`] hears it.
#[derive(Debug)]
pub struct Committed<'a> {
    /// Each record whose stored form or scores changed, with the stamp of the command that
    /// changed it last in this batch.
    pub records: &'a [(Id, Stamp)],
    /// Set when the batch changed something every record's presentation may depend on
    /// (field definitions, pipelines, plugins): the stamp of the last such command.
    pub everything: Option<Stamp>,
}

/// Runs after each batch is durable (on the log thread, or the writer's with group commit
/// off), before any caller of the batch hears back,
/// so whoever is told their write is done never finds an observer's view older than it. It
/// must be quick and must not block.
pub type CommitObserver = Arc<dyn Fn(&Committed<'_>) + Send + Sync>;

struct Job {
    cmd: Command,
    actor: Actor,
    reply: StampedReply,
}

struct Shared {
    /// `None` once closed: `close` drops the database so the file lock is released at once,
    /// even while some handle (say, a finishing HTTP connection) still holds the store.
    db: RwLock<Option<Database>>,
    clock: Arc<dyn Clock>,
    /// Plugin validators and computed fields; read once per batch.
    hook: RwLock<Option<Arc<dyn WriteHook>>>,
    /// Whether the scores table may hold anything. Until a scorer first stores a score,
    /// record reads skip the table (it is one more table to open on the hottest route).
    any_scores: AtomicBool,
    /// The sequence number of the newest committed event, and a signal for threads that
    /// follow the log ([`Store::wait_for_events`]) so they need not poll.
    head: Mutex<u64>,
    head_moved: Condvar,
    /// Accounts, rebuilt after every commit that changed them.
    directory: RwLock<Arc<Directory>>,
    /// The stamp of the newest committed command (0 before the first).
    committed: AtomicU64,
    /// Told about every commit (see [`Store::observe_commits`]).
    observer: RwLock<Option<CommitObserver>>,
    /// Which batches readers may see and which are durable (see [`wal`]).
    durability: wal::Durability,
    path: PathBuf,
}

/// The writer thread and its queue. Dropping the last handle closes the queue and waits for
/// the thread, so the file is released as soon as the last `Store` clone is gone.
struct Writer {
    queue: RwLock<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    fn close(&self) {
        self.queue.write().unwrap_or_else(|p| p.into_inner()).take();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        // A reply or observer may hold the last handle: the writer joins the log thread, so
        // neither thread may wait for the writer. It finishes on its own once the queue is gone.
        if wal::is_log_thread()
            || handle
                .as_ref()
                .is_some_and(|h| h.thread().id() == std::thread::current().id())
        {
            return;
        }
        if let Some(h) = handle
            && h.join().is_err()
        {
            tracing::error!("the writer thread panicked while closing");
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.close();
    }
}

/// A handle to the store; cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    writer: Arc<Writer>,
}

impl Store {
    /// Opens (or creates) the store in `config.dir`.
    pub fn open(config: StoreConfig) -> Result<Store, StoreError> {
        let dir = &config.dir;
        if dir.exists() && !dir.is_dir() {
            return Err(StoreError::Directory {
                path: dir.clone(),
                what: "it is a file, not a directory",
                source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
            });
        }
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
            path: dir.clone(),
            what: "cannot create it",
            source,
        })?;
        let path = dir.join(DB_FILE);
        let db = match Database::create(&path) {
            Ok(db) => db,
            Err(DatabaseError::DatabaseAlreadyOpen) => return Err(StoreError::InUse { path }),
            Err(DatabaseError::Storage(redb::StorageError::Io(source))) => {
                return Err(StoreError::Directory {
                    path,
                    what: "cannot open the database file",
                    source,
                });
            }
            Err(e) => return Err(StoreError::Redb(e.into())),
        };
        init(&db, &path, config.clock.as_ref())?;
        let wal_path = dir.join(wal::WAL_FILE);
        let batch = wal::replay(&db, &wal_path)?;
        let (next_seq, any_scores) = positions(&db)?;
        let directory = accounts::load_directory(&db.begin_read()?).map_err(|e| match e {
            Error::Store(s) => s,
            other => StoreError::Corrupt {
                what: "accounts".to_owned(),
                reason: other.to_string(),
            },
        })?;
        let shared = Arc::new(Shared {
            db: RwLock::new(Some(db)),
            clock: config.clock,
            hook: RwLock::new(None),
            any_scores: AtomicBool::new(any_scores),
            head: Mutex::new(next_seq - 1),
            head_moved: Condvar::new(),
            directory: RwLock::new(Arc::new(directory)),
            committed: AtomicU64::new(0),
            observer: RwLock::new(None),
            durability: wal::Durability::starting_at(batch),
            path,
        });
        let thread_error = |source| StoreError::Directory {
            path: dir.clone(),
            what: "cannot start the writer thread",
            source,
        };
        let max_batch = config.max_batch.max(1);
        // Group commit makes batches durable through the log; with it off, every batch is a
        // durable redb commit, as the measurement of what group commit buys requires.
        let log = if max_batch > 1 {
            let file = wal::LogFile::open(&wal_path)?;
            let (tx, rx) = mpsc::channel();
            let (spare_tx, spare) = mpsc::sync_channel(SPARE_BUFFERS);
            let log_shared = shared.clone();
            let thread = std::thread::Builder::new()
                .name("kith-log".to_owned())
                .spawn(move || log_loop(&log_shared, file, &rx, &spare_tx))
                .map_err(thread_error)?;
            Some(LogLink {
                tx,
                spare,
                thread,
                last_checkpoint: Instant::now(),
                bytes_since: 0,
                pending: false,
            })
        } else {
            None
        };
        let state = WriterState {
            ids: IdGenerator::new(),
            next_seq,
            next_stamp: 1,
            batch,
            owners: OwnerMemo::new(),
            log,
            checkpoint_every: config.checkpoint_every,
        };
        let (tx, rx) = mpsc::channel();
        let writer_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("kith-writer".to_owned())
            .spawn(move || writer_loop(&writer_shared, &rx, max_batch, state))
            .map_err(thread_error)?;
        Ok(Store {
            shared,
            writer: Arc::new(Writer {
                queue: RwLock::new(Some(tx)),
                thread: Mutex::new(Some(handle)),
            }),
        })
    }

    /// The stamp of the newest committed command. Read it before a read begins: the read
    /// then sees at least everything up to it.
    pub fn committed(&self) -> Stamp {
        self.shared.committed.load(Ordering::Acquire)
    }

    /// Makes `observer` hear of every later commit (replacing any earlier one).
    pub fn observe_commits(&self, observer: CommitObserver) {
        *self
            .shared
            .observer
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(observer);
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The store's clock.
    pub fn clock(&self) -> &dyn Clock {
        self.shared.clock.as_ref()
    }

    /// Queues a command; `reply` runs once the command's batch is durable (or with the
    /// command's own error), on the thread that made it so. It must not block; a read it
    /// makes sees its batch and possibly later ones not yet durable.
    pub fn submit(&self, cmd: Command, actor: &str, reply: Reply) {
        self.submit_stamped(cmd, actor, Box::new(move |result, _| reply(result)));
    }

    /// Like [`Store::submit`]; `reply` is also given the command's [`Stamp`] (meaningful
    /// only for a command that succeeded).
    pub fn submit_stamped(&self, cmd: Command, actor: &str, reply: StampedReply) {
        let queue = self.writer.queue.read().unwrap_or_else(|p| p.into_inner());
        let job = Job {
            cmd,
            actor: actor.to_owned(),
            reply,
        };
        match queue.as_ref() {
            Some(tx) => {
                if let Err(mpsc::SendError(job)) = tx.send(job) {
                    (job.reply)(Err(Error::ShuttingDown), 0);
                }
            }
            None => (job.reply)(Err(Error::ShuttingDown), 0),
        }
    }

    /// Runs one command and waits for it to be durable. Blocks the calling thread.
    pub fn execute(&self, cmd: Command, actor: &str) -> Result<Outcome, Error> {
        self.execute_all(vec![cmd], actor)
            .pop()
            .unwrap_or(Err(Error::ShuttingDown))
    }

    /// Queues many commands at once (they share batches) and waits for all of them.
    pub fn execute_all(&self, cmds: Vec<Command>, actor: &str) -> Vec<Result<Outcome, Error>> {
        let receivers: Vec<Receiver<Result<Outcome, Error>>> = cmds
            .into_iter()
            .map(|cmd| {
                let (tx, rx) = mpsc::sync_channel(1);
                self.submit(
                    cmd,
                    actor,
                    Box::new(move |r| {
                        // The receiver is waiting below, so this send cannot find it gone.
                        let _ = tx.send(r);
                    }),
                );
                rx
            })
            .collect();
        receivers
            .into_iter()
            .map(|rx| rx.recv().unwrap_or(Err(Error::ShuttingDown)))
            .collect()
    }

    fn reader(&self) -> Result<Reader, Error> {
        let txn = {
            let db = self.shared.db.read().unwrap_or_else(|p| p.into_inner());
            db.as_ref().ok_or(Error::ShuttingDown)?.begin_read()?
        };
        // The snapshot may hold batches the log has not synced yet: wait for them (at most one
        // fsync), so nobody reads a write that a crash could still take back.
        self.shared
            .durability
            .wait_for_visible()
            .map_err(|()| log_failed())?;
        Ok(Reader::new(txn))
    }

    /// Users, teams, tokens, sessions and settings as of the last commit (cheap: a shared
    /// snapshot, rebuilt only when accounts change).
    pub fn directory(&self) -> Arc<Directory> {
        self.shared
            .directory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The store as seen by someone with `access`: every read through it leaves out records
    /// they may not see (see [`Scoped`]).
    pub fn scoped(&self, access: Access) -> Scoped {
        Scoped {
            store: self.clone(),
            access: (!access.sees_all).then_some(access),
        }
    }

    /// One record.
    pub fn get(&self, kind: EntityKind, id: Id) -> Result<AnyRecord, Error> {
        self.reader()?.get(kind, id)
    }

    /// A page of records.
    pub fn list(&self, kind: EntityKind, q: &Query) -> Result<Page<AnyRecord>, Error> {
        self.reader()?.list(kind, q)
    }

    /// How many records match the query's filters (its sort and paging are ignored).
    pub fn count(&self, kind: EntityKind, q: &Query) -> Result<u64, Error> {
        self.reader()?.count(kind, q)
    }

    /// Everything that touched a record, newest first.
    pub fn timeline(
        &self,
        kind: EntityKind,
        id: Id,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<TimelineItem>, Error> {
        self.reader()?.timeline(kind, id, limit, cursor)
    }

    /// Events with a sequence number above `after`, oldest first.
    pub fn events(&self, after: u64, limit: usize) -> Result<Vec<Event>, Error> {
        self.reader()?.events(after, limit)
    }

    /// One record's changes (created, each update, deleted), newest first, older than the
    /// event `before` when given; `NotFound` for a record that neither exists nor has
    /// history.
    pub fn history(
        &self,
        kind: EntityKind,
        id: Id,
        before: Option<u64>,
        limit: usize,
    ) -> Result<crate::audit::AuditPage, Error> {
        self.reader()?
            .history(kind, id, before, limit.clamp(1, 1000))
    }

    /// Searches the whole event log, newest first (see [`crate::audit::AuditQuery`]).
    pub fn audit(&self, q: &crate::audit::AuditQuery) -> Result<crate::audit::AuditPage, Error> {
        let mut q = q.clone();
        q.limit = q.limit.clamp(1, 1000);
        self.reader()?.audit(&q)
    }

    /// The sequence number of the newest event (0 when the log is empty).
    pub fn last_event_seq(&self) -> Result<u64, Error> {
        self.reader()?.last_seq()
    }

    /// Waits until the log holds an event after `after`, or `timeout` passes; returns the
    /// newest committed sequence number either way. For threads that follow the log.
    pub fn wait_for_events(&self, after: u64, timeout: Duration) -> u64 {
        let head = self.shared.head.lock().unwrap_or_else(|p| p.into_inner());
        if *head > after {
            return *head;
        }
        let (head, _) = self
            .shared
            .head_moved
            .wait_timeout_while(head, timeout, |h| *h <= after)
            .unwrap_or_else(|p| p.into_inner());
        *head
    }

    /// A plugin's place in the event log and its recent delivery failures (`None` for a
    /// plugin that is not installed or predates workflow delivery).
    pub fn delivery_state(&self, plugin: &str) -> Result<Option<DeliveryState>, Error> {
        self.reader()?.delivery_state(plugin)
    }

    /// A plugin's timers due at `now` or earlier, soonest first, at most `limit`.
    pub fn due_timers(
        &self,
        plugin: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(TimerRef, StoredTimer)>, Error> {
        self.reader()?.due_timers(plugin, now, limit)
    }

    /// How many timers a plugin has pending, with the first `limit` of them.
    pub fn timers(&self, plugin: &str, limit: usize) -> Result<TimerSummary, Error> {
        self.reader()?.timers(plugin, limit)
    }

    /// Checks that every secondary index matches the records exactly; returns one line per
    /// discrepancy (none means consistent).
    pub fn verify_indexes(&self) -> Result<Vec<String>, Error> {
        self.reader()?.verify()
    }

    /// The custom fields of a kind.
    pub fn field_defs(&self, kind: EntityKind) -> Result<Vec<FieldDef>, Error> {
        self.reader()?.field_defs(kind)
    }

    /// All pipelines.
    pub fn pipelines(&self) -> Result<Vec<Pipeline>, Error> {
        self.reader()?.pipelines()
    }

    /// The number of records of each kind.
    pub fn counts(&self) -> Result<Vec<(EntityKind, u64)>, Error> {
        let r = self.reader()?;
        EntityKind::ALL
            .into_iter()
            .map(|k| Ok((k, r.count_all(k)?)))
            .collect()
    }

    /// Installs (or with `None` removes) the hook that runs plugin validators and computed
    /// fields inside the write path. Batches that start afterwards use it.
    pub fn set_write_hook(&self, hook: Option<Arc<dyn WriteHook>>) {
        *self.shared.hook.write().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    /// Installed plugins.
    pub fn plugins(&self) -> Result<Vec<PluginRecord>, Error> {
        self.reader()?.plugins()
    }

    /// One installed plugin.
    pub fn plugin(&self, id: &str) -> Result<Option<PluginRecord>, Error> {
        self.reader()?.plugin(id)
    }

    /// A stored plugin binary by its SHA-256 (hex).
    pub fn plugin_wasm(&self, hash: &str) -> Result<Option<Vec<u8>>, Error> {
        self.reader()?.plugin_wasm(hash)
    }

    /// One value from a plugin's private storage.
    pub fn plugin_kv(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.reader()?.plugin_kv(plugin, key)
    }

    /// Bytes (keys plus values) a plugin keeps in its private storage.
    pub fn plugin_kv_usage(&self, plugin: &str) -> Result<usize, Error> {
        self.reader()?.plugin_kv_usage(plugin)
    }

    /// One record and its scores, from one snapshot.
    pub fn get_with_scores(
        &self,
        kind: EntityKind,
        id: Id,
    ) -> Result<(AnyRecord, Vec<(String, StoredScore)>), Error> {
        let r = self.reader()?;
        let record = r.get(kind, id)?;
        let scores = if self.shared.any_scores.load(Ordering::Acquire) {
            r.scores(id)?
        } else {
            Vec::new()
        };
        Ok((record, scores))
    }

    /// The scores plugins gave a record, by `plugin/scorer`.
    pub fn scores(&self, id: Id) -> Result<Vec<(String, StoredScore)>, Error> {
        if !self.shared.any_scores.load(Ordering::Acquire) {
            return Ok(Vec::new());
        }
        self.reader()?.scores(id)
    }

    /// Ids of the records of `kind` that refer to `target`.
    pub fn referrers(&self, target: Id, kind: EntityKind) -> Result<Vec<Id>, Error> {
        self.reader()?.referrers_of(target, kind)
    }

    /// Stops taking writes, lets the writer finish every queued command, waits for it, then
    /// closes the database file. Later writes and reads fail with [`Error::ShuttingDown`].
    pub fn close(&self) {
        self.writer.close();
        let db = self
            .shared
            .db
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(db);
    }

    /// Every record of `kind` decoded as `T`, handed to `f` in id order, all from one
    /// snapshot; returns that snapshot's newest event sequence number.
    ///
    /// `T` may be a view naming only the fields the caller needs (records are maps with named
    /// fields; the rest are skipped unbuilt). Because the records and the sequence number
    /// come from the same read transaction, a projection built from them and then advanced
    /// with [`Store::changes_as`] from that number misses and repeats nothing.
    pub fn scan_as<T: serde::de::DeserializeOwned>(
        &self,
        kind: EntityKind,
        mut f: impl FnMut(Id, T) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        let r = self.reader()?;
        let seq = r.last_seq()?;
        r.scan_as(kind, &mut f)?;
        Ok(seq)
    }

    /// What happened to records of `kind` after event `after`, from one snapshot: hands `f`,
    /// for every record of `kind` an event after `after` touched, once each and in id order,
    /// its state in the snapshot decoded as `T` (`None` when it no longer exists); returns
    /// that snapshot's newest event sequence number, the position to ask from next time.
    pub fn changes_as<T: serde::de::DeserializeOwned>(
        &self,
        kind: EntityKind,
        after: u64,
        mut f: impl FnMut(Id, Option<T>) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        let r = self.reader()?;
        let seq = r.last_seq()?;
        if seq > after {
            for id in r.changed_ids(kind, after)? {
                f(id, r.get_as(kind, id)?)?;
            }
        }
        Ok(seq)
    }
}

/// Reads limited to what one caller may see: a record they may not see is not found, and
/// lists, counts, timelines and history leave such records out. Made by [`Store::scoped`].
#[derive(Clone)]
pub struct Scoped {
    store: Store,
    /// `None` when the caller sees everything (the common case, kept free of checks).
    access: Option<Access>,
}

impl Scoped {
    fn reader(&self) -> Result<Reader, Error> {
        Ok(self.store.reader()?.restricted(self.access.clone()))
    }

    /// The unrestricted store, for what is not a record (definitions, pipelines, plugins).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether some records are hidden from this caller.
    pub fn is_restricted(&self) -> bool {
        self.access.is_some()
    }

    /// The restriction, when there is one.
    pub fn access(&self) -> Option<&Access> {
        self.access.as_ref()
    }

    /// One record ([`Error::NotFound`] when it exists but is not visible).
    pub fn get(&self, kind: EntityKind, id: Id) -> Result<AnyRecord, Error> {
        self.reader()?.get(kind, id)
    }

    /// One record and its scores.
    pub fn get_with_scores(
        &self,
        kind: EntityKind,
        id: Id,
    ) -> Result<(AnyRecord, Vec<(String, StoredScore)>), Error> {
        let record = self.get(kind, id)?;
        Ok((record, self.store.scores(id)?))
    }

    /// A page of the visible records.
    pub fn list(&self, kind: EntityKind, q: &Query) -> Result<Page<AnyRecord>, Error> {
        self.reader()?.list(kind, q)
    }

    /// How many visible records match.
    pub fn count(&self, kind: EntityKind, q: &Query) -> Result<u64, Error> {
        self.reader()?.count(kind, q)
    }

    /// The number of visible records of each kind (for a caller who sees everything, the
    /// table lengths; otherwise each kind is counted through the access rule).
    pub fn counts(&self) -> Result<Vec<(EntityKind, u64)>, Error> {
        if !self.is_restricted() {
            return self.store.counts();
        }
        let r = self.reader()?;
        EntityKind::ALL
            .into_iter()
            .map(|k| Ok((k, r.count(k, &Query::default())?)))
            .collect()
    }

    /// A visible record's timeline, without the linked records the caller may not see.
    pub fn timeline(
        &self,
        kind: EntityKind,
        id: Id,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<TimelineItem>, Error> {
        self.reader()?.timeline(kind, id, limit, cursor)
    }

    /// A visible record's history (a deleted record's only for callers who see everything).
    pub fn history(
        &self,
        kind: EntityKind,
        id: Id,
        before: Option<u64>,
        limit: usize,
    ) -> Result<crate::audit::AuditPage, Error> {
        let r = self.reader()?;
        if self.access.is_some() {
            r.get(kind, id)?;
        }
        r.history(kind, id, before, limit.clamp(1, 1000))
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.shared.path)
            .finish()
    }
}

/// Creates the tables and default pipeline in a new file, or checks an existing file's
/// format version and brings an older one up to this build's.
fn init(db: &Database, path: &Path, clock: &dyn Clock) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        let found = match meta.get(FORMAT_KEY)? {
            Some(v) => {
                let bytes: [u8; 4] = v.value().try_into().map_err(|_| StoreError::Corrupt {
                    what: "format version".to_owned(),
                    reason: "not 4 bytes".to_owned(),
                })?;
                Some(u32::from_le_bytes(bytes))
            }
            None => None,
        };
        match found {
            Some(v) if v > FORMAT_VERSION => {
                return Err(StoreError::NewerFormat {
                    path: path.to_owned(),
                    found: v,
                    supported: FORMAT_VERSION,
                });
            }
            // Version 1 had no write-ahead log; its tables are unchanged.
            Some(v) if v < FORMAT_VERSION => {
                meta.insert(FORMAT_KEY, FORMAT_VERSION.to_le_bytes().as_slice())?;
                tracing::info!(path = %path.display(), from = v, to = FORMAT_VERSION, "upgraded the database format");
            }
            Some(_) => {}
            None => {
                meta.insert(FORMAT_KEY, FORMAT_VERSION.to_le_bytes().as_slice())?;
                let mut pipelines = txn.open_table(tables::PIPELINES)?;
                let p = Pipeline::default_sales();
                let bytes = encode(&p)?;
                pipelines.insert(p.key.as_str(), bytes.as_slice())?;
                tracing::info!(path = %path.display(), at = %clock.now(), "created a new database");
            }
        }
        // Open every table so readers never meet a missing one.
        for kind in EntityKind::ALL {
            txn.open_table(tables::records(kind))?;
        }
        txn.open_table(tables::UNIQUE)?;
        txn.open_table(tables::TEXT)?;
        txn.open_table(tables::REFS)?;
        txn.open_table(tables::TIME)?;
        txn.open_table(tables::EVENTS)?;
        txn.open_table(tables::EVENTS_BY_RECORD)?;
        txn.open_table(tables::FIELD_DEFS)?;
        txn.open_table(tables::PIPELINES)?;
        txn.open_table(tables::PLUGINS)?;
        txn.open_table(tables::PLUGIN_BLOBS)?;
        txn.open_table(tables::PLUGIN_KV)?;
        txn.open_table(tables::SCORES)?;
        txn.open_table(tables::PLUGIN_DELIVERY)?;
        txn.open_table(tables::TIMERS)?;
        txn.open_table(tables::TIMER_KEYS)?;
        accounts::create_tables(&txn)?;
    }
    txn.commit()?;
    Ok(())
}

/// The next event sequence number, and whether any score is stored.
fn positions(db: &Database) -> Result<(u64, bool), StoreError> {
    let txn = db.begin_read()?;
    let last = txn
        .open_table(tables::EVENTS)?
        .last()?
        .map(|(k, _)| k.value())
        .unwrap_or(0);
    let any_scores = !txn.open_table(tables::SCORES)?.is_empty()?;
    Ok((last + 1, any_scores))
}

fn reload_directory(shared: &Shared) {
    let loaded = (|| -> Result<Directory, Error> {
        let db = shared.db.read().unwrap_or_else(|p| p.into_inner());
        let txn = db.as_ref().ok_or(Error::ShuttingDown)?.begin_read()?;
        accounts::load_directory(&txn)
    })();
    match loaded {
        Ok(d) => *shared.directory.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(d),
        // The old directory stays; it can only be missing what this batch added.
        Err(e) => tracing::error!(error = %e, "cannot reload accounts after a commit"),
    }
}

/// The default [`StoreConfig::checkpoint_every`]: the log stays short and a restart after a
/// crash replays little.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// ...and once this many bytes went to the log since the last checkpoint.
const CHECKPOINT_BYTES: usize = 64 << 20;

/// The most resolved owners the writer keeps between batches.
const OWNER_MEMO_MAX: usize = 4096;

/// How many written redo buffers the log thread keeps for the writer to build records in...
const SPARE_BUFFERS: usize = 4;
/// ...and the largest it keeps: a rare huge batch should not pin its memory for ever.
const SPARE_MAX: usize = 4 << 20;

/// What the writer thread carries from batch to batch.
struct WriterState {
    /// One generator for the writer's whole life: ids made within one millisecond stay in
    /// creation order only while the same generator's counter makes them.
    ids: IdGenerator,
    next_seq: u64,
    /// The stamp the next committed command gets.
    next_stamp: Stamp,
    /// The number of the newest batch begun (see [`wal`]).
    batch: u64,
    /// Owners resolved by earlier batches (see [`OwnerMemo`]).
    owners: OwnerMemo,
    /// The log thread and what it has been sent since the last checkpoint; `None` with group
    /// commit off, when every batch commits durably.
    log: Option<LogLink>,
    checkpoint_every: Duration,
}

struct LogLink {
    tx: Sender<Sealed>,
    /// Buffers of records the log thread has written, for the next batches' redo records.
    spare: Receiver<Vec<u8>>,
    thread: JoinHandle<()>,
    last_checkpoint: Instant,
    bytes_since: usize,
    /// Whether some batch since the last checkpoint is durable only in the log.
    pending: bool,
}

impl WriterState {
    /// How long the writer may wait for work before a checkpoint is due; `None` when
    /// nothing waits for one.
    fn checkpoint_wait(&self) -> Option<Duration> {
        let log = self.log.as_ref().filter(|l| l.pending)?;
        Some(
            self.checkpoint_every
                .saturating_sub(log.last_checkpoint.elapsed()),
        )
    }

    fn checkpoint_due(&self) -> bool {
        self.log.as_ref().is_some_and(|l| {
            l.pending
                && (l.bytes_since >= CHECKPOINT_BYTES
                    || l.last_checkpoint.elapsed() >= self.checkpoint_every)
        })
    }
}

fn writer_loop(shared: &Arc<Shared>, rx: &Receiver<Job>, max_batch: usize, mut w: WriterState) {
    // `recv` keeps returning queued jobs after the senders are gone, so closing drains the
    // queue before the loop ends.
    // A job that must run alone ends the batch being gathered and waits here for its turn.
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => {
                let next = match w.checkpoint_wait() {
                    Some(wait) => rx.recv_timeout(wait),
                    None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match next {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) => {
                        run_batch(shared, Vec::new(), &mut w, false);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        if first.cmd.needs_own_transaction() {
            run_batch(shared, vec![first], &mut w, true);
            continue;
        }
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) if job.cmd.needs_own_transaction() => {
                    carried = Some(job);
                    break;
                }
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(shared, batch, &mut w, false);
    }
    // Closing: a last checkpoint, so the redb file alone holds everything and the next open
    // replays nothing.
    if w.log.as_ref().is_some_and(|l| l.pending) {
        run_batch(shared, Vec::new(), &mut w, false);
    }
    if let Some(log) = w.log.take() {
        drop(log.tx);
        if log.thread.join().is_err() {
            tracing::error!("the write-ahead log thread panicked");
        }
    }
}

/// A committed (or failed) batch on its way to its callers.
struct Finished {
    /// The batch's number (see [`wal`]).
    number: u64,
    /// Whether the batch committed anything; `Err` with the reason when its transaction
    /// failed, which fails every command in it.
    wrote: Result<bool, String>,
    results: Vec<(StampedReply, Result<Outcome, Error>)>,
    /// What the batch changed, for the commit observer.
    changed: Vec<(Id, Stamp)>,
    everything: Option<Stamp>,
    accounts_changed: bool,
    first_stamp: Stamp,
    /// The newest event's sequence number after the batch.
    head: u64,
}

/// A batch handed to the log thread.
struct Sealed {
    /// The framed redo record, empty when the batch wrote nothing or committed durably.
    bytes: Vec<u8>,
    /// Whether the batch's redb commit was durable: everything before it is on disk.
    checkpoint: bool,
    finished: Finished,
}

/// Applies a batch in one transaction and commits it. With `alone` (a single job that must
/// be all-or-nothing) a failed job aborts the transaction instead, taking back whatever it
/// wrote before failing. An empty batch is a checkpoint.
///
/// With the log on, a batch of record writes commits without durability and its callers hear
/// back once the log thread has synced its redo record; any other batch commits durably.
fn run_batch(shared: &Shared, batch: Vec<Job>, w: &mut WriterState, alone: bool) {
    if shared.durability.failed() {
        for job in batch {
            (job.reply)(Err(log_failed()), 0);
        }
        return;
    }
    let start_seq = w.next_seq;
    w.batch += 1;
    let number = w.batch;
    let accounts_changed = batch.iter().any(|j| j.cmd.touches_accounts());
    let logged = w.log.is_some() && !batch.is_empty() && batch.iter().all(|j| j.cmd.is_logged());
    let mut durable = !logged || w.checkpoint_due();
    let first_stamp = w.next_stamp;
    let mut results: Vec<(StampedReply, Result<Outcome, Error>)> = Vec::with_capacity(batch.len());
    let mut changed: Vec<(Id, Stamp)> = Vec::new();
    let mut everything = None;
    let mut redo = Vec::new();
    let mut redo_buf = (!durable).then(|| {
        w.log
            .as_ref()
            .and_then(|l| l.spare.try_recv().ok())
            .unwrap_or_default()
    });
    let mut owners = std::mem::take(&mut w.owners);
    let committed = (|| -> Result<bool, Error> {
        let db = shared.db.read().unwrap_or_else(|p| p.into_inner());
        let mut txn = db.as_ref().ok_or(Error::ShuttingDown)?.begin_write()?;
        if !durable {
            txn.set_durability(redb::Durability::None)
                .map_err(|e| StoreError::Redb(redb::Error::from(e)))?;
        }
        let hook = shared
            .hook
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        {
            let mut tables = Tables::open(&txn, redo_buf.take(), std::mem::take(&mut owners))?;
            let mut jobs = batch.into_iter();
            while let Some(job) = jobs.next() {
                let mut ctx = Ctx {
                    now: shared.clock.now(),
                    backdated: false,
                    actor: &job.actor,
                    ids: &w.ids,
                    next_seq: &mut w.next_seq,
                    hook: hook.as_deref(),
                    depth: 0,
                    access: None,
                };
                if matches!(job.cmd, Command::PutScores(_)) {
                    // Set before the commit: a reader that then looks finds nothing, never
                    // misses a committed score.
                    shared.any_scores.store(true, Ordering::Release);
                }
                let stamp = first_stamp + results.len() as Stamp;
                let schema = job.cmd.changes_schema();
                let result = tables.apply(job.cmd, &mut ctx);
                // A failed command may have touched records before failing; calling them
                // changed costs an observer a re-read, never a stale answer.
                tables.touched.dedup();
                changed.extend(tables.touched.drain(..).map(|id| (id, stamp)));
                if schema && result.is_ok() {
                    everything = Some(stamp);
                }
                if let Err(Error::Store(e)) = &result {
                    // A storage failure may have left partial writes: abort everything.
                    tracing::error!(error = %e, "storage error inside a batch; aborting it");
                    let reason = e.to_string();
                    results.push((
                        job.reply,
                        Err(Error::Store(StoreError::Corrupt {
                            what: "write batch".to_owned(),
                            reason: reason.clone(),
                        })),
                    ));
                    // The jobs not yet applied fail with the batch (their results are
                    // replaced by its error), rather than going unanswered.
                    for rest in jobs {
                        results.push((rest.reply, Err(Error::ShuttingDown)));
                    }
                    return Err(Error::Store(StoreError::Corrupt {
                        what: "write batch".to_owned(),
                        reason,
                    }));
                }
                results.push((job.reply, result));
            }
            if !durable {
                redo = tables.redo.as_ref().map(|r| r.take()).unwrap_or_default();
            }
            owners = tables.owners.take();
        }
        if !durable && wal::ops_len(&redo) > wal::MAX_RECORD {
            // Too big for one log record: this batch is a checkpoint instead.
            txn.set_durability(redb::Durability::Immediate)
                .map_err(|e| StoreError::Redb(redb::Error::from(e)))?;
            durable = true;
            redo.clear();
        }
        if alone && results.iter().any(|(_, r)| r.is_err()) {
            txn.abort()?;
            return Ok(false);
        }
        txn.open_table(META)?
            .insert(wal::BATCH_KEY, number.to_le_bytes().as_slice())?;
        if w.log.is_some() {
            // Before the commit: a reader that sees this batch also sees its number, and
            // waits for the log to sync it (see `Store::reader`).
            shared.durability.publish_visible(number);
        }
        txn.commit()?;
        Ok(true)
    })();
    let wrote = match committed {
        Ok(wrote) => Ok(wrote),
        Err(e) => Err(e.to_string()),
    };
    // Kept only from a committed batch (an aborted one may have resolved users it made), and
    // bounded, so an import naming many owners does not keep them all for good.
    if wrote == Ok(true) && owners.len() <= OWNER_MEMO_MAX {
        w.owners = owners;
    }
    if wrote == Ok(true) {
        w.next_stamp += results.len() as Stamp;
    } else {
        w.next_seq = start_seq;
    }
    let finished = Finished {
        number,
        wrote,
        results,
        changed,
        everything,
        accounts_changed,
        first_stamp,
        head: w.next_seq - 1,
    };
    let Some(log) = w.log.as_mut() else {
        finish(shared, finished);
        return;
    };
    let bytes = if finished.wrote == Ok(true) && !durable {
        log.pending = true;
        let framed = wal::seal(number, redo);
        log.bytes_since += framed.len();
        framed
    } else {
        Vec::new()
    };
    let checkpoint = durable && finished.wrote == Ok(true);
    if checkpoint {
        log.pending = false;
        log.bytes_since = 0;
    }
    if durable {
        // Also after a failed checkpoint: the next try waits its turn rather than spinning.
        log.last_checkpoint = Instant::now();
    }
    let sealed = Sealed {
        bytes,
        checkpoint,
        finished,
    };
    if let Err(mpsc::SendError(sealed)) = log.tx.send(sealed) {
        // The log thread is gone (it panicked): nothing more can become durable.
        shared.durability.fail();
        fail_all(sealed.finished);
    }
}

fn log_failed() -> Error {
    Error::Store(StoreError::Corrupt {
        what: "write-ahead log".to_owned(),
        reason: "the write-ahead log could not be written, so whether this write was kept is \
                 unknown; restart the server and check"
            .to_owned(),
    })
}

/// Answers every command of a batch that could not be made durable with an error.
fn fail_all(finished: Finished) {
    for (reply, _) in finished.results {
        reply(Err(log_failed()), 0);
    }
}

/// The log thread: appends the redo records waiting, syncs once for all of them, then lets
/// their batches finish; empties the file after each checkpoint.
fn log_loop(
    shared: &Shared,
    mut file: wal::LogFile,
    rx: &Receiver<Sealed>,
    spare: &SyncSender<Vec<u8>>,
) {
    wal::on_log_thread();
    // Should a reply or an observer panic, nothing after it could become durable: readers
    // waiting for durability must hear so rather than wait for ever.
    let _fail_on_panic = wal::FailOnPanic(&shared.durability);
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while let Ok(more) = rx.try_recv() {
            group.push(more);
        }
        // A durable checkpoint holds everything before it, so what the file holds is no
        // longer needed, and neither are the records of the batches before it here.
        let last_checkpoint = group.iter().rposition(|s| s.checkpoint);
        let after = last_checkpoint.map_or(0, |i| i + 1);
        let buffers: Vec<Vec<u8>> = group
            .iter_mut()
            .map(|s| std::mem::take(&mut s.bytes))
            .collect();
        // Most groups hold one record: it is written as it is, without a copy.
        let joined;
        let mut written = buffers[after..].iter().filter(|b| !b.is_empty());
        let bytes: &[u8] = match (written.next(), written.next()) {
            (None, _) => &[],
            (Some(one), None) => one,
            _ => {
                joined = buffers[after..].concat();
                &joined
            }
        };
        let io = (|| -> std::io::Result<()> {
            if last_checkpoint.is_some() {
                file.checkpointed();
            }
            if !bytes.is_empty() {
                file.append_synced(bytes)?;
            }
            Ok(())
        })();
        for buffer in buffers {
            if buffer.capacity() > 0 && buffer.capacity() <= SPARE_MAX {
                // A full rack means the writer has enough; this one is simply freed.
                let _ = spare.try_send(buffer);
            }
        }
        if let Err(e) = &io {
            tracing::error!(error = %e, path = %file.path().display(), "cannot write the write-ahead log; refusing writes until restarted");
        }
        for (i, sealed) in group.into_iter().enumerate() {
            if (io.is_err() && i >= after) || shared.durability.failed() {
                shared.durability.fail();
                fail_all(sealed.finished);
            } else {
                finish(shared, sealed.finished);
            }
        }
    }
    if let Err(e) = file.close() {
        tracing::warn!(error = %e, "cannot empty the write-ahead log after the last checkpoint");
    }
}

/// Lets a durable batch's callers and observers hear of it, in commit order.
fn finish(shared: &Shared, f: Finished) {
    match f.wrote {
        Ok(wrote) => {
            if wrote {
                if f.accounts_changed {
                    // Before the replies: whoever was told their token exists can use it.
                    reload_directory(shared);
                }
                let observer = shared
                    .observer
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                if let Some(observer) = observer {
                    observer(&Committed {
                        records: &f.changed,
                        everything: f.everything,
                    });
                }
                let last = f.first_stamp + f.results.len() as Stamp - 1;
                shared.committed.store(last, Ordering::Release);
            }
            shared.durability.publish_durable(f.number);
            if wrote {
                let mut head = shared.head.lock().unwrap_or_else(|p| p.into_inner());
                *head = f.head;
                shared.head_moved.notify_all();
            }
            for (i, (reply, result)) in f.results.into_iter().enumerate() {
                reply(result, f.first_stamp + i as Stamp);
            }
        }
        Err(message) => {
            shared.durability.publish_durable(f.number);
            for (reply, _) in f.results {
                reply(
                    Err(Error::Store(StoreError::Corrupt {
                        what: "write batch".to_owned(),
                        reason: message.clone(),
                    })),
                    0,
                );
            }
        }
    }
}
