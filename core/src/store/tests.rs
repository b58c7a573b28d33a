//! Unit tests of the store: validation, uniqueness, index consistency against an in-memory
//! model, cascading deletes, group commit, the event log, reopening, crash recovery through
//! the write-ahead log, format versions, list queries and timelines.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use chrono::{Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::tables::{FORMAT_KEY, FORMAT_VERSION, META};
use super::wal::WAL_FILE;
use super::{Command, DB_FILE, Input, Outcome, Store, StoreConfig};
use crate::clock::{Clock, ManualClock, Timestamp};
use crate::custom::{FieldType, NewFieldDef};
use crate::entity::AnyRecord;
use crate::entity::EntityKind::{self, Company, Contact, Deal, Interaction, Task, Ticket};
use crate::error::{Error, FieldError, StoreError};
use crate::event::{FieldChange, Operation};
use crate::id::Id;
use crate::money::Decimal;
use crate::pipeline::{Pipeline, Stage, StageOutcome};
use crate::query::{Filter, FilterOp, Query, SortKey};
use crate::value::Value;

const ACTOR: &str = "tester";

/// A whole second, so a run of microsecond ticks stays inside one millisecond.
fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

/// A store in a fresh directory with a stopped clock. The store is declared first so it
/// closes before the directory is removed.
struct Fixture {
    store: Store,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self::with_batch(1024)
    }

    fn with_batch(max_batch: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(t0()));
        let store = open_store(dir.path(), &clock, max_batch).unwrap();
        Fixture { store, clock, dir }
    }

    /// Moves time on by a millisecond, so the next record gets a later id and timestamp.
    fn tick(&self) {
        self.clock.advance(Duration::milliseconds(1));
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.store.close();
    }
}

