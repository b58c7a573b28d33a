//! The report pages: `/reports` lists every report (built-in and from plugins),
//! `/reports/{id}` shows a form for its parameters, the table, a chart when the report says
//! how to draw one, and a link to the same table as CSV (the API's download, which a signed-in
//! browser may fetch).

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::get;
use kith_core::Value;
use kith_core::report::{ChartKind, ParamKind, ReportDef, ReportTable};
use maud::{Markup, html};

use super::charts::{Shape, chart};
use super::html_page;
use super::records::error_page;
use crate::api::auth::{Caller, Need, Routes};
use crate::api::{ApiError, AppState, report_definitions, run_report};

pub(super) fn routes() -> Routes {
    Routes::new()
        .route("/reports", &[(Method::GET, Need::Viewer)], get(list))
        .route("/reports/{id}", &[(Method::GET, Need::Viewer)], get(run))
}

async fn list(State(state): State<AppState>, caller: Caller) -> Response {
    let defs = report_definitions(&state);
    let body = html! {
        h1 { "Reports" }
        ul.report-list {
            @for d in &defs {
                li.card {
                    h2 { a href=(format!("/reports/{}", d.id)) { (d.name) } }
                    p { (d.description) }
                    p.muted { @if d.source == kith_core::report::BUILT_IN { "Built in" } @else { "From the plugin " (d.source) } }
                }
            }
        }
    };
    html_page(StatusCode::OK, "Reports", Some(&caller), body)
}

async fn run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(def) = report_definitions(&state).into_iter().find(|d| d.id == id) else {
        return error_page(&caller, &ApiError::not_found(format!("no report '{id}'")));
    };
    let raw = raw.unwrap_or_default();
    // Empty boxes mean "not given", as in the API.
    let params: BTreeMap<String, String> = url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect();
    let result = run_report(&state, &caller, &def.id, params.clone()).await;
    let (status, table, error) = match result {
        Ok(t) => (StatusCode::OK, Some(t), None),
        Err(e) => (e.status(), None, Some(e)),
    };
    let body = view(&def, &params, table.as_ref(), error.as_ref());
    html_page(status, &def.name, Some(&caller), body)
}

fn view(
    def: &ReportDef,
    params: &BTreeMap<String, String>,
    table: Option<&ReportTable>,
    error: Option<&ApiError>,
) -> Markup {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    let csv = if query.is_empty() {
        format!("/api/v1/reports/{}?format=csv", def.id)
    } else {
        format!("/api/v1/reports/{}?{query}&format=csv", def.id)
    };
    let bad_field = error.and_then(ApiError::field);
    html! {
        p.muted { a href="/reports" { "All reports" } }
        h1 { (def.name) }
        p { (def.description) }
        @if !def.parameters.is_empty() {
            form.card.params method="get" action=(format!("/reports/{}", def.id)) {
                div.filter-row {
                    @for p in &def.parameters {
                        @let id = format!("p-{}", p.name);
                        @let value = params.get(&p.name).map_or("", String::as_str);
                        div.field.invalid[bad_field == Some(p.name.as_str())] {
                            label for=(id) { (p.label) }
                            @match &p.kind {
                                ParamKind::Choice(options) => {
                                    select id=(id) name=(p.name) {
                                        option value="" { "—" }
                                        @for o in options { option value=(o) selected[o == value] { (o) } }
                                    }
                                }
                                ParamKind::Date => { input id=(id) type="date" name=(p.name) value=(value); }
                                ParamKind::Boolean => {
                                    select id=(id) name=(p.name) {
                                        option value="" { "—" }
                                        option value="true" selected[value == "true"] { "Yes" }
                                        option value="false" selected[value == "false"] { "No" }
                                    }
                                }
                                ParamKind::Integer | ParamKind::Number => {
                                    input id=(id) type="text" inputmode="decimal" name=(p.name) value=(value);
                                }
                                ParamKind::Text => { input id=(id) type="text" name=(p.name) value=(value); }
                            }
                            @if let Some(h) = &p.help { small.help { (h) } }
                            @if let (Some(e), true) = (error, bad_field == Some(p.name.as_str())) {
                                p.field-error { (e.message()) }
                            }
                        }
                    }
                }
                button type="submit" { "Run report" }
            }
        }
        @if let Some(e) = error {
            @if bad_field.is_none_or(|f| !def.parameters.iter().any(|p| p.name == f)) {
                p.error role="alert" { (e.message()) }
            }
        }
        @if let Some(t) = table {
            @if let Some(c) = chart_of(def, t) { section.card { (c) } }
            section.card {
                div.page-head {
                    h2 { "Table" }
                    a.button.secondary href=(csv) download { "Download CSV" }
                }
                @if t.rows.is_empty() {
                    p.muted { "No rows." }
                } @else {
                    div.table-wrap {
                        table.report {
                            thead { tr { @for c in &t.columns { th scope="col" { (c.label) } } } }
                            tbody {
                                @for row in &t.rows {
                                    tr { @for v in row { td { @if *v != Value::Null { (v) } } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The report's chart: its label column along the axis, its value columns as series (rows
/// sharing a label, such as one per currency, are added up).
fn chart_of(def: &ReportDef, t: &ReportTable) -> Option<Markup> {
    let shape = match t.chart {
        ChartKind::None => return None,
        ChartKind::Line => Shape::Line,
        ChartKind::Bar | ChartKind::Pie | ChartKind::Funnel => Shape::Bars,
    };
    let label_i = t
        .columns
        .iter()
        .position(|c| Some(&c.name) == t.label_column.as_ref())?;
    let mut labels: Vec<String> = Vec::new();
    for row in &t.rows {
        let l = row
            .get(label_i)
            .map(ToString::to_string)
            .unwrap_or_default();
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    let series: Vec<(String, Vec<f64>)> = t
        .value_columns
        .iter()
        .filter_map(|name| {
            let i = t.columns.iter().position(|c| &c.name == name)?;
            let mut values = vec![0.0; labels.len()];
            for row in &t.rows {
                let l = row
                    .get(label_i)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                if let (Some(slot), Some(v)) = (labels.iter().position(|x| *x == l), row.get(i)) {
                    values[slot] += number(v);
                }
            }
            Some((t.columns[i].label.clone(), values))
        })
        .collect();
    (!labels.is_empty() && !series.is_empty()).then(|| chart(&def.name, shape, &labels, &series))
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Integer(i) => *i as f64,
        Value::Number(d) => d.to_string().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}
