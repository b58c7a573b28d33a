//! Native tests of the stale-deal rules against `kith_sdk::testing::TestHost`: when the check
//! is set, the follow-up task and its period, rescheduling after activity, and closed deals.

use kith_sdk::testing::{self, TestHost, entity, parse_instant};
use kith_sdk::{
    Action, Entity, EntityKind, Event, FieldChange, FieldValue, Filter, Operation, Plugin,
    SettingType, WIT_VERSION, action, field, value,
};

use super::StaleDeals;

const DAY: i64 = 86_400_000_000;
const HOUR: i64 = 3_600_000_000;
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

fn event(
    kind: EntityKind,
    id: &str,
    op: Operation,
    changes: Vec<(&str, FieldValue, FieldValue)>,
) -> Event {
    Event {
        seq: 7,
        kind,
        id: id.to_owned(),
        op,
        changes: changes
            .into_iter()
            .map(|(f, before, after)| FieldChange {
                field: f.to_owned(),
                before,
                after,
            })
            .collect(),
        actor: "user:bo".to_owned(),
        at: now(),
    }
}

fn deal_updated(changes: Vec<(&str, FieldValue, FieldValue)>) -> Event {
    event(EntityKind::Deal, "d1", Operation::Updated, changes)
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
    let created = event(
        EntityKind::Deal,
        "d1",
        Operation::Created,
        d.fields
            .iter()
            .map(|f| (f.name.as_str(), NULL, f.value.clone()))
            .collect(),
    );
    assert_eq!(on_event(&created), vec![check_at("d1", now() + 14 * DAY)]);
}

#[test]
fn the_stale_period_is_a_setting() {
    TestHost::for_plugin::<StaleDeals>()
        .set("stale_days", FieldValue::Integer(45))
        .with_records([deal("d1", vec![]), interaction("i1", "d1", "call", 10)])
        .install();
    assert_eq!(
        on_event(&deal_updated(vec![(
            "amount",
            value::money("10"),
            value::money("20")
        )])),
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
        on_event(&deal_updated(vec![(
            "stage",
            value::choice("qualified"),
            value::choice("proposal")
        )])),
        vec![check_at("d1", now())]
    );
}

