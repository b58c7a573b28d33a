//! Unit tests of plugin state in the store (records, binaries, private storage, scores) and of
//! the write hook, with a hand-written hook standing in for the host's plugins.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{Command, Input, Outcome, Store, StoreConfig};
use crate::clock::Timestamp;
use crate::custom::{FieldDef, FieldType, NewFieldDef};
use crate::entity::{AnyRecord, EntityKind};
use crate::error::Error;
use crate::id::Id;
use crate::plugin::{PluginRecord, ScoreBatch, ScoreReason, StoredScore, WriteHook};
use crate::value::Value;

struct Fixture {
    store: Store,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(dir.path())).unwrap();
        Fixture { store, _dir: dir }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.store.set_write_hook(None);
        self.store.close();
    }
}

fn now(s: &Store) -> Timestamp {
    s.clock().now()
}

fn record(s: &Store, id: &str, hash: &str) -> PluginRecord {
    PluginRecord {
        id: id.to_owned(),
        version: "1.0.0".to_owned(),
        manifest: format!("id = \"{id}\""),
        wasm_hash: hash.to_owned(),
        granted: vec!["read:contact".to_owned()],
        settings: BTreeMap::new(),
        enabled: true,
        suspended: None,
        limits: crate::plugin::PluginLimits::default(),
        installed_at: now(s),
        updated_at: now(s),
    }
}

fn field(s: &Store, plugin: &str, name: &str, computed: bool) -> FieldDef {
    let mut def = NewFieldDef {
        name: name.to_owned(),
        label: None,
        field_type: FieldType::Integer,
        required: false,
        options: Vec::new(),
        help: None,
        reference_kind: None,
    }
    .into_def(EntityKind::Deal, now(s))
    .unwrap();
    def.plugin = Some(plugin.to_owned());
    def.computed = computed;
    def
}

fn put(
    s: &Store,
    p: PluginRecord,
    wasm: Option<&[u8]>,
    fields: Option<Vec<FieldDef>>,
) -> Result<Outcome, Error> {
    s.execute(
        Command::PutPlugin {
            plugin: p,
            wasm: wasm.map(<[u8]>::to_vec),
            fields,
        },
        "test",
    )
}

fn deal(s: &Store, custom: &[(&str, Value)]) -> Result<AnyRecord, Error> {
    let mut input = Input::with([
        ("title", Value::Text("D".to_owned())),
        ("stage", Value::Text("lead".to_owned())),
    ]);
    for (k, v) in custom {
        input.custom.insert((*k).to_owned(), v.clone());
    }
    match s.execute(
        Command::Create {
            kind: EntityKind::Deal,
            input,
        },
        "test",
    )? {
        Outcome::Record(r) => Ok(r),
        other => panic!("{other:?}"),
    }
}

