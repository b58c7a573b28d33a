//! The built-in reports: their definitions, and how each is computed from a projection.
//!
//! Conventions shared by all of them:
//! - `from` and `to` are calendar dates in UTC and both are included: `from=2026-01-01&to=
//!   2026-03-31` is the first quarter. Which date they test is said per report.
//! - Filters on text (`source`, `assignee`, `pipeline`) match the stored value exactly;
//!   `owner` takes a user id, or a known user's email (see [`Reports::run_as`]).
//! - A report run for a caller who does not see everything counts only the records that
//!   caller may see (their own and their team's, see [`crate::account::Access::sees`]), as
//!   if the others did not exist; parameter filters then narrow those further.
//! - Amounts are never added across currencies: a group with deals in two currencies is two
//!   rows, with a `currency` column. A deal without an amount counts in the row whose
//!   currency is empty, whatever its currency field says.
//! - Groups are aggregated by their interned number and only then named and sorted by text,
//!   so the row order never depends on the projection's history. Text sorts by its bytes;
//!   "none" (no owner, no source, no currency, no date) comes last.
//! - Decimals are exact and written without trailing zeros. Averages and percentages are
//!   rounded half away from zero: money to 2 places, hours to 2, days and percentages to 1.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate, NaiveTime};
use rust_decimal::{Decimal, RoundingStrategy};

use super::projection::{
    ContactRow, DealRow, Everything, InteractionRow, NONE, OwnAndTeam, Projection, Symbols,
    TicketRow, Visibility,
};
use super::{BUILT_IN, ChartKind, Column, ParamDef, ParamKind, ReportDef, ReportTable, Reports};
use crate::account::Access;
use crate::entity::{DealStatus, Direction, InteractionKind, Priority};
use crate::error::Error;
use crate::pipeline::Pipeline;
use crate::value::Value;

/// Pipeline by stage.
pub(super) const PIPELINE: &str = "pipeline";
/// Forecast by expected close month.
pub(super) const FORECAST: &str = "forecast";
/// Win rate, average deal size and sales cycle.
pub(super) const WIN_RATE: &str = "win-rate";
/// Tickets by priority.
pub(super) const TICKETS: &str = "tickets";
/// Interactions over time.
pub(super) const INTERACTIONS: &str = "interactions";
/// New contacts by source over time.
pub(super) const NEW_CONTACTS: &str = "new-contacts";

const MICROS_PER_HOUR: i64 = 3_600_000_000;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;
/// `num_days_from_ce` of 1970-01-01: turns days since the Unix epoch into a [`NaiveDate`].
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;

/// The built-in report definitions.
pub(super) fn definitions() -> Vec<ReportDef> {
    let def = |id: &str, name: &str, description: &str, parameters: Vec<ParamDef>| ReportDef {
        id: id.to_owned(),
        name: name.to_owned(),
        description: description.to_owned(),
        source: BUILT_IN.to_owned(),
        parameters,
    };
    vec![
        def(
            PIPELINE,
            "Pipeline by stage",
            "Deals in each stage of each pipeline, in board order: how many, their amount, and \
             their amount weighted by the stage's win probability. One row per currency; a \
             stage without deals has one row of zeros.",
            vec![
                pipeline_param(),
                owner_param("deals"),
                from_param("the day the deal was created"),
                to_param("the day the deal was created"),
            ],
        ),
        def(
            FORECAST,
            "Forecast by close month",
            "Open deals by the month they are expected to close: how many, their amount, and \
             their amount weighted by the win probability of their stage, per currency. \
             Without a date range, deals with no expected close date come last.",
            vec![
                pipeline_param(),
                owner_param("deals"),
                from_param("the expected close date"),
                to_param("the expected close date"),
            ],
        ),
        def(
            WIN_RATE,
            "Win rate, deal size and sales cycle",
            "Deals won and lost, grouped by owner, source or the month they closed: win rate, \
             amount won, average amount of a won deal, and average days from creation to win. \
             One row per group and currency.",
            vec![
                param(
                    "by",
                    "Group by",
                    ParamKind::Choice(vec!["owner".into(), "source".into(), "month".into()]),
                    "owner, source, or month (the month the deal closed). Default: owner.",
                ),
                pipeline_param(),
                owner_param("deals"),
                from_param("the day the deal was won or lost"),
                to_param("the day the deal was won or lost"),
            ],
        ),
        def(
            TICKETS,
            "Tickets by priority",
            "Tickets created in the period, by priority: how many, how many are still open, \
             average hours to first response and to resolution, and SLA compliance: the share \
             of tickets with a due time that were answered (resolved) by it.",
            vec![
                param(
                    "assignee",
                    "Assignee",
                    ParamKind::Text,
                    "Only tickets assigned to exactly this agent.",
                ),
                from_param("the day the ticket was created"),
                to_param("the day the ticket was created"),
            ],
        ),
        def(
            INTERACTIONS,
            "Interactions over time",
            "Interactions per period by type and owner, with how many were inbound and \
             outbound and their total duration.",
            vec![
                interval_param(),
                param(
                    "type",
                    "Type",
                    ParamKind::Choice(keys(InteractionKind::KEYS)),
                    "Only interactions of this type.",
                ),
                owner_param("interactions"),
                from_param("the day the interaction happened"),
                to_param("the day the interaction happened"),
            ],
        ),
        def(
            NEW_CONTACTS,
            "New contacts by source",
            "Contacts created per period, by the source they came from.",
            vec![
                interval_param(),
                param(
                    "source",
                    "Source",
                    ParamKind::Text,
                    "Only contacts with exactly this source.",
                ),
                owner_param("contacts"),
                from_param("the day the contact was created"),
                to_param("the day the contact was created"),
            ],
        ),
    ]
}

