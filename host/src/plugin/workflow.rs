//! Workflow delivery: every plugin that subscribes to events or keeps timers gets a thread
//! of its own that feeds it the event log in order (`on-event`) and its due timers
//! (`on-timer`), turns the actions it returns into core [`Effect`]s after checking them
//! against its granted capabilities, and hands them to the store together with the cursor
//! move or fired timer ([`Delivery`]), so every event is handled exactly once in effect.
//!
//! One thread per plugin keeps one plugin's slowness or failures from holding up another,
//! and user requests never wait for any of them. A failed call is retried with exponential
//! backoff from the same event; [`SUSPEND_AFTER`] failures in a row suspend the plugin (the
//! registry's usual rule), and an admin's resume picks up from the stored cursor.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::DateTime;
use kith_core::clock::micros;
use kith_core::workflow::MAX_CHAIN_DEPTH;
use kith_core::{
    Command, Delivery, DeliveryFailure, Effect, EntityKind, Error as CoreError, Id, Input,
    Timestamp, Value,
};
use serde::Serialize;

use super::convert::{event_to_wit, kind_from_wit, value_from_wit};
use super::registry::{Active, Inner, Registry, SUSPEND_AFTER, lock};
use super::runtime::{CallReport, PluginError};
use super::wit::kith::plugin::types as w;

/// Events read from the log at a time.
const PAGE: usize = 256;
/// Due timers taken at a time.
const TIMER_PAGE: usize = 32;
/// How long an idle worker sleeps before it looks at the clock again for due timers (an
/// event wakes it at once).
const IDLE: Duration = Duration::from_millis(100);
/// The first retry waits this long; each further failure doubles it.
const RETRY_BASE: Duration = Duration::from_millis(200);
/// The longest wait between retries.
const RETRY_MAX: Duration = Duration::from_secs(60);
/// How often the supervisor looks for plugins that need a worker.
const SUPERVISE: Duration = Duration::from_millis(200);

/// The capability each action needs (`action:<name>`).
pub(super) fn capability(a: &w::Action) -> &'static str {
    match a {
        w::Action::UpdateFields(_) => "update-fields",
        w::Action::CreateTask(_) => "create-task",
        w::Action::LogInteraction(_) => "log-interaction",
        w::Action::AssignOwner(_) => "assign-owner",
        w::Action::AddTag(_) => "add-tag",
        w::Action::RemoveTag(_) => "remove-tag",
        w::Action::ChangeTicket(_) => "change-ticket",
        w::Action::MoveDeal(_) => "move-deal",
        w::Action::Schedule(_) | w::Action::CancelTimer(_) => "schedule",
    }
}

/// Checks a call's actions against the granted capabilities and converts them.
pub(super) fn effects(actions: Vec<w::Action>, granted: &[String]) -> Result<Vec<Effect>, String> {
    let mut out = Vec::with_capacity(actions.len());
    for a in actions {
        let cap = capability(&a);
        if !granted
            .iter()
            .any(|g| g.strip_prefix("action:") == Some(cap))
        {
            return Err(format!(
                "it returned a {cap} action without the action:{cap} capability"
            ));
        }
        if let Some(e) = effect(a)? {
            out.push(e);
        }
    }
    Ok(out)
}

fn id(s: &str) -> Result<Id, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not a record id (a UUID)"))
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

fn time(micros: i64) -> Result<Timestamp, String> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| format!("{micros} µs is not a representable time"))
}

/// The field that links a task or interaction to a record of `kind`.
fn link_field(kind: EntityKind) -> Result<&'static str, String> {
    match kind {
        EntityKind::Contact => Ok("contact_id"),
        EntityKind::Company => Ok("company_id"),
        EntityKind::Deal => Ok("deal_id"),
        EntityKind::Ticket => Ok("ticket_id"),
        other => Err(format!(
            "tasks and interactions link to contacts, companies, deals or tickets, not to {other}s"
        )),
    }
}

/// Creating a task or interaction linked to the record `linked_kind`/`linked_id`.
fn linked_create(
    kind: EntityKind,
    mut fields: BTreeMap<String, Value>,
    linked_kind: w::EntityKind,
    linked_id: &str,
) -> Result<Effect, String> {
    let link = link_field(kind_from_wit(linked_kind))?;
    fields.insert(link.to_owned(), Value::Ref(id(linked_id)?));
    Ok(Effect::Create {
        kind,
        input: Input {
            fields,
            custom: BTreeMap::new(),
        },
    })
}