fn open_store(dir: &Path, clock: &Arc<ManualClock>, max_batch: usize) -> Result<Store, StoreError> {
    Store::open(StoreConfig {
        dir: dir.to_path_buf(),
        clock: clock.clone(),
        max_batch,
        checkpoint_every: super::CHECKPOINT_EVERY,
    })
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn opt_ref(id: Option<Id>) -> Value {
    id.map_or(Value::Null, Value::Ref)
}

fn opt_text(s: Option<&str>) -> Value {
    s.map_or(Value::Null, text)
}

fn money(units: i64, scale: u32) -> Value {
    Value::Number(Decimal::new(units, scale))
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

fn custom_input(fields: &[(&str, Value)], custom: &[(&str, Value)]) -> Input {
    let mut i = input(fields);
    i.custom = custom
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    i
}

fn create_cmd(kind: EntityKind, fields: &[(&str, Value)]) -> Command {
    Command::Create {
        kind,
        input: input(fields),
    }
}

fn record(o: Outcome) -> AnyRecord {
    match o {
        Outcome::Record(r) => r,
        other => panic!("expected a record, got {other:?}"),
    }
}

fn create(store: &Store, kind: EntityKind, fields: &[(&str, Value)]) -> Result<AnyRecord, Error> {
    store.execute(create_cmd(kind, fields), ACTOR).map(record)
}

fn update(
    store: &Store,
    kind: EntityKind,
    id: Id,
    fields: &[(&str, Value)],
) -> Result<AnyRecord, Error> {
    store
        .execute(
            Command::Update {
                kind,
                id,
                input: input(fields),
            },
            ACTOR,
        )
        .map(record)
}

fn delete(store: &Store, kind: EntityKind, id: Id) -> Result<Outcome, Error> {
    store.execute(Command::Delete { kind, id }, ACTOR)
}

fn value(r: &AnyRecord, field: &str) -> Value {
    r.get(field).unwrap()
}

fn filter(field: &str, op: FilterOp, value: &str) -> Filter {
    Filter {
        field: field.to_owned(),
        op,
        value: value.to_owned(),
    }
}

fn eq(field: &str, value: &str) -> Filter {
    filter(field, FilterOp::Eq, value)
}

fn query(filters: Vec<Filter>) -> Query {
    Query {
        filters,
        ..Query::default()
    }
}

fn field_def(name: &str, field_type: FieldType) -> NewFieldDef {
    NewFieldDef {
        name: name.to_owned(),
        label: None,
        field_type,
        required: false,
        options: Vec::new(),
        help: None,
        reference_kind: None,
    }
}

fn define(store: &Store, kind: EntityKind, def: NewFieldDef) -> Result<Outcome, Error> {
    store.execute(Command::DefineField { kind, def }, ACTOR)
}

/// Pages through a list with `next_cursor` and returns every id in order.
fn list_ids(store: &Store, kind: EntityKind, mut q: Query) -> Vec<Id> {
    let limit = q.page_size().unwrap();
    let mut out = Vec::new();
    loop {
        let page = store.list(kind, &q).unwrap();
        assert!(page.items.len() <= limit, "a page longer than its limit");
        out.extend(page.items.iter().map(AnyRecord::id));
        match page.next_cursor {
            Some(c) => {
                assert!(!page.items.is_empty(), "a cursor after an empty page");
                q.cursor = Some(c);
            }
            None => break,
        }
    }
    out
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap()
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(res: Result<T, Error>, field: &str) -> String {
    match res {
        Err(Error::Invalid(FieldError { field: f, message })) if f == field => message,
        other => panic!("expected `{field}` to be invalid, got {other:?}"),
    }
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(res: Result<T, Error>, field: &str) -> String {
    match res {
        Err(Error::Conflict { field: f, message }) if f == field => message,
        other => panic!("expected a conflict on `{field}`, got {other:?}"),
    }
}

#[track_caller]
fn assert_bad_query<T: std::fmt::Debug>(res: Result<T, Error>, field: &str) -> String {
    match res {
        Err(Error::BadQuery(FieldError { field: f, message })) if f == field => message,
        other => panic!("expected a bad query naming `{field}`, got {other:?}"),
    }
}

#[track_caller]
fn assert_consistent(store: &Store) {
    assert_eq!(store.verify_indexes().unwrap(), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------
// 1. Validation
// ---------------------------------------------------------------------------------------

#[test]
fn contact_needs_a_name_or_an_email() {
    let fx = Fixture::new();
    let msg = assert_invalid(create(&fx.store, Contact, &[]), "first_name");
    assert!(
        msg.contains("a first name, a last name or an email"),
        "{msg}"
    );
    assert_invalid(
        create(&fx.store, Contact, &[("title", text("CTO"))]),
        "first_name",
    );
    // Whitespace is no name.
    assert_invalid(
        create(&fx.store, Contact, &[("first_name", text("   "))]),
        "first_name",
    );
    create(&fx.store, Contact, &[("email", text("ada@example.com"))]).unwrap();
    create(&fx.store, Contact, &[("last_name", text("Lovelace"))]).unwrap();
    assert_eq!(fx.store.last_event_seq().unwrap(), 2);
}

#[test]
fn invalid_built_in_fields_are_refused_naming_the_field() {
    let fx = Fixture::new();
    let nobody = Id::from_u128(0x0123_4567_89ab_7def_8123_4567_89ab_cdef);
    let deal = |extra: &[(&'static str, Value)]| {
        let mut f = vec![("title", text("Renewal")), ("stage", text("lead"))];
        f.extend(extra.iter().cloned());
        f
    };
    // (kind, input, the field the error names, a fragment of its message)
    type Case = (
        EntityKind,
        Vec<(&'static str, Value)>,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            Contact,
            vec![("email", text("bob@"))],
            "email",
            "'bob@' is not a valid email address",
        ),
        (
            Contact,
            vec![
                ("first_name", text("Bob")),
                ("email", text("bob at example.com")),
            ],
            "email",
            "is not a valid email address",
        ),
        (
            Deal,
            deal(&[("amount", money(100, 0))]),
            "currency",
            "is required when an amount is given",
        ),
        (
            Deal,
            deal(&[("amount", money(100, 0)), ("currency", text("EURO"))]),
            "currency",
            "'EURO' is not an ISO-4217 currency code",
        ),
        (
            Deal,
            deal(&[("amount", money(-5, 0)), ("currency", text("USD"))]),
            "amount",
            "must not be negative",
        ),
        (
            Deal,
            vec![("title", text("Renewal")), ("stage", text("closing"))],
            "stage",
            "'closing' is not a stage of pipeline 'default' (stages: lead, qualified, proposal, negotiation, won, lost)",
        ),
        (Deal, vec![("stage", text("lead"))], "title", "is required"),
        (
            Contact,
            vec![
                ("first_name", text("Bob")),
                ("company_id", Value::Ref(nobody)),
            ],
            "company_id",
            "which does not exist",
        ),
        (
            Deal,
            deal(&[("company_id", Value::Ref(nobody))]),
            "company_id",
            "which does not exist",
        ),
        (
            Ticket,
            vec![
                ("subject", text("Help")),
                ("requester_id", Value::Ref(nobody)),
            ],
            "requester_id",
            "which does not exist",
        ),
        (
            Deal,
            deal(&[("status", text("won"))]),
            "status",
            "is set by Kith and cannot be changed",
        ),
        (
            Contact,
            vec![("first_name", text("Bob")), ("id", Value::Ref(nobody))],
            "id",
            "is set by Kith and cannot be changed",
        ),
        (
            Interaction,
            vec![("kind", text("note"))],
            "contact_id",
            "link it to at least one record",
        ),
        (
            Task,
            vec![("title", text("Call back"))],
            "contact_id",
            "link it to at least one record",
        ),
        (Company, vec![], "name", "is required"),
        (
            Company,
            vec![("name", text("Acme")), ("domain", text("acme"))],
            "domain",
            "is not a valid domain",
        ),
    ];
    for (kind, fields, field, fragment) in cases {
        let msg = assert_invalid(create(&fx.store, kind, &fields), field);
        assert!(msg.contains(fragment), "{kind} {fields:?}: {msg}");
    }
    match create(
        &fx.store,
        Contact,
        &[("first_name", text("Bob")), ("nickname", text("B"))],
    ) {
        Err(Error::UnknownField {
            kind: Contact,
            field,
        }) => assert_eq!(field, "nickname"),
        other => panic!("expected an unknown field, got {other:?}"),
    }
    // Nothing was written by any of the refused commands.
    assert_eq!(fx.store.last_event_seq().unwrap(), 0);
    assert!(fx.store.counts().unwrap().iter().all(|(_, n)| *n == 0));
    assert_consistent(&fx.store);
}

#[test]
fn invalid_updates_are_refused_and_change_nothing() {
    let fx = Fixture::new();
    let d = create(
        &fx.store,
        Deal,
        &[("title", text("Pilot")), ("stage", text("lead"))],
    )
    .unwrap();
    let c = create(&fx.store, Contact, &[("first_name", text("Ada"))]).unwrap();
    assert_invalid(
        update(&fx.store, Deal, d.id(), &[("status", text("won"))]),
        "status",
    );
    assert_invalid(
        update(&fx.store, Deal, d.id(), &[("stage", text("done"))]),
        "stage",
    );
    assert_invalid(
        update(&fx.store, Contact, c.id(), &[("email", text("ada@"))]),
        "email",
    );
    assert_invalid(
        update(&fx.store, Contact, c.id(), &[("id", Value::Ref(d.id()))]),
        "id",
    );
    assert_invalid(
        update(&fx.store, Contact, c.id(), &[("first_name", Value::Null)]),
        "first_name",
    );
    assert_eq!(fx.store.get(Deal, d.id()).unwrap(), d);
    assert_eq!(fx.store.get(Contact, c.id()).unwrap(), c);
    assert_eq!(fx.store.last_event_seq().unwrap(), 2);
    let missing = Id::from_u128(42);
    match update(&fx.store, Contact, missing, &[("first_name", text("X"))]) {
        Err(Error::NotFound { kind: Contact, id }) => assert_eq!(id, missing),
        other => panic!("expected not found, got {other:?}"),
    }
    match delete(&fx.store, Deal, c.id()) {
        Err(Error::NotFound { kind: Deal, id }) => assert_eq!(id, c.id()),
        other => panic!("a contact's id is no deal: {other:?}"),
    }
}

#[test]
fn custom_fields_are_type_checked_and_name_the_field() {
    let fx = Fixture::new();
    let s = &fx.store;
    let company = create(s, Company, &[("name", text("Acme"))]).unwrap().id();
    define(s, Contact, field_def("nickname", FieldType::Text)).unwrap();
    define(s, Contact, field_def("score", FieldType::Integer)).unwrap();
    define(
        s,
        Contact,
        NewFieldDef {
            options: vec!["gold".to_owned(), "silver".to_owned()],
            ..field_def("tier", FieldType::Choice)
        },
    )
    .unwrap();
    define(
        s,
        Contact,
        NewFieldDef {
            reference_kind: Some(Company),
            ..field_def("partner", FieldType::Reference)
        },
    )
    .unwrap();
    define(s, Contact, field_def("billing", FieldType::Email)).unwrap();
    assert_eq!(s.field_defs(Contact).unwrap().len(), 5);

    let with_custom = |custom: &[(&str, Value)]| {
        s.execute(
            Command::Create {
                kind: Contact,
                input: custom_input(&[("first_name", text("Ada"))], custom),
            },
            ACTOR,
        )
        .map(record)
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("score", text("many"), "'many' is not a whole number"),
        (
            "score",
            Value::Bool(true),
            "expected a whole number, got a boolean",
        ),
        (
            "nickname",
            Value::Integer(5),
            "expected text, got an integer",
        ),
        (
            "tier",
            text("bronze"),
            "'bronze' is not one of gold, silver",
        ),
        (
            "partner",
            Value::Ref(Id::from_u128(7)),
            "which does not exist",
        ),
        ("partner", text("not-a-uuid"), "is not a valid id"),
        (
            "billing",
            text("nope"),
            "'nope' is not a valid email address",
        ),
    ];
    for (name, v, fragment) in cases {
        let msg = assert_invalid(with_custom(&[(name, v.clone())]), &format!("custom.{name}"));
        assert!(msg.contains(fragment), "{name}={v:?}: {msg}");
    }
    match with_custom(&[("nope", text("x"))]) {
        Err(Error::UnknownField {
            kind: Contact,
            field,
        }) => assert_eq!(field, "custom.nope"),
        other => panic!("expected an unknown custom field, got {other:?}"),
    }
    assert_eq!(s.counts().unwrap()[0], (Contact, 0));

    let ada = with_custom(&[
        ("nickname", text(" Countess ")),
        ("score", text("42")),
        ("tier", text("GOLD")),
        ("partner", Value::Ref(company)),
        ("billing", text("Pay@Example.COM")),
    ])
    .unwrap();
    assert_eq!(value(&ada, "custom.nickname"), text("Countess"));
    assert_eq!(value(&ada, "custom.score"), Value::Integer(42));
    assert_eq!(value(&ada, "custom.tier"), text("gold"));
    assert_eq!(value(&ada, "custom.partner"), Value::Ref(company));
    assert_eq!(value(&ada, "custom.billing"), text("Pay@example.com"));
    assert_eq!(s.get(Contact, ada.id()).unwrap(), ada);

    // A bad custom value on update is refused and leaves the record as it was.
    let res = s.execute(
        Command::Update {
            kind: Contact,
            id: ada.id(),
            input: custom_input(&[], &[("tier", text("platinum"))]),
        },
        ACTOR,
    );
    assert_invalid(res, "custom.tier");
    assert_eq!(s.get(Contact, ada.id()).unwrap(), ada);

    // Definitions themselves are checked.
    let msg = assert_conflict(
        define(s, Contact, field_def("tier", FieldType::Text)),
        "name",
    );
    assert!(msg.contains("already has a custom field 'tier'"), "{msg}");
    assert_invalid(
        define(s, Contact, field_def("level", FieldType::Choice)),
        "options",
    );
    assert_invalid(
        define(s, Contact, field_def("owner_ref", FieldType::Reference)),
        "reference_kind",
    );
    assert_invalid(
        define(s, Contact, field_def("email", FieldType::Text)),
        "name",
    );
    assert_consistent(s);
}

#[test]
fn required_custom_field_is_enforced_on_create_and_update() {
    let fx = Fixture::new();
    let s = &fx.store;
    define(
        s,
        Company,
        NewFieldDef {
            required: true,
            ..field_def("account_no", FieldType::Text)
        },
    )
    .unwrap();
    let msg = assert_invalid(
        create(s, Company, &[("name", text("Acme"))]),
        "custom.account_no",
    );
    assert_eq!(msg, "is required");
    let create_with = |v: Value| {
        s.execute(
            Command::Create {
                kind: Company,
                input: custom_input(&[("name", text("Acme"))], &[("account_no", v)]),
            },
            ACTOR,
        )
        .map(record)
    };
    assert_invalid(create_with(text("  ")), "custom.account_no");
    let acme = create_with(text("A-1")).unwrap();
    let clear = s.execute(
        Command::Update {
            kind: Company,
            id: acme.id(),
            input: custom_input(&[], &[("account_no", Value::Null)]),
        },
        ACTOR,
    );
    assert_invalid(clear, "custom.account_no");
    assert_eq!(
        value(&s.get(Company, acme.id()).unwrap(), "custom.account_no"),
        text("A-1")
    );
}

// ---------------------------------------------------------------------------------------
// 2. Unique contact emails
// ---------------------------------------------------------------------------------------

#[test]
fn contact_email_is_unique_case_insensitively() {
    let fx = Fixture::new();
    let s = &fx.store;
    let ada = create(s, Contact, &[("email", text("ada@example.com"))]).unwrap();
    let msg = assert_conflict(
        create(s, Contact, &[("email", text("ADA@Example.COM"))]),
        "email",
    );
    assert!(
        msg.contains(&ada.id().to_string()),
        "the message names the holder: {msg}"
    );

    // Updating another contact to a taken email is a conflict too.
    let bob = create(s, Contact, &[("email", text("bob@example.com"))]).unwrap();
    assert_conflict(
        update(s, Contact, bob.id(), &[("email", text("Ada@example.com"))]),
        "email",
    );
    assert_eq!(s.get(Contact, bob.id()).unwrap(), bob);
    // Changing only the case of one's own email is fine.
    let ada2 = update(s, Contact, ada.id(), &[("email", text("Ada@example.com"))]).unwrap();
    assert_eq!(value(&ada2, "email"), text("Ada@example.com"));

    // Once the holder is gone, the email is free again.
    delete(s, Contact, ada.id()).unwrap();
    let again = create(s, Contact, &[("email", text("ada@EXAMPLE.com"))]).unwrap();
    let found = list_ids(s, Contact, query(vec![eq("email", "ADA@example.com")]));
    assert_eq!(found, vec![again.id()]);
    // An email given up by an update is free too.
    update(
        s,
        Contact,
        bob.id(),
        &[("email", text("robert@example.com"))],
    )
    .unwrap();
    create(s, Contact, &[("email", text("bob@example.com"))]).unwrap();
    assert_consistent(s);
}

// ---------------------------------------------------------------------------------------
// 3. Model-based index consistency
// ---------------------------------------------------------------------------------------

const STAGES: [&str; 6] = [
    "lead",
    "qualified",
    "proposal",
    "negotiation",
    "won",
    "lost",
];
const TICKET_STATUSES: [&str; 4] = ["open", "pending", "resolved", "closed"];
const ASSIGNEES: [&str; 4] = ["alice", "Bob", "carol", "DAVE"];
const EMAILS: usize = 12;

fn deal_status(stage: &str) -> &'static str {
    match stage {
        "won" => "won",
        "lost" => "lost",
        _ => "open",
    }
}

/// The four links of an interaction or task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Links {
    contact: Option<Id>,
    company: Option<Id>,
    deal: Option<Id>,
    ticket: Option<Id>,
}

impl Links {
    /// In the order the store checks them.
    fn slots(&self) -> [(&'static str, EntityKind, Option<Id>); 4] {
        [
            ("contact_id", Contact, self.contact),
            ("company_id", Company, self.company),
            ("deal_id", Deal, self.deal),
            ("ticket_id", Ticket, self.ticket),
        ]
    }

    fn clear(&mut self, target: Id) {
        for slot in [
            &mut self.contact,
            &mut self.company,
            &mut self.deal,
            &mut self.ticket,
        ] {
            if *slot == Some(target) {
                *slot = None;
            }
        }
    }

    fn fields(&self) -> Vec<(&'static str, Value)> {
        self.slots()
            .iter()
            .map(|(f, _, id)| (*f, opt_ref(*id)))
            .collect()
    }
}

/// What the model keeps of each record: the fields that are indexed or referenced.
#[derive(Debug, Clone, PartialEq)]
enum MRec {
    Company {
        name: String,
    },
    Contact {
        email: Option<String>,
        company: Option<Id>,
    },
    Deal {
        stage: String,
        company: Option<Id>,
        contacts: Vec<Id>,
    },
    Ticket {
        status: &'static str,
        assignee: Option<&'static str>,
        requester: Option<Id>,
        company: Option<Id>,
    },
    Task {
        links: Links,
        due: Option<Timestamp>,
        assignee: Option<&'static str>,
    },
    Interaction {
        links: Links,
        /// `None` only in input: the store fills in the current time.
        occurred: Option<Timestamp>,
    },
}

impl MRec {
    fn kind(&self) -> EntityKind {
        match self {
            MRec::Company { .. } => Company,
            MRec::Contact { .. } => Contact,
            MRec::Deal { .. } => Deal,
            MRec::Ticket { .. } => Ticket,
            MRec::Task { .. } => Task,
            MRec::Interaction { .. } => Interaction,
        }
    }

    /// References in the order the store checks them.
    fn refs(&self) -> Vec<(&'static str, EntityKind, Id)> {
        let mut out = Vec::new();
        let mut push = |f, k, id: Option<Id>| {
            if let Some(id) = id {
                out.push((f, k, id));
            }
        };
        match self {
            MRec::Company { .. } => {}
            MRec::Contact { company, .. } => push("company_id", Company, *company),
            MRec::Deal {
                company, contacts, ..
            } => {
                push("company_id", Company, *company);
                for c in contacts {
                    push("contact_ids", Contact, Some(*c));
                }
            }
            MRec::Ticket {
                requester, company, ..
            } => {
                push("requester_id", Contact, *requester);
                push("company_id", Company, *company);
            }
            MRec::Task { links, .. } | MRec::Interaction { links, .. } => {
                for (f, k, id) in links.slots() {
                    push(f, k, id);
                }
            }
        }
        out
    }

    fn clear(&mut self, target: Id) {
        let clear = |slot: &mut Option<Id>| {
            if *slot == Some(target) {
                *slot = None;
            }
        };
        match self {
            MRec::Company { .. } => {}
            MRec::Contact { company, .. } => clear(company),
            MRec::Deal {
                company, contacts, ..
            } => {
                clear(company);
                contacts.retain(|c| *c != target);
            }
            MRec::Ticket {
                requester, company, ..
            } => {
                clear(requester);
                clear(company);
            }
            MRec::Task { links, .. } | MRec::Interaction { links, .. } => links.clear(target),
        }
    }

    /// Fills in what the store derives from the clock: an interaction without a time
    /// happened now.
    fn settle(&mut self, now: Timestamp) {
        if let MRec::Interaction { occurred, .. } = self {
            occurred.get_or_insert(now);
        }
    }

    /// An interaction or task linked to nothing.
    fn orphaned(&self) -> bool {
        matches!(self, MRec::Task { .. } | MRec::Interaction { .. }) && self.refs().is_empty()
    }

    /// The tracked fields as input.
    fn fields(&self) -> Vec<(&'static str, Value)> {
        match self {
            MRec::Company { name } => vec![("name", text(name))],
            MRec::Contact { email, company } => vec![
                ("email", opt_text(email.as_deref())),
                ("company_id", opt_ref(*company)),
            ],
            MRec::Deal {
                stage,
                company,
                contacts,
            } => vec![
                ("stage", text(stage)),
                ("company_id", opt_ref(*company)),
                (
                    "contact_ids",
                    Value::List(contacts.iter().copied().map(Value::Ref).collect()),
                ),
            ],
            MRec::Ticket {
                status,
                assignee,
                requester,
                company,
            } => vec![
                ("status", text(status)),
                ("assignee", opt_text(*assignee)),
                ("requester_id", opt_ref(*requester)),
                ("company_id", opt_ref(*company)),
            ],
            MRec::Task {
                links,
                due,
                assignee,
            } => {
                let mut f = links.fields();
                f.push(("due_at", due.map_or(Value::Null, Value::DateTime)));
                f.push(("assignee", opt_text(*assignee)));
                f
            }
            MRec::Interaction { links, occurred } => {
                let mut f = links.fields();
                f.push(("occurred_at", occurred.map_or(Value::Null, Value::DateTime)));
                f
            }
        }
    }

    /// The input of a create: the tracked fields plus what the kind requires.
    fn create_fields(&self, n: usize) -> Vec<(&'static str, Value)> {
        let mut f = self.fields();
        match self.kind() {
            Contact => f.push(("first_name", text(&format!("Person {n}")))),
            Deal => f.push(("title", text(&format!("Deal {n}")))),
            Ticket => f.push(("subject", text(&format!("Ticket {n}")))),
            Task => f.push(("title", text(&format!("Task {n}")))),
            Interaction => f.push(("kind", text("call"))),
            Company => {}
        }
        f
    }

    /// What `get` must return for the tracked fields, derived ones included.
    fn expected(&self) -> Vec<(&'static str, Value)> {
        let mut f = self.fields();
        if let MRec::Deal { stage, .. } = self {
            f.push(("status", text(deal_status(stage))));
        }
        f
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Ok,
    NotFound,
    Conflict(String),
    Invalid(String),
}

fn outcome_of(res: &Result<Outcome, Error>) -> Expect {
    match res {
        Ok(_) => Expect::Ok,
        Err(Error::NotFound { .. }) => Expect::NotFound,
        Err(Error::Conflict { field, .. }) => Expect::Conflict(field.clone()),
        Err(Error::Invalid(e)) => Expect::Invalid(e.field.clone()),
        Err(e) => panic!("unexpected error: {e:?}"),
    }
}

#[derive(Default)]
struct Model {
    recs: BTreeMap<Id, MRec>,
    /// The sequence number of the last event the store should have written.
    seq: u64,
    dead: Vec<Id>,
}

impl Model {
    fn live(&self, kind: EntityKind) -> Vec<Id> {
        self.recs
            .iter()
            .filter(|(_, r)| r.kind() == kind)
            .map(|(id, _)| *id)
            .collect()
    }

    fn exists(&self, kind: EntityKind, id: Id) -> bool {
        self.recs.get(&id).is_some_and(|r| r.kind() == kind)
    }

    /// What the store must answer to writing `rec` (as record `id` when updating).
    fn verdict(&self, id: Option<Id>, rec: &MRec) -> Expect {
        if let MRec::Deal { stage, .. } = rec
            && !STAGES.contains(&stage.as_str())
        {
            return Expect::Invalid("stage".to_owned());
        }
        if rec.orphaned() {
            return Expect::Invalid("contact_id".to_owned());
        }
        for (field, kind, target) in rec.refs() {
            if !self.exists(kind, target) {
                return Expect::Invalid(field.to_owned());
            }
        }
        if let MRec::Contact {
            email: Some(email), ..
        } = rec
        {
            let taken = self.recs.iter().any(|(other, r)| {
                Some(*other) != id
                    && matches!(r, MRec::Contact { email: Some(e), .. } if e.eq_ignore_ascii_case(email))
            });
            if taken {
                return Expect::Conflict("email".to_owned());
            }
        }
        Expect::Ok
    }

    /// Deletes like the store: references to `id` are cleared (one event each) and
    /// interactions and tasks left linked to nothing are deleted (one event each).
    fn delete(&mut self, id: Id) {
        self.recs.remove(&id);
        self.dead.push(id);
        self.seq += 1;
        let referrers: Vec<Id> = self
            .recs
            .iter()
            .filter(|(_, r)| r.refs().iter().any(|(_, _, t)| *t == id))
            .map(|(rid, _)| *rid)
            .collect();
        for rid in referrers {
            self.seq += 1;
            let rec = self.recs.get_mut(&rid).unwrap();
            rec.clear(id);
            if rec.orphaned() {
                self.recs.remove(&rid);
                self.dead.push(rid);
            }
        }
    }

    /// An id that names no live record: a deleted one or a made-up one.
    fn dangling(&self, rng: &mut StdRng) -> Id {
        match self.dead.choose(rng) {
            Some(id) if rng.random_bool(0.5) => *id,
            _ => Id::from_u128(rng.random()),
        }
    }

    /// Mostly a live record of `kind`, sometimes a dangling id, `None` when there is none.
    fn pick(&self, rng: &mut StdRng, kind: EntityKind) -> Option<Id> {
        if rng.random_bool(0.03) {
            return Some(self.dangling(rng));
        }
        self.live(kind).choose(rng).copied()
    }

    fn maybe(&self, rng: &mut StdRng, p: f64, kind: EntityKind) -> Option<Id> {
        if rng.random_bool(p) {
            self.pick(rng, kind)
        } else {
            None
        }
    }

    fn random_links(&self, rng: &mut StdRng) -> Links {
        Links {
            contact: self.maybe(rng, 0.45, Contact),
            company: self.maybe(rng, 0.35, Company),
            deal: self.maybe(rng, 0.3, Deal),
            ticket: self.maybe(rng, 0.25, Ticket),
        }
    }

    fn random_rec(&self, rng: &mut StdRng, kind: EntityKind, now: Timestamp) -> MRec {
        match kind {
            Company => MRec::Company {
                name: format!("Company {}", rng.random_range(0..50)),
            },
            Contact => {
                let email = if rng.random_bool(0.8) {
                    let n = rng.random_range(0..EMAILS);
                    let local = if rng.random_bool(0.3) {
                        format!("User{n}")
                    } else {
                        format!("user{n}")
                    };
                    Some(format!("{local}@example.com"))
                } else {
                    None
                };
                MRec::Contact {
                    email,
                    company: self.maybe(rng, 0.5, Company),
                }
            }
            Deal => {
                let stage = if rng.random_bool(0.03) {
                    "closing".to_owned()
                } else {
                    (*STAGES.choose(rng).unwrap()).to_owned()
                };
                let mut contacts = Vec::new();
                for _ in 0..rng.random_range(0..3) {
                    if let Some(c) = self.pick(rng, Contact)
                        && !contacts.contains(&c)
                    {
                        contacts.push(c);
                    }
                }
                MRec::Deal {
                    stage,
                    company: self.maybe(rng, 0.5, Company),
                    contacts,
                }
            }
            Ticket => MRec::Ticket {
                status: TICKET_STATUSES.choose(rng).unwrap(),
                assignee: if rng.random_bool(0.7) {
                    ASSIGNEES.choose(rng).copied()
                } else {
                    None
                },
                requester: self.maybe(rng, 0.6, Contact),
                company: self.maybe(rng, 0.4, Company),
            },
            Task => MRec::Task {
                links: self.random_links(rng),
                due: rng
                    .random_bool(0.6)
                    .then(|| now + Duration::minutes(rng.random_range(-600..6000))),
                assignee: if rng.random_bool(0.5) {
                    ASSIGNEES.choose(rng).copied()
                } else {
                    None
                },
            },
            Interaction => MRec::Interaction {
                links: self.random_links(rng),
                occurred: rng
                    .random_bool(0.5)
                    .then(|| now - Duration::minutes(rng.random_range(0..100_000))),
            },
        }
    }

    /// `old` with each tracked field replaced by a random value half of the time.
    fn mutate(&self, rng: &mut StdRng, old: &MRec, now: Timestamp) -> MRec {
        fn either<T: Clone>(rng: &mut StdRng, old: &T, new: T) -> T {
            if rng.random_bool(0.5) {
                new
            } else {
                old.clone()
            }
        }
        let new = self.random_rec(rng, old.kind(), now);
        match (old, new) {
            (MRec::Company { name: a }, MRec::Company { name: b }) => MRec::Company {
                name: either(rng, a, b),
            },
            (
                MRec::Contact {
                    email: e1,
                    company: c1,
                },
                MRec::Contact {
                    email: e2,
                    company: c2,
                },
            ) => MRec::Contact {
                email: either(rng, e1, e2),
                company: either(rng, c1, c2),
            },
            (
                MRec::Deal {
                    stage: s1,
                    company: c1,
                    contacts: k1,
                },
                MRec::Deal {
                    stage: s2,
                    company: c2,
                    contacts: k2,
                },
            ) => MRec::Deal {
                stage: either(rng, s1, s2),
                company: either(rng, c1, c2),
                contacts: either(rng, k1, k2),
            },
            (
                MRec::Ticket {
                    status: s1,
                    assignee: a1,
                    requester: r1,
                    company: c1,
                },
                MRec::Ticket {
                    status: s2,
                    assignee: a2,
                    requester: r2,
                    company: c2,
                },
            ) => MRec::Ticket {
                status: either(rng, s1, s2),
                assignee: either(rng, a1, a2),
                requester: either(rng, r1, r2),
                company: either(rng, c1, c2),
            },
            (
                MRec::Task {
                    links: l1,
                    due: d1,
                    assignee: a1,
                },
                MRec::Task {
                    links: l2,
                    due: d2,
                    assignee: a2,
                },
            ) => MRec::Task {
                links: mix_links(rng, l1, l2),
                due: either(rng, d1, d2),
                assignee: either(rng, a1, a2),
            },
            (
                MRec::Interaction {
                    links: l1,
                    occurred: o1,
                },
                MRec::Interaction {
                    links: l2,
                    occurred: o2,
                },
            ) => MRec::Interaction {
                links: mix_links(rng, l1, l2),
                occurred: if rng.random_bool(0.2) { o2 } else { *o1 },
            },
            (old, new) => panic!("kinds differ: {old:?} {new:?}"),
        }
    }
}

fn mix_links(rng: &mut StdRng, old: &Links, new: Links) -> Links {
    let mut pick = |a: Option<Id>, b: Option<Id>| if rng.random_bool(0.3) { b } else { a };
    Links {
        contact: pick(old.contact, new.contact),
        company: pick(old.company, new.company),
        deal: pick(old.deal, new.deal),
        ticket: pick(old.ticket, new.ticket),
    }
}

/// Applies one random operation to the store and the model and checks they agree.
fn random_step(
    store: &Store,
    model: &mut Model,
    rng: &mut StdRng,
    now: Timestamp,
    n: usize,
) -> Expect {
    let kinds = [
        Company,
        Contact,
        Contact,
        Contact,
        Deal,
        Deal,
        Ticket,
        Ticket,
        Task,
        Task,
        Interaction,
        Interaction,
    ];
    let kind = *kinds.choose(rng).unwrap();
    let roll = rng.random_range(0..100);
    if roll < 45 {
        let mut rec = model.random_rec(rng, kind, now);
        let cmd = create_cmd(kind, &rec.create_fields(n));
        rec.settle(now);
        let expect = model.verdict(None, &rec);
        let res = store.execute(cmd, ACTOR);
        assert_eq!(outcome_of(&res), expect, "op {n}: create {rec:?}");
        if let Ok(o) = res {
            model.recs.insert(record(o).id(), rec);
            model.seq += 1;
        }
        return expect;
    }
    let live = model.live(kind);
    let target = match live.choose(rng) {
        Some(id) if rng.random_bool(0.9) => Some(*id),
        _ => None,
    };
    let id = target.unwrap_or_else(|| model.dangling(rng));
    if roll < 82 {
        let old = target.map(|id| model.recs[&id].clone());
        let mut new = match &old {
            Some(o) => model.mutate(rng, o, now),
            None => model.random_rec(rng, kind, now),
        };
        let cmd = Command::Update {
            kind,
            id,
            input: input(&new.fields()),
        };
        new.settle(now);
        let expect = match old {
            Some(_) => model.verdict(Some(id), &new),
            None => Expect::NotFound,
        };
        let res = store.execute(cmd, ACTOR);
        assert_eq!(
            outcome_of(&res),
            expect,
            "op {n}: update {kind} {id} from {old:?} to {new:?}"
        );
        if res.is_ok() {
            if old.as_ref() != Some(&new) {
                model.seq += 1;
            }
            model.recs.insert(id, new);
        }
        expect
    } else {
        let expect = if target.is_some() {
            Expect::Ok
        } else {
            Expect::NotFound
        };
        let res = store.execute(Command::Delete { kind, id }, ACTOR);
        assert_eq!(outcome_of(&res), expect, "op {n}: delete {kind} {id}");
        if res.is_ok() {
            model.delete(id);
        }
        expect
    }
}

/// Whether a model record's tracked `field` equals `want` the way an `eq` filter compares.
fn model_matches(rec: &MRec, field: &str, want: &str) -> bool {
    fn matches(v: &Value, want: &str) -> bool {
        match v {
            Value::Null => false,
            Value::List(items) => items.iter().any(|i| matches(i, want)),
            Value::Text(s) => s.eq_ignore_ascii_case(want),
            other => other.to_string() == want,
        }
    }
    rec.expected()
        .iter()
        .any(|(f, v)| *f == field && matches(v, want))
}

fn check_filter(store: &Store, model: &Model, kind: EntityKind, f: &Filter) {
    let wants: Vec<&str> = match f.op {
        FilterOp::In => f.value.split(',').collect(),
        _ => vec![f.value.as_str()],
    };
    let want: BTreeSet<Id> = model
        .recs
        .iter()
        .filter(|(_, r)| r.kind() == kind && wants.iter().any(|w| model_matches(r, &f.field, w)))
        .map(|(id, _)| *id)
        .collect();
    let q = Query {
        filters: vec![f.clone()],
        limit: 3,
        ..Query::default()
    };
    let got = list_ids(store, kind, q.clone());
    let got_set: BTreeSet<Id> = got.iter().copied().collect();
    assert_eq!(
        got.len(),
        got_set.len(),
        "{kind} {f:?} listed a record twice"
    );
    assert_eq!(got_set, want, "{kind} {f:?}");
    assert_eq!(
        store.count(kind, &q).unwrap(),
        count(want.len()),
        "count {kind} {f:?}"
    );
}

/// The linked records on a timeline are exactly the model's referrers, at their times.
fn check_timeline(store: &Store, model: &Model, kind: EntityKind, id: Id) {
    let page = store.timeline(kind, id, 1_000, None).unwrap();
    assert_eq!(page.next_cursor, None);
    assert!(
        page.items.windows(2).all(|w| w[0].at >= w[1].at),
        "{kind} {id} timeline order"
    );
    let got: BTreeSet<(String, Id)> = page
        .items
        .iter()
        .filter(|i| i.item_type != "change")
        .map(|i| (i.item_type.clone(), i.id))
        .collect();
    let want: BTreeSet<(String, Id)> = model
        .recs
        .iter()
        .filter(|(_, r)| r.kind() != Contact && r.refs().iter().any(|(_, _, t)| *t == id))
        .map(|(rid, r)| (r.kind().name().to_owned(), *rid))
        .collect();
    assert_eq!(got, want, "{kind} {id} timeline");
    for item in &page.items {
        if let Some(MRec::Interaction { occurred, .. }) = model.recs.get(&item.id) {
            assert_eq!(
                Some(item.at),
                *occurred,
                "interaction {} on the timeline",
                item.id
            );
        }
    }
}

/// Compares everything the store says with the model.
fn check_against_model(store: &Store, model: &Model) {
    assert_consistent(store);
    assert_eq!(store.last_event_seq().unwrap(), model.seq);
    let counts: Vec<(EntityKind, u64)> = EntityKind::ALL
        .into_iter()
        .map(|k| (k, count(model.live(k).len())))
        .collect();
    assert_eq!(store.counts().unwrap(), counts);
    for (id, rec) in &model.recs {
        let got = store.get(rec.kind(), *id).unwrap();
        for (field, want) in rec.expected() {
            assert_eq!(
                value(&got, field),
                want,
                "{} {id} field {field}",
                rec.kind()
            );
        }
    }
    for id in &model.dead {
        for kind in EntityKind::ALL {
            assert!(
                matches!(store.get(kind, *id), Err(Error::NotFound { .. })),
                "deleted {id} still readable as {kind}"
            );
        }
    }
    for kind in EntityKind::ALL {
        let all = list_ids(store, kind, Query::default());
        let live: BTreeSet<Id> = model.live(kind).into_iter().collect();
        assert_eq!(all.len(), live.len(), "{kind} list length");
        assert_eq!(
            all.into_iter().collect::<BTreeSet<_>>(),
            live,
            "{kind} list"
        );
    }

    for kind in [Contact, Company, Deal, Ticket] {
        for id in model.live(kind).into_iter().take(5) {
            check_timeline(store, model, kind, id);
        }
    }

    let mut checks: Vec<(EntityKind, Filter)> = Vec::new();
    for n in 0..EMAILS {
        checks.push((Contact, eq("email", &format!("USER{n}@Example.com"))));
    }
    let mut companies: Vec<String> = model
        .live(Company)
        .iter()
        .take(6)
        .map(Id::to_string)
        .collect();
    companies.push(Id::from_u128(99).to_string());
    for c in &companies {
        for kind in [Contact, Deal, Ticket, Task, Interaction] {
            checks.push((kind, eq("company_id", c)));
        }
    }
    for stage in STAGES {
        checks.push((Deal, eq("stage", stage)));
    }
    for status in ["open", "won", "lost"] {
        checks.push((Deal, eq("status", status)));
    }
    checks.push((Deal, filter("stage", FilterOp::In, "won,lost")));
    for c in model.live(Contact).iter().take(6).map(Id::to_string) {
        checks.push((Deal, eq("contact_ids", &c)));
        checks.push((Ticket, eq("requester_id", &c)));
        checks.push((Task, eq("contact_id", &c)));
        checks.push((Interaction, eq("contact_id", &c)));
    }
    for status in TICKET_STATUSES {
        checks.push((Ticket, eq("status", status)));
    }
    for a in ASSIGNEES {
        checks.push((Ticket, eq("assignee", &a.to_lowercase())));
        checks.push((Task, eq("assignee", &a.to_uppercase())));
    }
    for d in model.live(Deal).iter().take(4).map(Id::to_string) {
        checks.push((Task, eq("deal_id", &d)));
        checks.push((Interaction, eq("deal_id", &d)));
    }
    for t in model.live(Ticket).iter().take(4).map(Id::to_string) {
        checks.push((Task, eq("ticket_id", &t)));
        checks.push((Interaction, eq("ticket_id", &t)));
    }
    for (kind, f) in &checks {
        check_filter(store, model, *kind, f);
    }
}

#[test]
fn random_operations_keep_indexes_consistent_with_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let mut store = open_store(dir.path(), &clock, 64).unwrap();
    let mut rng = StdRng::seed_from_u64(0x6b69_7468);
    let mut model = Model::default();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for n in 0..2_000 {
        clock.advance(Duration::milliseconds(rng.random_range(1..5_000)));
        let seq = model.seq;
        let outcome = random_step(&store, &mut model, &mut rng, clock.now(), n);
        assert_eq!(
            store.last_event_seq().unwrap(),
            model.seq,
            "events after op {n}"
        );
        let label = match (outcome, model.seq - seq) {
            (Expect::Ok, 0) => "unchanged".to_owned(),
            (Expect::Ok, 1) => "written".to_owned(),
            (Expect::Ok, _) => "cascaded".to_owned(),
            (other, _) => format!("{other:?}"),
        };
        *tally.entry(label).or_default() += 1;
        if n % 400 == 399 {
            check_against_model(&store, &model);
        }
        if n == 1_000 {
            check_against_model(&store, &model);
            store.close();
            drop(store);
            store = open_store(dir.path(), &clock, 64).unwrap();
            check_against_model(&store, &model);
        }
    }
    check_against_model(&store, &model);
    // The run exercised what it is meant to.
    for (label, at_least) in [
        ("written", 800),
        ("cascaded", 50),
        ("unchanged", 10),
        ("NotFound", 50),
        ("Conflict(\"email\")", 20),
        ("Invalid(\"contact_id\")", 5),
        ("Invalid(\"company_id\")", 5),
        ("Invalid(\"stage\")", 5),
    ] {
        let n = tally.get(label).copied().unwrap_or(0);
        assert!(
            n >= at_least,
            "only {n} operations ended {label}: {tally:?}"
        );
    }
    assert!(model.live(Contact).len() > 20 && model.live(Task).len() > 20);
    store.close();
}

// ---------------------------------------------------------------------------------------
// 4. Cascading deletes
// ---------------------------------------------------------------------------------------

#[test]
fn deleting_a_company_clears_references_and_deletes_orphans() {
    let fx = Fixture::new();
    let s = &fx.store;
    let name = |n: &str| [("name", text(n))];
    let acme = create(s, Company, &name("Acme")).unwrap().id();
    let globex = create(s, Company, &name("Globex")).unwrap().id();
    let ada = create(
        s,
        Contact,
        &[
            ("first_name", text("Ada")),
            ("company_id", Value::Ref(acme)),
        ],
    )
    .unwrap()
    .id();
    let bob = create(
        s,
        Contact,
        &[
            ("first_name", text("Bob")),
            ("company_id", Value::Ref(globex)),
        ],
    )
    .unwrap()
    .id();
    let deal = create(
        s,
        Deal,
        &[
            ("title", text("Pilot")),
            ("stage", text("proposal")),
            ("company_id", Value::Ref(acme)),
            ("contact_ids", Value::List(vec![Value::Ref(ada)])),
        ],
    )
    .unwrap()
    .id();
    let ticket = create(
        s,
        Ticket,
        &[
            ("subject", text("Broken")),
            ("company_id", Value::Ref(acme)),
            ("requester_id", Value::Ref(bob)),
        ],
    )
    .unwrap()
    .id();
    let note_only = create(
        s,
        Interaction,
        &[("kind", text("note")), ("company_id", Value::Ref(acme))],
    )
    .unwrap()
    .id();
    let task_only = create(
        s,
        Task,
        &[("title", text("Visit")), ("company_id", Value::Ref(acme))],
    )
    .unwrap()
    .id();
    let call_both = create(
        s,
        Interaction,
        &[
            ("kind", text("call")),
            ("company_id", Value::Ref(acme)),
            ("contact_id", Value::Ref(ada)),
        ],
    )
    .unwrap()
    .id();
    let task_both = create(
        s,
        Task,
        &[
            ("title", text("Quote")),
            ("company_id", Value::Ref(acme)),
            ("deal_id", Value::Ref(deal)),
        ],
    )
    .unwrap()
    .id();
    let task_other = create(
        s,
        Task,
        &[("title", text("Call")), ("company_id", Value::Ref(globex))],
    )
    .unwrap()
    .id();
    let before = s.last_event_seq().unwrap();

    assert_eq!(delete(s, Company, acme).unwrap(), Outcome::Deleted);

    let events = s.events(before, 100).unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (before + 1..=before + 8).collect::<Vec<_>>());
    let mut deleted: Vec<Id> = Vec::new();
    let mut updated: Vec<Id> = Vec::new();
    for e in &events {
        match e.op {
            Operation::Deleted => deleted.push(e.id),
            Operation::Updated => {
                assert_eq!(
                    e.changes,
                    vec![FieldChange {
                        field: "company_id".to_owned(),
                        before: Value::Ref(acme),
                        after: Value::Null,
                    }],
                    "update of {} {}",
                    e.kind,
                    e.id
                );
                updated.push(e.id);
            }
            Operation::Created => panic!("a delete created {e:?}"),
        }
        assert_eq!(e.actor, ACTOR);
    }
    deleted.sort();
    updated.sort();
    let mut want_deleted = vec![acme, note_only, task_only];
    let mut want_updated = vec![ada, deal, ticket, call_both, task_both];
    want_deleted.sort();
    want_updated.sort();
    assert_eq!(deleted, want_deleted);
    assert_eq!(updated, want_updated);

    for (kind, id) in [(Company, acme), (Interaction, note_only), (Task, task_only)] {
        assert!(
            matches!(s.get(kind, id), Err(Error::NotFound { .. })),
            "{kind} {id} survived"
        );
    }
    let get = |kind, id| s.get(kind, id).unwrap();
    assert_eq!(value(&get(Contact, ada), "company_id"), Value::Null);
    assert_eq!(value(&get(Contact, bob), "company_id"), Value::Ref(globex));
    let d = get(Deal, deal);
    assert_eq!(value(&d, "company_id"), Value::Null);
    assert_eq!(value(&d, "contact_ids"), Value::List(vec![Value::Ref(ada)]));
    assert_eq!(value(&get(Ticket, ticket), "requester_id"), Value::Ref(bob));
    assert_eq!(
        value(&get(Interaction, call_both), "contact_id"),
        Value::Ref(ada)
    );
    assert_eq!(value(&get(Task, task_both), "deal_id"), Value::Ref(deal));
    assert_eq!(
        value(&get(Task, task_other), "company_id"),
        Value::Ref(globex)
    );
    assert_eq!(
        s.counts().unwrap(),
        vec![
            (Contact, 2),
            (Company, 1),
            (Deal, 1),
            (Ticket, 1),
            (Interaction, 1),
            (Task, 2)
        ]
    );
    assert!(list_ids(s, Deal, query(vec![eq("company_id", &acme.to_string())])).is_empty());
    assert_consistent(s);

    // The deleted company can no longer be referred to.
    assert_invalid(
        create(
            s,
            Contact,
            &[("first_name", text("Cy")), ("company_id", Value::Ref(acme))],
        ),
        "company_id",
    );
}

#[test]
fn deleting_a_contact_removes_it_from_deals_tickets_and_links() {
    let fx = Fixture::new();
    let s = &fx.store;
    let ada = create(s, Contact, &[("first_name", text("Ada"))])
        .unwrap()
        .id();
    let bob = create(s, Contact, &[("first_name", text("Bob"))])
        .unwrap()
        .id();
    let deal = create(
        s,
        Deal,
        &[
            ("title", text("Pilot")),
            ("stage", text("won")),
            (
                "contact_ids",
                Value::List(vec![Value::Ref(ada), Value::Ref(bob)]),
            ),
        ],
    )
    .unwrap()
    .id();
    let ticket = create(
        s,
        Ticket,
        &[("subject", text("Help")), ("requester_id", Value::Ref(ada))],
    )
    .unwrap()
    .id();
    let call = create(
        s,
        Interaction,
        &[("kind", text("call")), ("contact_id", Value::Ref(ada))],
    )
    .unwrap()
    .id();
    let followup = create(
        s,
        Task,
        &[
            ("title", text("Follow up")),
            ("contact_id", Value::Ref(ada)),
            ("ticket_id", Value::Ref(ticket)),
        ],
    )
    .unwrap()
    .id();
    delete(s, Contact, ada).unwrap();
    assert_eq!(
        value(&s.get(Deal, deal).unwrap(), "contact_ids"),
        Value::List(vec![Value::Ref(bob)])
    );
    assert_eq!(
        value(&s.get(Ticket, ticket).unwrap(), "requester_id"),
        Value::Null
    );
    assert!(matches!(
        s.get(Interaction, call),
        Err(Error::NotFound { .. })
    ));
    let t = s.get(Task, followup).unwrap();
    assert_eq!(value(&t, "contact_id"), Value::Null);
    assert_eq!(value(&t, "ticket_id"), Value::Ref(ticket));
    // Deleting the ticket now orphans the task.
    delete(s, Ticket, ticket).unwrap();
    assert!(matches!(s.get(Task, followup), Err(Error::NotFound { .. })));
    assert_consistent(s);
}

// ---------------------------------------------------------------------------------------
// 5. Group commit
// ---------------------------------------------------------------------------------------

/// 50 valid contacts with a bad email at position 20 and a duplicate (of position 3, in
/// another case) at position 36, and what each must answer.
fn batch_with_two_bad_commands() -> Vec<(Command, Expect)> {
    let mut out: Vec<(Command, Expect)> = (0..50)
        .map(|i| {
            let cmd = create_cmd(Contact, &[("email", text(&format!("c{i}@example.com")))]);
            (cmd, Expect::Ok)
        })
        .collect();
    out.insert(
        20,
        (
            create_cmd(
                Contact,
                &[("first_name", text("Bad")), ("email", text("c-bad@"))],
            ),
            Expect::Invalid("email".to_owned()),
        ),
    );
    out.insert(
        36,
        (
            create_cmd(Contact, &[("email", text("C3@Example.COM"))]),
            Expect::Conflict("email".to_owned()),
        ),
    );
    out
}

fn check_batch_results(
    store: &Store,
    expects: &[Expect],
    results: Vec<Result<Outcome, Error>>,
    first_seq: u64,
) {
    assert_eq!(results.len(), expects.len());
    let mut ok_ids = Vec::new();
    for (i, (res, want)) in results.into_iter().zip(expects).enumerate() {
        assert_eq!(&outcome_of(&res), want, "command {i}");
        if let Ok(o) = res {
            ok_ids.push(record(o).id());
        }
    }
    assert_eq!(ok_ids.len(), 50);
    for id in &ok_ids {
        store.get(Contact, *id).unwrap();
    }
    let events = store.events(first_seq - 1, 10_000).unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (first_seq..first_seq + 50).collect::<Vec<_>>());
    let event_ids: Vec<Id> = events.iter().map(|e| e.id).collect();
    assert_eq!(event_ids, ok_ids, "events follow submission order");
    assert!(events.iter().all(|e| e.op == Operation::Created));
    assert_consistent(store);
}

#[test]
fn execute_all_fails_only_the_invalid_commands() {
    let fx = Fixture::with_batch(4096);
    let (cmds, expects): (Vec<Command>, Vec<Expect>) =
        batch_with_two_bad_commands().into_iter().unzip();
    let results = fx.store.execute_all(cmds, ACTOR);
    check_batch_results(&fx.store, &expects, results, 1);
    assert_eq!(fx.store.counts().unwrap()[0], (Contact, 50));
    assert_eq!(fx.store.last_event_seq().unwrap(), 50);
}

#[test]
fn invalid_commands_inside_one_batch_fail_alone() {
    let fx = Fixture::with_batch(4096);
    let s = &fx.store;
    // Park the writer inside the write of a first command (a company, which a gate hook holds
    // up), so everything queued meanwhile lands in the next batch, all together.
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    s.set_write_hook(Some(Arc::new(Gate {
        entered: Mutex::new(entered_tx),
        release: Mutex::new(release_rx),
    })));
    s.submit(
        create_cmd(Company, &[("name", text("Gate"))]),
        ACTOR,
        Box::new(|r| assert!(r.is_ok(), "the gate command failed: {r:?}")),
    );
    entered_rx.recv().unwrap();
    let (cmds, expects): (Vec<Command>, Vec<Expect>) =
        batch_with_two_bad_commands().into_iter().unzip();
    let mut replies = Vec::new();
    for cmd in cmds {
        let (tx, rx) = mpsc::channel();
        let reader = s.clone();
        s.submit(
            cmd,
            ACTOR,
            Box::new(move |r| {
                // Replies run after the batch is durable, so each sees the whole batch.
                let _ = tx.send((r, reader.last_event_seq().ok()));
            }),
        );
        replies.push(rx);
    }
    release_tx.send(()).unwrap();
    let mut results = Vec::new();
    for rx in replies {
        let (res, seen) = rx.recv().unwrap();
        assert_eq!(
            seen,
            Some(51),
            "a reply came before its whole batch was durable"
        );
        results.push(res);
    }
    check_batch_results(s, &expects, results, 2);
}

/// A write hook that holds up the writer in the first company write until released.
struct Gate {
    entered: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
}

impl crate::plugin::WriteHook for Gate {
    fn applies_to(&self, kind: EntityKind) -> bool {
        kind == Company
    }

    fn before_write(
        &self,
        _record: &AnyRecord,
        _before: Option<&AnyRecord>,
        _now: Timestamp,
    ) -> Result<BTreeMap<String, Value>, Error> {
        let _ = self.entered.lock().unwrap().send(());
        let _ = self.release.lock().unwrap().recv();
        Ok(BTreeMap::new())
    }
}

#[test]
fn concurrent_submits_from_eight_threads_commit_exactly_once() {
    let fx = Fixture::new();
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let store = fx.store.clone();
            let tx = tx.clone();
            scope.spawn(move || {
                for i in 0..200 {
                    // Every tenth email is tried by all eight threads.
                    let email = if i % 10 == 0 {
                        format!("shared{}@example.com", i / 10)
                    } else {
                        format!("t{t}-{i}@example.com")
                    };
                    let tx = tx.clone();
                    let cmd = create_cmd(Contact, &[("email", text(&email))]);
                    store.submit(
                        cmd,
                        &format!("thread-{t}"),
                        Box::new(move |r| {
                            let _ = tx.send((email, r));
                        }),
                    );
                }
            });
        }
    });
    drop(tx);
    let results: Vec<(String, Result<Outcome, Error>)> = rx.iter().collect();
    assert_eq!(results.len(), 1_600);
    let mut winners: BTreeMap<String, usize> = BTreeMap::new();
    let mut created: BTreeMap<Id, String> = BTreeMap::new();
    for (email, res) in results {
        match res {
            Ok(o) => {
                *winners.entry(email.clone()).or_default() += 1;
                created.insert(record(o).id(), email);
            }
            Err(Error::Conflict { field, .. }) => {
                assert_eq!(field, "email");
                assert!(email.starts_with("shared"), "{email} conflicted");
            }
            Err(e) => panic!("{email}: {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1_460);
    assert!(winners.values().all(|n| *n == 1));
    assert_eq!(created.len(), 1_460);

    let events = fx.store.events(0, 10_000).unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=1_460).collect::<Vec<_>>());
    for e in &events {
        let email = &created[&e.id];
        if let Some(rest) = email.strip_prefix('t') {
            let thread = rest.split('-').next().unwrap();
            assert_eq!(e.actor, format!("thread-{thread}"), "{email}");
        }
    }
    assert_eq!(fx.store.counts().unwrap()[0], (Contact, 1_460));
    assert_consistent(&fx.store);
}

// ---------------------------------------------------------------------------------------
// 6. The event log
// ---------------------------------------------------------------------------------------

#[test]
fn events_record_creates_changed_fields_and_deletes() {
    let fx = Fixture::new();
    let s = &fx.store;
    let created_at = fx.clock.now();
    let ada = record(
        s.execute(
            create_cmd(
                Contact,
                &[
                    ("first_name", text("Ada")),
                    ("email", text("ada@example.com")),
                ],
            ),
            "alice",
        )
        .unwrap(),
    );
    let e = s.events(0, 10).unwrap().remove(0);
    assert_eq!(
        (e.seq, e.kind, e.id, e.op),
        (1, Contact, ada.id(), Operation::Created)
    );
    assert_eq!((e.actor.as_str(), e.at), ("alice", created_at));
    let change = |field: &str| e.changes.iter().find(|c| c.field == field).cloned();
    assert_eq!(
        change("first_name"),
        Some(FieldChange {
            field: "first_name".to_owned(),
            before: Value::Null,
            after: text("Ada"),
        })
    );
    assert_eq!(
        change("email").map(|c| c.after),
        Some(text("ada@example.com"))
    );
    assert_eq!(change("id").map(|c| c.after), Some(Value::Ref(ada.id())));
    assert_eq!(change("updated_at"), None, "bookkeeping is not news");
    assert_eq!(change("last_name"), None, "empty fields are left out");
    assert!(e.changes.iter().all(|c| c.before == Value::Null));

    fx.tick();
    let updated = update(s, Contact, ada.id(), &[]).unwrap();
    assert_eq!(updated, ada, "an empty update changes nothing");
    let res = s.execute(
        Command::Update {
            kind: Contact,
            id: ada.id(),
            input: input(&[
                ("first_name", text("Augusta")),
                ("title", text("Countess")),
                ("email", text("ada@example.com")),
            ]),
        },
        "bob",
    );
    let augusta = record(res.unwrap());
    assert_eq!(
        value(&augusta, "updated_at"),
        Value::DateTime(fx.clock.now())
    );
    let e = s.events(1, 10).unwrap().remove(0);
    assert_eq!(
        (e.seq, e.op, e.actor.as_str()),
        (2, Operation::Updated, "bob")
    );
    assert_eq!(
        e.changes,
        vec![
            FieldChange {
                field: "first_name".to_owned(),
                before: text("Ada"),
                after: text("Augusta"),
            },
            FieldChange {
                field: "title".to_owned(),
                before: Value::Null,
                after: text("Countess"),
            },
        ]
    );

    // Setting the values it already has (after trimming) writes nothing.
    fx.tick();
    let same = update(
        s,
        Contact,
        ada.id(),
        &[
            ("first_name", text("  Augusta ")),
            ("title", text("Countess")),
        ],
    )
    .unwrap();
    assert_eq!(same, augusta);
    assert_eq!(s.get(Contact, ada.id()).unwrap(), augusta);
    assert_eq!(s.last_event_seq().unwrap(), 2);

    s.execute(
        Command::Delete {
            kind: Contact,
            id: ada.id(),
        },
        "carol",
    )
    .unwrap();
    let e = s.events(2, 10).unwrap().remove(0);
    assert_eq!(
        (e.seq, e.op, e.actor.as_str()),
        (3, Operation::Deleted, "carol")
    );
    assert!(e.changes.iter().all(|c| c.after == Value::Null));
    assert!(e.changes.contains(&FieldChange {
        field: "first_name".to_owned(),
        before: text("Augusta"),
        after: Value::Null,
    }));
    assert_eq!(s.events(0, 2).unwrap().len(), 2, "the limit is honoured");
    assert!(s.events(3, 10).unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// 7 and 8. Reopening, format versions, exclusive use
// ---------------------------------------------------------------------------------------

#[test]
fn reopening_keeps_data_and_continues_the_event_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let store = open_store(dir.path(), &clock, 16).unwrap();
    let mut records = Vec::new();
    for name in ["Ada", "Bob", "Cy"] {
        clock.advance(Duration::milliseconds(1));
        records.push(create(&store, Contact, &[("first_name", text(name))]).unwrap());
    }
    records[1] = update(&store, Contact, records[1].id(), &[("title", text("CFO"))]).unwrap();
    store.close();
    assert!(matches!(
        create(&store, Contact, &[("first_name", text("Late"))]),
        Err(Error::ShuttingDown)
    ));
    drop(store);

    let store = open_store(dir.path(), &clock, 16).unwrap();
    for r in &records {
        assert_eq!(&store.get(Contact, r.id()).unwrap(), r);
    }
    assert_eq!(store.last_event_seq().unwrap(), 4);
    create(&store, Contact, &[("first_name", text("Dee"))]).unwrap();
    let seqs: Vec<u64> = store
        .events(0, 100)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert_eq!(
        store.pipelines().unwrap().len(),
        1,
        "the default pipeline is not added twice"
    );
    assert_consistent(&store);
    store.close();
}

#[test]
fn a_file_with_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let store = open_store(dir.path(), &clock, 16).unwrap();
    create(&store, Contact, &[("first_name", text("Ada"))]).unwrap();
    store.close();
    drop(store);

    let file = dir.path().join(DB_FILE);
    {
        let db = redb::Database::open(&file).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            let newer = (FORMAT_VERSION + 1).to_le_bytes();
            meta.insert(FORMAT_KEY, newer.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    match open_store(dir.path(), &clock, 16) {
        Err(StoreError::NewerFormat {
            path,
            found,
            supported,
        }) => {
            assert_eq!(path, file);
            assert_eq!(found, FORMAT_VERSION + 1);
            assert_eq!(supported, FORMAT_VERSION);
        }
        other => panic!("expected a newer-format error, got {other:?}"),
    }
}

#[test]
fn a_directory_in_use_is_refused() {
    let fx = Fixture::new();
    match open_store(fx.dir.path(), &fx.clock, 16) {
        Err(StoreError::InUse { path }) => assert_eq!(path, fx.dir.path().join(DB_FILE)),
        other => panic!("expected the database to be in use, got {other:?}"),
    }
    // The first store is unaffected.
    create(&fx.store, Contact, &[("first_name", text("Ada"))]).unwrap();
    assert_eq!(fx.store.last_event_seq().unwrap(), 1);
}

/// Copies the store's files as they are on disk now, into a new directory: what a crash at
/// this moment would leave behind (the redb file at its last durable commit, the log as
/// synced).
fn crash_copy(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for name in [DB_FILE, WAL_FILE] {
        std::fs::copy(from.join(name), to.path().join(name)).unwrap();
    }
    to
}

/// A store whose checkpoints wait for its close (or a command outside the record path), so
/// everything else is durable only through the log.
fn open_logging(dir: &Path, clock: &Arc<ManualClock>) -> Store {
    open_checkpointing(dir, clock, std::time::Duration::from_secs(3600))
}

/// A store with group commit (so the log) on, checkpointing at most `every`.
fn open_checkpointing(dir: &Path, clock: &Arc<ManualClock>, every: std::time::Duration) -> Store {
    Store::open(StoreConfig {
        dir: dir.to_path_buf(),
        clock: clock.clone(),
        max_batch: 64,
        checkpoint_every: every,
    })
    .unwrap()
}

fn contacts_in_redb_alone(dir: &Path) -> u64 {
    use redb::{ReadableDatabase, ReadableTableMetadata};
    let db = redb::Database::create(dir.join(DB_FILE)).unwrap();
    let txn = db.begin_read().unwrap();
    txn.open_table(super::tables::records(Contact))
        .unwrap()
        .len()
        .unwrap()
}

#[test]
fn a_crash_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let store = open_logging(dir.path(), &clock);
    // A field definition commits durably: a checkpoint. Everything after it is in the log.
    define(&store, Contact, field_def("tier", FieldType::Text)).unwrap();
    let ada = create(&store, Contact, &[("first_name", text("Ada"))]).unwrap();
    clock.advance(Duration::milliseconds(1));
    let cmds = (0..200)
        .map(|i| Command::Create {
            kind: Contact,
            input: custom_input(
                &[
                    ("first_name", text(&format!("Load{i}"))),
                    ("email", text(&format!("load{i}@example.com"))),
                ],
                &[("tier", text("gold"))],
            ),
        })
        .collect();
    let made: Vec<AnyRecord> = store
        .execute_all(cmds, ACTOR)
        .into_iter()
        .map(|r| record(r.unwrap()))
        .collect();
    let ada = update(&store, Contact, ada.id(), &[("title", text("CEO"))]).unwrap();
    delete(&store, Contact, made[7].id()).unwrap();

    let crashed = crash_copy(dir.path());
    assert!(
        std::fs::metadata(crashed.path().join(WAL_FILE))
            .unwrap()
            .len()
            > 0,
        "the writes since the checkpoint are in the log"
    );
    {
        // The redb file alone went back to the checkpoint: it has none of the contacts.
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(crashed.path().join(DB_FILE), copy.path().join(DB_FILE)).unwrap();
        assert_eq!(contacts_in_redb_alone(copy.path()), 0);
    }

    let after = open_store(crashed.path(), &clock, 16).unwrap();
    assert_eq!(after.get(Contact, ada.id()).unwrap(), ada);
    for (i, r) in made.iter().enumerate() {
        if i == 7 {
            assert!(matches!(
                after.get(Contact, r.id()),
                Err(Error::NotFound { .. })
            ));
        } else {
            assert_eq!(&after.get(Contact, r.id()).unwrap(), r);
        }
    }
    assert_consistent(&after);
    assert_eq!(
        after.last_event_seq().unwrap(),
        store.last_event_seq().unwrap()
    );
    // The replay was checkpointed and the log emptied: the redb file alone has it all now.
    after.close();
    drop(after);
    assert_eq!(
        std::fs::metadata(crashed.path().join(WAL_FILE))
            .unwrap()
            .len(),
        0
    );
    assert_eq!(contacts_in_redb_alone(crashed.path()), 200);
    store.close();
}

#[test]
fn a_torn_log_tail_is_dropped_and_the_rest_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let store = open_logging(dir.path(), &clock);
    let ada = create(&store, Contact, &[("first_name", text("Ada"))]).unwrap();
    let crashed = crash_copy(dir.path());
    // A write cut short by the crash: half a record, then garbage.
    let wal = crashed.path().join(WAL_FILE);
    let mut bytes = std::fs::read(&wal).unwrap();
    let whole = bytes.len();
    bytes.extend_from_within(..whole / 2);
    bytes.extend_from_slice(&[0xff; 7]);
    std::fs::write(&wal, bytes).unwrap();

    let after = open_store(crashed.path(), &clock, 16).unwrap();
    assert_eq!(after.get(Contact, ada.id()).unwrap(), ada);
    assert_eq!(after.last_event_seq().unwrap(), 1);
    // New writes continue the sequence, and survive a reopen.
    let bob = create(&after, Contact, &[("first_name", text("Bob"))]).unwrap();
    after.close();
    drop(after);
    let again = open_store(crashed.path(), &clock, 16).unwrap();
    assert_eq!(again.get(Contact, bob.id()).unwrap(), bob);
    assert_eq!(again.last_event_seq().unwrap(), 2);
    again.close();
    store.close();
}

#[test]
fn closing_checkpoints_so_the_log_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let store = open_logging(dir.path(), &clock);
    let ada = create(&store, Contact, &[("first_name", text("Ada"))]).unwrap();
    assert!(std::fs::metadata(dir.path().join(WAL_FILE)).unwrap().len() > 0);
    store.close();
    drop(store);
    assert_eq!(
        std::fs::metadata(dir.path().join(WAL_FILE)).unwrap().len(),
        0
    );
    assert_eq!(contacts_in_redb_alone(dir.path()), 1);
    let store = open_store(dir.path(), &clock, 1).unwrap();
    assert_eq!(store.get(Contact, ada.id()).unwrap(), ada);
    store.close();
}

#[test]
fn a_reply_may_drop_the_last_handle() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let store = open_logging(dir.path(), &clock);
    let held = store.clone();
    let (tx, rx) = mpsc::channel();
    store.submit(
        create_cmd(Contact, &[("first_name", text("Ada"))]),
        ACTOR,
        Box::new(move |r| {
            // The reply runs on the log thread; the test's handle is gone by now, most likely,
            // so this closes the store from there.
            drop(held);
            let _ = tx.send(r.is_ok());
        }),
    );
    drop(store);
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(60)),
        Ok(true),
        "the reply never ran to its end"
    );
    // The store closes on its own and releases the file.
    let mut waited = 0;
    let reopened = loop {
        match open_store(dir.path(), &clock, 16) {
            Ok(s) => break s,
            Err(StoreError::InUse { .. }) if waited < 3000 => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                waited += 1;
            }
            Err(e) => panic!("cannot reopen: {e}"),
        }
    };
    assert_eq!(reopened.counts().unwrap()[0], (Contact, 1));
    reopened.close();
}