#[test]
fn won_lost_and_deleted_deals_cancel_the_check() {
    for status in ["won", "lost"] {
        install(vec![deal("d1", vec![("status", value::choice(status))])]);
        assert_eq!(
            on_event(&deal_updated(vec![(
                "status",
                value::choice("open"),
                value::choice(status)
            )])),
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
        vec![("title", value::text("Acme renewal"), NULL)],
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
            ("kind", NULL, value::choice("call")),
            ("deal_id", NULL, value::reference("d1")),
            ("occurred_at", NULL, value::datetime(now() - 2 * DAY)),
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
        vec![("deal_id", value::reference("d1"), value::reference("d2"))],
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
        vec![(
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
        vec![("body", value::text("hi"), value::text("hello"))],
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
            ("deal_id", value::reference("d1"), NULL),
            ("occurred_at", value::datetime(now() - DAY), NULL),
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
            ("kind", NULL, value::choice("call")),
            ("contact_id", NULL, value::reference("c1")),
        ],
    );
    assert_eq!(on_event(&contact_call), vec![]);
    let ticket = event(
        EntityKind::Ticket,
        "t1",
        Operation::Updated,
        vec![("status", value::choice("open"), value::choice("closed"))],
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
        vec![("deal_id", NULL, value::reference("d1"))],
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
    let mut e = deal_updated(vec![(
        "stage",
        value::choice("qualified"),
        value::choice("proposal"),
    )]);
    e.actor = "plugin:stale-deals".to_owned();
    assert_eq!(on_event(&e), vec![]);
    let mut task_created = event(
        EntityKind::Task,
        "k1",
        Operation::Created,
        vec![("deal_id", NULL, value::reference("d1"))],
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
    let queries = TestHost::queries();
    let filter = Filter {
        field: "deal_id".to_owned(),
        op: "eq".to_owned(),
        value: "d1".to_owned(),
    };
    let asked: Vec<(EntityKind, Vec<Filter>)> =
        queries.into_iter().map(|q| (q.kind, q.filters)).collect();
    assert_eq!(
        asked,
        vec![
            (EntityKind::Interaction, vec![filter.clone()]),
            (EntityKind::Task, vec![filter]),
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
        on_event(&deal_updated(vec![(
            "amount",
            value::money("1"),
            value::money("2")
        )])),
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
    testing::with(|h| {
        for a in actions {
            if let Action::CreateTask(t) = a {
                let id = format!("k{}", h.records.len());
                h.records.push(entity(
                    EntityKind::Task,
                    &id,
                    [
                        field("title", value::text(t.title.as_str())),
                        field("deal_id", value::reference(t.linked_id.as_str())),
                        field("created_at", value::datetime(now + 5_000)),
                    ],
                ));
            }
        }
    });
}

fn next_check(actions: &[Action]) -> i64 {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Schedule(t) => {
                assert_eq!(
                    (t.key.as_deref(), t.payload.as_str()),
                    (Some("stale:d1"), "d1")
                );
                Some(t.at)
            }
            _ => None,
        })
        .expect("a next check")
}

#[test]
fn one_task_per_stale_period_when_nothing_happens() {
    install(vec![deal("d1", vec![])]);
    let mut at = now();
    let mut task_days = Vec::new();
    for _ in 0..4 {
        let actions = on_timer(at);
        if actions.iter().any(|a| matches!(a, Action::CreateTask(_))) {
            task_days.push((at - now()) / DAY);
        }
        store_tasks(&actions, at);
        let next = next_check(&actions);
        // A deal edit halfway to the next check leaves it where it is (give or take the
        // moment between the check and the task's creation).
        let edit = deal_updated(vec![(
            "title",
            value::text("Acme"),
            value::text("Acme renewal"),
        )]);
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
        on_event(&deal_updated(vec![(
            "amount",
            value::money("1"),
            value::money("2")
        )])),
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

fn kind_name(k: EntityKind) -> &'static str {
    match k {
        EntityKind::Contact => "contact",
        EntityKind::Company => "company",
        EntityKind::Deal => "deal",
        EntityKind::Ticket => "ticket",
        EntityKind::Interaction => "interaction",
        EntityKind::Task => "task",
    }
}

/// The manifest is what an admin reviews before install, and the host refuses a plugin whose
/// `describe` disagrees with it. The SDK has no TOML parser, so this renders what the manifest
/// should say and looks for it verbatim.
#[test]
fn the_manifest_matches_describe() {
    let manifest = include_str!("../kith-plugin.toml");
    let info = StaleDeals::describe();
    let q = |s: &str| format!("{s:?}");
    let list = |items: Vec<String>| {
        let quoted: Vec<String> = items.iter().map(|i| q(i)).collect();
        format!("[{}]", quoted.join(", "))
    };
    let kinds = |k: &[EntityKind]| list(k.iter().map(|k| kind_name(*k).to_owned()).collect());
    let mut expected = vec![
        format!("id = {}\n", q(super::PLUGIN_ID)),
        format!("name = {}\n", q(&info.name)),
        format!("version = {}\n", q(&info.version)),
        format!("wit = {}\n", q(WIT_VERSION)),
        format!("description = {}\n", q(&info.description)),
        // The host takes subscriptions from describe(); the manifest names them for the admin
        // in a comment, since it has no key for them.
        format!("# subscriptions = {}\n", kinds(&info.subscriptions)),
        format!(
            "[capabilities]\nread = {}\nactions = {}\n",
            kinds(&info.capabilities.read),
            list(info.capabilities.actions.clone())
        ),
    ];
    assert_eq!(
        manifest.matches("[[settings]]").count(),
        info.settings.len()
    );
    for s in &info.settings {
        let (ty, default) = match (&s.setting_type, &s.default) {
            (SettingType::Integer, FieldValue::Integer(i)) => ("integer", i.to_string()),
            (SettingType::TextList, FieldValue::Choices(l)) => ("text-list", list(l.clone())),
            other => panic!("render {other:?} in this test"),
        };
        let help = s.help.as_deref().expect("every setting has help");
        expected.push(format!(
            "[[settings]]\nname = {}\nlabel = {}\ntype = {}\ndefault = {default}\nhelp = {}\n",
            q(&s.name),
            q(&s.label),
            q(ty),
            q(help),
        ));
    }
    for want in expected {
        assert!(manifest.contains(&want), "the manifest lacks:\n{want}");
    }
}
