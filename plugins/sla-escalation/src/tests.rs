//! Native tests of the SLA rules against `kith_sdk::testing::TestHost`: due times per
//! priority, the keyed first-response check, escalation, cancelling, and no reaction to the
//! plugin's own changes.

use kith_sdk::testing::{self, TestHost, change, entity, parse_instant};
use kith_sdk::time::{HOUR, MINUTE};
use kith_sdk::{
    Action, Entity, EntityExt, EntityKind, Event, FieldChange, FieldValue, NewInteraction,
    Operation, Plugin, action, field, value,
};

use super::{PLUGIN_ID, SlaEscalation, format_time};

/// 2026-03-02 09:00 UTC, when the test tickets are created.
fn t0() -> i64 {
    at("2026-03-02T09:00:00Z")
}

fn at(s: &str) -> i64 {
    parse_instant(s).expect("a time")
}

/// An open, unanswered normal ticket assigned to ana, created at `t0`, with `extra` fields
/// replacing the defaults of the same name.
fn ticket(extra: Vec<(&str, FieldValue)>) -> Entity {
    let mut fields = vec![
        field("id", value::text("t1")),
        field("subject", value::text("Printer on fire")),
        field("status", value::choice("open")),
        field("priority", value::choice("normal")),
        field("assignee", value::text("ana")),
        field("created_at", value::datetime(t0())),
    ];
    for (name, v) in extra {
        fields.retain(|f| f.name != name);
        if v != FieldValue::Null {
            fields.push(field(name, v));
        }
    }
    entity(EntityKind::Ticket, "t1", fields)
}

fn install(records: Vec<Entity>) {
    TestHost::for_plugin::<SlaEscalation>()
        .with_records(records)
        .install();
}

/// An event of ticket t1 by `actor` at `t0`.
fn event(op: Operation, changes: Vec<FieldChange>, actor: &str) -> Event {
    Event {
        actor: actor.to_owned(),
        at: t0(),
        ..testing::event(EntityKind::Ticket, "t1", op, changes)
    }
}

/// The event of ana creating `t` at `t0`: every set field, before = null.
fn created(t: &Entity) -> Event {
    Event {
        actor: "user:ana".to_owned(),
        at: t0(),
        ..testing::created(t)
    }
}

fn updated(changes: Vec<FieldChange>) -> Event {
    event(Operation::Updated, changes, "user:ana")
}

/// Ana changing one field of the ticket.
fn changed(field: &str, before: FieldValue, after: FieldValue) -> Event {
    updated(vec![change(field, before, after)])
}

fn on_event(e: &Event) -> Vec<Action> {
    SlaEscalation::on_event(e, t0() + MINUTE).expect("on_event succeeds")
}

fn on_timer(now: i64) -> Vec<Action> {
    SlaEscalation::on_timer("t1", now, now).expect("on_timer succeeds")
}

fn set_dues(first_response: Option<i64>, resolution: Option<i64>) -> Action {
    let mut fields = Vec::new();
    if let Some(t) = first_response {
        fields.push(field("first_response_due", value::datetime(t)));
    }
    if let Some(t) = resolution {
        fields.push(field("resolution_due", value::datetime(t)));
    }
    action::update_fields(EntityKind::Ticket, "t1", fields)
}

fn check_at(t: i64) -> Action {
    action::schedule_keyed("frt:t1", t, "t1")
}

fn cancel() -> Action {
    action::cancel_timer("frt:t1")
}

fn dt(t: i64) -> FieldValue {
    value::datetime(t)
}

fn choice(s: &str) -> FieldValue {
    value::choice(s)
}

const NULL: FieldValue = FieldValue::Null;

// --- Due times on creation -------------------------------------------------------------

#[test]
fn new_tickets_get_due_times_by_priority() {
    for (priority, first_response, resolution) in [
        ("low", 24 * HOUR, 7 * 24 * HOUR),
        ("normal", 8 * HOUR, 3 * 24 * HOUR),
        ("high", 4 * HOUR, 24 * HOUR),
        ("urgent", HOUR, 4 * HOUR),
    ] {
        let t = ticket(vec![("priority", choice(priority))]);
        install(vec![t.clone()]);
        assert_eq!(
            on_event(&created(&t)),
            vec![
                set_dues(Some(t0() + first_response), Some(t0() + resolution)),
                check_at(t0() + first_response),
            ],
            "{priority}"
        );
    }
}

