//! SLA escalation: gives every open ticket a first-response and a resolution due time from its
//! priority, and escalates a ticket nobody has answered by its first-response due time.
//!
//! # Due times
//!
//! The targets are settings, in minutes, one per priority and kind of target
//! (`first_response_minutes_<priority>` and `resolution_minutes_<priority>`):
//!
//! | priority | first response | resolution |
//! |---|---|---|
//! | urgent | 60 (1 hour) | 240 (4 hours) |
//! | high | 240 (4 hours) | 1,440 (1 day) |
//! | normal | 480 (8 hours) | 4,320 (3 days) |
//! | low | 1,440 (1 day) | 10,080 (1 week) |
//!
//! A target of 0 (or less) turns it off for that priority: a ticket at that priority gets no
//! due time of that kind from the plugin (a priority change to it clears one the plugin would
//! have moved) and nothing is scheduled for it. The due times are written to the ticket's
//! `first_response_due` and `resolution_due`:
//!
//! - **Created** open or pending: the targets count from the creation. A due time given with
//!   the ticket (an import, or an agent who set it) is kept.
//! - **Reopened** (resolved or closed back to open or pending): the resolution target counts
//!   from the reopening, and so does the first-response target if the ticket was never
//!   answered.
//! - **Priority changed** by a person (or another plugin): each due time moves by the
//!   difference between the new and the old priority's targets. For due times this plugin
//!   set, that is the same as counting the new priority's targets from the creation (or the
//!   reopening), and a due time an agent moved by hand keeps its extra time. A missing due
//!   time is counted from the creation. A due time the same change set explicitly is kept,
//!   as is one set under a priority without that target (an agent's), and the first-response
//!   due time of a ticket already answered is history, not changed.
//! - **Due time changed by hand**: the first-response check moves with it (or is cancelled
//!   when the due time is cleared).
//!
//! # Escalation
//!
//! While a ticket is unanswered and active, a timer keyed `frt:<ticket id>` (payload: the
//! ticket id) waits for its first-response due time; scheduling with the key moves the
//! ticket's one timer rather than adding another. When it fires, the plugin reads the ticket,
//! and if it is still open or pending, still has no `first_response_at`, and is not due
//! later after all, it escalates in one all-or-nothing set of actions:
//!
//! - the priority goes up one step (low → normal → high → urgent), and the due times are
//!   counted **from the escalation**, not from the creation: the first response is due the
//!   new priority's target after now, and the resolution the same, unless it was due sooner
//!   already. Counting from the creation would put a ticket escalated from normal to high
//!   past its new due time at once, and the next timer would cascade it to urgent in the same
//!   instant;
//! - a task `First response overdue: <subject>` for the ticket's assignee (or the
//!   `fallback_assignee` setting for an unassigned ticket), due `task_due_minutes` (30) after
//!   now, linked to the ticket;
//! - a note on the ticket saying what was overdue since when, what changed, and who got the
//!   task;
//! - the next check, at the new first-response due time.
//!
//! An urgent ticket cannot go higher: its first overdue check still creates the task and the
//! note, and then the checks stop, so a ticket gets at most four escalations (low to normal,
//! to high, to urgent, and the urgent one).
//!
//! The timer is cancelled when the ticket gets its first response, is resolved or closed, or
//! is deleted.
//!
//! # No loops
//!
//! The plugin's own changes come back to it as ticket events with the actor
//! `plugin:sla-escalation`; it ignores them all. Everything its changes imply (the new due
//! times, the next check) is decided in the call that makes them, so there is nothing left to
//! react to, and its own due-time updates can never reschedule anything.

use kith_sdk::host;
use kith_sdk::time::{self, MINUTE};
use kith_sdk::{
    Action, EntityExt, EntityKind, Event, FieldChange, FieldValue, Level, NewInteraction,
    Operation, Plugin, PluginInfo, SettingDef, SettingType, Settings, Timestamp, action, field,
    plugin_info, setting, value,
};

/// The plugin.
pub struct SlaEscalation;

/// The plugin's id, as in its manifest.
pub const PLUGIN_ID: &str = "sla-escalation";

/// The actor of the events this plugin's own actions cause.
const OWN_ACTOR: &str = "plugin:sla-escalation";

/// Priorities from lowest to highest, with their default first-response and resolution
/// targets in minutes.
const PRIORITIES: [(&str, i64, i64); 4] = [
    ("low", 1_440, 10_080),
    ("normal", 480, 4_320),
    ("high", 240, 1_440),
    ("urgent", 60, 240),
];

/// The priority of a ticket that has none (the server's default).
const DEFAULT_PRIORITY: &str = "normal";

const TASK_DUE_MINUTES: &str = "task_due_minutes";
const FALLBACK_ASSIGNEE: &str = "fallback_assignee";

