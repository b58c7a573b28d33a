//! The write-ahead log: what lets group commit answer after one append and one `fdatasync`
//! instead of a durable redb commit.
//!
//! A redb commit that is durable costs the writer a page flush and an fsync, and redb admits
//! no other writer meanwhile, so the writer sits idle for most of every batch. With the log,
//! the writer commits each batch of record writes to redb *without* durability (the pages stay
//! in memory and the page cache) and hands the batch's **redo record** (every key and value it
//! put or removed, table by table) to the log thread. That thread appends whatever records are
//! waiting to `kith.wal`, syncs the file once, and only then answers the batches' callers,
//! while the writer is already applying the next batch. Every so often (and whenever a
//! command outside the record path runs, and at close) the writer commits durably instead: a
//! **checkpoint**. Once a checkpoint is durable the log's records are all in the redb file, so
//! the log thread empties the file.
//!
//! Each redb commit also stores the number of its batch under `meta["wal_batch"]`. After a
//! crash redb comes back at its last durable commit, and [`replay`] applies, in order, every
//! log record with a higher number, then checkpoints. A record is
//! `len u32 | crc32 u32 | batch u64 | ops`, little-endian, the CRC over the batch number and
//! the ops; an op is `table u8 | put 1 / remove 0 | key len u32 | key | (value len u32 |
//! value)`, keys and values in redb's own encoding. Replay stops at the first record that is
//! short, fails its CRC or does not number above the one before it (a torn tail, or what an
//! emptied file still holds past its new end).
//!
//! Readers never see a batch before it is durable: the writer publishes a batch's number as
//! *visible* before its redb commit, and [`Durability::wait_for`] holds a read until the log
//! thread has synced that far (see `Store::reader`).

use std::borrow::Borrow;
use std::cell::RefCell;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use redb::{AccessGuard, Key, ReadableTable, StorageError, Table, TableDefinition, Value};

use super::tables::{self, META};
use crate::entity::EntityKind;
use crate::error::StoreError;

/// The log file's name inside the data directory.
pub const WAL_FILE: &str = "kith.wal";

/// The key in [`META`] of the number of the newest batch the redb file holds.
pub(super) const BATCH_KEY: &str = "wal_batch";

/// Bytes of record header before the ops: length, CRC, batch number.
const HEADER: usize = 16;

/// The largest redo record a batch may log; a batch that wrote more commits durably instead
/// (the length field is 32 bits, and replay reads a record whole).
pub(super) const MAX_RECORD: usize = 256 << 20;

// The log's table tags. Record tables use their kind's tag (1 to 6).
const UNIQUE: u8 = 20;
const TEXT: u8 = 21;
const REFS: u8 = 22;
const TIME: u8 = 23;
const EVENTS: u8 = 24;
const EVENTS_BY_RECORD: u8 = 25;
const FIELD_DEFS: u8 = 26;
const PIPELINES: u8 = 27;
const SCORES: u8 = 28;

/// The redo record of the batch being applied, shared by its [`Logged`] tables; `None` when
/// the batch commits durably and needs none (so nothing is recorded for it).
pub(crate) type Redo = Option<Rc<RefCell<Vec<u8>>>>;

/// A table of the write path whose every change is also written to the batch's redo record.
/// Reads go straight to the table (through `Deref`); a change can only be made through
/// [`Logged::insert`] and [`Logged::remove`], so none escapes the log.
pub(crate) struct Logged<'t, K: Key + 'static, V: Value + 'static> {
    table: Table<'t, K, V>,
    tag: u8,
    redo: Redo,
}

impl<'t, K: Key + 'static, V: Value + 'static> Deref for Logged<'t, K, V> {
    type Target = Table<'t, K, V>;

    fn deref(&self) -> &Self::Target {
        &self.table
    }
}

