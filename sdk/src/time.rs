//! Calendar arithmetic on Kith timestamps, without a date library.
//!
//! A [`Timestamp`] is microseconds since 1970-01-01T00:00:00Z; every function here works in
//! UTC on the proleptic Gregorian calendar (the one the server uses), and a civil date is a
//! tuple `(year, month, day)` with `month` 1–12 and `day` 1–31. Durations are plain
//! microseconds, so `now + 4 * time::HOUR` is four hours later.
//!
//! The text formats are the ones Kith speaks: `YYYY-MM-DD` for dates ([`parse_date`],
//! [`format_date`]), RFC 3339 for instants ([`parse_rfc3339`], [`format_rfc3339`]), and
//! [`parse_instant`] for everything a filter value or `kith plugin run` accepts.

use crate::Timestamp;

/// Microseconds in a second.
pub const SECOND: i64 = 1_000_000;
/// Microseconds in a minute.
pub const MINUTE: i64 = 60 * SECOND;
/// Microseconds in an hour.
pub const HOUR: i64 = 60 * MINUTE;
/// Microseconds in a day (UTC has no daylight saving, so every day has 24 hours).
pub const DAY: i64 = 24 * HOUR;

/// Whether `year` has a 29 February.
pub fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// The number of days in a month; `None` for a month outside 1–12.
pub fn days_in_month(year: i64, month: u32) -> Option<u32> {
    Some(match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        _ => return None,
    })
}

/// Days since 1970-01-01 of a civil date (negative before it); `None` for a date that does
/// not exist, such as 31 April or 29 February of a common year.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    if day == 0 || day > days_in_month(year, month)? {
        return None;
    }
    // Howard Hinnant's `days_from_civil`, in i128 so that no year can overflow it: years
    // start in March, so the leap day is the last day of its year.
    let y = i128::from(year) - i128::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i128::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i128::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    i64::try_from(era * 146_097 + doe - 719_468).ok()
}

/// The civil date `days` after 1970-01-01 (before it for negative `days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's `civil_from_days`, in i128 so that no `days` can overflow it.
    let z = i128::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i128::from(month <= 2);
    // In range by construction: |year| <= |days| / 365 + 1, day is 1–31 and month 1–12.
    let year = i64::try_from(year).unwrap_or(if year < 0 { i64::MIN } else { i64::MAX });
    let small = |v: i128| u32::try_from(v).unwrap_or(1);
    (year, small(month), small(day))
}

/// The civil date (UTC) of an instant.
pub fn to_civil(t: Timestamp) -> (i64, u32, u32) {
    civil_from_days(t.div_euclid(DAY))
}

/// Midnight UTC at the start of a civil date; `None` for a date that does not exist or lies
/// beyond what a timestamp can hold.
pub fn from_civil(year: i64, month: u32, day: u32) -> Option<Timestamp> {
    days_from_civil(year, month, day)?.checked_mul(DAY)
}

/// The hour (0–23), minute and second (0–59) of an instant, in UTC.
pub fn time_of_day(t: Timestamp) -> (u32, u32, u32) {
    let secs = t.rem_euclid(DAY) / SECOND;
    // At most 86,399, so each part fits.
    let part = |v: i64| u32::try_from(v).unwrap_or(0);
    (part(secs / 3_600), part(secs % 3_600 / 60), part(secs % 60))
}

/// Midnight UTC at the start of the instant's day.
pub fn start_of_day(t: Timestamp) -> Timestamp {
    t.div_euclid(DAY).saturating_mul(DAY)
}

/// Midnight UTC on the first day of the instant's month.
pub fn start_of_month(t: Timestamp) -> Timestamp {
    let (_, _, day) = to_civil(t);
    start_of_day(t).saturating_sub(i64::from(day - 1) * DAY)
}

/// Whole days (24 hours each) from `from` to `to`, rounded toward zero: 0 for anything under a
/// day, negative when `to` is earlier.
pub fn days_between(from: Timestamp, to: Timestamp) -> i64 {
    to.saturating_sub(from) / DAY
}

