//! CRUD, list, count and timeline routes for every record kind:
//! `/api/v1/{contacts,companies,deals,tickets,interactions,tasks}[/{id}[/timeline]]`.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::Method;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use std::collections::BTreeMap;

use kith_core::{
    AnyRecord, Command, EntityKind, Filter, FilterOp, Id, Outcome, Query, SortKey, StoredScore,
};
use serde_json::json;

use super::auth::{Caller, Need, Routes};
use super::body::{JsonObject, to_input};
use super::cache::{Entry, RecordCache};
use super::{ApiError, AppState, read_as, write, write_stamped};
use axum::body::Bytes;
use kith_core::store::Stamp;

pub(super) fn routes() -> Routes {
    let mut routes = Routes::new();
    for kind in EntityKind::ALL {
        let base = format!("/api/v1/{}", kind.plural());
        routes = routes
            .route(
                &base,
                &[(Method::GET, Need::Viewer), (Method::POST, Need::Agent)],
                get(move |s, c, q| list(kind, s, c, q)).post(move |s, c, b| create(kind, s, c, b)),
            )
            .route(
                &format!("{base}/count"),
                &[(Method::GET, Need::Viewer)],
                get(move |s, c, q| count(kind, s, c, q)),
            )
            .route(
                &format!("{base}/{{id}}"),
                &[
                    (Method::GET, Need::Viewer),
                    (Method::PATCH, Need::Agent),
                    (Method::DELETE, Need::Agent),
                ],
                get(move |s, c, p| fetch(kind, s, c, p))
                    .patch(move |s, c, p, b| update(kind, s, c, p, b))
                    .delete(move |s, c, p| remove(kind, s, c, p)),
            )
            .route(
                &format!("{base}/{{id}}/timeline"),
                &[(Method::GET, Need::Viewer)],
                get(move |s, c, p, q| timeline(kind, s, c, p, q)),
            );
    }
    routes
}

/// A record id from a path; anything but a UUID is a record that does not exist.
pub(crate) fn parse_id(kind: EntityKind, raw: &str) -> Result<Id, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("no {kind} with id '{raw}' (ids are UUIDs)")))
}

/// Parses list parameters: `limit`, `cursor`, `sort`, `q`, and filters written `field=value`
/// or `field[op]=value` with op one of eq, ne, gt, gte, lt, lte, contains, in.
pub fn parse_query(raw: Option<&str>) -> Result<Query, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded_pairs(raw.unwrap_or(""))?;
    let mut q = Query::default();
    for (key, value) in pairs {
        match key.as_str() {
            "limit" => {
                q.limit = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    ApiError::bad_request(
                        "bad_query",
                        format!("limit: '{value}' is not a positive whole number"),
                    )
                    .with_field("limit")
                })?;
            }
            "cursor" => q.cursor = Some(value),
            "sort" => q.sort = Some(SortKey::parse(value.trim())),
            "q" => q.search = Some(value),
            _ => {
                let (field, op) = match key.split_once('[') {
                    Some((field, rest)) => {
                        let name = rest.strip_suffix(']').unwrap_or(rest);
                        let op = FilterOp::parse(name).ok_or_else(|| {
                            ApiError::bad_request(
                                "bad_query",
                                format!(
                                    "{field}: unknown operator '{name}' (use one of {})",
                                    FilterOp::NAMES.join(", ")
                                ),
                            )
                            .with_field(field)
                        })?;
                        (field.to_owned(), op)
                    }
                    None => (key.clone(), FilterOp::Eq),
                };
                q.filters.push(Filter { field, op, value });
            }
        }
    }
    Ok(q)
}

fn serde_urlencoded_pairs(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
    let q: axum::extract::Query<Vec<(String, String)>> = axum::extract::Query::try_from_uri(
        &format!("/?{raw}")
            .parse()
            .map_err(|_| ApiError::bad_request("bad_query", "the query string is malformed"))?,
    )
    .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    Ok(q.0)
}

async fn list(
    kind: EntityKind,
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let q = parse_query(raw.as_deref())?;
    let page = read_as(&state.store, &caller, move |s| s.list(kind, &q)).await?;
    Ok(Json(page))
}

async fn count(
    kind: EntityKind,
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let q = parse_query(raw.as_deref())?;
    let n = read_as(&state.store, &caller, move |s| s.count(kind, &q)).await?;
    Ok(Json(json!({ "count": n })))
}

async fn create(
    kind: EntityKind,
    State(state): State<AppState>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let input = to_input(body)?;
    match write_stamped(&state.store, &caller, Command::Create { kind, input }).await? {
        // Scoring runs after the write, so a new record has no scores yet. A new record is
        // often read next (the web UI shows it), so its answer goes into the cache.
        (Outcome::Record(r), stamp) => Ok((
            StatusCode::CREATED,
            WithScores::new(r, Vec::new()).cached(&state.records, stamp)?,
        )),
        (other, _) => Err(ApiError::internal(&format!("create returned {other:?}"))),
    }
}