fn custom_of(r: &AnyRecord) -> BTreeMap<String, Value> {
    match r {
        AnyRecord::Deal(d) => d.custom.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_plugin_is_stored_with_its_binary_and_fields_and_removed_without_its_values() {
    let f = Fixture::new();
    let s = &f.store;
    // The first install must carry the binary.
    let e = put(s, record(s, "p", "h1"), None, None).unwrap_err();
    assert!(
        matches!(e, Error::Invalid(ref fe) if fe.field == "wasm"),
        "{e}"
    );
    let e = put(s, record(s, "Bad Id", "h1"), Some(b"\0asm"), None).unwrap_err();
    assert!(
        matches!(e, Error::Invalid(ref fe) if fe.field == "id"),
        "{e}"
    );

    put(
        s,
        record(s, "p", "h1"),
        Some(b"one"),
        Some(vec![field(s, "p", "score_x", false)]),
    )
    .unwrap();
    assert_eq!(s.plugins().unwrap().len(), 1);
    assert_eq!(s.plugin_wasm("h1").unwrap().unwrap(), b"one");
    let defs = s.field_defs(EntityKind::Deal).unwrap();
    assert_eq!(defs[0].plugin.as_deref(), Some("p"));
    let d = deal(s, &[("score_x", Value::Integer(3))]).unwrap();

    // A field someone else owns is a conflict, and the refused install changes nothing.
    s.execute(
        Command::DefineField {
            kind: EntityKind::Deal,
            def: NewFieldDef {
                name: "mine".to_owned(),
                label: None,
                field_type: FieldType::Text,
                required: false,
                options: Vec::new(),
                help: None,
                reference_kind: None,
            },
        },
        "test",
    )
    .unwrap();
    let e = put(
        s,
        record(s, "q", "h2"),
        Some(b"two"),
        Some(vec![field(s, "q", "mine", false)]),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }), "{e}");
    assert!(s.plugin("q").unwrap().is_none());
    assert!(s.plugin_wasm("h2").unwrap().is_none());

    // An upgrade to a new binary drops the old one and replaces the field set.
    put(
        s,
        record(s, "p", "h3"),
        Some(b"three"),
        Some(vec![field(s, "p", "other", false)]),
    )
    .unwrap();
    assert!(s.plugin_wasm("h1").unwrap().is_none());
    let names: Vec<String> = s
        .field_defs(EntityKind::Deal)
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["mine", "other"]);

    // Private storage and scores go with the plugin; field values stay.
    s.execute(
        Command::PluginKv {
            plugin: "p".to_owned(),
            set: vec![("k".to_owned(), b"v".to_vec())],
            delete: Vec::new(),
            quota: 100,
        },
        "test",
    )
    .unwrap();
    score(s, "p", d.id(), 40);
    s.execute(Command::RemovePlugin { id: "p".to_owned() }, "test")
        .unwrap();
    assert!(s.plugins().unwrap().is_empty());
    assert!(s.plugin_wasm("h3").unwrap().is_none());
    assert!(s.plugin_kv("p", "k").unwrap().is_none());
    assert!(s.scores(d.id()).unwrap().is_empty());
    let kept = s.get(EntityKind::Deal, d.id()).unwrap();
    assert_eq!(custom_of(&kept)["score_x"], Value::Integer(3));
    let e = s
        .execute(Command::RemovePlugin { id: "p".to_owned() }, "test")
        .unwrap_err();
    assert!(matches!(e, Error::NoSuch { .. }), "{e}");
    // Admins cannot delete a plugin's field while the plugin is installed.
    put(
        s,
        record(s, "r", "h4"),
        Some(b"four"),
        Some(vec![field(s, "r", "rf", false)]),
    )
    .unwrap();
    let e = s
        .execute(
            Command::DeleteField {
                kind: EntityKind::Deal,
                name: "rf".to_owned(),
            },
            "test",
        )
        .unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }), "{e}");
}

fn score(s: &Store, plugin: &str, id: Id, value: u8) {
    s.execute(
        Command::PutScores(ScoreBatch {
            plugin: plugin.to_owned(),
            scorer: "main".to_owned(),
            kind: EntityKind::Deal,
            scores: vec![(
                id,
                StoredScore {
                    value,
                    reasons: vec![ScoreReason {
                        points: i32::from(value),
                        reason: "why".to_owned(),
                    }],
                    at: now(s),
                },
            )],
        }),
        "test",
    )
    .unwrap();
}

#[test]
fn private_storage_is_all_or_nothing_within_its_quota() {
    let f = Fixture::new();
    let s = &f.store;
    let kv = |set: Vec<(&str, &[u8])>, delete: Vec<&str>| {
        s.execute(
            Command::PluginKv {
                plugin: "p".to_owned(),
                set: set
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_vec()))
                    .collect(),
                delete: delete.into_iter().map(str::to_owned).collect(),
                quota: 10,
            },
            "test",
        )
    };
    kv(vec![("a", b"1234")], vec![]).unwrap();
    assert_eq!(s.plugin_kv_usage("p").unwrap(), 5);
    // Over the quota: nothing of the change is applied.
    let e = kv(vec![("b", b"12345"), ("c", b"1")], vec![]).unwrap_err();
    assert!(
        matches!(e, Error::Invalid(ref fe) if fe.field == "kv"),
        "{e}"
    );
    assert!(s.plugin_kv("p", "b").unwrap().is_none());
    // Replacing and deleting count only what remains.
    kv(vec![("a", b"123456789")], vec![]).unwrap();
    kv(vec![("b", b"12345678")], vec!["a"]).unwrap();
    assert!(s.plugin_kv("p", "a").unwrap().is_none());
    assert_eq!(s.plugin_kv("p", "b").unwrap().unwrap(), b"12345678");
    // Other plugins' storage is separate.
    assert!(s.plugin_kv("q", "b").unwrap().is_none());
}