#[test]
fn an_idle_writer_checkpoints_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let store = open_checkpointing(dir.path(), &clock, std::time::Duration::from_millis(20));
    create(&store, Contact, &[("first_name", text("Ada"))]).unwrap();
    // No timing assertion: wait (up to a minute) until what a crash would leave holds the
    // contact in the redb file alone.
    let mut waited = 0;
    loop {
        let crashed = crash_copy(dir.path());
        if contacts_in_redb_alone(crashed.path()) == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        waited += 1;
        assert!(waited < 3000, "the log was never checkpointed");
    }
    store.close();
}

#[test]
fn default_list_pages_newest_first_without_gaps() {
    let fx = Fixture::new();
    let mut ids = Vec::new();
    for i in 0..120 {
        fx.tick();
        ids.push(
            create(
                &fx.store,
                Contact,
                &[("first_name", text(&format!("Person {i:03}")))],
            )
            .unwrap()
            .id(),
        );
    }
    let mut q = Query {
        limit: 50,
        ..Query::default()
    };
    let mut pages: Vec<Vec<Id>> = Vec::new();
    loop {
        let page = fx.store.list(Contact, &q).unwrap();
        pages.push(page.items.iter().map(AnyRecord::id).collect());
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
        assert!(pages.len() < 10, "paging does not end");
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![50, 50, 20]
    );
    ids.reverse();
    assert_eq!(pages.concat(), ids);
    assert_eq!(fx.store.count(Contact, &Query::default()).unwrap(), 120);

    // Oldest first pages the same records the other way round.
    let asc = list_ids(
        &fx.store,
        Contact,
        Query {
            sort: Some(SortKey::parse("created_at")),
            limit: 50,
            ..Query::default()
        },
    );
    ids.reverse();
    assert_eq!(asc, ids);
}

