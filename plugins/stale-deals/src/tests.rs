//! Native tests of the stale-deal rules against `kith_sdk::testing::TestHost`: when the check
//! is set, the follow-up task and its period, rescheduling after activity, and closed deals.

use kith_sdk::testing::{self, TestHost, change, entity, parse_instant};
use kith_sdk::time::{DAY, HOUR};
use kith_sdk::{
    Action, Entity, EntityKind, Event, FieldChange, FieldValue, Operation, Plugin, SettingType,
    action, field, filter, value,
};

use super::{PLUGIN_ID, StaleDeals};

const NULL: FieldValue = FieldValue::Null;

/// 2026-03-20 12:00 UTC: "now" in these tests.
fn now() -> i64 {
    parse_instant("2026-03-20T12:00:00Z").expect("a time")
}

/// An open deal owned by bo, created 30 days ago, with `extra` fields replacing defaults.
fn deal(id: &str, extra: Vec<(&str, FieldValue)>) -> Entity {
    let mut fields = vec![
        field("title", value::text("Acme renewal")),
        field("stage", value::choice("proposal")),
        field("status", value::choice("open")),
        field("owner", value::text("bo")),
        field("created_at", value::datetime(now() - 30 * DAY)),
    ];
    for (name, v) in extra {
        fields.retain(|f| f.name != name);
        if v != NULL {
            fields.push(field(name, v));
        }
    }
    entity(EntityKind::Deal, id, fields)
}

fn interaction(id: &str, deal_id: &str, kind: &str, days_ago: i64) -> Entity {
    entity(
        EntityKind::Interaction,
        id,
        [
            field("kind", value::choice(kind)),
            field("deal_id", value::reference(deal_id)),
            field("occurred_at", value::datetime(now() - days_ago * DAY)),
            field("created_at", value::datetime(now() - days_ago * DAY)),
        ],
    )
}

fn task(id: &str, title: &str, created: i64) -> Entity {
    entity(
        EntityKind::Task,
        id,
        [
            field("title", value::text(title)),
            field("deal_id", value::reference("d1")),
            field("created_at", value::datetime(created)),
        ],
    )
}

fn install(records: Vec<Entity>) {
    TestHost::for_plugin::<StaleDeals>()
        .with_records(records)
        .install();
}

/// An event by bo, now.
fn event(kind: EntityKind, id: &str, op: Operation, changes: Vec<FieldChange>) -> Event {
    Event {
        actor: "user:bo".to_owned(),
        at: now(),
        ..testing::event(kind, id, op, changes)
    }
}

/// Bo changing one field of deal d1.
fn deal_changed(field: &str, before: FieldValue, after: FieldValue) -> Event {
    event(
        EntityKind::Deal,
        "d1",
        Operation::Updated,
        vec![change(field, before, after)],
    )
}

fn on_event(e: &Event) -> Vec<Action> {
    StaleDeals::on_event(e, now()).expect("on_event succeeds")
}

fn on_timer(at: i64) -> Vec<Action> {
    StaleDeals::on_timer("d1", at, at).expect("on_timer succeeds")
}

fn check_at(id: &str, at: i64) -> Action {
    action::schedule_keyed(&format!("stale:{id}"), at, id)
}

fn follow_up(at: i64, owner: Option<&str>) -> Action {
    action::create_task(
        "Follow up: Acme renewal",
        EntityKind::Deal,
        "d1",
        Some(at + 24 * HOUR),
        owner,
    )
}

// --- Scheduling from events -----------------------------------------------------------------

#[test]
fn a_new_deal_is_checked_one_stale_period_after_its_creation() {
    let d = deal("d1", vec![("created_at", value::datetime(now()))]);
    install(vec![d.clone()]);
    let created = Event {
        actor: "user:bo".to_owned(),
        at: now(),
        ..testing::created(&d)
    };
    assert_eq!(on_event(&created), vec![check_at("d1", now() + 14 * DAY)]);
}

#[test]
fn the_stale_period_is_a_setting() {
    TestHost::for_plugin::<StaleDeals>()
        .set("stale_days", FieldValue::Integer(45))
        .with_records([deal("d1", vec![]), interaction("i1", "d1", "call", 10)])
        .install();
    assert_eq!(
        on_event(&deal_changed(
            "amount",
            value::money("10"),
            value::money("20")
        )),
        vec![check_at("d1", now() - 10 * DAY + 45 * DAY)]
    );
}

