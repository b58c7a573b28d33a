//! Plugin report types: what running plugins declare in `describe().reports`, listed beside
//! the built-in reports as `<plugin>.<report>`, and run through `run-report` with parameters
//! checked against their declarations first. The plugin reads data only through the host's
//! capability-checked `get` and `query`, page by page.

use std::collections::BTreeMap;

use kith_core::report::{
    ChartKind, Column, ParamDef, ParamKind, ReportDef, ReportTable, parse_params,
};
use kith_core::{Error as CoreError, Value};

use super::convert::value_from_wit;
use super::registry::{Registry, RegistryError};
use super::wit::kith::plugin::types as w;

impl Registry {
    /// The report types of every running plugin, ids `<plugin>.<report>`.
    pub fn report_defs(&self) -> Vec<ReportDef> {
        let mut out = Vec::new();
        for active in self.all() {
            let Some((_, info)) = active.running() else {
                continue;
            };
            for r in &info.reports {
                out.push(ReportDef {
                    id: format!("{}.{}", active.record.id, r.id),
                    name: r.name.clone(),
                    description: r.description.clone(),
                    source: active.record.id.clone(),
                    parameters: r.parameters.iter().map(param_def).collect(),
                });
            }
        }
        out
    }

    /// Runs the plugin report `id` (`<plugin>.<report>`) with query-string parameters, the
    /// plugin reading records as `access` sees them (so a restricted agent's report covers
    /// only their records). An unknown report or parameter, or a value that does not fit, is
    /// refused before the plugin runs.
    pub fn run_report(
        &self,
        id: &str,
        raw: &BTreeMap<String, String>,
        access: kith_core::Access,
    ) -> Result<ReportTable, RegistryError> {
        let unknown = || {
            RegistryError::Store(CoreError::NoSuch {
                what: "report",
                name: id.to_owned(),
            })
        };
        let (plugin_id, report_id) = id.split_once('.').ok_or_else(unknown)?;
        let active = self.get_active(plugin_id).map_err(|_| unknown())?;
        let Some((plugin, info)) = active.running() else {
            return Err(RegistryError::State {
                plugin: plugin_id.to_owned(),
                message: "it is not running (disabled, suspended or failed to load), so its reports cannot run".to_owned(),
            });
        };
        let def = info
            .reports
            .iter()
            .find(|r| r.id == report_id)
            .ok_or_else(unknown)?;
        // The same checks, and the same 400s naming the parameter, as built-in reports.
        let defs: Vec<ParamDef> = def.parameters.iter().map(param_def).collect();
        let mut given = parse_params(&defs, raw)?;
        let params: Vec<w::Field> = def
            .parameters
            .iter()
            .map(|p| w::Field {
                name: p.name.clone(),
                value: match given.remove(&p.name) {
                    Some(v) if !v.is_empty() => param_to_wit(p, v),
                    _ => p.default.clone(),
                },
            })
            .collect();
        let now = self.store().clock().now().timestamp_micros();
        let data: std::sync::Arc<dyn super::DataAccess> =
            std::sync::Arc::new(super::StoreAccess(self.store().scoped(access)));
        let result = plugin.run_report(report_id, &params, now, Some(data));
        self.record(&active, "run-report", &result, true);
        let (table, _) = result?;
        Ok(table_from_wit(table))
    }
}

fn param_def(s: &w::SettingDef) -> ParamDef {
    ParamDef {
        name: s.name.clone(),
        label: s.label.clone(),
        kind: match s.setting_type {
            w::SettingType::Integer => ParamKind::Integer,
            w::SettingType::Number => ParamKind::Number,
            w::SettingType::Boolean => ParamKind::Boolean,
            w::SettingType::Choice => ParamKind::Choice(s.options.clone()),
            w::SettingType::Text | w::SettingType::TextList => ParamKind::Text,
        },
        help: s.help.clone(),
    }
}

/// A checked parameter value as the plugin's WIT value of the declared type.
fn param_to_wit(p: &w::SettingDef, v: Value) -> w::FieldValue {
    match (p.setting_type, v) {
        (w::SettingType::Integer, Value::Integer(i)) => w::FieldValue::Integer(i),
        (w::SettingType::Number, Value::Number(d)) => w::FieldValue::Number(d.to_string()),
        (w::SettingType::Number, Value::Integer(i)) => w::FieldValue::Number(i.to_string()),
        (w::SettingType::Boolean, Value::Bool(b)) => w::FieldValue::Boolean(b),
        (w::SettingType::Choice, v) => w::FieldValue::Choice(v.to_string()),
        (w::SettingType::TextList, v) => w::FieldValue::Choices(
            v.to_string()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        ),
        (_, v) => w::FieldValue::Text(v.to_string()),
    }
}

/// A plugin's table as the core's (the same shape the built-in reports return).
fn table_from_wit(t: w::ReportTable) -> ReportTable {
    ReportTable {
        columns: t
            .columns
            .into_iter()
            .map(|c| Column {
                name: c.name,
                label: c.label,
            })
            .collect(),
        rows: t
            .rows
            .iter()
            .map(|r| r.iter().map(value_from_wit).collect::<Vec<Value>>())
            .collect(),
        chart: match t.chart {
            w::ChartKind::None => ChartKind::None,
            w::ChartKind::Bar => ChartKind::Bar,
            w::ChartKind::Line => ChartKind::Line,
            w::ChartKind::Pie => ChartKind::Pie,
            w::ChartKind::Funnel => ChartKind::Funnel,
        },
        label_column: t.label_column,
        value_columns: t.value_columns,
    }
}
