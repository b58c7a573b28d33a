//! Win/loss: a report of the deals won and lost, with counts, win rate and amounts, grouped
//! by the month they closed, their source, their owner or the reason they were lost.
//!
//! # The report `summary` (`win-loss.summary` among the server's reports)
//!
//! Parameters (all optional):
//!
//! | name | default | meaning |
//! |---|---|---|
//! | `from` | none | first close date counted, `YYYY-MM-DD` (UTC) |
//! | `to` | none | last close date counted, inclusive, `YYYY-MM-DD` (UTC) |
//! | `by` | `month` | `month` (of `closed_at`, `YYYY-MM`), `source`, `owner`, `lost_reason` or `total` |
//! | `pipeline` | all | only deals of this pipeline key |
//!
//! The deals are read only through `host::query`, with the status, date range and pipeline
//! as filters so the host does the selecting, a page of 1,000 at a time, following the
//! cursor to the last page.
//!
//! For `month`, `source`, `owner` and `total`, a row has the group, `won`, `lost`,
//! `win_rate` (won out of won and lost, in percent with one decimal, as exact decimal text;
//! empty when nothing closed) and, for each currency the deals use, `won_amount_<currency>`
//! and `lost_amount_<currency>` (exact sums, as money; a deal without an amount adds
//! nothing). Months run from the first to the last month with a closed deal, including the
//! empty months between; the other groups are ordered by deals closed, most first, then by
//! name; a missing source or owner is `(none)`. The chart hint is a bar chart of `won` and
//! `lost` by group.
//!
//! For `lost_reason`, only lost deals count: a row has the reason (`(none)` when not given),
//! `lost`, `share` (percent of all losses) and the lost amounts per currency, most frequent
//! reason first, charted as a pie of `lost`.
//!
//! Money is never a float: amounts are summed as exact decimals and written as text, every
//! cell of a money column with as many decimal places as its most precise sum.

use std::collections::BTreeMap;

use kith_sdk::host;
use kith_sdk::{
    ChartKind, Entity, EntityExt, EntityKind, Field, FieldValue, Filter, Plugin, PluginInfo,
    Report, ReportDef, ReportTable, SettingDef, SettingType, Timestamp, plugin_info, setting,
    value,
};

/// The plugin.
pub struct WinLoss;

/// The plugin's id, as in its manifest.
pub const PLUGIN_ID: &str = "win-loss";

/// The report's id (listed by the host as `win-loss.summary`).
pub const REPORT: &str = "summary";

/// Records per `host::query` page: the most the host hands out at once.
const PAGE: u32 = 1_000;

const DAY_MICROS: i64 = 86_400_000_000;

/// The groupings `by` accepts.
const GROUPINGS: [&str; 5] = ["month", "source", "owner", "lost_reason", "total"];

/// The label of a group whose field is empty.
const NONE_LABEL: &str = "(none)";

impl Plugin for WinLoss {
    fn describe() -> PluginInfo {
        let text = |name: &str, label: &str, help: &str| SettingDef {
            help: Some(help.to_owned()),
            ..setting(name, label, SettingType::Text, value::text(""))
        };
        let mut info = plugin_info(
            "Win/loss",
            env!("CARGO_PKG_VERSION"),
            "A report of deals won and lost: counts, win rate, amounts and lost reasons, by month, source, owner or reason.",
        );
        info.reports = vec![ReportDef {
            id: REPORT.to_owned(),
            name: "Win/loss".to_owned(),
            description: "Deals won and lost, with the win rate and the amounts per currency, grouped by close month, source, owner or lost reason.".to_owned(),
            parameters: vec![
                text("from", "Closed from", "First close date counted, YYYY-MM-DD (UTC). Empty: no limit."),
                text("to", "Closed until", "Last close date counted, inclusive, YYYY-MM-DD (UTC). Empty: no limit."),
                SettingDef {
                    options: GROUPINGS.map(str::to_owned).to_vec(),
                    help: Some("month (of the close date), source, owner, lost_reason (lost deals only) or total (one row).".to_owned()),
                    ..setting("by", "Group by", SettingType::Choice, value::choice("month"))
                },
                text("pipeline", "Pipeline", "Only deals of this pipeline key. Empty: every pipeline."),
            ],
        }];
        info.capabilities.read = vec![EntityKind::Deal];
        info
    }

    fn run_report(id: &str, parameters: &[Field], _now: Timestamp) -> Result<ReportTable, String> {
        if id != REPORT {
            return Err(format!("this plugin has no report '{id}'"));
        }
        let params = Params::read(parameters)?;
        let deals = closed_deals(&params)?;
        match params.by {
            "lost_reason" => lost_reasons(&deals),
            by => by_group(by, &params, &deals),
        }
    }
}

