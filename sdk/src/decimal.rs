//! Exact decimal numbers for money and other `Number` values, without floats.
//!
//! Kith sends amounts and decimals as text (`FieldValue::Money("1200.50")`). Adding them as
//! `f64` loses cents (`0.1 + 0.2` is not `0.3`), so a plugin that sums or divides them reads
//! them into a [`Decimal`], an integer count of units of a power of ten, and writes the
//! result back as text with `value::money(sum.to_string())`.
//!
//! ```
//! use kith_sdk::decimal::{self, Decimal};
//!
//! let a = Decimal::parse("1200.50").unwrap();
//! let b = Decimal::parse("99.5").unwrap();
//! let sum = a.checked_add(b).unwrap();
//! assert_eq!(sum.to_string(), "1300.00");
//! let share = decimal::percent(b, sum, 1).unwrap();
//! assert_eq!(share.to_string(), "7.7");
//! ```

use std::cmp::Ordering;
use std::fmt;

/// The most decimal places a [`Decimal`] holds.
pub const MAX_SCALE: u32 = 18;

/// An exact decimal number: `units` × 10^-`scale`, such as 1250 × 10^-2 for `12.50`.
///
/// It keeps the places it was written with (`12.50` prints as `12.50`), but compares by value:
/// `12.5 == 12.50`. Arithmetic is checked and returns `None` rather than overflowing (the
/// units are an `i128`: about 38 digits).
#[derive(Debug, Clone, Copy, Default)]
pub struct Decimal {
    units: i128,
    scale: u32,
}

impl Decimal {
    /// Zero, with no decimal places.
    pub const ZERO: Decimal = Decimal { units: 0, scale: 0 };

    /// `units` × 10^-`scale`; `None` when `scale` is over [`MAX_SCALE`].
    pub fn new(units: i128, scale: u32) -> Option<Decimal> {
        (scale <= MAX_SCALE).then_some(Decimal { units, scale })
    }

    /// Reads `1234`, `-12.50`, `+3`, `.5` or `5.`; `None` for anything else (exponents,
    /// separators, white space inside), for more than [`MAX_SCALE`] decimal places, and for
    /// numbers too long to hold. Surrounding white space is ignored.
    pub fn parse(s: &str) -> Option<Decimal> {
        let (negative, int, frac) = split(s)?;
        let scale = u32::try_from(frac.len()).ok().filter(|s| *s <= MAX_SCALE)?;
        let units: i128 = format!("{int}{frac}").parse().ok()?;
        Some(Decimal {
            units: if negative { -units } else { units },
            scale,
        })
    }

    /// The number as an integer count of 10^-[`scale`](Self::scale).
    pub fn units(self) -> i128 {
        self.units
    }

    /// How many decimal places it has.
    pub fn scale(self) -> u32 {
        self.scale
    }

    /// The same number with `scale` decimal places, or its own if it has more (it never
    /// rounds); `None` if that does not fit or `scale` is over [`MAX_SCALE`].
    pub fn with_scale(self, scale: u32) -> Option<Decimal> {
        if scale > MAX_SCALE {
            return None;
        }
        let scale = scale.max(self.scale);
        Some(Decimal {
            units: self.rescaled(scale)?,
            scale,
        })
    }

    /// The exact sum, with the places of the more precise of the two; `None` on overflow.
    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        Some(Decimal {
            units: self.rescaled(scale)?.checked_add(other.rescaled(scale)?)?,
            scale,
        })
    }

    /// The exact difference, with the places of the more precise of the two; `None` on
    /// overflow.
    pub fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        Some(Decimal {
            units: self.rescaled(scale)?.checked_sub(other.rescaled(scale)?)?,
            scale,
        })
    }

    /// The units at a scale at least this number's own.
    fn rescaled(self, scale: u32) -> Option<i128> {
        self.units
            .checked_mul(10_i128.checked_pow(scale.checked_sub(self.scale)?)?)
    }
}

impl From<i64> for Decimal {
    fn from(i: i64) -> Decimal {
        Decimal {
            units: i128::from(i),
            scale: 0,
        }
    }
}

