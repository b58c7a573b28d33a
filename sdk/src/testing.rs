//! A native stand-in for the Kith host, so plugin logic runs under plain `cargo test`.
//!
//! Install one with [`TestHost::install`]; the functions in [`crate::host`] then read its
//! settings, records and storage, and append to its log. Each test thread has its own.
//!
//! Its `query` matches filters like the server does for the common cases: `eq`, `ne` and `in`
//! compare text case-insensitively (a list field matches if any element does); `gt`, `gte`,
//! `lt` and `lte` compare numbers and money as exact decimals, datetimes as instants (the
//! filter value written in RFC 3339, as a bare `YYYY-MM-DD` meaning its midnight UTC, or as
//! microseconds) and other values as text; a record without the field never matches them.
//! Every query is recorded in [`TestHost::queries`], so a test can check which filters a
//! plugin pushed to the host and how it paged.
//!
//! Around it, what plugin tests build and check again and again: records ([`entity`]), events
//! ([`event`], [`change`], [`created`], [`deleted`]), the actions of one kind among a hook's
//! result ([`updates`], [`tasks`], [`interactions`], [`timers`], [`cancelled_timers`]), the
//! plugin's own changes applied to the test host as events ([`apply`]), and the check that
//! the manifest says what `describe()` says ([`manifest_mismatches`]).

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BTreeMap;

pub use crate::time::parse_instant;
use crate::{
    Action, Entity, EntityExt, EntityKind, Event, Field, FieldChange, FieldValue, Filter, Level,
    NewInteraction, NewTask, Operation, Page, Plugin, SettingDef, SettingType, Timer, Timestamp,
    UpdateFields, decimal, value,
};

/// What the host functions see in a native test.
#[derive(Debug, Clone, Default)]
pub struct TestHost {
    /// The plugin's settings.
    pub settings: Vec<Field>,
    /// Records `get` and `query` can find.
    pub records: Vec<Entity>,
    /// The plugin's key-value storage.
    pub kv: BTreeMap<String, Vec<u8>>,
    /// Everything the plugin logged.
    pub logs: Vec<(Level, String)>,
    /// Kinds the plugin may read; `None` allows all.
    pub readable: Option<Vec<EntityKind>>,
    /// Every `host::query` call so far, in order.
    pub queries: Vec<QueryCall>,
}

/// One `host::query` call, as the plugin made it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryCall {
    /// The kind asked for.
    pub kind: EntityKind,
    /// The filters, as sent.
    pub filters: Vec<Filter>,
    /// The page size asked for.
    pub limit: u32,
    /// The cursor passed back, `None` for the first page.
    pub cursor: Option<String>,
}

thread_local! {
    static HOST: RefCell<TestHost> = RefCell::new(TestHost::default());
}

/// Runs `f` with this thread's test host.
pub fn with<T>(f: impl FnOnce(&mut TestHost) -> T) -> T {
    HOST.with(|h| f(&mut h.borrow_mut()))
}

impl TestHost {
    /// A host whose settings are the plugin's declared defaults.
    pub fn for_plugin<P: Plugin>() -> Self {
        let settings = P::describe()
            .settings
            .into_iter()
            .map(|s| crate::field(&s.name, s.default))
            .collect();
        TestHost {
            settings,
            ..TestHost::default()
        }
    }

    /// Overrides one setting.
    pub fn set(mut self, name: &str, value: FieldValue) -> Self {
        self.settings.retain(|f| f.name != name);
        self.settings.push(crate::field(name, value));
        self
    }

    /// Adds records for `get` and `query`.
    pub fn with_records(mut self, records: impl IntoIterator<Item = Entity>) -> Self {
        self.records.extend(records);
        self
    }

    /// Makes this the current thread's host.
    pub fn install(self) {
        with(|h| *h = self);
    }

    /// Everything logged so far on this thread.
    pub fn logs() -> Vec<(Level, String)> {
        with(|h| h.logs.clone())
    }

    /// Every query made so far on this thread.
    pub fn queries() -> Vec<QueryCall> {
        with(|h| h.queries.clone())
    }