impl<K: Key + 'static, V: Value + 'static> Logged<'_, K, V> {
    /// Like [`Table::insert`], and logged.
    pub fn insert<'k, 'v>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<Option<AccessGuard<'_, V>>, StorageError> {
        if let Some(redo) = &self.redo {
            let mut redo = redo.borrow_mut();
            redo.push(self.tag);
            redo.push(1);
            push_bytes(&mut redo, K::as_bytes(key.borrow()).as_ref());
            push_bytes(&mut redo, V::as_bytes(value.borrow()).as_ref());
        }
        self.table.insert(key, value)
    }

    /// Like [`Table::remove`], and logged.
    pub fn remove<'a>(
        &mut self,
        key: impl Borrow<K::SelfType<'a>>,
    ) -> Result<Option<AccessGuard<'_, V>>, StorageError> {
        if let Some(redo) = &self.redo {
            let mut redo = redo.borrow_mut();
            redo.push(self.tag);
            redo.push(0);
            push_bytes(&mut redo, K::as_bytes(key.borrow()).as_ref());
        }
        self.table.remove(key)
    }
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // redb refuses keys and values over 3 GiB, so a length always fits.
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Opens the tables of the write path, each logging into `redo`.
pub(crate) struct Opener<'t> {
    pub txn: &'t redb::WriteTransaction,
    pub redo: Redo,
}

impl<'t> Opener<'t> {
    fn open<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
        tag: u8,
    ) -> Result<Logged<'t, K, V>, redb::TableError> {
        Ok(Logged {
            table: self.txn.open_table(def)?,
            tag,
            redo: self.redo.clone(),
        })
    }

    /// The record table of `kind`.
    pub fn records(
        &self,
        kind: EntityKind,
    ) -> Result<Logged<'t, u128, &'static [u8]>, redb::TableError> {
        self.open(tables::records(kind), kind.tag())
    }
    pub fn unique(
        &self,
    ) -> Result<Logged<'t, (&'static str, &'static str), u128>, redb::TableError> {
        self.open(tables::UNIQUE, UNIQUE)
    }
    pub fn text(
        &self,
    ) -> Result<Logged<'t, (&'static str, &'static str, u128), ()>, redb::TableError> {
        self.open(tables::TEXT, TEXT)
    }
    pub fn refs(&self) -> Result<Logged<'t, (u128, i64, u128), u8>, redb::TableError> {
        self.open(tables::REFS, REFS)
    }
    pub fn time(&self) -> Result<Logged<'t, (&'static str, i64, u128), ()>, redb::TableError> {
        self.open(tables::TIME, TIME)
    }
    pub fn events(&self) -> Result<Logged<'t, u64, &'static [u8]>, redb::TableError> {
        self.open(tables::EVENTS, EVENTS)
    }
    pub fn events_by_record(&self) -> Result<Logged<'t, (u128, u64), ()>, redb::TableError> {
        self.open(tables::EVENTS_BY_RECORD, EVENTS_BY_RECORD)
    }
    pub fn field_defs(
        &self,
    ) -> Result<Logged<'t, (&'static str, &'static str), &'static [u8]>, redb::TableError> {
        self.open(tables::FIELD_DEFS, FIELD_DEFS)
    }
    pub fn pipelines(&self) -> Result<Logged<'t, &'static str, &'static [u8]>, redb::TableError> {
        self.open(tables::PIPELINES, PIPELINES)
    }
    pub fn scores(
        &self,
    ) -> Result<Logged<'t, (u128, &'static str), &'static [u8]>, redb::TableError> {
        self.open(tables::SCORES, SCORES)
    }
}

