//! Unit tests of workflow delivery in the store: cursor checks, all-or-nothing effects,
//! chain depth and actor on events, tags, and durable timers.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use chrono::Duration;

use super::{Command, Input, Outcome, Store, StoreConfig};
use crate::entity::{AnyRecord, EntityKind};
use crate::error::Error;
use crate::id::Id;
use crate::plugin::{PluginLimits, PluginRecord};
use crate::value::Value;
use crate::workflow::{Delivery, DeliveryFailure, Effect};

struct Fixture {
    store: Store,
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A store with one installed plugin, `wf`.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(dir.path())).unwrap();
        let f = Fixture { store, dir };
        f.install("wf");
        f
    }

    fn install(&self, id: &str) {
        let now = self.store.clock().now();
        let record = PluginRecord {
            id: id.to_owned(),
            version: "1.0.0".to_owned(),
            manifest: String::new(),
            wasm_hash: "h".to_owned(),
            granted: Vec::new(),
            settings: BTreeMap::new(),
            enabled: true,
            suspended: None,
            limits: PluginLimits::default(),
            installed_at: now,
            updated_at: now,
        };
        self.store
            .execute(
                Command::PutPlugin {
                    plugin: record,
                    wasm: Some(b"\0asm".to_vec()),
                    fields: None,
                },
                "test",
            )
            .unwrap();
    }

    fn ticket(&self, subject: &str) -> Id {
        let input = Input::with([("subject", Value::Text(subject.to_owned()))]);
        match self
            .store
            .execute(
                Command::Create {
                    kind: EntityKind::Ticket,
                    input,
                },
                "api",
            )
            .unwrap()
        {
            Outcome::Record(r) => r.id(),
            other => panic!("{other:?}"),
        }
    }

    fn cursor(&self) -> u64 {
        self.store.delivery_state("wf").unwrap().unwrap().cursor
    }

    fn deliver(&self, d: Delivery) -> Result<Outcome, Error> {
        self.store.execute(Command::Deliver(d), "worker")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.store.close();
    }
}

fn delivery(cursor: Option<(u64, u64)>, effects: Vec<Effect>) -> Delivery {
    Delivery {
        plugin: "wf".to_owned(),
        cursor,
        timer: None,
        depth: 1,
        effects,
        kv: Vec::new(),
        kv_quota: 1 << 20,
        note: None,
    }
}

fn priority(id: Id, p: &str) -> Effect {
    Effect::Update {
        kind: EntityKind::Ticket,
        id,
        input: Input::with([("priority", Value::Text(p.to_owned()))]),
    }
}

fn task(title: &str, ticket: Id) -> Effect {
    Effect::Create {
        kind: EntityKind::Task,
        input: Input::with([
            ("title", Value::Text(title.to_owned())),
            ("ticket_id", Value::Ref(ticket)),
        ]),
    }
}

fn field(store: &Store, kind: EntityKind, id: Id, name: &str) -> Value {
    match store.get(kind, id).unwrap() {
        AnyRecord::Ticket(t) => crate::entity::Record::get(&t, name).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn install_starts_the_cursor_after_existing_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let f = Fixture { store, dir };
    f.ticket("before");
    let head = f.store.last_event_seq().unwrap();
    f.install("late");
    assert_eq!(
        f.store.delivery_state("late").unwrap().unwrap().cursor,
        head
    );
}

#[test]
fn a_delivery_applies_effects_and_moves_the_cursor_together() {
    let f = Fixture::new();
    let t = f.ticket("printer on fire");
    let head = f.store.last_event_seq().unwrap();
    let start = f.cursor();
    f.deliver(delivery(
        Some((start, head)),
        vec![priority(t, "urgent"), task("Call back", t)],
    ))
    .unwrap();
    assert_eq!(f.cursor(), head);
    assert_eq!(
        field(&f.store, EntityKind::Ticket, t, "priority"),
        Value::Text("urgent".to_owned())
    );
    // The plugin is the actor of what its actions caused, one level deeper in the chain.
    let events = f.store.events(head, 10).unwrap();
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e.actor == "plugin:wf" && e.depth == 1)
    );
}

#[test]
fn a_stale_cursor_applies_nothing() {
    let f = Fixture::new();
    let t = f.ticket("a");
    let head = f.store.last_event_seq().unwrap();
    let start = f.cursor();
    f.deliver(delivery(Some((start, head)), Vec::new()))
        .unwrap();
    // The same delivery again (a retry after a lost reply) is refused whole.
    let err = f
        .deliver(delivery(Some((start, head)), vec![priority(t, "high")]))
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(
        field(&f.store, EntityKind::Ticket, t, "priority"),
        Value::Text("normal".to_owned())
    );
    assert_eq!(f.store.last_event_seq().unwrap(), head);
}

#[test]
fn a_failing_effect_takes_back_the_ones_before_it() {
    let f = Fixture::new();
    let t = f.ticket("a");
    let head = f.store.last_event_seq().unwrap();
    let start = f.cursor();
    let err = f
        .deliver(delivery(
            Some((start, head)),
            vec![
                priority(t, "high"),
                task("written, then taken back", t),
                priority(t, "not-a-priority"),
            ],
        ))
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    assert_eq!(f.cursor(), start, "the cursor stays for the retry");
    assert_eq!(
        field(&f.store, EntityKind::Ticket, t, "priority"),
        Value::Text("normal".to_owned())
    );
    assert_eq!(f.store.counts().unwrap()[5], (EntityKind::Task, 0));
    assert_eq!(f.store.last_event_seq().unwrap(), head, "no events leaked");
    // The writer goes on: the next write gets the next sequence number.
    f.ticket("b");
    assert_eq!(f.store.last_event_seq().unwrap(), head + 1);
    assert!(f.store.verify_indexes().unwrap().is_empty());
}