/// Midnight UTC of a strict `YYYY-MM-DD` date (four-digit year, two-digit month and day);
/// `None` for anything else, including dates that do not exist (`2026-02-30`).
pub fn parse_date(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() != 10 {
        return None;
    }
    date_days(b)?.checked_mul(DAY)
}

/// The instant's date in UTC as `YYYY-MM-DD` (years 0–9999 read back with [`parse_date`]).
pub fn format_date(t: Timestamp) -> String {
    let (y, m, d) = to_civil(t);
    format!("{y:04}-{m:02}-{d:02}")
}

/// An RFC 3339 date and time: `2026-03-01T09:30:00Z`, with `t` or a space allowed for the
/// `T`, an optional fraction of a second (digits past the sixth are dropped) and a `Z` or
/// `±HH:MM` offset. A leap second (`:60`) counts as the next second's first instant.
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let days = date_days(&b[..10])?;
    let (h, mi, sec) = (
        number(&b[11..13])?,
        number(&b[14..16])?,
        number(&b[17..19])?,
    );
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut micros = 0;
    if let [b'.', fraction @ ..] = rest {
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        micros = fraction[..digits]
            .iter()
            .chain(std::iter::repeat(&b'0'))
            .take(6)
            .fold(0, |acc, c| acc * 10 + i64::from(c - b'0'));
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), hh @ .., b':', m1, m2] if hh.len() == 2 => {
            let (oh, om) = (number(hh)?, number(&[*m1, *m2])?);
            if oh > 23 || om > 59 {
                return None;
            }
            let minutes = i64::from(oh * 60 + om);
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let secs = i64::from(h * 3_600 + mi * 60 + sec) - offset_minutes * 60;
    days.checked_mul(DAY)?
        .checked_add(secs * SECOND)?
        .checked_add(micros)
}

/// The instant in RFC 3339, in UTC: `2026-03-01T09:30:00Z`, with `.mmm` or `.uuuuuu` when
/// it is not a whole second.
pub fn format_rfc3339(t: Timestamp) -> String {
    let (h, mi, s) = time_of_day(t);
    let micros = t.rem_euclid(SECOND);
    let fraction = match micros {
        0 => String::new(),
        m if m % 1_000 == 0 => format!(".{:03}", m / 1_000),
        m => format!(".{m:06}"),
    };
    format!("{}T{h:02}:{mi:02}:{s:02}{fraction}Z", format_date(t))
}

/// An instant as Kith's filters and `kith plugin run` accept it: RFC 3339 (see
/// [`parse_rfc3339`]), a bare `YYYY-MM-DD` (its midnight UTC) or a whole number of
/// microseconds; surrounding white space is ignored.
pub fn parse_instant(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if let Ok(micros) = s.parse::<i64>() {
        return Some(micros);
    }
    if s.len() == 10 {
        parse_date(s)
    } else {
        parse_rfc3339(s)
    }
}

/// Days since 1970-01-01 of `YYYY-MM-DD` in the first ten bytes.
fn date_days(b: &[u8]) -> Option<i64> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (number(&b[..4])?, number(&b[5..7])?, number(&b[8..10])?);
    days_from_civil(i64::from(y), m, d)
}