    fn check(&self, kind: EntityKind) -> Result<(), String> {
        match &self.readable {
            Some(kinds) if !kinds.contains(&kind) => {
                Err(format!("the plugin may not read {kind:?} records"))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn get(&self, kind: EntityKind, id: &str) -> Result<Option<Entity>, String> {
        self.check(kind)?;
        Ok(self
            .records
            .iter()
            .find(|e| e.kind == kind && e.id == id)
            .cloned())
    }

    pub(crate) fn query(
        &mut self,
        kind: EntityKind,
        filters: &[Filter],
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page, String> {
        self.queries.push(QueryCall {
            kind,
            filters: filters.to_vec(),
            limit,
            cursor: cursor.map(str::to_owned),
        });
        self.check(kind)?;
        let matching: Vec<&Entity> = self
            .records
            .iter()
            .filter(|e| e.kind == kind && filters.iter().all(|f| matches(e, f)))
            .collect();
        let start: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let end = (start + limit.max(1) as usize).min(matching.len());
        Ok(Page {
            items: matching[start.min(end)..end]
                .iter()
                .map(|e| (*e).clone())
                .collect(),
            next_cursor: (end < matching.len()).then(|| end.to_string()),
        })
    }
}

/// An entity for tests: `entity(EntityKind::Contact, "c1", [field("title", ...)])`.
pub fn entity(kind: EntityKind, id: &str, fields: impl IntoIterator<Item = Field>) -> Entity {
    Entity {
        kind,
        id: id.to_owned(),
        fields: fields.into_iter().collect(),
        custom: Vec::new(),
    }
}

/// A field change for [`event`]: `change("priority", value::choice("normal"),
/// value::choice("high"))`.
pub fn change(field: &str, before: FieldValue, after: FieldValue) -> FieldChange {
    FieldChange {
        field: field.to_owned(),
        before,
        after,
    }
}

/// An event as `on_event` receives it, with `seq` 1, the actor `user:test` and `at` 0; set
/// those on the result where the plugin looks at them
/// (`Event { actor: "plugin:me".into(), ..event(...) }`).
pub fn event(
    kind: EntityKind,
    id: &str,
    op: Operation,
    changes: impl IntoIterator<Item = FieldChange>,
) -> Event {
    Event {
        seq: 1,
        kind,
        id: id.to_owned(),
        op,
        changes: changes.into_iter().collect(),
        actor: "user:test".to_owned(),
        at: 0,
    }
}

/// The event of creating `entity`, as the host sends it: every set field, built-in and
/// `custom.NAME`, from null (otherwise as [`event`]).
pub fn created(entity: &Entity) -> Event {
    let changes = set_fields(entity).map(|(name, v)| change(&name, FieldValue::Null, v.clone()));
    event(entity.kind, &entity.id, Operation::Created, changes)
}

/// The event of deleting `entity`, as the host sends it: every set field, built-in and
/// `custom.NAME`, to null (otherwise as [`event`]).
pub fn deleted(entity: &Entity) -> Event {
    let changes = set_fields(entity).map(|(name, v)| change(&name, v.clone(), FieldValue::Null));
    event(entity.kind, &entity.id, Operation::Deleted, changes)
}

/// The `update_fields` actions among `actions`, in order.
pub fn updates(actions: &[Action]) -> Vec<&UpdateFields> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::UpdateFields(u) => Some(u),
            _ => None,
        })
        .collect()
}

/// The `create_task` actions among `actions`, in order.
pub fn tasks(actions: &[Action]) -> Vec<&NewTask> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateTask(t) => Some(t),
            _ => None,
        })
        .collect()
}

/// The `log_interaction` actions (notes and the like) among `actions`, in order.
pub fn interactions(actions: &[Action]) -> Vec<&NewInteraction> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::LogInteraction(i) => Some(i),
            _ => None,
        })
        .collect()
}

/// The timers `actions` schedule (`schedule` and `schedule_keyed`), in order.
pub fn timers(actions: &[Action]) -> Vec<&Timer> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Schedule(t) => Some(t),
            _ => None,
        })
        .collect()
}

/// The keys of the timers `actions` cancel, in order.
pub fn cancelled_timers(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::CancelTimer(key) => Some(key.as_str()),
            _ => None,
        })
        .collect()
}