async fn fetch(
    kind: EntityKind,
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(kind, &raw)?;
    if let Some(hit) = state.records.get(id)
        && hit.kind == kind
        && caller
            .access
            .sees(hit.owner.as_deref(), hit.team.as_deref())
    {
        return Ok(json_body(hit.body.clone()));
    }
    // Taken before the read begins, so the copy read is at least this new.
    let stamp = state.store.committed();
    let (record, scores) =
        read_as(&state.store, &caller, move |s| s.get_with_scores(kind, id)).await?;
    WithScores::new(record, scores).cached(&state.records, stamp)
}

async fn update(
    kind: EntityKind,
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(kind, &raw)?;
    let input = to_input(body)?;
    match write_stamped(&state.store, &caller, Command::Update { kind, id, input }).await? {
        (Outcome::Record(r), stamp) => {
            let scores = read_as(&state.store, &caller, move |s| s.store().scores(id)).await?;
            WithScores::new(r, scores).cached(&state.records, stamp)
        }
        (other, _) => Err(ApiError::internal(&format!("update returned {other:?}"))),
    }
}

/// A record as single-record routes answer it: its fields plus `scores`, the scores plugins
/// gave it by `plugin/scorer`, each with its value, reasons and time.
struct WithScores {
    record: AnyRecord,
    scores: BTreeMap<String, StoredScore>,
}

impl WithScores {
    fn new(record: AnyRecord, scores: Vec<(String, StoredScore)>) -> Self {
        WithScores {
            record,
            scores: scores.into_iter().collect(),
        }
    }

    /// The JSON answer. A record serialises as a non-empty JSON object, so `scores` is
    /// spliced in before its closing brace: far cheaper than `#[serde(flatten)]`, which
    /// buffers every field, on the hottest routes.
    fn to_json(&self) -> Result<Vec<u8>, ApiError> {
        let mut out = serde_json::to_vec(&self.record).map_err(|e| ApiError::internal(&e))?;
        if out.pop() != Some(b'}') {
            return Err(ApiError::internal(&"a record is not a JSON object"));
        }
        out.extend_from_slice(b",\"scores\":");
        serde_json::to_writer(&mut out, &self.scores).map_err(|e| ApiError::internal(&e))?;
        out.push(b'}');
        Ok(out)
    }

    /// The answer, offered to the record cache as current as of `stamp`.
    fn cached(
        self,
        cache: &RecordCache,
        stamp: Stamp,
    ) -> Result<axum::response::Response, ApiError> {
        let body = Bytes::from(self.to_json()?);
        cache.put(
            self.record.id(),
            stamp,
            Entry {
                kind: self.record.kind(),
                owner: self.record.owner().map(str::to_owned),
                team: self.record.team().map(str::to_owned),
                body: body.clone(),
            },
        );
        Ok(json_body(body))
    }
}

/// A `200 OK` JSON answer of `body`.
fn json_body(body: Bytes) -> axum::response::Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn remove(
    kind: EntityKind,
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(kind, &raw)?;
    write(&state.store, &caller, Command::Delete { kind, id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn timeline(
    kind: EntityKind,
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(kind, &raw)?;
    let q = parse_query(raw_query.as_deref())?;
    if let Some(f) = q.filters.first() {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("{}: timelines take only limit and cursor", f.field),
        )
        .with_field(f.field.clone()));
    }
    let limit = q.limit.clamp(1, 500);
    let limit = if q.limit == 0 { 100 } else { limit };
    let page = read_as(&state.store, &caller, move |s| {
        s.timeline(kind, id, limit, q.cursor.as_deref())
    })
    .await?;
    Ok(Json(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, expected: Result<Query, &str>) {
        match (parse_query(Some(raw)), expected) {
            (Ok(q), Ok(want)) => assert_eq!(q, want, "query {raw:?}"),
            (Err(e), Err(field)) => {
                assert_eq!(e.status(), StatusCode::BAD_REQUEST, "query {raw:?}");
                let body = format!("{e:?}");
                assert!(body.contains(field), "query {raw:?}: {body}");
            }
            (got, want) => panic!("query {raw:?}: got {got:?}, want {want:?}"),
        }
    }

    fn filter(field: &str, op: FilterOp, value: &str) -> Filter {
        Filter {
            field: field.to_owned(),
            op,
            value: value.to_owned(),
        }
    }

    #[test]
    fn query_strings() {
        check("", Ok(Query::default()));
        check(
            "stage=proposal&amount[gte]=1000&sort=-amount&limit=20&q=acme",
            Ok(Query {
                filters: vec![
                    filter("stage", FilterOp::Eq, "proposal"),
                    filter("amount", FilterOp::Gte, "1000"),
                ],
                search: Some("acme".to_owned()),
                sort: Some(SortKey {
                    field: "amount".to_owned(),
                    descending: true,
                }),
                limit: 20,
                cursor: None,
            }),
        );
        check(
            "status%5Bin%5D=open%2Cwon&custom.tier=gold",
            Ok(Query {
                filters: vec![
                    filter("status", FilterOp::In, "open,won"),
                    filter("custom.tier", FilterOp::Eq, "gold"),
                ],
                ..Query::default()
            }),
        );
        check("amount[zz]=1", Err("unknown operator 'zz'"));
        check("limit=0", Err("limit"));
        check("limit=ten", Err("limit"));
    }
}
