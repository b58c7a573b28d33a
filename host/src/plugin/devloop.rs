//! `kith plugin run`: the plugin author's loop without a server. Runs one hook of a `.wasm`
//! against a JSON sample and reports the result, the plugin's logs, time and memory.
//!
//! The sample file holds what the hook needs; every key is optional unless the hook says so:
//! ```json
//! {
//!   "scorer": "lead",
//!   "now": "2026-11-23T12:00:00Z",
//!   "settings": { "senior_points": 30 },
//!   "entities": [ { "kind": "contact", "id": "c1", "fields": { "title": "VP Sales", "company_id": "co1" } } ],
//!   "records":  [ { "kind": "company", "id": "co1", "fields": { "name": "Acme", "size": 5000 } } ]
//! }
//! ```
//! `entities` are what the hook receives (`validate` and `compute-fields` take each in turn,
//! with `before` as the stored version for `validate`); `records` are what `get` and `query`
//! can find. `query` filters them as the server does (`eq`, `ne`, `gt`, `gte`, `lt`, `lte`,
//! `contains`, `in` on built-in and `custom.` fields), newest `created_at` first (records
//! without one last, in sample order), `limit` at a time with a cursor.
//! Field values are typed by the record kind's built-in fields; custom values by their JSON type.
//!
//! The workflow and report hooks take, besides `now`, `settings` and `records` (an object
//! per hook):
//! ```json
//! { "event": { "kind": "ticket", "id": "t1", "op": "created", "actor": "api",
//!              "at": "2026-11-23T12:00:00Z", "seq": 1,
//!              "changes": [ { "field": "priority", "before": null, "after": "high" } ] } }
//! { "payload": "t1", "due": "2026-11-23T16:00:00Z" }
//! { "report": "summary", "parameters": { "from": "2026-01-01", "by": "month" } }
//! ```
//! - `on-event` needs `event` (`kind`, `id` and `op` required; `seq` defaults to 1, `at` to
//!   `now`, `actor` to `api`, `changes` to none). A change's values are typed like record
//!   fields when the field is a built-in of the kind, by their JSON type otherwise, and then
//!   carried as the server's events carry them (a choice as text, an amount as a number).
//! - `on-timer` needs `payload`; `due` defaults to `now`.
//! - `run-report` runs `report` (the plugin's first declared report when absent) with
//!   `parameters` checked against the report's declared ones; missing ones take their
//!   defaults. It prints the table in aligned columns and the chart hint.
//!
//! Both workflow hooks print one line per returned action, and a warning under each action
//! whose capability the plugin's `describe()` does not declare (the server would refuse the
//! whole call); a plugin's `err` is an error.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SecondsFormat};
use kith_core::schema::{ValueType, parse_timestamp};
use kith_core::{EntityKind, FilterOp, Value};
use serde_json::{Map, Value as Json};

use super::convert::{kind_from_wit, kind_to_wit, value_from_wit};
use super::runtime::{CallReport, DataAccess, LoadedPlugin, Runtime};
use super::wit::kith::plugin::types as w;

/// The hooks `kith plugin run` can call.
pub const HOOKS: &[&str] = &[
    "describe",
    "score",
    "validate",
    "compute-fields",
    "on-event",
    "on-timer",
    "run-report",
];

