//! Unit tests of the reports: each built-in report's figures against values worked out by
//! hand from the records the test writes, parameter checking, CSV, the invariant of the
//! projections (after any sequence of changes they answer exactly like a fresh scan), and the
//! access rule: a caller limited to their own and their team's records gets the figures of a
//! store holding only those records.
//!
//! Every fixture has two teams, `east` and `west`, and the agents `ann` (east), `bob` (west),
//! `carl` (east) and `dee` (no team). Records name owners by email (`ann@example.com`) and
//! the store keeps user ids; [`run`] translates between the two so expectations can say
//! `ann`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::*;
use crate::account::{AgentScope, NewUser, OrgSettings, Role, Team};
use crate::clock::{Clock, ManualClock, Timestamp};
use crate::entity::EntityKind::{self, Contact, Deal, Interaction, Ticket};
use crate::id::Id;
use crate::money::Decimal;
use crate::pipeline::{Pipeline, Stage, StageOutcome};
use crate::store::{Command, Input, Outcome, StoreConfig};

const ACTOR: &str = "tester";

/// Monday 2 March 2026, 09:00 UTC: "now" unless a test moves the clock.
fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn at(y: i32, m: u32, d: u32, h: u32) -> Timestamp {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn opt(s: Option<&str>) -> Value {
    s.map_or(Value::Null, text)
}

/// The `owner` field naming a fixture user by name (`ann`), as their email.
fn who(name: Option<&str>) -> Value {
    name.map_or(Value::Null, |n| text(&format!("{n}@example.com")))
}

/// The fixture's teams.
const TEAMS: [&str; 2] = ["east", "west"];

/// The fixture's users and their teams, created in this order (so their ids sort the same).
const USERS: [(&str, Option<&str>); 4] = [
    ("ann", Some("east")),
    ("bob", Some("west")),
    ("carl", Some("east")),
    ("dee", None),
];

fn amount(s: &str) -> Value {
    Value::Number(s.parse().unwrap())
}

fn date(s: &str) -> Value {
    Value::Date(s.parse().unwrap())
}

fn input(fields: &[(&str, Value)]) -> Input {
    Input {
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        custom: BTreeMap::new(),
    }
}

/// A store in a fresh directory with a stopped clock; the store closes before the
/// directory goes.
struct Fx {
    store: Store,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(t0()));
        let store = Store::open(StoreConfig {
            dir: dir.path().to_path_buf(),
            clock: clock.clone(),
            max_batch: 1024,
            checkpoint_every: crate::store::CHECKPOINT_EVERY,
        })
        .unwrap();
        let fx = Fx {
            store,
            clock,
            _dir: dir,
        };
        for key in TEAMS {
            fx.exec(Command::PutTeam(Team {
                key: key.to_owned(),
                name: key.to_uppercase(),
            }))
            .unwrap();
        }
        for (name, team) in USERS {
            fx.exec(Command::CreateUser(NewUser {
                email: format!("{name}@example.com"),
                name: name.to_owned(),
                role: Role::Agent,
                team: team.map(str::to_owned),
                password_hash: None,
            }))
            .unwrap();
        }
        fx
    }

    /// What the fixture user `name` sees when agents see only their own and their team's
    /// records.
    fn agent(&self, name: &str) -> Access {
        let dir = self.store.directory();
        let user = dir
            .users()
            .into_iter()
            .find(|u| u.name == name)
            .unwrap_or_else(|| panic!("no user {name}"));
        Access::for_user(
            user,
            &OrgSettings {
                agent_scope: AgentScope::OwnAndTeam,
            },
        )
    }

    fn exec(&self, cmd: Command) -> Result<Outcome, Error> {
        self.store.execute(cmd, ACTOR)
    }

    fn id(&self, cmd: Command) -> Id {
        match self.exec(cmd).unwrap() {
            Outcome::Record(r) => r.id(),
            other => panic!("expected a record, got {other:?}"),
        }
    }

    fn create(&self, kind: EntityKind, fields: &[(&str, Value)]) -> Id {
        self.id(create(kind, fields))
    }

    fn create_at(&self, when: Timestamp, kind: EntityKind, fields: &[(&str, Value)]) -> Id {
        self.id(backdated(when, create(kind, fields)))
    }

    fn update_at(&self, when: Timestamp, kind: EntityKind, id: Id, fields: &[(&str, Value)]) {
        self.exec(backdated(when, update(kind, id, fields)))
            .unwrap();
    }

    /// A fresh engine: what a full scan of the store gives now.
    fn fresh(&self) -> Reports {
        Reports::new(self.store.clone())
    }
}

impl Drop for Fx {
    fn drop(&mut self) {
        self.store.close();
    }
}

fn create(kind: EntityKind, fields: &[(&str, Value)]) -> Command {
    Command::Create {
        kind,
        input: input(fields),
    }
}

fn update(kind: EntityKind, id: Id, fields: &[(&str, Value)]) -> Command {
    Command::Update {
        kind,
        id,
        input: input(fields),
    }
}

fn backdated(when: Timestamp, command: Command) -> Command {
    Command::Backdated {
        at: when,
        command: Box::new(command),
    }
}