#[test]
fn a_ticket_without_a_priority_counts_as_normal() {
    let t = ticket(vec![("priority", NULL)]);
    install(vec![t.clone()]);
    assert_eq!(
        on_event(&created(&t)),
        vec![
            set_dues(Some(t0() + 8 * HOUR), Some(t0() + 72 * HOUR)),
            check_at(t0() + 8 * HOUR),
        ]
    );
}

#[test]
fn settings_change_the_targets_and_zero_turns_one_off() {
    let t = ticket(vec![]);
    TestHost::for_plugin::<SlaEscalation>()
        .set("first_response_minutes_normal", FieldValue::Integer(90))
        .set("resolution_minutes_normal", FieldValue::Integer(0))
        .with_records([t.clone()])
        .install();
    assert_eq!(
        on_event(&created(&t)),
        vec![
            set_dues(Some(t0() + 90 * MINUTE), None),
            check_at(t0() + 90 * MINUTE)
        ]
    );

    TestHost::for_plugin::<SlaEscalation>()
        .set("first_response_minutes_normal", FieldValue::Integer(0))
        .with_records([t.clone()])
        .install();
    assert_eq!(
        on_event(&created(&t)),
        vec![set_dues(None, Some(t0() + 72 * HOUR))],
        "no first-response target, so no check"
    );
}

#[test]
fn due_times_given_at_creation_are_kept_and_checked() {
    let given = t0() + 2 * HOUR;
    let t = ticket(vec![("first_response_due", dt(given))]);
    install(vec![t.clone()]);
    assert_eq!(
        on_event(&created(&t)),
        vec![set_dues(None, Some(t0() + 72 * HOUR)), check_at(given)]
    );
}

#[test]
fn a_ticket_created_answered_gets_due_times_but_no_check() {
    let t = ticket(vec![("first_response_at", dt(t0()))]);
    install(vec![t.clone()]);
    assert_eq!(
        on_event(&created(&t)),
        vec![set_dues(Some(t0() + 8 * HOUR), Some(t0() + 72 * HOUR))]
    );
}

#[test]
fn tickets_created_resolved_or_closed_get_nothing() {
    for status in ["resolved", "closed"] {
        let t = ticket(vec![("status", choice(status))]);
        install(vec![t.clone()]);
        assert_eq!(on_event(&created(&t)), vec![], "{status}");
    }
}

#[test]
fn a_pending_ticket_is_waiting_on_the_team_too() {
    let t = ticket(vec![("status", choice("pending"))]);
    install(vec![t.clone()]);
    assert_eq!(
        on_event(&created(&t)),
        vec![
            set_dues(Some(t0() + 8 * HOUR), Some(t0() + 72 * HOUR)),
            check_at(t0() + 8 * HOUR),
        ]
    );
}

#[test]
fn a_ticket_deleted_before_its_events_arrive_is_left_alone() {
    install(vec![]);
    let t = ticket(vec![]);
    assert_eq!(on_event(&created(&t)), vec![]);
    assert_eq!(
        on_event(&changed("priority", choice("normal"), choice("high"))),
        vec![]
    );
    assert_eq!(on_timer(t0() + 9 * HOUR), vec![]);
}

// --- Priority changes --------------------------------------------------------------------

/// A normal ticket with the due times the plugin gave it at creation, now at `priority`.
fn with_dues(priority: &str, extra: Vec<(&str, FieldValue)>) -> Entity {
    let mut fields = vec![
        ("priority", choice(priority)),
        ("first_response_due", dt(t0() + 8 * HOUR)),
        ("resolution_due", dt(t0() + 72 * HOUR)),
    ];
    fields.extend(extra);
    ticket(fields)
}

