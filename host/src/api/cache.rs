//! The record cache: the JSON answers of `GET /api/v1/{kind}/{id}`, kept in memory so the
//! hottest route answers without a storage read or a hand-off to the blocking pool.
//!
//! Correctness rests on stamps ([`Stamp`]): each entry carries the stamp its copy is current
//! as of, and the store's commit observer ([`RecordCache::committed`]) marks a record stale,
//! with the stamp of the write that changed it, before that write's caller hears back. A copy
//! goes in only if it is at least as new as the newest change the cache knows of for that
//! record and not older than the shard's floor, which rises whenever the cache forgets
//! something (an eviction, a schema change). So a read that raced a write can never leave
//! an outdated copy behind, and whoever was told a write is done never reads around it.
//!
//! What the cache holds is the answer as every caller gets it; whether a restricted caller
//! may see it is decided per request from the owner and team kept beside it.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use kith_core::entity::EntityKind;
use kith_core::id::Id;
use kith_core::store::{Committed, Stamp};

/// Shards split the lock so the async workers rarely wait on each other.
const SHARDS: usize = 16;

/// Bytes an entry costs beyond its body and strings (map slot, queue slot, `Arc`).
const OVERHEAD: usize = 96;

/// One cached answer.
#[derive(Debug)]
pub struct Entry {
    /// The record's kind (a GET under another kind's path must not find it).
    pub kind: EntityKind,
    /// The record's owner, for the access rule.
    pub owner: Option<String>,
    /// The record's team, for the access rule.
    pub team: Option<String>,
    /// The JSON body.
    pub body: Bytes,
}

impl Entry {
    fn cost(&self) -> usize {
        OVERHEAD
            + self.body.len()
            + self.owner.as_ref().map_or(0, String::len)
            + self.team.as_ref().map_or(0, String::len)
    }
}

enum Slot {
    /// A copy current as of the stamp.
    Fresh(Stamp, Arc<Entry>),
    /// The record changed at the stamp; no copy from before it may go in.
    Stale(Stamp),
}

impl Slot {
    fn stamp(&self) -> Stamp {
        match self {
            Slot::Fresh(s, _) | Slot::Stale(s) => *s,
        }
    }

    fn cost(&self) -> usize {
        match self {
            Slot::Fresh(_, e) => e.cost(),
            Slot::Stale(_) => OVERHEAD,
        }
    }
}

/// Hashes a record id by its random low 64 bits: v7 ids need no further mixing, and the
/// lookup is on the hottest route.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used; anything else still hashes, just less cleverly.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

#[derive(Default)]
struct Shard {
    /// By the id's `u128` form (see [`IdHasher`]).
    slots: HashMap<u128, Slot, BuildHasherDefault<IdHasher>>,
    /// Keys in the order they came in: the oldest goes first when the shard is full.
    order: VecDeque<u128>,
    bytes: usize,
    /// No copy older than this goes in: it is the newest stamp the shard has forgotten.
    floor: Stamp,
}

impl Shard {
    fn set(&mut self, id: u128, slot: Slot, budget: usize) {
        self.bytes += slot.cost();
        match self.slots.insert(id, slot) {
            Some(old) => self.bytes -= old.cost(),
            None => self.order.push_back(id),
        }
        while self.bytes > budget {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(old) = self.slots.remove(&oldest) {
                self.bytes -= old.cost();
                self.floor = self.floor.max(old.stamp());
            }
        }
    }

    fn forget_all(&mut self, stamp: Stamp) {
        let newest = self.slots.values().map(Slot::stamp).max().unwrap_or(0);
        self.floor = self.floor.max(stamp).max(newest);
        self.slots.clear();
        self.order.clear();
        self.bytes = 0;
    }
}

/// The record cache (see the module documentation). Cheap to share behind an `Arc`.
pub struct RecordCache {
    shards: Box<[Mutex<Shard>]>,
    /// Bytes each shard may hold; 0 turns the cache off.
    shard_budget: usize,
}

impl std::fmt::Debug for RecordCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordCache")
            .field("budget", &(self.shard_budget * SHARDS))
            .finish_non_exhaustive()
    }
}

