//! Record fields in pages: how a value is shown, which control edits it, and how a posted
//! form becomes the same [`Input`] the JSON API builds, so the core validates both alike.
//!
//! A form names built-in fields as they are in JSON (`email`) and custom fields as
//! `custom.<name>`. Every control sends text; the core's field types already read text
//! (`"12.50"` for an amount), so the only conversions here are the ones HTML forces: an
//! unchecked box sends nothing, `datetime-local` has no zone (Kith shows and reads times in
//! UTC), and lists are written comma-separated.

use std::collections::BTreeMap;

use kith_core::money::Decimal;
use kith_core::schema::{FieldInfo, ValueType};
use kith_core::{AnyRecord, EntityKind, FieldDef, FieldType, Id, Input, Pipeline, Value};
use maud::{Markup, html};

/// Built-in fields that take a paragraph rather than a line.
const LONG_TEXT: &[&str] = &["description", "body", "notes", "address"];

/// One editable field on a form.
#[derive(Debug, Clone)]
pub(crate) struct FormField {
    /// The form name: `email`, or `custom.<name>`.
    pub name: String,
    /// What people read.
    pub label: String,
    /// Which control.
    pub control: Control,
    /// Whether it must be filled in.
    pub required: bool,
    /// A line of help under the label.
    pub help: Option<String>,
}

/// The control a field is edited with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Control {
    /// One line of text, with an HTML input type (`text`, `email`, `tel`, `url`).
    Line(&'static str),
    /// A paragraph.
    Paragraph,
    /// A number typed as text, checked by the core (so its message is the API's).
    Number,
    /// A calendar date.
    Date,
    /// A date and time, in UTC.
    DateTime,
    /// A checkbox.
    Check,
    /// One of these (value, label) options; empty allowed unless required.
    Select(Vec<(String, String)>),
    /// Any of these options.
    Many(Vec<String>),
    /// Several values, comma-separated.
    List,
    /// Stages of every pipeline, grouped.
    Stage(Vec<Pipeline>),
}

/// Options for reference fields: visible records of a kind, as (id, name).
pub(crate) type Choices = BTreeMap<EntityKind, Vec<(String, String)>>;

/// Label for a built-in field name: `first_name` → `First name`, `company_id` → `Company`.
pub(crate) fn label_of(name: &str) -> String {
    let base = name
        .strip_suffix("_ids")
        .map(|b| format!("{b}s"))
        .or_else(|| name.strip_suffix("_id").map(str::to_owned))
        .unwrap_or_else(|| name.to_owned());
    let text = base.replace('_', " ");
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_uppercase().collect::<String>() + chars.as_str()
    })
}

/// The kind a built-in reference field points at.
pub(crate) fn ref_kind(name: &str) -> Option<EntityKind> {
    match name {
        "company_id" => Some(EntityKind::Company),
        "contact_id" | "requester_id" | "contact_ids" => Some(EntityKind::Contact),
        "deal_id" => Some(EntityKind::Deal),
        "ticket_id" => Some(EntityKind::Ticket),
        _ => None,
    }
}

/// The fields a person edits for `kind`: the kind's own writable fields, then the custom
/// fields (plugin-computed ones are shown, not edited).
pub(crate) fn form_fields(
    kind: EntityKind,
    defs: &[FieldDef],
    pipelines: &[Pipeline],
    choices: &Choices,
) -> Vec<FormField> {
    let mut out: Vec<FormField> = kind
        .fields()
        .into_iter()
        .filter(|f| !f.read_only && !matches!(f.name, "id" | "owner" | "team" | "contact_ids"))
        .filter(|f| !f.name.ends_with("_at") || f.ty == ValueType::DateTime)
        .filter(|f| !(kind == EntityKind::Deal && f.name == "pipeline" && pipelines.len() < 2))
        .map(|f| builtin_field(f, pipelines, choices))
        .collect();
    out.extend(
        defs.iter()
            .filter(|d| !d.computed)
            .map(|d| custom_field(d, choices)),
    );
    out
}