/// Applies one logged op in `txn`.
fn apply_op(
    txn: &redb::WriteTransaction,
    tag: u8,
    put: bool,
    key: &[u8],
    value: &[u8],
) -> Result<(), StoreError> {
    fn one<K: Key + 'static, V: Value + 'static>(
        txn: &redb::WriteTransaction,
        def: TableDefinition<K, V>,
        put: bool,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StoreError> {
        let mut table = txn.open_table(def)?;
        if put {
            table.insert(K::from_bytes(key), V::from_bytes(value))?;
        } else {
            table.remove(K::from_bytes(key))?;
        }
        Ok(())
    }
    match tag {
        UNIQUE => one(txn, tables::UNIQUE, put, key, value),
        TEXT => one(txn, tables::TEXT, put, key, value),
        REFS => one(txn, tables::REFS, put, key, value),
        TIME => one(txn, tables::TIME, put, key, value),
        EVENTS => one(txn, tables::EVENTS, put, key, value),
        EVENTS_BY_RECORD => one(txn, tables::EVENTS_BY_RECORD, put, key, value),
        FIELD_DEFS => one(txn, tables::FIELD_DEFS, put, key, value),
        PIPELINES => one(txn, tables::PIPELINES, put, key, value),
        SCORES => one(txn, tables::SCORES, put, key, value),
        t => match EntityKind::from_tag(t) {
            Some(kind) => one(txn, tables::records(kind), put, key, value),
            None => Err(corrupt(format!("unknown table tag {t}"))),
        },
    }
}

fn corrupt(reason: String) -> StoreError {
    StoreError::Corrupt {
        what: "write-ahead log".to_owned(),
        reason,
    }
}

/// Begins a redo record in `buf`, whose allocation it reuses: room for the header, which
/// [`seal`] fills in, then the ops appended after it. Building the record in place, in a
/// buffer the log thread hands back, spares the writer a copy and a fresh allocation (and
/// the page faults of growing one) per batch.
pub(super) fn begin(mut buf: Vec<u8>) -> Vec<u8> {
    buf.clear();
    buf.resize(HEADER, 0);
    buf
}

/// The bytes of ops in a record begun with [`begin`].
pub(super) fn ops_len(record: &[u8]) -> usize {
    record.len().saturating_sub(HEADER)
}

/// Completes a record begun with [`begin`] as the log record of `batch`.
pub(super) fn seal(batch: u64, mut record: Vec<u8>) -> Vec<u8> {
    if record.len() < HEADER {
        record = begin(record);
    }
    let len = (record.len() - 8) as u32;
    record[0..4].copy_from_slice(&len.to_le_bytes());
    record[8..16].copy_from_slice(&batch.to_le_bytes());
    let crc = crc32fast::hash(&record[8..]);
    record[4..8].copy_from_slice(&crc.to_le_bytes());
    record
}

/// Frames `ops` as the log record of `batch`.
#[cfg(test)]
fn frame(batch: u64, ops: &[u8]) -> Vec<u8> {
    let mut record = begin(Vec::with_capacity(HEADER + ops.len()));
    record.extend_from_slice(ops);
    seal(batch, record)
}

/// The whole records at the start of `log`, as (batch, ops), in file order, up to the first
/// one that is torn, fails its checksum or does not number above the one before it.
fn records(log: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    let mut rest = log;
    let mut last = 0;
    while rest.len() >= HEADER {
        let len = u32::from_le_bytes(rest[0..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap_or_default());
        if len < 8 || rest.len() < 8 + len {
            break;
        }
        let body = &rest[8..8 + len];
        if crc32fast::hash(body) != crc {
            break;
        }
        let batch = u64::from_le_bytes(body[0..8].try_into().unwrap_or_default());
        if batch <= last {
            break;
        }
        last = batch;
        out.push((batch, &body[8..]));
        rest = &rest[8 + len..];
    }
    out
}

/// Splits one record's ops and applies each in `txn`.
fn apply_record(txn: &redb::WriteTransaction, mut ops: &[u8]) -> Result<usize, StoreError> {
    fn take<'a>(ops: &mut &'a [u8], n: usize) -> Result<&'a [u8], StoreError> {
        if ops.len() < n {
            return Err(corrupt("an op runs past its record".to_owned()));
        }
        let (head, tail) = ops.split_at(n);
        *ops = tail;
        Ok(head)
    }
    fn len(ops: &mut &[u8]) -> Result<usize, StoreError> {
        let b = take(ops, 4)?;
        Ok(u32::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
    }
    let mut n = 0;
    while !ops.is_empty() {
        let head = take(&mut ops, 2)?;
        let (tag, put) = (head[0], head[1] == 1);
        let klen = len(&mut ops)?;
        let key = take(&mut ops, klen)?;
        let value = if put {
            let vlen = len(&mut ops)?;
            take(&mut ops, vlen)?
        } else {
            &[]
        };
        apply_op(txn, tag, put, key, value)?;
        n += 1;
    }
    Ok(n)
}

/// The number of the newest batch in `txn`'s redb state (0 before the first).
pub(super) fn stored_batch(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<u64, StoreError> {
    match meta.get(BATCH_KEY)? {
        Some(v) => {
            let bytes: [u8; 8] = v.value().try_into().map_err(|_| StoreError::Corrupt {
                what: "write-ahead log position".to_owned(),
                reason: "not 8 bytes".to_owned(),
            })?;
            Ok(u64::from_le_bytes(bytes))
        }
        None => Ok(0),
    }
}

/// Brings the redb file up to date with the log at `path` (see the module docs), commits
/// that durably and empties the log. Returns the newest batch number now stored.
pub(super) fn replay(db: &redb::Database, path: &Path) -> Result<u64, StoreError> {
    let io = |source| StoreError::Directory {
        path: path.to_owned(),
        what: "cannot read the write-ahead log",
        source,
    };
    let mut log = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut log).map_err(io)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let txn = db.begin_write()?;
    let stored = stored_batch(&txn.open_table(META)?)?;
    let mut last = stored;
    let mut applied = (0, 0);
    for (batch, ops) in records(&log) {
        if batch <= stored {
            continue;
        }
        applied.1 += apply_record(&txn, ops)?;
        applied.0 += 1;
        last = batch;
    }
    if applied.0 > 0 {
        txn.open_table(META)?
            .insert(BATCH_KEY, last.to_le_bytes().as_slice())?;
        txn.commit()?;
        tracing::info!(
            batches = applied.0,
            writes = applied.1,
            "replayed the write-ahead log after an unclean stop"
        );
    } else {
        txn.abort()?;
    }
    if !log.is_empty() {
        File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(0))
            .map_err(io)?;
    }
    Ok(last)
}

