//! Demo data: a realistic, reproducible CRM (fixed random seed) for `kith serve --demo`.
//!
//! Everything goes through the same commands the API uses, so demo records obey every
//! validation rule and appear in the event log like any other write.

use chrono::Duration;
use fake::Fake;
use fake::faker::address::en::{CityName, CountryName, StreetName};
use fake::faker::company::en::{Bs, CompanyName, Industry};
use fake::faker::job::en::Title as JobTitle;
use fake::faker::lorem::en::Sentence;
use fake::faker::name::en::{FirstName, LastName};
use kith_core::{Command, EntityKind, Error, Id, Input, Outcome, Store, Value};
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

/// The seed that makes the demo data the same on every machine.
pub const SEED: u64 = 2026;

const OWNERS: &[&str] = &["alex", "sam", "jordan", "riley", "casey"];
const SOURCES: &[&str] = &["web", "referral", "event", "outbound", "partner", "ads"];
const TAGS: &[&str] = &[
    "vip",
    "newsletter",
    "trial",
    "partner",
    "champion",
    "at-risk",
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

fn ids(results: Vec<Result<Outcome, Error>>) -> Result<Vec<Id>, Error> {
    results
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

fn slug(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase()
}

/// Seeds `size` records with the fixed seed; returns a one-line summary.
pub fn seed(store: &Store, size: DemoSize) -> Result<String, Error> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let now = store.clock().now();
    let actor = "demo";

    // Companies.
    let mut domains = Vec::new();
    let mut cmds = Vec::new();
    for i in 0..size.companies {
        let name: String = CompanyName().fake_with_rng(&mut rng);
        let domain = format!(
            "{}{i}.example.com",
            slug(&name).chars().take(16).collect::<String>()
        );
        domains.push(domain.clone());
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
            ("owner", text(*OWNERS.choose(&mut rng).unwrap_or(&"alex"))),
        ]);
        if rng.random_bool(0.3) {
            input.fields.insert(
                "tags".into(),
                Value::List(vec![text(*TAGS.choose(&mut rng).unwrap_or(&"vip"))]),
            );
        }
        cmds.push(Command::Create {
            kind: EntityKind::Company,
            input,
        });
    }
    let companies = ids(store.execute_all(cmds, actor))?;

    // Contacts, most working at a company, with an email at its domain.
    let mut cmds = Vec::new();
    let mut contact_company = Vec::new();
    let mut contact_names = Vec::new();
    for i in 0..size.contacts {
        let first: String = FirstName().fake_with_rng(&mut rng);
        let last: String = LastName().fake_with_rng(&mut rng);
        contact_names.push(format!("{first} {last}"));
        let company = (rng.random_bool(0.85)).then(|| rng.random_range(0..companies.len()));
        let domain = company.map_or_else(|| "mail.example.net".to_owned(), |c| domains[c].clone());
        let email = format!("{}.{}{i}@{domain}", slug(&first), slug(&last));
        let stage = *[
            "subscriber",
            "lead",
            "lead",
            "qualified",
            "customer",
            "customer",
            "churned",
        ]
        .choose(&mut rng)
        .unwrap_or(&"lead");
        let mut input = Input::with([
            ("first_name", text(first)),
            ("last_name", text(last)),
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
            ("source", text(*SOURCES.choose(&mut rng).unwrap_or(&"web"))),
            ("lifecycle_stage", text(stage)),
            ("owner", text(*OWNERS.choose(&mut rng).unwrap_or(&"alex"))),
        ]);
        if let Some(c) = company {
            input
                .fields
                .insert("company_id".into(), Value::Ref(companies[c]));
        }
        if rng.random_bool(0.25) {
            input.fields.insert(
                "tags".into(),
                Value::List(vec![text(*TAGS.choose(&mut rng).unwrap_or(&"vip"))]),
            );
        }
        contact_company.push(company.map(|c| companies[c]));
        cmds.push(Command::Create {
            kind: EntityKind::Contact,
            input,
        });
    }
    let contacts = ids(store.execute_all(cmds, actor))?;

    // Deals spread over every stage of the default pipeline.
    let stages = [
        "lead",
        "qualified",
        "proposal",
        "negotiation",
        "won",
        "lost",
    ];
    let mut cmds = Vec::new();
    for i in 0..size.deals {
        let stage = stages[i % stages.len()];
        let ci = rng.random_range(0..contacts.len());
        let company =
            contact_company[ci].unwrap_or(companies[rng.random_range(0..companies.len())]);
        let amount = rust_decimal::Decimal::new(rng.random_range(20..800) * 25_000, 2);
        let close = (now + Duration::days(rng.random_range(-60..120))).date_naive();
        let mut input = Input::with([
            (
                "title",
                text(format!(
                    "{} — {}",
                    DEAL_WORDS.choose(&mut rng).unwrap_or(&"Pilot"),
                    Bs().fake_with_rng::<String, _>(&mut rng)
                )),
            ),
            ("amount", Value::Number(amount)),
            (
                "currency",
                text(
                    *["USD", "USD", "USD", "EUR", "GBP"]
                        .choose(&mut rng)
                        .unwrap_or(&"USD"),
                ),
            ),
            ("stage", text(stage)),
            ("company_id", Value::Ref(company)),
            ("contact_ids", Value::List(vec![Value::Ref(contacts[ci])])),
            ("expected_close", Value::Date(close)),
            ("source", text(*SOURCES.choose(&mut rng).unwrap_or(&"web"))),
            ("owner", text(*OWNERS.choose(&mut rng).unwrap_or(&"alex"))),
        ]);
        if stage == "lost" {
            input.fields.insert(
                "lost_reason".into(),
                text(
                    *["price", "timing", "competitor", "no budget", "no decision"]
                        .choose(&mut rng)
                        .unwrap_or(&"price"),
                ),
            );
        }
        cmds.push(Command::Create {
            kind: EntityKind::Deal,
            input,
        });
    }
    let deals = ids(store.execute_all(cmds, actor))?;

    // Tickets in every status and priority.
    let mut cmds = Vec::new();
    for i in 0..size.tickets {
        let ci = rng.random_range(0..contacts.len());
        let status = ["open", "open", "pending", "resolved", "closed"][i % 5];
        let priority = ["low", "normal", "normal", "high", "urgent"][rng.random_range(0..5)];
        let mut input = Input::with([
            (
                "subject",
                text(*TICKET_SUBJECTS.choose(&mut rng).unwrap_or(&"Help")),
            ),
            (
                "description",
                text(Sentence(8..20).fake_with_rng::<String, _>(&mut rng)),
            ),
            ("requester_id", Value::Ref(contacts[ci])),
            ("status", text(status)),
            ("priority", text(priority)),
            (
                "channel",
                text(
                    *["email", "chat", "phone", "web"]
                        .choose(&mut rng)
                        .unwrap_or(&"email"),
                ),
            ),
            (
                "assignee",
                text(*OWNERS.choose(&mut rng).unwrap_or(&"alex")),
            ),
            (
                "first_response_due",
                Value::DateTime(now + Duration::hours(rng.random_range(-6..24))),
            ),
            (
                "resolution_due",
                Value::DateTime(now + Duration::hours(rng.random_range(12..96))),
            ),
        ]);
        if let Some(c) = contact_company[ci] {
            input.fields.insert("company_id".into(), Value::Ref(c));
        }
        cmds.push(Command::Create {
            kind: EntityKind::Ticket,
            input,
        });
    }
    let tickets = ids(store.execute_all(cmds, actor))?;

    // Interactions over the last six months, on contacts and sometimes their deals.
    let kinds = ["email", "call", "meeting", "chat", "sms", "note"];
    let mut cmds = Vec::new();
    for _ in 0..size.interactions {
        let ci = rng.random_range(0..contacts.len());
        let kind = *kinds.choose(&mut rng).unwrap_or(&"email");
        let mut input = Input::with([
            ("kind", text(kind)),
            (
                "direction",
                text(
                    *["inbound", "outbound"]
                        .choose(&mut rng)
                        .unwrap_or(&"outbound"),
                ),
            ),
            (
                "occurred_at",
                Value::DateTime(now - Duration::minutes(rng.random_range(10..60 * 24 * 180))),
            ),
            (
                "subject",
                text(Sentence(3..7).fake_with_rng::<String, _>(&mut rng)),
            ),
            (
                "body",
                text(Sentence(10..30).fake_with_rng::<String, _>(&mut rng)),
            ),
            ("contact_id", Value::Ref(contacts[ci])),
            ("owner", text(*OWNERS.choose(&mut rng).unwrap_or(&"alex"))),
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
        cmds.push(Command::Create {
            kind: EntityKind::Interaction,
            input,
        });
    }
    ids(store.execute_all(cmds, actor))?;

    // Tasks: some overdue, some due today, most upcoming, a third done.
    let verbs = [
        "Call",
        "Email",
        "Send proposal to",
        "Follow up with",
        "Book demo with",
        "Check in with",
    ];
    let mut cmds = Vec::new();
    for _ in 0..size.tasks {
        let ci = rng.random_range(0..contacts.len());
        let due = now + Duration::hours(rng.random_range(-24 * 14..24 * 21));
        let mut input = Input::with([
            (
                "title",
                text(format!(
                    "{} {}",
                    verbs.choose(&mut rng).unwrap_or(&"Call"),
                    contact_names[ci]
                )),
            ),
            ("due_at", Value::DateTime(due)),
            (
                "assignee",
                text(*OWNERS.choose(&mut rng).unwrap_or(&"alex")),
            ),
            ("done", Value::Bool(rng.random_bool(0.33))),
            ("contact_id", Value::Ref(contacts[ci])),
        ]);
        if rng.random_bool(0.3) {
            input.fields.insert(
                "deal_id".into(),
                Value::Ref(deals[rng.random_range(0..deals.len())]),
            );
        }
        cmds.push(Command::Create {
            kind: EntityKind::Task,
            input,
        });
    }
    ids(store.execute_all(cmds, actor))?;

    Ok(format!(
        "seeded demo data: {} companies, {} contacts, {} deals, {} tickets, {} interactions, {} tasks",
        size.companies, size.contacts, size.deals, size.tickets, size.interactions, size.tasks
    ))
}
