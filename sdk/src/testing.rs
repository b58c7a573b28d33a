//! A native stand-in for the Kith host, so plugin logic runs under plain `cargo test`.
//!
//! Install one with [`TestHost::install`]; the functions in [`crate::host`] then read its
//! settings, records and storage, and append to its log. Each test thread has its own.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::{Entity, EntityKind, Field, FieldValue, Filter, Level, Page, Plugin};

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
        &self,
        kind: EntityKind,
        filters: &[Filter],
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page, String> {
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
    let actual = e
        .fields
        .iter()
        .chain(&e.custom)
        .find(|x| x.name == name)
        .map(|x| texts(&x.value))
        .unwrap_or_default();
    let any = |want: &str| actual.iter().any(|a| a.eq_ignore_ascii_case(want));
    match f.op.as_str() {
        "ne" => !any(&f.value),
        "in" => f.value.split(',').any(any),
        "contains" => actual
            .iter()
            .any(|a| a.to_lowercase().contains(&f.value.to_lowercase())),
        _ => any(&f.value),
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