#[test]
fn records_created_within_one_millisecond_list_in_creation_order() {
    let fx = Fixture::new();
    let mut ids = Vec::new();
    for i in 0..30 {
        // 30 × 20µs stays inside the first millisecond after t0, in 30 separate batches.
        fx.clock.advance(Duration::microseconds(20));
        ids.push(
            create(
                &fx.store,
                Contact,
                &[("first_name", text(&format!("P{i}")))],
            )
            .unwrap()
            .id(),
        );
    }
    let oldest_first = fx
        .store
        .list(
            Contact,
            &Query {
                sort: Some(SortKey::parse("created_at")),
                limit: 100,
                ..Query::default()
            },
        )
        .unwrap();
    let times: Vec<Value> = oldest_first
        .items
        .iter()
        .map(|r| value(r, "created_at"))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0].sort_cmp(&w[1]).is_le()),
        "sort=created_at is not in created_at order: {times:?}"
    );
    ids.reverse();
    assert_eq!(
        list_ids(&fx.store, Contact, Query::default()),
        ids,
        "newest first"
    );
}

/// One deal of [`deal_set`] as created.
struct DealSpec {
    id: Id,
    amount: Option<Decimal>,
    stage: &'static str,
    title: String,
    tier: Option<&'static str>,
}

/// Deals with a spread of amounts (some equal, some missing), stages, titles and tiers.
struct DealSet {
    fx: Fixture,
    deals: Vec<DealSpec>,
}

