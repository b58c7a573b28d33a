//! Workflow delivery in the store: applying a plugin call's effects together with its cursor
//! move or fired timer, durable timers, and the delivery state admins read.
//!
//! Exactly-once rests on two checks made inside the write transaction: the stored cursor
//! must still be the one the caller read (or the fired timer must still exist), and
//! everything the call asked for is written in that same transaction. A delivery with more
//! than one record write runs in a transaction of its own (see
//! [`Delivery::needs_own_transaction`]), which the writer aborts when any effect fails.

use redb::ReadableTable;

use super::read::Reader;
use super::tables::{self, decode, encode};
use super::write::{Ctx, Tables};
use crate::clock::{Timestamp, micros};
use crate::entity::Record;
use crate::error::Error;
use crate::plugin::check_plugin_id;
use crate::store::Input;
use crate::value::Value;
use crate::with_kind;
use crate::workflow::{
    Delivery, DeliveryFailure, DeliveryState, Effect, MAX_TIMER_KEY, MAX_TIMER_PAYLOAD,
    StoredTimer, TimerRef,
};

impl Tables<'_> {
    /// Applies a workflow call (see [`Delivery`]).
    pub(super) fn deliver(&mut self, d: Delivery, ctx: &mut Ctx<'_>) -> Result<(), Error> {
        check_plugin_id(&d.plugin)?;
        if self
            .txn
            .open_table(tables::PLUGINS)?
            .get(d.plugin.as_str())?
            .is_none()
        {
            return Err(Error::NoSuch {
                what: "plugin",
                name: d.plugin,
            });
        }
        // Every check that needs no record write comes first, so a refusal writes nothing.
        let mut state = self.delivery_state(&d.plugin)?;
        if let Some((expected, _)) = d.cursor {
            match &state {
                Some(s) if s.cursor != expected => {
                    return Err(Error::Conflict {
                        field: "cursor".to_owned(),
                        message: format!(
                            "plugin '{}' is at event {}, not {expected}: this delivery is stale",
                            d.plugin, s.cursor
                        ),
                    });
                }
                _ => {}
            }
        }
        let fired = match d.timer {
            Some(t) => {
                let timers = self.txn.open_table(tables::TIMERS)?;
                let found = timers.get((d.plugin.as_str(), t.at, t.id))?;
                let Some(bytes) = found else {
                    return Err(Error::Conflict {
                        field: "timer".to_owned(),
                        message: format!("plugin '{}' has no such pending timer", d.plugin),
                    });
                };
                let timer: StoredTimer =
                    decode(bytes.value(), || format!("timer of plugin {}", d.plugin))?;
                Some((t, timer))
            }
            None => None,
        };
        for e in &d.effects {
            check_timer_effect(e)?;
        }
        if !d.kv.is_empty() {
            let (mut set, mut delete) = (Vec::new(), Vec::new());
            for (k, v) in d.kv {
                match v {
                    Some(v) => set.push((k, v)),
                    None => delete.push(k),
                }
            }
            self.plugin_kv(&d.plugin, set, delete, d.kv_quota)?;
        }
        if let Some((t, timer)) = &fired {
            self.remove_timer(&d.plugin, *t, timer.key.as_deref())?;
        }
        let actor = format!("plugin:{}", d.plugin);
        let mut inner = Ctx {
            now: ctx.now,
            backdated: false,
            actor: &actor,
            ids: ctx.ids,
            next_seq: &mut *ctx.next_seq,
            hook: ctx.hook,
            depth: d.depth,
            access: None,
        };
        for effect in d.effects {
            self.apply_effect(&d.plugin, effect, &mut inner)?;
        }
        if let Some((_, to)) = d.cursor {
            let s = state.get_or_insert_with(DeliveryState::default);
            s.cursor = s.cursor.max(to);
        }
        if let Some(note) = d.note {
            state
                .get_or_insert_with(DeliveryState::default)
                .push_failure(note);
        }
        if let Some(s) = state {
            self.put_delivery_state(&d.plugin, &s)?;
        }
        Ok(())
    }

    fn apply_effect(&mut self, plugin: &str, e: Effect, ctx: &mut Ctx<'_>) -> Result<(), Error> {
        match e {
            Effect::Create { kind, input } => {
                with_kind!(kind, R => self.create::<R>(input, ctx).map(|_| ()))
            }
            Effect::Update { kind, id, input } => {
                with_kind!(kind, R => self.update::<R>(id, input, ctx).map(|_| ()))
            }
            Effect::Tag { kind, id, tag, add } => {
                with_kind!(kind, R => self.change_tag::<R>(id, tag, add, ctx))
            }
            Effect::Schedule { at, payload, key } => self.schedule(plugin, at, payload, key, ctx),
            Effect::CancelTimer { key } => {
                let keys = self.txn.open_table(tables::TIMER_KEYS)?;
                let found = keys.get((plugin, key.as_str()))?.map(|v| v.value());
                drop(keys);
                if let Some((at, id)) = found {
                    self.remove_timer(plugin, TimerRef { at, id }, Some(&key))?;
                }
                Ok(())
            }
        }
    }

    fn change_tag<R: Record>(
        &mut self,
        id: crate::id::Id,
        tag: String,
        add: bool,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), Error> {
        let record: R = self
            .load(id)?
            .ok_or(Error::NotFound { kind: R::KIND, id })?;
        let Some(Value::List(mut tags)) = record.get("tags") else {
            return Err(Error::UnknownField {
                kind: R::KIND,
                field: "tags".to_owned(),
            });
        };
        let value = Value::Text(tag);
        let present = tags.contains(&value);
        match (add, present) {
            (true, false) => tags.push(value),
            (false, true) => tags.retain(|t| *t != value),
            // Already as asked: nothing to write, no event.
            _ => return Ok(()),
        }
        let input = Input::with([("tags", Value::List(tags))]);
        self.update::<R>(id, input, ctx).map(|_| ())
    }

    fn schedule(
        &mut self,
        plugin: &str,
        at: Timestamp,
        payload: String,
        key: Option<String>,
        ctx: &Ctx<'_>,
    ) -> Result<(), Error> {
        let now = ctx.now;
        if let Some(k) = &key {
            let keys = self.txn.open_table(tables::TIMER_KEYS)?;
            let old = keys.get((plugin, k.as_str()))?.map(|v| v.value());
            drop(keys);
            if let Some((old_at, old_id)) = old {
                self.remove_timer(
                    plugin,
                    TimerRef {
                        at: old_at,
                        id: old_id,
                    },
                    Some(k),
                )?;
            }
        }
        let id = ctx.ids.next(&now).as_u128();
        let due = micros(&at);
        let timer = StoredTimer {
            at,
            payload,
            key,
            created_at: now,
        };
        let bytes = encode(&timer)?;
        self.txn
            .open_table(tables::TIMERS)?
            .insert((plugin, due, id), bytes.as_slice())?;
        if let Some(k) = &timer.key {
            self.txn
                .open_table(tables::TIMER_KEYS)?
                .insert((plugin, k.as_str()), (due, id))?;
        }
        Ok(())
    }

    /// Removes a timer and, when its key still points at it, the key.
    fn remove_timer(&mut self, plugin: &str, t: TimerRef, key: Option<&str>) -> Result<(), Error> {
        self.txn
            .open_table(tables::TIMERS)?
            .remove((plugin, t.at, t.id))?;
        if let Some(k) = key {
            let mut keys = self.txn.open_table(tables::TIMER_KEYS)?;
            let points_here = keys
                .get((plugin, k))?
                .is_some_and(|v| v.value() == (t.at, t.id));
            if points_here {
                keys.remove((plugin, k))?;
            }
        }
        Ok(())
    }

    fn delivery_state(&self, plugin: &str) -> Result<Option<DeliveryState>, Error> {
        let t = self.txn.open_table(tables::PLUGIN_DELIVERY)?;
        let found = t.get(plugin)?;
        match found {
            Some(v) => Ok(Some(decode(v.value(), || {
                format!("delivery state of plugin {plugin}")
            })?)),
            None => Ok(None),
        }
    }

    fn put_delivery_state(&mut self, plugin: &str, s: &DeliveryState) -> Result<(), Error> {
        let bytes = encode(s)?;
        self.txn
            .open_table(tables::PLUGIN_DELIVERY)?
            .insert(plugin, bytes.as_slice())?;
        Ok(())
    }

    /// Starts a newly installed plugin's delivery after the last event written so far: a
    /// new workflow reacts to what happens from now on, not to the whole history.
    pub(super) fn init_delivery(&mut self, plugin: &str, last_seq: u64) -> Result<(), Error> {
        if self.delivery_state(plugin)?.is_none() {
            self.put_delivery_state(
                plugin,
                &DeliveryState {
                    cursor: last_seq,
                    failures: Vec::new(),
                },
            )?;
        }
        Ok(())
    }

    pub(super) fn delivery_failed(
        &mut self,
        plugin: &str,
        failure: DeliveryFailure,
    ) -> Result<(), Error> {
        let Some(mut state) = self.delivery_state(plugin)? else {
            return Err(Error::NoSuch {
                what: "plugin",
                name: plugin.to_owned(),
            });
        };
        state.push_failure(failure);
        self.put_delivery_state(plugin, &state)
    }

    /// Drops a plugin's delivery state and timers (on uninstall).
    pub(super) fn remove_delivery(&mut self, plugin: &str) -> Result<(), Error> {
        self.txn
            .open_table(tables::PLUGIN_DELIVERY)?
            .remove(plugin)?;
        self.txn.open_table(tables::TIMERS)?.retain_in(
            (plugin, i64::MIN, 0)..=(plugin, i64::MAX, u128::MAX),
            |_, _| false,
        )?;
        self.txn
            .open_table(tables::TIMER_KEYS)?
            .retain_in((plugin, "")..(plugin, "\u{10FFFF}"), |_, _| false)?;
        Ok(())
    }
}