const FIRST_RESPONSE_DUE: &str = "first_response_due";
const RESOLUTION_DUE: &str = "resolution_due";

impl Plugin for SlaEscalation {
    fn describe() -> PluginInfo {
        let mut settings = Vec::new();
        for (kind, label) in [
            ("first_response", "First response"),
            ("resolution", "Resolution"),
        ] {
            for (priority, first_response, resolution) in PRIORITIES {
                let default = if kind == "first_response" {
                    first_response
                } else {
                    resolution
                };
                settings.push(SettingDef {
                    help: Some(format!(
                        "Minutes from a {priority}-priority ticket's creation (or reopening) to its {} due time: 60 is an hour, 1440 a day. 0 turns this target off.",
                        label.to_lowercase()
                    )),
                    ..setting(
                        &target_setting(kind, priority),
                        &format!("{label} target, {priority} priority (minutes)"),
                        SettingType::Integer,
                        value::integer(default),
                    )
                });
            }
        }
        settings.push(SettingDef {
            help: Some("How soon the escalation task is due, in minutes.".to_owned()),
            ..setting(
                TASK_DUE_MINUTES,
                "Escalation task due in (minutes)",
                SettingType::Integer,
                value::integer(30),
            )
        });
        settings.push(SettingDef {
            help: Some("Who gets the escalation task of a ticket without an assignee. Empty leaves the task unassigned.".to_owned()),
            ..setting(
                FALLBACK_ASSIGNEE,
                "Assignee for unassigned tickets",
                SettingType::Text,
                value::text(""),
            )
        });
        let mut info = plugin_info(
            "SLA escalation",
            env!("CARGO_PKG_VERSION"),
            "Sets first-response and resolution due times on tickets by priority, and escalates a ticket without a first response by its due time: raises the priority, creates a task for the assignee and logs a note.",
        );
        info.settings = settings;
        info.subscriptions = vec![EntityKind::Ticket];
        info.capabilities.read = vec![EntityKind::Ticket];
        info.capabilities.actions = [
            "update-fields",
            "create-task",
            "log-interaction",
            "schedule",
        ]
        .map(str::to_owned)
        .to_vec();
        info
    }

    fn on_event(event: &Event, _now: Timestamp) -> Result<Vec<Action>, String> {
        if event.kind != EntityKind::Ticket || event.actor == OWN_ACTOR {
            return Ok(Vec::new());
        }
        match event.op {
            Operation::Deleted => Ok(vec![action::cancel_timer(&timer_key(&event.id))]),
            Operation::Created => on_created(event),
            Operation::Updated => on_updated(event),
        }
    }

    fn on_timer(payload: &str, _due: Timestamp, now: Timestamp) -> Result<Vec<Action>, String> {
        let id = payload.trim();
        let Some(ticket) = host::get(EntityKind::Ticket, id)? else {
            // Deleted since: nothing to escalate, and the fired timer is already gone.
            return Ok(Vec::new());
        };
        if !is_active(ticket.text("status")) || ticket.datetime("first_response_at").is_some() {
            return Ok(Vec::new());
        }
        let Some(due) = ticket.datetime(FIRST_RESPONSE_DUE) else {
            // Someone cleared the due time: the ticket has no first-response target any more.
            return Ok(Vec::new());
        };
        if due > now {
            // The due time moved later and this check was not moved with it (its event is
            // still on the way): wait for the new time instead of escalating early.
            return Ok(vec![action::schedule_keyed(&timer_key(id), due, id)]);
        }
        Ok(escalate(&ticket, due, now))
    }
}

/// The name of a target setting: `first_response_minutes_high`.
fn target_setting(kind: &str, priority: &str) -> String {
    format!("{kind}_minutes_{priority}")
}

/// The key of a ticket's first-response check.
fn timer_key(ticket_id: &str) -> String {
    format!("frt:{ticket_id}")
}

/// A priority as the plugin knows it: one of [`PRIORITIES`], else the default.
fn known_priority(p: Option<&str>) -> &'static str {
    PRIORITIES
        .iter()
        .map(|(name, _, _)| *name)
        .find(|name| p.is_some_and(|p| p.eq_ignore_ascii_case(name)))
        .unwrap_or(DEFAULT_PRIORITY)
}

/// The next priority up; urgent stays urgent.
fn raised(p: &'static str) -> &'static str {
    let i = PRIORITIES.iter().position(|(n, _, _)| *n == p).unwrap_or(1);
    PRIORITIES[(i + 1).min(PRIORITIES.len() - 1)].0
}

/// Open and pending tickets are waiting for the team; resolved and closed ones are not.
fn is_active(status: Option<&str>) -> bool {
    matches!(status.unwrap_or("open"), "open" | "pending")
}

/// A priority's targets, in microseconds; `None` where the setting turns one off.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Targets {
    first_response: Option<i64>,
    resolution: Option<i64>,
}

