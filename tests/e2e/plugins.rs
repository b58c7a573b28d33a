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
        // Long enough that filling the memory cap finishes first even on a machine busy
        // compiling (at 200 ms the hostile `alloc` scorer once timed out instead).
        hook_timeout: Duration::from_millis(1000),
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
    plugin.with_data(Arc::new(StoreAccess(
        store.scoped(kith_core::Access::everything()),
    )))
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
    let err = run("on-events").unwrap_err();
    assert!(err.contains("compute-fields"), "{err}");
}

/// Runs `hook` of a bundled (or test) plugin's wasm against `sample` through the dev loop.
fn devloop(file: &str, hook: &str, sample: &str) -> Result<String, String> {
    let name = file.trim_end_matches(".wasm");
    kith_host::plugin::devloop::run(&wasm(file), name, hook, sample)
}

/// The lines of a dev-loop report before its timing line, which varies.
fn result_lines(out: &str) -> Vec<&str> {
    out.lines()
        .take_while(|l| !l.starts_with("time "))
        .collect()
}

#[test]
fn the_dev_loop_runs_on_event_with_the_sla_plugin() {
    let ticket = r#"{ "kind": "ticket", "id": "t1", "fields": {
        "subject": "Printer on fire", "status": "open", "priority": "high",
        "created_at": "2026-11-23T12:00:00Z" } }"#;
    let sample = format!(
        r#"{{
        "now": "2026-11-23T12:00:01Z",
        "event": {{ "kind": "ticket", "id": "t1", "op": "created", "actor": "api",
            "at": "2026-11-23T12:00:00Z",
            "changes": [
                {{ "field": "subject", "before": null, "after": "Printer on fire" }},
                {{ "field": "status", "before": null, "after": "open" }},
                {{ "field": "priority", "before": null, "after": "high" }}
            ] }},
        "records": [ {ticket} ]
    }}"#
    );
    let out = devloop("kith_plugin_sla_escalation.wasm", "on-event", &sample).unwrap();
    assert_eq!(
        result_lines(&out),
        [
            "update-fields ticket t1: first_response_due = 2026-11-23T16:00:00Z, resolution_due = 2026-11-24T12:00:00Z",
            "schedule at 2026-11-23T16:00:00Z key frt:t1 payload \"t1\"",
        ],
        "{out}"
    );
    assert!(out.contains(" host calls\n"), "{out}");

    // Settings apply; a deleted ticket's check is cancelled.
    let deleted = r#"{ "settings": { "first_response_minutes_high": 30 },
        "event": { "kind": "ticket", "id": "t1", "op": "deleted" } }"#;
    let out = devloop("kith_plugin_sla_escalation.wasm", "on-event", deleted).unwrap();
    assert_eq!(result_lines(&out), ["cancel-timer frt:t1"], "{out}");

    // An event of a kind the plugin does not subscribe to: said, and nothing done.
    let contact = r#"{ "event": { "kind": "contact", "id": "c1", "op": "updated" } }"#;
    let out = devloop("kith_plugin_sla_escalation.wasm", "on-event", contact).unwrap();
    assert_eq!(
        result_lines(&out),
        [
            "warning: the plugin does not subscribe to contact events (describe().subscriptions), so the server would not call on-event with this one",
            "(no actions)",
        ],
        "{out}"
    );
}

#[test]
fn the_dev_loop_runs_on_timer_with_the_sla_plugin() {
    let sample = |extra: &str| {
        format!(
            r#"{{
            "now": "2026-11-23T17:01:00Z",
            "payload": "t1",
            "due": "2026-11-23T17:00:00Z",
            "records": [ {{ "kind": "ticket", "id": "t1", "fields": {{
                "subject": "Printer on fire", "status": "open", "priority": "normal",
                "assignee": "sam", "created_at": "2026-11-23T09:00:00Z",
                "first_response_due": "2026-11-23T17:00:00Z",
                "resolution_due": "2026-11-26T09:00:00Z" {extra} }} }} ]
        }}"#
        )
    };
    let out = devloop("kith_plugin_sla_escalation.wasm", "on-timer", &sample("")).unwrap();
    assert_eq!(
        result_lines(&out),
        [
            "update-fields ticket t1: priority = high, first_response_due = 2026-11-23T21:01:00Z, resolution_due = 2026-11-24T17:01:00Z",
            "schedule at 2026-11-23T21:01:00Z key frt:t1 payload \"t1\"",
            "create-task \"First response overdue: Printer on fire\" on ticket t1, due 2026-11-23T17:31:00Z, for sam",
            "log-interaction note \"SLA escalation\" on ticket t1: \"No first response by 2026-11-23 17:00 UTC, the normal-priority target. Priority raised from normal to high; first response now due by 2026-11-23 21:01 UTC. Task created for sam.\"",
            "log [Level::Info] escalating ticket t1 (normal -> high)",
        ],
        "{out}"
    );
    // Answered in time: nothing to do.
    let answered = sample(r#", "first_response_at": "2026-11-23T16:00:00Z""#);
    let out = devloop("kith_plugin_sla_escalation.wasm", "on-timer", &answered).unwrap();
    assert_eq!(result_lines(&out), ["(no actions)"], "{out}");
}

