//! Stale deals: an open deal nobody has had an interaction about for a while gets a
//! follow-up task for its owner, once per stale period.
//!
//! # Settings
//!
//! - `stale_days` (14): days without an interaction after which an open deal is stale. 0
//!   turns the checks off (pending ones are cancelled as deals change).
//! - `task_due_hours` (24): how long after the check the follow-up task is due.
//! - `ignored_interaction_kinds` (empty): interaction kinds that do not count as activity,
//!   such as `note` if only exchanges with the customer should.
//!
//! # Behaviour
//!
//! A deal's *last activity* is the latest `occurred_at` of its interactions (those with its
//! `deal_id`), or its creation when that is later or there are none. Interactions dated in
//! the future (a meeting logged ahead) count from their date. The deal is *due a follow-up*
//! when its last activity and its last follow-up task (a task on the deal whose title starts
//! with "Follow up: ", whoever created it) are both at least `stale_days` old.
//!
//! - When an open deal is created or changed, or an interaction linked to it is created,
//!   re-dated, moved to or from it, or deleted, a timer keyed `stale:<deal id>` (payload: the
//!   deal id) is set for the moment the deal becomes due a follow-up; scheduling with the key
//!   moves the deal's one timer rather than adding another. A deal that is already due gets
//!   its check at once.
//! - When the timer fires, the plugin reads the deal again. If it is still open and due a
//!   follow-up, it creates the task `Follow up: <deal title>` for the deal's owner
//!   (unassigned without one), due `task_due_hours` later and linked to the deal, and sets the
//!   next check `stale_days` later. If there was activity (or a follow-up) since, it only
//!   moves the check to when the deal would become due. Reading everything again at the check
//!   is what makes the task come once per stale period, whatever order events and timers
//!   arrive in.
//! - A deal that is won, lost or deleted has its timer cancelled.
//!
//! The plugin's own actions create tasks and timers, neither of which it subscribes to, and it
//! ignores every event whose actor is `plugin:stale-deals`, so it never reacts to itself.

use kith_sdk::host;
use kith_sdk::time::{DAY, HOUR, MINUTE};
use kith_sdk::{
    Action, Entity, EntityExt, EntityKind, Event, FieldValue, Operation, Plugin, PluginInfo,
    SettingDef, SettingType, Settings, Timestamp, action, filter, plugin_info, setting, value,
};

/// The plugin.
pub struct StaleDeals;

/// The plugin's id, as in its manifest.
pub const PLUGIN_ID: &str = "stale-deals";

/// The actor of the events this plugin's own actions cause.
const OWN_ACTOR: &str = "plugin:stale-deals";

/// How the follow-up tasks' titles start; a task on the deal titled like this is a follow-up.
const FOLLOW_UP_PREFIX: &str = "Follow up: ";

/// A check that fires this close before its deal is due acts as if it were due: the task the
/// last check created was stored a moment after that check's `now`, so the next check, set
/// exactly one period after `now`, would otherwise find the deal due a few milliseconds
/// later and have to come back for it.
const GRACE_MICROS: i64 = MINUTE;

const STALE_DAYS: &str = "stale_days";
const TASK_DUE_HOURS: &str = "task_due_hours";
const IGNORED_KINDS: &str = "ignored_interaction_kinds";

impl Plugin for StaleDeals {
    fn describe() -> PluginInfo {
        let mut info = plugin_info(
            "Stale deals",
            env!("CARGO_PKG_VERSION"),
            "Creates a follow-up task for the owner of an open deal with no interaction for a set number of days, once per stale period.",
        );
        info.settings = vec![
            SettingDef {
                help: Some("Days without an interaction after which an open deal gets a follow-up task. 0 turns the checks off.".to_owned()),
                ..setting(STALE_DAYS, "Days until a deal is stale", SettingType::Integer, value::integer(14))
            },
            SettingDef {
                help: Some("How many hours after the check the follow-up task is due.".to_owned()),
                ..setting(TASK_DUE_HOURS, "Follow-up task due in (hours)", SettingType::Integer, value::integer(24))
            },
            SettingDef {
                help: Some("Interaction kinds (email, call, meeting, chat, sms, note) that do not count as activity on a deal.".to_owned()),
                ..setting(IGNORED_KINDS, "Interaction kinds to ignore", SettingType::TextList, value::choices(Vec::<String>::new()))
            },
        ];
        info.subscriptions = vec![EntityKind::Deal, EntityKind::Interaction];
        info.capabilities.read = vec![EntityKind::Deal, EntityKind::Interaction, EntityKind::Task];
        info.capabilities.actions = vec!["create-task".to_owned(), "schedule".to_owned()];
        info
    }