#[test]
fn a_priority_change_moves_the_due_times_by_the_difference_in_targets() {
    install(vec![with_dues("high", vec![])]);
    assert_eq!(
        on_event(&changed("priority", choice("normal"), choice("high"))),
        vec![
            set_dues(Some(t0() + 4 * HOUR), Some(t0() + 24 * HOUR)),
            check_at(t0() + 4 * HOUR),
        ],
        "the same as counting high's targets from the creation"
    );
    install(vec![with_dues("low", vec![])]);
    assert_eq!(
        on_event(&changed("priority", choice("normal"), choice("low"))),
        vec![
            set_dues(Some(t0() + 24 * HOUR), Some(t0() + 168 * HOUR)),
            check_at(t0() + 24 * HOUR),
        ]
    );
}

#[test]
fn a_due_time_moved_by_hand_keeps_its_extra_time() {
    install(vec![with_dues(
        "high",
        vec![("first_response_due", dt(t0() + 10 * HOUR))],
    )]);
    assert_eq!(
        on_event(&changed("priority", choice("normal"), choice("high"))),
        vec![
            set_dues(Some(t0() + 6 * HOUR), Some(t0() + 24 * HOUR)),
            check_at(t0() + 6 * HOUR),
        ]
    );
}

#[test]
fn a_priority_change_without_due_times_counts_from_the_creation() {
    install(vec![ticket(vec![("priority", choice("urgent"))])]);
    assert_eq!(
        on_event(&changed("priority", choice("normal"), choice("urgent"))),
        vec![
            set_dues(Some(t0() + HOUR), Some(t0() + 4 * HOUR)),
            check_at(t0() + HOUR),
        ]
    );
}

#[test]
fn a_due_time_set_in_the_same_change_is_kept() {
    let mine = t0() + 30 * MINUTE;
    install(vec![with_dues(
        "high",
        vec![("first_response_due", dt(mine))],
    )]);
    assert_eq!(
        on_event(&updated(vec![
            change("priority", choice("normal"), choice("high")),
            change("first_response_due", dt(t0() + 8 * HOUR), dt(mine)),
        ])),
        vec![set_dues(None, Some(t0() + 24 * HOUR)), check_at(mine)]
    );
}

#[test]
fn once_answered_only_the_resolution_due_time_moves() {
    install(vec![with_dues(
        "high",
        vec![("first_response_at", dt(t0() + HOUR))],
    )]);
    assert_eq!(
        on_event(&changed("priority", choice("normal"), choice("high"))),
        vec![set_dues(None, Some(t0() + 24 * HOUR)), cancel()]
    );
}

#[test]
fn a_priority_without_a_target_clears_the_due_time_and_the_check() {
    TestHost::for_plugin::<SlaEscalation>()
        .set("first_response_minutes_low", FieldValue::Integer(0))
        .with_records([with_dues("low", vec![])])
        .install();
    assert_eq!(
        on_event(&changed("priority", choice("normal"), choice("low"))),
        vec![
            action::update_fields(
                EntityKind::Ticket,
                "t1",
                vec![
                    field("first_response_due", NULL),
                    field("resolution_due", dt(t0() + 168 * HOUR)),
                ]
            ),
            cancel(),
        ]
    );
    // Back up to normal: the due time an agent set meanwhile under low is theirs to keep.
    let theirs = t0() + 5 * HOUR;
    TestHost::for_plugin::<SlaEscalation>()
        .set("first_response_minutes_low", FieldValue::Integer(0))
        .with_records([with_dues(
            "normal",
            vec![
                ("first_response_due", dt(theirs)),
                ("resolution_due", dt(t0() + 168 * HOUR)),
            ],
        )])
        .install();
    assert_eq!(
        on_event(&changed("priority", choice("low"), choice("normal"))),
        vec![set_dues(None, Some(t0() + 72 * HOUR))]
    );
}

// --- Status changes and hand edits ---------------------------------------------------------

