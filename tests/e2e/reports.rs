//! Reports through a running server: deals, tickets, interactions and contacts are written
//! over HTTP on a server whose clock the test moves, and every built-in report is checked
//! against figures the test works out itself from the records the server returned. Also:
//! the list of reports, CSV downloads, reports following later changes, 400 for a bad
//! parameter and 404 for an unknown report.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Datelike, Duration, TimeZone, Utc};
use kith_core::money::Decimal;
use kith_core::{ManualClock, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, assert_error, time};

const STAGES: [&str; 6] = [
    "lead",
    "qualified",
    "proposal",
    "negotiation",
    "won",
    "lost",
];

fn day(m: u32, d: u32, h: u32) -> Timestamp {
    Utc.with_ymd_and_hms(2026, m, d, h, 0, 0).single().unwrap()
}

async fn server() -> (TestServer, Arc<ManualClock>, tempfile::TempDir) {
    let dir = tempfile::TempDir::new().unwrap();
    let clock = Arc::new(ManualClock::new(day(1, 5, 9)));
    let s = TestServer::start_with_clock(dir.path(), clock.clone()).await;
    (s, clock, dir)
}

/// A report's rows as column name → value.
fn rows(table: &Value) -> Vec<BTreeMap<String, Value>> {
    let names: Vec<String> = table["columns"]
        .as_array()
        .unwrap_or_else(|| panic!("no columns in {table}"))
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let cells = row.as_array().unwrap();
            assert_eq!(cells.len(), names.len(), "{row}");
            names.iter().cloned().zip(cells.iter().cloned()).collect()
        })
        .collect()
}

/// A decimal the API wrote as a string.
fn dec(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}"))
        .parse()
        .unwrap()
}