/// Runs `hook` of the component in `wasm` against the JSON `sample`; returns the report text.
pub fn run(wasm: &[u8], name: &str, hook: &str, sample: &str) -> Result<String, String> {
    let sample: Map<String, Json> = match serde_json::from_str(if sample.trim().is_empty() {
        "{}"
    } else {
        sample
    }) {
        Ok(Json::Object(m)) => m,
        Ok(_) => return Err("the input must be a JSON object".to_owned()),
        Err(e) => return Err(format!("the input is not valid JSON: {e}")),
    };
    let runtime = Runtime::global().map_err(|e| e.to_string())?;
    let plugin = runtime.load(name, wasm).map_err(|e| e.to_string())?;
    let (plugin, info) = plugin.as_declared().map_err(|e| e.to_string())?;
    let mut out = String::new();
    let report = match hook {
        "describe" => {
            let (info, report) = plugin.describe().map_err(|e| e.to_string())?;
            let _ = writeln!(out, "{} {} — {}", info.name, info.version, info.description);
            let kind = |k: &w::EntityKind| super::convert::kind_from_wit(*k).name();
            for s in &info.scorers {
                let _ = writeln!(
                    out,
                    "  scorer {} (scores {}s): {}",
                    s.name,
                    kind(&s.kind),
                    s.description
                );
            }
            for f in &info.fields {
                let _ = writeln!(
                    out,
                    "  field {}.{} ({:?})",
                    kind(&f.kind),
                    f.name,
                    f.field_type
                );
            }
            for s in &info.settings {
                let _ = writeln!(out, "  setting {} = {}", s.name, show(&s.default));
            }
            let reads: Vec<&str> = info.capabilities.read.iter().map(kind).collect();
            let _ = writeln!(
                out,
                "  reads: {}; actions: {}",
                reads.join(", "),
                info.capabilities.actions.join(", ")
            );
            report
        }
        "validate" | "compute-fields" => {
            let now = sample_now(&sample)?;
            let entities = entities(sample.get("entities"), "entities")?;
            let before = match sample.get("before") {
                Some(b) => Some(entity("before", b)?),
                None => None,
            };
            let plugin = configure(plugin, &sample)?;
            let mut total = CallReport::default();
            for e in &entities {
                let report = if hook == "validate" {
                    let (verdict, report) = plugin
                        .validate(e, before.as_ref(), now)
                        .map_err(|e| e.to_string())?;
                    match verdict {
                        Ok(()) => {
                            let _ = writeln!(out, "{}: valid", e.id);
                        }
                        Err(errors) => {
                            let _ = writeln!(out, "{}: refused", e.id);
                            for fe in errors {
                                let _ = writeln!(out, "  {}: {}", fe.field, fe.message);
                            }
                        }
                    }
                    report
                } else {
                    let (fields, report) =
                        plugin.compute_fields(e, now).map_err(|e| e.to_string())?;
                    let _ = writeln!(out, "{}:", e.id);
                    for f in &fields {
                        let _ = writeln!(out, "  {} = {}", f.name, show(&f.value));
                    }
                    if fields.is_empty() {
                        let _ = writeln!(out, "  (no computed fields)");
                    }
                    report
                };
                total.elapsed += report.elapsed;
                total.peak_memory = total.peak_memory.max(report.peak_memory);
                total.host_calls += report.host_calls;
                total.logs_dropped += report.logs_dropped;
                total.logs.extend(report.logs);
            }
            total
        }
        "score" => {
            let scorer = sample
                .get("scorer")
                .and_then(Json::as_str)
                .or_else(|| info.scorers.first().map(|s| s.name.as_str()))
                .ok_or("the plugin has no scorer; name one with \"scorer\"")?
                .to_owned();
            let now = sample_now(&sample)?;
            let entities = entities(sample.get("entities"), "entities")?;
            let plugin = configure(plugin, &sample)?;
            let (scores, report) = plugin
                .score(&scorer, &entities, now)
                .map_err(|e| e.to_string())?;
            for s in &scores {
                let _ = writeln!(out, "{}: {}", s.id, s.value);
                for r in &s.reasons {
                    let _ = writeln!(out, "  {:+4}  {}", r.points, r.reason);
                }
            }
            if scores.is_empty() {
                let _ = writeln!(out, "(no scores)");
            }
            report
        }
        "on-event" => {
            let now = sample_now(&sample)?;
            let event = sample_event(&sample, now)?;
            if !info.subscriptions.contains(&event.kind) {
                let _ = writeln!(
                    out,
                    "warning: the plugin does not subscribe to {} events (describe().subscriptions), so the server would not call on-event with this one",
                    kind_from_wit(event.kind)
                );
            }
            let plugin = configure(plugin, &sample)?;
            let (actions, report) = plugin.on_event(&event, now).map_err(|e| e.to_string())?;
            write_actions(&mut out, &actions, &info);
            report
        }
        "on-timer" => {
            let now = sample_now(&sample)?;
            let payload = match sample.get("payload") {
                Some(Json::String(p)) => p.clone(),
                Some(_) => return Err("\"payload\" must be text".to_owned()),
                None => {
                    return Err(
                        "on-timer needs \"payload\": the text the timer was scheduled with"
                            .to_owned(),
                    );
                }
            };
            let due = time_or(sample.get("due"), "due", now)?;
            let plugin = configure(plugin, &sample)?;
            let (actions, report) = plugin
                .on_timer(&payload, due, now)
                .map_err(|e| e.to_string())?;
            write_actions(&mut out, &actions, &info);
            report
        }
        "run-report" => {
            let now = sample_now(&sample)?;
            let def = report_def(&info, &sample)?;
            let parameters = report_parameters(def, sample.get("parameters"))?;
            let plugin = configure(plugin, &sample)?;
            let (table, report) = plugin
                .run_report(&def.id, &parameters, now, None)
                .map_err(|e| e.to_string())?;
            let shown: Vec<String> = parameters
                .iter()
                .map(|p| format!("{} = {}", p.name, shown_parameter(&p.value)))
                .collect();
            let _ = writeln!(out, "report {} ({})", def.id, def.name);
            if !shown.is_empty() {
                let _ = writeln!(out, "parameters: {}", shown.join(", "));
            }
            write_table(&mut out, &table);
            report
        }
        other => {
            return Err(format!(
                "unknown hook '{other}' (use one of {})",
                HOOKS.join(", ")
            ));
        }
    };
    write_report(&mut out, &report);
    Ok(out)
}

/// The sample's `now`, in microseconds (the current time when absent).
fn sample_now(sample: &Map<String, Json>) -> Result<i64, String> {
    Ok(match sample.get("now").and_then(Json::as_str) {
        Some(t) => parse_timestamp(t)?.timestamp_micros(),
        None => chrono::Utc::now().timestamp_micros(),
    })
}

/// A timestamp given in the sample as `key` (RFC 3339), in microseconds; `default` when
/// absent.
fn time_or(v: Option<&Json>, key: &str, default: i64) -> Result<i64, String> {
    match v {
        None | Some(Json::Null) => Ok(default),
        Some(Json::String(t)) => parse_timestamp(t)
            .map(|t| t.timestamp_micros())
            .map_err(|m| format!("{key}: {m}")),
        Some(_) => Err(format!(
            "{key}: expected a date-time as text (RFC 3339, such as 2026-11-23T12:00:00Z)"
        )),
    }
}