thread_local! {
    /// Set on the log thread (see [`Durability::wait_for_visible`]).
    static ON_LOG_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as the log thread.
pub(super) fn on_log_thread() {
    ON_LOG_THREAD.set(true);
}

/// Whether the calling thread is the log thread.
pub(super) fn is_log_thread() -> bool {
    ON_LOG_THREAD.get()
}

/// Marks the log failed if the thread holding it unwinds.
pub(super) struct FailOnPanic<'a>(pub &'a Durability);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail();
        }
    }
}

/// How far batches have got: published by the writer (visible) and the log thread (durable),
/// waited on by readers.
#[derive(Default)]
pub(super) struct Durability {
    /// The newest batch the writer may have made visible to readers.
    visible: AtomicU64,
    /// The newest batch whose writes are durable (mirrors `durable_lock`, for a lock-free check).
    durable: AtomicU64,
    durable_lock: Mutex<u64>,
    durable_moved: Condvar,
    /// Set when the log cannot be written: nothing visible after that can become durable.
    failed: AtomicBool,
}

impl Durability {
    pub fn starting_at(batch: u64) -> Self {
        let d = Durability::default();
        d.visible.store(batch, Ordering::Relaxed);
        d.durable.store(batch, Ordering::Relaxed);
        *d.durable_lock.lock().unwrap_or_else(|p| p.into_inner()) = batch;
        d
    }

    /// Called by the writer before a batch's redb commit, so a reader that sees the batch also
    /// sees its number here.
    pub fn publish_visible(&self, batch: u64) {
        self.visible.store(batch, Ordering::SeqCst);
    }

    /// Called once `batch` (and all before it) is durable.
    pub fn publish_durable(&self, batch: u64) {
        let mut d = self.durable_lock.lock().unwrap_or_else(|p| p.into_inner());
        *d = batch;
        self.durable.store(batch, Ordering::Release);
        self.durable_moved.notify_all();
    }

    pub fn fail(&self) {
        let _guard = self.durable_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.failed.store(true, Ordering::SeqCst);
        self.durable_moved.notify_all();
    }

    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Waits until everything a read transaction begun just before this call can see is
    /// durable. Err when the log failed first.
    ///
    /// A read made by a reply or an observer (on the log thread itself) does not wait: only
    /// that thread makes batches durable. It sees its own batch, durable, and possibly later
    /// ones that are not yet.
    pub fn wait_for_visible(&self) -> Result<(), ()> {
        if ON_LOG_THREAD.get() {
            return Ok(());
        }
        let want = self.visible.load(Ordering::SeqCst);
        if self.durable.load(Ordering::Acquire) >= want {
            return Ok(());
        }
        let mut d = self.durable_lock.lock().unwrap_or_else(|p| p.into_inner());
        while *d < want {
            if self.failed.load(Ordering::SeqCst) {
                return Err(());
            }
            d = self
                .durable_moved
                .wait(d)
                .unwrap_or_else(|p| p.into_inner());
        }
        Ok(())
    }
}

/// The smallest the log file is made: ahead of the records, it holds zeros.
const MIN_LOG_LEN: u64 = 1 << 20;
/// The most the log file grows by at once.
const MAX_LOG_STEP: u64 = 64 << 20;