/// Applies the record changes among `actions` to this thread's test host, roughly as the
/// server would, and returns the events they cause, made by `actor` at `at`: so a test can
/// feed a plugin its own changes and check that they do not set off more.
///
/// - `update_fields`, `assign_owner`, `change_ticket`, `move_deal`, `add_tag` and
///   `remove_tag` change the record's fields (`custom.NAME` a custom one; null removes the
///   field; a deal's status does not follow its stage) and make one `Updated` event with the
///   fields whose value changed, or none if nothing did;
/// - `create_task` and `log_interaction` add a task or interaction (with `created_at`, and
///   `occurred_at` for an interaction, set to `at`, and linked through `deal_id`,
///   `ticket_id`, `contact_id` or `company_id`) and make a `Created` event;
/// - timers are left out: call the plugin's `on_timer` yourself.
///
/// # Panics
///
/// If an action names a record the test host does not have (the server would fail the call).
pub fn apply(actions: &[Action], actor: &str, at: Timestamp) -> Vec<Event> {
    let mut events: Vec<Event> = with(|h| actions.iter().filter_map(|a| h.apply(a, at)).collect());
    for e in &mut events {
        e.actor = actor.to_owned();
        e.at = at;
    }
    events
}

/// What a plugin's `kith-plugin.toml` fails to say that its `describe()` says, one message
/// each; empty when they agree. The host refuses a plugin whose manifest and `describe()`
/// disagree, and the manifest is what an admin reads before granting anything, so every
/// plugin should have a test like
///
/// ```text
/// let problems = manifest_mismatches::<MyPlugin>("my-plugin", include_str!("../kith-plugin.toml"));
/// assert!(problems.is_empty(), "{}", problems.join("\n"));
/// ```
///
/// There is no TOML parser here: it renders what the manifest should say and looks for the
/// text, so the manifest must be written in this layout (comments may stand between the
/// groups): the lines `id = "..."`, `name`, `version`, `wit` and `description` (values as
/// TOML basic strings); `# subscriptions = ["ticket"]` for a plugin that subscribes to
/// events (the host reads subscriptions from `describe()`, but the admin should see them);
/// `[capabilities]` directly followed by its `read = [...]` and `actions = [...]` lines; and
/// one `[[settings]]` block per setting, in the order `name`, `label`, `type`, `options`
/// (when it has some), `default` (unless it is null) and `help` (when it has some).
pub fn manifest_mismatches<P: Plugin>(id: &str, manifest: &str) -> Vec<String> {
    let info = P::describe();
    let mut problems = Vec::new();
    let mut expected = vec![
        format!("id = {}\n", toml_string(id)),
        format!("name = {}\n", toml_string(&info.name)),
        format!("version = {}\n", toml_string(&info.version)),
        format!("wit = {}\n", toml_string(crate::WIT_VERSION)),
        format!("description = {}\n", toml_string(&info.description)),
        format!(
            "[capabilities]\nread = {}\nactions = {}\n",
            toml_kinds(&info.capabilities.read),
            toml_list(&info.capabilities.actions)
        ),
    ];
    if info.subscriptions.is_empty() {
        if manifest.contains("# subscriptions =") {
            problems.push("the manifest names subscriptions, but describe() has none".to_owned());
        }
    } else {
        expected.push(format!(
            "# subscriptions = {}\n",
            toml_kinds(&info.subscriptions)
        ));
    }
    let blocks = manifest.matches("[[settings]]").count();
    if blocks != info.settings.len() {
        problems.push(format!(
            "the manifest has {blocks} [[settings]] blocks, describe() {} settings",
            info.settings.len()
        ));
    }
    for s in &info.settings {
        match setting_block(s) {
            Ok(block) => expected.push(block),
            Err(e) => problems.push(e),
        }
    }
    problems.extend(
        expected
            .into_iter()
            .filter(|want| !manifest.contains(want.as_str()))
            .map(|want| format!("the manifest lacks:\n{want}")),
    );
    problems
}