/// Applies the sample's setting overrides and gives `get` and `query` its `records`.
fn configure(mut plugin: LoadedPlugin, sample: &Map<String, Json>) -> Result<LoadedPlugin, String> {
    let records = entities_or_empty(sample.get("records"), "records")?;
    if let Some(Json::Object(over)) = sample.get("settings") {
        for (k, v) in over {
            plugin = plugin.with_setting(k, plain_value(v));
        }
    }
    Ok(plugin.with_data(Arc::new(Sample(records))))
}

/// A field value as a person would write it.
fn show(v: &w::FieldValue) -> String {
    match v {
        w::FieldValue::Null => "(none)".to_owned(),
        w::FieldValue::Choices(l) | w::FieldValue::References(l) => l.join(", "),
        other => texts(other).join(""),
    }
}

fn write_report(out: &mut String, r: &CallReport) {
    for (level, line) in &r.logs {
        let _ = writeln!(out, "log [{level:?}] {line}");
    }
    if r.logs_dropped > 0 {
        let _ = writeln!(
            out,
            "log: {} more lines dropped past the log limit",
            r.logs_dropped
        );
    }
    let _ = writeln!(
        out,
        "time {:.2} ms · memory {:.1} MiB · {} host calls",
        r.elapsed.as_secs_f64() * 1e3,
        r.peak_memory as f64 / (1 << 20) as f64,
        r.host_calls
    );
}

fn entities_or_empty(v: Option<&Json>, key: &str) -> Result<Vec<w::Entity>, String> {
    match v {
        None => Ok(Vec::new()),
        some => entities(some, key),
    }
}

/// The list of records under the sample's `key`; errors name the key and the position.
fn entities(v: Option<&Json>, key: &str) -> Result<Vec<w::Entity>, String> {
    let Some(Json::Array(items)) = v else {
        return Err(format!("\"{key}\" must be a list of records"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, e)| entity(&format!("{key}[{i}]"), e))
        .collect()
}

/// The `kind` and `id` every sample record and event names; `at` prefixes errors.
fn kind_and_id<'a>(
    get: impl Fn(&str) -> Option<&'a Json>,
    at: &dyn Fn(&str) -> String,
) -> Result<(EntityKind, String), String> {
    let kind = get("kind")
        .and_then(Json::as_str)
        .and_then(EntityKind::parse)
        .ok_or_else(|| {
            at("\"kind\" must be contact, company, deal, ticket, interaction or task")
        })?;
    let id = get("id")
        .and_then(Json::as_str)
        .ok_or_else(|| at("\"id\" is required"))?
        .to_owned();
    Ok((kind, id))
}

/// One record of the sample; `place` ("entities[0]") starts its error messages.
fn entity(place: &str, e: &Json) -> Result<w::Entity, String> {
    let at = |m: &str| format!("{place}: {m}");
    let (kind, id) = kind_and_id(|k| e.get(k), &at)?;
    let mut fields = vec![w::Field {
        name: "id".to_owned(),
        value: w::FieldValue::Reference(id.clone()),
    }];
    if let Some(Json::Object(m)) = e.get("fields") {
        for (name, v) in m {
            let info = kind
                .field(name)
                .ok_or_else(|| at(&format!("{kind} has no field '{name}'")))?;
            fields.push(w::Field {
                name: name.clone(),
                value: typed_value(info.ty, name, v).map_err(|m| at(&format!("{name}: {m}")))?,
            });
        }
    }
    let custom = match e.get("custom") {
        Some(Json::Object(m)) => m
            .iter()
            .map(|(k, v)| w::Field {
                name: k.clone(),
                value: plain_value(v),
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(w::Entity {
        kind: kind_to_wit(kind),
        id,
        fields,
        custom,
    })
}

fn typed_value(ty: ValueType, name: &str, v: &Json) -> Result<w::FieldValue, String> {
    let text = || {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| "expected text".to_owned())
    };
    let list = || -> Result<Vec<String>, String> {
        v.as_array()
            .ok_or("expected a list")?
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "expected a list of text".to_owned())
            })
            .collect()
    };
    if v.is_null() {
        return Ok(w::FieldValue::Null);
    }
    Ok(match ty {
        ValueType::Text => w::FieldValue::Text(text()?),
        ValueType::Choice(_) => w::FieldValue::Choice(text()?),
        ValueType::Id => w::FieldValue::Reference(text()?),
        ValueType::IdList => w::FieldValue::References(list()?),
        ValueType::TextList => w::FieldValue::Choices(list()?),
        ValueType::Integer => w::FieldValue::Integer(v.as_i64().ok_or("expected a whole number")?),
        ValueType::Bool => w::FieldValue::Boolean(v.as_bool().ok_or("expected true or false")?),
        ValueType::Date => w::FieldValue::Date(text()?),
        ValueType::DateTime => {
            w::FieldValue::Datetime(parse_timestamp(&text()?)?.timestamp_micros())
        }
        ValueType::Decimal => {
            let d = match v {
                Json::String(s) => s.clone(),
                Json::Number(n) => n.to_string(),
                _ => return Err("expected a number".to_owned()),
            };
            if name == "amount" {
                w::FieldValue::Money(d)
            } else {
                w::FieldValue::Number(d)
            }
        }
    })
}

