//! Custom fields: definitions per entity kind, and the checks that keep every stored custom
//! value consistent with its definition.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::entity::{EntityKind, Lookup};
use crate::error::Error;
use crate::id::Id;
use crate::money;
use crate::pipeline::is_slug;
use crate::schema::{self, FieldCodec};
use crate::value::Value;

/// The type of a custom field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// One line of text (up to 1,000 characters).
    Text,
    /// Long text (up to 100,000 characters).
    LongText,
    /// An exact decimal number.
    Number,
    /// A whole number.
    Integer,
    /// A non-negative amount with at most four decimals.
    Money,
    /// A calendar date (`YYYY-MM-DD`).
    Date,
    /// A timestamp (RFC 3339).
    Datetime,
    /// True or false.
    Boolean,
    /// One of `options`.
    Choice,
    /// Any number of `options`.
    MultiChoice,
    /// An http(s) URL.
    Url,
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// The id of a record of `reference_kind`.
    Reference,
}

/// A custom field as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDef {
    /// The record kind it belongs to.
    pub kind: EntityKind,
    /// Key used in `custom` (`tier`); lower-case letters, digits, `_` and `-`.
    pub name: String,
    /// Label for forms.
    pub label: String,
    /// The value type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Whether every record of the kind must have a value.
    pub required: bool,
    /// Allowed values for `choice` and `multi_choice`.
    #[serde(default)]
    pub options: Vec<String>,
    /// Help text shown beside the field.
    #[serde(default)]
    pub help: Option<String>,
    /// For `reference`: the kind of record it points at.
    #[serde(default)]
    pub reference_kind: Option<EntityKind>,
    /// The plugin that declared it, if any.
    #[serde(default)]
    pub plugin: Option<String>,
    /// Whether its plugin computes it on every write (it cannot be set by hand).
    #[serde(default)]
    pub computed: bool,
    /// When it was defined.
    pub created_at: Timestamp,
}

/// A request to define a custom field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFieldDef {
    /// Key used in `custom`.
    pub name: String,
    /// Label for forms; defaults to the name.
    #[serde(default)]
    pub label: Option<String>,
    /// The value type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Whether every record must have a value.
    #[serde(default)]
    pub required: bool,
    /// Allowed values for `choice` and `multi_choice`.
    #[serde(default)]
    pub options: Vec<String>,
    /// Help text.
    #[serde(default)]
    pub help: Option<String>,
    /// For `reference`: the kind of record it points at.
    #[serde(default)]
    pub reference_kind: Option<EntityKind>,
}

impl NewFieldDef {
    /// Checks the definition and turns it into a [`FieldDef`] of `kind`.
    pub fn into_def(self, kind: EntityKind, now: Timestamp) -> Result<FieldDef, Error> {
        let name = self.name.trim().to_ascii_lowercase();
        if !is_slug(&name) {
            return Err(Error::invalid(
                "name",
                format!(
                    "'{name}' must be 1-64 lower-case letters, digits, '-' or '_', starting with a letter"
                ),
            ));
        }
        if kind.field(&name).is_some() || name == "custom" {
            return Err(Error::invalid(
                "name",
                format!("'{name}' is a built-in field of {kind}"),
            ));
        }
        let choice = matches!(self.field_type, FieldType::Choice | FieldType::MultiChoice);
        let mut options: Vec<String> = Vec::new();
        for o in self.options {
            let o = o.trim().to_owned();
            if o.is_empty() || o.len() > 200 {
                return Err(Error::invalid(
                    "options",
                    "each option must be 1-200 characters",
                ));
            }
            if options.contains(&o) {
                return Err(Error::invalid("options", format!("'{o}' is listed twice")));
            }
            options.push(o);
        }
        if choice && options.is_empty() {
            return Err(Error::invalid(
                "options",
                "a choice field needs at least one option",
            ));
        }
        if !choice && !options.is_empty() {
            return Err(Error::invalid(
                "options",
                "only choice and multi_choice fields take options",
            ));
        }
        match (self.field_type, self.reference_kind) {
            (FieldType::Reference, None) => {
                return Err(Error::invalid(
                    "reference_kind",
                    "a reference field must say which kind of record it points at",
                ));
            }
            (FieldType::Reference, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(Error::invalid(
                    "reference_kind",
                    "only reference fields take a reference_kind",
                ));
            }
        }
        let label = self
            .label
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| name.replace(['_', '-'], " "));
        Ok(FieldDef {
            kind,
            name,
            label,
            field_type: self.field_type,
            required: self.required,
            options,
            help: self.help.filter(|h| !h.trim().is_empty()),
            reference_kind: self.reference_kind,
            plugin: None,
            computed: false,
            created_at: now,
        })
    }
}