fn check_timer_effect(e: &Effect) -> Result<(), Error> {
    let key = match e {
        Effect::Schedule { payload, key, .. } => {
            if payload.len() > MAX_TIMER_PAYLOAD {
                return Err(Error::invalid(
                    "payload",
                    format!(
                        "a timer payload is at most {MAX_TIMER_PAYLOAD} bytes, not {}",
                        payload.len()
                    ),
                ));
            }
            key.as_deref()
        }
        Effect::CancelTimer { key } => Some(key.as_str()),
        _ => None,
    };
    if let Some(k) = key
        && (k.is_empty() || k.chars().count() > MAX_TIMER_KEY)
    {
        return Err(Error::invalid(
            "key",
            format!("a timer key is 1-{MAX_TIMER_KEY} characters"),
        ));
    }
    Ok(())
}

/// What admins see of a plugin's timers.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerSummary {
    /// How many are pending.
    pub pending: u64,
    /// The earliest pending ones (at most the limit asked for), soonest first.
    pub next: Vec<(TimerRef, StoredTimer)>,
}

impl Reader {
    pub(crate) fn delivery_state(&self, plugin: &str) -> Result<Option<DeliveryState>, Error> {
        let t = self.txn.open_table(tables::PLUGIN_DELIVERY)?;
        match t.get(plugin)? {
            Some(v) => Ok(Some(decode(v.value(), || {
                format!("delivery state of plugin {plugin}")
            })?)),
            None => Ok(None),
        }
    }