impl TestHost {
    /// One action's change to the records, for [`apply`]; `None` for a timer or an update that
    /// changes nothing.
    fn apply(&mut self, a: &Action, at: Timestamp) -> Option<Event> {
        let new_record = match a {
            Action::CreateTask(t) => Some((
                EntityKind::Task,
                task_fields(t),
                t.linked_kind,
                &t.linked_id,
            )),
            Action::LogInteraction(i) => Some((
                EntityKind::Interaction,
                interaction_fields(i, at),
                i.linked_kind,
                &i.linked_id,
            )),
            _ => None,
        };
        if let Some((kind, fields, linked_kind, linked_id)) = new_record {
            return Some(self.create(kind, fields, linked_kind, linked_id, at));
        }
        let (kind, id, fields) = match a {
            Action::UpdateFields(u) => (u.kind, u.id.as_str(), u.fields.clone()),
            Action::AssignOwner(o) => (
                o.kind,
                o.id.as_str(),
                vec![crate::field("owner", value::text(o.owner.as_str()))],
            ),
            Action::ChangeTicket(c) => {
                let set = [("status", &c.status), ("priority", &c.priority)];
                let fields = set
                    .into_iter()
                    .filter_map(|(name, v)| Some(crate::field(name, value::choice(v.as_deref()?))))
                    .collect();
                (EntityKind::Ticket, c.id.as_str(), fields)
            }
            Action::MoveDeal(m) => (
                EntityKind::Deal,
                m.id.as_str(),
                vec![crate::field("stage", value::choice(m.stage.as_str()))],
            ),
            Action::AddTag(t) | Action::RemoveTag(t) => {
                let mut tags = self.record(t.kind, &t.id).list("tags");
                tags.retain(|x| *x != t.tag);
                if matches!(a, Action::AddTag(_)) {
                    tags.push(t.tag.clone());
                }
                let fields = vec![crate::field("tags", value::choices(tags))];
                (t.kind, t.id.as_str(), fields)
            }
            _ => return None,
        };
        let changes = self.update(kind, id, fields);
        (!changes.is_empty()).then(|| event(kind, id, Operation::Updated, changes))
    }

    /// The record `kind`/`id`, for [`apply`].
    fn record(&mut self, kind: EntityKind, id: &str) -> &mut Entity {
        self.records
            .iter_mut()
            .find(|e| e.kind == kind && e.id == id)
            .unwrap_or_else(|| panic!("apply: the test host has no {kind:?} record '{id}'"))
    }

    /// Sets fields of a record, returning what changed.
    fn update(&mut self, kind: EntityKind, id: &str, fields: Vec<Field>) -> Vec<FieldChange> {
        let record = self.record(kind, id);
        let mut changes = Vec::new();
        for f in fields {
            let (list, name) = match f.name.strip_prefix("custom.") {
                Some(name) => (&mut record.custom, name),
                None => (&mut record.fields, f.name.as_str()),
            };
            let before = list
                .iter()
                .find(|x| x.name == name)
                .map_or(FieldValue::Null, |x| x.value.clone());
            if before == f.value {
                continue;
            }
            list.retain(|x| x.name != name);
            if f.value != FieldValue::Null {
                list.push(crate::field(name, f.value.clone()));
            }
            changes.push(change(&f.name, before, f.value));
        }
        changes
    }

    /// Adds a task or interaction linked to a record, returning its `Created` event.
    fn create(
        &mut self,
        kind: EntityKind,
        mut fields: Vec<Field>,
        linked_kind: EntityKind,
        linked_id: &str,
        at: Timestamp,
    ) -> Event {
        let link = match linked_kind {
            EntityKind::Contact => "contact_id",
            EntityKind::Company => "company_id",
            EntityKind::Deal => "deal_id",
            EntityKind::Ticket => "ticket_id",
            other => panic!("apply: tasks and interactions cannot link to {other:?} records"),
        };
        fields.push(crate::field(link, value::reference(linked_id)));
        fields.push(crate::field("created_at", value::datetime(at)));
        let id = format!("{}-{}", kind_name(kind), self.records.len() + 1);
        let record = entity(kind, &id, fields);
        let e = created(&record);
        self.records.push(record);
        e
    }
}

/// The texts a value stands for, for the simple filter matching of the test host.
fn texts(v: &FieldValue) -> Vec<String> {
    match v {
        FieldValue::Null => Vec::new(),
        FieldValue::Text(s)
        | FieldValue::Number(s)
        | FieldValue::Money(s)
        | FieldValue::Date(s)
        | FieldValue::Choice(s)
        | FieldValue::Reference(s) => vec![s.clone()],
        FieldValue::Integer(i) => vec![i.to_string()],
        FieldValue::Datetime(t) => vec![t.to_string()],
        FieldValue::Boolean(b) => vec![b.to_string()],
        FieldValue::Choices(l) | FieldValue::References(l) => l.clone(),
    }
}