/// The report's parameters, checked.
#[derive(Debug)]
struct Params {
    /// Days since 1970-01-01 of the first and last close dates counted.
    from: Option<i64>,
    to: Option<i64>,
    by: &'static str,
    pipeline: Option<String>,
}

impl Params {
    fn read(parameters: &[Field]) -> Result<Params, String> {
        let get = |name: &str| -> Option<String> {
            let v = parameters
                .iter()
                .find(|f| f.name == name)
                .map(|f| &f.value)?;
            let text = match v {
                FieldValue::Text(s) | FieldValue::Choice(s) | FieldValue::Date(s) => s.clone(),
                FieldValue::Datetime(t) => format_date(t.div_euclid(DAY_MICROS)),
                _ => return None,
            };
            let text = text.trim().to_owned();
            (!text.is_empty()).then_some(text)
        };
        let date = |name: &str| -> Result<Option<i64>, String> {
            get(name)
                .map(|s| {
                    parse_date(&s)
                        .ok_or_else(|| format!("{name}: '{s}' is not a date (YYYY-MM-DD)"))
                })
                .transpose()
        };
        let (from, to) = (date("from")?, date("to")?);
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(format!(
                "from ({}) is after to ({})",
                format_date(f),
                format_date(t)
            ));
        }
        let by = match get("by") {
            None => "month",
            Some(b) => GROUPINGS
                .into_iter()
                .find(|g| g.eq_ignore_ascii_case(&b))
                .ok_or_else(|| format!("by: '{b}' is not one of {}", GROUPINGS.join(", ")))?,
        };
        Ok(Params {
            from,
            to,
            by,
            pipeline: get("pipeline"),
        })
    }

    /// The filters that select the deals, as `host::query` takes them.
    fn filters(&self) -> Vec<Filter> {
        let filter = |field: &str, op: &str, value: String| Filter {
            field: field.to_owned(),
            op: op.to_owned(),
            value,
        };
        let statuses = if self.by == "lost_reason" {
            "lost"
        } else {
            "won,lost"
        };
        let mut filters = vec![filter("status", "in", statuses.to_owned())];
        // A bare date is its midnight UTC to the host; the end is exclusive so the last day
        // counts whole.
        if let Some(from) = self.from {
            filters.push(filter("closed_at", "gte", format_date(from)));
        }
        if let Some(to) = self.to {
            filters.push(filter("closed_at", "lt", format_date(to + 1)));
        }
        if let Some(p) = &self.pipeline {
            filters.push(filter("pipeline", "eq", p.clone()));
        }
        filters
    }

    /// Whether a deal closed at `t` (or never, `None`) is in the date range.
    fn in_range(&self, t: Option<Timestamp>) -> bool {
        let day = t.map(|t| t.div_euclid(DAY_MICROS));
        let after_from = self.from.is_none_or(|f| day.is_some_and(|d| d >= f));
        let before_to = self.to.is_none_or(|t| day.is_some_and(|d| d <= t));
        after_from && before_to
    }
}

/// Every won or lost deal the parameters select, page by page.
fn closed_deals(params: &Params) -> Result<Vec<Entity>, String> {
    let filters = params.filters();
    let mut deals = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = host::query(EntityKind::Deal, &filters, PAGE, cursor.as_deref())?;
        // The host has applied the filters; checking again costs little and keeps the figures
        // right should a filter ever be read differently.
        deals.extend(page.items.into_iter().filter(|d| {
            matches!(d.text("status"), Some("won" | "lost"))
                && params.in_range(d.datetime("closed_at"))
        }));
        match page.next_cursor {
            Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
            Some(_) => return Err("the host returned the same cursor twice".to_owned()),
            None => return Ok(deals),
        }
    }
}

/// Counts and amounts of one group.
#[derive(Debug, Default)]
struct Tally {
    won: u64,
    lost: u64,
    won_amount: BTreeMap<String, Decimal>,
    lost_amount: BTreeMap<String, Decimal>,
}

impl Tally {
    fn add(&mut self, deal: &Entity) -> Result<(), String> {
        let won = deal.text("status") == Some("won");
        if won {
            self.won += 1;
        } else {
            self.lost += 1;
        }
        if let Some(amount) = deal.text("amount") {
            let parsed = Decimal::parse(amount)
                .ok_or_else(|| format!("deal {}: amount '{amount}' is not a decimal", deal.id))?;
            let currency = deal.text("currency").unwrap_or_default().to_uppercase();
            let sums = if won {
                &mut self.won_amount
            } else {
                &mut self.lost_amount
            };
            let sum = sums.entry(currency).or_default();
            *sum = sum
                .checked_add(parsed)
                .ok_or("the amounts add up to more than a report can hold")?;
        }
        Ok(())
    }

