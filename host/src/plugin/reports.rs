//! Plugin report types: what running plugins declare in `describe().reports`, listed beside
//! the built-in reports as `<plugin>.<report>`, and run through `run-report` with parameters
//! checked against their declarations first. The plugin reads data only through the host's
//! capability-checked `get` and `query`, page by page.

use std::collections::BTreeMap;

use kith_core::report::{ChartKind, Column, ParamDef, ParamKind, ReportDef, ReportTable};
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

    /// Runs the plugin report `id` (`<plugin>.<report>`) with query-string parameters. An
    /// unknown report or parameter, or a value that does not fit, is refused before the
    /// plugin runs.
    pub fn run_report(
        &self,
        id: &str,
        raw: &BTreeMap<String, String>,
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
        for name in raw.keys() {
            if !def.parameters.iter().any(|p| &p.name == name) {
                let known: Vec<&str> = def.parameters.iter().map(|p| p.name.as_str()).collect();
                return Err(RegistryError::Store(CoreError::invalid(
                    name,
                    format!(
                        "report {id} takes no parameter '{name}' (it takes: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                )));
            }
        }
        let mut params = Vec::with_capacity(def.parameters.len());
        for p in &def.parameters {
            let value = match raw.get(&p.name) {
                Some(text) if !text.trim().is_empty() => parse_param(p, text.trim())
                    .map_err(|m| RegistryError::Store(CoreError::invalid(&p.name, m)))?,
                _ => p.default.clone(),
            };
            params.push(w::Field {
                name: p.name.clone(),
                value,
            });
        }
        let now = self.store().clock().now().timestamp_micros();
        let result = plugin.run_report(report_id, &params, now);
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

/// A query-string value as the parameter's WIT value.
fn parse_param(p: &w::SettingDef, text: &str) -> Result<w::FieldValue, String> {
    Ok(match p.setting_type {
        w::SettingType::Text => w::FieldValue::Text(text.to_owned()),
        w::SettingType::Integer => w::FieldValue::Integer(
            text.parse()
                .map_err(|_| format!("'{text}' is not a whole number"))?,
        ),
        w::SettingType::Number => {
            let d: rust_decimal::Decimal = text
                .parse()
                .map_err(|_| format!("'{text}' is not a number"))?;
            w::FieldValue::Number(d.to_string())
        }
        w::SettingType::Boolean => match text {
            "true" => w::FieldValue::Boolean(true),
            "false" => w::FieldValue::Boolean(false),
            _ => return Err(format!("'{text}' is not true or false")),
        },
        w::SettingType::Choice => {
            if !p.options.is_empty() && !p.options.iter().any(|o| o == text) {
                return Err(format!("'{text}' is not one of {}", p.options.join(", ")));
            }
            w::FieldValue::Choice(text.to_owned())
        }
        w::SettingType::TextList => w::FieldValue::Choices(
            text.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        ),
    })
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