impl From<u64> for Decimal {
    fn from(i: u64) -> Decimal {
        Decimal {
            units: i128::from(i),
            scale: 0,
        }
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Decimal) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Decimal) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Decimal) -> Ordering {
        // Scale the less precise one up when that fits; otherwise divide the more precise one
        // down: a difference in the quotient outweighs any remainder, and with equal quotients
        // the remainder decides.
        let (a, b, flipped) = if self.scale <= other.scale {
            (self, other, false)
        } else {
            (other, self, true)
        };
        let shift = b.scale - a.scale;
        let order = match a.rescaled(b.scale) {
            Some(units) => units.cmp(&b.units),
            None => {
                let pow = 10_i128.pow(shift);
                let (q, r) = (b.units / pow, b.units % pow);
                a.units.cmp(&q).then(0.cmp(&r))
            }
        };
        if flipped { order.reverse() } else { order }
    }
}

impl fmt::Display for Decimal {
    /// Plain decimal text with exactly [`scale`](Decimal::scale) places: `-0.50`, `1300`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.units < 0 { "-" } else { "" };
        let abs = self.units.unsigned_abs();
        if self.scale == 0 {
            return write!(f, "{sign}{abs}");
        }
        let pow = 10_u128.pow(self.scale);
        let width = self.scale as usize;
        write!(f, "{sign}{}.{:0width$}", abs / pow, abs % pow)
    }
}

/// `numerator / denominator` rounded half away from zero to `places` decimal places (`2 / 3`
/// to 2 places is `0.67`); `None` for a zero denominator, more than [`MAX_SCALE`] places, or a
/// result too large to hold.
pub fn ratio(numerator: Decimal, denominator: Decimal, places: u32) -> Option<Decimal> {
    if places > MAX_SCALE || denominator.units == 0 {
        return None;
    }
    // n / d × 10^places = (un × 10^-sn) / (ud × 10^-sd) × 10^places
    //                   = un × 10^(sd + places - sn) / ud
    let (mut n, mut d) = (numerator.units, denominator.units);
    let shift = i64::from(denominator.scale) + i64::from(places) - i64::from(numerator.scale);
    let pow = 10_i128.checked_pow(u32::try_from(shift.unsigned_abs()).ok()?)?;
    if shift >= 0 {
        n = n.checked_mul(pow)?;
    } else {
        d = d.checked_mul(pow)?;
    }
    let (q, r) = (n / d, n % d);
    // |r| < |d|, so doubling it fits a u128. With |d| = 1 there is no remainder, so q ± 1
    // only happens when |q| <= |n| / 2 and cannot overflow.
    let q = if r.unsigned_abs() * 2 >= d.unsigned_abs() {
        if (n < 0) == (d < 0) { q + 1 } else { q - 1 }
    } else {
        q
    };
    Decimal::new(q, places)
}

/// `part` as a percentage of `whole`, rounded half away from zero to `places` decimal places
/// (2 of 3 to 1 place is `66.7`); `None` when `whole` is zero or the result does not fit.
pub fn percent(part: Decimal, whole: Decimal, places: u32) -> Option<Decimal> {
    let hundredfold = Decimal {
        units: part.units.checked_mul(100)?,
        scale: part.scale,
    };
    ratio(hundredfold, whole, places)
}

/// Compares two decimals written as text (`"-12.50"`, `"3"`), exactly and whatever their
/// length; `None` if either is not a decimal as [`Decimal::parse`] reads them (but with any
/// number of places).
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let (neg_a, int_a, frac_a) = normalized(a)?;
    let (neg_b, int_b, frac_b) = normalized(b)?;
    let magnitude = int_a
        .len()
        .cmp(&int_b.len())
        .then_with(|| int_a.cmp(int_b))
        .then_with(|| frac_a.cmp(frac_b));
    Some(match (neg_a, neg_b) {
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    })
}

/// A decimal's sign, integer digits and fraction digits, as written.
fn split(s: &str) -> Option<(bool, &str, &str)> {
    let s = s.trim();
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    Some((negative, int, frac))
}