fn keys(k: &[&str]) -> Vec<String> {
    k.iter().map(|s| (*s).to_owned()).collect()
}

fn param(name: &str, label: &str, kind: ParamKind, help: &str) -> ParamDef {
    ParamDef {
        name: name.to_owned(),
        label: label.to_owned(),
        kind,
        help: Some(help.to_owned()),
    }
}

fn from_param(what: &str) -> ParamDef {
    param(
        "from",
        "From",
        ParamKind::Date,
        &format!("First day included (YYYY-MM-DD, UTC), by {what}. Default: no lower bound."),
    )
}

fn to_param(what: &str) -> ParamDef {
    param(
        "to",
        "To",
        ParamKind::Date,
        &format!("Last day included (YYYY-MM-DD, UTC), by {what}. Default: no upper bound."),
    )
}

fn owner_param(what: &str) -> ParamDef {
    param(
        "owner",
        "Owner",
        ParamKind::Text,
        &format!("Only {what} owned by this user (a user id or email)."),
    )
}

fn pipeline_param() -> ParamDef {
    param(
        "pipeline",
        "Pipeline",
        ParamKind::Text,
        "Only deals in this pipeline (its key, such as default). Default: every pipeline.",
    )
}

fn interval_param() -> ParamDef {
    param(
        "interval",
        "Interval",
        ParamKind::Choice(keys(&["month", "week", "day"])),
        "Length of a period: month (YYYY-MM), ISO week (YYYY-Www, weeks start on Monday) or \
         day (YYYY-MM-DD). Default: month.",
    )
}

/// A report's parameters, parsed and checked.
pub(super) struct Args {
    values: BTreeMap<String, Value>,
    span: Span,
}

impl Args {
    /// Checks what single parameters cannot: that `from` is not after `to`.
    pub(super) fn new(values: BTreeMap<String, Value>) -> Result<Self, Error> {
        let date = |name: &str| match values.get(name) {
            Some(Value::Date(d)) => Some(*d),
            _ => None,
        };
        let span = Span::new(date("from"), date("to"))?;
        Ok(Args { values, span })
    }

    fn text(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(Value::Text(s)) => Some(s),
            _ => None,
        }
    }

    fn interval(&self) -> Interval {
        match self.text("interval") {
            Some("week") => Interval::Week,
            Some("day") => Interval::Day,
            _ => Interval::Month,
        }
    }

    /// A filter on a text field by the parameter `name`: everything passes when it is unset.
    fn mask(&self, name: &str, syms: &Symbols) -> Mask {
        Mask(self.text(name).map(|t| syms.mask(t)))
    }
}

/// The days from `from` to `to`, both included, also as µs bounds `[start, end)`.
struct Span {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    start: i64,
    end: i64,
}

