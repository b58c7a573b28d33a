//! Conversions between the core's records and values and the WIT types plugins see.

use kith_core::schema::ValueType;
use kith_core::{AnyRecord, EntityKind, Value};

use super::wit::kith::plugin::types as w;

/// The WIT kind of a core kind.
pub fn kind_to_wit(k: EntityKind) -> w::EntityKind {
    match k {
        EntityKind::Contact => w::EntityKind::Contact,
        EntityKind::Company => w::EntityKind::Company,
        EntityKind::Deal => w::EntityKind::Deal,
        EntityKind::Ticket => w::EntityKind::Ticket,
        EntityKind::Interaction => w::EntityKind::Interaction,
        EntityKind::Task => w::EntityKind::Task,
    }
}

/// The core kind of a WIT kind.
pub fn kind_from_wit(k: w::EntityKind) -> EntityKind {
    match k {
        w::EntityKind::Contact => EntityKind::Contact,
        w::EntityKind::Company => EntityKind::Company,
        w::EntityKind::Deal => EntityKind::Deal,
        w::EntityKind::Ticket => EntityKind::Ticket,
        w::EntityKind::Interaction => EntityKind::Interaction,
        w::EntityKind::Task => EntityKind::Task,
    }
}

/// A core value as a WIT field value; `ty` refines text into choices and numbers into money.
fn value_to_wit(v: &Value, ty: Option<ValueType>, money: bool) -> w::FieldValue {
    match v {
        Value::Null => w::FieldValue::Null,
        Value::Bool(b) => w::FieldValue::Boolean(*b),
        Value::Integer(i) => w::FieldValue::Integer(*i),
        Value::Number(d) if money => w::FieldValue::Money(d.to_string()),
        Value::Number(d) => w::FieldValue::Number(d.to_string()),
        Value::Text(s) => match ty {
            Some(ValueType::Choice(_)) => w::FieldValue::Choice(s.clone()),
            _ => w::FieldValue::Text(s.clone()),
        },
        Value::Date(d) => w::FieldValue::Date(d.to_string()),
        Value::DateTime(t) => w::FieldValue::Datetime(t.timestamp_micros()),
        Value::Ref(id) => w::FieldValue::Reference(id.to_string()),
        Value::List(items) => {
            let refs: Option<Vec<String>> = items
                .iter()
                .map(|i| match i {
                    Value::Ref(id) => Some(id.to_string()),
                    _ => None,
                })
                .collect();
            match refs {
                Some(ids) if !ids.is_empty() => w::FieldValue::References(ids),
                _ => w::FieldValue::Choices(items.iter().map(ToString::to_string).collect()),
            }
        }
    }
}

/// A stored record as the WIT entity plugins receive.
pub fn entity_from_record(r: &AnyRecord) -> w::Entity {
    let kind = r.kind();
    // Empty fields are left out: every string crosses into the guest as its own allocation,
    // and most records leave many optional fields empty.
    let fields = kind
        .fields()
        .iter()
        .filter_map(|f| {
            let v = r.get(f.name).filter(|v| !v.is_empty())?;
            Some(w::Field {
                name: f.name.to_owned(),
                value: value_to_wit(&v, Some(f.ty), f.name == "amount"),
            })
        })
        .collect();
    let custom = custom_values(r)
        .into_iter()
        .map(|(name, v)| w::Field {
            value: value_to_wit(&v, None, false),
            name,
        })
        .collect();
    w::Entity {
        kind: kind_to_wit(kind),
        id: r.id().to_string(),
        fields,
        custom,
    }
}

fn custom_values(r: &AnyRecord) -> Vec<(String, Value)> {
    let custom = match r {
        AnyRecord::Contact(x) => &x.custom,
        AnyRecord::Company(x) => &x.custom,
        AnyRecord::Deal(x) => &x.custom,
        AnyRecord::Ticket(x) => &x.custom,
        AnyRecord::Interaction(x) => &x.custom,
        AnyRecord::Task(x) => &x.custom,
    };
    custom.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A WIT field value as a core value (the host validates it against the field afterwards).
pub fn value_from_wit(v: &w::FieldValue) -> Value {
    match v {
        w::FieldValue::Null => Value::Null,
        w::FieldValue::Text(s) | w::FieldValue::Choice(s) | w::FieldValue::Date(s) => {
            Value::Text(s.clone())
        }
        w::FieldValue::Number(s) | w::FieldValue::Money(s) => match s.parse() {
            Ok(d) => Value::Number(d),
            Err(_) => Value::Text(s.clone()),
        },
        w::FieldValue::Integer(i) => Value::Integer(*i),
        w::FieldValue::Datetime(t) => {
            chrono::DateTime::from_timestamp_micros(*t).map_or(Value::Null, Value::DateTime)
        }
        w::FieldValue::Boolean(b) => Value::Bool(*b),
        w::FieldValue::Choices(l) => Value::List(l.iter().cloned().map(Value::Text).collect()),
        w::FieldValue::Reference(id) => Value::Text(id.clone()),
        w::FieldValue::References(ids) => {
            Value::List(ids.iter().cloned().map(Value::Text).collect())
        }
    }
}

/// A committed event as the WIT event `on-event` receives.
pub fn event_to_wit(e: &kith_core::Event) -> w::Event {
    w::Event {
        seq: e.seq,
        kind: kind_to_wit(e.kind),
        id: e.id.to_string(),
        op: match e.op {
            kith_core::Operation::Created => w::Operation::Created,
            kith_core::Operation::Updated => w::Operation::Updated,
            kith_core::Operation::Deleted => w::Operation::Deleted,
        },
        changes: e
            .changes
            .iter()
            .map(|c| w::FieldChange {
                field: c.field.clone(),
                before: value_to_wit(&c.before, None, false),
                after: value_to_wit(&c.after, None, false),
            })
            .collect(),
        actor: e.actor.clone(),
        at: e.at.timestamp_micros(),
    }
}