fn effect(a: w::Action) -> Result<Option<Effect>, String> {
    Ok(Some(match a {
        w::Action::UpdateFields(u) => {
            let mut input = Input::default();
            for f in &u.fields {
                let v = value_from_wit(&f.value);
                match f.name.strip_prefix("custom.") {
                    Some(name) => input.custom.insert(name.to_owned(), v),
                    None => input.fields.insert(f.name.clone(), v),
                };
            }
            Effect::Update {
                kind: kind_from_wit(u.kind),
                id: id(&u.id)?,
                input,
            }
        }
        w::Action::CreateTask(t) => {
            let mut fields = BTreeMap::new();
            fields.insert("title".to_owned(), text(t.title));
            if let Some(due) = t.due {
                fields.insert("due_at".to_owned(), Value::DateTime(time(due)?));
            }
            if let Some(who) = t.assignee {
                fields.insert("assignee".to_owned(), text(who));
            }
            linked_create(EntityKind::Task, fields, t.linked_kind, &t.linked_id)?
        }
        w::Action::LogInteraction(i) => {
            let mut fields = BTreeMap::new();
            fields.insert("kind".to_owned(), text(i.interaction_kind));
            fields.insert("body".to_owned(), text(i.body));
            if let Some(s) = i.subject {
                fields.insert("subject".to_owned(), text(s));
            }
            linked_create(EntityKind::Interaction, fields, i.linked_kind, &i.linked_id)?
        }
        w::Action::AssignOwner(o) => Effect::Update {
            kind: kind_from_wit(o.kind),
            id: id(&o.id)?,
            input: Input::with([("owner", text(o.owner))]),
        },
        w::Action::AddTag(t) | w::Action::RemoveTag(t) if t.tag.trim().is_empty() => {
            return Err("a tag cannot be empty".to_owned());
        }
        w::Action::AddTag(t) => Effect::Tag {
            kind: kind_from_wit(t.kind),
            id: id(&t.id)?,
            tag: t.tag,
            add: true,
        },
        w::Action::RemoveTag(t) => Effect::Tag {
            kind: kind_from_wit(t.kind),
            id: id(&t.id)?,
            tag: t.tag,
            add: false,
        },
        w::Action::ChangeTicket(c) => {
            let mut fields = BTreeMap::new();
            if let Some(s) = c.status {
                fields.insert("status".to_owned(), text(s));
            }
            if let Some(p) = c.priority {
                fields.insert("priority".to_owned(), text(p));
            }
            if fields.is_empty() {
                return Ok(None);
            }
            Effect::Update {
                kind: EntityKind::Ticket,
                id: id(&c.id)?,
                input: Input {
                    fields,
                    custom: BTreeMap::new(),
                },
            }
        }
        w::Action::MoveDeal(m) => Effect::Update {
            kind: EntityKind::Deal,
            id: id(&m.id)?,
            input: Input::with([("stage", text(m.stage))]),
        },
        w::Action::Schedule(t) => Effect::Schedule {
            at: time(t.at)?,
            payload: t.payload,
            key: t.key,
        },
        w::Action::CancelTimer(key) => Effect::CancelTimer { key },
    }))
}

/// What admins see of a plugin's delivery.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryView {
    /// The plugin.
    pub plugin: String,
    /// Whether it receives events (it subscribes to some kinds).
    pub subscribes: Vec<EntityKind>,
    /// The sequence number of the last event it handled.
    pub cursor: u64,
    /// The newest event in the log.
    pub head: u64,
    /// Events not yet handled (of every kind; those it does not subscribe to pass quickly).
    pub lag: u64,
    /// Timers waiting to fire.
    pub pending_timers: u64,
    /// The soonest ones.
    pub next_timers: Vec<TimerView>,
    /// Failures in a row right now (it is suspended at [`SUSPEND_AFTER`]).
    pub consecutive_failures: u32,
    /// Recent failures, newest first.
    pub recent_failures: Vec<DeliveryFailure>,
}

/// A pending timer as shown.
#[derive(Debug, Clone, Serialize)]
pub struct TimerView {
    /// When it fires.
    pub at: Timestamp,
    /// Its key, if scheduled with one.
    pub key: Option<String>,
    /// Its payload (the first 200 characters).
    pub payload: String,
}