/// A change to a custom field an admin defined: what people read and whether it must be
/// filled in, and more options for a choice. Its name, type and target stay: stored values
/// were checked against them. Options may be added, not removed, since records may hold them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldChanges {
    /// A new label.
    #[serde(default)]
    pub label: Option<String>,
    /// New help text (empty removes it).
    #[serde(default)]
    pub help: Option<String>,
    /// Whether every record must have a value from now on.
    #[serde(default)]
    pub required: Option<bool>,
    /// The full list of options: every current one, plus any new ones.
    #[serde(default)]
    pub options: Option<Vec<String>>,
}

impl FieldDef {
    /// This definition with `changes` applied and checked as a new definition would be.
    ///
    /// Errors: the field belongs to a plugin (its plugin defines it), an option in use would
    /// be dropped, or the result is not a valid definition.
    pub fn changed(&self, changes: FieldChanges) -> Result<FieldDef, Error> {
        if let Some(p) = &self.plugin {
            return Err(Error::invalid(
                "name",
                format!(
                    "'{}' belongs to the plugin {p}; a new version of the plugin changes it",
                    self.name
                ),
            ));
        }
        if let Some(new) = &changes.options
            && let Some(gone) = self
                .options
                .iter()
                .find(|o| !new.iter().any(|n| n.trim() == o.as_str()))
        {
            return Err(Error::invalid(
                "options",
                format!(
                    "'{gone}' cannot be removed: records may hold it (options can only be added)"
                ),
            ));
        }
        let merged = NewFieldDef {
            name: self.name.clone(),
            label: Some(changes.label.unwrap_or_else(|| self.label.clone())),
            field_type: self.field_type,
            required: changes.required.unwrap_or(self.required),
            options: changes.options.unwrap_or_else(|| self.options.clone()),
            help: changes.help.or_else(|| self.help.clone()),
            reference_kind: self.reference_kind,
        };
        let mut def = merged.into_def(self.kind, self.created_at)?;
        def.plugin.clone_from(&self.plugin);
        def.computed = self.computed;
        Ok(def)
    }