/// Won and lost deal records for the win-loss report.
fn deal(id: &str, status: &str, closed_at: &str, amount: &str, extra: &str) -> String {
    format!(
        r#"{{ "kind": "deal", "id": "{id}", "fields": {{ "title": "Deal {id}", "stage": "{status}",
            "status": "{status}", "closed_at": "{closed_at}", "amount": "{amount}",
            "currency": "EUR", "created_at": "2025-06-01T00:00:00Z" {extra} }} }}"#
    )
}

#[test]
fn the_dev_loop_runs_a_report_with_sample_records() {
    let records = [
        deal("d1", "won", "2026-01-10T10:00:00Z", "1000", ""),
        deal("d2", "won", "2026-02-05T10:00:00Z", "500.50", ""),
        deal(
            "d3",
            "lost",
            "2026-02-20T10:00:00Z",
            "200",
            r#", "lost_reason": "price""#,
        ),
        deal(
            "d4",
            "lost",
            "2026-03-01T00:00:00Z",
            "50",
            r#", "lost_reason": "timing""#,
        ),
        // Before `from`, and still open: not counted.
        deal("d5", "won", "2025-12-31T23:59:59Z", "9999", ""),
        r#"{ "kind": "deal", "id": "d6", "fields": { "title": "Open", "stage": "proposal", "status": "open" } }"#.to_owned(),
    ]
    .join(",");
    let sample = format!(
        r#"{{ "now": "2026-11-23T12:00:00Z", "parameters": {{ "from": "2026-01-01" }}, "records": [{records}] }}"#
    );
    let out = devloop("kith_plugin_win_loss.wasm", "run-report", &sample).unwrap();
    assert_eq!(
        result_lines(&out),
        [
            "report summary (Win/loss)",
            "parameters: from = 2026-01-01, to = \"\", by = month, pipeline = \"\"",
            "Month    Won  Lost  Win rate (%)  Won amount (EUR)  Lost amount (EUR)",
            "-------  ---  ----  ------------  ----------------  -----------------",
            "2026-01    1     0         100.0           1000.00                  0",
            "2026-02    1     1          50.0            500.50                200",
            "2026-03    0     1           0.0              0.00                 50",
            "chart: bar of won, lost by month",
        ],
        "{out}"
    );

    let by_reason = format!(
        r#"{{ "report": "summary", "parameters": {{ "by": "lost_reason", "to": "2026-12-31" }}, "records": [{records}] }}"#
    );
    let out = devloop("kith_plugin_win_loss.wasm", "run-report", &by_reason).unwrap();
    assert_eq!(
        result_lines(&out)[2..],
        [
            "Lost reason  Lost  Share of losses (%)  Lost amount (EUR)",
            "-----------  ----  -------------------  -----------------",
            "price           1                 50.0                200",
            "timing          1                 50.0                 50",
            "chart: pie of lost by lost_reason",
        ],
        "{out}"
    );

    // More deals than one page of `query`: the report follows the cursor to the end.
    let many: Vec<String> = (0..1_234)
        .map(|i| {
            let status = if i % 3 == 0 { "lost" } else { "won" };
            deal(&format!("m{i}"), status, "2026-05-01T00:00:00Z", "1", "")
        })
        .collect();
    let sample = format!(
        r#"{{ "parameters": {{ "by": "total" }}, "records": [{}] }}"#,
        many.join(",")
    );
    let out = devloop("kith_plugin_win_loss.wasm", "run-report", &sample).unwrap();
    assert_eq!(
        result_lines(&out)[4],
        "All closed deals  822   412          66.6               822                412",
        "{out}"
    );
}

#[test]
fn the_dev_loop_flags_actions_the_plugin_did_not_declare_and_reports_its_errors() {
    // The probe returns a create-task it leaves out of describe() on purpose.
    let created = r#"{ "now": "2026-11-23T12:00:00Z",
        "event": { "kind": "contact", "id": "c1", "op": "created",
            "changes": [ { "field": "first_name", "before": null, "after": "Ada" } ] } }"#;
    let out = devloop("kith_test_workflow.wasm", "on-event", created).unwrap();
    assert_eq!(
        result_lines(&out),
        [
            "create-task \"Welcome Ada\" on contact c1, due 2026-11-24T12:00:00Z, unassigned",
            "  warning: create-task needs the action:create-task capability, which describe() does not declare; the server would refuse the whole call",
            "add-tag contact c1 \"welcomed\"",
            "schedule at 2026-11-23T12:01:00Z key welcome:c1 payload \"c1\"",
        ],
        "{out}"
    );
    let failing = r#"{ "settings": { "fail_first_name": "Ada" },
        "event": { "kind": "contact", "id": "c1", "op": "created",
            "changes": [ { "field": "first_name", "after": "Ada" } ] } }"#;
    let err = devloop("kith_test_workflow.wasm", "on-event", failing).unwrap_err();
    assert_eq!(
        err,
        "plugin kith_test_workflow: on-event reported an error: asked to fail on contacts named Ada"
    );
}