fn builtin_field(f: FieldInfo, pipelines: &[Pipeline], choices: &Choices) -> FormField {
    let control = match f.ty {
        ValueType::Text if LONG_TEXT.contains(&f.name) => Control::Paragraph,
        ValueType::Text if f.name == "email" => Control::Line("email"),
        ValueType::Text if f.name.ends_with("phone") => Control::Line("tel"),
        ValueType::Text if f.name == "website" => Control::Line("url"),
        ValueType::Text if f.name == "stage" => Control::Stage(pipelines.to_vec()),
        ValueType::Text if f.name == "pipeline" => Control::Select(
            pipelines
                .iter()
                .map(|p| (p.key.clone(), p.name.clone()))
                .collect(),
        ),
        ValueType::Text => Control::Line("text"),
        ValueType::Integer | ValueType::Decimal => Control::Number,
        ValueType::Bool => Control::Check,
        ValueType::Date => Control::Date,
        ValueType::DateTime => Control::DateTime,
        ValueType::Id => ref_kind(f.name).map_or(Control::Line("text"), |k| reference(choices, k)),
        ValueType::IdList | ValueType::TextList => Control::List,
        ValueType::Choice(keys) => Control::Select(
            keys.iter()
                .map(|k| ((*k).to_owned(), label_of(k)))
                .collect(),
        ),
    };
    FormField {
        name: f.name.to_owned(),
        label: label_of(f.name),
        control,
        required: f.required,
        help: None,
    }
}

fn reference(choices: &Choices, kind: EntityKind) -> Control {
    Control::Select(choices.get(&kind).cloned().unwrap_or_default())
}

fn custom_field(d: &FieldDef, choices: &Choices) -> FormField {
    let options = || d.options.iter().map(|o| (o.clone(), o.clone())).collect();
    let control = match d.field_type {
        FieldType::Text => Control::Line("text"),
        FieldType::LongText => Control::Paragraph,
        FieldType::Number | FieldType::Integer | FieldType::Money => Control::Number,
        FieldType::Date => Control::Date,
        FieldType::Datetime => Control::DateTime,
        FieldType::Boolean => Control::Check,
        FieldType::Choice => Control::Select(options()),
        FieldType::MultiChoice => Control::Many(d.options.clone()),
        FieldType::Url => Control::Line("url"),
        FieldType::Email => Control::Line("email"),
        FieldType::Phone => Control::Line("tel"),
        FieldType::Reference => d
            .reference_kind
            .map_or(Control::Line("text"), |k| reference(choices, k)),
    };
    let owner = d
        .plugin
        .as_ref()
        .map(|p| format!("Added by the plugin {p}."));
    FormField {
        name: format!("custom.{}", d.name),
        label: d.label.clone(),
        control,
        required: d.required,
        help: match (&d.help, owner) {
            (Some(h), Some(o)) => Some(format!("{h} {o}")),
            (h, o) => h.clone().or(o),
        },
    }
}

/// The value a form shows for `field` of `record`, as the text its control holds.
pub(crate) fn form_value(record: &AnyRecord, field: &str) -> String {
    match record.get(field).unwrap_or(Value::Null) {
        Value::Null => String::new(),
        Value::DateTime(t) => t.format("%Y-%m-%dT%H:%M").to_string(),
        Value::List(items) => items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        v => v.to_string(),
    }
}

/// A posted form, as its (name, value) pairs; a name sent twice (a checkbox after its
/// hidden "false") keeps every value in order.
pub(crate) type Posted = Vec<(String, String)>;

/// The last value posted for `name`.
pub(crate) fn posted<'a>(form: &'a Posted, name: &str) -> Option<&'a str> {
    form.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Turns a posted form into an [`Input`] for the fields of `fields` it contains (fields the
/// form left out stay as they are, as with `PATCH`).
pub(crate) fn to_input(fields: &[FormField], form: &Posted) -> Input {
    let mut input = Input::default();
    for f in fields {
        let value = match &f.control {
            Control::Many(_) => {
                if posted(form, &f.name).is_none() {
                    continue;
                }
                Value::List(
                    form.iter()
                        .filter(|(k, v)| k == &f.name && !v.is_empty())
                        .map(|(_, v)| Value::Text(v.clone()))
                        .collect(),
                )
            }
            control => match posted(form, &f.name) {
                None => continue,
                Some(raw) => convert(control, raw),
            },
        };
        match f.name.strip_prefix("custom.") {
            Some(name) => input.custom.insert(name.to_owned(), value),
            None => input.fields.insert(f.name.clone(), value),
        };
    }
    input
}

/// One control's text as a value: empty is "no value"; everything else goes to the core as
/// text, which reads it by the field's type.
fn convert(control: &Control, raw: &str) -> Value {
    let raw = raw.trim();
    if raw.is_empty() {
        return match control {
            Control::List => Value::List(Vec::new()),
            _ => Value::Null,
        };
    }
    match control {
        Control::List => Value::List(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::Text(s.to_owned()))
                .collect(),
        ),
        // `datetime-local` sends `2026-03-02T14:30`: a wall-clock time, read as UTC.
        Control::DateTime if raw.len() == 16 => Value::Text(format!("{raw}:00Z")),
        _ => Value::Text(raw.to_owned()),
    }
}

