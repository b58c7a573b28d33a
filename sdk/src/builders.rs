//! Helpers for the values plugin authors read and build most: entity field access, settings,
//! fields, query filters, setting definitions, and scores with reasons.

use crate::{
    Entity, Field, FieldValue, Filter, Score, ScoreReason, SettingDef, SettingType, Timestamp,
};

/// A named field value.
pub fn field(name: &str, value: FieldValue) -> Field {
    Field {
        name: name.to_owned(),
        value,
    }
}

/// A filter for `host::query`: `filter("deal_id", "eq", &deal.id)`, `filter("closed_at",
/// "gte", "2026-01-01")`. `op` is one of `eq`, `ne`, `gt`, `gte`, `lt`, `lte`, `contains`,
/// `in` (comma-separated values).
pub fn filter(field: &str, op: &str, value: &str) -> Filter {
    Filter {
        field: field.to_owned(),
        op: op.to_owned(),
        value: value.to_owned(),
    }
}

/// A setting definition with no options and no help text.
pub fn setting(
    name: &str,
    label: &str,
    setting_type: SettingType,
    default: FieldValue,
) -> SettingDef {
    SettingDef {
        name: name.to_owned(),
        label: label.to_owned(),
        setting_type,
        default,
        options: Vec::new(),
        help: None,
    }
}

/// Typed access to an entity's fields (built-in first, then custom).
pub trait EntityExt {
    /// The value of a built-in or custom field.
    fn value(&self, name: &str) -> Option<&FieldValue>;

    /// The field as text (text, choice, date or decimal values).
    fn text(&self, name: &str) -> Option<&str> {
        match self.value(name)? {
            FieldValue::Text(s)
            | FieldValue::Choice(s)
            | FieldValue::Date(s)
            | FieldValue::Number(s)
            | FieldValue::Money(s)
            | FieldValue::Reference(s) => Some(s),
            _ => None,
        }
    }

    /// The field as a whole number.
    fn integer(&self, name: &str) -> Option<i64> {
        match self.value(name)? {
            FieldValue::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The field as a timestamp.
    fn datetime(&self, name: &str) -> Option<Timestamp> {
        match self.value(name)? {
            FieldValue::Datetime(t) => Some(*t),
            _ => None,
        }
    }

    /// The field as a list of text values (tags, multi-choice) or ids.
    fn list(&self, name: &str) -> Vec<String> {
        match self.value(name) {
            Some(FieldValue::Choices(l) | FieldValue::References(l)) => l.clone(),
            _ => Vec::new(),
        }
    }
}

impl EntityExt for Entity {
    fn value(&self, name: &str) -> Option<&FieldValue> {
        self.fields
            .iter()
            .chain(&self.custom)
            .find(|f| f.name == name)
            .map(|f| &f.value)
            .filter(|v| !matches!(v, FieldValue::Null))
    }
}

/// The plugin's settings, with typed getters.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Shared, so handing out a copy per record costs nothing.
    fields: std::sync::Arc<[Field]>,
}

impl Settings {
    /// Wraps settings as the host returned them.
    pub fn new(fields: Vec<Field>) -> Self {
        Settings {
            fields: fields.into(),
        }
    }

    /// A setting's value as the host sent it (`None` when the host sent none).
    pub fn value(&self, name: &str) -> Option<&FieldValue> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| &f.value)
    }

    /// A whole-number setting.
    pub fn integer(&self, name: &str) -> Option<i64> {
        match self.value(name)? {
            FieldValue::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// A decimal-number setting, as `f64` (an integer setting is accepted too). Number
    /// settings travel as exact decimal text; use [`value`](Self::value) to keep it exact.
    pub fn number(&self, name: &str) -> Option<f64> {
        match self.value(name)? {
            FieldValue::Number(d) | FieldValue::Money(d) => d.parse().ok(),
            #[allow(clippy::cast_precision_loss)]
            FieldValue::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// A text setting.
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.value(name)? {
            FieldValue::Text(s) | FieldValue::Choice(s) => Some(s),
            _ => None,
        }
    }

    /// A list setting.
    pub fn list(&self, name: &str) -> Vec<String> {
        match self.value(name) {
            Some(FieldValue::Choices(l)) => l.clone(),
            _ => Vec::new(),
        }
    }

    /// A boolean setting.
    pub fn boolean(&self, name: &str) -> Option<bool> {
        match self.value(name)? {
            FieldValue::Boolean(b) => Some(*b),
            _ => None,
        }
    }
}

/// Builds a score from reasons; the total is clamped to 0–100.
#[derive(Debug, Clone, Default)]
pub struct ScoreCard {
    reasons: Vec<ScoreReason>,
}

impl ScoreCard {
    /// An empty score card.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds points (negative to subtract) with the reason users will see.
    pub fn add(&mut self, points: i32, reason: impl Into<String>) -> &mut Self {
        if points != 0 {
            self.reasons.push(ScoreReason {
                points,
                reason: reason.into(),
            });
        }
        self
    }

    /// The total so far, before clamping.
    pub fn total(&self) -> i32 {
        self.reasons.iter().map(|r| r.points).sum()
    }

    /// The score for `entity`.
    pub fn finish(self, entity: &Entity) -> Score {
        let value = u8::try_from(self.total().clamp(0, 100)).unwrap_or(0);
        Score {
            id: entity.id.clone(),
            value,
            reasons: self.reasons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_each_type() {
        let s = Settings::new(vec![
            field("rate", FieldValue::Number("2.5".to_owned())),
            field("count", FieldValue::Integer(3)),
            field("name", FieldValue::Text("x".to_owned())),
            field("on", FieldValue::Boolean(true)),
            field("words", FieldValue::Choices(vec!["a".to_owned()])),
        ]);
        assert_eq!(s.number("rate"), Some(2.5));
        assert_eq!(s.number("count"), Some(3.0));
        assert_eq!(s.number("name"), None);
        assert_eq!(s.integer("count"), Some(3));
        assert_eq!(s.text("name"), Some("x"));
        assert_eq!(s.boolean("on"), Some(true));
        assert_eq!(s.list("words"), ["a"]);
        assert!(s.value("missing").is_none());
        assert!(s.list("missing").is_empty());
    }
}