#[test]
fn reopening_restarts_the_clock_from_the_reopening() {
    let reopen = t0() + 5 * 24 * HOUR;
    let mut e = changed("status", choice("resolved"), choice("open"));
    e.at = reopen;
    install(vec![with_dues("normal", vec![])]);
    assert_eq!(
        on_event(&e),
        vec![
            set_dues(Some(reopen + 8 * HOUR), Some(reopen + 72 * HOUR)),
            check_at(reopen + 8 * HOUR),
        ]
    );
    // Answered before it was resolved: only the resolution clock restarts.
    install(vec![with_dues(
        "normal",
        vec![("first_response_at", dt(t0() + HOUR))],
    )]);
    e.changes[0].before = choice("closed");
    assert_eq!(
        on_event(&e),
        vec![set_dues(None, Some(reopen + 72 * HOUR)), cancel()]
    );
}

#[test]
fn a_first_response_or_resolving_cancels_the_check() {
    install(vec![with_dues(
        "normal",
        vec![("first_response_at", dt(t0() + HOUR))],
    )]);
    assert_eq!(
        on_event(&changed("first_response_at", NULL, dt(t0() + HOUR))),
        vec![cancel()]
    );
    for status in ["resolved", "closed"] {
        install(vec![with_dues("normal", vec![("status", choice(status))])]);
        assert_eq!(
            on_event(&changed("status", choice("open"), choice(status))),
            vec![cancel()],
            "{status}"
        );
    }
}

#[test]
fn deleting_a_ticket_cancels_the_check() {
    install(vec![]);
    assert_eq!(
        on_event(&event(
            Operation::Deleted,
            vec![change("subject", value::text("Printer on fire"), NULL)],
            "user:ana"
        )),
        vec![cancel()]
    );
}

#[test]
fn pending_and_back_leaves_the_check_alone() {
    // Already overdue: setting the check again would escalate once more.
    install(vec![with_dues(
        "normal",
        vec![("status", choice("pending"))],
    )]);
    assert_eq!(
        on_event(&changed("status", choice("open"), choice("pending"))),
        vec![]
    );
    install(vec![with_dues("normal", vec![])]);
    assert_eq!(
        on_event(&changed("status", choice("pending"), choice("open"))),
        vec![]
    );
}

#[test]
fn an_agent_moving_the_due_time_moves_the_check() {
    let later = t0() + 20 * HOUR;
    install(vec![with_dues(
        "normal",
        vec![("first_response_due", dt(later))],
    )]);
    assert_eq!(
        on_event(&changed(
            "first_response_due",
            dt(t0() + 8 * HOUR),
            dt(later)
        )),
        vec![check_at(later)]
    );
    install(vec![with_dues(
        "normal",
        vec![("first_response_due", NULL)],
    )]);
    assert_eq!(
        on_event(&changed("first_response_due", dt(t0() + 8 * HOUR), NULL)),
        vec![cancel()]
    );
}

#[test]
fn other_kinds_and_unrelated_changes_are_ignored() {
    install(vec![with_dues("normal", vec![])]);
    assert_eq!(
        on_event(&changed(
            "subject",
            value::text("Printer"),
            value::text("Printer on fire")
        )),
        vec![]
    );
    let mut contact = changed("priority", choice("normal"), choice("high"));
    contact.kind = EntityKind::Contact;
    assert_eq!(on_event(&contact), vec![]);
}

// --- Escalation -----------------------------------------------------------------------------

fn note(body: &str) -> Action {
    Action::LogInteraction(NewInteraction {
        interaction_kind: "note".to_owned(),
        subject: Some("SLA escalation".to_owned()),
        body: body.to_owned(),
        linked_kind: EntityKind::Ticket,
        linked_id: "t1".to_owned(),
    })
}

fn task(due: i64, assignee: Option<&str>) -> Action {
    action::create_task(
        "First response overdue: Printer on fire",
        EntityKind::Ticket,
        "t1",
        Some(due),
        assignee,
    )
}