/// Where a validation error belongs: the form name of the field it names.
pub(crate) fn error_field(field: Option<&str>) -> Option<String> {
    field.map(|f| f.trim_start_matches("custom.").to_owned())
}

/// The controls for `fields`, filled from `values` (form name → text), each with its label,
/// help, and the error that belongs to it.
pub(crate) fn controls(
    fields: &[FormField],
    values: &BTreeMap<String, String>,
    error: Option<(&str, &str)>,
) -> Markup {
    html! {
        @for f in fields {
            @let id = format!("f-{}", f.name.replace('.', "-"));
            @let value = values.get(&f.name).map_or("", String::as_str);
            @let err = error
                .filter(|(name, _)| *name == f.name || f.name.strip_prefix("custom.") == Some(*name))
                .map(|(_, m)| m);
            @let help_id = format!("{id}-help");
            @let err_id = format!("{id}-error");
            @let described = [f.help.as_ref().map(|_| help_id.clone()), err.map(|_| err_id.clone())]
                .into_iter().flatten().collect::<Vec<_>>().join(" ");
            div.field.invalid[err.is_some()] {
                @match &f.control {
                    Control::Check => {
                        input type="hidden" name=(f.name) value="false";
                        label.choice for=(id) {
                            input #(id) type="checkbox" name=(f.name) value="true" checked[value == "true"]
                                aria-describedby=[(!described.is_empty()).then_some(&described)];
                            (f.label)
                        }
                    }
                    Control::Many(options) => {
                        fieldset aria-describedby=[(!described.is_empty()).then_some(&described)] {
                            legend { (f.label) @if f.required { " *" } }
                            // Sent even with nothing ticked, so clearing every box clears the field.
                            input type="hidden" name=(f.name) value="";
                            @let chosen: Vec<&str> = value.split(", ").collect();
                            @for (i, o) in options.iter().enumerate() {
                                label.choice for=(format!("{id}-{i}")) {
                                    input id=(format!("{id}-{i}")) type="checkbox" name=(f.name) value=(o) checked[chosen.contains(&o.as_str())];
                                    (o)
                                }
                            }
                        }
                    }
                    control => {
                        label for=(id) { (f.label) @if f.required { " *" } }
                        @let aria = (!described.is_empty()).then_some(&described);
                        @match control {
                            Control::Paragraph => {
                                textarea #(id) name=(f.name) rows="4" required[f.required] aria-describedby=[aria] aria-invalid=[err.map(|_| "true")] { (value) }
                            }
                            Control::Select(options) => {
                                select #(id) name=(f.name) required[f.required] aria-describedby=[aria] aria-invalid=[err.map(|_| "true")] {
                                    option value="" { "—" }
                                    @if !value.is_empty() && !options.iter().any(|(v, _)| v == value) {
                                        option value=(value) selected { (value) }
                                    }
                                    @for (v, l) in options {
                                        option value=(v) selected[v == value] { (l) }
                                    }
                                }
                            }
                            Control::Stage(pipelines) => {
                                select #(id) name=(f.name) required[f.required] aria-describedby=[aria] aria-invalid=[err.map(|_| "true")] {
                                    @for p in pipelines {
                                        optgroup label=(p.name) {
                                            @for s in &p.stages {
                                                option value=(s.key) selected[s.key == value] { (s.name) " (" (s.probability) "%)" }
                                            }
                                        }
                                    }
                                }
                            }
                            Control::Number => {
                                input #(id) type="text" inputmode="decimal" name=(f.name) value=(value) required[f.required] aria-describedby=[aria] aria-invalid=[err.map(|_| "true")];
                            }
                            Control::Date => {
                                input #(id) type="date" name=(f.name) value=(value) required[f.required] aria-describedby=[aria] aria-invalid=[err.map(|_| "true")];
                            }
                            Control::DateTime => {
                                input #(id) type="datetime-local" name=(f.name) value=(value) required[f.required] aria-describedby=[aria] aria-invalid=[err.map(|_| "true")];
                            }
                            Control::List => {
                                input #(id) type="text" name=(f.name) value=(value) placeholder="comma, separated" aria-describedby=[aria] aria-invalid=[err.map(|_| "true")];
                            }
                            Control::Line(ty) => {
                                input #(id) type=(ty) name=(f.name) value=(value) required[f.required] aria-describedby=[aria] aria-invalid=[err.map(|_| "true")];
                            }
                            Control::Check | Control::Many(_) => {}
                        }
                    }
                }
                @if let Some(h) = &f.help { small.help id=(help_id) { (h) } }
                @if let Some(m) = err { p.field-error id=(err_id) { (m) } }
            }
        }
    }
}