fn deal_set() -> DealSet {
    let fx = Fixture::new();
    define(
        &fx.store,
        Deal,
        NewFieldDef {
            options: vec!["gold".to_owned(), "silver".to_owned(), "bronze".to_owned()],
            ..field_def("tier", FieldType::Choice)
        },
    )
    .unwrap();
    let amounts = [
        None,
        Some(Decimal::new(10_000, 2)),
        Some(Decimal::new(25_050, 2)),
        Some(Decimal::new(99_999, 2)),
        Some(Decimal::new(1_000, 0)),
        Some(Decimal::new(500_000, 2)),
        Some(Decimal::new(0, 0)),
    ];
    let mut rng = StdRng::seed_from_u64(9);
    let mut specs = Vec::new();
    let mut cmds = Vec::new();
    for i in 0..45 {
        let amount = *amounts.choose(&mut rng).unwrap();
        let stage = *STAGES.choose(&mut rng).unwrap();
        let title = if i % 3 == 0 {
            format!("Renewal {i}")
        } else {
            format!("New business {i}")
        };
        let tier = [None, Some("gold"), Some("silver")]
            .choose(&mut rng)
            .copied()
            .unwrap();
        let mut fields = vec![("title", text(&title)), ("stage", text(stage))];
        if let Some(a) = amount {
            fields.push(("amount", Value::Number(a)));
            fields.push(("currency", text("usd")));
        }
        let custom: Vec<(&str, Value)> = tier
            .iter()
            .map(|t| ("tier", text(&t.to_uppercase())))
            .collect();
        cmds.push(Command::Create {
            kind: Deal,
            input: custom_input(&fields, &custom),
        });
        specs.push(DealSpec {
            id: Id::default(),
            amount,
            stage,
            title,
            tier,
        });
    }
    let results = fx.store.execute_all(cmds, ACTOR);
    let deals = results
        .into_iter()
        .zip(specs)
        .map(|(r, spec)| DealSpec {
            id: record(r.unwrap()).id(),
            ..spec
        })
        .collect();
    DealSet { fx, deals }
}