#[test]
fn an_overdue_ticket_is_escalated_one_step() {
    install(vec![with_dues("normal", vec![])]);
    let now = at("2026-03-02T17:01:00Z");
    assert_eq!(
        on_timer(now),
        vec![
            action::update_fields(
                EntityKind::Ticket,
                "t1",
                vec![
                    field("priority", choice("high")),
                    field("first_response_due", dt(now + 4 * HOUR)),
                    field("resolution_due", dt(now + 24 * HOUR)),
                ]
            ),
            check_at(now + 4 * HOUR),
            task(now + 30 * MINUTE, Some("ana")),
            note(
                "No first response by 2026-03-02 17:00 UTC, the normal-priority target. \
                 Priority raised from normal to high; first response now due by \
                 2026-03-02 21:01 UTC. Task created for ana."
            ),
        ]
    );
}

#[test]
fn escalation_never_moves_the_resolution_due_time_later() {
    let soon = at("2026-03-02T18:00:00Z");
    install(vec![with_dues(
        "normal",
        vec![("resolution_due", dt(soon))],
    )]);
    let now = at("2026-03-02T17:01:00Z");
    assert_eq!(
        on_timer(now)[0],
        action::update_fields(
            EntityKind::Ticket,
            "t1",
            vec![
                field("priority", choice("high")),
                field("first_response_due", dt(now + 4 * HOUR)),
            ]
        )
    );
}

/// Applies the plugin's actions to the test host as the server would, returning the events
/// they cause (actor: the plugin).
fn apply(actions: &[Action], when: i64) -> Vec<Event> {
    testing::apply(actions, "plugin:sla-escalation", when)
}

/// When the ticket's next check is, if `actions` set one.
fn scheduled(actions: &[Action]) -> Option<i64> {
    testing::timers(actions).first().map(|t| {
        assert_eq!(t.key.as_deref(), Some("frt:t1"));
        assert_eq!(t.payload, "t1");
        t.at
    })
}

#[test]
fn escalation_climbs_one_step_per_overdue_check_then_stops_at_urgent() {
    let t = ticket(vec![("priority", choice("low"))]);
    install(vec![t.clone()]);
    let first = on_event(&created(&t));
    assert!(!apply(&first, t0()).is_empty());
    let mut next = scheduled(&first).expect("a first check");
    assert_eq!(next, t0() + 24 * HOUR);
    let mut priorities = Vec::new();
    let mut tasks = 0;
    for _ in 0..10 {
        let now = next + MINUTE;
        let actions = on_timer(now);
        tasks += testing::tasks(&actions).len();
        // Its own changes come back as events and must change nothing.
        for e in apply(&actions, now) {
            assert_eq!(SlaEscalation::on_event(&e, now), Ok(vec![]));
        }
        let record = testing::with(|h| h.records[0].clone());
        priorities.push(record.text("priority").unwrap_or_default().to_owned());
        match scheduled(&actions) {
            Some(t) => {
                assert!(t > now, "the next check is later, not at once: no cascade");
                next = t;
            }
            None => break,
        }
    }
    assert_eq!(priorities, ["normal", "high", "urgent", "urgent"]);
    assert_eq!(tasks, 4, "one task per escalation, and the checks stop");
}

#[test]
fn an_overdue_urgent_ticket_gets_a_last_task_and_note() {
    install(vec![ticket(vec![
        ("priority", choice("urgent")),
        ("first_response_due", dt(t0() + HOUR)),
        ("resolution_due", dt(t0() + 4 * HOUR)),
    ])]);
    let now = t0() + 2 * HOUR;
    assert_eq!(
        on_timer(now),
        vec![
            task(now + 30 * MINUTE, Some("ana")),
            note(
                "No first response by 2026-03-02 10:00 UTC, the urgent-priority target. \
                 The ticket is already urgent, so the priority stays. Task created for ana. \
                 No further escalations will follow."
            ),
        ]
    );
}

#[test]
fn an_unassigned_ticket_s_task_goes_to_the_fallback_or_to_nobody() {
    let t = with_dues("urgent", vec![("assignee", NULL)]);
    install(vec![t.clone()]);
    let now = t0() + 9 * HOUR;
    let actions = on_timer(now);
    assert!(
        actions.contains(&task(now + 30 * MINUTE, None)),
        "{actions:?}"
    );
    assert!(
        matches!(actions.last(), Some(Action::LogInteraction(n))
            if n.body.contains("Task created, unassigned: the ticket has no assignee.")),
        "{actions:?}"
    );

    TestHost::for_plugin::<SlaEscalation>()
        .set("fallback_assignee", value::text(" lead-agent "))
        .set("task_due_minutes", FieldValue::Integer(120))
        .with_records([t])
        .install();
    assert!(on_timer(now).contains(&task(now + 2 * HOUR, Some("lead-agent"))));
}