fn matches(e: &Entity, f: &Filter) -> bool {
    let name = f.field.strip_prefix("custom.").unwrap_or(&f.field);
    let value = e
        .fields
        .iter()
        .chain(&e.custom)
        .find(|x| x.name == name)
        .map(|x| &x.value);
    let actual = value.map(texts).unwrap_or_default();
    let any = |want: &str| {
        actual.iter().any(|a| a.eq_ignore_ascii_case(want))
            || value.is_some_and(|v| same_instant(v, want))
    };
    match f.op.as_str() {
        "ne" => !any(&f.value),
        "in" => f.value.split(',').any(any),
        "contains" => actual
            .iter()
            .any(|a| a.to_lowercase().contains(&f.value.to_lowercase())),
        op @ ("gt" | "gte" | "lt" | "lte") => {
            let Some(ord) = value.and_then(|v| compare(v, &f.value)) else {
                return false;
            };
            match op {
                "gt" => ord.is_gt(),
                "gte" => ord.is_ge(),
                "lt" => ord.is_lt(),
                _ => ord.is_le(),
            }
        }
        _ => any(&f.value),
    }
}

/// Whether a datetime value is the instant a filter value writes.
fn same_instant(v: &FieldValue, want: &str) -> bool {
    matches!(v, FieldValue::Datetime(t) if parse_instant(want) == Some(*t))
}

/// How a record's value compares with a filter value; `None` when they cannot be compared (an
/// empty value, or text that is no number or time where one is needed).
fn compare(v: &FieldValue, want: &str) -> Option<Ordering> {
    match v {
        FieldValue::Integer(i) => decimal::compare(&i.to_string(), want),
        FieldValue::Number(d) | FieldValue::Money(d) => decimal::compare(d, want),
        FieldValue::Datetime(t) => Some(t.cmp(&parse_instant(want)?)),
        FieldValue::Boolean(b) => Some(b.cmp(&want.trim().parse::<bool>().ok()?)),
        FieldValue::Text(s)
        | FieldValue::Choice(s)
        | FieldValue::Date(s)
        | FieldValue::Reference(s) => Some(s.to_lowercase().cmp(&want.trim().to_lowercase())),
        FieldValue::Null | FieldValue::Choices(_) | FieldValue::References(_) => None,
    }
}

/// The fields of the task a `create_task` action creates (without its link and time).
fn task_fields(t: &NewTask) -> Vec<Field> {
    let mut fields = vec![crate::field("title", value::text(t.title.as_str()))];
    fields.extend(t.due.map(|d| crate::field("due_at", value::datetime(d))));
    fields.extend(
        t.assignee
            .as_deref()
            .map(|who| crate::field("assignee", value::text(who))),
    );
    fields
}