#[test]
fn sorting_by_amount_pages_through_every_deal_in_order() {
    let set = deal_set();
    let mut want: Vec<(Option<Decimal>, Id)> = set.deals.iter().map(|d| (d.amount, d.id)).collect();
    // Largest first, missing amounts last, ties newest (largest id) first.
    want.sort_by(|a, b| b.cmp(a));
    let want_ids: Vec<Id> = want.iter().map(|w| w.1).collect();
    let q = |sort: &str| Query {
        sort: Some(SortKey::parse(sort)),
        limit: 7,
        ..Query::default()
    };
    let got = list_ids(&set.fx.store, Deal, q("-amount"));
    assert_eq!(got, want_ids);
    let mut asc = list_ids(&set.fx.store, Deal, q("amount"));
    asc.reverse();
    assert_eq!(asc, want_ids);
    let first = set.fx.store.list(Deal, &q("-amount")).unwrap();
    assert_eq!(value(&first.items[0], "currency"), text("USD"));
}

/// Lists deals with `filters` four at a time and compares with the deals `pred` selects.
fn check_deals(
    s: &Store,
    deals: &[DealSpec],
    filters: Vec<Filter>,
    pred: impl Fn(&DealSpec) -> bool,
) {
    let mut want: Vec<Id> = deals.iter().filter(|d| pred(d)).map(|d| d.id).collect();
    want.sort_by(|a, b| b.cmp(a));
    let q = Query {
        filters,
        limit: 4,
        ..Query::default()
    };
    assert_eq!(list_ids(s, Deal, q.clone()), want, "{:?}", q.filters);
    assert_eq!(
        s.count(Deal, &q).unwrap(),
        count(want.len()),
        "count {:?}",
        q.filters
    );
}