#[test]
fn a_deal_already_stale_when_it_changes_is_checked_at_once() {
    install(vec![
        deal("d1", vec![]),
        interaction("i1", "d1", "call", 20),
    ]);
    assert_eq!(
        on_event(&deal_changed(
            "stage",
            value::choice("qualified"),
            value::choice("proposal")
        )),
        vec![check_at("d1", now())]
    );
}

#[test]
fn won_lost_and_deleted_deals_cancel_the_check() {
    for status in ["won", "lost"] {
        install(vec![deal("d1", vec![("status", value::choice(status))])]);
        assert_eq!(
            on_event(&deal_changed(
                "status",
                value::choice("open"),
                value::choice(status)
            )),
            vec![action::cancel_timer("stale:d1")],
            "{status}"
        );
        assert_eq!(on_timer(now()), vec![], "no task for a {status} deal");
    }
    install(vec![]);
    let deleted = event(
        EntityKind::Deal,
        "d1",
        Operation::Deleted,
        vec![change("title", value::text("Acme renewal"), NULL)],
    );
    assert_eq!(on_event(&deleted), vec![action::cancel_timer("stale:d1")]);
}

#[test]
fn interactions_reschedule_the_deal_they_belong_to() {
    install(vec![
        deal("d1", vec![]),
        deal("d2", vec![]),
        interaction("i1", "d1", "call", 2),
    ]);
    let created = event(
        EntityKind::Interaction,
        "i1",
        Operation::Created,
        vec![
            change("kind", NULL, value::choice("call")),
            change("deal_id", NULL, value::reference("d1")),
            change("occurred_at", NULL, value::datetime(now() - 2 * DAY)),
        ],
    );
    assert_eq!(
        on_event(&created),
        vec![check_at("d1", now() - 2 * DAY + 14 * DAY)]
    );

    // Moved to another deal: both deals' checks move.
    install(vec![
        deal("d1", vec![]),
        deal("d2", vec![]),
        interaction("i1", "d2", "call", 2),
    ]);
    let moved = event(
        EntityKind::Interaction,
        "i1",
        Operation::Updated,
        vec![change(
            "deal_id",
            value::reference("d1"),
            value::reference("d2"),
        )],
    );
    assert_eq!(
        on_event(&moved),
        vec![
            check_at("d2", now() - 2 * DAY + 14 * DAY),
            check_at("d1", now()),
        ]
    );
}

#[test]
fn a_re_dated_interaction_reschedules_its_deal_and_other_edits_do_not() {
    install(vec![deal("d1", vec![]), interaction("i1", "d1", "call", 1)]);
    let redated = event(
        EntityKind::Interaction,
        "i1",
        Operation::Updated,
        vec![change(
            "occurred_at",
            value::datetime(now() - 9 * DAY),
            value::datetime(now() - DAY),
        )],
    );
    assert_eq!(on_event(&redated), vec![check_at("d1", now() + 13 * DAY)]);
    let body = event(
        EntityKind::Interaction,
        "i1",
        Operation::Updated,
        vec![change("body", value::text("hi"), value::text("hello"))],
    );
    assert_eq!(on_event(&body), vec![]);
}

#[test]
fn a_deleted_interaction_no_longer_counts() {
    // i1 (yesterday) is gone; the last one left is 20 days old, so the deal is due now.
    install(vec![
        deal("d1", vec![]),
        interaction("i0", "d1", "email", 20),
    ]);
    let deleted = event(
        EntityKind::Interaction,
        "i1",
        Operation::Deleted,
        vec![
            change("deal_id", value::reference("d1"), NULL),
            change("occurred_at", value::datetime(now() - DAY), NULL),
        ],
    );
    assert_eq!(on_event(&deleted), vec![check_at("d1", now())]);
}

#[test]
fn interactions_without_a_deal_and_other_kinds_are_ignored() {
    install(vec![deal("d1", vec![])]);
    let contact_call = event(
        EntityKind::Interaction,
        "i9",
        Operation::Created,
        vec![
            change("kind", NULL, value::choice("call")),
            change("contact_id", NULL, value::reference("c1")),
        ],
    );
    assert_eq!(on_event(&contact_call), vec![]);
    let ticket = event(
        EntityKind::Ticket,
        "t1",
        Operation::Updated,
        vec![change(
            "status",
            value::choice("open"),
            value::choice("closed"),
        )],
    );
    assert_eq!(on_event(&ticket), vec![]);
}

