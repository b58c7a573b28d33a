//! Record ids: time-ordered UUIDs (version 7), so ids sort by creation time, are unique across
//! processes, and make good redb keys (the UUID's bytes read as a big-endian `u128`).

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::{ContextV7, Timestamp as UuidTimestamp, Uuid};

use crate::clock::Timestamp;

/// The id of a stored record.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Id(Uuid);

impl Id {
    /// The id as a `u128` whose numeric order is the UUID's byte order (used as redb key).
    pub fn as_u128(self) -> u128 {
        self.0.as_u128()
    }

    /// Rebuilds an id from its `u128` key form.
    pub fn from_u128(v: u128) -> Self {
        Self(Uuid::from_u128(v))
    }

    /// The smallest id whose time is `t` or later: a lower bound for time-range scans.
    pub fn min_at(t: &Timestamp) -> Self {
        let ms = u128::try_from(t.timestamp_millis().max(0)).unwrap_or(0);
        // A v7 UUID keeps its 48-bit millisecond time in the top bits.
        Self(Uuid::from_u128(ms << 80))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0.hyphenated())
    }
}

impl FromStr for Id {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim())
            .map(Id)
            .map_err(|_| format!("'{s}' is not a valid id (expected a UUID)"))
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(&self.0.hyphenated())
        } else {
            s.serialize_u128(self.0.as_u128())
        }
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            Ok(Id::from_u128(u128::deserialize(d)?))
        }
    }
}

/// Makes ids from a clock's time. Ids made by one generator are strictly increasing even
/// within one millisecond (the UUID v7 counter), so a batch keeps its order.
#[derive(Debug, Default)]
pub struct IdGenerator {
    context: Mutex<ContextV7>,
}

impl IdGenerator {
    /// A new generator.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new id for a record created at `at`.
    pub fn next(&self, at: &Timestamp) -> Id {
        let ctx = self
            .context
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let secs = u64::try_from(at.timestamp()).unwrap_or(0);
        let ts = UuidTimestamp::from_unix(&*ctx, secs, at.timestamp_subsec_nanos());
        Id(Uuid::new_v7(ts))
    }

    /// A new id for a record dated `at` in the past (imports, demo history). The shared
    /// context would refuse to go back in time, so these ids skip it: they sort by `at`, and
    /// two made for the same millisecond fall in random order.
    pub fn backdated(&self, at: &Timestamp) -> Id {
        let secs = u64::try_from(at.timestamp()).unwrap_or(0);
        let ts = UuidTimestamp::from_unix(uuid::NoContext, secs, at.timestamp_subsec_nanos());
        Id(Uuid::new_v7(ts))
    }
}
