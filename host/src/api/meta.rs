//! Everything that is not a record: health, pipelines, custom field definitions, the event
//! log and the OpenAPI document.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use kith_core::custom::FieldChanges;
use kith_core::{Command, EntityKind, NewFieldDef, Outcome, Pipeline};
use serde::Deserialize;
use serde_json::{Map, Value as JsonValue, json};

use super::auth::{Caller, MaybeCaller, Need, Routes};
use super::body::JsonObject;
use super::{ApiError, AppState, read, read_as, write};

pub(super) fn routes() -> Routes {
    use Method as M;
    Routes::new()
        .route("/api/v1/health", &[(M::GET, Need::Public)], get(health))
        .route(
            "/api/v1/openapi.json",
            &[(M::GET, Need::Viewer)],
            get(openapi),
        )
        .route(
            "/api/v1/pipelines",
            &[(M::GET, Need::Viewer), (M::POST, Need::Admin)],
            get(pipelines).post(create_pipeline),
        )
        .route(
            "/api/v1/pipelines/{key}",
            &[(M::GET, Need::Viewer), (M::PUT, Need::Admin)],
            get(pipeline).put(put_pipeline),
        )
        .route(
            "/api/v1/fields/{kind}",
            &[(M::GET, Need::Viewer), (M::POST, Need::Admin)],
            get(fields).post(define_field),
        )
        .route(
            "/api/v1/fields/{kind}/{name}",
            &[(M::PATCH, Need::Admin), (M::DELETE, Need::Admin)],
            delete(delete_field).patch(change_field),
        )
        // The raw log shows every record's changes, so it is for admins, like the audit log.
        .route("/api/v1/events", &[(M::GET, Need::Admin)], get(events))
}

/// Whether the server is up. Anyone may ask; only signed-in callers see the record counts.
async fn health(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
) -> Result<impl IntoResponse, ApiError> {
    let Some(caller) = caller else {
        return Ok(Json(json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
        })));
    };
    // Counts of what this caller may see, like every other read.
    let (counts, seq) = read_as(&state.store, &caller, |s| {
        Ok((s.counts()?, s.store().last_event_seq()?))
    })
    .await?;
    let records: Map<String, JsonValue> = counts
        .into_iter()
        .map(|(k, n)| (k.plural().to_owned(), json!(n)))
        .collect();
    Ok(Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "records": records,
        "last_event_seq": seq,
    })))
}

async fn openapi() -> impl IntoResponse {
    Json(super::openapi::document())
}

async fn pipelines(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let items = read(&state.store, |s| s.pipelines()).await?;
    Ok(Json(json!({ "items": items })))
}

async fn pipeline(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let all = read(&state.store, |s| s.pipelines()).await?;
    all.into_iter()
        .find(|p| p.key == key)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no pipeline '{key}'")))
}

fn parse_pipeline(body: Map<String, JsonValue>) -> Result<Pipeline, ApiError> {
    serde_json::from_value(JsonValue::Object(body)).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("not a pipeline: {e} (expected key, name and stages with key, name, probability, outcome)"),
        )
    })
}

async fn create_pipeline(
    State(state): State<AppState>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let p = parse_pipeline(body)?;
    let key = p.key.trim().to_ascii_lowercase();
    let exists = read(&state.store, move |s| {
        Ok(s.pipelines()?.iter().any(|p| p.key == key))
    })
    .await?;
    if exists {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "a pipeline '{}' already exists; PUT /api/v1/pipelines/{} to change it",
                p.key, p.key
            ),
        )
        .with_field("key"));
    }
    match write(&state.store, &caller, Command::PutPipeline(p)).await? {
        Outcome::Pipeline(p) => Ok((StatusCode::CREATED, Json(p))),
        other => Err(ApiError::internal(&format!(
            "put pipeline returned {other:?}"
        ))),
    }
}

async fn put_pipeline(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    JsonObject(mut body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    body.insert("key".to_owned(), json!(key));
    let p = parse_pipeline(body)?;
    match write(&state.store, &caller, Command::PutPipeline(p)).await? {
        Outcome::Pipeline(p) => Ok(Json(p)),
        other => Err(ApiError::internal(&format!(
            "put pipeline returned {other:?}"
        ))),
    }
}

fn parse_kind(raw: &str) -> Result<EntityKind, ApiError> {
    EntityKind::parse(raw).ok_or_else(|| {
        ApiError::not_found(format!(
            "'{raw}' is not a record kind (use one of {})",
            EntityKind::ALL.map(EntityKind::plural).join(", ")
        ))
    })
}

async fn fields(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let kind = parse_kind(&raw)?;
    let defs = read(&state.store, move |s| s.field_defs(kind)).await?;
    let builtin: Vec<JsonValue> = kind
        .fields()
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "type": super::openapi::type_name(f.ty),
                "required": f.required,
                "read_only": f.read_only,
                "help": f.doc,
            })
        })
        .collect();
    Ok(Json(json!({ "items": defs, "builtin": builtin })))
}

async fn define_field(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let kind = parse_kind(&raw)?;
    let def: NewFieldDef = serde_json::from_value(JsonValue::Object(body)).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("not a field definition: {e}"),
        )
    })?;
    match write(&state.store, &caller, Command::DefineField { kind, def }).await? {
        Outcome::Field(f) => Ok((StatusCode::CREATED, Json(f))),
        other => Err(ApiError::internal(&format!(
            "define field returned {other:?}"
        ))),
    }
}

async fn change_field(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw, name)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let kind = parse_kind(&raw)?;
    let changes: FieldChanges = serde_json::from_value(JsonValue::Object(body)).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("not a field change: {e} (fields: label, help, required, options)"),
        )
    })?;
    let cmd = Command::ChangeField {
        kind,
        name,
        changes,
    };
    match write(&state.store, &caller, cmd).await? {
        Outcome::Field(f) => Ok(Json(f)),
        other => Err(ApiError::internal(&format!(
            "change field returned {other:?}"
        ))),
    }
}

async fn delete_field(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw, name)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let kind = parse_kind(&raw)?;
    write(&state.store, &caller, Command::DeleteField { kind, name }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    limit: Option<usize>,
}

async fn events(
    State(state): State<AppState>,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let after = q.after;
    let items = read(&state.store, move |s| s.events(after, limit)).await?;
    let next_after = items.last().map_or(after, |e| e.seq);
    Ok(Json(json!({ "items": items, "next_after": next_after })))
}
