//! The injectable clock: every timestamp Kith stores comes from a [`Clock`], never from the
//! system time directly, so tests can pin and advance time and ids stay time-ordered.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// A point in time, UTC, with microsecond precision in storage.
pub type Timestamp = DateTime<Utc>;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Utc::now()
    }
}

/// A clock that only moves when told to: for tests and for reproducible demo data.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: Timestamp) {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Microseconds since the Unix epoch: the integer form of a timestamp used in index keys.
pub fn micros(t: &Timestamp) -> i64 {
    t.timestamp_micros()
}

/// Serde `with` helpers that write a [`Timestamp`] exactly as chrono's own `Serialize` does
/// (RFC 3339 with `Z`, the fraction of a second in groups of three digits as needed), but
/// into a stack buffer in one pass. chrono formats through `fmt` one character at a time and,
/// in binary formats, into a fresh `String`; every write stores several timestamps (the
/// record's, its event's) and every answer sends two, so that showed in the writer's profile.
/// Reading is chrono's.
pub mod rfc3339 {
    use chrono::{Datelike, Timelike};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Timestamp;

    /// Room for the longest form written here: `9999-12-31T23:59:60.999999999Z` (30 bytes).
    const ROOM: usize = 32;

    /// Writes `t` as chrono would.
    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; ROOM];
        match format(t, &mut buf) {
            Some(text) => s.serialize_str(text),
            // Years chrono writes with a sign: rare enough to leave to chrono.
            None => t.serialize(s),
        }
    }

    /// Reads a timestamp as chrono does.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        Timestamp::deserialize(d)
    }

    /// `t` in chrono's serialized form, for years 0 to 9999 (`None` outside them).
    pub fn format<'b>(t: &Timestamp, buf: &'b mut [u8; ROOM]) -> Option<&'b str> {
        let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
        let (mut second, mut nano) = (t.second(), t.nanosecond());
        // chrono keeps a leap second as second 59 with a nanosecond count past one second,
        // and writes it as second 60.
        if nano >= 1_000_000_000 {
            second += 1;
            nano -= 1_000_000_000;
        }
        let two = |buf: &mut [u8; ROOM], at: usize, v: u32| {
            buf[at] = b'0' + (v / 10 % 10) as u8;
            buf[at + 1] = b'0' + (v % 10) as u8;
        };
        two(buf, 0, year / 100);
        two(buf, 2, year % 100);
        buf[4] = b'-';
        two(buf, 5, t.month());
        buf[7] = b'-';
        two(buf, 8, t.day());
        buf[10] = b'T';
        two(buf, 11, t.hour());
        buf[13] = b':';
        two(buf, 14, t.minute());
        buf[16] = b':';
        two(buf, 17, second);
        let mut len = 19;
        // As chrono's `SecondsFormat::AutoSi`: no fraction, or milli-, micro- or nanoseconds,
        // whichever is the shortest exact one.
        let (digits, mut fraction) = if nano == 0 {
            (0, 0)
        } else if nano % 1_000_000 == 0 {
            (3, nano / 1_000_000)
        } else if nano % 1_000 == 0 {
            (6, nano / 1_000)
        } else {
            (9, nano)
        };
        if digits > 0 {
            buf[len] = b'.';
            for i in (1..=digits).rev() {
                buf[len + i] = b'0' + (fraction % 10) as u8;
                fraction /= 10;
            }
            len += 1 + digits;
        }
        buf[len] = b'Z';
        std::str::from_utf8(&buf[..=len]).ok()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, NaiveDate, TimeZone};

    use super::*;

    /// The fast form is chrono's, byte for byte: the text, and the stored MessagePack.
    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        #[derive(serde::Serialize)]
        struct Fast(#[serde(with = "rfc3339")] Timestamp);
        #[derive(serde::Serialize)]
        struct Chrono(Timestamp);
        let mut cases: Vec<Timestamp> = Vec::new();
        for (y, nanos) in [
            (1970, 0),
            (2026, 774_786_559),
            (2026, 774_000_000),
            (2026, 774_786_000),
            (2026, 1_000),
            (2026, 5),
            (2026, 100_000_000),
            (0, 123),
            (9999, 999_999_999),
        ] {
            let date = NaiveDate::from_ymd_opt(y, 12, 31).expect("a date");
            let t = date.and_hms_nano_opt(23, 59, 58, nanos).expect("a time");
            cases.push(Utc.from_utc_datetime(&t));
        }
        // A leap second, and years chrono writes with a sign (left to chrono).
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("a leap second");
        cases.push(Utc.from_utc_datetime(&leap));
        for y in [-1, 10_000] {
            let t = NaiveDate::from_ymd_opt(y, 1, 2)
                .and_then(|d| d.and_hms_opt(3, 4, 5))
                .expect("a time");
            cases.push(Utc.from_utc_datetime(&t));
        }
        // And a spread of ordinary instants.
        let mut x: i64 = 0x9e37_79b9;
        for _ in 0..2000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let secs = (x >> 20).rem_euclid(253_402_300_799);
            let nanos = match x & 3 {
                0 => 0,
                1 => (x as u32 >> 7) % 1000 * 1_000_000,
                2 => (x as u32 >> 7) % 1_000_000 * 1000,
                _ => (x as u32 >> 7) % 1_000_000_000,
            };
            cases.push(DateTime::from_timestamp(secs, nanos).expect("in range"));
        }
        for t in cases {
            let mut buf = [0; 32];
            let text = rfc3339::format(&t, &mut buf);
            assert_eq!(text.is_some(), (0..=9999).contains(&t.year()), "{t:?}");
            if let Some(text) = text {
                assert_eq!(text, t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
            }
            assert_eq!(
                rmp_serde::to_vec_named(&Fast(t)).ok(),
                rmp_serde::to_vec_named(&Chrono(t)).ok(),
                "{t:?}"
            );
        }
    }
}