fn params(p: &[(&str, &str)]) -> BTreeMap<String, String> {
    p.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Runs a report as the system (see [`run_as`]).
fn run(r: &Reports, id: &str, p: &[(&str, &str)]) -> ReportTable {
    run_as(r, id, p, None)
}

/// Runs a report for `access`. Owners are stored as user ids, which tests would rather not
/// spell: an `owner` parameter naming a fixture user (`ann`) is sent as that user's id, and
/// every cell holding a user's id comes back as the user's name. Both directions use the
/// engine's own store, so reports of two stores compare by names.
fn run_as(r: &Reports, id: &str, p: &[(&str, &str)], access: Option<&Access>) -> ReportTable {
    let dir = r.store().directory();
    let users = dir.users();
    let mut raw = params(p);
    if let Some(owner) = raw.get_mut("owner")
        && let Some(u) = users.iter().find(|u| u.name == *owner)
    {
        *owner = u.id.to_string();
    }
    let mut table = r
        .run_as(id, &raw, access)
        .unwrap_or_else(|e| panic!("{id} {p:?}: {e}"));
    for cell in table.rows.iter_mut().flatten() {
        if let Value::Text(s) = cell
            && let Some(u) = users.iter().find(|u| u.id.to_string() == *s)
        {
            *s = u.name.clone();
        }
    }
    table
}

/// Asserts a table's rows, each written as its cells joined by commas (null is empty).
#[track_caller]
fn check(table: &ReportTable, expected: &[&str]) {
    let got: Vec<String> = table
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| match v {
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    assert_eq!(got, expected, "columns: {:?}", names(table));
}

fn names(t: &ReportTable) -> Vec<&str> {
    t.columns.iter().map(|c| c.name.as_str()).collect()
}

#[track_caller]
fn assert_bad_param(result: Result<ReportTable, Error>, param: &str) {
    match result {
        Err(Error::BadQuery(f)) => assert_eq!(f.field, param, "{f}"),
        other => panic!("expected a bad {param}, got {other:?}"),
    }
}

fn deal(
    stage: &str,
    money: Option<(&str, &str)>,
    owner: Option<&str>,
    source: Option<&str>,
) -> Vec<(&'static str, Value)> {
    let mut f = vec![
        ("title", text("Deal")),
        ("stage", text(stage)),
        ("owner", who(owner)),
        ("source", opt(source)),
    ];
    if let Some((a, c)) = money {
        f.push(("amount", amount(a)));
        f.push(("currency", text(c)));
    }
    f
}

#[test]
fn pipeline_counts_sums_and_weights_each_stage_per_currency() {
    let fx = Fx::new();
    fx.exec(Command::PutPipeline(Pipeline {
        key: "renewals".into(),
        name: "Renewals".into(),
        stages: vec![
            Stage {
                key: "up".into(),
                name: "Up".into(),
                probability: 60,
                outcome: StageOutcome::Open,
            },
            Stage {
                key: "signed".into(),
                name: "Signed".into(),
                probability: 100,
                outcome: StageOutcome::Won,
            },
            Stage {
                key: "churned".into(),
                name: "Churned".into(),
                probability: 0,
                outcome: StageOutcome::Lost,
            },
        ],
    }))
    .unwrap();
    fx.create(Deal, &deal("lead", Some(("100", "USD")), Some("ann"), None));
    fx.create(
        Deal,
        &deal("lead", Some(("50.50", "usd")), Some("bob"), None),
    );
    fx.create(
        Deal,
        &deal("proposal", Some(("200", "USD")), Some("ann"), None),
    );
    fx.create(
        Deal,
        &deal("proposal", Some(("10", "EUR")), Some("bob"), None),
    );
    // A currency without an amount groups with the deals that have no amount.
    let mut no_amount = deal("negotiation", None, Some("ann"), None);
    no_amount.push(("currency", text("GBP")));
    fx.create(Deal, &no_amount);
    fx.create(Deal, &deal("won", Some(("300", "USD")), Some("bob"), None));
    fx.create_at(
        at(2026, 2, 10, 12),
        Deal,
        &deal("lead", Some(("1000", "USD")), Some("carl"), None),
    );
    let mut renewal = deal("up", Some(("40", "USD")), Some("ann"), None);
    renewal.push(("pipeline", text("renewals")));
    fx.create(Deal, &renewal);

    let r = fx.fresh();
    let all = run(&r, "pipeline", &[]);
    assert_eq!(
        names(&all),
        [
            "pipeline",
            "stage",
            "stage_name",
            "probability",
            "currency",
            "deals",
            "amount",
            "weighted_amount"
        ]
    );
    assert_eq!(all.chart, ChartKind::Funnel);
    assert_eq!(all.label_column.as_deref(), Some("stage_name"));
    check(
        &all,
        &[
            "default,lead,Lead,10,USD,3,1150.5,115.05",
            "default,qualified,Qualified,25,,0,0,0",
            "default,proposal,Proposal,50,EUR,1,10,5",
            "default,proposal,Proposal,50,USD,1,200,100",
            "default,negotiation,Negotiation,75,,1,0,0",
            "default,won,Won,100,USD,1,300,300",
            "default,lost,Lost,0,,0,0,0",
            "renewals,up,Up,60,USD,1,40,24",
            "renewals,signed,Signed,100,,0,0,0",
            "renewals,churned,Churned,0,,0,0,0",
        ],
    );
    check(
        &run(&r, "pipeline", &[("pipeline", "default"), ("owner", "ann")]),
        &[
            "default,lead,Lead,10,USD,1,100,10",
            "default,qualified,Qualified,25,,0,0,0",
            "default,proposal,Proposal,50,USD,1,200,100",
            "default,negotiation,Negotiation,75,,1,0,0",
            "default,won,Won,100,,0,0,0",
            "default,lost,Lost,0,,0,0,0",
        ],
    );
    // Creation dates, both days included.
    check(
        &run(
            &r,
            "pipeline",
            &[("pipeline", "default"), ("to", "2026-02-10")],
        ),
        &[
            "default,lead,Lead,10,USD,1,1000,100",
            "default,qualified,Qualified,25,,0,0,0",
            "default,proposal,Proposal,50,,0,0,0",
            "default,negotiation,Negotiation,75,,0,0,0",
            "default,won,Won,100,,0,0,0",
            "default,lost,Lost,0,,0,0,0",
        ],
    );
    let march = run(
        &r,
        "pipeline",
        &[
            ("pipeline", "renewals"),
            ("from", "2026-03-02"),
            ("to", "2026-03-02"),
        ],
    );
    check(
        &march,
        &[
            "renewals,up,Up,60,USD,1,40,24",
            "renewals,signed,Signed,100,,0,0,0",
            "renewals,churned,Churned,0,,0,0,0",
        ],
    );
    assert_bad_param(
        r.run("pipeline", &params(&[("pipeline", "nope")])),
        "pipeline",
    );
}

#[test]
fn forecast_weights_open_deals_by_expected_close_month() {
    let fx = Fx::new();
    let with_close = |stage, money: Option<(&str, &str)>, close: Option<&str>| {
        let mut f = deal(stage, money, Some("ann"), None);
        if let Some(c) = close {
            f.push(("expected_close", date(c)));
        }
        f
    };
    for (stage, money, close) in [
        ("lead", Some(("100", "USD")), Some("2026-04-15")),
        ("proposal", Some(("200", "USD")), Some("2026-04-30")),
        ("negotiation", Some(("40", "EUR")), Some("2026-04-01")),
        ("qualified", Some(("80", "USD")), Some("2026-05-10")),
        ("lead", Some(("60", "USD")), None),
        ("won", Some(("500", "USD")), Some("2026-04-02")),
        ("lost", Some(("70", "USD")), Some("2026-04-03")),
        ("proposal", None, Some("2026-05-20")),
    ] {
        fx.create(Deal, &with_close(stage, money, close));
    }
    let r = fx.fresh();
    let all = run(&r, "forecast", &[]);
    assert_eq!(
        names(&all),
        ["month", "currency", "deals", "amount", "weighted_amount"]
    );
    check(
        &all,
        &[
            "2026-04,EUR,1,40,30",
            "2026-04,USD,2,300,110",
            "2026-05,USD,1,80,20",
            "2026-05,,1,0,0",
            ",USD,1,60,6",
        ],
    );
    // A date range leaves out deals without an expected close date.
    let april = ["2026-04,EUR,1,40,30", "2026-04,USD,2,300,110"];
    check(
        &run(
            &r,
            "forecast",
            &[("from", "2026-04-01"), ("to", "2026-04-30")],
        ),
        &april,
    );
    check(&run(&r, "forecast", &[("to", "2026-04-30")]), &april);
    check(&run(&r, "forecast", &[("owner", "bob")]), &[]);
}

#[test]
fn win_rate_deal_size_and_cycle_by_owner_source_and_month() {
    let fx = Fx::new();
    let close = |created: Timestamp, closed: Timestamp, stage, fields: Vec<(&str, Value)>| {
        let id = fx.create_at(created, Deal, &fields);
        fx.update_at(closed, Deal, id, &[("stage", text(stage))]);
    };
    close(
        at(2026, 1, 5, 0),
        at(2026, 1, 15, 0),
        "won",
        deal("lead", Some(("100", "USD")), Some("ann"), Some("web")),
    );
    close(
        at(2026, 1, 10, 0),
        at(2026, 2, 14, 0),
        "won",
        deal("lead", Some(("300", "USD")), Some("ann"), Some("web")),
    );
    close(
        at(2026, 1, 20, 0),
        at(2026, 2, 1, 0),
        "lost",
        deal("lead", Some(("50", "USD")), Some("ann"), Some("referral")),
    );
    close(
        at(2026, 2, 1, 0),
        at(2026, 2, 6, 0),
        "won",
        deal("lead", Some(("200", "EUR")), Some("bob"), Some("referral")),
    );
    close(
        at(2026, 2, 2, 0),
        at(2026, 2, 20, 0),
        "lost",
        deal("lead", None, Some("bob"), None),
    );
    close(
        at(2026, 2, 3, 0),
        at(2026, 2, 4, 12),
        "won",
        deal("lead", None, None, Some("web")),
    );
    fx.create(
        Deal,
        &deal("proposal", Some(("999", "USD")), Some("ann"), Some("web")),
    );

    let r = fx.fresh();
    let by_owner = run(&r, "win-rate", &[]);
    assert_eq!(
        names(&by_owner),
        [
            "owner",
            "currency",
            "won",
            "lost",
            "win_rate",
            "won_amount",
            "avg_deal_size",
            "avg_cycle_days"
        ]
    );
    check(
        &by_owner,
        &[
            "ann,USD,2,1,66.7,400,200,22.5",
            "bob,EUR,1,0,100,200,200,5",
            "bob,,0,1,0,0,,",
            ",,1,0,100,0,,1.5",
        ],
    );
    check(
        &run(&r, "win-rate", &[("by", "source")]),
        &[
            "referral,EUR,1,0,100,200,200,5",
            "referral,USD,0,1,0,0,,",
            "web,USD,2,0,100,400,200,22.5",
            "web,,1,0,100,0,,1.5",
            ",,0,1,0,0,,",
        ],
    );
    let by_month = run(&r, "win-rate", &[("by", "MONTH")]);
    assert_eq!(by_month.label_column.as_deref(), Some("month"));
    check(
        &by_month,
        &[
            "2026-01,USD,1,0,100,100,100,10",
            "2026-02,EUR,1,0,100,200,200,5",
            "2026-02,USD,1,1,50,300,300,35",
            "2026-02,,1,1,50,0,,1.5",
        ],
    );
    check(
        &run(
            &r,
            "win-rate",
            &[("from", "2026-02-01"), ("to", "2026-02-14")],
        ),
        &[
            "ann,USD,1,1,50,300,300,35",
            "bob,EUR,1,0,100,200,200,5",
            ",,1,0,100,0,,1.5",
        ],
    );
}

#[test]
fn tickets_volume_times_and_sla_by_priority() {
    let fx = Fx::new();
    let day = at(2026, 3, 1, 0);
    let h = |hours: i64| Value::DateTime(day + Duration::hours(hours));
    let m = |minutes: i64| Value::DateTime(day + Duration::minutes(minutes));
    let ticket = |priority: &str, assignee: Option<&str>, extra: &[(&'static str, Value)]| {
        let mut f = vec![
            ("subject", text("Help")),
            ("priority", text(priority)),
            ("assignee", opt(assignee)),
        ];
        f.extend(extra.iter().cloned());
        f
    };
    // Urgent: answered and resolved in time.
    let k1 = fx.create_at(
        day,
        Ticket,
        &ticket(
            "urgent",
            Some("ann"),
            &[
                ("first_response_at", h(1)),
                ("first_response_due", h(2)),
                ("resolution_due", h(4)),
            ],
        ),
    );
    fx.update_at(
        day + Duration::hours(3),
        Ticket,
        k1,
        &[("status", text("resolved"))],
    );
    // Urgent: answered late, and its resolution due time has passed unresolved.
    fx.create_at(
        day,
        Ticket,
        &ticket(
            "urgent",
            Some("ann"),
            &[
                ("first_response_at", h(3)),
                ("first_response_due", h(2)),
                ("resolution_due", h(4)),
            ],
        ),
    );
    // High: not answered and not yet due, so not counted either way.
    fx.create_at(
        day,
        Ticket,
        &ticket("high", Some("bob"), &[("first_response_due", h(48))]),
    );
    // High: answered and resolved, but with no due times.
    let k4 = fx.create_at(
        day,
        Ticket,
        &ticket("high", Some("ann"), &[("first_response_at", m(30))]),
    );
    fx.update_at(
        day + Duration::hours(10),
        Ticket,
        k4,
        &[("status", text("closed"))],
    );
    fx.create_at(at(2026, 2, 1, 0), Ticket, &ticket("low", None, &[]));

    let r = fx.fresh();
    let all = run(&r, "tickets", &[]);
    assert_eq!(
        names(&all),
        [
            "priority",
            "tickets",
            "open",
            "resolved",
            "avg_first_response_hours",
            "avg_resolution_hours",
            "response_sla_met",
            "response_sla_breached",
            "response_sla_pct",
            "resolution_sla_met",
            "resolution_sla_breached",
            "resolution_sla_pct"
        ]
    );
    check(
        &all,
        &[
            "low,1,1,0,,,0,0,,0,0,",
            "normal,0,0,0,,,0,0,,0,0,",
            "high,2,1,1,0.5,10,0,0,,0,0,",
            "urgent,2,1,1,2,3,1,1,50,1,1,50",
        ],
    );
    check(
        &run(
            &r,
            "tickets",
            &[("assignee", "ann"), ("from", "2026-03-01")],
        ),
        &[
            "low,0,0,0,,,0,0,,0,0,",
            "normal,0,0,0,,,0,0,,0,0,",
            "high,1,0,1,0.5,10,0,0,,0,0,",
            "urgent,2,1,1,2,3,1,1,50,1,1,50",
        ],
    );
    // Two days on, the unanswered high ticket is past its first-response due time.
    fx.clock.advance(Duration::days(2));
    check(
        &run(&r, "tickets", &[("assignee", "bob")]),
        &[
            "low,0,0,0,,,0,0,,0,0,",
            "normal,0,0,0,,,0,0,,0,0,",
            "high,1,1,0,,,0,1,0,0,0,",
            "urgent,0,0,0,,,0,0,,0,0,",
        ],
    );
}

#[test]
fn interactions_by_type_and_owner_per_month_and_week() {
    let fx = Fx::new();
    fx.clock.set(at(2026, 3, 20, 0));
    let ada = fx.create(Contact, &[("first_name", text("Ada"))]);
    let add = |kind: &str, direction: Option<&str>, when: Timestamp, secs: Option<i64>, owner| {
        fx.create(
            Interaction,
            &[
                ("kind", text(kind)),
                ("direction", opt(direction)),
                ("occurred_at", Value::DateTime(when)),
                ("duration_seconds", secs.map_or(Value::Null, Value::Integer)),
                ("owner", who(owner)),
                ("contact_id", Value::Ref(ada)),
            ],
        );
    };
    add(
        "call",
        Some("inbound"),
        at(2026, 3, 2, 10),
        Some(300),
        Some("ann"),
    );
    add(
        "call",
        Some("outbound"),
        at(2026, 3, 3, 10),
        Some(600),
        Some("ann"),
    );
    add(
        "email",
        Some("outbound"),
        at(2026, 3, 9, 10),
        None,
        Some("bob"),
    );
    add(
        "call",
        Some("inbound"),
        at(2026, 2, 27, 10),
        Some(120),
        Some("bob"),
    );
    add("note", None, at(2026, 3, 10, 10), None, None);

    let r = fx.fresh();
    let monthly = run(&r, "interactions", &[]);
    assert_eq!(
        names(&monthly),
        [
            "period",
            "type",
            "owner",
            "interactions",
            "inbound",
            "outbound",
            "duration_minutes"
        ]
    );
    assert_eq!(monthly.chart, ChartKind::Line);
    // Types in their declared order: email, call, meeting, chat, sms, note.
    check(
        &monthly,
        &[
            "2026-02,call,bob,1,1,0,2",
            "2026-03,email,bob,1,0,1,0",
            "2026-03,call,ann,2,1,1,15",
            "2026-03,note,,1,0,0,0",
        ],
    );
    check(
        &run(&r, "interactions", &[("interval", "week")]),
        &[
            "2026-W09,call,bob,1,1,0,2",
            "2026-W10,call,ann,2,1,1,15",
            "2026-W11,email,bob,1,0,1,0",
            "2026-W11,note,,1,0,0,0",
        ],
    );
    check(
        &run(
            &r,
            "interactions",
            &[("interval", "week"), ("type", "call")],
        ),
        &["2026-W09,call,bob,1,1,0,2", "2026-W10,call,ann,2,1,1,15"],
    );
    check(
        &run(
            &r,
            "interactions",
            &[("interval", "day"), ("owner", "ann"), ("to", "2026-03-02")],
        ),
        &["2026-03-02,call,ann,1,1,0,5"],
    );
}

#[test]
fn new_contacts_by_source_over_time() {
    let fx = Fx::new();
    for (when, source, owner) in [
        (at(2026, 1, 15, 8), Some("web"), "ann"),
        (at(2026, 1, 15, 9), Some("web"), "bob"),
        (at(2026, 1, 20, 9), Some("referral"), "ann"),
        (at(2026, 2, 3, 9), Some("web"), "ann"),
        (at(2026, 2, 5, 9), None, "bob"),
    ] {
        fx.create_at(
            when,
            Contact,
            &[
                ("first_name", text("C")),
                ("source", opt(source)),
                ("owner", who(Some(owner))),
            ],
        );
    }
    let r = fx.fresh();
    let monthly = run(&r, "new-contacts", &[]);
    assert_eq!(names(&monthly), ["period", "source", "contacts"]);
    check(
        &monthly,
        &[
            "2026-01,referral,1",
            "2026-01,web,2",
            "2026-02,web,1",
            "2026-02,,1",
        ],
    );
    check(
        &run(&r, "new-contacts", &[("interval", "day")]),
        &[
            "2026-01-15,web,2",
            "2026-01-20,referral,1",
            "2026-02-03,web,1",
            "2026-02-05,,1",
        ],
    );
    check(
        &run(&r, "new-contacts", &[("source", "web")]),
        &["2026-01,web,2", "2026-02,web,1"],
    );
    check(
        &run(
            &r,
            "new-contacts",
            &[("owner", "bob"), ("from", "2026-02-01")],
        ),
        &["2026-02,,1"],
    );
}

#[test]
fn parameters_are_checked_and_named_in_errors() {
    let fx = Fx::new();
    let r = fx.fresh();
    let try_run = |id: &str, p: &[(&str, &str)]| r.run(id, &params(p));
    assert_bad_param(try_run("pipeline", &[("colour", "red")]), "colour");
    assert_bad_param(try_run("forecast", &[("from", "2026-13-01")]), "from");
    assert_bad_param(try_run("win-rate", &[("by", "team")]), "by");
    assert_bad_param(try_run("interactions", &[("interval", "year")]), "interval");
    assert_bad_param(try_run("interactions", &[("type", "fax")]), "type");
    assert_bad_param(
        try_run("tickets", &[("from", "2026-03-02"), ("to", "2026-03-01")]),
        "to",
    );
    let message = try_run("pipeline", &[("colour", "red")])
        .unwrap_err()
        .to_string();
    assert!(message.contains("pipeline, owner, from, to"), "{message}");
    // Empty values count as not given.
    check(
        &run(&r, "new-contacts", &[("owner", ""), ("from", " ")]),
        &[],
    );
    for id in ["nope", "some-plugin.report", ""] {
        match r.run(id, &params(&[])) {
            Err(Error::NoSuch { what, name }) => assert_eq!((what, name.as_str()), ("report", id)),
            other => panic!("{id}: {other:?}"),
        }
    }
}

#[test]
fn every_built_in_report_runs_on_an_empty_store() {
    let fx = Fx::new();
    let r = fx.fresh();
    let defs = r.definitions();
    let ids: Vec<&str> = defs.iter().map(|d| d.id.as_str()).collect();
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
    for def in &defs {
        assert_eq!(def.source, BUILT_IN);
        assert!(def.parameters.iter().all(|p| p.help.is_some()), "{def:?}");
        let t = run(&r, &def.id, &[]);
        let names = names(&t);
        assert!(t.rows.iter().all(|row| row.len() == names.len()), "{t:?}");
        for c in t.label_column.iter().chain(&t.value_columns) {
            assert!(names.contains(&c.as_str()), "{}: no column {c}", def.id);
        }
    }
    assert_eq!(run(&r, "tickets", &[]).rows.len(), 4);
    assert_eq!(run(&r, "pipeline", &[]).rows.len(), 6);
    assert!(run(&r, "forecast", &[]).rows.is_empty());
}

#[test]
fn parse_params_types_each_value() {
    let def = ParamDef {
        name: "by".into(),
        label: "Group by".into(),
        kind: ParamKind::Choice(vec!["owner".into()]),
        help: None,
    };
    assert_eq!(
        parse_params(std::slice::from_ref(&def), &params(&[("by", "OWNER")])).unwrap()["by"],
        text("owner")
    );
    let date_def = ParamDef {
        kind: ParamKind::Date,
        ..def
    };
    assert_eq!(
        parse_params(&[date_def], &params(&[("by", "2026-03-02")])).unwrap()["by"],
        Value::Date(NaiveDate::from_ymd_opt(2026, 3, 2).unwrap())
    );
}

#[test]
fn csv_quotes_fields_as_rfc_4180_says() {
    let table = ReportTable {
        columns: vec![
            Column {
                name: "who".into(),
                label: "Who, exactly".into(),
            },
            Column {
                name: "n".into(),
                label: "N".into(),
            },
            Column {
                name: "note".into(),
                label: "Note".into(),
            },
        ],
        rows: vec![
            vec![text("Ann \"the closer\""), Value::Integer(3), Value::Null],
            vec![text("line\nbreak"), amount("-1.50"), text("=1+2")],
            vec![Value::Null, Value::Integer(-2), date("2026-03-02")],
        ],
        chart: ChartKind::None,
        label_column: None,
        value_columns: vec![],
    };
    assert_eq!(
        to_csv(&table),
        "\"Who, exactly\",N,Note\r\n\
         \"Ann \"\"the closer\"\"\",3,\r\n\
         \"line\nbreak\",-1.50,'=1+2\r\n\
         ,-2,2026-03-02\r\n"
    );
}

/// Every built-in report, with parameter sets that exercise each filter.
const CASES: &[(&str, &[(&str, &str)])] = &[
    ("pipeline", &[]),
    ("pipeline", &[("owner", "ann"), ("from", "2026-02-01")]),
    ("forecast", &[]),
    ("forecast", &[("from", "2026-03-01"), ("to", "2026-06-30")]),
    ("win-rate", &[]),
    ("win-rate", &[("by", "source")]),
    ("win-rate", &[("by", "month"), ("owner", "bob")]),
    ("tickets", &[]),
    ("tickets", &[("assignee", "ann")]),
    ("interactions", &[]),
    ("interactions", &[("interval", "week"), ("type", "call")]),
    ("new-contacts", &[]),
    ("new-contacts", &[("interval", "day"), ("source", "web")]),
    ("new-contacts", &[("owner", "carl")]),
];

/// Every report of [`CASES`], from two engines over the same store, for each of `accesses`
/// (`None`: as the system), must agree.
#[track_caller]
fn assert_same_reports(live: &Reports, fresh: &Reports, accesses: &[Option<Access>]) {
    for access in accesses {
        for (id, p) in CASES {
            assert_eq!(
                run_as(live, id, p, access.as_ref()),
                run_as(fresh, id, p, access.as_ref()),
                "{id} {p:?} as {access:?}"
            );
        }
    }
}

/// The deal rows with their text resolved, to compare projections whose interned numbers
/// differ.
fn deal_rows(r: &Reports) -> Vec<String> {
    r.with(&r.inner.deals, |p| {
        Ok(p.rows
            .iter()
            .map(|d| {
                format!(
                    "{} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {} {:?} {:?}",
                    d.id,
                    d.amount,
                    p.syms.name(d.currency),
                    p.syms.name(d.pipeline),
                    p.syms.name(d.stage),
                    p.syms.name(d.owner),
                    p.syms.name(d.team),
                    p.syms.name(d.source),
                    d.status,
                    d.created,
                    d.closed,
                    d.expected_close
                )
            })
            .collect())
    })
    .unwrap()
}

#[test]
fn projections_follow_every_kind_of_change_exactly_like_a_fresh_scan() {
    let fx = Fx::new();
    let live = fx.fresh();
    live.warm().unwrap();
    let accesses = [
        None,
        Some(fx.agent("ann")),
        Some(fx.agent("bob")),
        Some(fx.agent("dee")),
    ];
    let mut rng = StdRng::seed_from_u64(4);
    let owners = [Some("ann"), Some("bob"), Some("carl"), Some("dee"), None];
    // A team given explicitly overrides the owner's; `None` here means "not given".
    let teams = [None, None, None, Some("east"), Some("west"), Some("")];
    let sources = [Some("web"), Some("referral"), None];
    let stages = [
        "lead",
        "qualified",
        "proposal",
        "negotiation",
        "won",
        "lost",
    ];
    let currencies = ["USD", "EUR"];
    let mut ids: BTreeMap<EntityKind, Vec<Id>> = BTreeMap::new();
    for round in 0..10 {
        for _ in 0..40 {
            fx.clock
                .advance(Duration::minutes(rng.random_range(1..600)));
            let now = fx.clock.now();
            // A third of the creates are backdated: they get older ids than existing rows.
            let when = if rng.random_bool(0.3) {
                now - Duration::hours(rng.random_range(1..2000))
            } else {
                now
            };
            let name = *owners.choose(&mut rng).unwrap();
            let owner = who(name);
            let assignee = opt(name);
            // An empty team stands for an explicit null.
            let team = teams
                .choose(&mut rng)
                .unwrap()
                .map(|t| if t.is_empty() { Value::Null } else { text(t) });
            let source = opt(*sources.choose(&mut rng).unwrap());
            let some_id = |ids: &BTreeMap<EntityKind, Vec<Id>>, kind, rng: &mut StdRng| {
                ids.get(&kind).and_then(|v| v.choose(rng).copied())
            };
            let cmd = match rng.random_range(0..12) {
                0..=2 => {
                    let mut f = vec![
                        ("title", text("D")),
                        ("stage", text(stages.choose(&mut rng).unwrap())),
                        ("owner", owner),
                        ("source", source),
                    ];
                    f.extend(team.map(|t| ("team", t)));
                    if rng.random_bool(0.8) {
                        f.push((
                            "amount",
                            Value::Number(Decimal::new(rng.random_range(0..100_000), 2)),
                        ));
                        f.push(("currency", text(currencies.choose(&mut rng).unwrap())));
                    }
                    if rng.random_bool(0.7) {
                        let d = NaiveDate::from_ymd_opt(2026, rng.random_range(1..=12), 1).unwrap();
                        f.push(("expected_close", Value::Date(d)));
                    }
                    Some((Deal, backdated(when, create(Deal, &f))))
                }
                3 => some_id(&ids, Deal, &mut rng).map(|id| {
                    let change = match rng.random_range(0..5) {
                        0 => vec![("stage", text(stages.choose(&mut rng).unwrap()))],
                        1 => vec![("owner", owner)],
                        2 => vec![
                            (
                                "amount",
                                Value::Number(Decimal::new(rng.random_range(0..500), 0)),
                            ),
                            ("currency", text("EUR")),
                        ],
                        3 => vec![("team", team.unwrap_or(Value::Null))],
                        _ => vec![("expected_close", Value::Null), ("source", source)],
                    };
                    (Deal, update(Deal, id, &change))
                }),
                4 => some_id(&ids, Deal, &mut rng)
                    .map(|id| (Deal, Command::Delete { kind: Deal, id })),
                5 => {
                    let due = now + Duration::hours(rng.random_range(-48..48));
                    let mut f = vec![
                        ("subject", text("T")),
                        (
                            "priority",
                            text(
                                ["low", "normal", "high", "urgent"]
                                    .choose(&mut rng)
                                    .unwrap(),
                            ),
                        ),
                        ("assignee", assignee),
                        ("first_response_due", Value::DateTime(due)),
                        ("resolution_due", Value::DateTime(due + Duration::hours(24))),
                    ];
                    // The owner is not always the assignee.
                    if rng.random_bool(0.7) {
                        f.push(("owner", who(*owners.choose(&mut rng).unwrap())));
                    }
                    f.extend(team.map(|t| ("team", t)));
                    if rng.random_bool(0.5) {
                        f.push((
                            "first_response_at",
                            Value::DateTime(when + Duration::minutes(rng.random_range(0..3000))),
                        ));
                    }
                    Some((Ticket, backdated(when, create(Ticket, &f))))
                }
                6 => some_id(&ids, Ticket, &mut rng).map(|id| {
                    let status = ["open", "pending", "resolved", "closed"]
                        .choose(&mut rng)
                        .unwrap();
                    let mut change = vec![("status", text(status))];
                    change.extend(team.map(|t| ("team", t)));
                    (Ticket, update(Ticket, id, &change))
                }),
                7 => {
                    let mut f = vec![
                        ("first_name", text("C")),
                        ("owner", owner),
                        ("source", source),
                    ];
                    f.extend(team.map(|t| ("team", t)));
                    Some((Contact, backdated(when, create(Contact, &f))))
                }
                8 => some_id(&ids, Contact, &mut rng).map(|id| {
                    if rng.random_bool(0.5) {
                        // Deleting a contact also deletes interactions linked only to it.
                        (Contact, Command::Delete { kind: Contact, id })
                    } else {
                        (
                            Contact,
                            update(Contact, id, &[("source", source), ("owner", owner)]),
                        )
                    }
                }),
                9 | 10 => some_id(&ids, Contact, &mut rng).map(|contact| {
                    let kind = ["email", "call", "meeting", "note"]
                        .choose(&mut rng)
                        .unwrap();
                    let mut f = vec![
                        ("kind", text(kind)),
                        (
                            "direction",
                            opt(*[Some("inbound"), Some("outbound"), None]
                                .choose(&mut rng)
                                .unwrap()),
                        ),
                        ("occurred_at", Value::DateTime(when)),
                        (
                            "duration_seconds",
                            Value::Integer(rng.random_range(0..4000)),
                        ),
                        ("owner", owner),
                        ("contact_id", Value::Ref(contact)),
                    ];
                    f.extend(team.map(|t| ("team", t)));
                    (Interaction, backdated(when, create(Interaction, &f)))
                }),
                _ => some_id(&ids, Interaction, &mut rng).map(|id| {
                    if rng.random_bool(0.5) {
                        (
                            Interaction,
                            Command::Delete {
                                kind: Interaction,
                                id,
                            },
                        )
                    } else {
                        (
                            Interaction,
                            update(
                                Interaction,
                                id,
                                &[
                                    ("kind", text("chat")),
                                    ("owner", owner),
                                    ("team", team.unwrap_or(Value::Null)),
                                ],
                            ),
                        )
                    }
                }),
            };
            // Updates and deletes may name a record a cascade already removed: that fails
            // alone and is part of the test (nothing changes, no event).
            if let Some((kind, cmd)) = cmd
                && let Ok(Outcome::Record(r)) = fx.exec(cmd)
            {
                let list = ids.entry(kind).or_default();
                if !list.contains(&r.id()) {
                    list.push(r.id());
                }
            }
        }
        let fresh = fx.fresh();
        assert_same_reports(&live, &fresh, &accesses);
        assert_eq!(deal_rows(&live), deal_rows(&fresh), "round {round}");
        let seq = fx.store.last_event_seq().unwrap();
        assert_eq!(lock(&live.inner.deals).as_ref().map(|p| p.seq), Some(seq));
    }
    // The data must have exercised the interesting paths.
    assert!(
        ids.get(&Deal).is_some_and(|d| d.len() > 50),
        "{:?}",
        ids.get(&Deal).map(Vec::len)
    );
    assert!(!run(&live, "win-rate", &[]).rows.is_empty());
    assert!(!run(&live, "interactions", &[]).rows.is_empty());
    // ... and the restricted paths: an agent sees some records but not all.
    let ann = fx.agent("ann");
    for id in ["win-rate", "tickets", "interactions", "new-contacts"] {
        let mine = run_as(&live, id, &[], Some(&ann));
        assert_ne!(mine, run(&live, id, &[]), "{id}");
        assert_ne!(mine, run(&fx.fresh(), id, &[]), "{id}");
    }
    assert!(!run_as(&live, "win-rate", &[], Some(&ann)).rows.is_empty());
}

#[test]
fn an_agent_limited_to_own_and_team_gets_reports_over_only_those_records() {
    let fx = Fx::new();
    let with_team = |mut f: Vec<(&'static str, Value)>, team: &str| {
        f.push(("team", text(team)));
        f
    };
    fx.create(Deal, &deal("lead", Some(("100", "USD")), Some("ann"), None));
    fx.create(Deal, &deal("lead", Some(("50", "USD")), Some("carl"), None));
    fx.create(Deal, &deal("lead", Some(("70", "USD")), Some("bob"), None));
    // Bob's, but filed under the east team.
    fx.create(
        Deal,
        &with_team(
            deal("proposal", Some(("10", "USD")), Some("bob"), None),
            "east",
        ),
    );
    fx.create(Deal, &deal("lead", Some(("5", "USD")), Some("dee"), None));
    fx.create(Deal, &deal("lead", Some(("1", "USD")), None, None));
    // Ann's, but filed under the west team.
    fx.create(
        Deal,
        &with_team(deal("won", Some(("20", "USD")), Some("ann"), None), "west"),
    );
    // Tickets: the owner decides, not the assignee.
    fx.create(
        Ticket,
        &[
            ("subject", text("Bob's")),
            ("priority", text("high")),
            ("owner", who(Some("bob"))),
            ("assignee", text("ann")),
        ],
    );
    fx.create(
        Ticket,
        &[
            ("subject", text("Ann's")),
            ("priority", text("low")),
            ("owner", who(Some("ann"))),
        ],
    );
    // A contact of Bob's, and an interaction without owner that takes its team (west).
    let contact = fx.create(
        Contact,
        &[("first_name", text("Eve")), ("owner", who(Some("bob")))],
    );
    fx.create(
        Interaction,
        &[("kind", text("call")), ("contact_id", Value::Ref(contact))],
    );

    let r = fx.fresh();
    let ann = fx.agent("ann");
    let bob = fx.agent("bob");
    let dee = fx.agent("dee");
    let default_only = [("pipeline", "default")];
    check(
        &run_as(&r, "pipeline", &default_only, Some(&ann)),
        &[
            "default,lead,Lead,10,USD,2,150,15",
            "default,qualified,Qualified,25,,0,0,0",
            "default,proposal,Proposal,50,USD,1,10,5",
            "default,negotiation,Negotiation,75,,0,0,0",
            "default,won,Won,100,USD,1,20,20",
            "default,lost,Lost,0,,0,0,0",
        ],
    );
    check(
        &run_as(&r, "pipeline", &default_only, Some(&bob)),
        &[
            "default,lead,Lead,10,USD,1,70,7",
            "default,qualified,Qualified,25,,0,0,0",
            "default,proposal,Proposal,50,USD,1,10,5",
            "default,negotiation,Negotiation,75,,0,0,0",
            "default,won,Won,100,USD,1,20,20",
            "default,lost,Lost,0,,0,0,0",
        ],
    );
    // No team: only their own.
    check(&run_as(&r, "forecast", &[], Some(&dee)), &[",USD,1,5,0.5"]);
    // Filters narrow what is visible, never widen it.
    check(
        &run_as(&r, "forecast", &[("owner", "bob")], Some(&ann)),
        &[",USD,1,10,5"],
    );
    check(
        &run_as(&r, "forecast", &[("owner", "bob")], Some(&dee)),
        &[],
    );
    check(
        &run_as(&r, "win-rate", &[], Some(&bob)),
        &["ann,USD,1,0,100,20,20,0"],
    );
    check(&run_as(&r, "win-rate", &[], Some(&dee)), &[]);
    check(
        &run_as(&r, "tickets", &[], Some(&ann)),
        &[
            "low,1,1,0,,,0,0,,0,0,",
            "normal,0,0,0,,,0,0,,0,0,",
            "high,0,0,0,,,0,0,,0,0,",
            "urgent,0,0,0,,,0,0,,0,0,",
        ],
    );
    check(
        &run_as(&r, "tickets", &[("assignee", "ann")], Some(&bob)),
        &[
            "low,0,0,0,,,0,0,,0,0,",
            "normal,0,0,0,,,0,0,,0,0,",
            "high,1,1,0,,,0,0,,0,0,",
            "urgent,0,0,0,,,0,0,,0,0,",
        ],
    );
    check(&run_as(&r, "interactions", &[], Some(&ann)), &[]);
    check(
        &run_as(&r, "interactions", &[], Some(&bob)),
        &["2026-03,call,,1,0,0,0"],
    );
    check(&run_as(&r, "new-contacts", &[], Some(&ann)), &[]);
    check(
        &run_as(&r, "new-contacts", &[], Some(&bob)),
        &["2026-03,,1"],
    );
    // Unrestricted: the system, a manager, or any agent when agents see everything.
    let everything = [
        "default,lead,Lead,10,USD,5,226,22.6",
        "default,qualified,Qualified,25,,0,0,0",
        "default,proposal,Proposal,50,USD,1,10,5",
        "default,negotiation,Negotiation,75,,0,0,0",
        "default,won,Won,100,USD,1,20,20",
        "default,lost,Lost,0,,0,0,0",
    ];
    check(&run(&r, "pipeline", &default_only), &everything);
    let dir = fx.store.directory();
    let mut manager = dir.users()[0].clone();
    manager.role = Role::Manager;
    let own_and_team = OrgSettings {
        agent_scope: AgentScope::OwnAndTeam,
    };
    let all_agents = OrgSettings::default();
    for access in [
        Access::everything(),
        Access::for_user(&manager, &own_and_team),
        Access::for_user(dir.users()[3], &all_agents),
    ] {
        assert!(access.sees_all);
        check(
            &run_as(&r, "pipeline", &default_only, Some(&access)),
            &everything,
        );
    }
}

/// One record of a mixed data set, and perhaps a later change to it.
struct Spec {
    kind: EntityKind,
    at: Timestamp,
    fields: Vec<(&'static str, Value)>,
    then: Option<(Timestamp, Vec<(&'static str, Value)>)>,
}

/// Deals, tickets, contacts and interactions of every owner (and none), some filed under a
/// team other than their owner's or under none. Interactions are linked to a company (which
/// no report reads), so any subset of the records can be written on its own.
fn mixed_records(seed: u64) -> Vec<Spec> {
    let mut rng = StdRng::seed_from_u64(seed);
    let owners = [Some("ann"), Some("bob"), Some("carl"), Some("dee"), None];
    let teams = [None, None, Some("east"), Some("west"), Some("")];
    let sources = [Some("web"), Some("referral"), None];
    let start = at(2025, 6, 1, 0);
    let span = (t0() - start).num_minutes();
    let mut out = Vec::new();
    for _ in 0..240 {
        let created = start + Duration::minutes(rng.random_range(0..span));
        let later =
            created + Duration::minutes(rng.random_range(0..(t0() - created).num_minutes()));
        let owner = *owners.choose(&mut rng).unwrap();
        let mut fields = vec![("owner", who(owner))];
        if let Some(t) = teams.choose(&mut rng).unwrap() {
            fields.push(("team", if t.is_empty() { Value::Null } else { text(t) }));
        }
        let source = opt(*sources.choose(&mut rng).unwrap());
        let (kind, then) = match rng.random_range(0..8) {
            0..=2 => {
                fields.extend([
                    ("title", text("D")),
                    (
                        "stage",
                        text(["lead", "proposal"].choose(&mut rng).unwrap()),
                    ),
                    ("source", source),
                ]);
                if rng.random_bool(0.8) {
                    fields.push((
                        "amount",
                        Value::Number(Decimal::new(rng.random_range(0..100_000), 2)),
                    ));
                    fields.push(("currency", text(["USD", "EUR"].choose(&mut rng).unwrap())));
                }
                if rng.random_bool(0.7) {
                    let d = NaiveDate::from_ymd_opt(2026, rng.random_range(1..=12), 1).unwrap();
                    fields.push(("expected_close", Value::Date(d)));
                }
                let close = rng.random_bool(0.5).then(|| {
                    (
                        later,
                        vec![("stage", text(["won", "lost"].choose(&mut rng).unwrap()))],
                    )
                });
                (Deal, close)
            }
            3 | 4 => {
                let due = created + Duration::hours(rng.random_range(1..72));
                fields.extend([
                    ("subject", text("T")),
                    (
                        "priority",
                        text(
                            ["low", "normal", "high", "urgent"]
                                .choose(&mut rng)
                                .unwrap(),
                        ),
                    ),
                    ("assignee", opt(*owners.choose(&mut rng).unwrap())),
                    ("first_response_due", Value::DateTime(due)),
                    ("resolution_due", Value::DateTime(due + Duration::hours(24))),
                ]);
                if rng.random_bool(0.5) {
                    fields.push(("first_response_at", Value::DateTime(later)));
                }
                let resolve = rng
                    .random_bool(0.5)
                    .then(|| (later, vec![("status", text("resolved"))]));
                (Ticket, resolve)
            }
            5 => {
                fields.extend([("first_name", text("C")), ("source", source)]);
                (Contact, None)
            }
            _ => {
                fields.extend([
                    (
                        "kind",
                        text(["email", "call", "meeting"].choose(&mut rng).unwrap()),
                    ),
                    (
                        "direction",
                        opt(*[Some("inbound"), Some("outbound"), None]
                            .choose(&mut rng)
                            .unwrap()),
                    ),
                    ("occurred_at", Value::DateTime(created)),
                    (
                        "duration_seconds",
                        Value::Integer(rng.random_range(0..4000)),
                    ),
                ]);
                (Interaction, None)
            }
        };
        out.push(Spec {
            kind,
            at: created,
            fields,
            then,
        });
    }
    out
}

/// Writes the records of `specs` that `keep` selects (by index) and returns each one's final
/// owner and team as stored (`None` for those not written).
fn load(
    fx: &Fx,
    specs: &[Spec],
    keep: impl Fn(usize) -> bool,
) -> Vec<Option<(Option<String>, Option<String>)>> {
    let company = fx.create(EntityKind::Company, &[("name", text("Acme"))]);
    let as_text = |v: Option<Value>| match v {
        Some(Value::Text(s)) => Some(s),
        _ => None,
    };
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            if !keep(i) {
                return None;
            }
            let mut fields = spec.fields.clone();
            if spec.kind == Interaction {
                fields.push(("company_id", Value::Ref(company)));
            }
            let id = fx.create_at(spec.at, spec.kind, &fields);
            if let Some((when, change)) = &spec.then {
                fx.update_at(*when, spec.kind, id, change);
            }
            let r = fx.store.get(spec.kind, id).unwrap();
            Some((as_text(r.get("owner")), as_text(r.get("team"))))
        })
        .collect()
}

#[test]
fn a_restricted_report_equals_the_report_of_a_store_with_only_the_visible_records() {
    let specs = mixed_records(7);
    let full = Fx::new();
    let stored = load(&full, &specs, |_| true);
    let r = full.fresh();
    for name in ["ann", "bob", "carl", "dee"] {
        let access = full.agent(name);
        let visible: Vec<bool> = stored
            .iter()
            .map(|s| {
                let (owner, team) = s.as_ref().unwrap();
                access.sees(owner.as_deref(), team.as_deref())
            })
            .collect();
        let seen = visible.iter().filter(|v| **v).count();
        assert!(0 < seen && seen < specs.len(), "{name} sees {seen}");
        let only = Fx::new();
        load(&only, &specs, |i| visible[i]);
        let expected = only.fresh();
        for (id, p) in CASES {
            assert_eq!(
                run_as(&r, id, p, Some(&access)),
                run(&expected, id, p),
                "{id} {p:?} as {name}"
            );
        }
    }
    // Someone without a user or a team who does not see everything sees nothing.
    let nobody = Access {
        user: None,
        team: None,
        sees_all: false,
        may_write: false,
        may_delete_others: false,
    };
    let empty_fx = Fx::new();
    let empty = empty_fx.fresh();
    for (id, p) in CASES {
        assert_eq!(run_as(&r, id, p, Some(&nobody)), run(&empty, id, p), "{id}");
    }
    // Restricted runs leave the engine's answers for everyone else alone.
    let again = full.fresh();
    for (id, p) in CASES {
        assert_eq!(run(&r, id, p), run(&again, id, p), "{id} {p:?}");
        assert_eq!(
            run_as(&r, id, p, Some(&Access::everything())),
            run(&again, id, p)
        );
    }
}

#[test]
fn a_report_reads_only_what_changed_since_the_last_one() {
    let fx = Fx::new();
    let r = fx.fresh();
    let first = fx.create(Deal, &deal("lead", Some(("10", "USD")), Some("ann"), None));
    check(&run(&r, "forecast", &[]), &[",USD,1,10,1"]);
    let seq = lock(&r.inner.deals).as_ref().map(|p| p.seq);
    assert_eq!(seq, Some(fx.store.last_event_seq().unwrap()));
    // A change to another kind moves the position but leaves the rows alone.
    fx.create(Contact, &[("first_name", text("Ada"))]);
    fx.exec(update(Deal, first, &[("amount", amount("20"))]))
        .unwrap();
    check(&run(&r, "forecast", &[]), &[",USD,1,20,2"]);
    fx.exec(Command::Delete {
        kind: Deal,
        id: first,
    })
    .unwrap();
    check(&run(&r, "forecast", &[]), &[]);
    assert_eq!(
        lock(&r.inner.deals).as_ref().map(|p| (p.seq, p.rows.len())),
        Some((fx.store.last_event_seq().unwrap(), 0))
    );
    // The contact projection was never needed, so it was never built.
    assert!(lock(&r.inner.contacts).is_none());
}