impl Span {
    fn new(from: Option<NaiveDate>, to: Option<NaiveDate>) -> Result<Span, Error> {
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(Error::bad_query(
                "to",
                format!("{t} is before from ({f}); both days are included"),
            ));
        }
        Ok(Span {
            from,
            to,
            start: from.map_or(i64::MIN, start_of),
            end: to.and_then(|t| t.succ_opt()).map_or(i64::MAX, start_of),
        })
    }

    fn is_bounded(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }

    fn has(&self, micros: i64) -> bool {
        self.start <= micros && micros < self.end
    }

    fn has_date(&self, d: NaiveDate) -> bool {
        self.from.is_none_or(|f| f <= d) && self.to.is_none_or(|t| d <= t)
    }
}

/// A filter over interned text: `None` lets everything through.
struct Mask(Option<Vec<bool>>);

impl Mask {
    fn allows(&self, sym: u32) -> bool {
        self.0
            .as_ref()
            .is_none_or(|m| m.get(sym as usize).copied().unwrap_or(false))
    }
}

/// Calls the report function `$f` on the projection `$p` with the visibility of `$access`
/// (an `Option<&Access>`) resolved against the projection's symbols. Without a restriction
/// it passes [`Everything`], so that instance of the report has no visibility check at all.
macro_rules! visible {
    ($access:expr, $p:expr, $f:ident($($arg:expr),*)) => {
        match $access.and_then(|a| OwnAndTeam::new(a, &$p.syms)) {
            None => $f($p, Everything, $($arg),*),
            Some(v) => $f($p, v, $($arg),*),
        }
    };
}

/// Runs built-in report `id` over the records `access` sees (all of them for `None`).
pub(super) fn run(
    reports: &Reports,
    id: &str,
    args: &Args,
    access: Option<&Access>,
) -> Result<ReportTable, Error> {
    let inner = &reports.inner;
    match id {
        PIPELINE => {
            let pipelines = reports.store().pipelines()?;
            reports.with(&inner.deals, |p| {
                visible!(access, p, pipeline(&pipelines, args))
            })
        }
        FORECAST => {
            let pipelines = reports.store().pipelines()?;
            reports.with(&inner.deals, |p| {
                visible!(access, p, forecast(&pipelines, args))
            })
        }
        WIN_RATE => reports.with(&inner.deals, |p| visible!(access, p, win_rate(args))),
        TICKETS => {
            let now = reports.store().clock().now().timestamp_micros();
            reports.with(&inner.tickets, |p| visible!(access, p, tickets(args, now)))
        }
        INTERACTIONS => reports.with(&inner.interactions, |p| {
            visible!(access, p, interactions(args))
        }),
        NEW_CONTACTS => reports.with(&inner.contacts, |p| visible!(access, p, new_contacts(args))),
        _ => Err(Error::NoSuch {
            what: "report",
            name: id.to_owned(),
        }),
    }
}

/// The caller's visibility and the owner and pipeline filters every deal report takes.
struct DealFilter<V> {
    vis: V,
    owner: Mask,
    pipeline: Mask,
}

impl<V: Visibility> DealFilter<V> {
    fn new(p: &Projection<DealRow>, vis: V, args: &Args) -> Self {
        DealFilter {
            vis,
            owner: args.mask("owner", &p.syms),
            pipeline: args.mask("pipeline", &p.syms),
        }
    }

    fn keeps(&self, d: &DealRow) -> bool {
        self.vis.sees(d) && self.owner.allows(d.owner) && self.pipeline.allows(d.pipeline)
    }
}