/// The open log file, owned by the log thread.
///
/// Records overwrite zeros written ahead of time: syncing data written inside the file's
/// length needs no journal commit for a new size, which halves the cost of `fdatasync` on
/// ext4 (measured here: about 290 µs appending, 175 µs overwriting). So the file is grown
/// in steps, and after a checkpoint writing starts again at its beginning; what follows the
/// newest record is zeros or older records, where replay stops.
pub(super) struct LogFile {
    file: File,
    path: PathBuf,
    /// Where the next record goes.
    pos: u64,
    /// The file's length: zeros or older records beyond `pos`.
    len: u64,
    /// Whether the file holds records no checkpoint has covered.
    dirty: bool,
}

impl LogFile {
    /// Opens (creating) the log at `path`, expected empty (just replayed).
    pub fn open(path: &Path) -> Result<LogFile, StoreError> {
        let file = File::options()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)
            .map_err(|source| StoreError::Directory {
                path: path.to_owned(),
                what: "cannot open the write-ahead log",
                source,
            })?;
        // The file is new: its name must be on disk before any record in it counts.
        if let Some(dir) = path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| StoreError::Directory {
                    path: dir.to_owned(),
                    what: "cannot sync the data directory",
                    source,
                })?;
        }
        Ok(LogFile {
            file,
            path: path.to_owned(),
            pos: 0,
            len: 0,
            dirty: false,
        })
    }

    /// Writes `bytes` as the next records and waits until they are on disk.
    pub fn append_synced(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let end = self.pos + bytes.len() as u64;
        if end > self.len {
            let len = end.max(self.len + self.len.clamp(MIN_LOG_LEN, MAX_LOG_STEP));
            self.file.seek(SeekFrom::Start(self.len))?;
            let zeros = vec![0u8; (len - self.len).min(MAX_LOG_STEP) as usize];
            let mut left = len - self.len;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                self.file.write_all(&zeros[..n])?;
                left -= n as u64;
            }
            self.len = len;
        }
        self.file.seek(SeekFrom::Start(self.pos))?;
        self.file.write_all(bytes)?;
        self.file.sync_data()?;
        self.pos = end;
        self.dirty = true;
        Ok(())
    }

    /// Starts again at the beginning: a durable checkpoint holds every record in the file.
    pub fn checkpointed(&mut self) {
        self.pos = 0;
        self.dirty = false;
    }

    /// Empties the file if a checkpoint holds all it has (when the store closes).
    pub fn close(self) -> std::io::Result<()> {
        if self.dirty {
            return Ok(());
        }
        self.file.set_len(0)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_stop_at_a_torn_or_out_of_order_tail() {
        let mut log = frame(1, b"a");
        log.extend(frame(2, b"bc"));
        assert_eq!(records(&log), vec![(1, &b"a"[..]), (2, &b"bc"[..])]);

        // A torn last record: only the whole ones count.
        let whole = log.clone();
        log.extend(&frame(3, b"def")[..10]);
        assert_eq!(records(&log).len(), 2);

        // A flipped bit fails the checksum.
        let mut flipped = whole.clone();
        let at = flipped.len() - 1;
        flipped[at] ^= 1;
        assert_eq!(records(&flipped).len(), 1);

        // What an emptied file still holds past its new end numbers lower: it is not read.
        let mut stale = frame(7, b"new");
        stale.extend(frame(5, b"old"));
        assert_eq!(records(&stale), vec![(7, &b"new"[..])]);
    }

    #[test]
    fn a_record_built_in_a_reused_buffer_reads_back_as_written() {
        // A buffer that last held a longer record: none of it may leak into the next.
        let used = seal(9, {
            let mut r = begin(Vec::new());
            r.extend_from_slice(b"a much longer earlier record");
            r
        });
        let mut record = begin(used);
        assert_eq!(ops_len(&record), 0);
        record.extend_from_slice(b"ops");
        let record = seal(10, record);
        assert_eq!(record, frame(10, b"ops"));
        assert_eq!(records(&record), vec![(10, &b"ops"[..])]);

        // A batch that wrote nothing still makes a whole (empty) record.
        assert_eq!(records(&seal(11, begin(Vec::new()))), vec![(11, &b""[..])]);
    }
}