    /// Timers of `plugin` due at or before `now`, soonest first, at most `limit`.
    pub(crate) fn due_timers(
        &self,
        plugin: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(TimerRef, StoredTimer)>, Error> {
        let t = self.txn.open_table(tables::TIMERS)?;
        let mut out = Vec::new();
        for entry in t.range((plugin, i64::MIN, 0)..=(plugin, micros(&now), u128::MAX))? {
            let (k, v) = entry?;
            let (_, at, id) = k.value();
            out.push((
                TimerRef { at, id },
                decode(v.value(), || format!("timer of plugin {plugin}"))?,
            ));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// How many timers `plugin` has pending and the first `limit` of them.
    pub(crate) fn timers(&self, plugin: &str, limit: usize) -> Result<TimerSummary, Error> {
        let t = self.txn.open_table(tables::TIMERS)?;
        let mut pending = 0;
        let mut next = Vec::new();
        for entry in t.range((plugin, i64::MIN, 0)..=(plugin, i64::MAX, u128::MAX))? {
            let (k, v) = entry?;
            pending += 1;
            if next.len() < limit {
                let (_, at, id) = k.value();
                next.push((
                    TimerRef { at, id },
                    decode(v.value(), || format!("timer of plugin {plugin}"))?,
                ));
            }
        }
        Ok(TimerSummary { pending, next })
    }
}
