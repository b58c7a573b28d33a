//! Builders for what plugins hand back to Kith: field values, custom field definitions,
//! actions and report tables, so authors write intent rather than WIT record literals.

use crate::{
    Action, AssignOwner, ChartKind, Column, EntityKind, Field, FieldDef, FieldType, FieldValue,
    MoveDeal, NewInteraction, NewTask, PluginInfo, ReportTable, TagChange, TicketChange, Timer,
    Timestamp, UpdateFields,
};

/// Field values, one function per type.
pub mod value {
    use crate::{FieldValue, Timestamp};

    /// Text.
    pub fn text(s: impl Into<String>) -> FieldValue {
        FieldValue::Text(s.into())
    }

    /// A whole number.
    pub fn integer(i: i64) -> FieldValue {
        FieldValue::Integer(i)
    }

    /// An exact decimal, written as text (`"12.50"`).
    pub fn number(d: impl Into<String>) -> FieldValue {
        FieldValue::Number(d.into())
    }

    /// An amount of money, written as an exact decimal (`"1200.00"`).
    pub fn money(d: impl Into<String>) -> FieldValue {
        FieldValue::Money(d.into())
    }

    /// A calendar date, `YYYY-MM-DD`.
    pub fn date(d: impl Into<String>) -> FieldValue {
        FieldValue::Date(d.into())
    }

    /// A point in time, in microseconds since the Unix epoch.
    pub fn datetime(t: Timestamp) -> FieldValue {
        FieldValue::Datetime(t)
    }

    /// True or false.
    pub fn boolean(b: bool) -> FieldValue {
        FieldValue::Boolean(b)
    }

    /// One option of a choice field.
    pub fn choice(s: impl Into<String>) -> FieldValue {
        FieldValue::Choice(s.into())
    }

    /// Options of a multi-choice field (or a text list setting).
    pub fn choices<S: Into<String>>(items: impl IntoIterator<Item = S>) -> FieldValue {
        FieldValue::Choices(items.into_iter().map(Into::into).collect())
    }

    /// The id of another record.
    pub fn reference(id: impl Into<String>) -> FieldValue {
        FieldValue::Reference(id.into())
    }

    /// No value: clears a field.
    pub fn null() -> FieldValue {
        FieldValue::Null
    }
}

/// A custom field definition with the common defaults: optional, not computed, no options,
/// no help. Change the public fields for the rest (`FieldDef { computed: true, ..def }`).
pub fn field_def(kind: EntityKind, name: &str, label: &str, field_type: FieldType) -> FieldDef {
    FieldDef {
        kind,
        name: name.to_owned(),
        label: label.to_owned(),
        field_type,
        required: false,
        options: Vec::new(),
        help: None,
        reference_kind: None,
        computed: false,
    }
}

/// A `PluginInfo` with a name, version and description and nothing else declared; set the
/// fields it provides (`fields`, `scorers`, `settings`, `validates`, ...) on the result.
pub fn plugin_info(name: &str, version: &str, description: &str) -> PluginInfo {
    PluginInfo {
        name: name.to_owned(),
        version: version.to_owned(),
        description: description.to_owned(),
        fields: Vec::new(),
        scorers: Vec::new(),
        reports: Vec::new(),
        settings: Vec::new(),
        subscriptions: Vec::new(),
        validates: Vec::new(),
        capabilities: crate::Capabilities {
            read: Vec::new(),
            actions: Vec::new(),
        },
    }
}

/// Actions an `on_event` hook returns; each needs its capability (`action:<name>`) granted.
pub mod action {
    use super::{
        Action, AssignOwner, EntityKind, Field, MoveDeal, NewInteraction, NewTask, TagChange,
        TicketChange, Timer, Timestamp, UpdateFields,
    };

    /// Set fields of a record (`update-fields`).
    pub fn update_fields(kind: EntityKind, id: &str, fields: Vec<Field>) -> Action {
        Action::UpdateFields(UpdateFields {
            kind,
            id: id.to_owned(),
            fields,
        })
    }

    /// Create a task linked to a record (`create-task`); `due` and `assignee` are optional.
    pub fn create_task(
        title: &str,
        linked_kind: EntityKind,
        linked_id: &str,
        due: Option<Timestamp>,
        assignee: Option<&str>,
    ) -> Action {
        Action::CreateTask(NewTask {
            title: title.to_owned(),
            due,
            assignee: assignee.map(str::to_owned),
            linked_kind,
            linked_id: linked_id.to_owned(),
        })
    }

    /// Log an interaction (a note, call, email, ...) on a record (`log-interaction`).
    pub fn log_interaction(
        interaction_kind: &str,
        body: &str,
        linked_kind: EntityKind,
        linked_id: &str,
    ) -> Action {
        Action::LogInteraction(NewInteraction {
            interaction_kind: interaction_kind.to_owned(),
            subject: None,
            body: body.to_owned(),
            linked_kind,
            linked_id: linked_id.to_owned(),
        })
    }

    /// Give a record an owner (`assign-owner`).
    pub fn assign_owner(kind: EntityKind, id: &str, owner: &str) -> Action {
        Action::AssignOwner(AssignOwner {
            kind,
            id: id.to_owned(),
            owner: owner.to_owned(),
        })
    }

    /// Add a tag (`add-tag`).
    pub fn add_tag(kind: EntityKind, id: &str, tag: &str) -> Action {
        Action::AddTag(TagChange {
            kind,
            id: id.to_owned(),
            tag: tag.to_owned(),
        })
    }