#[test]
fn tags_are_added_and_removed_once() {
    let f = Fixture::new();
    let t = f.ticket("a");
    let tag = |add| Effect::Tag {
        kind: EntityKind::Ticket,
        id: t,
        tag: "vip".to_owned(),
        add,
    };
    f.deliver(delivery(None, vec![tag(true)])).unwrap();
    let seq = f.store.last_event_seq().unwrap();
    f.deliver(delivery(None, vec![tag(true)])).unwrap();
    assert_eq!(
        f.store.last_event_seq().unwrap(),
        seq,
        "no change, no event"
    );
    assert_eq!(
        field(&f.store, EntityKind::Ticket, t, "tags"),
        Value::List(vec![Value::Text("vip".to_owned())])
    );
    f.deliver(delivery(None, vec![tag(false)])).unwrap();
    assert_eq!(
        field(&f.store, EntityKind::Ticket, t, "tags"),
        Value::List(Vec::new())
    );
    let err = f
        .deliver(delivery(
            None,
            vec![Effect::Tag {
                kind: EntityKind::Task,
                id: t,
                tag: "x".to_owned(),
                add: true,
            }],
        ))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[test]
fn keyed_timers_replace_fire_once_and_cancel() {
    let f = Fixture::new();
    let now = f.store.clock().now();
    let schedule = |mins: i64, key: Option<&str>, payload: &str| Effect::Schedule {
        at: now + Duration::minutes(mins),
        payload: payload.to_owned(),
        key: key.map(str::to_owned),
    };
    f.deliver(delivery(
        None,
        vec![
            schedule(-1, Some("k"), "first"),
            schedule(-1, Some("k"), "second"),
            schedule(-2, None, "unkeyed"),
            schedule(60, Some("later"), "later"),
        ],
    ))
    .unwrap();
    let summary = f.store.timers("wf", 10).unwrap();
    assert_eq!(summary.pending, 3, "the keyed one was replaced");
    let due = f.store.due_timers("wf", now, 10).unwrap();
    let payloads: Vec<&str> = due.iter().map(|(_, t)| t.payload.as_str()).collect();
    assert_eq!(payloads, ["unkeyed", "second"]);

    // Firing removes the timer with the call's effects; firing it again is refused.
    let (fired, _) = due[1];
    let mut d = delivery(
        None,
        vec![Effect::CancelTimer {
            key: "later".to_owned(),
        }],
    );
    d.timer = Some(fired);
    f.deliver(d.clone()).unwrap();
    assert!(matches!(f.deliver(d).unwrap_err(), Error::Conflict { .. }));
    assert_eq!(f.store.timers("wf", 10).unwrap().pending, 1);

    // A fired timer may reschedule itself under its own key.
    let (unkeyed, _) = due[0];
    let mut d = delivery(None, vec![schedule(5, Some("k"), "again")]);
    d.timer = Some(unkeyed);
    f.deliver(d).unwrap();
    let left = f.store.timers("wf", 10).unwrap();
    assert_eq!(left.pending, 1);
    assert_eq!(left.next[0].1.payload, "again");

    // Uninstalling drops timers and the delivery state.
    f.store
        .execute(
            Command::RemovePlugin {
                id: "wf".to_owned(),
            },
            "test",
        )
        .unwrap();
    assert_eq!(f.store.timers("wf", 10).unwrap().pending, 0);
    assert!(f.store.delivery_state("wf").unwrap().is_none());
}

#[test]
fn timers_and_cursor_survive_a_reopen() {
    let f = Fixture::new();
    let now = f.store.clock().now();
    let head = f.store.last_event_seq().unwrap();
    let t = f.ticket("a");
    let mut d = delivery(
        Some((f.cursor(), head + 1)),
        vec![Effect::Schedule {
            at: now,
            payload: t.to_string(),
            key: None,
        }],
    );
    d.note = Some(DeliveryFailure {
        at: now,
        seq: Some(head + 1),
        timer: None,
        message: "cut off".to_owned(),
    });
    f.deliver(d).unwrap();
    let path = f.dir.path().to_owned();
    f.store.close();
    let store = Store::open(StoreConfig::new(&path)).unwrap();
    let state = store.delivery_state("wf").unwrap().unwrap();
    assert_eq!(state.cursor, head + 1);
    assert_eq!(state.failures[0].message, "cut off");
    assert_eq!(store.due_timers("wf", now, 10).unwrap().len(), 1);
    store.close();
}

#[test]
fn bad_timers_and_unknown_plugins_are_refused() {
    let f = Fixture::new();
    let now = f.store.clock().now();
    let big = Effect::Schedule {
        at: now,
        payload: "x".repeat(crate::workflow::MAX_TIMER_PAYLOAD + 1),
        key: None,
    };
    assert!(matches!(
        f.deliver(delivery(None, vec![big])).unwrap_err(),
        Error::Invalid { .. }
    ));
    let mut d = delivery(None, Vec::new());
    d.plugin = "nobody".to_owned();
    assert!(matches!(f.deliver(d).unwrap_err(), Error::NoSuch { .. }));
}

#[test]
fn waiting_for_events_wakes_on_commit() {
    let f = Fixture::new();
    let head = f.store.last_event_seq().unwrap();
    let store = f.store.clone();
    let waiter =
        std::thread::spawn(move || store.wait_for_events(head, std::time::Duration::from_secs(30)));
    f.ticket("wake up");
    assert_eq!(waiter.join().unwrap(), head + 1);
    assert_eq!(
        f.store
            .wait_for_events(head + 1, std::time::Duration::from_millis(1)),
        head + 1
    );
}