/// Like [`split`], without leading zeros of the integer or trailing zeros of the fraction, and
/// without the sign of a zero, so equal numbers split equally.
fn normalized(s: &str) -> Option<(bool, &str, &str)> {
    let (negative, int, frac) = split(s)?;
    let (int, frac) = (int.trim_start_matches('0'), frac.trim_end_matches('0'));
    Some((negative && !(int.is_empty() && frac.is_empty()), int, frac))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).expect("a decimal")
    }

    #[test]
    fn parsing_keeps_the_places_written() {
        for (text, units, scale) in [
            ("1234", 1234, 0),
            ("-12.50", -1250, 2),
            ("+3", 3, 0),
            (".5", 5, 1),
            ("5.", 5, 0),
            (" 0.000 ", 0, 3),
            ("-0", 0, 0),
            ("0.000000000000000001", 1, 18),
        ] {
            let v = d(text);
            assert_eq!((v.units(), v.scale()), (units, scale), "{text}");
        }
        for bad in [
            "",
            ".",
            "-",
            "+-1",
            "1e3",
            "1.2.3",
            "abc",
            "1 000",
            "1,5",
            "0x10",
            "0.0000000000000000001",
            "999999999999999999999999999999999999999999",
        ] {
            assert_eq!(Decimal::parse(bad), None, "{bad}");
        }
        assert_eq!(Decimal::new(1, MAX_SCALE + 1), None);
        assert_eq!(
            Decimal::new(-5, 1).map(|v| v.to_string()).as_deref(),
            Some("-0.5")
        );
    }

    #[test]
    fn decimals_add_exactly() {
        let sum = |items: &[&str]| {
            items
                .iter()
                .map(|s| d(s))
                .try_fold(Decimal::default(), Decimal::checked_add)
                .expect("no overflow")
                .to_string()
        };
        assert_eq!(sum(&["0.1", "0.2"]), "0.3");
        assert_eq!(sum(&["10", "0.05"]), "10.05");
        assert_eq!(sum(&["-1.50", "1"]), "-0.50");
        assert_eq!(sum(&["1200.50", "99.5"]), "1300.00");
        assert_eq!(
            sum(&["99999999999999999999.99", "0.01"]),
            "100000000000000000000.00"
        );
        assert_eq!(sum(&[]), "0");
        assert_eq!(Decimal::ZERO, Decimal::default());
        let max = Decimal::new(i128::MAX, 0).unwrap();
        assert_eq!(max.checked_add(d("1")), None);
        assert_eq!(max.checked_add(d("0.1")), None, "rescaling overflows");
        assert_eq!(
            d("1")
                .checked_sub(d("0.01"))
                .map(|v| v.to_string())
                .as_deref(),
            Some("0.99")
        );
        assert_eq!(
            Decimal::new(i128::MIN, 0).unwrap().checked_sub(d("1")),
            None
        );
    }

    #[test]
    fn formatting_pads_the_places() {
        for (units, scale, text) in [
            (0, 0, "0"),
            (0, 2, "0.00"),
            (5, 2, "0.05"),
            (-5, 2, "-0.05"),
            (120_050, 2, "1200.50"),
            (-7, 0, "-7"),
            (1, 18, "0.000000000000000001"),
            (i128::MIN, 0, "-170141183460469231731687303715884105728"),
        ] {
            assert_eq!(Decimal::new(units, scale).unwrap().to_string(), text);
        }
        assert_eq!(Decimal::from(42_u64).to_string(), "42");
        assert_eq!(Decimal::from(-42_i64).to_string(), "-42");
    }

    #[test]
    fn rescaling_only_adds_places() {
        assert_eq!(d("12.5").with_scale(2).unwrap().to_string(), "12.50");
        assert_eq!(d("12.505").with_scale(2).unwrap().to_string(), "12.505");
        assert_eq!(d("0").with_scale(3).unwrap().to_string(), "0.000");
        assert_eq!(d("1").with_scale(MAX_SCALE).unwrap().scale(), MAX_SCALE);
        assert_eq!(d("1").with_scale(MAX_SCALE + 1), None);
        assert_eq!(Decimal::new(i128::MAX, 0).unwrap().with_scale(1), None);
    }

    #[test]
    fn decimals_compare_by_value() {
        assert_eq!(d("12.5"), d("12.50"));
        assert_eq!(d("-0"), d("0.000"));
        assert!(d("10") > d("9.99"));
        assert!(d("-2") > d("-10"));
        assert!(d("-0.01") < d("0"));
        let mut v = [d("3"), d("-1.5"), d("0.25"), d("-1.49")];
        v.sort();
        let sorted: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(sorted, ["-1.5", "-1.49", "0.25", "3"]);
        // i128::MAX at 18 places is 170141183460469231731.687...: the whole numbers next to
        // it cannot be brought to 18 places, yet they order exactly.
        let precise = Decimal::new(i128::MAX, 18).unwrap();
        let above = Decimal::new(170_141_183_460_469_231_732, 0).unwrap();
        let below = Decimal::new(170_141_183_460_469_231_731, 0).unwrap();
        assert_eq!(
            (above.cmp(&precise), precise.cmp(&above)),
            (Ordering::Greater, Ordering::Less)
        );
        assert_eq!(
            (below.cmp(&precise), precise.cmp(&below)),
            (Ordering::Less, Ordering::Greater)
        );
        assert!(Decimal::new(-170_141_183_460_469_231_732, 0).unwrap() < precise);
        assert!(Decimal::new(i128::MAX, 0).unwrap() > precise);
    }

    #[test]
    fn ratios_round_half_away_from_zero() {
        let r = |n: &str, dd: &str, places| ratio(d(n), d(dd), places).map(|v| v.to_string());
        assert_eq!(r("2", "3", 2).as_deref(), Some("0.67"));
        assert_eq!(r("1", "3", 0).as_deref(), Some("0"));
        assert_eq!(r("1", "2", 0).as_deref(), Some("1"));
        assert_eq!(r("-1", "2", 0).as_deref(), Some("-1"));
        assert_eq!(r("1", "-8", 2).as_deref(), Some("-0.13"));
        assert_eq!(r("-1", "-8", 2).as_deref(), Some("0.13"));
        assert_eq!(r("1200.50", "3", 2).as_deref(), Some("400.17"));
        assert_eq!(r("0.5", "0.25", 0).as_deref(), Some("2"));
        assert_eq!(r("10", "0.003", 1).as_deref(), Some("3333.3"));
        assert_eq!(
            r("0.000000000000000001", "1000", 18).as_deref(),
            Some("0.000000000000000000")
        );
        assert_eq!(r("1", "0", 2), None);
        assert_eq!(r("1", "0.00", 2), None);
        assert_eq!(r("1", "3", MAX_SCALE + 1), None);
        assert_eq!(ratio(Decimal::new(i128::MAX, 0).unwrap(), d("1"), 1), None);
    }

    #[test]
    fn percentages_with_fixed_places() {
        let p =
            |part: u64, whole: u64| percent(part.into(), whole.into(), 1).map(|v| v.to_string());
        assert_eq!(p(2, 3).as_deref(), Some("66.7"));
        assert_eq!(p(1, 3).as_deref(), Some("33.3"));
        assert_eq!(p(0, 1).as_deref(), Some("0.0"));
        assert_eq!(p(1, 1).as_deref(), Some("100.0"));
        assert_eq!(p(1, 8).as_deref(), Some("12.5"));
        assert_eq!(p(1, 16).as_deref(), Some("6.3"), "6.25 rounds up");
        assert_eq!(p(1_875, 2_501).as_deref(), Some("75.0"));
        assert_eq!(p(1, 0), None);
        assert_eq!(
            percent(d("99.51"), d("1307.50"), 2)
                .map(|v| v.to_string())
                .as_deref(),
            Some("7.61")
        );
    }

    #[test]
    fn decimals_compare_exactly() {
        let check = |a: &str, b: &str, want: Option<Ordering>| {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
        };
        check("10", "9.99", Some(Ordering::Greater));
        check("0010.10", "10.1", Some(Ordering::Equal));
        check("-0", "0", Some(Ordering::Equal));
        check("-0.00", "+0", Some(Ordering::Equal));
        check("-2", "-10", Some(Ordering::Greater));
        check("-1", "1", Some(Ordering::Less));
        check(".5", "0.49999999999999999999999", Some(Ordering::Greater));
        check(
            "123456789012345678901234567890123456789012345",
            "123456789012345678901234567890123456789012344.9",
            Some(Ordering::Greater),
        );
        check("1e3", "1", None);
        check("1", "", None);
    }
}