fn plain_value(v: &Json) -> w::FieldValue {
    match v {
        Json::Null => w::FieldValue::Null,
        Json::Bool(b) => w::FieldValue::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => w::FieldValue::Integer(i),
            None => w::FieldValue::Number(n.to_string()),
        },
        Json::String(s) => w::FieldValue::Text(s.clone()),
        Json::Array(items) => w::FieldValue::Choices(
            items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect(),
        ),
        Json::Object(_) => w::FieldValue::Text(v.to_string()),
    }
}

/// The sample's records, for `get` and `query`.
struct Sample(Vec<w::Entity>);

fn texts(v: &w::FieldValue) -> Vec<String> {
    match v {
        w::FieldValue::Null => Vec::new(),
        w::FieldValue::Text(s)
        | w::FieldValue::Number(s)
        | w::FieldValue::Money(s)
        | w::FieldValue::Date(s)
        | w::FieldValue::Choice(s)
        | w::FieldValue::Reference(s) => vec![s.clone()],
        w::FieldValue::Integer(i) => vec![i.to_string()],
        w::FieldValue::Datetime(t) => vec![t.to_string()],
        w::FieldValue::Boolean(b) => vec![b.to_string()],
        w::FieldValue::Choices(l) | w::FieldValue::References(l) => l.clone(),
    }
}

impl DataAccess for Sample {
    fn get(&self, kind: EntityKind, id: &str) -> Result<Option<w::Entity>, String> {
        Ok(self
            .0
            .iter()
            .find(|e| e.kind == kind_to_wit(kind) && e.id == id)
            .cloned())
    }

    /// Filters like the server's store, newest first, a page at a time; the cursor is the
    /// offset of the next page.
    fn query(
        &self,
        kind: EntityKind,
        filters: &[w::Filter],
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<w::Page, String> {
        let filters = filters
            .iter()
            .map(|f| SampleFilter::new(kind, f))
            .collect::<Result<Vec<_>, _>>()?;
        let mut matching: Vec<&w::Entity> = self
            .0
            .iter()
            .filter(|e| e.kind == kind_to_wit(kind))
            .filter(|e| filters.iter().all(|f| f.matches(e)))
            .collect();
        // A stable sort: records without `created_at` (None sorts first, so last here) and
        // records created at the same moment keep their order in the sample.
        matching.sort_by_key(|e| std::cmp::Reverse(created_at(e)));
        let start = match cursor {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|s| *s <= matching.len())
                .ok_or_else(|| format!("cursor '{c}' is not one this query returned"))?,
        };
        // As the server: at least one and at most 1,000 a page.
        let limit = usize::try_from(limit.clamp(1, 1000)).unwrap_or(1000);
        let end = start.saturating_add(limit).min(matching.len());
        Ok(w::Page {
            items: matching[start..end].iter().map(|e| (*e).clone()).collect(),
            next_cursor: (end < matching.len()).then(|| end.to_string()),
        })
    }
}

fn created_at(e: &w::Entity) -> Option<i64> {
    e.fields.iter().find_map(|f| match (&*f.name, &f.value) {
        ("created_at", w::FieldValue::Datetime(t)) => Some(*t),
        _ => None,
    })
}

/// A `query` filter resolved against the kind's fields, as the server's store does.
struct SampleFilter {
    /// The field's name within `fields`, or within `custom` when `custom`.
    name: String,
    custom: bool,
    op: FilterOp,
    /// The wanted values (several for `in`), typed by the built-in field's type. For custom
    /// fields, whose types the sample does not know, the text is typed like each record's
    /// value when compared.
    values: Vec<Value>,
}