fn int(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// Asserts a rounded figure: `got` (a decimal string, or null) is `want` to within half a
/// unit of its last place.
#[track_caller]
fn near(got: &Value, want: Option<f64>, places: i32) {
    match (got, want) {
        (Value::Null, None) => {}
        (Value::String(s), Some(w)) => {
            let g: f64 = s.parse().unwrap();
            let tolerance = 0.5 * 10f64.powi(-places) + 1e-9;
            assert!((g - w).abs() <= tolerance, "got {g}, want {w}");
        }
        _ => panic!("got {got}, want {want:?}"),
    }
}

/// Deals, amount, weighted amount.
type Sums = (u64, Decimal, Decimal);

/// An interactions row's place: period, type (in declared order), owner (none last).
type InteractionKey = (String, usize, (bool, Option<String>));

fn hundred() -> Decimal {
    Decimal::from(100)
}

/// The email of the user who owns a third of the records.
const ANN: &str = "ann@example.com";

/// What the test wrote, as the server returned it.
struct Data {
    deals: Vec<Value>,
    tickets: Vec<Value>,
    interactions: Vec<Value>,
    contacts: Vec<Value>,
    probability: BTreeMap<String, u8>,
    now: Timestamp,
    /// The user id of ann@example.com, as records store her as their owner.
    ann: Value,
}

/// One deal to write: its creation time, fields, and when (and how) it closes.
struct DealPlan {
    created: Timestamp,
    body: Value,
    close: Option<(Timestamp, &'static str)>,
}

/// One write of the seeding timeline.
enum Step {
    Deal(usize),
    Close(usize, &'static str),
    Contact(usize),
}

/// Writes deals, tickets, contacts and interactions, moving the clock so records carry
/// creation, close and resolution times spread over January to March 2026.
async fn seed(s: &TestServer, clock: &ManualClock) -> Data {
    // Owners are users (named by email, stored as their id); assignees are free text.
    let ann = s.user(ANN, "agent", None).await["id"].clone();
    s.user("bob@example.com", "agent", None).await;
    let owners = [Some(ANN), Some("bob@example.com"), None];
    let sources = [Some("web"), Some("referral"), Some("event"), None];
    let mut plans = Vec::new();
    for i in 0..36u32 {
        let created = day(1, 5, 9) + Duration::hours(i64::from(i) * 37);
        let mut body = json!({
            "title": format!("Deal {i}"),
            "stage": STAGES[(i % 4) as usize],
            "owner": owners[(i % 3) as usize],
            "source": sources[(i % 4) as usize],
        });
        if i % 7 != 3 {
            body["amount"] = json!(format!("{}.25", 100 + i * 137 % 900));
            body["currency"] = json!(if i % 5 == 0 { "EUR" } else { "USD" });
        }
        if i % 6 != 5 {
            body["expected_close"] = json!(format!("2026-{:02}-{:02}", 2 + i % 4, 1 + i % 28));
        }
        let close = match i % 9 {
            1 | 4 | 6 => Some((created + Duration::hours(i64::from(i % 5) * 30 + 12), "won")),
            2 | 7 => Some((created + Duration::days(i64::from(i % 4) + 2), "lost")),
            _ => None,
        };
        plans.push(DealPlan {
            created,
            body,
            close,
        });
    }
    let contacts = [
        (day(1, 6, 10), Some("web")),
        (day(1, 20, 10), Some("web")),
        (day(1, 21, 10), Some("referral")),
        (day(2, 2, 10), Some("web")),
        (day(2, 14, 10), None),
        (day(3, 3, 10), Some("event")),
    ];
    // Replay creations and closings in time order, the clock following, so that no record
    // is written at a time earlier than one before it.
    let mut steps: Vec<(Timestamp, Step)> = Vec::new();
    for (i, p) in plans.iter().enumerate() {
        steps.push((p.created, Step::Deal(i)));
        if let Some((at, stage)) = p.close {
            steps.push((at, Step::Close(i, stage)));
        }
    }
    for (i, (at, _)) in contacts.iter().enumerate() {
        steps.push((*at, Step::Contact(i)));
    }
    steps.sort_by_key(|(at, _)| *at);
    let mut ids: Vec<Option<String>> = vec![None; plans.len()];
    let mut contact_ids = Vec::new();
    for (at, step) in steps {
        clock.set(at);
        match step {
            Step::Deal(i) => ids[i] = Some(s.create_id("deals", plans[i].body.clone()).await),
            Step::Close(i, stage) => {
                let id = ids[i].as_ref().unwrap();
                let (status, body) = s
                    .patch(&format!("/api/v1/deals/{id}"), &json!({ "stage": stage }))
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
            Step::Contact(i) => contact_ids.push(
                s.create_id(
                    "contacts",
                    json!({ "first_name": format!("C{i}"), "source": contacts[i].1,
                            "owner": owners[i % 3] }),
                )
                .await,
            ),
        }
    }

    // Interactions: when they happened is their own field, so they need no clock moves.
    for (i, (kind, direction, at, secs)) in [
        ("call", Some("inbound"), day(1, 7, 10), Some(300)),
        ("call", Some("outbound"), day(1, 8, 10), Some(420)),
        ("email", Some("outbound"), day(1, 12, 10), None),
        ("meeting", None, day(2, 3, 15), Some(3600)),
        ("call", Some("inbound"), day(2, 27, 10), Some(60)),
        ("note", None, day(3, 2, 10), None),
        ("email", Some("inbound"), day(3, 4, 10), None),
        ("call", Some("outbound"), day(3, 4, 11), Some(90)),
    ]
    .into_iter()
    .enumerate()
    {
        s.create_id(
            "interactions",
            json!({
                "kind": kind, "direction": direction, "occurred_at": at.to_rfc3339(),
                "duration_seconds": secs, "owner": owners[i % 3], "contact_id": contact_ids[0],
            }),
        )
        .await;
    }

    // Tickets: answered (or not) at a set time against due times; half resolved later, when
    // the clock gets there. Creations and resolutions replay in time order too.
    let mut tickets = Vec::new();
    let mut steps: Vec<(Timestamp, usize, bool)> = Vec::new();
    for i in 0..12u32 {
        let created = day(3, 8, 8) + Duration::hours(i64::from(i) * 5);
        let priority = ["low", "normal", "high", "urgent"][(i % 4) as usize];
        let mut body = json!({ "subject": format!("Ticket {i}"), "priority": priority,
                               "assignee": owners[(i % 3) as usize] });
        if i % 3 != 2 {
            body["first_response_at"] =
                json!((created + Duration::minutes(i64::from(i) * 20 + 10)).to_rfc3339());
        }
        if i % 4 != 3 {
            body["first_response_due"] = json!((created + Duration::hours(2)).to_rfc3339());
            body["resolution_due"] = json!((created + Duration::hours(30)).to_rfc3339());
        }
        steps.push((created, tickets.len(), false));
        if i % 2 == 0 {
            steps.push((
                created + Duration::hours(i64::from(i) * 4 + 1),
                tickets.len(),
                true,
            ));
        }
        tickets.push(body);
    }
    steps.sort_by_key(|(at, i, resolve)| (*at, *i, *resolve));
    let mut ticket_ids = vec![String::new(); tickets.len()];
    for (at, i, resolve) in steps {
        clock.set(at);
        if resolve {
            let (status, body) = s
                .patch(
                    &format!("/api/v1/tickets/{}", ticket_ids[i]),
                    &json!({ "status": "resolved" }),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        } else {
            ticket_ids[i] = s.create_id("tickets", tickets[i].clone()).await;
        }
    }

    let now = day(3, 20, 12);
    clock.set(now);
    let pipelines = s.get_ok("/api/v1/pipelines").await;
    let default = pipelines["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["key"] == json!("default"))
        .unwrap();
    let probability = default["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| {
            (
                st["key"].as_str().unwrap().to_owned(),
                u8::try_from(st["probability"].as_u64().unwrap()).unwrap(),
            )
        })
        .collect();
    Data {
        deals: s.list_all("/api/v1/deals?limit=100").await,
        tickets: s.list_all("/api/v1/tickets?limit=100").await,
        interactions: s.list_all("/api/v1/interactions?limit=100").await,
        contacts: s.list_all("/api/v1/contacts?limit=100").await,
        probability,
        now,
        ann,
    }
}

/// A deal's currency for grouping: only a deal with an amount has one.
fn currency(d: &Value) -> Option<String> {
    if d["amount"].is_null() {
        None
    } else {
        text(&d["currency"])
    }
}

fn amount(d: &Value) -> Decimal {
    if d["amount"].is_null() {
        Decimal::ZERO
    } else {
        dec(&d["amount"])
    }
}

fn month(t: Timestamp) -> String {
    format!("{:04}-{:02}", t.year(), t.month())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_agree_with_figures_computed_from_the_records() {
    let (s, clock, _dir) = server().await;
    let data = seed(&s, &clock).await;
    assert_eq!(data.deals.len(), 36);

    let list = s.get_ok("/api/v1/reports").await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "pipeline",
            "forecast",
            "win-rate",
            "tickets",
            "interactions",
            "new-contacts"
        ]
    );
    for d in list["items"].as_array().unwrap() {
        assert_eq!(d["source"], json!("built-in"), "{d}");
        assert!(d["parameters"].is_array(), "{d}");
    }

    check_pipeline(&s, &data).await;
    check_forecast(&s, &data).await;
    check_win_rate(&s, &data).await;
    check_tickets(&s, &data).await;
    check_interactions(&s, &data).await;
    check_new_contacts(&s, &data).await;
    s.stop().await;
}

async fn check_pipeline(s: &TestServer, data: &Data) {
    // (stage, currency) → (deals, amount, weighted amount).
    let mut want: BTreeMap<(String, Option<String>), Sums> = BTreeMap::new();
    for d in &data.deals {
        let stage = text(&d["stage"]).unwrap();
        let p = Decimal::from(data.probability[&stage]);
        let e = want
            .entry((stage, currency(d)))
            .or_insert((0, Decimal::ZERO, Decimal::ZERO));
        e.0 += 1;
        e.1 += amount(d);
        e.2 += amount(d) * p / hundred();
    }
    let table = s.get_ok("/api/v1/reports/pipeline").await;
    assert_eq!(table["id"], json!("pipeline"));
    assert_eq!(table["chart"], json!("funnel"));
    let mut got = BTreeMap::new();
    let mut stage_order = Vec::new();
    for r in rows(&table) {
        let stage = text(&r["stage"]).unwrap();
        if stage_order.last() != Some(&stage) {
            stage_order.push(stage.clone());
        }
        assert_eq!(r["pipeline"], json!("default"));
        assert_eq!(int(&r["probability"]), u64::from(data.probability[&stage]));
        if int(&r["deals"]) == 0 {
            assert!(
                !want.keys().any(|(st, _)| *st == stage),
                "a zero row for {stage}, which has deals"
            );
            continue;
        }
        got.insert(
            (stage, text(&r["currency"])),
            (
                int(&r["deals"]),
                dec(&r["amount"]),
                dec(&r["weighted_amount"]),
            ),
        );
    }
    assert_eq!(got, want);
    assert_eq!(stage_order, STAGES);

    // Owner filter.
    let ann = rows(
        &s.get_ok(&format!("/api/v1/reports/pipeline?owner={ANN}"))
            .await,
    );
    let ann_deals: u64 = ann.iter().map(|r| int(&r["deals"])).sum();
    let want_ann = data.deals.iter().filter(|d| d["owner"] == data.ann).count();
    assert_eq!(ann_deals, want_ann as u64);
}

async fn check_forecast(s: &TestServer, data: &Data) {
    let key = |d: &Value| {
        (
            d["expected_close"].as_str().map(|c| c[..7].to_owned()),
            currency(d),
        )
    };
    let mut want: BTreeMap<(Option<String>, Option<String>), Sums> = BTreeMap::new();
    let mut want_march = BTreeMap::new();
    for d in data.deals.iter().filter(|d| d["status"] == json!("open")) {
        let p = Decimal::from(data.probability[d["stage"].as_str().unwrap()]);
        let w = amount(d) * p / hundred();
        let e = want
            .entry(key(d))
            .or_insert((0, Decimal::ZERO, Decimal::ZERO));
        *e = (e.0 + 1, e.1 + amount(d), e.2 + w);
        if d["expected_close"]
            .as_str()
            .is_some_and(|c| c.starts_with("2026-03"))
        {
            let e = want_march
                .entry(key(d))
                .or_insert((0, Decimal::ZERO, Decimal::ZERO));
            *e = (e.0 + 1, e.1 + amount(d), e.2 + w);
        }
    }
    let read = |table: &Value| {
        rows(table)
            .into_iter()
            .map(|r| {
                (
                    (text(&r["month"]), text(&r["currency"])),
                    (
                        int(&r["deals"]),
                        dec(&r["amount"]),
                        dec(&r["weighted_amount"]),
                    ),
                )
            })
            .collect::<Vec<_>>()
    };
    let got = read(&s.get_ok("/api/v1/reports/forecast").await);
    // Months in order, deals without an expected close date last.
    let months: Vec<_> = got.iter().map(|((m, _), _)| m.clone()).collect();
    let mut sorted = months.clone();
    sorted.sort_by_key(|m| (m.is_none(), m.clone()));
    assert_eq!(months, sorted);
    assert!(months.last().is_some_and(Option::is_none), "{months:?}");
    assert_eq!(got.into_iter().collect::<BTreeMap<_, _>>(), want);
    let march = read(
        &s.get_ok("/api/v1/reports/forecast?from=2026-03-01&to=2026-03-31")
            .await,
    );
    assert_eq!(march.into_iter().collect::<BTreeMap<_, _>>(), want_march);
}

/// Won and lost deals of a group and currency, worked out from the records.
#[derive(Default, Debug)]
struct Wins {
    won: u64,
    lost: u64,
    won_amount: Decimal,
    won_priced: u64,
    cycle_days: f64,
}

/// What a win-rate row is grouped by, worked out from a deal.
type GroupBy = Box<dyn Fn(&Value) -> Option<String>>;

async fn check_win_rate(s: &TestServer, data: &Data) {
    let groups: [(&str, GroupBy); 3] = [
        ("owner", Box::new(|d: &Value| text(&d["owner"]))),
        ("source", Box::new(|d: &Value| text(&d["source"]))),
        (
            "month",
            Box::new(|d: &Value| Some(month(time(&d["closed_at"])))),
        ),
    ];
    for (by, group) in groups {
        let mut want: BTreeMap<(Option<String>, Option<String>), Wins> = BTreeMap::new();
        for d in data.deals.iter().filter(|d| d["status"] != json!("open")) {
            let w = want.entry((group(d), currency(d))).or_default();
            if d["status"] == json!("won") {
                w.won += 1;
                w.cycle_days += (time(&d["closed_at"]) - time(&d["created_at"]))
                    .num_microseconds()
                    .unwrap() as f64
                    / 86_400e6;
                if !d["amount"].is_null() {
                    w.won_priced += 1;
                    w.won_amount += amount(d);
                }
            } else {
                w.lost += 1;
            }
        }
        assert!(want.values().any(|w| w.won > 0 && w.lost > 0), "{want:?}");
        let table = s.get_ok(&format!("/api/v1/reports/win-rate?by={by}")).await;
        assert_eq!(table["label_column"], json!(by));
        let got = rows(&table);
        assert_eq!(got.len(), want.len(), "{by}: {table}");
        for r in got {
            let key = (text(&r[by]), text(&r["currency"]));
            let w = want
                .get(&key)
                .unwrap_or_else(|| panic!("{by}: unexpected row {key:?}"));
            assert_eq!(
                (int(&r["won"]), int(&r["lost"])),
                (w.won, w.lost),
                "{key:?}"
            );
            assert_eq!(dec(&r["won_amount"]), w.won_amount, "{key:?}");
            let whole = w.won + w.lost;
            near(&r["win_rate"], Some(w.won as f64 * 100.0 / whole as f64), 1);
            let avg = (w.won_priced > 0)
                .then(|| w.won_amount.to_string().parse::<f64>().unwrap() / w.won_priced as f64);
            near(&r["avg_deal_size"], avg, 2);
            near(
                &r["avg_cycle_days"],
                (w.won > 0).then(|| w.cycle_days / w.won as f64),
                1,
            );
        }
    }
}

async fn check_tickets(s: &TestServer, data: &Data) {
    let now = data.now;
    let table = s.get_ok("/api/v1/reports/tickets").await;
    let got = rows(&table);
    let priorities: Vec<_> = got.iter().map(|r| text(&r["priority"]).unwrap()).collect();
    assert_eq!(priorities, ["low", "normal", "high", "urgent"]);
    for r in got {
        let priority = r["priority"].clone();
        let mine: Vec<&Value> = data
            .tickets
            .iter()
            .filter(|t| t["priority"] == priority)
            .collect();
        assert_eq!(int(&r["tickets"]), mine.len() as u64);
        let resolved: Vec<&&Value> = mine
            .iter()
            .filter(|t| !t["resolved_at"].is_null())
            .collect();
        assert_eq!(int(&r["resolved"]), resolved.len() as u64);
        assert_eq!(int(&r["open"]), (mine.len() - resolved.len()) as u64);
        let hours = |field: &str| -> Option<f64> {
            let times: Vec<f64> = mine
                .iter()
                .filter(|t| !t[field].is_null())
                .map(|t| (time(&t[field]) - time(&t["created_at"])).num_seconds() as f64 / 3600.0)
                .collect();
            (!times.is_empty()).then(|| times.iter().sum::<f64>() / times.len() as f64)
        };
        near(
            &r["avg_first_response_hours"],
            hours("first_response_at"),
            2,
        );
        near(&r["avg_resolution_hours"], hours("resolved_at"), 2);
        for (done, due, prefix) in [
            ("first_response_at", "first_response_due", "response"),
            ("resolved_at", "resolution_due", "resolution"),
        ] {
            let (mut met, mut breached) = (0u64, 0u64);
            for t in &mine {
                if t[due].is_null() {
                    continue;
                }
                let due = time(&t[due]);
                match t[done].as_str() {
                    Some(_) if time(&t[done]) <= due => met += 1,
                    Some(_) => breached += 1,
                    None if now > due => breached += 1,
                    None => {}
                }
            }
            assert_eq!(
                (
                    int(&r[&format!("{prefix}_sla_met")]),
                    int(&r[&format!("{prefix}_sla_breached")])
                ),
                (met, breached),
                "{priority} {prefix}"
            );
            near(
                &r[&format!("{prefix}_sla_pct")],
                (met + breached > 0).then(|| met as f64 * 100.0 / (met + breached) as f64),
                1,
            );
        }
    }
    let ann = rows(
        &s.get_ok(&format!("/api/v1/reports/tickets?assignee={ANN}"))
            .await,
    );
    let total: u64 = ann.iter().map(|r| int(&r["tickets"])).sum();
    let want = data
        .tickets
        .iter()
        .filter(|t| t["assignee"] == json!(ANN))
        .count();
    assert_eq!(total, want as u64);
}

const TYPES: [&str; 6] = ["email", "call", "meeting", "chat", "sms", "note"];

async fn check_interactions(s: &TestServer, data: &Data) {
    for interval in ["month", "week"] {
        let period = |t: Timestamp| match interval {
            "week" => {
                let w = t.iso_week();
                format!("{:04}-W{:02}", w.year(), w.week())
            }
            _ => month(t),
        };
        // → (count, inbound, outbound, seconds)
        let mut want: BTreeMap<InteractionKey, (u64, u64, u64, i64)> = BTreeMap::new();
        for i in &data.interactions {
            let kind = i["kind"].as_str().unwrap();
            let owner = text(&i["owner"]);
            let e = want
                .entry((
                    period(time(&i["occurred_at"])),
                    TYPES.iter().position(|t| *t == kind).unwrap(),
                    (owner.is_none(), owner),
                ))
                .or_default();
            e.0 += 1;
            e.1 += u64::from(i["direction"] == json!("inbound"));
            e.2 += u64::from(i["direction"] == json!("outbound"));
            e.3 += i["duration_seconds"].as_i64().unwrap_or(0);
        }
        let table = s
            .get_ok(&format!("/api/v1/reports/interactions?interval={interval}"))
            .await;
        let got: Vec<_> = rows(&table)
            .into_iter()
            .map(|r| {
                (
                    text(&r["period"]).unwrap(),
                    text(&r["type"]).unwrap(),
                    text(&r["owner"]),
                    (
                        int(&r["interactions"]),
                        int(&r["inbound"]),
                        int(&r["outbound"]),
                    ),
                    dec(&r["duration_minutes"]),
                )
            })
            .collect();
        let want: Vec<_> = want
            .into_iter()
            .map(|((p, t, (_, owner)), (n, i, o, secs))| {
                let minutes = Decimal::from(secs) / Decimal::from(60);
                (
                    p,
                    TYPES[t].to_owned(),
                    owner,
                    (n, i, o),
                    minutes.round_dp(1),
                )
            })
            .collect();
        assert_eq!(got, want, "{interval}");
    }
    let calls = rows(
        &s.get_ok(&format!(
            "/api/v1/reports/interactions?type=call&owner={ANN}"
        ))
        .await,
    );
    let n: u64 = calls.iter().map(|r| int(&r["interactions"])).sum();
    let want = data
        .interactions
        .iter()
        .filter(|i| i["kind"] == json!("call") && i["owner"] == data.ann)
        .count();
    assert_eq!(n, want as u64);
}

async fn check_new_contacts(s: &TestServer, data: &Data) {
    let mut want: BTreeMap<(String, (bool, Option<String>)), u64> = BTreeMap::new();
    for c in &data.contacts {
        let source = text(&c["source"]);
        *want
            .entry((month(time(&c["created_at"])), (source.is_none(), source)))
            .or_default() += 1;
    }
    let got: Vec<_> = rows(&s.get_ok("/api/v1/reports/new-contacts").await)
        .into_iter()
        .map(|r| {
            (
                text(&r["period"]).unwrap(),
                text(&r["source"]),
                int(&r["contacts"]),
            )
        })
        .collect();
    let want: Vec<_> = want
        .into_iter()
        .map(|((p, (_, source)), n)| (p, source, n))
        .collect();
    assert_eq!(got, want);
    assert!(got.len() >= 4, "{got:?}");
    let february = rows(
        &s.get_ok("/api/v1/reports/new-contacts?from=2026-02-01&to=2026-02-28&source=web")
            .await,
    );
    assert_eq!(february.len(), 1);
    assert_eq!(february[0]["period"], json!("2026-02"));
    assert_eq!(int(&february[0]["contacts"]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_follows_changes_made_after_it_first_ran() {
    let s = TestServer::start().await;
    let forecast = |t: &Value| -> Vec<(u64, Decimal)> {
        rows(t)
            .into_iter()
            .map(|r| (int(&r["deals"]), dec(&r["amount"])))
            .collect()
    };
    let id = s
        .create_id(
            "deals",
            json!({ "title": "A", "stage": "proposal", "amount": "1000", "currency": "USD" }),
        )
        .await;
    let first = s.get_ok("/api/v1/reports/forecast").await;
    assert_eq!(forecast(&first), [(1, Decimal::from(1000))]);
    let (status, _) = s
        .patch(
            &format!("/api/v1/deals/{id}"),
            &json!({ "amount": "250.5" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    s.create_id(
        "deals",
        json!({ "title": "B", "stage": "lead", "amount": "10", "currency": "USD" }),
    )
    .await;
    let second = s.get_ok("/api/v1/reports/forecast").await;
    assert_eq!(forecast(&second), [(2, "260.5".parse().unwrap())]);
    assert_eq!(rows(&second)[0]["weighted_amount"], json!("126.25"));
    let (status, _) = s.delete(&format!("/api/v1/deals/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let third = s.get_ok("/api/v1/reports/forecast").await;
    assert_eq!(forecast(&third), [(1, Decimal::from(10))]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_download_is_the_same_table() {
    let s = TestServer::start().await;
    s.create_id(
        "contacts",
        json!({ "first_name": "A", "source": "trade show, Berlin" }),
    )
    .await;
    s.create_id("contacts", json!({ "first_name": "B", "source": "web" }))
        .await;
    let table = s.get_ok("/api/v1/reports/new-contacts").await;
    let response = s
        .client()
        .get(format!(
            "{}/api/v1/reports/new-contacts?format=csv",
            s.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header("content-type").as_deref(),
        Some("text/csv; charset=utf-8")
    );
    assert_eq!(
        header("content-disposition").as_deref(),
        Some("attachment; filename=\"new-contacts.csv\"")
    );
    let csv = response.text().await.unwrap();
    let labels: Vec<&str> = table["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    let mut expected = vec![labels.join(",")];
    for r in table["rows"].as_array().unwrap() {
        let cells: Vec<String> = r
            .as_array()
            .unwrap()
            .iter()
            .map(|v| match v {
                Value::String(s) if s.contains(',') => format!("\"{s}\""),
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .collect();
        expected.push(cells.join(","));
    }
    assert_eq!(csv, expected.join("\r\n") + "\r\n");
    assert!(csv.contains("\"trade show, Berlin\",1\r\n"), "{csv}");
    let (status, body) = s.get("/api/v1/reports/new-contacts?format=JSON").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, table);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_400_naming_them_and_unknown_reports_404() {
    let s = TestServer::start().await;
    for (path, field) in [
        ("/api/v1/reports/pipeline?colour=red", "colour"),
        ("/api/v1/reports/forecast?from=yesterday", "from"),
        ("/api/v1/reports/forecast?from=2026-02-30", "from"),
        ("/api/v1/reports/win-rate?by=team", "by"),
        (
            "/api/v1/reports/interactions?interval=fortnight",
            "interval",
        ),
        (
            "/api/v1/reports/tickets?from=2026-03-02&to=2026-03-01",
            "to",
        ),
        ("/api/v1/reports/pipeline?pipeline=nope", "pipeline"),
        ("/api/v1/reports/pipeline?owner=a&owner=b", "owner"),
        ("/api/v1/reports/pipeline?format=xml", "format"),
        // A parameter another report takes is still unknown to this one.
        ("/api/v1/reports/tickets?owner=ann", "owner"),
    ] {
        let reply = s.get(path).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "bad_query", Some(field));
    }
    for path in [
        "/api/v1/reports/nope",
        "/api/v1/reports/some-plugin.report",
        "/api/v1/reports/nope?format=csv",
    ] {
        let reply = s.get(path).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "not_found", None);
        assert!(
            reply.1["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("GET /api/v1/reports")),
            "{}",
            reply.1
        );
    }
    let doc = s.get_ok("/api/v1/openapi.json").await;
    assert!(doc["paths"]["/api/v1/reports/{id}"]["get"].is_object());
    s.stop().await;
}

/// A plugin's report type (the bundled win-loss plugin) through the same endpoints: listed
/// with its source, its figures agree with the deals, CSV works, and its parameters are
/// checked before it runs.
#[tokio::test]
async fn a_plugin_report_runs_through_the_same_endpoints() {
    let (s, clock, _dir) = server().await;
    crate::lifecycle::install(&s, "win-loss", "read:deal").await;
    let list = s.get_ok("/api/v1/reports").await;
    let def = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "win-loss.summary")
        .cloned()
        .unwrap_or_else(|| panic!("win-loss.summary is listed: {list}"));
    assert_eq!(def["source"], "win-loss");

    // Deals closed as (source, outcome, amount in EUR).
    let closed = [
        ("web", "won", "1000"),
        ("web", "won", "250.50"),
        ("web", "lost", "400"),
        ("referral", "won", "3000"),
        ("referral", "lost", "100"),
        ("referral", "lost", "100"),
        ("event", "lost", "700"),
    ];
    for (i, (source, stage, amount)) in closed.iter().enumerate() {
        let body = json!({
            "title": format!("deal {i}"), "stage": "proposal", "source": source,
            "amount": amount, "currency": "EUR",
        });
        let id = crate::support::id_of(&s.create("deals", body).await);
        clock.advance(Duration::hours(1));
        let mut change = json!({ "stage": stage });
        if *stage == "lost" {
            change["lost_reason"] = json!("price");
        }
        let (status, reply) = s.patch(&format!("/api/v1/deals/{id}"), &change).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
    }
    // An open deal counts nowhere.
    s.create(
        "deals",
        json!({ "title": "open", "stage": "lead", "source": "web" }),
    )
    .await;

    let table = s.get_ok("/api/v1/reports/win-loss.summary?by=source").await;
    assert_eq!(table["id"], "win-loss.summary");
    let got = rows(&table);
    for source in ["web", "referral", "event"] {
        let won: Vec<Decimal> = closed
            .iter()
            .filter(|c| c.0 == source && c.1 == "won")
            .map(|c| c.2.parse().unwrap())
            .collect();
        let lost: Vec<Decimal> = closed
            .iter()
            .filter(|c| c.0 == source && c.1 == "lost")
            .map(|c| c.2.parse().unwrap())
            .collect();
        let row = got
            .iter()
            .find(|r| text(&r["source"]).as_deref() == Some(source))
            .unwrap_or_else(|| panic!("a row for {source}: {table}"));
        assert_eq!(int(&row["won"]), won.len() as u64, "{source}: {table}");
        assert_eq!(int(&row["lost"]), lost.len() as u64, "{source}: {table}");
        let rate = 100.0 * won.len() as f64 / (won.len() + lost.len()) as f64;
        near(&row["win_rate"], Some(rate), 1);
        assert_eq!(
            dec(&row["won_amount_eur"]),
            won.iter().copied().sum::<Decimal>(),
            "{source}: {table}"
        );
        assert_eq!(
            dec(&row["lost_amount_eur"]),
            lost.iter().copied().sum::<Decimal>(),
            "{source}: {table}"
        );
    }

    let (status, _) = s
        .get("/api/v1/reports/win-loss.summary?by=source&format=csv")
        .await;
    assert_eq!(status, StatusCode::OK);
    let reply = s.get("/api/v1/reports/win-loss.summary?by=colour").await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "bad_query", Some("by"));
    let reply = s.get("/api/v1/reports/win-loss.summary?colour=red").await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "bad_query", Some("colour"));
    let reply = s.get("/api/v1/reports/win-loss.nothing").await;
    assert_eq!(reply.0, StatusCode::NOT_FOUND, "{}", reply.1);
    s.stop().await;
}