    fn on_event(event: &Event, now: Timestamp) -> Result<Vec<Action>, String> {
        if event.actor == OWN_ACTOR {
            return Ok(Vec::new());
        }
        let deals = match event.kind {
            EntityKind::Deal if event.op == Operation::Deleted => {
                return Ok(vec![action::cancel_timer(&timer_key(&event.id))]);
            }
            EntityKind::Deal => vec![event.id.clone()],
            EntityKind::Interaction => deals_of_interaction(event)?,
            _ => Vec::new(),
        };
        let settings = host::settings();
        let mut actions = Vec::new();
        for id in deals {
            // A deal deleted since has nothing to check (its own delete event cancels).
            let Some(deal) = host::get(EntityKind::Deal, &id)? else {
                continue;
            };
            actions.push(match plan(&deal, &settings, now)? {
                Plan::Stop => action::cancel_timer(&timer_key(&id)),
                Plan::CheckAt(at) => action::schedule_keyed(&timer_key(&id), at, &id),
                Plan::FollowUp => action::schedule_keyed(&timer_key(&id), now, &id),
            });
        }
        Ok(actions)
    }

    fn on_timer(payload: &str, _due: Timestamp, now: Timestamp) -> Result<Vec<Action>, String> {
        let id = payload.trim();
        let Some(deal) = host::get(EntityKind::Deal, id)? else {
            return Ok(Vec::new());
        };
        let settings = host::settings();
        Ok(match plan(&deal, &settings, now)? {
            // The timer has fired, so there is nothing left to cancel.
            Plan::Stop => Vec::new(),
            Plan::CheckAt(at) => vec![action::schedule_keyed(&timer_key(id), at, id)],
            Plan::FollowUp => {
                let title = deal.text("title").unwrap_or("(untitled deal)");
                let due_hours = settings.integer(TASK_DUE_HOURS).unwrap_or(24).max(0);
                vec![
                    action::create_task(
                        &format!("{FOLLOW_UP_PREFIX}{title}"),
                        EntityKind::Deal,
                        id,
                        Some(now.saturating_add(due_hours.saturating_mul(HOUR))),
                        deal.text("owner"),
                    ),
                    action::schedule_keyed(
                        &timer_key(id),
                        now.saturating_add(stale_period(&settings).unwrap_or(DAY)),
                        id,
                    ),
                ]
            }
        })
    }
}

/// The key of a deal's check.
fn timer_key(deal_id: &str) -> String {
    format!("stale:{deal_id}")
}

/// What a deal needs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Nothing: it is closed, or the checks are off.
    Stop,
    /// A check at this time, when it becomes due a follow-up.
    CheckAt(Timestamp),
    /// A follow-up task now.
    FollowUp,
}

/// `stale_days` in microseconds; `None` when the checks are off.
fn stale_period(settings: &Settings) -> Option<i64> {
    settings
        .integer(STALE_DAYS)
        .filter(|d| *d > 0)
        .map(|d| d.saturating_mul(DAY))
}

/// Decides from the deal as it is now, its interactions and its follow-up tasks.
fn plan(deal: &Entity, settings: &Settings, now: Timestamp) -> Result<Plan, String> {
    let Some(period) = stale_period(settings) else {
        return Ok(Plan::Stop);
    };
    if deal.text("status").unwrap_or("open") != "open" {
        return Ok(Plan::Stop);
    }
    let linked = [filter("deal_id", "eq", &deal.id)];
    let ignored = settings.list(IGNORED_KINDS);
    let last_interaction = host::query_all(EntityKind::Interaction, &linked)?
        .iter()
        .filter(|i| {
            let kind = i.text("kind").unwrap_or_default();
            !ignored.iter().any(|k| k.trim().eq_ignore_ascii_case(kind))
        })
        .filter_map(|i| {
            i.datetime("occurred_at")
                .or_else(|| i.datetime("created_at"))
        })
        .max();
    let last_follow_up = host::query_all(EntityKind::Task, &linked)?
        .iter()
        .filter(|t| {
            t.text("title")
                .is_some_and(|s| s.starts_with(FOLLOW_UP_PREFIX))
        })
        .filter_map(|t| t.datetime("created_at"))
        .max();
    let created = deal.datetime("created_at").unwrap_or(now);
    let latest = [Some(created), last_interaction, last_follow_up]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(created);
    let due = latest.saturating_add(period);
    Ok(if due <= now.saturating_add(GRACE_MICROS) {
        Plan::FollowUp
    } else {
        Plan::CheckAt(due)
    })
}

/// The deals whose last activity an interaction event may change: the deal it is linked to,
/// and the one it was linked to before when that changed.
fn deals_of_interaction(event: &Event) -> Result<Vec<String>, String> {
    let change = |name: &str| event.changes.iter().find(|c| c.field == name);
    let id_of = |v: &FieldValue| match v {
        FieldValue::Reference(s) | FieldValue::Text(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let mut deals = Vec::new();
    match (event.op, change("deal_id")) {
        (_, Some(c)) => {
            deals.extend(id_of(&c.after));
            deals.extend(id_of(&c.before));
        }
        // On create and delete every set field is in the changes, so no deal_id means none.
        (Operation::Created | Operation::Deleted, None) => {}
        // Only the date matters to the deal; an edit of the subject or body does not.
        (Operation::Updated, None) if change("occurred_at").is_some() => {
            if let Some(i) = host::get(EntityKind::Interaction, &event.id)? {
                deals.extend(i.text("deal_id").map(str::to_owned));
            }
        }
        (Operation::Updated, None) => {}
    }
    deals.dedup();
    Ok(deals)
}

kith_sdk::register_plugin!(StaleDeals);

#[cfg(test)]
mod tests;