impl RecordCache {
    /// A cache holding at most about `budget` bytes; 0 keeps nothing.
    pub fn new(budget: usize) -> Self {
        RecordCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            shard_budget: budget / SHARDS,
        }
    }

    /// The shard of `id` (locked) and the key within it.
    fn shard(&self, id: Id) -> (std::sync::MutexGuard<'_, Shard>, u128) {
        // The low 64 bits of a v7 id are random. Shards take bits the maps' hashes barely
        // use for bucket choice, so keys spread within a shard too.
        let key = id.as_u128();
        let i = ((key as u64 >> 40) as usize) % SHARDS;
        (
            self.shards[i].lock().unwrap_or_else(|p| p.into_inner()),
            key,
        )
    }

    /// The cached answer for `id`, when there is a current one.
    pub fn get(&self, id: Id) -> Option<Arc<Entry>> {
        if self.shard_budget == 0 {
            return None;
        }
        let (shard, key) = self.shard(id);
        match shard.slots.get(&key) {
            Some(Slot::Fresh(_, e)) => Some(e.clone()),
            _ => None,
        }
    }

    /// Offers a copy of `id` current as of `stamp`: for a read, the store's
    /// [`committed`](kith_core::Store::committed) stamp taken before the read began; for a
    /// write's answer, that write's own stamp. Refused when a newer change is known.
    pub fn put(&self, id: Id, stamp: Stamp, entry: Entry) {
        if self.shard_budget == 0 || entry.cost() > self.shard_budget {
            return;
        }
        let (mut shard, key) = self.shard(id);
        if stamp < shard.floor || shard.slots.get(&key).is_some_and(|s| s.stamp() > stamp) {
            return;
        }
        shard.set(key, Slot::Fresh(stamp, Arc::new(entry)), self.shard_budget);
    }

    /// Hears a commit (the store's commit observer): marks what it changed stale.
    pub fn committed(&self, c: &Committed<'_>) {
        if self.shard_budget == 0 {
            return;
        }
        if let Some(stamp) = c.everything {
            let newest = c.records.iter().map(|(_, s)| *s).max().unwrap_or(0);
            for shard in &self.shards {
                let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
                shard.forget_all(stamp.max(newest));
            }
            return;
        }
        for &(id, stamp) in c.records {
            let (mut shard, key) = self.shard(id);
            let stamp = shard
                .slots
                .get(&key)
                .map_or(stamp, |s| s.stamp().max(stamp));
            shard.set(key, Slot::Stale(stamp), self.shard_budget);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: &str) -> Entry {
        Entry {
            kind: EntityKind::Contact,
            owner: None,
            team: None,
            body: Bytes::from(body.to_owned()),
        }
    }

    fn body(c: &RecordCache, id: Id) -> Option<String> {
        c.get(id)
            .map(|e| String::from_utf8(e.body.to_vec()).expect("utf-8"))
    }

    fn changed(c: &RecordCache, records: &[(Id, Stamp)]) {
        c.committed(&Committed {
            records,
            everything: None,
        });
    }

    #[test]
    fn a_read_that_raced_a_write_leaves_nothing_stale() {
        let c = RecordCache::new(1 << 20);
        let id = Id::from_u128(7);
        c.put(id, 1, entry("v1"));
        assert_eq!(body(&c, id).as_deref(), Some("v1"));
        // A write at stamp 2 commits; a read that began at stamp 1 offers its copy late.
        changed(&c, &[(id, 2)]);
        assert_eq!(body(&c, id), None);
        c.put(id, 1, entry("old"));
        assert_eq!(
            body(&c, id),
            None,
            "a copy older than the change is refused"
        );
        // The write's own answer (stamp 2) and later reads go in.
        c.put(id, 2, entry("v2"));
        assert_eq!(body(&c, id).as_deref(), Some("v2"));
        c.put(id, 1, entry("old"));
        assert_eq!(
            body(&c, id).as_deref(),
            Some("v2"),
            "never replaced by an older copy"
        );
    }

    #[test]
    fn forgetting_raises_the_floor() {
        // Room for about two entries per shard.
        let c = RecordCache::new(SHARDS * (2 * OVERHEAD + 8));
        // Ids in one shard (the same shard bits, different low bits).
        let same: Vec<Id> = (1..=4).map(Id::from_u128).collect();
        changed(&c, &[(same[0], 5)]);
        c.put(same[1], 6, entry("b"));
        c.put(same[2], 6, entry("c"));
        // same[0]'s stale mark was evicted: a copy of it from before stamp 5 must not go in.
        c.put(same[0], 4, entry("stale"));
        assert_eq!(body(&c, same[0]), None);
        c.put(same[3], 7, entry("d"));
        assert_eq!(body(&c, same[3]).as_deref(), Some("d"));
    }

    #[test]
    fn a_schema_change_forgets_everything() {
        let c = RecordCache::new(1 << 20);
        let id = Id::from_u128(7);
        c.put(id, 3, entry("v"));
        c.committed(&Committed {
            records: &[],
            everything: Some(4),
        });
        assert_eq!(body(&c, id), None);
        c.put(id, 3, entry("v"));
        assert_eq!(
            body(&c, id),
            None,
            "a copy from before the change is refused"
        );
        c.put(id, 4, entry("w"));
        assert_eq!(body(&c, id).as_deref(), Some("w"));
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let c = RecordCache::new(0);
        let id = Id::from_u128(7);
        c.put(id, 1, entry("v"));
        assert_eq!(body(&c, id), None);
    }
}
