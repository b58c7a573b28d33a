//! The plugin runtime with real components built from source by `tests/build.rs`: the
//! bundled lead-scoring plugin against a real store, the dev loop, and a hostile plugin that
//! tries every way to hurt the host.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kith_core::{AnyRecord, Command, EntityKind, Input, Outcome, Store, StoreConfig, Value};
use kith_host::plugin::{
    Limits, LoadedPlugin, PluginError, Runtime, StoreAccess, entity_from_record,
};

fn wasm(file: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("KITH_TEST_PLUGINS")).join(file);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (tests/build.rs builds it)", path.display()))
}

fn limits() -> Limits {
    Limits {
        hook_timeout: Duration::from_millis(200),
        memory: 32 << 20,
        ..Limits::default()
    }
}

fn create(store: &Store, kind: EntityKind, fields: Vec<(&'static str, Value)>) -> AnyRecord {
    match store
        .execute(
            Command::Create {
                kind,
                input: Input::with(fields),
            },
            "test",
        )
        .unwrap()
    {
        Outcome::Record(r) => r,
        other => panic!("expected a record, got {other:?}"),
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn lead_scoring(runtime: &Runtime, store: &Store) -> LoadedPlugin {
    let (plugin, _) = runtime
        .load("lead-scoring", &wasm("kith_plugin_lead_scoring.wasm"))
        .unwrap()
        .as_declared()
        .unwrap();
    plugin.with_data(Arc::new(StoreAccess(store.clone())))
}

#[test]
fn lead_scoring_scores_contacts_from_a_real_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let runtime = Runtime::new(limits()).unwrap();
    let plugin = lead_scoring(&runtime, &store);
    let (info, _) = plugin.describe().unwrap();
    assert_eq!(info.name, "Lead scoring");
    assert_eq!(info.scorers[0].name, "lead");

    let acme = create(
        &store,
        EntityKind::Company,
        vec![("name", text("Acme")), ("size", Value::Integer(5000))],
    );
    let ada = create(
        &store,
        EntityKind::Contact,
        vec![
            ("first_name", text("Ada")),
            ("title", text("VP of Sales")),
            ("email", text("ada@acme.example.com")),
            ("company_id", Value::Ref(acme.id())),
        ],
    );
    let now = store.clock().now();
    for days in [1, 30, 200] {
        create(
            &store,
            EntityKind::Interaction,
            vec![
                ("kind", text("call")),
                ("contact_id", Value::Ref(ada.id())),
                (
                    "occurred_at",
                    Value::DateTime(now - chrono::Duration::days(days)),
                ),
            ],
        );
    }
    create(
        &store,
        EntityKind::Deal,
        vec![
            ("title", text("Pilot")),
            ("stage", text("proposal")),
            ("contact_ids", Value::List(vec![Value::Ref(ada.id())])),
        ],
    );
    let bob = create(
        &store,
        EntityKind::Contact,
        vec![
            ("first_name", text("Bob")),
            ("email", text("bob@gmail.com")),
        ],
    );

    let entities = vec![entity_from_record(&ada), entity_from_record(&bob)];
    let (scores, report) = plugin
        .score("lead", &entities, now.timestamp_micros())
        .unwrap();
    assert_eq!(scores.len(), 2);
    let reasons: Vec<(i32, &str)> = scores[0]
        .reasons
        .iter()
        .map(|r| (r.points, r.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (25, "Senior title: VP of Sales"),
            (15, "Corporate email domain (acme.example.com)"),
            (20, "Large company: Acme (5000 employees)"),
            (10, "2 interaction(s) in the last 90 days"),
            (10, "Interaction in the last 14 days"),
            (20, "Has an open deal"),
        ]
    );
    assert_eq!(
        (scores[0].id.as_str(), scores[0].value),
        (ada.id().to_string().as_str(), 100)
    );
    assert_eq!((scores[1].value, scores[1].reasons.len()), (0, 1));
    assert!(report.host_calls > 0 && report.peak_memory > 0);
}

fn hostile(runtime: &Runtime) -> LoadedPlugin {
    runtime
        .load("hostile", &wasm("kith_test_hostile.wasm"))
        .unwrap()
        .grant_read([EntityKind::Contact])
}

fn contact_entity() -> kith_host::plugin::wit::kith::plugin::types::Entity {
    kith_host::plugin::wit::kith::plugin::types::Entity {
        kind: kith_host::plugin::kind_to_wit(EntityKind::Contact),
        id: "c1".to_owned(),
        fields: Vec::new(),
        custom: Vec::new(),
    }
}

fn run(plugin: &LoadedPlugin, scorer: &str) -> Result<String, PluginError> {
    plugin
        .score(scorer, &[contact_entity()], 0)
        .map(|(scores, _)| {
            scores
                .iter()
                .flat_map(|s| s.reasons.iter().map(|r| r.reason.clone()))
                .collect::<Vec<_>>()
                .join("; ")
        })
}

#[test]
fn hostile_plugins_are_stopped_with_errors_naming_them() {
    let runtime = Runtime::new(limits()).unwrap();
    let plugin = hostile(&runtime);
    for (scorer, check) in [
        (
            "loop",
            (|e: &PluginError| matches!(e, PluginError::Timeout { hook: "score", .. }))
                as fn(&PluginError) -> bool,
        ),
        ("host-spam", |e| matches!(e, PluginError::Timeout { .. })),
        (
            "alloc",
            |e| matches!(e, PluginError::Memory { limit, .. } if *limit == 32 << 20),
        ),
        (
            "recurse",
            |e| matches!(e, PluginError::Trap { reason, .. } if reason.contains("stack overflow")),
        ),
        (
            "panic",
            |e| matches!(e, PluginError::Trap { reason, .. } if reason.contains("gave up on purpose")),
        ),
        ("big", |e| {
            matches!(e, PluginError::TooLarge { what: "output", .. })
        }),
        (
            "ungranted",
            |e| matches!(e, PluginError::Denied { reason, .. } if reason == "reading deal records was not granted"),
        ),
    ] {
        let err = run(&plugin, scorer).expect_err(scorer);
        assert!(check(&err), "{scorer}: unexpected error {err:?}");
        let message = err.to_string();
        assert!(
            message.starts_with("plugin hostile: score"),
            "{scorer}: {message}"
        );
    }
    // No ambient authority: files and environment are simply not there.
    assert_eq!(run(&plugin, "file").unwrap(), "file: refused");
    assert_eq!(
        run(&plugin, "env").unwrap(),
        "env: 0 variables, HOME visible: false"
    );
    // Nor the time or fresh randomness: hooks are pure functions of their input.
    assert_eq!(
        run(&plugin, "clock").unwrap(),
        "clock: 0 s, instant moved: false"
    );
    assert_eq!(
        run(&plugin, "random").unwrap(),
        run(&plugin, "random").unwrap()
    );
    // And the runtime is fine afterwards.
    assert_eq!(run(&plugin, "ok").unwrap(), "behaved");
}

#[test]
fn a_stuck_plugin_does_not_hold_up_others() {
    let runtime = Runtime::new(limits()).unwrap();
    let stuck = hostile(&runtime);
    let fine = hostile(&runtime);
    std::thread::scope(|s| {
        let looping = s.spawn(|| run(&stuck, "loop"));
        for _ in 0..20 {
            assert_eq!(run(&fine, "ok").unwrap(), "behaved");
        }
        assert!(matches!(
            looping.join().unwrap(),
            Err(PluginError::Timeout { .. })
        ));
    });
}

#[test]
fn garbage_is_refused_before_it_runs() {
    let runtime = Runtime::new(limits()).unwrap();
    for (bytes, expect) in [
        (&b"MZ not wasm at all"[..], "does not start with"),
        (
            &b"\0asm\x01\0\0\0"[..],
            "plugin junk: not a loadable Kith plugin",
        ),
        (
            &b"\0asm\x0d\0\x01\0\xff\xff"[..],
            "not a loadable Kith plugin",
        ),
    ] {
        match runtime.load("junk", bytes) {
            Err(e @ PluginError::Invalid { .. }) => assert!(e.to_string().contains(expect), "{e}"),
            Err(e) => panic!("expected Invalid, got {e:?}"),
            Ok(_) => panic!("{bytes:?} loaded"),
        }
    }
}

#[test]
fn the_dev_loop_runs_a_hook_against_a_sample() {
    let sample = r#"{
        "scorer": "lead",
        "now": "2026-11-23T12:00:00Z",
        "settings": { "senior_points": 30 },
        "entities": [ { "kind": "contact", "id": "c1", "fields": { "title": "Head of IT", "email": "a@acme.example", "company_id": "co1" } } ],
        "records": [
            { "kind": "company", "id": "co1", "fields": { "name": "Acme", "size": 150 } },
            { "kind": "interaction", "id": "i1", "fields": { "contact_id": "c1", "occurred_at": "2026-11-20T09:00:00Z" } }
        ]
    }"#;
    let out = kith_host::plugin::devloop::run(
        &wasm("kith_plugin_lead_scoring.wasm"),
        "lead-scoring",
        "score",
        sample,
    )
    .unwrap();
    assert!(out.starts_with("c1: 70\n"), "{out}");
    for line in [
        "   +30  Senior title: Head of IT",
        "   +10  Mid-size company: Acme (150 employees)",
        "    +5  1 interaction(s) in the last 90 days",
        "time ",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    let described = kith_host::plugin::devloop::run(
        &wasm("kith_plugin_lead_scoring.wasm"),
        "lead-scoring",
        "describe",
        "",
    )
    .unwrap();
    assert!(described.starts_with("Lead scoring 0.1.0"), "{described}");
    let err = kith_host::plugin::devloop::run(
        &wasm("kith_plugin_lead_scoring.wasm"),
        "lead-scoring",
        "score",
        "{\"entities\": [{\"kind\": \"robot\"}]}",
    )
    .unwrap_err();
    assert!(err.contains("entities[0]"), "{err}");
}

#[test]
fn the_dev_loop_runs_validate_and_compute_fields() {
    let deal_fields = wasm("kith_plugin_deal_fields.wasm");
    let sample = r#"{
        "now": "2026-11-23T12:00:00Z",
        "entities": [
            { "kind": "deal", "id": "d1", "fields": { "title": "T", "stage": "proposal", "created_at": "2026-11-01T12:00:00Z", "stage_changed_at": "2026-11-20T12:00:00Z" } },
            { "kind": "deal", "id": "d2", "fields": { "title": "U", "stage": "proposal" }, "custom": { "next_step": "Call" } }
        ]
    }"#;
    let run =
        |hook: &str| kith_host::plugin::devloop::run(&deal_fields, "deal-fields", hook, sample);
    let out = run("validate").unwrap();
    assert!(out.contains("d1: refused\n  next_step: "), "{out}");
    assert!(out.contains("d2: valid"), "{out}");
    let out = run("compute-fields").unwrap();
    assert!(
        out.contains("d1:\n  days_in_stage = 3\n  deal_age_days = 22"),
        "{out}"
    );
    let err = run("on-event").unwrap_err();
    assert!(err.contains("compute-fields"), "{err}");
}