impl SampleFilter {
    fn new(kind: EntityKind, f: &w::Filter) -> Result<SampleFilter, String> {
        let op = FilterOp::parse(&f.op).ok_or_else(|| {
            format!(
                "unknown filter operator '{}' (use one of {})",
                f.op,
                FilterOp::NAMES.join(", ")
            )
        })?;
        let texts: Vec<&str> = if op == FilterOp::In {
            f.value.split(',').collect()
        } else {
            vec![f.value.as_str()]
        };
        let (name, custom, ty) = match f.field.strip_prefix("custom.") {
            Some(name) => (name, true, None),
            None => {
                let info = kind
                    .field(&f.field)
                    .ok_or_else(|| format!("{}: {kind} has no field '{}'", f.field, f.field))?;
                (f.field.as_str(), false, Some(info.ty))
            }
        };
        let values = texts
            .into_iter()
            .map(|t| -> Result<Value, String> {
                let t = t.trim();
                Ok(match ty {
                    _ if t.is_empty() => Value::Null,
                    // Sample ids are any text ("c1"), not the server's UUIDs.
                    Some(ValueType::Id | ValueType::IdList) | None => Value::Text(t.to_owned()),
                    _ if op == FilterOp::Contains => Value::Text(t.to_owned()),
                    Some(ty) => ty
                        .parse_filter(Value::Text(t.to_owned()))
                        .map_err(|m| format!("{}: {m}", f.field))?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SampleFilter {
            name: name.to_owned(),
            custom,
            op,
            values,
        })
    }

    fn matches(&self, e: &w::Entity) -> bool {
        let fields = if self.custom { &e.custom } else { &e.fields };
        let actual = fields
            .iter()
            .find(|f| f.name == self.name)
            .map_or(Value::Null, |f| core_value(&f.value));
        let wanted: Vec<Value> = if self.custom {
            self.values.iter().map(|v| typed_like(v, &actual)).collect()
        } else {
            self.values.clone()
        };
        match self.op {
            FilterOp::Eq | FilterOp::In => wanted.iter().any(|v| equal(&actual, v)),
            FilterOp::Ne => !wanted.iter().any(|v| equal(&actual, v)),
            FilterOp::Contains => wanted.iter().any(|v| contains(&actual, v)),
            FilterOp::Gt | FilterOp::Gte | FilterOp::Lt | FilterOp::Lte => {
                let Some(ord) = wanted
                    .first()
                    .filter(|_| !actual.is_empty())
                    .and_then(|w| actual.compare(w))
                else {
                    return false;
                };
                match self.op {
                    FilterOp::Gt => ord == Ordering::Greater,
                    FilterOp::Gte => ord != Ordering::Less,
                    FilterOp::Lt => ord == Ordering::Less,
                    _ => ord != Ordering::Greater,
                }
            }
        }
    }
}

/// A sample value as the core value filters compare (dates as dates, ids as text).
fn core_value(v: &w::FieldValue) -> Value {
    match v {
        w::FieldValue::Date(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_or_else(|_| Value::Text(d.clone()), Value::Date),
        other => value_from_wit(other),
    }
}

/// A custom filter's text typed like the record's value, so numbers and times compare as
/// such; text when it does not parse.
fn typed_like(want: &Value, actual: &Value) -> Value {
    let Value::Text(t) = want else {
        return want.clone();
    };
    let first = match actual {
        Value::List(items) => items.first().unwrap_or(&Value::Null),
        other => other,
    };
    let parsed = match first {
        Value::Integer(_) | Value::Number(_) => {
            t.parse::<rust_decimal::Decimal>().ok().map(Value::Number)
        }
        Value::Bool(_) => t.parse::<bool>().ok().map(Value::Bool),
        Value::Date(_) => NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .ok()
            .map(Value::Date),
        Value::DateTime(_) => parse_timestamp(t).ok().map(Value::DateTime),
        _ => None,
    };
    parsed.unwrap_or_else(|| want.clone())
}

/// Equality as the store's filters have it: text case-insensitively, a list when any element
/// is equal, empty only to empty.
fn equal(actual: &Value, want: &Value) -> bool {
    match (actual, want) {
        (Value::List(items), w) if !matches!(w, Value::List(_)) => {
            if w.is_empty() {
                items.is_empty()
            } else {
                items.iter().any(|i| equal(i, w))
            }
        }
        (a, w) if a.is_empty() || w.is_empty() => a.is_empty() && w.is_empty(),
        (Value::Text(a), Value::Text(b)) => a.to_lowercase() == b.to_lowercase(),
        (a, b) => a.compare(b) == Some(Ordering::Equal),
    }
}

fn contains(actual: &Value, want: &Value) -> bool {
    let needle = want.to_string().to_lowercase();
    match actual {
        Value::List(items) => items.iter().any(|i| contains(i, want)),
        Value::Null => false,
        other => other.to_string().to_lowercase().contains(&needle),
    }
}

/// The sample's `event`, as `on-event` receives it.
fn sample_event(sample: &Map<String, Json>, now: i64) -> Result<w::Event, String> {
    let e = match sample.get("event") {
        Some(Json::Object(e)) => e,
        Some(_) => return Err("\"event\" must be an object".to_owned()),
        None => {
            return Err(
                "on-event needs \"event\": { \"kind\", \"id\", \"op\", \"changes\", ... }"
                    .to_owned(),
            );
        }
    };
    let at = |m: &str| format!("event: {m}");
    let (kind, id) = kind_and_id(|k| e.get(k), &at)?;
    let op = match e.get("op").and_then(Json::as_str) {
        Some("created") => w::Operation::Created,
        Some("updated") => w::Operation::Updated,
        Some("deleted") => w::Operation::Deleted,
        _ => return Err(at("\"op\" must be created, updated or deleted")),
    };
    let seq = match e.get("seq") {
        None | Some(Json::Null) => 1,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| at("\"seq\" must be a whole number, 0 or more"))?,
    };
    let actor = match e.get("actor") {
        None | Some(Json::Null) => "api".to_owned(),
        Some(Json::String(a)) => a.clone(),
        Some(_) => return Err(at("\"actor\" must be text")),
    };
    let when = time_or(e.get("at"), "event: at", now)?;
    let changes = match e.get("changes") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, c)| change(kind, c).map_err(|m| at(&format!("changes[{i}]: {m}"))))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(at("\"changes\" must be a list")),
    };
    Ok(w::Event {
        seq,
        kind: kind_to_wit(kind),
        id,
        op,
        changes,
        actor,
        at: when,
    })
}