#[test]
fn answered_resolved_or_untargeted_tickets_are_not_escalated() {
    let now = t0() + 9 * HOUR;
    for (what, extra) in [
        ("answered", vec![("first_response_at", dt(t0() + HOUR))]),
        ("resolved", vec![("status", choice("resolved"))]),
        ("closed", vec![("status", choice("closed"))]),
        ("due time cleared", vec![("first_response_due", NULL)]),
    ] {
        install(vec![with_dues("normal", extra)]);
        assert_eq!(on_timer(now), vec![], "{what}");
    }
}

#[test]
fn pending_tickets_are_escalated_too() {
    install(vec![with_dues(
        "normal",
        vec![("status", choice("pending"))],
    )]);
    let actions = on_timer(t0() + 9 * HOUR);
    assert!(
        matches!(&actions[0], Action::UpdateFields(u) if u.fields[0] == field("priority", choice("high")))
    );
}

#[test]
fn a_check_that_fires_before_a_moved_due_time_waits_for_it() {
    let later = t0() + 12 * HOUR;
    install(vec![with_dues(
        "normal",
        vec![("first_response_due", dt(later))],
    )]);
    assert_eq!(on_timer(t0() + 8 * HOUR), vec![check_at(later)]);
}

#[test]
fn its_own_changes_never_trigger_anything() {
    install(vec![with_dues("high", vec![])]);
    for changes in [
        vec![change("priority", choice("normal"), choice("high"))],
        vec![change("first_response_due", dt(t0()), dt(t0() + HOUR))],
        vec![change("status", choice("resolved"), choice("open"))],
    ] {
        let e = event(Operation::Updated, changes, "plugin:sla-escalation");
        assert_eq!(on_event(&e), vec![]);
    }
    // Another plugin's change is a change like a person's.
    let e = event(
        Operation::Updated,
        vec![change("priority", choice("normal"), choice("high"))],
        "plugin:triage",
    );
    assert_eq!(on_event(&e).len(), 2);
}

// --- Describe, manifest, helpers --------------------------------------------------------------

#[test]
fn describe_declares_the_settings_subscriptions_and_capabilities() {
    let info = SlaEscalation::describe();
    assert_eq!(info.subscriptions, vec![EntityKind::Ticket]);
    assert_eq!(info.capabilities.read, vec![EntityKind::Ticket]);
    assert_eq!(
        info.capabilities.actions,
        [
            "update-fields",
            "create-task",
            "log-interaction",
            "schedule"
        ]
    );
    let names: Vec<&str> = info.settings.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "first_response_minutes_low",
            "first_response_minutes_normal",
            "first_response_minutes_high",
            "first_response_minutes_urgent",
            "resolution_minutes_low",
            "resolution_minutes_normal",
            "resolution_minutes_high",
            "resolution_minutes_urgent",
            "task_due_minutes",
            "fallback_assignee",
        ]
    );
}

/// The manifest is what an admin reviews before install, and the host refuses a plugin whose
/// `describe` disagrees with it.
#[test]
fn the_manifest_matches_describe() {
    let manifest = include_str!("../kith-plugin.toml");
    let problems = testing::manifest_mismatches::<SlaEscalation>(PLUGIN_ID, manifest);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let info = SlaEscalation::describe();
    assert!(
        info.settings.iter().all(|s| s.help.is_some()),
        "every setting has help"
    );
}

#[test]
fn times_read_as_utc_minutes() {
    assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
    assert_eq!(
        format_time(at("2024-02-29T23:59:59Z")),
        "2024-02-29 23:59 UTC"
    );
    assert_eq!(
        format_time(at("1969-12-31T23:00:00Z")),
        "1969-12-31 23:00 UTC"
    );
}