/// Refuses a `pipeline` parameter naming no pipeline, rather than answering with nothing.
fn check_pipeline(pipelines: &[Pipeline], args: &Args) -> Result<(), Error> {
    match args.text("pipeline") {
        Some(key) if !pipelines.iter().any(|p| p.key == key) => Err(Error::bad_query(
            "pipeline",
            format!(
                "there is no pipeline '{key}' (pipelines: {})",
                pipelines
                    .iter()
                    .map(|p| p.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

/// The win probability of a stage, if the pipeline and stage are defined.
fn probability(pipelines: &[Pipeline], pipeline: &str, stage: &str) -> Option<u8> {
    pipelines
        .iter()
        .find(|p| p.key == pipeline)
        .and_then(|p| p.stage(stage))
        .map(|s| s.probability)
}

/// A count and an exact sum.
type Tally = (u64, Decimal);

/// Tallies by (pipeline, stage), one per currency.
type StageTallies<'a> = BTreeMap<(&'a str, &'a str), Vec<(Option<&'a str>, Tally)>>;

/// The deal's currency for grouping: only a deal with an amount has one.
fn currency_of(d: &DealRow) -> u32 {
    if d.amount.is_some() { d.currency } else { NONE }
}

fn pipeline<V: Visibility>(
    p: &Projection<DealRow>,
    vis: V,
    pipelines: &[Pipeline],
    args: &Args,
) -> Result<ReportTable, Error> {
    check_pipeline(pipelines, args)?;
    let filter = DealFilter::new(p, vis, args);
    let mut groups: HashMap<(u32, u32, u32), Tally> = HashMap::new();
    for d in &p.rows {
        if !filter.keeps(d) || !args.span.has(d.created) {
            continue;
        }
        let g = groups
            .entry((d.pipeline, d.stage, currency_of(d)))
            .or_insert((0, Decimal::ZERO));
        g.0 += 1;
        if let Some(a) = d.amount {
            add(&mut g.1, a)?;
        }
    }
    // By (pipeline, stage) text, each with its currencies in order.
    let mut by_stage: StageTallies<'_> = BTreeMap::new();
    for ((pl, st, cur), tally) in groups {
        let key = (p.syms.name(pl).unwrap_or(""), p.syms.name(st).unwrap_or(""));
        by_stage
            .entry(key)
            .or_default()
            .push((p.syms.name(cur), tally));
    }
    for v in by_stage.values_mut() {
        v.sort_by(|a, b| none_last(a.0, b.0));
    }
    let mut rows = Vec::new();
    let only = args.text("pipeline");
    for pl in pipelines
        .iter()
        .filter(|pl| only.is_none_or(|k| pl.key == k))
    {
        for stage in &pl.stages {
            let tallies = by_stage
                .remove(&(pl.key.as_str(), stage.key.as_str()))
                .unwrap_or_default();
            stage_rows(
                &mut rows,
                [&pl.key, &stage.key, &stage.name],
                Some(stage.probability),
                tallies,
            )?;
        }
    }
    // Deals in a stage no pipeline defines any more: after the defined ones, without a
    // probability and so without a weighted amount.
    for ((pl, st), tallies) in by_stage {
        stage_rows(&mut rows, [pl, st, st], None, tallies)?;
    }
    Ok(table(
        &[
            ("pipeline", "Pipeline"),
            ("stage", "Stage"),
            ("stage_name", "Stage name"),
            ("probability", "Probability (%)"),
            ("currency", "Currency"),
            ("deals", "Deals"),
            ("amount", "Amount"),
            ("weighted_amount", "Weighted amount"),
        ],
        rows,
        ChartKind::Funnel,
        "stage_name",
        &["deals", "amount", "weighted_amount"],
    ))
}

fn stage_rows(
    rows: &mut Vec<Vec<Value>>,
    [pipeline, stage, name]: [&str; 3],
    probability: Option<u8>,
    tallies: Vec<(Option<&str>, Tally)>,
) -> Result<(), Error> {
    let head = || {
        vec![
            Value::Text(pipeline.to_owned()),
            Value::Text(stage.to_owned()),
            Value::Text(name.to_owned()),
            probability.map_or(Value::Null, |p| Value::Integer(i64::from(p))),
        ]
    };
    if tallies.is_empty() {
        let mut row = head();
        row.extend([
            Value::Null,
            Value::Integer(0),
            money(Decimal::ZERO),
            money(Decimal::ZERO),
        ]);
        rows.push(row);
    }
    for (currency, (n, sum)) in tallies {
        let weighted = match probability {
            Some(p) => money(weighted(sum, p)?),
            None => Value::Null,
        };
        let mut row = head();
        row.extend([text(currency), count(n), money(sum), weighted]);
        rows.push(row);
    }
    Ok(())
}

fn forecast<V: Visibility>(
    p: &Projection<DealRow>,
    vis: V,
    pipelines: &[Pipeline],
    args: &Args,
) -> Result<ReportTable, Error> {
    check_pipeline(pipelines, args)?;
    let filter = DealFilter::new(p, vis, args);
    let bounded = args.span.is_bounded();
    // Weighting is linear, so summing per stage first and weighting each stage's sum once
    // gives exactly the sum of the deals' weighted amounts, for a fraction of the work.
    let mut groups: HashMap<(Option<i32>, u32, u32, u32), Tally> = HashMap::new();
    for d in &p.rows {
        if d.status != DealStatus::Open || !filter.keeps(d) {
            continue;
        }
        let month = match d.expected_close {
            Some(date) if args.span.has_date(date) => Some(month_key(date)),
            Some(_) => continue,
            None if bounded => continue,
            None => None,
        };
        let g = groups
            .entry((month, currency_of(d), d.pipeline, d.stage))
            .or_insert((0, Decimal::ZERO));
        g.0 += 1;
        if let Some(a) = d.amount {
            add(&mut g.1, a)?;
        }
    }
    // (month, currency) → (deals, amount, weighted amount).
    let mut totals: HashMap<(Option<i32>, u32), (u64, Decimal, Decimal)> = HashMap::new();
    for ((month, cur, pl, st), (n, sum)) in groups {
        let pl = p.syms.name(pl).unwrap_or("");
        let st = p.syms.name(st).unwrap_or("");
        // A stage no pipeline defines any more has no probability: it adds nothing.
        let w = weighted(sum, probability(pipelines, pl, st).unwrap_or(0))?;
        let t = totals
            .entry((month, cur))
            .or_insert((0, Decimal::ZERO, Decimal::ZERO));
        t.0 += n;
        add(&mut t.1, sum)?;
        add(&mut t.2, w)?;
    }
    let mut sorted: Vec<_> = totals
        .into_iter()
        .map(|((month, cur), t)| (month, p.syms.name(cur), t))
        .collect();
    sorted.sort_by(|a, b| none_last(a.0, b.0).then_with(|| none_last(a.1, b.1)));
    let rows = sorted
        .into_iter()
        .map(|(month, cur, (n, sum, w))| {
            vec![
                month.map_or(Value::Null, |m| Value::Text(month_label(m))),
                text(cur),
                count(n),
                money(sum),
                money(w),
            ]
        })
        .collect();
    Ok(table(
        &[
            ("month", "Expected close month"),
            ("currency", "Currency"),
            ("deals", "Deals"),
            ("amount", "Amount"),
            ("weighted_amount", "Weighted amount"),
        ],
        rows,
        ChartKind::Bar,
        "month",
        &["weighted_amount", "amount"],
    ))
}

/// Won and lost deals of one group and currency.
#[derive(Default)]
struct WinTally {
    won: u64,
    lost: u64,
    won_amount: Decimal,
    /// Won deals that have an amount (the divisor of the average deal size).
    won_priced: u64,
    /// Sum over won deals of (closed − created), µs.
    cycle: i128,
}

fn win_rate<V: Visibility>(
    p: &Projection<DealRow>,
    vis: V,
    args: &Args,
) -> Result<ReportTable, Error> {
    let filter = DealFilter::new(p, vis, args);
    let by = args.text("by").unwrap_or("owner");
    let mut groups: HashMap<(i64, u32), WinTally> = HashMap::new();
    for d in &p.rows {
        let Some(closed) = d.closed else { continue };
        if d.status == DealStatus::Open || !filter.keeps(d) || !args.span.has(closed) {
            continue;
        }
        let group = match by {
            "source" => i64::from(d.source),
            "month" => i64::from(month_key(date_of(closed))),
            _ => i64::from(d.owner),
        };
        let g = groups.entry((group, currency_of(d))).or_default();
        if d.status == DealStatus::Won {
            g.won += 1;
            g.cycle += i128::from(closed) - i128::from(d.created);
            if let Some(a) = d.amount {
                g.won_priced += 1;
                add(&mut g.won_amount, a)?;
            }
        } else {
            g.lost += 1;
        }
    }
    let name = |group: i64| -> Option<String> {
        if by == "month" {
            i32::try_from(group).ok().map(month_label)
        } else {
            u32::try_from(group)
                .ok()
                .and_then(|s| p.syms.name(s))
                .map(str::to_owned)
        }
    };
    let mut sorted: Vec<(Option<String>, Option<&str>, WinTally)> = groups
        .into_iter()
        .map(|((group, cur), t)| (name(group), p.syms.name(cur), t))
        .collect();
    sorted.sort_by(|a, b| none_last(a.0.as_deref(), b.0.as_deref()).then(none_last(a.1, b.1)));
    let mut rows = Vec::with_capacity(sorted.len());
    for (group, cur, t) in sorted {
        let cycle_days = Decimal::try_from_i128_with_scale(t.cycle, 0)
            .ok()
            .map_or(Value::Null, |c| {
                quotient(c, Decimal::from(t.won) * Decimal::from(MICROS_PER_DAY), 1)
            });
        rows.push(vec![
            group.map_or(Value::Null, Value::Text),
            text(cur),
            count(t.won),
            count(t.lost),
            percent(t.won, t.won + t.lost),
            money(t.won_amount),
            quotient(t.won_amount, Decimal::from(t.won_priced), 2),
            cycle_days,
        ]);
    }
    let group_label = match by {
        "source" => "Source",
        "month" => "Month closed",
        _ => "Owner",
    };
    Ok(table(
        &[
            (by, group_label),
            ("currency", "Currency"),
            ("won", "Won"),
            ("lost", "Lost"),
            ("win_rate", "Win rate (%)"),
            ("won_amount", "Amount won"),
            ("avg_deal_size", "Average won deal"),
            ("avg_cycle_days", "Average days to win"),
        ],
        rows,
        ChartKind::Bar,
        by,
        &["win_rate"],
    ))
}

/// Tickets of one priority.
#[derive(Default)]
struct TicketTally {
    tickets: u64,
    open: u64,
    responded: u64,
    response_time: i128,
    resolved: u64,
    resolution_time: i128,
    response_met: u64,
    response_breached: u64,
    resolution_met: u64,
    resolution_breached: u64,
}

/// Whether something due at `due` and done at `done` met its deadline, as of `now`: met if
/// done by the due time; breached if done later, or not done and the due time has passed;
/// `None` (not counted) while it is not done and not yet due, or has no due time.
fn sla(done: Option<i64>, due: Option<i64>, now: i64) -> Option<bool> {
    let due = due?;
    match done {
        Some(at) => Some(at <= due),
        None if now > due => Some(false),
        None => None,
    }
}

fn tickets<V: Visibility>(
    p: &Projection<TicketRow>,
    vis: V,
    args: &Args,
    now: i64,
) -> Result<ReportTable, Error> {
    let assignee = args.mask("assignee", &p.syms);
    let mut tallies: [TicketTally; 4] = Default::default();
    for t in &p.rows {
        if !vis.sees(t) || !args.span.has(t.created) || !assignee.allows(t.assignee) {
            continue;
        }
        let Some(g) = tallies.get_mut(priority_index(t.priority)) else {
            continue;
        };
        g.tickets += 1;
        if let Some(at) = t.first_response {
            g.responded += 1;
            g.response_time += i128::from(at) - i128::from(t.created);
        }
        match t.resolved {
            Some(at) => {
                g.resolved += 1;
                g.resolution_time += i128::from(at) - i128::from(t.created);
            }
            None => g.open += 1,
        }
        match sla(t.first_response, t.first_response_due, now) {
            Some(true) => g.response_met += 1,
            Some(false) => g.response_breached += 1,
            None => {}
        }
        match sla(t.resolved, t.resolution_due, now) {
            Some(true) => g.resolution_met += 1,
            Some(false) => g.resolution_breached += 1,
            None => {}
        }
    }
    let hours = |total: i128, n: u64| -> Value {
        Decimal::try_from_i128_with_scale(total, 0)
            .ok()
            .map_or(Value::Null, |t| {
                quotient(t, Decimal::from(n) * Decimal::from(MICROS_PER_HOUR), 2)
            })
    };
    let rows = Priority::KEYS
        .iter()
        .zip(tallies)
        .map(|(key, g)| {
            vec![
                Value::Text((*key).to_owned()),
                count(g.tickets),
                count(g.open),
                count(g.resolved),
                hours(g.response_time, g.responded),
                hours(g.resolution_time, g.resolved),
                count(g.response_met),
                count(g.response_breached),
                percent(g.response_met, g.response_met + g.response_breached),
                count(g.resolution_met),
                count(g.resolution_breached),
                percent(g.resolution_met, g.resolution_met + g.resolution_breached),
            ]
        })
        .collect();
    Ok(table(
        &[
            ("priority", "Priority"),
            ("tickets", "Tickets"),
            ("open", "Open"),
            ("resolved", "Resolved"),
            (
                "avg_first_response_hours",
                "Average hours to first response",
            ),
            ("avg_resolution_hours", "Average hours to resolution"),
            ("response_sla_met", "First response SLA met"),
            ("response_sla_breached", "First response SLA breached"),
            ("response_sla_pct", "First response SLA (%)"),
            ("resolution_sla_met", "Resolution SLA met"),
            ("resolution_sla_breached", "Resolution SLA breached"),
            ("resolution_sla_pct", "Resolution SLA (%)"),
        ],
        rows,
        ChartKind::Bar,
        "priority",
        &["tickets"],
    ))
}

/// The position of a priority in [`Priority::KEYS`] (declaration order).
fn priority_index(p: Priority) -> usize {
    match p {
        Priority::Low => 0,
        Priority::Normal => 1,
        Priority::High => 2,
        Priority::Urgent => 3,
    }
}

/// The position of an interaction kind in [`InteractionKind::KEYS`]; none sorts last.
fn kind_index(k: Option<InteractionKind>) -> usize {
    k.and_then(|k| InteractionKind::KEYS.iter().position(|key| *key == k.key()))
        .unwrap_or(usize::MAX)
}

/// Interactions of one period, type and owner.
#[derive(Default)]
struct InteractionTally {
    n: u64,
    inbound: u64,
    outbound: u64,
    seconds: i128,
}

fn interactions<V: Visibility>(
    p: &Projection<InteractionRow>,
    vis: V,
    args: &Args,
) -> Result<ReportTable, Error> {
    let interval = args.interval();
    let owner = args.mask("owner", &p.syms);
    let only = args.text("type").and_then(InteractionKind::parse);
    let mut groups: HashMap<(i32, Option<InteractionKind>, u32), InteractionTally> = HashMap::new();
    for r in &p.rows {
        if !vis.sees(r)
            || !args.span.has(r.at)
            || !owner.allows(r.owner)
            || only.is_some_and(|k| r.kind != Some(k))
        {
            continue;
        }
        let g = groups
            .entry((interval.key(date_of(r.at)), r.kind, r.owner))
            .or_default();
        g.n += 1;
        match r.direction {
            Some(Direction::Inbound) => g.inbound += 1,
            Some(Direction::Outbound) => g.outbound += 1,
            None => {}
        }
        g.seconds += i128::from(r.duration_seconds.unwrap_or(0));
    }
    let mut sorted: Vec<_> = groups.into_iter().collect();
    sorted.sort_by(|((pa, ka, oa), _), ((pb, kb, ob), _)| {
        pa.cmp(pb)
            .then(kind_index(*ka).cmp(&kind_index(*kb)))
            .then_with(|| none_last(p.syms.name(*oa), p.syms.name(*ob)))
    });
    let rows = sorted
        .into_iter()
        .map(|((period, kind, owner), g)| {
            let minutes = Decimal::try_from_i128_with_scale(g.seconds, 0)
                .ok()
                .map_or(Value::Null, |s| quotient(s, Decimal::from(60), 1));
            vec![
                Value::Text(interval.label(period)),
                kind.map_or(Value::Null, |k| Value::Text(k.key().to_owned())),
                text(p.syms.name(owner)),
                count(g.n),
                count(g.inbound),
                count(g.outbound),
                minutes,
            ]
        })
        .collect();
    Ok(table(
        &[
            ("period", "Period"),
            ("type", "Type"),
            ("owner", "Owner"),
            ("interactions", "Interactions"),
            ("inbound", "Inbound"),
            ("outbound", "Outbound"),
            ("duration_minutes", "Duration (minutes)"),
        ],
        rows,
        ChartKind::Line,
        "period",
        &["interactions"],
    ))
}

fn new_contacts<V: Visibility>(
    p: &Projection<ContactRow>,
    vis: V,
    args: &Args,
) -> Result<ReportTable, Error> {
    let interval = args.interval();
    let owner = args.mask("owner", &p.syms);
    let source = args.mask("source", &p.syms);
    let mut groups: HashMap<(i32, u32), u64> = HashMap::new();
    for c in &p.rows {
        if !vis.sees(c)
            || !args.span.has(c.created)
            || !owner.allows(c.owner)
            || !source.allows(c.source)
        {
            continue;
        }
        *groups
            .entry((interval.key(date_of(c.created)), c.source))
            .or_default() += 1;
    }
    let mut sorted: Vec<_> = groups.into_iter().collect();
    sorted.sort_by(|((pa, sa), _), ((pb, sb), _)| {
        pa.cmp(pb)
            .then_with(|| none_last(p.syms.name(*sa), p.syms.name(*sb)))
    });
    let rows = sorted
        .into_iter()
        .map(|((period, src), n)| {
            vec![
                Value::Text(interval.label(period)),
                text(p.syms.name(src)),
                count(n),
            ]
        })
        .collect();
    Ok(table(
        &[
            ("period", "Period"),
            ("source", "Source"),
            ("contacts", "New contacts"),
        ],
        rows,
        ChartKind::Line,
        "period",
        &["contacts"],
    ))
}

/// The length of the periods of an over-time report.
#[derive(Debug, Clone, Copy)]
enum Interval {
    Day,
    Week,
    Month,
}

impl Interval {
    /// A number per period that sorts like the periods.
    fn key(self, d: NaiveDate) -> i32 {
        match self {
            Interval::Day => d.num_days_from_ce(),
            Interval::Week => {
                let w = d.iso_week();
                // ISO weeks run 1..=53, so 64 per year keeps years apart and in order.
                w.year() * 64 + w.week() as i32
            }
            Interval::Month => month_key(d),
        }
    }

    /// The period's name: `2026-03-02`, `2026-W10` or `2026-03`.
    fn label(self, key: i32) -> String {
        match self {
            Interval::Day => NaiveDate::from_num_days_from_ce_opt(key)
                .map(|d| d.to_string())
                .unwrap_or_default(),
            Interval::Week => format!("{:04}-W{:02}", key.div_euclid(64), key.rem_euclid(64)),
            Interval::Month => month_label(key),
        }
    }
}

fn month_key(d: NaiveDate) -> i32 {
    d.year() * 12 + d.month0() as i32
}

fn month_label(key: i32) -> String {
    format!("{:04}-{:02}", key.div_euclid(12), key.rem_euclid(12) + 1)
}

/// The UTC day of a time in µs since the epoch.
fn date_of(micros: i64) -> NaiveDate {
    i32::try_from(micros.div_euclid(MICROS_PER_DAY) + UNIX_EPOCH_DAYS_FROM_CE)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .unwrap_or_default()
}

/// Midnight UTC at the start of `d`, in µs since the epoch.
fn start_of(d: NaiveDate) -> i64 {
    d.and_time(NaiveTime::MIN).and_utc().timestamp_micros()
}

/// Orders optional text with "none" last.
fn none_last<T: Ord>(a: Option<T>, b: Option<T>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn table(
    columns: &[(&str, &str)],
    rows: Vec<Vec<Value>>,
    chart: ChartKind,
    label: &str,
    values: &[&str],
) -> ReportTable {
    ReportTable {
        columns: columns
            .iter()
            .map(|(name, label)| Column {
                name: (*name).to_owned(),
                label: (*label).to_owned(),
            })
            .collect(),
        rows,
        chart,
        label_column: Some(label.to_owned()),
        value_columns: values.iter().map(|v| (*v).to_owned()).collect(),
    }
}

fn too_large() -> Error {
    Error::invalid(
        "amount",
        "the amounts add up to more than an exact decimal can hold",
    )
}

/// Adds exactly; an overflow (amounts near 10^28) is an error rather than a panic.
fn add(acc: &mut Decimal, x: Decimal) -> Result<(), Error> {
    *acc = acc.checked_add(x).ok_or_else(too_large)?;
    Ok(())
}

/// `amount` × `probability` %.
fn weighted(amount: Decimal, probability: u8) -> Result<Decimal, Error> {
    amount
        .checked_mul(Decimal::from(probability))
        .and_then(|x| x.checked_div(Decimal::ONE_HUNDRED))
        .ok_or_else(too_large)
}

fn money(d: Decimal) -> Value {
    Value::Number(d.normalize())
}

fn count(n: u64) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn text(s: Option<&str>) -> Value {
    s.map_or(Value::Null, |s| Value::Text(s.to_owned()))
}

/// `num / den` rounded to `places`, half away from zero; null when `den` is zero.
fn quotient(num: Decimal, den: Decimal, places: u32) -> Value {
    if den.is_zero() {
        return Value::Null;
    }
    num.checked_div(den).map_or(Value::Null, |q| {
        Value::Number(
            q.round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero)
                .normalize(),
        )
    })
}

/// `part` as a percentage of `whole`, to one place; null when `whole` is zero.
fn percent(part: u64, whole: u64) -> Value {
    quotient(
        Decimal::from(part) * Decimal::ONE_HUNDRED,
        Decimal::from(whole),
        1,
    )
}
