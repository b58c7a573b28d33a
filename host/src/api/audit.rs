//! Audit history over HTTP: `GET /api/v1/{kind}/{id}/history` (one record's changes, newest
//! first) and `GET /api/v1/audit` (the whole log searched by actor, record kind, record and
//! time; admins only). Both page with `before`, the `next_before` of the previous page.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::IntoResponse;
use axum::routing::get;
use kith_core::audit::AuditQuery;
use kith_core::schema::parse_timestamp;
use kith_core::{EntityKind, Id, Timestamp};
use serde::Deserialize;
use serde_json::json;

use super::auth::{Caller, Need, Routes};
use super::body::{Params, params};
use super::{ApiError, AppState, read, read_as};

pub(super) fn routes() -> Routes {
    let mut routes =
        Routes::new().route("/api/v1/audit", &[(Method::GET, Need::Admin)], get(audit));
    for kind in EntityKind::ALL {
        routes = routes.route(
            &format!("/api/v1/{}/{{id}}/history", kind.plural()),
            &[(Method::GET, Need::Viewer)],
            get(move |s, c, p, q| history(kind, s, c, p, q)),
        );
    }
    routes
}

/// `before` and `limit`, shared by both routes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryParams {
    before: Option<u64>,
    limit: Option<usize>,
}

async fn history(
    kind: EntityKind,
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    q: Params<HistoryParams>,
) -> Result<impl IntoResponse, ApiError> {
    let q = params(q)?;
    let id: Id = raw
        .parse()
        .map_err(|_| ApiError::not_found(format!("no {kind} with id '{raw}' (ids are UUIDs)")))?;
    let limit = q.limit.unwrap_or(100);
    let page = read_as(&state.store, &caller, move |s| {
        s.history(kind, id, q.before, limit)
    })
    .await?;
    Ok(Json(
        json!({ "items": page.items, "next_before": page.next_before }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    actor: Option<String>,
    user: Option<String>,
    kind: Option<String>,
    record: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<u64>,
    limit: Option<usize>,
}

fn time(name: &str, v: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    v.map(|t| {
        parse_timestamp(t).map_err(|m| {
            ApiError::bad_request("bad_query", format!("{name}: {m}")).with_field(name)
        })
    })
    .transpose()
}

async fn audit(
    State(state): State<AppState>,
    q: Params<AuditParams>,
) -> Result<impl IntoResponse, ApiError> {
    let p = params(q)?;
    let kind = p
        .kind
        .as_deref()
        .map(|k| {
            EntityKind::parse(k).ok_or_else(|| {
                ApiError::bad_request(
                    "bad_query",
                    format!(
                        "kind: '{k}' is not a record kind (one of {})",
                        EntityKind::ALL.map(EntityKind::name).join(", ")
                    ),
                )
                .with_field("kind")
            })
        })
        .transpose()?;
    let record = p
        .record
        .as_deref()
        .map(|r| {
            r.parse::<Id>().map_err(|_| {
                ApiError::bad_request("bad_query", format!("record: '{r}' is not a record id"))
                    .with_field("record")
            })
        })
        .transpose()?;
    // `user` takes an email or id and finds everything the user did, by session or token.
    let by_user = match p.user.as_deref().filter(|u| !u.is_empty()) {
        Some(u) => {
            let dir = state.store.directory();
            let found = dir.find_user(u).ok_or_else(|| {
                ApiError::bad_request("bad_query", format!("user: there is no user '{u}'"))
                    .with_field("user")
            })?;
            Some(format!("user:{}", found.id))
        }
        None => None,
    };
    if by_user.is_some() && p.actor.as_deref().is_some_and(|a| !a.is_empty()) {
        return Err(ApiError::bad_request(
            "bad_query",
            "give either user or actor, not both",
        ));
    }
    let query = AuditQuery {
        actor: by_user.or(p.actor.filter(|a| !a.is_empty())),
        kind,
        record,
        from: time("from", p.from.as_deref())?,
        to: time("to", p.to.as_deref())?,
        before: p.before,
        limit: p.limit.unwrap_or(100),
    };
    let page = read(&state.store, move |s| s.audit(&query)).await?;
    Ok(Json(
        json!({ "items": page.items, "next_before": page.next_before }),
    ))
}