/// The fields of the interaction a `log_interaction` action logs, at `at` (without its link).
fn interaction_fields(i: &NewInteraction, at: Timestamp) -> Vec<Field> {
    let subject = i
        .subject
        .as_deref()
        .map(|s| crate::field("subject", value::text(s)));
    [
        Some(crate::field(
            "kind",
            value::choice(i.interaction_kind.as_str()),
        )),
        subject,
        Some(crate::field("body", value::text(i.body.as_str()))),
        Some(crate::field("occurred_at", value::datetime(at))),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The set fields of an entity as an event names them: built-in ones by name, custom ones as
/// `custom.NAME`.
fn set_fields(entity: &Entity) -> impl Iterator<Item = (String, &FieldValue)> {
    let builtin = entity.fields.iter().map(|f| (f.name.clone(), &f.value));
    let custom = entity
        .custom
        .iter()
        .map(|f| (format!("custom.{}", f.name), &f.value));
    builtin
        .chain(custom)
        .filter(|(_, v)| **v != FieldValue::Null)
}

/// A kind as the manifest and the REST API write it.
fn kind_name(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Contact => "contact",
        EntityKind::Company => "company",
        EntityKind::Deal => "deal",
        EntityKind::Ticket => "ticket",
        EntityKind::Interaction => "interaction",
        EntityKind::Task => "task",
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML array of strings, on one line.
fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| toml_string(i)).collect();
    format!("[{}]", quoted.join(", "))
}

fn toml_kinds(kinds: &[EntityKind]) -> String {
    let names: Vec<String> = kinds.iter().map(|k| kind_name(*k).to_owned()).collect();
    toml_list(&names)
}

/// A setting's `[[settings]]` block as [`manifest_mismatches`] expects it.
fn setting_block(s: &SettingDef) -> Result<String, String> {
    let ty = match s.setting_type {
        SettingType::Text => "text",
        SettingType::Integer => "integer",
        SettingType::Number => "number",
        SettingType::Boolean => "boolean",
        SettingType::Choice => "choice",
        SettingType::TextList => "text-list",
    };
    let mut block = format!(
        "[[settings]]\nname = {}\nlabel = {}\ntype = {}\n",
        toml_string(&s.name),
        toml_string(&s.label),
        toml_string(ty)
    );
    if !s.options.is_empty() {
        block.push_str(&format!("options = {}\n", toml_list(&s.options)));
    }
    let default = match &s.default {
        FieldValue::Null => None,
        FieldValue::Text(t) | FieldValue::Choice(t) => Some(toml_string(t)),
        FieldValue::Number(n) => Some(n.clone()),
        FieldValue::Integer(i) => Some(i.to_string()),
        FieldValue::Boolean(b) => Some(b.to_string()),
        FieldValue::Choices(l) => Some(toml_list(l)),
        other => {
            return Err(format!(
                "setting {}: a {other:?} default has no manifest form",
                s.name
            ));
        }
    };
    if let Some(d) = default {
        block.push_str(&format!("default = {d}\n"));
    }
    if let Some(help) = &s.help {
        block.push_str(&format!("help = {}\n", toml_string(help)));
    }
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        FieldDef, FieldType, PluginInfo, action, field, field_def, filter, host, plugin_info,
        setting,
    };

    fn ids(filters: &[Filter]) -> Vec<String> {
        host::query_all(EntityKind::Deal, filters)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect()
    }

    #[test]
    fn comparisons_order_numbers_times_and_text() {
        let day = 86_400_000_000;
        TestHost::default()
            .with_records([
                entity(
                    EntityKind::Deal,
                    "a",
                    [
                        field("amount", FieldValue::Money("9.50".into())),
                        field("closed_at", FieldValue::Datetime(10 * day)),
                        field("stage", FieldValue::Text("lead".into())),
                    ],
                ),
                entity(
                    EntityKind::Deal,
                    "b",
                    [
                        field("amount", FieldValue::Money("10".into())),
                        field("closed_at", FieldValue::Datetime(11 * day)),
                        field("stage", FieldValue::Text("won".into())),
                    ],
                ),
                entity(EntityKind::Deal, "c", []),
            ])
            .install();
        assert_eq!(ids(&[filter("amount", "gt", "9.5")]), ["b"]);
        assert_eq!(ids(&[filter("amount", "gte", "9.500")]), ["a", "b"]);
        assert_eq!(ids(&[filter("amount", "lt", "-1")]), Vec::<String>::new());
        assert_eq!(ids(&[filter("closed_at", "gte", "1970-01-12")]), ["b"]);
        assert_eq!(ids(&[filter("closed_at", "lt", "1970-01-12")]), ["a"]);
        assert_eq!(
            ids(&[filter("closed_at", "eq", "1970-01-11T00:00:00Z")]),
            ["a"]
        );
        assert_eq!(ids(&[filter("stage", "lte", "Lead")]), ["a"]);
        assert_eq!(ids(&[filter("stage", "in", "won,lost")]), ["b"]);
        let calls = TestHost::queries();
        assert_eq!(calls.len(), 8);
        assert_eq!(calls[0].kind, EntityKind::Deal);
        assert_eq!(calls[0].filters, [filter("amount", "gt", "9.5")]);
        assert_eq!((calls[0].limit, calls[0].cursor.as_deref()), (1000, None));
    }

    #[test]
    fn events_are_built_from_changes_or_whole_records() {
        let e = event(
            EntityKind::Ticket,
            "t1",
            Operation::Updated,
            [change(
                "priority",
                value::choice("normal"),
                value::choice("high"),
            )],
        );
        assert_eq!((e.seq, e.actor.as_str(), e.at), (1, "user:test", 0));
        assert_eq!(
            (e.kind, e.id.as_str(), e.op),
            (EntityKind::Ticket, "t1", Operation::Updated)
        );
        assert_eq!(
            e.changes,
            [FieldChange {
                field: "priority".to_owned(),
                before: value::choice("normal"),
                after: value::choice("high"),
            }]
        );

        let mut deal = entity(
            EntityKind::Deal,
            "d1",
            [
                field("title", value::text("Acme")),
                field("owner", value::null()),
            ],
        );
        deal.custom.push(field("tier", value::choice("gold")));
        let c = created(&deal);
        assert_eq!((c.op, c.id.as_str()), (Operation::Created, "d1"));
        assert_eq!(
            c.changes,
            [
                change("title", value::null(), value::text("Acme")),
                change("custom.tier", value::null(), value::choice("gold")),
            ],
            "unset fields are not in the event"
        );
        let d = deleted(&deal);
        assert_eq!(d.op, Operation::Deleted);
        assert_eq!(
            d.changes[0],
            change("title", value::text("Acme"), value::null())
        );
    }

    #[test]
    fn actions_are_picked_out_by_kind() {
        let actions = vec![
            action::schedule_keyed("k", 5, "p"),
            action::create_task("Call", EntityKind::Deal, "d1", None, None),
            action::update_fields(
                EntityKind::Deal,
                "d1",
                vec![field("stage", value::choice("won"))],
            ),
            action::cancel_timer("old"),
            action::log_interaction("note", "hi", EntityKind::Deal, "d1"),
            action::schedule(9, "q"),
            action::create_task("Write", EntityKind::Deal, "d1", Some(3), Some("bo")),
        ];
        let at: Vec<i64> = timers(&actions).iter().map(|t| t.at).collect();
        assert_eq!(at, [5, 9]);
        let titles: Vec<&str> = tasks(&actions).iter().map(|t| t.title.as_str()).collect();
        assert_eq!(titles, ["Call", "Write"]);
        assert_eq!(
            updates(&actions)[0].fields,
            [field("stage", value::choice("won"))]
        );
        assert_eq!(interactions(&actions)[0].body, "hi");
        assert_eq!(cancelled_timers(&actions), ["old"]);
        assert!(tasks(&[]).is_empty());
    }

    #[test]
    fn applied_actions_change_the_records_and_come_back_as_events() {
        let mut deal = entity(
            EntityKind::Deal,
            "d1",
            [
                field("stage", value::choice("lead")),
                field("owner", value::text("ana")),
            ],
        );
        deal.custom.push(field("tier", value::choice("gold")));
        TestHost::default().with_records([deal]).install();
        let events = apply(
            &[
                action::update_fields(
                    EntityKind::Deal,
                    "d1",
                    vec![
                        field("stage", value::choice("lead")), // unchanged: not in the event
                        field("owner", value::null()),
                        field("custom.tier", value::choice("silver")),
                    ],
                ),
                action::move_deal("d1", "won"),
                action::add_tag(EntityKind::Deal, "d1", "vip"),
                action::assign_owner(EntityKind::Deal, "d1", "ana"),
                action::move_deal("d1", "won"), // nothing changes: no event
                action::create_task("Call", EntityKind::Deal, "d1", Some(7), Some("bo")),
                action::schedule(3, "d1"),
            ],
            "plugin:me",
            42,
        );
        let summary: Vec<(EntityKind, Operation, Vec<&str>)> = events
            .iter()
            .map(|e| {
                (
                    e.kind,
                    e.op,
                    e.changes.iter().map(|c| c.field.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    EntityKind::Deal,
                    Operation::Updated,
                    vec!["owner", "custom.tier"]
                ),
                (EntityKind::Deal, Operation::Updated, vec!["stage"]),
                (EntityKind::Deal, Operation::Updated, vec!["tags"]),
                (EntityKind::Deal, Operation::Updated, vec!["owner"]),
                (
                    EntityKind::Task,
                    Operation::Created,
                    vec!["title", "due_at", "assignee", "deal_id", "created_at"]
                ),
            ]
        );
        assert!(events.iter().all(|e| e.actor == "plugin:me" && e.at == 42));
        assert_eq!(events[0].changes[0].before, value::text("ana"));
        let deal = host::get(EntityKind::Deal, "d1").unwrap().unwrap();
        assert_eq!(deal.text("stage"), Some("won"));
        assert_eq!(deal.text("tier"), Some("silver"));
        assert_eq!(deal.list("tags"), ["vip"]);
        let tasks = host::query_all(EntityKind::Task, &[filter("deal_id", "eq", "d1")]).unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].datetime("created_at"), Some(42));
        assert_eq!(tasks[0].id, events[4].id);
    }

    struct Manifested;

    impl Plugin for Manifested {
        fn describe() -> PluginInfo {
            let mut info = plugin_info("Probe \"one\"", "1.2.3", "Does things.\nTwice.");
            info.subscriptions = vec![EntityKind::Ticket, EntityKind::Deal];
            info.capabilities.read = vec![EntityKind::Ticket];
            info.capabilities.actions = vec!["schedule".to_owned()];
            info.settings = vec![
                SettingDef {
                    help: Some("How many.".to_owned()),
                    ..setting("count", "Count", SettingType::Integer, value::integer(3))
                },
                SettingDef {
                    options: vec!["a".to_owned(), "b".to_owned()],
                    ..setting("pick", "Pick", SettingType::Choice, value::choice("a"))
                },
                setting(
                    "words",
                    "Words",
                    SettingType::TextList,
                    value::choices(["x"]),
                ),
            ];
            info.fields = vec![FieldDef {
                computed: true,
                ..field_def(EntityKind::Deal, "age", "Age", FieldType::Integer)
            }];
            info
        }
    }

    const MANIFEST: &str = r#"# A probe.