/// A workflow call's result, checked and converted.
struct Outcome {
    effects: Vec<Effect>,
    kv: Vec<(String, Option<Vec<u8>>)>,
    report: CallReport,
}

/// How one step of a worker went.
enum Step {
    /// Something was handled; look again at once.
    Progress,
    /// Nothing to do until an event arrives or a timer falls due.
    Idle,
    /// The plugin is disabled, suspended or failed to load.
    Paused,
    /// A call failed; wait before retrying.
    Failed,
}

impl Registry {
    /// A plugin's delivery state for admins.
    pub fn delivery(&self, plugin: &str) -> Result<DeliveryView, super::RegistryError> {
        let active = self.get_active(plugin)?;
        let store = self.store();
        let head = store.last_event_seq()?;
        let state = store.delivery_state(plugin)?;
        let cursor = state.as_ref().map_or(head, |s| s.cursor);
        let timers = store.timers(plugin, 10)?;
        let mut failures = state.map(|s| s.failures).unwrap_or_default();
        failures.reverse();
        Ok(DeliveryView {
            plugin: plugin.to_owned(),
            subscribes: active
                .info_ref()
                .map(|i| i.subscriptions.iter().map(|k| kind_from_wit(*k)).collect())
                .unwrap_or_default(),
            cursor,
            head,
            lag: head.saturating_sub(cursor),
            pending_timers: timers.pending,
            next_timers: timers
                .next
                .into_iter()
                .map(|(_, t)| TimerView {
                    at: t.at,
                    key: t.key,
                    payload: t.payload.chars().take(200).collect(),
                })
                .collect(),
            consecutive_failures: lock(&active.health).consecutive,
            recent_failures: failures,
        })
    }

    /// Starts workflow delivery: a supervisor thread that keeps one worker thread per
    /// installed plugin that subscribes to events or may schedule timers. Everything stops
    /// when the registry's last handle is dropped or the store closes.
    pub fn start_workflows(&self) -> Result<(), CoreError> {
        let weak = Arc::downgrade(&self.inner);
        std::thread::Builder::new()
            .name("kith-workflows".to_owned())
            .spawn(move || supervise(&weak))
            .map_err(|e| CoreError::invalid("workflows", e.to_string()))?;
        Ok(())
    }

