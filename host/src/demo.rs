//! Demo data: a realistic, reproducible CRM (fixed random seed) for `kith serve --demo`.
//!
//! Everything goes through the same commands the API uses, so demo records obey every
//! validation rule and appear in the event log like any other write. Commands are backdated
//! (`Command::Backdated`) so the data has a history: companies and contacts created over the
//! past year, deals opened and later won or lost, tickets answered and resolved, tasks done.
//! Reports and charts over time then show something real.

use chrono::Duration;
use fake::Fake;
use fake::faker::address::en::{CityName, CountryName, StreetName};
use fake::faker::company::en::{Bs, CompanyName, Industry};
use fake::faker::job::en::Title as JobTitle;
use fake::faker::lorem::en::Sentence;
use fake::faker::name::en::{FirstName, LastName};
use kith_core::Timestamp;
use kith_core::{
    Command, EntityKind, Error, Id, Input, NewUser, Outcome, Role, Store, Team, Value,
};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How much demo data to create.
#[derive(Debug, Clone, Copy)]
pub struct DemoSize {
    /// Companies.
    pub companies: usize,
    /// Contacts.
    pub contacts: usize,
    /// Deals.
    pub deals: usize,
    /// Tickets.
    pub tickets: usize,
    /// Interactions.
    pub interactions: usize,
    /// Tasks.
    pub tasks: usize,
}

impl Default for DemoSize {
    fn default() -> Self {
        DemoSize {
            companies: 40,
            contacts: 220,
            deals: 72,
            tickets: 36,
            interactions: 320,
            tasks: 300,
        }
    }
}

/// Creates the demo's teams and people (without passwords: an admin sets one to sign in as
/// them), unless they exist.
fn add_people(store: &Store) -> Result<(), Error> {
    let dir = store.directory();
    for (key, name) in TEAMS {
        if !dir.teams().iter().any(|t| t.key == *key) {
            let team = Team {
                key: (*key).to_owned(),
                name: (*name).to_owned(),
            };
            store.execute(Command::PutTeam(team), "demo")?;
        }
    }
    for (email, name, role, team) in PEOPLE {
        if dir.user_by_email(email).is_none() {
            let user = NewUser {
                email: (*email).to_owned(),
                name: (*name).to_owned(),
                role: *role,
                team: Some((*team).to_owned()),
                password_hash: None,
            };
            store.execute(Command::CreateUser(user), "demo")?;
        }
    }
    Ok(())
}

/// The seed that makes the demo data the same on every machine.
pub const SEED: u64 = 2026;

/// The demo's people (record owners), by email: (email, name, role, team).
const PEOPLE: &[(&str, &str, Role, &str)] = &[
    ("alex@example.com", "Alex Kim", Role::Agent, "east"),
    ("sam@example.com", "Sam Ortiz", Role::Agent, "east"),
    ("jordan@example.com", "Jordan Lee", Role::Agent, "west"),
    ("riley@example.com", "Riley Shah", Role::Manager, "west"),
    ("casey@example.com", "Casey Novak", Role::Agent, "west"),
];
const OWNERS: &[&str] = &[
    "alex@example.com",
    "sam@example.com",
    "jordan@example.com",
    "riley@example.com",
    "casey@example.com",
];
const TEAMS: &[(&str, &str)] = &[("east", "East"), ("west", "West")];
const SOURCES: &[&str] = &["web", "referral", "event", "outbound", "partner", "ads"];
const TAGS: &[&str] = &[
    "vip",
    "newsletter",
    "trial",
    "partner",
    "champion",
    "at-risk",
];
/// Next steps the demo's deals carry.
const NEXT_STEPS: &[&str] = &[
    "Send revised quote",
    "Book a call with their CFO",
    "Security review with IT",
    "Demo for the wider team",
    "Agree contract terms",
    "Follow up on pilot results",
];