/// A run of ASCII digits (at most four) as a number.
fn number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 4 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0, |acc, c| acc * 10 + u32::from(c - b'0')),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-02-29, a leap day, is day 19,782 of the epoch.
    const LEAP_DAY: i64 = 19_782;

    #[test]
    fn leap_years_follow_the_gregorian_rules() {
        for (year, leap) in [
            (2024, true),
            (2023, false),
            (2000, true),
            (1900, false),
            (2100, false),
            (0, true),
            (-4, true),
            (-100, false),
        ] {
            assert_eq!(is_leap_year(year), leap, "{year}");
        }
        assert_eq!(days_in_month(2024, 2), Some(29));
        assert_eq!(days_in_month(2023, 2), Some(28));
        assert_eq!(days_in_month(1900, 2), Some(28));
        assert_eq!(days_in_month(2026, 4), Some(30));
        assert_eq!(days_in_month(2026, 12), Some(31));
        assert_eq!(days_in_month(2026, 0), None);
        assert_eq!(days_in_month(2026, 13), None);
    }

    #[test]
    fn days_and_civil_dates_convert_both_ways() {
        let check = |days: i64, date: (i64, u32, u32)| {
            assert_eq!(civil_from_days(days), date, "day {days}");
            assert_eq!(
                days_from_civil(date.0, date.1, date.2),
                Some(days),
                "{date:?}"
            );
        };
        check(0, (1970, 1, 1));
        check(-1, (1969, 12, 31));
        check(-365, (1969, 1, 1));
        check(-719_468, (0, 3, 1));
        check(59, (1970, 3, 1));
        check(LEAP_DAY, (2024, 2, 29));
        check(LEAP_DAY + 1, (2024, 3, 1));
        check(11_016, (2000, 2, 29));
        check(-25_508, (1900, 3, 1));
        check(2_932_896, (9999, 12, 31));
        // Every day of eight centuries around 1970 round-trips and follows the one before it.
        let mut previous = civil_from_days(-200_000);
        for days in -199_999..=-200_000 + 2 * 146_097 {
            let date = civil_from_days(days);
            assert_eq!(days_from_civil(date.0, date.1, date.2), Some(days));
            let next_day = previous.2 < days_in_month(previous.0, previous.1).unwrap_or(0);
            let expected = if next_day {
                (previous.0, previous.1, previous.2 + 1)
            } else if previous.1 < 12 {
                (previous.0, previous.1 + 1, 1)
            } else {
                (previous.0 + 1, 1, 1)
            };
            assert_eq!(date, expected, "day {days}");
            previous = date;
        }
    }

    #[test]
    fn dates_that_do_not_exist_have_no_day_number() {
        for (y, m, d) in [
            (2023, 2, 29),
            (1900, 2, 29),
            (2026, 4, 31),
            (2026, 1, 32),
            (2026, 1, 0),
            (2026, 0, 1),
            (2026, 13, 1),
        ] {
            assert_eq!(days_from_civil(y, m, d), None, "{y}-{m}-{d}");
            assert_eq!(from_civil(y, m, d), None, "{y}-{m}-{d}");
        }
        assert_eq!(from_civil(i64::MAX, 1, 1), None, "beyond a timestamp");
        // The far ends of the range convert without overflowing.
        for days in [i64::MIN, i64::MAX] {
            let (_, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && (1..=31).contains(&d), "{days}");
        }
    }

    #[test]
    fn instants_split_into_date_and_time_of_day() {
        let t = from_civil(2026, 3, 1).unwrap() + 9 * HOUR + 30 * MINUTE + 15 * SECOND + 7;
        assert_eq!(to_civil(t), (2026, 3, 1));
        assert_eq!(time_of_day(t), (9, 30, 15));
        // Before 1970 the day still starts at midnight, not at the instant rounded to zero.
        let before = -HOUR;
        assert_eq!(to_civil(before), (1969, 12, 31));
        assert_eq!(time_of_day(before), (23, 0, 0));
        assert_eq!(time_of_day(-1), (23, 59, 59));
        assert_eq!(to_civil(-DAY), (1969, 12, 31));
        assert_eq!(to_civil(-DAY - 1), (1969, 12, 30));
        assert_eq!(from_civil(1970, 1, 2), Some(DAY));
        assert_eq!(from_civil(1969, 12, 31), Some(-DAY));
    }

    #[test]
    fn starts_of_days_and_months() {
        let at = |y, m, d| from_civil(y, m, d).unwrap();
        assert_eq!(start_of_day(at(2026, 3, 1) + 23 * HOUR), at(2026, 3, 1));
        assert_eq!(start_of_day(-1), -DAY);
        assert_eq!(start_of_day(0), 0);
        assert_eq!(start_of_month(at(2026, 3, 31) + 23 * HOUR), at(2026, 3, 1));
        assert_eq!(start_of_month(at(2024, 2, 29) + HOUR), at(2024, 2, 1));
        assert_eq!(start_of_month(at(2024, 3, 1)), at(2024, 3, 1));
        assert_eq!(start_of_month(at(1969, 12, 31) + HOUR), at(1969, 12, 1));
        assert_eq!(start_of_month(i64::MIN), i64::MIN, "saturates");
    }

    #[test]
    fn whole_days_between_round_toward_zero() {
        let at = |y, m, d| from_civil(y, m, d).unwrap();
        assert_eq!(days_between(at(2024, 2, 1), at(2024, 3, 1)), 29);
        assert_eq!(days_between(at(2023, 2, 1), at(2023, 3, 1)), 28);
        assert_eq!(days_between(at(1969, 12, 1), at(1970, 1, 1)), 31);
        assert_eq!(days_between(0, DAY - 1), 0);
        assert_eq!(days_between(0, DAY), 1);
        assert_eq!(days_between(DAY + DAY / 2, 0), -1);
        assert_eq!(days_between(i64::MIN, i64::MAX), i64::MAX / DAY);
    }

    #[test]
    fn dates_parse_strictly_and_format_back() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2024-02-29"), Some(LEAP_DAY * DAY));
        assert_eq!(parse_date("1969-12-31"), Some(-DAY));
        assert_eq!(parse_date("0000-01-01"), Some(-719_528 * DAY));
        for bad in [
            "2023-02-29",
            "2026-04-31",
            "2026-13-01",
            "2026-00-10",
            "2026-1-01",
            "26-01-01x",
            "2026-01-01 ",
            "2026/01/01",
            "+026-01-01",
            "",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(LEAP_DAY * DAY + DAY - 1), "2024-02-29");
        assert_eq!(format_date(-1), "1969-12-31");
        for s in ["0001-01-01", "1900-02-28", "2000-02-29", "9999-12-31"] {
            assert_eq!(parse_date(s).map(format_date).as_deref(), Some(s));
        }
    }

    #[test]
    fn rfc3339_parses_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-02T00:00:00Z"), Some(DAY));
        assert_eq!(parse_rfc3339("1970-01-02t00:00:00z"), Some(DAY));
        assert_eq!(parse_rfc3339("1970-01-02 00:00:00Z"), Some(DAY));
        assert_eq!(parse_rfc3339("1970-01-02T01:00:00+01:00"), Some(DAY));
        assert_eq!(parse_rfc3339("1970-01-01T23:30:00-00:30"), Some(DAY));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.25Z"), Some(250_000));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.1234567Z"), Some(123_456));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.5Z"), Some(-500_000));
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60Z"),
            parse_rfc3339("2017-01-01T00:00:00Z")
        );
        for bad in [
            "2026-01-01",
            "2026-01-01T25:00:00Z",
            "2026-01-01T12:60:00Z",
            "2026-01-01T12:00:61Z",
            "2026-01-01T12:00:00",
            "2026-01-01T12:00:00.Z",
            "2026-01-01T12:00:00+1:00",
            "2026-01-01T12:00:00+24:00",
            "2026-01-01T12:00:00+01:60",
            "2026-01-01T12:00:00Zjunk",
            "2026-02-30T12:00:00Z",
            "2026-01-01X12:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_formats_in_utc_and_reads_back() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(DAY + 1_500_000), "1970-01-02T00:00:01.500Z");
        assert_eq!(format_rfc3339(7), "1970-01-01T00:00:00.000007Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999999Z");
        for t in [
            0,
            -1,
            7,
            DAY - 1,
            LEAP_DAY * DAY + 12 * HOUR + 34_567,
            -719_528 * DAY,
        ] {
            assert_eq!(parse_rfc3339(&format_rfc3339(t)), Some(t), "{t}");
        }
    }

    #[test]
    fn instants_parse_like_the_servers_filters() {
        assert_eq!(parse_instant("1970-01-02"), Some(DAY));
        assert_eq!(parse_instant(" 1970-01-02T00:00:00Z "), Some(DAY));
        assert_eq!(parse_instant("1970-01-02T01:00:00+01:00"), Some(DAY));
        assert_eq!(parse_instant("2024-02-29"), Some(LEAP_DAY * DAY));
        assert_eq!(parse_instant("123"), Some(123));
        assert_eq!(parse_instant("-5"), Some(-5));
        for bad in [
            "2023-02-29",
            "2026-13-01",
            "2026-01-01T25:00:00Z",
            "soon",
            "",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
    }
}
