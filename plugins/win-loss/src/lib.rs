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

use kith_sdk::decimal::{self, Decimal};
use kith_sdk::host;
use kith_sdk::time::{self, DAY};
use kith_sdk::{
    ChartKind, Entity, EntityExt, EntityKind, Field, FieldValue, Filter, Plugin, PluginInfo,
    Report, ReportDef, ReportTable, SettingDef, SettingType, Timestamp, filter, plugin_info,
    setting, value,
};

/// The plugin.
pub struct WinLoss;

/// The plugin's id, as in its manifest.
pub const PLUGIN_ID: &str = "win-loss";

/// The report's id (listed by the host as `win-loss.summary`).
pub const REPORT: &str = "summary";

/// Records per `host::query` page: the most the host hands out at once.
const PAGE: u32 = 1_000;

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
    /// Midnight (UTC) at the start of the first and of the last close date counted.
    from: Option<Timestamp>,
    to: Option<Timestamp>,
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
                FieldValue::Datetime(t) => time::format_date(*t),
                _ => return None,
            };
            let text = text.trim().to_owned();
            (!text.is_empty()).then_some(text)
        };
        let date = |name: &str| -> Result<Option<Timestamp>, String> {
            get(name)
                .map(|s| {
                    time::parse_date(&s)
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
                time::format_date(f),
                time::format_date(t)
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
        let statuses = if self.by == "lost_reason" {
            "lost"
        } else {
            "won,lost"
        };
        let mut filters = vec![filter("status", "in", statuses)];
        // A bare date is its midnight UTC to the host; the end is exclusive so the last day
        // counts whole.
        if let Some(from) = self.from {
            filters.push(filter("closed_at", "gte", &time::format_date(from)));
        }
        if let Some(to) = self.to {
            filters.push(filter("closed_at", "lt", &time::format_date(to + DAY)));
        }
        if let Some(p) = &self.pipeline {
            filters.push(filter("pipeline", "eq", p));
        }
        filters
    }

    /// Whether a deal closed at `t` (or never, `None`) is in the date range: on or after the
    /// first day's midnight, before the midnight that ends the last day.
    fn in_range(&self, t: Option<Timestamp>) -> bool {
        let after_from = self.from.is_none_or(|f| t.is_some_and(|t| t >= f));
        let before_to = self.to.is_none_or(|end| t.is_some_and(|t| t < end + DAY));
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
        (Some(f), None) => format!("From {}", time::format_date(f)),
        (None, Some(t)) => format!("Until {}", time::format_date(t)),
        (Some(f), Some(t)) => format!("{} to {}", time::format_date(f), time::format_date(t)),
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
        .map(|d| d.scale())
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
    decimal::percent(part.into(), whole.into(), 1)
        .map_or_else(value::null, |p| value::number(p.to_string()))
}

/// `YYYY-MM` of a time, in UTC.
fn month_of(t: Timestamp) -> String {
    let (y, m, _) = time::to_civil(t);
    format!("{y:04}-{m:02}")
}

kith_sdk::register_plugin!(WinLoss);

#[cfg(test)]
mod tests;