#[test]
fn filters_select_exactly_the_matching_records() {
    let set = deal_set();
    let (s, deals) = (&set.fx.store, set.deals.as_slice());
    let k = Decimal::new(1_000, 0);
    let closed = |d: &DealSpec| matches!(d.stage, "won" | "lost");
    check_deals(
        s,
        deals,
        vec![filter("amount", FilterOp::Gte, "1000")],
        |d| d.amount.is_some_and(|a| a >= k),
    );
    check_deals(
        s,
        deals,
        vec![filter("amount", FilterOp::Lt, "1000.00")],
        |d| d.amount.is_some_and(|a| a < k),
    );
    check_deals(
        s,
        deals,
        vec![filter("title", FilterOp::Contains, "RENEWAL")],
        |d| d.title.starts_with("Renewal"),
    );
    check_deals(
        s,
        deals,
        vec![filter("stage", FilterOp::In, "won, lost")],
        closed,
    );
    check_deals(s, deals, vec![eq("custom.tier", "Gold")], |d| {
        d.tier == Some("gold")
    });
    check_deals(
        s,
        deals,
        vec![filter("custom.tier", FilterOp::Ne, "gold")],
        |d| d.tier != Some("gold"),
    );
    check_deals(s, deals, vec![eq("custom.tier", "")], |d| d.tier.is_none());
    check_deals(s, deals, vec![eq("status", "open")], |d| {
        deal_status(d.stage) == "open"
    });
    check_deals(
        s,
        deals,
        vec![
            filter("stage", FilterOp::In, "won,lost"),
            filter("amount", FilterOp::Gte, "1000"),
        ],
        |d| closed(d) && d.amount.is_some_and(|a| a >= k),
    );
    assert!(
        deals.iter().any(|d| d.tier == Some("gold")),
        "the data has gold deals"
    );
    assert!(
        deals.iter().any(|d| d.amount.is_some_and(|a| a >= k)),
        "the data has big deals"
    );
}

#[test]
fn bad_queries_name_the_field() {
    let fx = Fixture::new();
    let s = &fx.store;
    let ada = create(s, Contact, &[("first_name", text("Ada"))]).unwrap();
    let msg = assert_bad_query(s.list(Contact, &query(vec![eq("colour", "red")])), "colour");
    assert!(msg.contains("contact has no field 'colour'"), "{msg}");
    assert_bad_query(s.list(Contact, &query(vec![eq("colour", "")])), "colour");
    assert_bad_query(
        s.count(Contact, &query(vec![eq("colour", "red")])),
        "colour",
    );
    assert_bad_query(
        s.list(Contact, &query(vec![eq("custom.tier", "gold")])),
        "custom.tier",
    );
    assert_bad_query(
        s.list(Deal, &query(vec![filter("amount", FilterOp::Gte, "lots")])),
        "amount",
    );
    assert_bad_query(
        s.list(Deal, &query(vec![eq("company_id", "not-an-id")])),
        "company_id",
    );
    for cursor in ["definitely not a cursor!", "AAAA", ""] {
        let q = Query {
            cursor: Some(cursor.to_owned()),
            ..Query::default()
        };
        assert_bad_query(s.list(Contact, &q), "cursor");
    }
    let q = Query {
        sort: Some(SortKey::parse("-colour")),
        ..Query::default()
    };
    assert_bad_query(s.list(Contact, &q), "sort");
    let q = Query {
        limit: 5_000,
        ..Query::default()
    };
    assert_bad_query(s.list(Contact, &q), "limit");
    assert_bad_query(s.timeline(Contact, ada.id(), 10, Some("garbage")), "cursor");
}

// ---------------------------------------------------------------------------------------
// 10. Timelines
// ---------------------------------------------------------------------------------------

#[test]
fn timeline_shows_linked_records_and_changes_newest_first() {
    let fx = Fixture::new();
    let s = &fx.store;
    let minute = || fx.clock.advance(Duration::minutes(1));
    let ada = create(s, Contact, &[("first_name", text("Ada"))])
        .unwrap()
        .id();
    minute();
    let call = create(
        s,
        Interaction,
        &[
            ("kind", text("call")),
            ("subject", text("Intro")),
            ("contact_id", Value::Ref(ada)),
        ],
    )
    .unwrap()
    .id();
    minute();
    let task = create(
        s,
        Task,
        &[
            ("title", text("Send deck")),
            ("contact_id", Value::Ref(ada)),
        ],
    )
    .unwrap()
    .id();
    minute();
    let ticket = create(
        s,
        Ticket,
        &[
            ("subject", text("Login fails")),
            ("requester_id", Value::Ref(ada)),
        ],
    )
    .unwrap()
    .id();
    minute();
    let deal = create(
        s,
        Deal,
        &[
            ("title", text("Pilot")),
            ("stage", text("lead")),
            ("contact_ids", Value::List(vec![Value::Ref(ada)])),
        ],
    )
    .unwrap()
    .id();
    minute();
    update(s, Contact, ada, &[("title", text("CTO"))]).unwrap();
    // Something unrelated stays off the timeline.
    let bob = create(s, Contact, &[("first_name", text("Bob"))])
        .unwrap()
        .id();
    create(
        s,
        Task,
        &[("title", text("Other")), ("contact_id", Value::Ref(bob))],
    )
    .unwrap();

    let page = s.timeline(Contact, ada, 50, None).unwrap();
    assert_eq!(page.next_cursor, None);
    let got: Vec<(&str, Id, &str)> = page
        .items
        .iter()
        .map(|i| (i.item_type.as_str(), i.id, i.summary.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("change", ada, "changed title"),
            ("deal", deal, "Pilot"),
            ("ticket", ticket, "Login fails"),
            ("task", task, "Send deck"),
            ("interaction", call, "call: Intro"),
            ("change", ada, "contact created"),
        ]
    );
    let times: Vec<Timestamp> = page.items.iter().map(|i| i.at).collect();
    let want_times: Vec<Timestamp> = (0..6).rev().map(|m| t0() + Duration::minutes(m)).collect();
    assert_eq!(times, want_times);
    assert!(
        page.items[0]
            .event
            .as_ref()
            .is_some_and(|e| e.op == Operation::Updated)
    );
    assert!(
        page.items[1]
            .record
            .as_ref()
            .is_some_and(|r| r.id() == deal)
    );

    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = s.timeline(Contact, ada, 2, cursor.as_deref()).unwrap();
        assert!(p.items.len() <= 2);
        paged.extend(p.items);
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(paged.len() <= 6, "timeline paging does not end");
    }
    assert_eq!(paged, page.items);
}

// ---------------------------------------------------------------------------------------
// Pipelines
// ---------------------------------------------------------------------------------------