    fn closed(&self) -> u64 {
        self.won + self.lost
    }
}

/// The report grouped by month, source, owner or in total.
fn by_group(by: &str, params: &Params, deals: &[Entity]) -> Result<ReportTable, String> {
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    for deal in deals {
        let key = match by {
            "month" => deal
                .datetime("closed_at")
                .map_or_else(|| "(no date)".to_owned(), month_of),
            "total" => total_label(params),
            field => deal
                .text(field)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .unwrap_or(NONE_LABEL)
                .to_owned(),
        };
        groups.entry(key).or_default().add(deal)?;
    }
    let mut rows: Vec<(String, Tally)> = groups.into_iter().collect();
    if by == "month" {
        fill_months(&mut rows);
    } else {
        rows.sort_by(|a, b| b.1.closed().cmp(&a.1.closed()).then(a.0.cmp(&b.0)));
    }
    let currencies = currencies(rows.iter().map(|(_, t)| t));
    let label = match by {
        "month" => "Month",
        "source" => "Source",
        "owner" => "Owner",
        _ => "Period",
    };
    let mut report = Report::new()
        .column(by, label)
        .column("won", "Won")
        .column("lost", "Lost")
        .column("win_rate", "Win rate (%)");
    for c in &currencies {
        report = report
            .column(&amount_column("won", c), &amount_label("Won", c))
            .column(&amount_column("lost", c), &amount_label("Lost", c));
    }
    let scales: Vec<(u32, u32)> = currencies
        .iter()
        .map(|c| {
            (
                scale(rows.iter().map(|(_, t)| &t.won_amount), c),
                scale(rows.iter().map(|(_, t)| &t.lost_amount), c),
            )
        })
        .collect();
    for (key, t) in &rows {
        let mut row = vec![
            value::text(key.as_str()),
            count(t.won),
            count(t.lost),
            percent(t.won, t.closed()),
        ];
        for (c, (won_scale, lost_scale)) in currencies.iter().zip(&scales) {
            row.push(money(&t.won_amount, c, *won_scale));
            row.push(money(&t.lost_amount, c, *lost_scale));
        }
        report = report.row(row);
    }
    report.chart(ChartKind::Bar, by, &["won", "lost"]).build()
}

/// The report of lost deals by reason.
fn lost_reasons(deals: &[Entity]) -> Result<ReportTable, String> {
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    let mut total = 0;
    for deal in deals.iter().filter(|d| d.text("status") == Some("lost")) {
        let reason = deal
            .text("lost_reason")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(NONE_LABEL);
        groups.entry(reason.to_owned()).or_default().add(deal)?;
        total += 1;
    }
    let mut rows: Vec<(String, Tally)> = groups.into_iter().collect();
    rows.sort_by(|a, b| b.1.lost.cmp(&a.1.lost).then(a.0.cmp(&b.0)));
    let currencies = currencies(rows.iter().map(|(_, t)| t));
    let mut report = Report::new()
        .column("lost_reason", "Lost reason")
        .column("lost", "Lost")
        .column("share", "Share of losses (%)");
    for c in &currencies {
        report = report.column(&amount_column("lost", c), &amount_label("Lost", c));
    }
    let scales: Vec<u32> = currencies
        .iter()
        .map(|c| scale(rows.iter().map(|(_, t)| &t.lost_amount), c))
        .collect();
    for (reason, t) in &rows {
        let mut row = vec![
            value::text(reason.as_str()),
            count(t.lost),
            percent(t.lost, total),
        ];
        for (c, s) in currencies.iter().zip(&scales) {
            row.push(money(&t.lost_amount, c, *s));
        }
        report = report.row(row);
    }
    report
        .chart(ChartKind::Pie, "lost_reason", &["lost"])
        .build()
}

/// The label of the one row of `by=total`: the date range it covers.
fn total_label(params: &Params) -> String {
    match (params.from, params.to) {
        (None, None) => "All closed deals".to_owned(),
        (Some(f), None) => format!("From {}", format_date(f)),
        (None, Some(t)) => format!("Until {}", format_date(t)),
        (Some(f), Some(t)) => format!("{} to {}", format_date(f), format_date(t)),
    }
}

