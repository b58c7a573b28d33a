//! The dashboard at `/`: open pipeline value and weighted forecast (per currency), win rate,
//! open and overdue tickets, tasks due today, new contacts per week as a chart, and recent
//! activity. Every figure comes from the built-in reports or from counts, run for the caller
//! (an agent limited to their own and their team's records sees their own figures).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::get;
use kith_core::money::Decimal;
use kith_core::report::ReportTable;
use kith_core::{AnyRecord, EntityKind, Filter, FilterOp, Query, SortKey, Timestamp, Value};
use maud::{Markup, html};

use super::charts::{Shape, chart};
use super::fields::money;
use super::html_page;
use super::records::{display_name, error_page};
use crate::api::auth::{Caller, Need, Routes};
use crate::api::{ApiError, AppState, read_as};

pub(super) fn routes() -> Routes {
    Routes::new().route("/", &[(Method::GET, Need::Viewer)], get(dashboard))
}

/// How many weeks the new-contacts chart covers.
const WEEKS: i64 = 12;

/// The dashboard's figures.
struct Figures {
    /// Open deals' amount and weighted amount, per currency.
    pipeline: BTreeMap<String, (Decimal, Decimal)>,
    /// Deals won and lost.
    won: u64,
    lost: u64,
    open_tickets: u64,
    overdue_tickets: u64,
    tasks_today: u64,
    overdue_tasks: u64,
    /// (ISO week, new contacts).
    new_contacts: Vec<(String, f64)>,
    /// Latest interactions, newest first.
    recent: Vec<AnyRecord>,
}

/// A column's values by row, looked up by column name.
fn column<'a>(t: &'a ReportTable, name: &str) -> impl Iterator<Item = &'a Value> + 'a {
    let i = t.columns.iter().position(|c| c.name == name);
    t.rows.iter().filter_map(move |r| i.and_then(|i| r.get(i)))
}

fn decimal(v: &Value) -> Decimal {
    match v {
        Value::Number(d) => *d,
        Value::Integer(i) => Decimal::from(*i),
        _ => Decimal::ZERO,
    }
}

fn whole(v: &Value) -> u64 {
    match v {
        Value::Integer(i) => u64::try_from(*i).unwrap_or(0),
        Value::Number(d) => u64::try_from(d.trunc()).unwrap_or(0),
        _ => 0,
    }
}

fn filter(field: &str, op: FilterOp, value: impl Into<String>) -> Filter {
    Filter {
        field: field.to_owned(),
        op,
        value: value.into(),
    }
}

async fn figures(state: &AppState, caller: &Caller, now: Timestamp) -> Result<Figures, ApiError> {
    let reports = state.reports.clone();
    let access = caller.access.clone();
    let since = (now - chrono::Duration::weeks(WEEKS))
        .date_naive()
        .to_string();
    let run = move |id: &str, params: &[(&str, &str)]| {
        let raw: BTreeMap<String, String> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        reports.run_as(id, &raw, Some(&access))
    };
    let tables = tokio::task::spawn_blocking(move || {
        Ok::<_, kith_core::Error>((
            run("forecast", &[])?,
            run("win-rate", &[])?,
            run("new-contacts", &[("interval", "week"), ("from", &since)])?,
        ))
    })
    .await??;
    let (forecast, win_rate, contacts) = tables;

    let mut pipeline: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    for ((currency, amount), weighted) in column(&forecast, "currency")
        .zip(column(&forecast, "amount"))
        .zip(column(&forecast, "weighted_amount"))
    {
        let key = match currency {
            Value::Text(c) => c.clone(),
            _ => continue,
        };
        let slot = pipeline.entry(key).or_default();
        slot.0 += decimal(amount);
        slot.1 += decimal(weighted);
    }
    let won = column(&win_rate, "won").map(whole).sum();
    let lost = column(&win_rate, "lost").map(whole).sum();
    // Every week of the range has a bar, the quiet ones too (the report lists only weeks
    // with contacts).
    let mut weeks: BTreeMap<String, f64> = BTreeMap::new();
    let mut day = (now - chrono::Duration::weeks(WEEKS)).date_naive();
    while day <= now.date_naive() {
        let w = chrono::Datelike::iso_week(&day);
        weeks.insert(format!("{:04}-W{:02}", w.year(), w.week()), 0.0);
        day += chrono::Duration::weeks(1);
    }
    for (period, n) in column(&contacts, "period").zip(column(&contacts, "contacts")) {
        *weeks.entry(period.to_string()).or_default() += whole(n) as f64;
    }

    let day = now.date_naive();
    let start = day.and_hms_opt(0, 0, 0).map(|d| d.and_utc());
    let end = start.map(|s| s + chrono::Duration::days(1));
    let open = || filter("status", FilterOp::In, "open,pending");
    let counts = read_as(&state.store, caller, move |s| {
        let count = |kind, filters: Vec<Filter>| {
            s.count(
                kind,
                &Query {
                    filters,
                    ..Query::default()
                },
            )
        };
        let now_s = now.to_rfc3339();
        let open_tickets = count(EntityKind::Ticket, vec![open()])?;
        let overdue_tickets = count(
            EntityKind::Ticket,
            vec![
                open(),
                filter("resolution_due", FilterOp::Lt, now_s.clone()),
            ],
        )?;
        let mut today = vec![filter("done", FilterOp::Eq, "false")];
        if let (Some(a), Some(b)) = (start, end) {
            today.push(filter("due_at", FilterOp::Gte, a.to_rfc3339()));
            today.push(filter("due_at", FilterOp::Lt, b.to_rfc3339()));
        }
        let tasks_today = count(EntityKind::Task, today)?;
        let overdue_tasks = count(
            EntityKind::Task,
            vec![
                filter("done", FilterOp::Eq, "false"),
                filter("due_at", FilterOp::Lt, now_s),
            ],
        )?;
        let recent = s
            .list(
                EntityKind::Interaction,
                &Query {
                    sort: Some(SortKey::parse("-occurred_at")),
                    limit: 8,
                    ..Query::default()
                },
            )?
            .items;
        Ok((
            open_tickets,
            overdue_tickets,
            tasks_today,
            overdue_tasks,
            recent,
        ))
    })
    .await?;
    let (open_tickets, overdue_tickets, tasks_today, overdue_tasks, recent) = counts;
    Ok(Figures {
        pipeline,
        won,
        lost,
        open_tickets,
        overdue_tickets,
        tasks_today,
        overdue_tasks,
        new_contacts: weeks.into_iter().collect(),
        recent,
    })
}