const DEAL_WORDS: &[&str] = &[
    "Platform licence",
    "Annual renewal",
    "Pilot",
    "Expansion",
    "Support plan",
    "Onboarding",
    "Enterprise upgrade",
    "Data migration",
    "Training package",
    "Integration project",
];
const TICKET_SUBJECTS: &[&str] = &[
    "Cannot log in",
    "Invoice shows the wrong amount",
    "Export to CSV fails",
    "Feature request: dark mode",
    "Sync is slow",
    "Password reset email not arriving",
    "API returns 429",
    "Need help with onboarding",
    "Data missing after import",
    "Report totals look wrong",
];

/// Seeds demo data if the store has no records; returns a summary, or `None` if it had data.
pub fn seed_if_empty(store: &Store) -> Result<Option<String>, Error> {
    if store.counts()?.iter().any(|(_, n)| *n > 0) {
        return Ok(None);
    }
    seed(store, DemoSize::default()).map(Some)
}

/// Runs commands, each at its own past time, and returns the ids of the records they made.
fn run(store: &Store, cmds: Vec<(Timestamp, Command)>) -> Result<Vec<Id>, Error> {
    let wrapped = cmds
        .into_iter()
        .map(|(at, command)| Command::Backdated {
            at,
            command: Box::new(command),
        })
        .collect();
    store
        .execute_all(wrapped, "demo")
        .into_iter()
        .map(|r| match r? {
            Outcome::Record(rec) => Ok(rec.id()),
            other => Err(Error::invalid(
                "demo",
                format!("unexpected outcome {other:?}"),
            )),
        })
        .collect()
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

fn pick<'a>(rng: &mut ChaCha8Rng, from: &[&'a str]) -> &'a str {
    from.choose(rng).copied().unwrap_or_default()
}

fn slug(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase()
}

/// A time between `from` and `to` (both in the past), uniformly.
fn between(rng: &mut ChaCha8Rng, from: Timestamp, to: Timestamp) -> Timestamp {
    let span = (to - from).num_seconds().max(1);
    from + Duration::seconds(rng.random_range(0..span))
}

fn create(kind: EntityKind, input: Input) -> Command {
    Command::Create { kind, input }
}