fn partners_pipeline(stages: &[(&str, StageOutcome)]) -> Pipeline {
    Pipeline {
        key: "partners".to_owned(),
        name: "Partners".to_owned(),
        stages: stages
            .iter()
            .map(|(key, outcome)| Stage {
                key: (*key).to_owned(),
                name: String::new(),
                probability: 50,
                outcome: *outcome,
            })
            .collect(),
    }
}

#[test]
fn a_pipeline_keeps_stages_its_own_deals_use_and_drops_others() {
    use StageOutcome::{Lost, Open, Won};
    let fx = Fixture::new();
    let s = &fx.store;
    let full = partners_pipeline(&[("lead", Open), ("demo", Open), ("won", Won), ("lost", Lost)]);
    s.execute(Command::PutPipeline(full), ACTOR).unwrap();
    create(
        s,
        Deal,
        &[
            ("title", text("Reseller")),
            ("pipeline", text("partners")),
            ("stage", text("demo")),
        ],
    )
    .unwrap();
    // A deal of another pipeline sits in a stage with the same key as one of ours.
    create(
        s,
        Deal,
        &[("title", text("Direct")), ("stage", text("lead"))],
    )
    .unwrap();

    // Removing a stage the pipeline's own deals use is refused.
    let without_demo = partners_pipeline(&[("lead", Open), ("won", Won), ("lost", Lost)]);
    let msg = assert_invalid(
        s.execute(Command::PutPipeline(without_demo), ACTOR),
        "stages",
    );
    assert!(msg.contains("stage 'demo' still has deals"), "{msg}");

    // Removing one no deal of this pipeline uses is allowed, whatever other pipelines do.
    let without_lead = partners_pipeline(&[("demo", Open), ("won", Won), ("lost", Lost)]);
    match s.execute(Command::PutPipeline(without_lead), ACTOR) {
        Ok(Outcome::Pipeline(p)) => assert_eq!(p.stage_keys(), vec!["demo", "won", "lost"]),
        other => panic!("no deal of 'partners' is in 'lead', yet: {other:?}"),
    }
}

#[test]
fn a_format_1_file_still_opens() {
    // A file written by the first on-disk format (see core/fixtures/README.md). Whatever the
    // format becomes, this file must open with its data intact.
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/format-1.redb");
    std::fs::copy(&fixture, dir.path().join(DB_FILE)).unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let store = open_store(dir.path(), &clock, 16).unwrap();

    let company: Id = "01a20946-2cce-74a6-aec1-ff803a69f394".parse().unwrap();
    let contact: Id = "01a20946-2ce3-775e-b3c7-a74d5fb39acc".parse().unwrap();
    let deal: Id = "01a20946-2d10-702e-a54c-6b7da7866340".parse().unwrap();
    assert_eq!(
        store.get(Company, company).unwrap().summary(),
        "Fixture Ltd"
    );
    assert_eq!(store.get(Contact, contact).unwrap().summary(), "Format One");
    let AnyRecord::Deal(d) = store.get(Deal, deal).unwrap() else {
        panic!("expected a deal");
    };
    assert_eq!(d.amount, Some(rust_decimal::Decimal::new(123450, 2)));
    assert_eq!(d.stage, "negotiation");
    assert_eq!(d.company_id, Some(company));
    assert_eq!(d.contact_ids, vec![contact]);
    assert_eq!(d.custom.get("tier"), Some(&Value::Text("gold".to_owned())));
    let counts: Vec<u64> = store
        .counts()
        .unwrap()
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(counts, vec![1, 1, 1, 1, 1, 1]);
    assert_eq!(store.last_event_seq().unwrap(), 7);
    assert!(store.verify_indexes().unwrap().is_empty());
    let timeline = store.timeline(Contact, contact, 100, None).unwrap();
    assert_eq!(
        timeline.items.len(),
        5,
        "ticket, call, task, deal and its creation"
    );
    // And it takes new writes, continuing the event sequence.
    create(&store, Contact, &[("first_name", text("New"))]).unwrap();
    assert_eq!(store.last_event_seq().unwrap(), 8);
}

#[test]
fn backdated_commands_carry_their_time_into_records_ids_and_events() {
    let fx = Fixture::new();
    let store = &fx.store;
    let now = fx.clock.now();
    let fresh = create(store, Contact, &[("first_name", text("Today"))]).unwrap();
    let past = now - Duration::days(30);
    let backdated = |at, command| Command::Backdated {
        at,
        command: Box::new(command),
    };
    let old = record(
        store
            .execute(
                backdated(
                    past,
                    create_cmd(Contact, &[("first_name", text("Last month"))]),
                ),
                ACTOR,
            )
            .unwrap(),
    );
    let AnyRecord::Contact(c) = &old else {
        panic!("expected a contact");
    };
    assert_eq!(c.created_at, past);
    assert_eq!(c.updated_at, past);
    assert!(Id::min_at(&past) <= c.id && c.id < Id::min_at(&(past + Duration::milliseconds(1))));
    let events = store.events(0, 100).unwrap();
    assert_eq!(events.last().map(|e| e.at), Some(past));

    // Newest first by creation time: the backdated record sorts after today's.
    let page = store.list(Contact, &Query::default()).unwrap();
    let ids: Vec<Id> = page.items.iter().map(AnyRecord::id).collect();
    assert_eq!(ids, vec![fresh.id(), old.id()]);

    // A deal created in the past and closed later keeps both times.
    let deal = record(
        store
            .execute(
                backdated(
                    now - Duration::days(20),
                    create_cmd(
                        Deal,
                        &[("title", text("Pilot")), ("stage", text("proposal"))],
                    ),
                ),
                ACTOR,
            )
            .unwrap(),
    );
    let won_at = now - Duration::days(5);
    let update = Command::Update {
        kind: Deal,
        id: deal.id(),
        input: input(&[("stage", text("won"))]),
    };
    let AnyRecord::Deal(d) = record(store.execute(backdated(won_at, update), ACTOR).unwrap())
    else {
        panic!("expected a deal");
    };
    assert_eq!(d.created_at, now - Duration::days(20));
    assert_eq!(d.closed_at, Some(won_at));
    assert_eq!(d.stage_changed_at, Some(won_at));

    // The future cannot be backdated, and backdating does not nest.
    match store.execute(
        backdated(
            now + Duration::days(1),
            create_cmd(Contact, &[("first_name", text("Later"))]),
        ),
        ACTOR,
    ) {
        Err(Error::Invalid(FieldError { field, .. })) => assert_eq!(field, "at"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let nested = backdated(
        past,
        backdated(past, create_cmd(Contact, &[("first_name", text("x"))])),
    );
    assert!(matches!(
        store.execute(nested, ACTOR),
        Err(Error::Invalid(_))
    ));
    assert!(store.verify_indexes().unwrap().is_empty());
}

#[test]
fn a_field_defined_in_a_batch_applies_to_the_rest_of_that_batch() {
    // The writer caches field definitions per batch; defining or deleting one must refresh it.
    let fx = Fixture::new();
    let def = |name: &str| Command::DefineField {
        kind: Contact,
        def: field_def(name, FieldType::Text),
    };
    let with_custom = |name: &str| Command::Create {
        kind: Contact,
        input: Input {
            fields: BTreeMap::from([("first_name".to_owned(), text("Ada"))]),
            custom: BTreeMap::from([(name.to_owned(), text("x"))]),
        },
    };
    let results = fx.store.execute_all(
        vec![
            with_custom("nickname"),
            def("nickname"),
            with_custom("nickname"),
            Command::DeleteField {
                kind: Contact,
                name: "nickname".to_owned(),
            },
            with_custom("nickname"),
        ],
        ACTOR,
    );
    let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
    assert_eq!(ok, [false, true, true, true, false]);
    assert!(
        matches!(&results[0], Err(Error::UnknownField { field, .. }) if field == "custom.nickname")
    );
}

#[test]
fn a_field_changes_its_label_and_gains_options_but_keeps_the_ones_in_use() {
    let fx = Fixture::new();
    let tier = NewFieldDef {
        name: "tier".to_owned(),
        label: None,
        field_type: FieldType::Choice,
        required: false,
        options: vec!["gold".to_owned(), "silver".to_owned()],
        help: None,
        reference_kind: None,
    };
    fx.store
        .execute(
            Command::DefineField {
                kind: Contact,
                def: tier,
            },
            ACTOR,
        )
        .unwrap();
    let change = |changes: crate::custom::FieldChanges| Command::ChangeField {
        kind: Contact,
        name: "tier".to_owned(),
        changes,
    };
    let grown = crate::custom::FieldChanges {
        label: Some("Customer tier".to_owned()),
        options: Some(vec![
            "gold".to_owned(),
            "silver".to_owned(),
            "bronze".to_owned(),
        ]),
        ..Default::default()
    };
    fx.store.execute(change(grown), ACTOR).unwrap();
    let defs = fx.store.field_defs(Contact).unwrap();
    assert_eq!(defs[0].label, "Customer tier");
    assert_eq!(defs[0].options, ["gold", "silver", "bronze"]);
    // The new option is usable at once.
    fx.store
        .execute(
            Command::Create {
                kind: Contact,
                input: Input {
                    fields: BTreeMap::from([("first_name".to_owned(), text("Ada"))]),
                    custom: BTreeMap::from([("tier".to_owned(), text("bronze"))]),
                },
            },
            ACTOR,
        )
        .unwrap();
    // Dropping an option is refused, naming it, and changes nothing.
    let shrunk = crate::custom::FieldChanges {
        options: Some(vec!["gold".to_owned(), "bronze".to_owned()]),
        ..Default::default()
    };
    let err = fx.store.execute(change(shrunk), ACTOR).unwrap_err();
    assert!(
        err.to_string().contains("'silver' cannot be removed"),
        "{err}"
    );
    assert_eq!(fx.store.field_defs(Contact).unwrap()[0].options.len(), 3);
    // An unknown field is not found.
    let missing = Command::ChangeField {
        kind: Company,
        name: "tier".to_owned(),
        changes: crate::custom::FieldChanges::default(),
    };
    assert!(matches!(
        fx.store.execute(missing, ACTOR),
        Err(Error::NoSuch { .. })
    ));
}

#[test]
fn the_commit_observer_hears_each_change_before_its_caller_does() {
    type Heard = Vec<(Vec<(Id, super::Stamp)>, Option<super::Stamp>)>;
    let fx = Fixture::new();
    let s = &fx.store;
    let heard: Arc<std::sync::Mutex<Heard>> = Arc::default();
    let log = heard.clone();
    s.observe_commits(Arc::new(move |c| {
        log.lock().unwrap().push((c.records.to_vec(), c.everything));
    }));
    // Runs `cmd`; its result, its stamp, and how many commits the observer had heard of
    // when the reply came.
    let run = |cmd: Command| {
        let (tx, rx) = mpsc::channel();
        let log = heard.clone();
        s.submit_stamped(
            cmd,
            ACTOR,
            Box::new(move |r, stamp| {
                let _ = tx.send((r, stamp, log.lock().unwrap().len()));
            }),
        );
        rx.recv().unwrap()
    };
    let (created, s1, seen) = run(create_cmd(Contact, &[("first_name", text("Ada"))]));
    let Ok(Outcome::Record(r)) = created else {
        panic!("create failed: {created:?}")
    };
    let id = r.id();
    assert_eq!(
        seen, 1,
        "the observer heard of the commit before the caller"
    );
    assert_eq!(heard.lock().unwrap()[0], (vec![(id, s1)], None));
    assert_eq!(s.committed(), s1);
    let (updated, s2, _) = run(Command::Update {
        kind: Contact,
        id,
        input: Input::with([("last_name", text("Lovelace"))]),
    });
    assert!(updated.is_ok());
    assert!(s2 > s1, "stamps grow in commit order");
    assert_eq!(heard.lock().unwrap()[1], (vec![(id, s2)], None));
    let (defined, s3, _) = run(Command::DefineField {
        kind: Contact,
        def: field_def("nickname", FieldType::Text),
    });
    assert!(defined.is_ok());
    assert_eq!(heard.lock().unwrap()[2], (Vec::new(), Some(s3)));
    let (deleted, s4, _) = run(Command::Delete { kind: Contact, id });
    assert!(deleted.is_ok());
    assert_eq!(heard.lock().unwrap()[3], (vec![(id, s4)], None));
    assert_eq!(s.committed(), s4);
}