    /// Remove a tag (`remove-tag`).
    pub fn remove_tag(kind: EntityKind, id: &str, tag: &str) -> Action {
        Action::RemoveTag(TagChange {
            kind,
            id: id.to_owned(),
            tag: tag.to_owned(),
        })
    }

    /// Change a ticket's status and/or priority (`change-ticket`).
    pub fn change_ticket(id: &str, status: Option<&str>, priority: Option<&str>) -> Action {
        Action::ChangeTicket(TicketChange {
            id: id.to_owned(),
            status: status.map(str::to_owned),
            priority: priority.map(str::to_owned),
        })
    }

    /// Move a deal to a stage of its pipeline (`move-deal`).
    pub fn move_deal(id: &str, stage: &str) -> Action {
        Action::MoveDeal(MoveDeal {
            id: id.to_owned(),
            stage: stage.to_owned(),
        })
    }

    /// Ask for `on_timer` to be called at `at` with `payload` (`schedule`). Every call adds a
    /// timer; see [`schedule_keyed`] to keep one per key.
    pub fn schedule(at: Timestamp, payload: &str) -> Action {
        Action::Schedule(Timer {
            at,
            payload: payload.to_owned(),
            key: None,
        })
    }

    /// Like [`schedule`], but replaces the plugin's pending timer with the same `key`, so
    /// rescheduling moves a check instead of adding a second one (`schedule`).
    pub fn schedule_keyed(key: &str, at: Timestamp, payload: &str) -> Action {
        Action::Schedule(Timer {
            at,
            payload: payload.to_owned(),
            key: Some(key.to_owned()),
        })
    }

    /// Cancel the pending timer scheduled with `key`, if there is one (`schedule`).
    pub fn cancel_timer(key: &str) -> Action {
        Action::CancelTimer(key.to_owned())
    }
}

/// Builds a report table: columns, rows of values in column order, and a chart hint.
#[derive(Debug, Clone)]
pub struct Report {
    table: ReportTable,
}

impl Default for Report {
    fn default() -> Self {
        Report::new()
    }
}

impl Report {
    /// An empty table with no chart.
    pub fn new() -> Self {
        Report {
            table: ReportTable {
                columns: Vec::new(),
                rows: Vec::new(),
                chart: ChartKind::None,
                label_column: None,
                value_columns: Vec::new(),
            },
        }
    }

    /// Adds a column.
    pub fn column(mut self, name: &str, label: &str) -> Self {
        self.table.columns.push(Column {
            name: name.to_owned(),
            label: label.to_owned(),
        });
        self
    }

    /// Adds a row; it must have one value per column.
    pub fn row(mut self, values: Vec<FieldValue>) -> Self {
        self.table.rows.push(values);
        self
    }

    /// Suggests a chart: `label` names the column of labels, `values` those plotted.
    pub fn chart(mut self, kind: ChartKind, label: &str, values: &[&str]) -> Self {
        self.table.chart = kind;
        self.table.label_column = Some(label.to_owned());
        self.table.value_columns = values.iter().map(|v| (*v).to_owned()).collect();
        self
    }

    /// The table, or what is inconsistent in it (a row of the wrong width, a chart naming a
    /// column that does not exist).
    pub fn build(self) -> Result<ReportTable, String> {
        let t = self.table;
        let width = t.columns.len();
        if let Some(i) = t.rows.iter().position(|r| r.len() != width) {
            return Err(format!(
                "row {i} has {} values for {width} columns",
                t.rows[i].len()
            ));
        }
        let has = |c: &str| t.columns.iter().any(|col| col.name == c);
        for c in t.label_column.iter().chain(&t.value_columns) {
            if !has(c) {
                return Err(format!(
                    "the chart names column '{c}', which the table lacks"
                ));
            }
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_check_their_shape() {
        let ok = Report::new()
            .column("stage", "Stage")
            .column("deals", "Deals")
            .row(vec![value::text("lead"), value::integer(3)])
            .chart(ChartKind::Bar, "stage", &["deals"])
            .build()
            .unwrap();
        assert_eq!(ok.rows.len(), 1);
        assert_eq!(ok.label_column.as_deref(), Some("stage"));
        let short = Report::new()
            .column("a", "A")
            .column("b", "B")
            .row(vec![value::null()])
            .build();
        assert_eq!(short.unwrap_err(), "row 0 has 1 values for 2 columns");
        let chart = Report::new()
            .column("a", "A")
            .chart(ChartKind::Pie, "a", &["zzz"])
            .build();
        assert!(chart.unwrap_err().contains("zzz"));
    }

    #[test]
    fn actions_and_definitions_fill_in_defaults() {
        match action::create_task("Call", EntityKind::Contact, "c1", None, Some("ana")) {
            Action::CreateTask(t) => {
                assert_eq!((t.title.as_str(), t.linked_id.as_str()), ("Call", "c1"));
                assert_eq!(t.assignee.as_deref(), Some("ana"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            action::move_deal("d1", "won"),
            Action::MoveDeal(MoveDeal { ref stage, .. }) if stage == "won"
        ));
        let def = field_def(EntityKind::Deal, "tier", "Tier", FieldType::Choice);
        assert!(!def.required && !def.computed && def.options.is_empty());
        let info = plugin_info("X", "1.0.0", "Does x");
        assert!(info.fields.is_empty() && info.capabilities.read.is_empty());
        assert_eq!(
            value::choices(["a", "b"]),
            FieldValue::Choices(vec!["a".into(), "b".into()])
        );
    }
}