id = "probe"
name = "Probe \"one\""
version = "1.2.3"
wit = "0.1.0"
description = "Does things.\nTwice."
# subscriptions = ["ticket", "deal"]

[capabilities]
read = ["ticket"]
actions = ["schedule"]

[[settings]]
name = "count"
label = "Count"
type = "integer"
default = 3
help = "How many."

[[settings]]
name = "pick"
label = "Pick"
type = "choice"
options = ["a", "b"]
default = "a"

[[settings]]
name = "words"
label = "Words"
type = "text-list"
default = ["x"]
"#;

    #[test]
    fn a_manifest_that_says_what_describe_says_has_no_mismatches() {
        assert_eq!(
            manifest_mismatches::<Manifested>("probe", MANIFEST),
            Vec::<String>::new()
        );
    }

    #[test]
    fn manifest_mismatches_name_what_is_missing() {
        let check = |manifest: &str, want: &[&str]| {
            assert_eq!(
                manifest_mismatches::<Manifested>("probe", manifest),
                want,
                "{manifest}"
            );
        };
        check(
            &MANIFEST.replace("1.2.3", "1.2.4"),
            &["the manifest lacks:\nversion = \"1.2.3\"\n"],
        );
        check(
            &MANIFEST.replace("actions = [\"schedule\"]", "actions = []"),
            &[
                "the manifest lacks:\n[capabilities]\nread = [\"ticket\"]\nactions = [\"schedule\"]\n",
            ],
        );
        check(
            &MANIFEST.replace("# subscriptions = [\"ticket\", \"deal\"]\n", ""),
            &["the manifest lacks:\n# subscriptions = [\"ticket\", \"deal\"]\n"],
        );
        let without_words = &MANIFEST[..MANIFEST.rfind("[[settings]]").unwrap()];
        check(
            without_words,
            &[
                "the manifest has 2 [[settings]] blocks, describe() 3 settings",
                "the manifest lacks:\n[[settings]]\nname = \"words\"\nlabel = \"Words\"\ntype = \"text-list\"\ndefault = [\"x\"]\n",
            ],
        );
        assert_eq!(
            manifest_mismatches::<Manifested>("other", MANIFEST),
            ["the manifest lacks:\nid = \"other\"\n"]
        );

        struct Bare;
        impl Plugin for Bare {
            fn describe() -> PluginInfo {
                plugin_info("Bare", "0.1.0", "")
            }
        }
        let bare = "id = \"bare\"\nname = \"Bare\"\nversion = \"0.1.0\"\nwit = \"0.1.0\"\n\
                    description = \"\"\n[capabilities]\nread = []\nactions = []\n";
        assert_eq!(
            manifest_mismatches::<Bare>("bare", bare),
            Vec::<String>::new()
        );
        assert_eq!(
            manifest_mismatches::<Bare>("bare", &format!("{bare}# subscriptions = [\"deal\"]\n")),
            ["the manifest names subscriptions, but describe() has none"]
        );
    }
}