fn update(
    kind: EntityKind,
    id: Id,
    fields: impl IntoIterator<Item = (&'static str, Value)>,
) -> Command {
    Command::Update {
        kind,
        id,
        input: Input::with(fields),
    }
}

/// Seeds `size` records with the fixed seed; returns a one-line summary.
pub fn seed(store: &Store, size: DemoSize) -> Result<String, Error> {
    add_people(store)?;
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let now = store.clock().now();
    // Everything happens at least a minute ago, so no backdated time passes the clock.
    let recent = now - Duration::minutes(1);
    let days = |d: i64| now - Duration::days(d);

    // Companies, created over the past year and a bit.
    let mut cmds = Vec::new();
    let mut company_at = Vec::new();
    let mut domains = Vec::new();
    for i in 0..size.companies {
        let name: String = CompanyName().fake_with_rng(&mut rng);
        let domain = format!(
            "{}{i}.example.com",
            slug(&name).chars().take(16).collect::<String>()
        );
        let at = between(&mut rng, days(420), days(120));
        let mut input = Input::with([
            ("name", text(name)),
            ("domain", text(domain.clone())),
            (
                "industry",
                text(Industry().fake_with_rng::<String, _>(&mut rng)),
            ),
            (
                "size",
                Value::Integer(
                    *[8, 25, 60, 150, 400, 1200, 5000]
                        .choose(&mut rng)
                        .unwrap_or(&25),
                ),
            ),
            ("website", text(format!("https://{domain}"))),
            (
                "address",
                text(format!(
                    "{} {}",
                    rng.random_range(1..400),
                    StreetName().fake_with_rng::<String, _>(&mut rng)
                )),
            ),
            (
                "city",
                text(CityName().fake_with_rng::<String, _>(&mut rng)),
            ),
            (
                "country",
                text(CountryName().fake_with_rng::<String, _>(&mut rng)),
            ),
            ("owner", text(pick(&mut rng, OWNERS))),
        ]);
        if rng.random_bool(0.3) {
            input
                .fields
                .insert("tags".into(), Value::List(vec![text(pick(&mut rng, TAGS))]));
        }
        domains.push(domain);
        company_at.push(at);
        cmds.push((at, create(EntityKind::Company, input)));
    }
    let companies = run(store, cmds)?;

    // Contacts, most at a company (joining after it was added), with an email at its domain.
    let mut cmds = Vec::new();
    let mut contact_company = Vec::new();
    let mut contact_names = Vec::new();
    let mut contact_at = Vec::new();
    for i in 0..size.contacts {
        let first: String = FirstName().fake_with_rng(&mut rng);
        let last: String = LastName().fake_with_rng(&mut rng);
        let company = rng
            .random_bool(0.85)
            .then(|| rng.random_range(0..companies.len()));
        let domain = company.map_or_else(|| "mail.example.net".to_owned(), |c| domains[c].clone());
        let at = between(
            &mut rng,
            company.map_or(days(365), |c| company_at[c]),
            days(2),
        );
        let email = format!("{}.{}{i}@{domain}", slug(&first), slug(&last));
        let stage = pick(
            &mut rng,
            &[
                "subscriber",
                "lead",
                "lead",
                "qualified",
                "customer",
                "customer",
                "churned",
            ],
        );
        let mut input = Input::with([
            ("first_name", text(first.clone())),
            ("last_name", text(last.clone())),
            ("email", text(email)),
            (
                "phone",
                text(format!(
                    "+1 555 {:03} {:04}",
                    rng.random_range(100..999),
                    rng.random_range(0..9999)
                )),
            ),
            (
                "title",
                text(JobTitle().fake_with_rng::<String, _>(&mut rng)),
            ),
            ("source", text(pick(&mut rng, SOURCES))),
            ("lifecycle_stage", text(stage)),
            ("owner", text(pick(&mut rng, OWNERS))),
        ]);
        if let Some(c) = company {
            input
                .fields
                .insert("company_id".into(), Value::Ref(companies[c]));
        }
        if rng.random_bool(0.25) {
            input
                .fields
                .insert("tags".into(), Value::List(vec![text(pick(&mut rng, TAGS))]));
        }
        contact_names.push(format!("{first} {last}"));
        contact_company.push(company.map(|c| companies[c]));
        contact_at.push(at);
        cmds.push((at, create(EntityKind::Contact, input)));
    }
    let contacts = run(store, cmds)?;

    // Deals: opened after their contact appeared, in every stage; a third are closed later
    // (won or lost), which gives real sales cycles and closing months.
    let open_stages = ["lead", "qualified", "proposal", "negotiation"];
    // With the deal-fields plugin installed, deals from Proposal on need a next step.
    let next_steps = store
        .field_defs(EntityKind::Deal)?
        .iter()
        .any(|d| d.name == "next_step");
    let mut cmds = Vec::new();
    let mut closing = Vec::new();
    for i in 0..size.deals {
        let ci = rng.random_range(0..contacts.len());
        let company =
            contact_company[ci].unwrap_or(companies[rng.random_range(0..companies.len())]);
        let opened = between(&mut rng, contact_at[ci].max(days(240)), days(1));
        let outcome = match i % 6 {
            4 => Some("won"),
            5 => Some("lost"),
            _ => None,
        };
        let stage = match outcome {
            Some(_) => pick(&mut rng, &["proposal", "negotiation"]),
            None => open_stages[i % open_stages.len()],
        };
        let amount = rust_decimal::Decimal::new(rng.random_range(20..800) * 25_000, 2);
        let expected = (now + Duration::days(rng.random_range(-20..120))).date_naive();
        let mut input = Input::with([
            (
                "title",
                text(format!(
                    "{} — {}",
                    pick(&mut rng, DEAL_WORDS),
                    Bs().fake_with_rng::<String, _>(&mut rng)
                )),
            ),
            ("amount", Value::Number(amount)),
            (
                "currency",
                text(pick(&mut rng, &["USD", "USD", "USD", "EUR", "GBP"])),
            ),
            ("stage", text(stage)),
            ("company_id", Value::Ref(company)),
            ("contact_ids", Value::List(vec![Value::Ref(contacts[ci])])),
            ("expected_close", Value::Date(expected)),
            ("source", text(pick(&mut rng, SOURCES))),
            ("owner", text(pick(&mut rng, OWNERS))),
        ]);
        if next_steps {
            input
                .custom
                .insert("next_step".to_owned(), text(pick(&mut rng, NEXT_STEPS)));
        }
        if let Some(outcome) = outcome {
            let closed = between(&mut rng, opened, (opened + Duration::days(75)).min(recent));
            closing.push((i, outcome, closed));
        }
        cmds.push((opened, create(EntityKind::Deal, input)));
    }
    let deals = run(store, cmds)?;
    let cmds = closing
        .into_iter()
        .map(|(i, outcome, closed)| {
            let mut fields = vec![
                ("stage", text(outcome)),
                ("expected_close", Value::Date(closed.date_naive())),
            ];
            if outcome == "lost" {
                fields.push((
                    "lost_reason",
                    text(pick(
                        &mut rng,
                        &["price", "timing", "competitor", "no budget", "no decision"],
                    )),
                ));
            }
            (closed, update(EntityKind::Deal, deals[i], fields))
        })
        .collect();
    run(store, cmds)?;

    // Tickets over the last six weeks: SLA times by priority; most answered, many resolved.
    let mut cmds = Vec::new();
    let mut followups = Vec::new();
    for i in 0..size.tickets {
        let ci = rng.random_range(0..contacts.len());
        let opened = between(&mut rng, days(42), now - Duration::hours(2));
        let priority = ["low", "normal", "normal", "high", "urgent"][rng.random_range(0..5)];
        let (respond_h, resolve_h) = match priority {
            "urgent" => (1, 8),
            "high" => (4, 24),
            "normal" => (8, 72),
            _ => (24, 120),
        };
        let mut input = Input::with([
            ("subject", text(pick(&mut rng, TICKET_SUBJECTS))),
            (
                "description",
                text(Sentence(8..20).fake_with_rng::<String, _>(&mut rng)),
            ),
            ("requester_id", Value::Ref(contacts[ci])),
            ("priority", text(priority)),
            (
                "channel",
                text(pick(&mut rng, &["email", "chat", "phone", "web"])),
            ),
            ("assignee", text(pick(&mut rng, OWNERS))),
            (
                "first_response_due",
                Value::DateTime(opened + Duration::hours(respond_h)),
            ),
            (
                "resolution_due",
                Value::DateTime(opened + Duration::hours(resolve_h)),
            ),
        ]);
        if let Some(c) = contact_company[ci] {
            input.fields.insert("company_id".into(), Value::Ref(c));
        }
        let status = ["open", "pending", "resolved", "closed", "resolved"][i % 5];
        // Responses land around the SLA: mostly in time, some late.
        let answered =
            (opened + Duration::minutes(rng.random_range(5..respond_h * 90))).min(recent);
        if status != "open" || rng.random_bool(0.5) {
            let resolved =
                (answered + Duration::minutes(rng.random_range(10..resolve_h * 70))).min(recent);
            followups.push((i, status, answered, resolved));
        }
        cmds.push((opened, create(EntityKind::Ticket, input)));
    }
    let tickets = run(store, cmds)?;
    let mut cmds = Vec::new();
    for (i, status, answered, resolved) in followups {
        cmds.push((
            answered,
            update(
                EntityKind::Ticket,
                tickets[i],
                [
                    ("first_response_at", Value::DateTime(answered)),
                    (
                        "status",
                        text(if status == "open" { "open" } else { "pending" }),
                    ),
                ],
            ),
        ));
        if matches!(status, "resolved" | "closed") {
            cmds.push((
                resolved.max(answered),
                update(EntityKind::Ticket, tickets[i], [("status", text(status))]),
            ));
        }
    }
    run(store, cmds)?;

    // Interactions over the last six months, each recorded when it happened.
    let mut cmds = Vec::new();
    for _ in 0..size.interactions {
        let ci = rng.random_range(0..contacts.len());
        let kind = pick(
            &mut rng,
            &["email", "call", "meeting", "chat", "sms", "note"],
        );
        let at = between(&mut rng, contact_at[ci].max(days(180)), recent);
        let mut input = Input::with([
            ("kind", text(kind)),
            ("direction", text(pick(&mut rng, &["inbound", "outbound"]))),
            ("occurred_at", Value::DateTime(at)),
            (
                "subject",
                text(Sentence(3..7).fake_with_rng::<String, _>(&mut rng)),
            ),
            (
                "body",
                text(Sentence(10..30).fake_with_rng::<String, _>(&mut rng)),
            ),
            ("contact_id", Value::Ref(contacts[ci])),
            ("owner", text(pick(&mut rng, OWNERS))),
        ]);
        if matches!(kind, "call" | "meeting") {
            input.fields.insert(
                "duration_seconds".into(),
                Value::Integer(rng.random_range(5..90) * 60),
            );
        }
        if let Some(c) = contact_company[ci] {
            input.fields.insert("company_id".into(), Value::Ref(c));
        }
        if rng.random_bool(0.3) {
            input.fields.insert(
                "deal_id".into(),
                Value::Ref(deals[rng.random_range(0..deals.len())]),
            );
        }
        if rng.random_bool(0.1) {
            input.fields.insert(
                "ticket_id".into(),
                Value::Ref(tickets[rng.random_range(0..tickets.len())]),
            );
        }
        cmds.push((at, create(EntityKind::Interaction, input)));
    }
    run(store, cmds)?;

    // Tasks: made a few days before they are due; some overdue, some due today, most
    // upcoming; a third of those already due were done.
    let verbs = [
        "Call",
        "Email",
        "Send proposal to",
        "Follow up with",
        "Book demo with",
        "Check in with",
    ];
    let mut cmds = Vec::new();
    let mut done = Vec::new();
    for i in 0..size.tasks {
        let ci = rng.random_range(0..contacts.len());
        let due = now + Duration::hours(rng.random_range(-24 * 14..24 * 21));
        let made = (due - Duration::days(rng.random_range(1..10))).min(recent);
        let mut input = Input::with([
            (
                "title",
                text(format!("{} {}", pick(&mut rng, &verbs), contact_names[ci])),
            ),
            ("due_at", Value::DateTime(due)),
            ("assignee", text(pick(&mut rng, OWNERS))),
            ("contact_id", Value::Ref(contacts[ci])),
        ]);
        if rng.random_bool(0.3) {
            input.fields.insert(
                "deal_id".into(),
                Value::Ref(deals[rng.random_range(0..deals.len())]),
            );
        }
        if due < now && rng.random_bool(0.6) {
            done.push((i, between(&mut rng, made, due.min(recent))));
        }
        cmds.push((made, create(EntityKind::Task, input)));
    }
    let tasks = run(store, cmds)?;
    let cmds = done
        .into_iter()
        .map(|(i, at)| {
            (
                at,
                update(EntityKind::Task, tasks[i], [("done", Value::Bool(true))]),
            )
        })
        .collect();
    run(store, cmds)?;

    Ok(format!(
        "seeded demo data: {} companies, {} contacts, {} deals, {} tickets, {} interactions, {} tasks",
        size.companies, size.contacts, size.deals, size.tickets, size.interactions, size.tasks
    ))
}
