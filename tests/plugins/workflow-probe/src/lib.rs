//! The workflow probe: a test plugin whose reactions are easy to count.
//!
//! In `act` mode, for each new contact it creates a welcome task, tags the contact
//! `welcomed`, counts the contact in its private storage, and schedules a timer (keyed by
//! the contact) `timer_secs` later, which logs a note on the contact when it fires. A
//! contact tagged `ping` is retagged `pong` and back, forever: a loop for the host to cut
//! off. Events about a contact whose first name is `fail_first_name` fail. In `noop` mode it
//! returns nothing (the delivery benchmark).

use kith_sdk::{
    Action, Capabilities, Entity, EntityKind, Event, FieldValue, Operation, Plugin, PluginInfo,
    SettingType, Timestamp, action, host, setting,
};

/// The plugin.
pub struct Probe;

const SECOND: i64 = 1_000_000;

impl Plugin for Probe {
    fn describe() -> PluginInfo {
        PluginInfo {
            settings: vec![
                kith_sdk::SettingDef {
                    options: vec!["act".to_owned(), "noop".to_owned()],
                    ..setting(
                        "mode",
                        "Mode",
                        SettingType::Choice,
                        FieldValue::Choice("act".to_owned()),
                    )
                },
                setting(
                    "timer_secs",
                    "Timer delay (seconds)",
                    SettingType::Integer,
                    FieldValue::Integer(60),
                ),
                setting(
                    "fail_first_name",
                    "Fail on contacts named",
                    SettingType::Text,
                    FieldValue::Text(String::new()),
                ),
            ],
            subscriptions: vec![EntityKind::Contact],
            capabilities: Capabilities {
                read: vec![EntityKind::Contact],
                // `create-task` is left out on purpose: only the manifest asks for it, so a
                // test can install the probe without it and see the host refuse the action.
                actions: ["add-tag", "remove-tag", "log-interaction", "schedule"]
                    .map(str::to_owned)
                    .to_vec(),
            },
            ..kith_sdk::plugin_info(
                "Workflow probe",
                env!("CARGO_PKG_VERSION"),
                "Reacts to contacts on purpose, for the delivery tests.",
            )
        }
    }

    fn on_event(event: &Event, now: Timestamp) -> Result<Vec<Action>, String> {
        let settings = host::settings();
        if settings.text("mode") == Some("noop") || event.kind != EntityKind::Contact {
            return Ok(Vec::new());
        }
        let after = |name: &str| {
            event
                .changes
                .iter()
                .find(|c| c.field == name)
                .map(|c| &c.after)
        };
        let fail = settings.text("fail_first_name").unwrap_or_default();
        if !fail.is_empty() {
            let named = match after("first_name") {
                Some(FieldValue::Text(n)) => n == fail,
                _ => host::get(EntityKind::Contact, &event.id)?
                    .and_then(|c| first_name(&c))
                    .is_some_and(|n| n == fail),
            };
            if named {
                return Err(format!("asked to fail on contacts named {fail}"));
            }
        }
        match event.op {
            Operation::Created => {
                let name = match after("first_name") {
                    Some(FieldValue::Text(n)) => n.clone(),
                    _ => "there".to_owned(),
                };
                let count = host::kv_get("count")
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
                host::kv_set("count", (count + 1).to_string().as_bytes())?;
                let delay = settings.integer("timer_secs").unwrap_or(60);
                Ok(vec![
                    action::create_task(
                        &format!("Welcome {name}"),
                        EntityKind::Contact,
                        &event.id,
                        Some(now + SECOND * 86_400),
                        None,
                    ),
                    action::add_tag(EntityKind::Contact, &event.id, "welcomed"),
                    action::schedule_keyed(
                        &format!("welcome:{}", event.id),
                        now + delay * SECOND,
                        &event.id,
                    ),
                ])
            }
            Operation::Updated => {
                let tags = match after("tags") {
                    Some(FieldValue::Choices(t)) => t.clone(),
                    _ => return Ok(Vec::new()),
                };
                let swap = |from: &str, to: &str| {
                    vec![
                        action::remove_tag(EntityKind::Contact, &event.id, from),
                        action::add_tag(EntityKind::Contact, &event.id, to),
                    ]
                };
                if tags.iter().any(|t| t == "ping") {
                    Ok(swap("ping", "pong"))
                } else if tags.iter().any(|t| t == "pong") {
                    Ok(swap("pong", "ping"))
                } else {
                    Ok(Vec::new())
                }
            }
            Operation::Deleted => Ok(Vec::new()),
        }
    }

    fn on_timer(payload: &str, due: Timestamp, _now: Timestamp) -> Result<Vec<Action>, String> {
        Ok(vec![action::log_interaction(
            "note",
            &format!("Timer fired for {payload} (due {due})"),
            EntityKind::Contact,
            payload,
        )])
    }
}

fn first_name(c: &Entity) -> Option<String> {
    c.fields
        .iter()
        .find(|f| f.name == "first_name")
        .and_then(|f| match &f.value {
            FieldValue::Text(t) => Some(t.clone()),
            _ => None,
        })
}

kith_sdk::register_plugin!(Probe);