#[test]
fn an_interaction_on_a_deal_deleted_since_is_ignored() {
    install(vec![interaction("i1", "d1", "call", 1)]);
    let created = event(
        EntityKind::Interaction,
        "i1",
        Operation::Created,
        vec![change("deal_id", NULL, value::reference("d1"))],
    );
    assert_eq!(on_event(&created), vec![]);
    assert_eq!(on_timer(now()), vec![]);
}

#[test]
fn its_own_events_are_ignored() {
    install(vec![
        deal("d1", vec![]),
        interaction("i1", "d1", "call", 20),
    ]);
    let mut e = deal_changed(
        "stage",
        value::choice("qualified"),
        value::choice("proposal"),
    );
    e.actor = "plugin:stale-deals".to_owned();
    assert_eq!(on_event(&e), vec![]);
    let mut task_created = event(
        EntityKind::Task,
        "k1",
        Operation::Created,
        vec![change("deal_id", NULL, value::reference("d1"))],
    );
    assert_eq!(on_event(&task_created), vec![]);
    task_created.actor = "plugin:stale-deals".to_owned();
    assert_eq!(on_event(&task_created), vec![]);
}

// --- The check ---------------------------------------------------------------------------------

#[test]
fn a_stale_deal_gets_a_follow_up_task_for_its_owner_and_a_next_check() {
    install(vec![
        deal("d1", vec![]),
        interaction("i1", "d1", "call", 20),
        interaction("i2", "d1", "email", 16),
        interaction("other", "d2", "call", 1),
    ]);
    assert_eq!(
        on_timer(now()),
        vec![
            follow_up(now(), Some("bo")),
            check_at("d1", now() + 14 * DAY)
        ]
    );
    let asked: Vec<_> = TestHost::queries()
        .into_iter()
        .map(|q| (q.kind, q.filters))
        .collect();
    let by_deal = filter("deal_id", "eq", "d1");
    assert_eq!(
        asked,
        vec![
            (EntityKind::Interaction, vec![by_deal.clone()]),
            (EntityKind::Task, vec![by_deal]),
        ],
        "the deal's interactions and tasks are read through indexed filters"
    );
}

#[test]
fn a_deal_with_no_interactions_counts_from_its_creation() {
    install(vec![deal(
        "d1",
        vec![("created_at", value::datetime(now() - 14 * DAY))],
    )]);
    assert_eq!(
        on_timer(now()),
        vec![
            follow_up(now(), Some("bo")),
            check_at("d1", now() + 14 * DAY)
        ]
    );
    install(vec![deal(
        "d1",
        vec![("created_at", value::datetime(now() - 13 * DAY))],
    )]);
    assert_eq!(on_timer(now()), vec![check_at("d1", now() + DAY)]);
}

#[test]
fn a_recent_interaction_moves_the_check_instead() {
    // The newest interaction is not the first the host returns.
    install(vec![
        deal("d1", vec![]),
        interaction("i1", "d1", "call", 20),
        interaction("i2", "d1", "meeting", 3),
        interaction("i3", "d1", "email", 9),
    ]);
    assert_eq!(on_timer(now()), vec![check_at("d1", now() + 11 * DAY)]);
}

#[test]
fn an_interaction_dated_ahead_counts_from_its_date() {
    install(vec![
        deal("d1", vec![]),
        interaction("i1", "d1", "meeting", -5),
    ]);
    assert_eq!(on_timer(now()), vec![check_at("d1", now() + 19 * DAY)]);
}

#[test]
fn ignored_interaction_kinds_do_not_count() {
    TestHost::for_plugin::<StaleDeals>()
        .set(
            "ignored_interaction_kinds",
            value::choices(["Note ", "sms"]),
        )
        .with_records([
            deal("d1", vec![]),
            interaction("i1", "d1", "note", 1),
            interaction("i2", "d1", "sms", 2),
            interaction("i3", "d1", "call", 15),
        ])
        .install();
    assert_eq!(
        on_timer(now()),
        vec![
            follow_up(now(), Some("bo")),
            check_at("d1", now() + 14 * DAY)
        ]
    );
}

#[test]
fn a_deal_without_an_owner_gets_an_unassigned_task() {
    TestHost::for_plugin::<StaleDeals>()
        .set("task_due_hours", FieldValue::Integer(4))
        .with_records([deal("d1", vec![("owner", NULL)])])
        .install();
    assert_eq!(
        on_timer(now()),
        vec![
            action::create_task(
                "Follow up: Acme renewal",
                EntityKind::Deal,
                "d1",
                Some(now() + 4 * HOUR),
                None
            ),
            check_at("d1", now() + 14 * DAY),
        ]
    );
}