    /// One worker step for `plugin`: due timers first, then a page of events.
    fn deliver_step(&self, active: &Active, cursor_hint: &mut u64) -> Result<Step, CoreError> {
        let Some((_, info)) = active.running() else {
            return Ok(Step::Paused);
        };
        let id = active.record.id.as_str();
        let store = self.store();
        let now = store.clock().now();
        let timers = store.due_timers(id, now, TIMER_PAGE)?;
        let progressed = !timers.is_empty();
        for (timer, stored) in timers {
            let outcome = self.call_workflow(active, "on-timer", |p| {
                p.on_timer(&stored.payload, stored.at.timestamp_micros(), micros(&now))
            });
            let failure = |message: String| DeliveryFailure {
                at: now,
                seq: None,
                timer: Some(stored.payload.chars().take(100).collect()),
                message,
            };
            let Outcome {
                effects,
                kv,
                report,
            } = match outcome {
                Ok(v) => v,
                Err(message) => return self.fail(active, failure(message)),
            };
            let d = Delivery {
                plugin: id.to_owned(),
                cursor: None,
                timer: Some(timer),
                // Time separates a timer from whatever scheduled it: a fresh chain.
                depth: 1,
                effects,
                kv,
                kv_quota: kv_quota(active),
                note: None,
            };
            match store.execute(Command::Deliver(d), id) {
                Ok(_) => self.succeeded(active, "on-timer", report),
                Err(CoreError::Conflict { .. }) => {}
                Err(CoreError::ShuttingDown) => return Err(CoreError::ShuttingDown),
                Err(e) => {
                    return self.fail(active, failure(format!("its actions were refused: {e}")));
                }
            }
        }

        let subscribed: Vec<EntityKind> = info
            .subscriptions
            .iter()
            .map(|k| kind_from_wit(*k))
            .collect();
        if subscribed.is_empty() {
            // Timers only: wait for the clock, not for events.
            *cursor_hint = store.last_event_seq()?;
            return Ok(if progressed {
                Step::Progress
            } else {
                Step::Idle
            });
        }
        let stored = match store.delivery_state(id)? {
            Some(s) => s.cursor,
            // Installed before workflow delivery existed: start from now.
            None => (*cursor_hint).max(store.last_event_seq()?),
        };
        *cursor_hint = stored;
        let events = store.events(stored, PAGE)?;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(if progressed {
                Step::Progress
            } else {
                Step::Idle
            });
        };
        // `from` is the stored cursor; events with nothing to apply only move `passed`, and
        // the move is stored with the next delivery that has effects, or at the page's end.
        let mut from = stored;
        let mut passed = stored;
        for event in &events {
            if !subscribed.contains(&event.kind) {
                passed = event.seq;
                continue;
            }
            let outcome = self.call_workflow(active, "on-event", |p| {
                p.on_event(&event_to_wit(event), micros(&now))
            });
            let failure = |message: String| DeliveryFailure {
                at: now,
                seq: Some(event.seq),
                timer: None,
                message,
            };
            let Outcome {
                effects,
                kv,
                report,
            } = match outcome {
                Ok(v) => v,
                Err(message) => {
                    self.move_cursor(id, from, passed, None)?;
                    return self.fail(active, failure(message));
                }
            };
            if effects.is_empty() && kv.is_empty() {
                self.succeeded(active, "on-event", report);
                passed = event.seq;
                continue;
            }
            if event.depth >= MAX_CHAIN_DEPTH {
                let note = failure(format!(
                    "chain cut off: event {} is {} reactions deep (the limit is {MAX_CHAIN_DEPTH}); its actions were not applied",
                    event.seq, event.depth
                ));
                tracing::warn!(plugin = id, seq = event.seq, "workflow chain cut off");
                self.move_cursor(id, from, event.seq, Some(note))?;
                from = event.seq;
                passed = event.seq;
                continue;
            }
            let d = Delivery {
                plugin: id.to_owned(),
                cursor: Some((from, event.seq)),
                timer: None,
                depth: event.depth + 1,
                effects,
                kv,
                kv_quota: kv_quota(active),
                note: None,
            };
            match store.execute(Command::Deliver(d), id) {
                Ok(_) => {
                    self.succeeded(active, "on-event", report);
                    from = event.seq;
                    passed = event.seq;
                }
                // Someone moved the cursor meanwhile (an older worker finishing): re-read.
                Err(CoreError::Conflict { .. }) => return Ok(Step::Progress),
                Err(CoreError::ShuttingDown) => return Err(CoreError::ShuttingDown),
                Err(e) => {
                    self.move_cursor(id, from, passed, None)?;
                    return self.fail(active, failure(format!("its actions were refused: {e}")));
                }
            }
        }
        debug_assert_eq!(passed, last);
        self.move_cursor(id, from, passed, None)?;
        Ok(Step::Progress)
    }

    /// Stores a cursor move with no effects (events the plugin passed over).
    fn move_cursor(
        &self,
        plugin: &str,
        from: u64,
        to: u64,
        note: Option<DeliveryFailure>,
    ) -> Result<(), CoreError> {
        if to <= from && note.is_none() {
            return Ok(());
        }
        let d = Delivery {
            plugin: plugin.to_owned(),
            cursor: Some((from, to)),
            timer: None,
            depth: 0,
            effects: Vec::new(),
            kv: Vec::new(),
            kv_quota: 0,
            note,
        };
        match self.store().execute(Command::Deliver(d), plugin) {
            Ok(_) | Err(CoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs a workflow hook and checks its actions; on failure, the message to record. The
    /// call's statistics are recorded by [`Self::succeeded`] or [`Self::fail`] once the
    /// outcome, including whether the store took the actions, is known.
    #[allow(clippy::type_complexity)]
    fn call_workflow(
        &self,
        active: &Active,
        hook: &str,
        call: impl FnOnce(&super::LoadedPlugin) -> Result<(Vec<w::Action>, CallReport), PluginError>,
    ) -> Result<Outcome, String> {
        let Some((plugin, _)) = active.running() else {
            return Err(format!("{hook}: the plugin stopped running"));
        };
        let (actions, mut report) = call(plugin).map_err(|e| e.to_string())?;
        let kv = std::mem::take(&mut report.kv_changes);
        let effects = effects(actions, &active.record.granted)
            .map_err(|m| format!("plugin {}: {hook} was refused: {m}", active.record.id))?;
        Ok(Outcome {
            effects,
            kv,
            report,
        })
    }

    /// Counts a call that did its work (its actions, if any, are stored). Only then does
    /// the failure streak end: a call whose actions the store refuses is a failure.
    fn succeeded(&self, active: &Active, hook: &str, report: CallReport) {
        let ok: Result<((), CallReport), PluginError> = Ok(((), report));
        self.record(active, hook, &ok, true);
    }

    /// Records a failed delivery (stats, suspension, the stored failure list) and asks the
    /// worker to back off.
    fn fail(&self, active: &Active, failure: DeliveryFailure) -> Result<Step, CoreError> {
        let err: Result<((), CallReport), PluginError> = Err(PluginError::Failed {
            plugin: active.record.id.clone(),
            hook: "delivery",
            reason: failure.message.clone(),
        });
        self.record(active, "delivery", &err, true);
        match self.store().execute(
            Command::DeliveryFailed {
                plugin: active.record.id.clone(),
                failure,
            },
            &active.record.id,
        ) {
            Ok(_) | Err(CoreError::NoSuch { .. }) => Ok(Step::Failed),
            Err(e) => Err(e),
        }
    }
}

fn kv_quota(active: &Active) -> usize {
    active.plugin_ref().map_or(0, |p| p.limits().kv_quota)
}

/// Whether a plugin needs a worker: it subscribes to events or may schedule timers.
fn wants_worker(active: &Active) -> bool {
    let subscribes = active
        .info_ref()
        .is_some_and(|i| !i.subscriptions.is_empty());
    subscribes || active.record.granted.iter().any(|g| g == "action:schedule")
}

fn supervise(weak: &Weak<Inner>) {
    let mut workers: HashMap<String, JoinHandle<()>> = HashMap::new();
    loop {
        let Some(inner) = weak.upgrade() else { break };
        let registry = Registry { inner };
        workers.retain(|_, h| !h.is_finished());
        for active in registry.all() {
            let id = active.record.id.clone();
            if workers.contains_key(&id) || !wants_worker(&active) {
                continue;
            }
            let weak = weak.clone();
            let name = format!("kith-wf-{id}");
            let plugin = id.clone();
            match std::thread::Builder::new()
                .name(name)
                .spawn(move || work(&weak, &plugin))
            {
                Ok(h) => {
                    workers.insert(id, h);
                }
                Err(e) => {
                    tracing::error!(plugin = %id, error = %e, "cannot start a workflow worker")
                }
            }
        }
        drop(registry);
        std::thread::sleep(SUPERVISE);
    }
}

/// One plugin's worker: runs steps until the plugin is gone, the registry is dropped or the
/// store closes.
fn work(weak: &Weak<Inner>, plugin: &str) {
    let mut cursor_hint = 0;
    let mut retry_at: Option<Instant> = None;
    loop {
        let Some(inner) = weak.upgrade() else { break };
        let registry = Registry { inner };
        let Ok(active) = registry.get_active(plugin) else {
            break;
        };
        if !wants_worker(&active) {
            break;
        }
        if let Some(at) = retry_at {
            let wait = at.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                drop((active, registry));
                std::thread::sleep(wait.min(IDLE));
                continue;
            }
            retry_at = None;
        }
        let step = registry.deliver_step(&active, &mut cursor_hint);
        match step {
            Ok(Step::Progress) => {}
            Ok(Step::Idle) => {
                let store = registry.store().clone();
                drop((active, registry));
                store.wait_for_events(cursor_hint, IDLE);
            }
            Ok(Step::Paused) => {
                drop((active, registry));
                std::thread::sleep(IDLE);
            }
            Ok(Step::Failed) => {
                let n = lock(&active.health).consecutive.max(1);
                let backoff = RETRY_BASE
                    .saturating_mul(1 << (n - 1).min(16))
                    .min(RETRY_MAX);
                tracing::info!(
                    plugin,
                    failures = n,
                    ?backoff,
                    limit = SUSPEND_AFTER,
                    "retrying workflow delivery later"
                );
                retry_at = Some(Instant::now() + backoff);
            }
            Err(CoreError::ShuttingDown) => break,
            Err(e) => {
                tracing::warn!(plugin, error = %e, "workflow delivery could not read the store");
                drop((active, registry));
                std::thread::sleep(IDLE);
            }
        }
    }
}