/// Adds the empty months between the first and the last month with a closed deal, so a chart
/// shows the gaps; months sort as text (`YYYY-MM`), and `(no date)` after them.
fn fill_months(rows: &mut Vec<(String, Tally)>) {
    let months: Vec<(i64, i64)> = rows.iter().filter_map(|(k, _)| parse_month(k)).collect();
    let (Some(first), Some(last)) = (months.first().copied(), months.last().copied()) else {
        return;
    };
    let (mut y, mut m) = first;
    while (y, m) < last {
        m += 1;
        if m > 12 {
            (y, m) = (y + 1, 1);
        }
        let key = format!("{y:04}-{m:02}");
        if !rows.iter().any(|(k, _)| *k == key) {
            rows.push((key, Tally::default()));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
}

fn parse_month(s: &str) -> Option<(i64, i64)> {
    let (y, m) = s.split_once('-')?;
    Some((y.parse().ok()?, m.parse().ok()?))
}

/// Every currency with an amount in any group, sorted.
fn currencies<'a>(tallies: impl Iterator<Item = &'a Tally>) -> Vec<String> {
    let mut all: Vec<String> = tallies
        .flat_map(|t| t.won_amount.keys().chain(t.lost_amount.keys()))
        .cloned()
        .collect();
    all.sort();
    all.dedup();
    all
}

fn amount_column(what: &str, currency: &str) -> String {
    if currency.is_empty() {
        format!("{what}_amount")
    } else {
        format!("{what}_amount_{}", currency.to_lowercase())
    }
}

fn amount_label(what: &str, currency: &str) -> String {
    if currency.is_empty() {
        format!("{what} amount")
    } else {
        format!("{what} amount ({currency})")
    }
}

fn count(n: u64) -> FieldValue {
    value::integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// The decimal places of a money column: those of its most precise sum, so every cell of the
/// column has the same.
fn scale<'a>(sums: impl Iterator<Item = &'a BTreeMap<String, Decimal>>, currency: &str) -> u32 {
    sums.filter_map(|s| s.get(currency))
        .map(|d| d.scale)
        .max()
        .unwrap_or(0)
}

/// A money cell: the sum for `currency` (0 when there is none) with `scale` decimal places.
fn money(sums: &BTreeMap<String, Decimal>, currency: &str, scale: u32) -> FieldValue {
    let sum = sums.get(currency).copied().unwrap_or_default();
    // A scale that would overflow cannot occur: it is the largest scale of the column's own
    // sums, each of which fitted; fall back to the sum's own digits all the same.
    let cell = sum.with_scale(scale).unwrap_or(sum);
    value::money(cell.to_string())
}

/// `part` of `whole` in percent with one decimal, rounded half up, as exact text; empty when
/// `whole` is 0.
fn percent(part: u64, whole: u64) -> FieldValue {
    if whole == 0 {
        return value::null();
    }
    let tenths = (u128::from(part) * 1_000 + u128::from(whole) / 2) / u128::from(whole);
    value::number(format!("{}.{}", tenths / 10, tenths % 10))
}

/// An exact decimal: `units` × 10^-`scale`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Decimal {
    units: i128,
    scale: u32,
}

impl Decimal {
    /// Parses `1234`, `-12.50`, `.5`; `None` for anything else or more than 18 decimals.
    fn parse(s: &str) -> Option<Decimal> {
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
        let scale = u32::try_from(frac.len()).ok().filter(|s| *s <= 18)?;
        let units: i128 = format!("{int}{frac}").parse().ok()?;
        Some(Decimal {
            units: if negative { -units } else { units },
            scale,
        })
    }

    fn rescaled(self, scale: u32) -> Option<i128> {
        self.units
            .checked_mul(10_i128.checked_pow(scale - self.scale)?)
    }

    /// The same number with `scale` decimal places (at least its own).
    fn with_scale(self, scale: u32) -> Option<Decimal> {
        let scale = scale.max(self.scale);
        Some(Decimal {
            units: self.rescaled(scale)?,
            scale,
        })
    }

    fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        Some(Decimal {
            units: self.rescaled(scale)?.checked_add(other.rescaled(scale)?)?,
            scale,
        })
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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

/// `YYYY-MM` of a time, in UTC.
fn month_of(t: Timestamp) -> String {
    let (y, m, _) = civil_from_days(t.div_euclid(DAY_MICROS));
    format!("{y:04}-{m:02}")
}

/// Days since 1970-01-01 of a strict `YYYY-MM-DD`.
fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = &s[r];
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())
            .flatten()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let days = days_from_civil(y, m, d);
    // Round-tripping rejects month 13, 31 April and 29 February of common years.
    (civil_from_days(days) == (y, m, d)).then_some(days)
}

fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

kith_sdk::register_plugin!(WinLoss);

#[cfg(test)]
mod tests;