impl Targets {
    fn of(settings: &Settings, priority: &str) -> Targets {
        let minutes = |kind: &str| {
            settings
                .integer(&target_setting(kind, priority))
                .filter(|m| *m > 0)
                .map(|m| m.saturating_mul(MINUTE))
        };
        Targets {
            first_response: minutes("first_response"),
            resolution: minutes("resolution"),
        }
    }

    /// The target for a due field.
    fn get(self, due_field: &str) -> Option<i64> {
        if due_field == FIRST_RESPONSE_DUE {
            self.first_response
        } else {
            self.resolution
        }
    }
}

fn change<'a>(event: &'a Event, name: &str) -> Option<&'a FieldChange> {
    event.changes.iter().find(|c| c.field == name)
}

fn as_text(v: &FieldValue) -> Option<&str> {
    match v {
        FieldValue::Text(s) | FieldValue::Choice(s) => Some(s),
        _ => None,
    }
}

fn datetime_or_null(t: Option<Timestamp>) -> FieldValue {
    t.map_or(FieldValue::Null, value::datetime)
}

fn on_created(event: &Event) -> Result<Vec<Action>, String> {
    let after = |name: &str| change(event, name).map(|c| &c.after);
    if !is_active(after("status").and_then(as_text)) {
        return Ok(Vec::new());
    }
    // The ticket as it is now, so nothing is written to a ticket deleted since (which would
    // fail the whole call, again on every retry) and nothing overwrites a due time set since.
    let Some(ticket) = host::get(EntityKind::Ticket, &event.id)? else {
        return Ok(Vec::new());
    };
    // The priority it was created with: a later change arrives as its own event and shifts
    // the due times from these.
    let targets = Targets::of(
        &host::settings(),
        known_priority(after("priority").and_then(as_text)),
    );
    let mut fields = Vec::new();
    let mut first_response_due = ticket.datetime(FIRST_RESPONSE_DUE);
    for name in [FIRST_RESPONSE_DUE, RESOLUTION_DUE] {
        if ticket.datetime(name).is_some() {
            continue;
        }
        if let Some(target) = targets.get(name) {
            let due = event.at.saturating_add(target);
            fields.push(field(name, value::datetime(due)));
            if name == FIRST_RESPONSE_DUE {
                first_response_due = Some(due);
            }
        }
    }
    let mut actions = Vec::new();
    if !fields.is_empty() {
        actions.push(action::update_fields(EntityKind::Ticket, &event.id, fields));
    }
    let waiting =
        is_active(ticket.text("status")) && ticket.datetime("first_response_at").is_none();
    if let (true, Some(due)) = (waiting, first_response_due) {
        actions.push(action::schedule_keyed(
            &timer_key(&event.id),
            due,
            &event.id,
        ));
    }
    Ok(actions)
}

fn on_updated(event: &Event) -> Result<Vec<Action>, String> {
    let relevant = [
        "status",
        "priority",
        "first_response_at",
        FIRST_RESPONSE_DUE,
        RESOLUTION_DUE,
    ];
    if !relevant.iter().any(|f| change(event, f).is_some()) {
        return Ok(Vec::new());
    }
    let Some(ticket) = host::get(EntityKind::Ticket, &event.id)? else {
        return Ok(Vec::new());
    };
    let key = timer_key(&event.id);
    let answered = ticket.datetime("first_response_at").is_some();
    if !is_active(ticket.text("status")) {
        return Ok(vec![action::cancel_timer(&key)]);
    }
    let settings = host::settings();
    let status = change(event, "status");
    let reopened = status.is_some_and(|c| {
        matches!(as_text(&c.before), Some("resolved" | "closed")) && is_active(as_text(&c.after))
    });
    let priority = change(event, "priority");
    // The priority as of this event: its new value if it changed here, else the ticket's.
    let current = known_priority(
        priority
            .and_then(|c| as_text(&c.after))
            .or(ticket.text("priority")),
    );
    let created = ticket.datetime("created_at").unwrap_or(event.at);

    let mut due = [
        (FIRST_RESPONSE_DUE, ticket.datetime(FIRST_RESPONSE_DUE)),
        (RESOLUTION_DUE, ticket.datetime(RESOLUTION_DUE)),
    ];
    for (name, time) in &mut due {
        // A due time this very change set was set on purpose; and once answered, the
        // first-response due time is a record of what the target was, not a target.
        if change(event, name).is_some() || (*name == FIRST_RESPONSE_DUE && answered) {
            continue;
        }
        if reopened {
            if let Some(target) = Targets::of(&settings, current).get(name) {
                *time = Some(event.at.saturating_add(target));
            }
        } else if let Some(c) = priority {
            let old = Targets::of(&settings, known_priority(as_text(&c.before))).get(name);
            let new = Targets::of(&settings, current).get(name);
            *time = match (*time, old, new) {
                // Set by hand under a priority with no target: keep it.
                (Some(t), None, _) => Some(t),
                (Some(t), Some(old), Some(new)) => Some(t.saturating_add(new - old)),
                (_, _, None) => None,
                (None, _, Some(new)) => Some(created.saturating_add(new)),
            };
        }
    }

    let mut actions = Vec::new();
    let fields: Vec<_> = due
        .iter()
        .filter(|(name, time)| *time != ticket.datetime(name))
        .map(|(name, time)| field(name, datetime_or_null(*time)))
        .collect();
    let first_response_due = due[0].1;
    let moved = first_response_due != ticket.datetime(FIRST_RESPONSE_DUE)
        || change(event, FIRST_RESPONSE_DUE).is_some()
        || reopened;
    if !fields.is_empty() {
        actions.push(action::update_fields(EntityKind::Ticket, &event.id, fields));
    }
    if answered {
        actions.push(action::cancel_timer(&key));
    } else if moved {
        // Otherwise (open to pending and back, say) the pending check stays as it is: setting
        // it again at a due time already past would escalate the ticket once more.
        actions.push(match first_response_due {
            Some(at) => action::schedule_keyed(&key, at, &event.id),
            None => action::cancel_timer(&key),
        });
    }
    Ok(actions)
}