#[test]
fn the_dev_loop_names_what_is_wrong_with_a_sample() {
    let check = |file: &str, hook: &str, sample: &str, expected: &str| {
        let err = devloop(file, hook, sample).expect_err(sample);
        assert_eq!(err, expected, "{hook} {sample}");
    };
    let sla = "kith_plugin_sla_escalation.wasm";
    let win_loss = "kith_plugin_win_loss.wasm";
    check(
        sla,
        "on-event",
        "{}",
        "on-event needs \"event\": { \"kind\", \"id\", \"op\", \"changes\", ... }",
    );
    check(
        sla,
        "on-event",
        r#"{ "event": { "kind": "ticket", "id": "t1", "op": "edited" } }"#,
        "event: \"op\" must be created, updated or deleted",
    );
    check(
        sla,
        "on-event",
        r#"{ "event": { "kind": "ticket", "id": "t1", "op": "updated",
            "changes": [ { "field": "first_response_due", "after": "tomorrow" } ] } }"#,
        "event: changes[0]: first_response_due: after: 'tomorrow' is not a date-time (expected RFC 3339, such as 2026-03-01T09:30:00Z)",
    );
    check(
        sla,
        "on-event",
        r#"{ "event": { "kind": "ticket", "id": "t1", "op": "created" },
             "records": [ { "kind": "ticket", "id": "t1", "fields": { "colour": "red" } } ] }"#,
        "records[0]: ticket has no field 'colour'",
    );
    check(
        sla,
        "on-timer",
        r#"{ "due": "2026-11-23T12:00:00Z" }"#,
        "on-timer needs \"payload\": the text the timer was scheduled with",
    );
    check(
        sla,
        "on-timer",
        r#"{ "payload": "t1", "due": "noon" }"#,
        "due: 'noon' is not a date-time (expected RFC 3339, such as 2026-03-01T09:30:00Z)",
    );
    check(
        sla,
        "run-report",
        "{}",
        "the plugin declares no reports (describe().reports)",
    );
    check(
        win_loss,
        "run-report",
        r#"{ "report": "funnel" }"#,
        "the plugin has no report 'funnel' (it declares: summary)",
    );
    check(
        win_loss,
        "run-report",
        r#"{ "parameters": { "since": "2026-01-01" } }"#,
        "parameters: report summary takes no parameter 'since' (it takes: from, to, by, pipeline)",
    );
    check(
        win_loss,
        "run-report",
        r#"{ "parameters": { "by": "week" } }"#,
        "parameters: by: expected one of month, source, owner, lost_reason, total, got \"week\"",
    );
    check(
        win_loss,
        "run-report",
        r#"{ "parameters": { "from": "01/02/2026" } }"#,
        "plugin kith_plugin_win_loss: run-report reported an error: from: '01/02/2026' is not a date (YYYY-MM-DD)",
    );
    check(
        win_loss,
        "run-report",
        "{ \"parameters\": ",
        "the input is not valid JSON: EOF while parsing a value at line 1 column 16",
    );
}

#[test]
fn the_dev_loop_feeds_query_from_records_for_on_timer() {
    // Stale deals reads the deal's interactions and tasks through `query` (deal_id eq ...):
    // only d1's count, so d1 is stale, and d2's recent call makes no difference to it.
    let sample = |interaction_deal: &str| {
        format!(
            r#"{{
            "now": "2026-11-23T12:00:00Z",
            "payload": "d1",
            "records": [
                {{ "kind": "deal", "id": "d1", "fields": {{ "title": "Pilot", "stage": "proposal",
                    "status": "open", "owner": "sam", "created_at": "2026-10-01T09:00:00Z" }} }},
                {{ "kind": "interaction", "id": "i1", "fields": {{ "kind": "call",
                    "deal_id": "d1", "occurred_at": "2026-11-01T09:00:00Z" }} }},
                {{ "kind": "interaction", "id": "i2", "fields": {{ "kind": "call",
                    "deal_id": "{interaction_deal}", "occurred_at": "2026-11-20T09:00:00Z" }} }}
            ]
        }}"#
        )
    };
    let out = devloop("kith_plugin_stale_deals.wasm", "on-timer", &sample("d2")).unwrap();
    assert_eq!(
        result_lines(&out),
        [
            "create-task \"Follow up: Pilot\" on deal d1, due 2026-11-24T12:00:00Z, for sam",
            "schedule at 2026-12-07T12:00:00Z key stale:d1 payload \"d1\"",
        ],
        "{out}"
    );
    let out = devloop("kith_plugin_stale_deals.wasm", "on-timer", &sample("d1")).unwrap();
    assert_eq!(
        result_lines(&out),
        ["schedule at 2026-12-04T09:00:00Z key stale:d1 payload \"d1\""],
        "{out}"
    );
}