#[test]
fn scores_are_kept_per_record_and_go_with_the_record() {
    let f = Fixture::new();
    let s = &f.store;
    let d = deal(s, &[]).unwrap();
    score(s, "p", d.id(), 70);
    score(s, "p", d.id(), 75);
    let scores = s.scores(d.id()).unwrap();
    assert_eq!(scores.len(), 1);
    assert_eq!(scores[0].0, "p/main");
    assert_eq!(scores[0].1.value, 75);
    // A score for a record that no longer exists is not stored.
    score(s, "p", Id::from_u128(7), 1);
    assert!(s.scores(Id::from_u128(7)).unwrap().is_empty());
    s.execute(
        Command::Delete {
            kind: EntityKind::Deal,
            id: d.id(),
        },
        "test",
    )
    .unwrap();
    assert!(s.scores(d.id()).unwrap().is_empty());
}

/// A hook that refuses deals titled "no", computes `age` (and asks for an unknown field and
/// a bad value, which must be dropped), and records what it saw.
#[derive(Default)]
struct TestHook {
    rejected: Mutex<Vec<String>>,
}

impl WriteHook for TestHook {
    fn applies_to(&self, kind: EntityKind) -> bool {
        kind == EntityKind::Deal
    }

    fn before_write(
        &self,
        record: &AnyRecord,
        _before: Option<&AnyRecord>,
        _now: Timestamp,
    ) -> Result<BTreeMap<String, Value>, Error> {
        if record.get("title") == Some(Value::Text("no".to_owned())) {
            return Err(Error::invalid("title", "the hook says no"));
        }
        Ok(BTreeMap::from([
            ("age".to_owned(), Value::Integer(9)),
            ("nonexistent".to_owned(), Value::Integer(1)),
            ("bad".to_owned(), Value::Text("not a number".to_owned())),
        ]))
    }

    fn computed_rejected(&self, _kind: EntityKind, field: &str, _error: &Error) {
        self.rejected.lock().unwrap().push(field.to_owned());
    }
}

#[test]
fn the_write_hook_validates_and_computes_before_anything_is_written() {
    let f = Fixture::new();
    let s = &f.store;
    put(
        s,
        record(s, "p", "h"),
        Some(b"x"),
        Some(vec![field(s, "p", "age", true), field(s, "p", "bad", true)]),
    )
    .unwrap();
    let hook = Arc::new(TestHook::default());
    s.set_write_hook(Some(hook.clone()));
    let before = s.last_event_seq().unwrap();
    let input = Input::with([
        ("title", Value::Text("no".to_owned())),
        ("stage", Value::Text("lead".to_owned())),
    ]);
    let e = s
        .execute(
            Command::Create {
                kind: EntityKind::Deal,
                input,
            },
            "test",
        )
        .unwrap_err();
    assert!(
        matches!(e, Error::Invalid(ref fe) if fe.field == "title"),
        "{e}"
    );
    assert_eq!(
        s.last_event_seq().unwrap(),
        before,
        "a refused write leaves no event"
    );

    let d = deal(s, &[]).unwrap();
    let custom = custom_of(&d);
    assert_eq!(custom.get("age"), Some(&Value::Integer(9)));
    assert!(!custom.contains_key("bad") && !custom.contains_key("nonexistent"));
    let mut rejected = hook.rejected.lock().unwrap().clone();
    rejected.sort();
    assert_eq!(rejected, ["bad", "nonexistent"]);

    // A computed field cannot be set by hand.
    let e = deal(s, &[("age", Value::Integer(1))]).unwrap_err();
    assert!(
        matches!(e, Error::Invalid(ref fe) if fe.field == "custom.age"),
        "{e}"
    );
    // Other kinds are untouched by this hook.
    s.set_write_hook(None);
    assert_eq!(custom_of(&deal(s, &[]).unwrap()).get("age"), None);
}