/// One change of the sample's event.
fn change(kind: EntityKind, c: &Json) -> Result<w::FieldChange, String> {
    let field = c
        .get("field")
        .and_then(Json::as_str)
        .ok_or("\"field\" is required")?
        .to_owned();
    let value = |key: &str| -> Result<w::FieldValue, String> {
        let v = c.get(key).unwrap_or(&Json::Null);
        match kind.field(&field) {
            Some(info) => typed_value(info.ty, &field, v)
                .map(as_in_events)
                .map_err(|m| format!("{field}: {key}: {m}")),
            None => Ok(plain_value(v)),
        }
    };
    Ok(w::FieldChange {
        before: value("before")?,
        after: value("after")?,
        field,
    })
}

/// A typed value as the server's events carry it: the event log keeps values without their
/// field's type, so a choice arrives as text and an amount as a plain number.
fn as_in_events(v: w::FieldValue) -> w::FieldValue {
    match v {
        w::FieldValue::Choice(s) => w::FieldValue::Text(s),
        w::FieldValue::Money(s) => w::FieldValue::Number(s),
        other => other,
    }
}

/// The name of an action, as in `capabilities.actions`.
fn action_name(a: &w::Action) -> &'static str {
    match a {
        w::Action::UpdateFields(_) => "update-fields",
        w::Action::CreateTask(_) => "create-task",
        w::Action::LogInteraction(_) => "log-interaction",
        w::Action::AssignOwner(_) => "assign-owner",
        w::Action::AddTag(_) => "add-tag",
        w::Action::RemoveTag(_) => "remove-tag",
        w::Action::ChangeTicket(_) => "change-ticket",
        w::Action::MoveDeal(_) => "move-deal",
        w::Action::Schedule(_) => "schedule",
        w::Action::CancelTimer(_) => "cancel-timer",
    }
}

/// One line per action, each followed by a warning when the plugin does not declare the
/// capability it needs: the devloop grants what the plugin declares, as an admin approving
/// its manifest would, and the server fails a call with an action it was not granted.
fn write_actions(out: &mut String, actions: &[w::Action], info: &w::PluginInfo) {
    for a in actions {
        let _ = writeln!(out, "{}", action_text(a));
        // The same rule the server's delivery applies.
        let cap = super::workflow::capability(a);
        let declared = info
            .capabilities
            .actions
            .iter()
            .any(|c| c.strip_prefix("action:").unwrap_or(c) == cap);
        if !declared {
            let _ = writeln!(
                out,
                "  warning: {} needs the action:{cap} capability, which describe() does not declare; the server would refuse the whole call",
                action_name(a)
            );
        }
    }
    if actions.is_empty() {
        let _ = writeln!(out, "(no actions)");
    }
}