#[test]
fn a_recent_follow_up_task_holds_off_the_next_one() {
    install(vec![
        deal("d1", vec![]),
        interaction("i1", "d1", "call", 25),
        task("k1", "Follow up: Acme renewal", now() - 5 * DAY),
        task("k2", "Send the contract", now() - DAY),
    ]);
    assert_eq!(on_timer(now()), vec![check_at("d1", now() + 9 * DAY)]);
    // Nor does a deal update in between bring the check forward.
    assert_eq!(
        on_event(&deal_changed(
            "amount",
            value::money("1"),
            value::money("2")
        )),
        vec![check_at("d1", now() + 9 * DAY)]
    );

    install(vec![
        deal("d1", vec![]),
        task("k1", "Follow up: Acme renewal", now() - 14 * DAY),
    ]);
    assert_eq!(on_timer(now())[0], follow_up(now(), Some("bo")));
}

/// Stores the tasks among `actions` in the test host as the server would: a moment after
/// `now`.
fn store_tasks(actions: &[Action], now: i64) {
    testing::apply(actions, "plugin:stale-deals", now + 5_000);
}

fn next_check(actions: &[Action]) -> i64 {
    let timer = *testing::timers(actions).first().expect("a next check");
    assert_eq!(
        (timer.key.as_deref(), timer.payload.as_str()),
        (Some("stale:d1"), "d1")
    );
    timer.at
}

#[test]
fn one_task_per_stale_period_when_nothing_happens() {
    install(vec![deal("d1", vec![])]);
    let mut at = now();
    let mut task_days = Vec::new();
    for _ in 0..4 {
        let actions = on_timer(at);
        if !testing::tasks(&actions).is_empty() {
            task_days.push((at - now()) / DAY);
        }
        store_tasks(&actions, at);
        let next = next_check(&actions);
        // A deal edit halfway to the next check leaves it where it is (give or take the
        // moment between the check and the task's creation).
        let edit = deal_changed("title", value::text("Acme"), value::text("Acme renewal"));
        let again = StaleDeals::on_event(&edit, next - 7 * DAY).expect("on_event succeeds");
        assert!((next_check(&again) - next).abs() < 60_000_000, "{again:?}");
        // The check fires right on time: the task stored a moment after the last check must
        // not make it come back a few milliseconds later.
        at = next;
    }
    assert_eq!(task_days, [0, 14, 28, 42]);
}

#[test]
fn zero_days_turns_the_checks_off() {
    TestHost::for_plugin::<StaleDeals>()
        .set("stale_days", FieldValue::Integer(0))
        .with_records([deal("d1", vec![])])
        .install();
    assert_eq!(
        on_event(&deal_changed(
            "amount",
            value::money("1"),
            value::money("2")
        )),
        vec![action::cancel_timer("stale:d1")]
    );
    assert_eq!(on_timer(now()), vec![]);
}

// --- Describe and manifest ---------------------------------------------------------------------

#[test]
fn describe_declares_the_settings_subscriptions_and_capabilities() {
    let info = StaleDeals::describe();
    assert_eq!(
        info.subscriptions,
        vec![EntityKind::Deal, EntityKind::Interaction]
    );
    assert_eq!(
        info.capabilities.read,
        vec![EntityKind::Deal, EntityKind::Interaction, EntityKind::Task]
    );
    assert_eq!(info.capabilities.actions, ["create-task", "schedule"]);
    let settings: Vec<(&str, SettingType, &FieldValue)> = info
        .settings
        .iter()
        .map(|s| (s.name.as_str(), s.setting_type, &s.default))
        .collect();
    assert_eq!(
        settings,
        vec![
            ("stale_days", SettingType::Integer, &FieldValue::Integer(14)),
            (
                "task_due_hours",
                SettingType::Integer,
                &FieldValue::Integer(24)
            ),
            (
                "ignored_interaction_kinds",
                SettingType::TextList,
                &FieldValue::Choices(Vec::new())
            ),
        ]
    );
}

/// The manifest is what an admin reviews before install, and the host refuses a plugin whose
/// `describe` disagrees with it.
#[test]
fn the_manifest_matches_describe() {
    let manifest = include_str!("../kith-plugin.toml");
    let problems = testing::manifest_mismatches::<StaleDeals>(PLUGIN_ID, manifest);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let info = StaleDeals::describe();
    assert!(
        info.settings.iter().all(|s| s.help.is_some()),
        "every setting has help"
    );
}