/// A value as people read it; references become links named by `names` (id → name).
pub(crate) fn show(v: &Value, kind: Option<EntityKind>, names: &BTreeMap<Id, String>) -> Markup {
    html! {
        @match v {
            Value::Null => span.muted { "—" },
            Value::Bool(true) => "Yes",
            Value::Bool(false) => "No",
            Value::DateTime(t) => time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M")) },
            Value::Ref(id) => (record_link(kind, *id, names)),
            Value::List(items) => {
                @for (i, item) in items.iter().enumerate() {
                    @if i > 0 { ", " }
                    (show(item, kind, names))
                }
            }
            // Owners and assignees are user ids; people read names.
            Value::Text(t) if t.parse::<Id>().is_ok_and(|id| names.contains_key(&id)) => {
                (t.parse::<Id>().ok().and_then(|id| names.get(&id)).map_or("", String::as_str))
            }
            Value::Text(t) if t.starts_with("http://") || t.starts_with("https://") => {
                a href=(t) rel="noopener noreferrer" { (t) }
            }
            other => (other.to_string()),
        }
    }
}

/// A link to a record, named from `names` when known.
pub(crate) fn record_link(
    kind: Option<EntityKind>,
    id: Id,
    names: &BTreeMap<Id, String>,
) -> Markup {
    let name = names.get(&id).cloned();
    html! {
        @match (kind, name) {
            (Some(k), Some(n)) => a href=(format!("/{}/{id}", k.plural())) { (n) },
            // Not visible to this caller (or gone): the id alone, not a link to a 404.
            _ => span.muted { "hidden record" },
        }
    }
}

/// An amount with thousands separated: `1,234,567.50`.
pub(crate) fn money(d: Decimal) -> String {
    let s = d.round_dp(2).to_string();
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if frac.is_empty() {
        format!("{sign}{out}")
    } else {
        format!("{sign}{out}.{frac:0<2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, control: Control) -> FormField {
        FormField {
            name: name.to_owned(),
            label: label_of(name),
            control,
            required: false,
            help: None,
        }
    }

    #[test]
    fn money_is_grouped_by_thousands() {
        let d = |s: &str| s.parse::<Decimal>().unwrap_or_default();
        assert_eq!(money(d("1234567.5")), "1,234,567.50");
        assert_eq!(money(d("999")), "999");
        assert_eq!(money(d("-1000")), "-1,000");
    }

    #[test]
    fn labels_read_like_words() {
        assert_eq!(label_of("first_name"), "First name");
        assert_eq!(label_of("company_id"), "Company");
        assert_eq!(label_of("contact_ids"), "Contacts");
    }

    #[test]
    fn forms_become_the_inputs_the_api_builds() {
        let fields = [
            field("first_name", Control::Line("text")),
            field("tags", Control::List),
            field("done", Control::Check),
            field("due_at", Control::DateTime),
            field(
                "custom.colours",
                Control::Many(vec!["red".into(), "blue".into()]),
            ),
            field("untouched", Control::Line("text")),
        ];
        let form: Posted = [
            ("first_name", " Ada "),
            ("tags", "vip, , north"),
            ("done", "false"),
            ("done", "true"),
            ("due_at", "2026-03-02T14:30"),
            ("custom.colours", ""),
            ("custom.colours", "blue"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let input = to_input(&fields, &form);
        assert_eq!(input.fields["first_name"], Value::Text("Ada".into()));
        assert_eq!(
            input.fields["tags"],
            Value::List(vec![Value::Text("vip".into()), Value::Text("north".into())])
        );
        assert_eq!(input.fields["done"], Value::Text("true".into()));
        assert_eq!(
            input.fields["due_at"],
            Value::Text("2026-03-02T14:30:00Z".into())
        );
        assert_eq!(
            input.custom["colours"],
            Value::List(vec![Value::Text("blue".into())])
        );
        assert!(!input.fields.contains_key("untouched"));
    }

    #[test]
    fn an_emptied_field_is_cleared() {
        let fields = [
            field("phone", Control::Line("tel")),
            field("tags", Control::List),
        ];
        let form: Posted = vec![
            ("phone".into(), "  ".into()),
            ("tags".into(), String::new()),
        ];
        let input = to_input(&fields, &form);
        assert_eq!(input.fields["phone"], Value::Null);
        assert_eq!(input.fields["tags"], Value::List(Vec::new()));
    }
}