    /// Converts and checks an input value for this field. `Null` (or empty) clears the value.
    pub fn convert(&self, v: Value, db: &dyn Lookup) -> Result<Value, Error> {
        let field = format!("custom.{}", self.name);
        let err = |m: String| Error::invalid(field.clone(), m);
        if v.is_empty() {
            return Ok(Value::Null);
        }
        let text = |v: Value, max: usize| -> Result<String, Error> {
            let s = String::from_value(v).map_err(err)?;
            if s.chars().count() > max {
                return Err(err(format!("is longer than {max} characters")));
            }
            Ok(s)
        };
        Ok(match self.field_type {
            FieldType::Text => Value::Text(text(v, schema::MAX_TEXT)?),
            FieldType::LongText => Value::Text(text(v, schema::MAX_LONG_TEXT)?),
            FieldType::Number => Value::Number(Decimal::from_value(v).map_err(err)?),
            FieldType::Integer => Value::Integer(i64::from_value(v).map_err(err)?),
            FieldType::Money => {
                Value::Number(money::amount(Decimal::from_value(v).map_err(err)?).map_err(err)?)
            }
            FieldType::Date => Option::<NaiveDate>::from_value(v)
                .map_err(err)?
                .map_or(Value::Null, Value::Date),
            FieldType::Datetime => Option::<Timestamp>::from_value(v)
                .map_err(err)?
                .map_or(Value::Null, Value::DateTime),
            FieldType::Boolean => Value::Bool(bool::from_value(v).map_err(err)?),
            FieldType::Choice => {
                Value::Text(self.option(&text(v, schema::MAX_TEXT)?).map_err(err)?)
            }
            FieldType::MultiChoice => {
                let items = Vec::<String>::from_value(v).map_err(err)?;
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    out.push(Value::Text(self.option(&i).map_err(err)?));
                }
                Value::List(out)
            }
            FieldType::Url => Value::Text(schema::url(&text(v, 2048)?).map_err(err)?),
            FieldType::Email => Value::Text(schema::email(&text(v, 254)?).map_err(err)?),
            FieldType::Phone => Value::Text(schema::phone(&text(v, 64)?).map_err(err)?),
            FieldType::Reference => {
                let id = Option::<Id>::from_value(v).map_err(err)?;
                match (id, self.reference_kind) {
                    (Some(id), Some(kind)) => {
                        if !db.exists(kind, id)? {
                            return Err(err(format!(
                                "refers to {kind} {id}, which does not exist"
                            )));
                        }
                        Value::Ref(id)
                    }
                    _ => Value::Null,
                }
            }
        })
    }

    fn option(&self, s: &str) -> Result<String, String> {
        self.options
            .iter()
            .find(|o| o.eq_ignore_ascii_case(s))
            .cloned()
            .ok_or_else(|| format!("'{s}' is not one of {}", self.options.join(", ")))
    }

    /// Converts a filter value given as text to this field's value type.
    pub fn parse_filter(&self, v: Value) -> Result<Value, String> {
        match self.field_type {
            FieldType::Text
            | FieldType::LongText
            | FieldType::Url
            | FieldType::Email
            | FieldType::Phone
            | FieldType::Choice
            | FieldType::MultiChoice => String::from_value(v).map(Value::Text),
            FieldType::Number | FieldType::Money => Decimal::from_value(v).map(Value::Number),
            FieldType::Integer => i64::from_value(v).map(Value::Integer),
            FieldType::Date => {
                Option::<NaiveDate>::from_value(v).map(|d| d.map_or(Value::Null, Value::Date))
            }
            FieldType::Datetime => {
                Option::<Timestamp>::from_value(v).map(|d| d.map_or(Value::Null, Value::DateTime))
            }
            FieldType::Boolean => bool::from_value(v).map(Value::Bool),
            FieldType::Reference => {
                Option::<Id>::from_value(v).map(|d| d.map_or(Value::Null, Value::Ref))
            }
        }
    }
}

/// Applies custom-field input to a record's custom values and checks required fields.
pub fn apply(
    defs: &[FieldDef],
    custom: &mut BTreeMap<String, Value>,
    input: BTreeMap<String, Value>,
    db: &dyn Lookup,
    kind: EntityKind,
) -> Result<(), Error> {
    for (name, v) in input {
        let def = defs
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| Error::UnknownField {
                kind,
                field: format!("custom.{name}"),
            })?;
        if def.computed {
            let owner = def.plugin.as_deref().unwrap_or("a plugin");
            return Err(Error::invalid(
                format!("custom.{name}"),
                format!("is computed by {owner} and cannot be set"),
            ));
        }
        match def.convert(v, db)? {
            Value::Null => {
                custom.remove(&def.name);
            }
            v => {
                custom.insert(def.name.clone(), v);
            }
        }
    }
    for def in defs.iter().filter(|d| d.required) {
        if custom.get(&def.name).is_none_or(Value::is_empty) {
            return Err(Error::invalid(
                format!("custom.{}", def.name),
                "is required",
            ));
        }
    }
    Ok(())
}