/// The actions escalating an unanswered ticket whose first response was due at `due`.
fn escalate(ticket: &kith_sdk::Entity, due: Timestamp, now: Timestamp) -> Vec<Action> {
    let settings = host::settings();
    let id = ticket.id.as_str();
    let from = known_priority(ticket.text("priority"));
    let to = raised(from);
    let subject = ticket.text("subject").unwrap_or("(no subject)");
    let fallback = settings
        .text(FALLBACK_ASSIGNEE)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let assignee = ticket.text("assignee").or(fallback);
    let task_due = now.saturating_add(
        settings
            .integer(TASK_DUE_MINUTES)
            .unwrap_or(30)
            .max(0)
            .saturating_mul(MINUTE),
    );
    let for_whom = match assignee {
        Some(a) => format!("Task created for {a}."),
        None => "Task created, unassigned: the ticket has no assignee.".to_owned(),
    };
    let overdue = format!(
        "No first response by {}, the {from}-priority target.",
        format_time(due)
    );

    let mut actions = Vec::new();
    let body = if to == from {
        format!(
            "{overdue} The ticket is already urgent, so the priority stays. {for_whom} No further escalations will follow."
        )
    } else {
        let targets = Targets::of(&settings, to);
        let next_due = targets.first_response.map(|t| now.saturating_add(t));
        let mut fields = vec![
            field("priority", value::choice(to)),
            field(FIRST_RESPONSE_DUE, datetime_or_null(next_due)),
        ];
        if let Some(t) = targets.resolution {
            let resolution_due = now.saturating_add(t);
            if ticket
                .datetime(RESOLUTION_DUE)
                .is_none_or(|old| resolution_due < old)
            {
                fields.push(field(RESOLUTION_DUE, value::datetime(resolution_due)));
            }
        }
        actions.push(action::update_fields(EntityKind::Ticket, id, fields));
        let then = match next_due {
            Some(t) => {
                actions.push(action::schedule_keyed(&timer_key(id), t, id));
                format!("first response now due by {}", format_time(t))
            }
            None => format!("no first-response target at {to} priority"),
        };
        format!("{overdue} Priority raised from {from} to {to}; {then}. {for_whom}")
    };
    host::log(
        Level::Info,
        &format!("escalating ticket {id} ({from} -> {to})"),
    );
    actions.push(action::create_task(
        &format!("First response overdue: {subject}"),
        EntityKind::Ticket,
        id,
        Some(task_due),
        assignee,
    ));
    actions.push(Action::LogInteraction(NewInteraction {
        interaction_kind: "note".to_owned(),
        subject: Some("SLA escalation".to_owned()),
        body,
        linked_kind: EntityKind::Ticket,
        linked_id: id.to_owned(),
    }));
    actions
}

/// A time for people to read: `2026-03-01 09:30 UTC`.
fn format_time(t: Timestamp) -> String {
    let (hour, minute, _) = time::time_of_day(t);
    format!("{} {hour:02}:{minute:02} UTC", time::format_date(t))
}

kith_sdk::register_plugin!(SlaEscalation);

#[cfg(test)]
mod tests;