async fn dashboard(State(state): State<AppState>, caller: Caller) -> Response {
    let now = state.store.clock().now();
    match figures(&state, &caller, now).await {
        Ok(f) => html_page(StatusCode::OK, "Dashboard", Some(&caller), view(&f)),
        Err(e) => error_page(&caller, &e),
    }
}

fn view(f: &Figures) -> Markup {
    let decided = f.won + f.lost;
    let labels: Vec<String> = f.new_contacts.iter().map(|(w, _)| w.clone()).collect();
    let values: Vec<f64> = f.new_contacts.iter().map(|(_, n)| *n).collect();
    html! {
        h1 { "Dashboard" }
        div.tiles {
            section.tile aria-labelledby="t-pipeline" {
                h2 #t-pipeline { "Open pipeline" }
                @if f.pipeline.is_empty() { p.figure { "0" } }
                @for (currency, (amount, _)) in &f.pipeline {
                    p.figure { (money(*amount)) " " small { (currency) } }
                }
                a href="/deals/board" { "Pipeline board" }
            }
            section.tile aria-labelledby="t-forecast" {
                h2 #t-forecast { "Weighted forecast" }
                @if f.pipeline.is_empty() { p.figure { "0" } }
                @for (currency, (_, weighted)) in &f.pipeline {
                    p.figure { (money(*weighted)) " " small { (currency) } }
                }
                a href="/reports/forecast" { "Forecast report" }
            }
            section.tile aria-labelledby="t-win" {
                h2 #t-win { "Win rate" }
                p.figure {
                    @if decided == 0 { "—" } @else { (f.won * 100 / decided) "%" }
                }
                p.muted { (f.won) " won, " (f.lost) " lost" }
            }
            section.tile aria-labelledby="t-tickets" {
                h2 #t-tickets { "Open tickets" }
                p.figure { a href="/tickets?view=queue" { (f.open_tickets) } }
                p class=(if f.overdue_tickets > 0 { "overdue" } else { "muted" }) {
                    a href="/tickets?view=overdue" { (f.overdue_tickets) " overdue" }
                }
            }
            section.tile aria-labelledby="t-tasks" {
                h2 #t-tasks { "Tasks due today" }
                p.figure { a href="/tasks?view=today" { (f.tasks_today) } }
                p class=(if f.overdue_tasks > 0 { "overdue" } else { "muted" }) {
                    a href="/tasks?view=overdue" { (f.overdue_tasks) " overdue" }
                }
            }
        }
        section.card aria-labelledby="new-contacts-h" {
            h2 #new-contacts-h { "New contacts per week" }
            @if !values.iter().any(|v| *v > 0.0) {
                p.muted { "No contacts were added in the last " (WEEKS) " weeks." }
            } @else {
                (chart("New contacts per week", Shape::Bars, &labels, &[("New contacts".to_owned(), values)]))
            }
        }
        section.card aria-labelledby="recent-h" {
            h2 #recent-h { "Recent activity" }
            @if f.recent.is_empty() {
                p.muted { "Nothing logged yet." }
            } @else {
                ol.timeline {
                    @for r in &f.recent {
                        li {
                            @if let Some(Value::DateTime(t)) = r.get("occurred_at") {
                                time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M")) } " "
                            }
                            @if let Some(k) = r.get("kind") { span.badge { (k) } " " }
                            a href=(format!("/interactions/{}", r.id())) { (display_name(r)) }
                        }
                    }
                }
            }
        }
    }
}