/// An action as a person would read it.
fn action_text(a: &w::Action) -> String {
    let kind = |k: w::EntityKind| kind_from_wit(k).name();
    let fields = |fields: &[w::Field]| {
        fields
            .iter()
            .map(|f| format!("{} = {}", f.name, readable(&f.value)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let name = action_name(a);
    match a {
        w::Action::UpdateFields(u) => {
            format!("{name} {} {}: {}", kind(u.kind), u.id, fields(&u.fields))
        }
        w::Action::CreateTask(t) => {
            let mut s = format!(
                "{name} {:?} on {} {}",
                t.title,
                kind(t.linked_kind),
                t.linked_id
            );
            if let Some(due) = t.due {
                let _ = write!(s, ", due {}", time(due));
            }
            match &t.assignee {
                Some(who) => {
                    let _ = write!(s, ", for {who}");
                }
                None => s.push_str(", unassigned"),
            }
            s
        }
        w::Action::LogInteraction(i) => {
            let subject = i
                .subject
                .as_ref()
                .map(|s| format!(" {s:?}"))
                .unwrap_or_default();
            format!(
                "{name} {}{subject} on {} {}: {:?}",
                i.interaction_kind,
                kind(i.linked_kind),
                i.linked_id,
                i.body
            )
        }
        w::Action::AssignOwner(o) => format!("{name} {} {} to {}", kind(o.kind), o.id, o.owner),
        w::Action::AddTag(t) | w::Action::RemoveTag(t) => {
            format!("{name} {} {} {:?}", kind(t.kind), t.id, t.tag)
        }
        w::Action::ChangeTicket(t) => {
            let mut changes = Vec::new();
            if let Some(s) = &t.status {
                changes.push(format!("status = {s}"));
            }
            if let Some(p) = &t.priority {
                changes.push(format!("priority = {p}"));
            }
            if changes.is_empty() {
                changes.push("(nothing)".to_owned());
            }
            format!("{name} ticket {}: {}", t.id, changes.join(", "))
        }
        w::Action::MoveDeal(m) => format!("{name} deal {} to {}", m.id, m.stage),
        w::Action::Schedule(t) => {
            let key = t
                .key
                .as_ref()
                .map(|k| format!(" key {k}"))
                .unwrap_or_default();
            format!(
                "{name} at {}{key} payload {:?}",
                time(t.at),
                clipped(&t.payload)
            )
        }
        w::Action::CancelTimer(key) => format!("{name} {key}"),
    }
}

/// Text cut to a length that fits on a line.
fn clipped(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// A timestamp in microseconds as RFC 3339 UTC.
fn time(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros).map_or_else(
        || format!("{micros} µs"),
        |t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    )
}

/// A value for reading: like [`show`], with times as RFC 3339.
fn readable(v: &w::FieldValue) -> String {
    match v {
        w::FieldValue::Datetime(t) => time(*t),
        other => show(other),
    }
}

/// The report the sample names, or the plugin's first.
fn report_def<'a>(
    info: &'a w::PluginInfo,
    sample: &Map<String, Json>,
) -> Result<&'a w::ReportDef, String> {
    let declared = || {
        info.reports
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match sample.get("report") {
        None | Some(Json::Null) => info
            .reports
            .first()
            .ok_or_else(|| "the plugin declares no reports (describe().reports)".to_owned()),
        Some(Json::String(id)) => info.reports.iter().find(|r| r.id == *id).ok_or_else(|| {
            if info.reports.is_empty() {
                format!("the plugin declares no reports, so not '{id}'")
            } else {
                format!(
                    "the plugin has no report '{id}' (it declares: {})",
                    declared()
                )
            }
        }),
        Some(_) => Err("\"report\" must be a report id (text)".to_owned()),
    }
}

/// The report's parameters from the sample, in declared order, defaults filling the gaps;
/// like the server, a parameter the report does not declare is refused and a blank one takes
/// its default.
fn report_parameters(def: &w::ReportDef, given: Option<&Json>) -> Result<Vec<w::Field>, String> {
    let given = match given {
        None | Some(Json::Null) => &Map::new(),
        Some(Json::Object(m)) => m,
        Some(_) => return Err("\"parameters\" must be an object of name: value".to_owned()),
    };
    for name in given.keys() {
        if !def.parameters.iter().any(|p| p.name == *name) {
            let known: Vec<&str> = def.parameters.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "parameters: report {} takes no parameter '{name}' (it takes: {})",
                def.id,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        }
    }
    def.parameters
        .iter()
        .map(|p| {
            let value = match given.get(&p.name) {
                None | Some(Json::Null) => p.default.clone(),
                Some(Json::String(s)) if s.trim().is_empty() => p.default.clone(),
                Some(v) => parameter_value(p, v)
                    .map_err(|m| format!("parameters: {}: {m}, got {v}", p.name))?,
            };
            Ok(w::Field {
                name: p.name.clone(),
                value,
            })
        })
        .collect()
}

/// A JSON value as a parameter of the declared type.
fn parameter_value(p: &w::SettingDef, v: &Json) -> Result<w::FieldValue, String> {
    let text = v.as_str().map(str::trim);
    Ok(match p.setting_type {
        w::SettingType::Text => w::FieldValue::Text(text.ok_or("expected text")?.to_owned()),
        w::SettingType::Integer => w::FieldValue::Integer(
            v.as_i64()
                .or_else(|| text.and_then(|t| t.parse().ok()))
                .ok_or("expected a whole number")?,
        ),
        w::SettingType::Number => {
            let d: rust_decimal::Decimal = match v {
                Json::Number(n) => n.to_string().parse().ok(),
                Json::String(s) => s.trim().parse().ok(),
                _ => None,
            }
            .ok_or("expected a number")?;
            w::FieldValue::Number(d.to_string())
        }
        w::SettingType::Boolean => w::FieldValue::Boolean(match (v, text) {
            (Json::Bool(b), _) => *b,
            (_, Some("true")) => true,
            (_, Some("false")) => false,
            _ => return Err("expected true or false".to_owned()),
        }),
        w::SettingType::Choice => {
            let t = text.ok_or("expected text")?;
            if !p.options.is_empty() && !p.options.iter().any(|o| o == t) {
                return Err(format!("expected one of {}", p.options.join(", ")));
            }
            w::FieldValue::Choice(t.to_owned())
        }
        w::SettingType::TextList => w::FieldValue::Choices(match v {
            Json::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(|s| s.trim().to_owned()))
                .collect::<Option<Vec<_>>>()
                .ok_or("expected a list of text")?,
            Json::String(s) => s
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            _ => return Err("expected a list of text".to_owned()),
        }),
    })
}

/// A parameter's value on the `parameters:` line: blank text shown as `""`.
fn shown_parameter(v: &w::FieldValue) -> String {
    match v {
        w::FieldValue::Text(s) | w::FieldValue::Choice(s) if s.is_empty() => "\"\"".to_owned(),
        other => readable(other),
    }
}

/// The table in aligned columns under the column labels (numeric columns aligned right),
/// then the chart hint.
fn write_table(out: &mut String, t: &w::ReportTable) {
    let width = t
        .rows
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .max(t.columns.len());
    let header: Vec<String> = (0..width)
        .map(|i| {
            t.columns
                .get(i)
                .map_or_else(String::new, |c| c.label.clone())
        })
        .collect();
    let cells: Vec<Vec<String>> = t
        .rows
        .iter()
        .map(|r| {
            (0..width)
                .map(|i| match r.get(i) {
                    None | Some(w::FieldValue::Null) => String::new(),
                    Some(v) => readable(v),
                })
                .collect()
        })
        .collect();
    let numeric: Vec<bool> = (0..width)
        .map(|i| {
            let mut values = t
                .rows
                .iter()
                .filter_map(|r| r.get(i))
                .filter(|v| !matches!(v, w::FieldValue::Null));
            let mut any = false;
            let all = values.all(|v| {
                any = true;
                matches!(
                    v,
                    w::FieldValue::Integer(_) | w::FieldValue::Number(_) | w::FieldValue::Money(_)
                )
            });
            any && all
        })
        .collect();
    let widths: Vec<usize> = (0..width)
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |out: &mut String, row: &[String]| {
        let mut text = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = " ".repeat(widths[i] - cell.chars().count());
            if i > 0 {
                text.push_str("  ");
            }
            if numeric[i] {
                text.push_str(&pad);
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.push_str(&pad);
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(out, &header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(out, &rule);
    for row in &cells {
        line(out, row);
    }
    if cells.is_empty() {
        let _ = writeln!(out, "(no rows)");
    }
    let chart = match t.chart {
        w::ChartKind::None => "none",
        w::ChartKind::Bar => "bar",
        w::ChartKind::Line => "line",
        w::ChartKind::Pie => "pie",
        w::ChartKind::Funnel => "funnel",
    };
    let mut hint = format!("chart: {chart}");
    if !t.value_columns.is_empty() {
        let _ = write!(hint, " of {}", t.value_columns.join(", "));
    }
    if let Some(label) = &t.label_column {
        let _ = write!(hint, " by {label}");
    }
    let _ = writeln!(out, "{hint}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sample {
        let records = serde_json::json!([
            { "kind": "deal", "id": "d1", "fields": { "title": "Alpha", "amount": "100", "status": "won", "created_at": "2026-01-01T00:00:00Z", "tags": ["big", "eu"] }, "custom": { "tier": 2 } },
            { "kind": "deal", "id": "d2", "fields": { "title": "Beta", "amount": "250.5", "status": "lost", "created_at": "2026-03-01T00:00:00Z", "expected_close": "2026-04-01" }, "custom": { "tier": 10 } },
            { "kind": "deal", "id": "d3", "fields": { "title": "Gamma", "status": "open", "created_at": "2026-02-01T00:00:00Z" } },
            { "kind": "contact", "id": "c1", "fields": { "first_name": "Ada" } }
        ]);
        Sample(entities(Some(&records), "records").unwrap())
    }

    fn ids(filters: &[(&str, &str, &str)]) -> Result<Vec<String>, String> {
        let filters: Vec<w::Filter> = filters
            .iter()
            .map(|(field, op, value)| w::Filter {
                field: (*field).to_owned(),
                op: (*op).to_owned(),
                value: (*value).to_owned(),
            })
            .collect();
        let page = sample().query(EntityKind::Deal, &filters, 100, None)?;
        Ok(page.items.into_iter().map(|e| e.id).collect())
    }

    #[test]
    fn query_filters_sample_records_like_the_store() {
        for (filters, expected) in [
            (vec![], vec!["d2", "d3", "d1"]),
            (vec![("status", "eq", "WON")], vec!["d1"]),
            (vec![("status", "ne", "won")], vec!["d2", "d3"]),
            (vec![("status", "in", "won,lost")], vec!["d2", "d1"]),
            (vec![("amount", "gt", "100")], vec!["d2"]),
            (vec![("amount", "gte", "100")], vec!["d2", "d1"]),
            (vec![("amount", "lte", "100.00")], vec!["d1"]),
            (vec![("created_at", "lt", "2026-02-01")], vec!["d1"]),
            (vec![("expected_close", "gte", "2026-03-15")], vec!["d2"]),
            (vec![("title", "contains", "amm")], vec!["d3"]),
            (vec![("tags", "eq", "eu")], vec!["d1"]),
            (vec![("id", "eq", "d3")], vec!["d3"]),
            (vec![("amount", "eq", "")], vec!["d3"]),
            (vec![("custom.tier", "gt", "5")], vec!["d2"]),
            (
                vec![("status", "in", "won,lost"), ("amount", "lt", "200")],
                vec!["d1"],
            ),
        ] {
            assert_eq!(ids(&filters).unwrap(), expected, "{filters:?}");
        }
    }

    #[test]
    fn query_pages_with_a_cursor_and_names_bad_filters() {
        let s = sample();
        let first = s.query(EntityKind::Deal, &[], 2, None).unwrap();
        let next = first.next_cursor.clone().unwrap();
        let second = s.query(EntityKind::Deal, &[], 2, Some(&next)).unwrap();
        let page_ids = |p: &w::Page| p.items.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
        assert_eq!(
            (page_ids(&first), page_ids(&second)),
            (
                vec!["d2".to_owned(), "d3".to_owned()],
                vec!["d1".to_owned()]
            )
        );
        assert_eq!(second.next_cursor, None);
        assert_eq!(
            s.query(EntityKind::Deal, &[], 2, Some("x")).unwrap_err(),
            "cursor 'x' is not one this query returned"
        );
        for (filter, expected) in [
            (
                ("colour", "eq", "red"),
                "colour: deal has no field 'colour'",
            ),
            (
                ("status", "like", "won"),
                "unknown filter operator 'like' (use one of eq, ne, gt, gte, lt, lte, contains, in)",
            ),
            (
                ("status", "eq", "pending"),
                "status: must be one of open, won, lost",
            ),
            (("amount", "gt", "lots"), "amount: "),
        ] {
            let err = ids(&[filter]).unwrap_err();
            assert!(err.starts_with(expected), "{filter:?}: {err}");
        }
    }
}
