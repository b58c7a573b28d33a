//! Reports: `GET /api/v1/reports` lists every report a client can run, and
//! `GET /api/v1/reports/{id}` runs one with query-string parameters, answering its table as
//! JSON or, with `?format=csv`, as a CSV download of the same table.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::Method;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kith_core::report::{ReportDef, ReportTable, to_csv};
use serde_json::json;

use super::auth::{Caller, Need, Routes};
use super::{ApiError, AppState, read};
use crate::plugin::RegistryError;
use axum::http::StatusCode;
use kith_core::Error as CoreError;

pub(super) fn routes() -> Routes {
    Routes::new()
        .route("/api/v1/reports", &[(Method::GET, Need::Viewer)], get(list))
        .route(
            "/api/v1/reports/{id}",
            &[(Method::GET, Need::Viewer)],
            get(run),
        )
}

/// Every report a client can run, built-in ones first.
pub(crate) fn definitions(state: &AppState) -> Vec<ReportDef> {
    let mut defs = state.reports.definitions();
    defs.extend(state.plugins.report_defs());
    defs
}

async fn list(State(state): State<AppState>) -> impl IntoResponse {
    Json(json!({ "items": definitions(&state) }))
}

/// How the table is sent.
enum Format {
    Json,
    Csv,
}

async fn run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut params = query_params(raw.as_deref())?;
    // `format` belongs to the transport, not to the report, so it is taken out before the
    // report checks its parameters.
    let format = match params.remove("format").as_deref().map(str::trim) {
        None | Some("") => Format::Json,
        Some(f) if f.eq_ignore_ascii_case("json") => Format::Json,
        Some(f) if f.eq_ignore_ascii_case("csv") => Format::Csv,
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_query",
                format!("format: '{other}' is not a report format (use json or csv)"),
            )
            .with_field("format"));
        }
    };
    let table = run_report(&state, &caller, &id, params).await?;
    Ok(match format {
        Format::Json => json_response(&id, table)?,
        Format::Csv => (
            [
                (CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}.csv\"", file_name(&id)),
                ),
            ],
            to_csv(&table),
        )
            .into_response(),
    })
}

/// Runs report `id` with `params` for `caller`: a plugin's (`<plugin>.<report>`) in the
/// plugin on the blocking pool, a built-in one from the report engine's projections.
pub(crate) async fn run_report(
    state: &AppState,
    caller: &Caller,
    id: &str,
    params: BTreeMap<String, String>,
) -> Result<ReportTable, ApiError> {
    let id = id.to_owned();
    let table = if id.contains('.') {
        // A plugin's report: `<plugin>.<report>`, run in the plugin on the blocking pool.
        let plugins = state.plugins.clone();
        let report = id.clone();
        let access = caller.access.clone();
        tokio::task::spawn_blocking(move || plugins.run_report(&report, &params, access))
            .await?
            .map_err(|e| plugin_report_error(&id, e))?
    } else {
        if !state.reports.definitions().iter().any(|d| d.id == id) {
            return Err(unknown_report(&id));
        }
        let reports = state.reports.clone();
        let report = id.clone();
        let access = caller.access.clone();
        read(&state.store, move |_| {
            reports.run_as(&report, &params, Some(&access))
        })
        .await?
    };
    Ok(table)
}

/// A plugin report's failure: unknown reports are 404 and bad parameters 400 as for
/// built-in ones; the plugin failing while it runs is 502, the plugin being the upstream.
fn plugin_report_error(id: &str, e: RegistryError) -> ApiError {
    match e {
        RegistryError::Store(CoreError::NoSuch { .. }) => unknown_report(id),
        RegistryError::Plugin(p) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "report_failed",
            format!("report {id} failed in its plugin: {p}"),
        ),
        other => ApiError::from(other),
    }
}

fn unknown_report(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "there is no report '{id}'; GET /api/v1/reports lists the reports"
    ))
}

/// `{"id", "columns", "rows", "chart", "label_column", "value_columns"}`.
fn json_response(id: &str, table: ReportTable) -> Result<Response, ApiError> {
    let mut body = serde_json::to_value(table).map_err(|e| ApiError::internal(&e))?;
    if let Some(map) = body.as_object_mut() {
        map.insert("id".to_owned(), json!(id));
    }
    Ok(Json(body).into_response())
}

/// The report id as a file name: anything but letters, digits, `.`, `-` and `_` becomes
/// `_`, so the header cannot be broken out of whatever a plugin names its report.
fn file_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The query string as name → value. A parameter given twice is refused, naming it, rather
/// than one of its values silently winning.
fn query_params(raw: Option<&str>) -> Result<BTreeMap<String, String>, ApiError> {
    let raw = raw.unwrap_or("");
    let uri = format!("/?{raw}")
        .parse()
        .map_err(|_| ApiError::bad_request("bad_query", "the query string is malformed"))?;
    let pairs: axum::extract::Query<Vec<(String, String)>> =
        axum::extract::Query::try_from_uri(&uri)
            .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let mut out = BTreeMap::new();
    for (name, value) in pairs.0 {
        if out.contains_key(&name) {
            return Err(ApiError::bad_request(
                "bad_query",
                format!("{name}: is given more than once"),
            )
            .with_field(name));
        }
        out.insert(name, value);
    }
    Ok(out)
}
