//! `kith plugin run`: the plugin author's loop without a server. Runs one hook of a `.wasm`
//! against a JSON sample and reports the result, the plugin's logs, time and memory.
//!
//! The sample file:
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
//! can find.
//! Field values are typed by the record kind's built-in fields; custom values by their JSON type.

use std::fmt::Write as _;
use std::sync::Arc;

use kith_core::EntityKind;
use kith_core::schema::{ValueType, parse_timestamp};
use serde_json::{Map, Value as Json};

use super::convert::kind_to_wit;
use super::runtime::{CallReport, DataAccess, Runtime};
use super::wit::kith::plugin::types as w;

/// The hooks `kith plugin run` can call.
pub const HOOKS: &[&str] = &["describe", "score", "validate", "compute-fields"];

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
            let entities = entities(sample.get("entities"))?;
            let before = match sample.get("before") {
                Some(b) => Some(entity(0, b)?),
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
            let entities = entities(sample.get("entities"))?;
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

/// Applies the sample's setting overrides and gives `get` and `query` its `records`.
fn configure(
    mut plugin: super::runtime::LoadedPlugin,
    sample: &Map<String, Json>,
) -> Result<super::runtime::LoadedPlugin, String> {
    let records = entities_or_empty(sample.get("records"))?;
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

fn entities_or_empty(v: Option<&Json>) -> Result<Vec<w::Entity>, String> {
    match v {
        None => Ok(Vec::new()),
        some => entities(some),
    }
}

fn entities(v: Option<&Json>) -> Result<Vec<w::Entity>, String> {
    let Some(Json::Array(items)) = v else {
        return Err("\"entities\" must be a list of records".to_owned());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, e)| entity(i, e))
        .collect()
}

fn entity(i: usize, e: &Json) -> Result<w::Entity, String> {
    let at = |m: &str| format!("entities[{i}]: {m}");
    let kind = e
        .get("kind")
        .and_then(Json::as_str)
        .and_then(EntityKind::parse)
        .ok_or_else(|| {
            at("\"kind\" must be contact, company, deal, ticket, interaction or task")
        })?;
    let id = e
        .get("id")
        .and_then(Json::as_str)
        .ok_or_else(|| at("\"id\" is required"))?
        .to_owned();
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

    fn query(
        &self,
        kind: EntityKind,
        filters: &[w::Filter],
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<w::Page, String> {
        let matching: Vec<&w::Entity> = self
            .0
            .iter()
            .filter(|e| e.kind == kind_to_wit(kind))
            .filter(|e| {
                filters.iter().all(|f| {
                    let name = f.field.strip_prefix("custom.").unwrap_or(&f.field);
                    let actual: Vec<String> = e
                        .fields
                        .iter()
                        .chain(&e.custom)
                        .filter(|x| x.name == name)
                        .flat_map(|x| texts(&x.value))
                        .collect();
                    let has = |want: &str| actual.iter().any(|a| a.eq_ignore_ascii_case(want));
                    match f.op.as_str() {
                        "ne" => !has(&f.value),
                        "in" => f.value.split(',').any(has),
                        "contains" => actual
                            .iter()
                            .any(|a| a.to_lowercase().contains(&f.value.to_lowercase())),
                        _ => has(&f.value),
                    }
                })
            })
            .collect();
        let start: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let end = (start + usize::try_from(limit.max(1)).unwrap_or(1)).min(matching.len());
        Ok(w::Page {
            items: matching[start.min(end)..end]
                .iter()
                .map(|e| (*e).clone())
                .collect(),
            next_cursor: (end < matching.len()).then(|| end.to_string()),
        })
    }
}
