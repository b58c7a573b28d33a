//! Bad input of every sort gets the documented status, error code and field, and never
//! changes what is stored.

use reqwest::{Body, Method, StatusCode};
use serde_json::json;

use crate::support::{TestServer, assert_error};

/// One bad request and the error it must get.
struct Case {
    method: Method,
    path: String,
    body: Option<String>,
    status: StatusCode,
    code: &'static str,
    field: Option<&'static str>,
}

fn case(
    method: Method,
    path: impl Into<String>,
    body: Option<&str>,
    status: StatusCode,
    code: &'static str,
    field: Option<&'static str>,
) -> Case {
    Case {
        method,
        path: path.into(),
        body: body.map(str::to_owned),
        status,
        code,
        field,
    }
}

/// A well-formed UUID no record has.
const UNKNOWN_ID: &str = "01890a5d-ac96-774b-bcce-b302099a8057";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_exact_errors_and_changes_nothing() {
    use Method as M;
    use StatusCode as S;
    let s = TestServer::start().await;
    let (status, _) = s
        .post(
            "/api/v1/fields/contacts",
            &json!({ "name": "tier", "type": "choice", "options": ["gold", "silver"] }),
        )
        .await;
    assert_eq!(status, S::CREATED);
    let ada = s
        .create_id(
            "contacts",
            json!({ "first_name": "Ada", "email": "ada@example.com" }),
        )
        .await;
    s.create_id(
        "contacts",
        json!({ "first_name": "Bob", "email": "bob@example.com" }),
    )
    .await;
    let company = s.create_id("companies", json!({ "name": "Acme" })).await;
    s.create_id("deals", json!({ "title": "Big one", "stage": "lead" }))
        .await;

    let before = s.health().await;
    let contacts_before = s.list_all("/api/v1/contacts?limit=100").await;
    let events_before = s.events().await;

    let contacts = "/api/v1/contacts";
    let ada_path = format!("/api/v1/contacts/{ada}");
    let bad = S::BAD_REQUEST;
    let invalid = S::UNPROCESSABLE_ENTITY;
    let not_found = S::NOT_FOUND;
    // One line per case reads as a table; rustfmt would spread each over eight lines.
    #[rustfmt::skip]
    let cases = vec![
        // Bodies that are not a JSON object.
        case(M::POST, contacts, Some("{"), bad, "malformed_json", None),
        case(M::POST, contacts, Some("{\"first_name\": \"Ada\",}"), bad, "malformed_json", None),
        case(M::POST, contacts, Some("[{\"first_name\": \"Ada\"}]"), bad, "malformed_json", None),
        case(M::POST, contacts, Some("\"Ada\""), bad, "malformed_json", None),
        case(M::POST, contacts, Some("null"), bad, "malformed_json", None),
        case(M::POST, contacts, Some(""), bad, "malformed_json", None),
        case(M::POST, contacts, Some("   \n"), bad, "malformed_json", None),
        case(M::POST, contacts, None, bad, "malformed_json", None),
        case(M::POST, contacts, Some("{\"first_name\": \"\u{FFFD}\u{0}"), bad, "malformed_json", None),
        case(M::PATCH, &ada_path, Some("[1]"), bad, "malformed_json", None),
        case(M::PATCH, &ada_path, Some("nope"), bad, "malformed_json", None),
        // Wrong types and invalid values name the field.
        case(M::POST, contacts, Some(r#"{"first_name": 5}"#), invalid, "validation_failed", Some("first_name")),
        case(M::POST, contacts, Some(r#"{"first_name": {"x": 1}}"#), invalid, "validation_failed", Some("first_name")),
        case(M::POST, contacts, Some(r#"{"first_name": "A", "tags": "vip"}"#), invalid, "validation_failed", Some("tags")),
        case(M::POST, contacts, Some(r#"{"first_name": "A", "email": "not-an-email"}"#), invalid, "validation_failed", Some("email")),
        case(M::POST, contacts, Some(r#"{"first_name": "A", "lifecycle_stage": "royalty"}"#), invalid, "validation_failed", Some("lifecycle_stage")),
        case(M::POST, contacts, Some(&format!(r#"{{"first_name": "A", "company_id": "{UNKNOWN_ID}"}}"#)), invalid, "validation_failed", Some("company_id")),
        case(M::POST, contacts, Some(r#"{"first_name": "A", "company_id": "acme"}"#), invalid, "validation_failed", Some("company_id")),
        case(M::POST, contacts, Some(&format!(r#"{{"first_name": "A", "id": "{UNKNOWN_ID}"}}"#)), invalid, "validation_failed", Some("id")),
        case(M::POST, contacts, Some(r#"{"first_name": "A", "created_at": "2020-01-01T00:00:00Z"}"#), invalid, "validation_failed", Some("created_at")),
        case(M::POST, contacts, Some("{}"), invalid, "validation_failed", Some("first_name")),
        case(M::POST, contacts, Some(r#"{"first_name": "A", "custom": 5}"#), invalid, "validation_failed", Some("custom")),
        case(M::POST, contacts, Some(r#"{"first_name": "A", "custom": {"tier": "bronze"}}"#), invalid, "validation_failed", Some("custom.tier")),
        case(M::POST, contacts, Some(r#"{"first_name": "A", "custom": {"tier": 1}}"#), invalid, "validation_failed", Some("custom.tier")),
        case(M::PATCH, &ada_path, Some(r#"{"last_name": 5}"#), invalid, "validation_failed", Some("last_name")),
        case(M::PATCH, &ada_path, Some(r#"{"first_name": null, "email": null}"#), invalid, "validation_failed", Some("first_name")),
        case(M::PATCH, &ada_path, Some(r#"{"updated_at": "2020-01-01T00:00:00Z"}"#), invalid, "validation_failed", Some("updated_at")),
        case(M::POST, "/api/v1/deals", Some(r#"{"title": "x", "stage": "lead", "amount": true, "currency": "USD"}"#), invalid, "validation_failed", Some("amount")),
        case(M::POST, "/api/v1/deals", Some(r#"{"title": "x", "stage": "lead", "amount": [1], "currency": "USD"}"#), invalid, "validation_failed", Some("amount")),
        case(M::POST, "/api/v1/deals", Some(r#"{"stage": "lead"}"#), invalid, "validation_failed", Some("title")),
        case(M::POST, "/api/v1/deals", Some(r#"{"title": "x"}"#), invalid, "validation_failed", Some("stage")),
        case(M::POST, "/api/v1/deals", Some(r#"{"title": "x", "stage": "closing"}"#), invalid, "validation_failed", Some("stage")),
        case(M::POST, "/api/v1/deals", Some(r#"{"title": "x", "stage": "lead", "pipeline": "nope"}"#), invalid, "validation_failed", Some("pipeline")),
        case(M::POST, "/api/v1/deals", Some(r#"{"title": "x", "stage": "lead", "status": "won"}"#), invalid, "validation_failed", Some("status")),
        case(M::POST, "/api/v1/deals", Some(r#"{"title": "x", "stage": "lead", "expected_close": "31/12/2026"}"#), invalid, "validation_failed", Some("expected_close")),
        case(M::POST, "/api/v1/deals", Some(&format!(r#"{{"title": "x", "stage": "lead", "contact_ids": ["{UNKNOWN_ID}"]}}"#)), invalid, "validation_failed", Some("contact_ids")),
        case(M::POST, "/api/v1/companies", Some(r#"{"name": "x", "size": -1}"#), invalid, "validation_failed", Some("size")),
        case(M::POST, "/api/v1/companies", Some(r#"{"name": "x", "size": 1.5}"#), invalid, "validation_failed", Some("size")),
        case(M::POST, "/api/v1/companies", Some(r#"{"name": "x", "domain": "not a domain"}"#), invalid, "validation_failed", Some("domain")),
        case(M::POST, "/api/v1/tickets", Some(r#"{"subject": "x", "priority": "whenever"}"#), invalid, "validation_failed", Some("priority")),
        case(M::POST, "/api/v1/interactions", Some(r#"{"kind": "call"}"#), invalid, "validation_failed", Some("contact_id")),
        case(M::POST, "/api/v1/interactions", Some(&format!(r#"{{"kind": "telegram", "contact_id": "{ada}"}}"#)), invalid, "validation_failed", Some("kind")),
        case(M::POST, "/api/v1/tasks", Some(&format!(r#"{{"title": "x", "contact_id": "{ada}", "done": "maybe"}}"#)), invalid, "validation_failed", Some("done")),
        case(M::POST, "/api/v1/tasks", Some(&format!(r#"{{"title": "x", "deal_id": "{company}"}}"#)), invalid, "validation_failed", Some("deal_id")),
        // Fields the kind does not have.
        case(M::POST, contacts, Some(r#"{"first_name": "A", "nickname": "x"}"#), invalid, "unknown_field", Some("nickname")),
        case(M::POST, contacts, Some(r#"{"first_name": "A", "custom": {"shoe_size": 44}}"#), invalid, "unknown_field", Some("custom.shoe_size")),
        case(M::PATCH, &ada_path, Some(r#"{"FirstName": "A"}"#), invalid, "unknown_field", Some("FirstName")),
        case(M::POST, "/api/v1/deals", Some(r#"{"title": "x", "stage": "lead", "value": 5}"#), invalid, "unknown_field", Some("value")),
        // Emails are unique, case-insensitively.
        case(M::POST, contacts, Some(r#"{"first_name": "Imposter", "email": "ada@example.com"}"#), S::CONFLICT, "conflict", Some("email")),
        case(M::POST, contacts, Some(r#"{"first_name": "Imposter", "email": "ADA@Example.COM"}"#), S::CONFLICT, "conflict", Some("email")),
        case(M::PATCH, &ada_path, Some(r#"{"email": "Bob@example.com"}"#), S::CONFLICT, "conflict", Some("email")),
        // Unknown and malformed ids.
        case(M::GET, format!("/api/v1/contacts/{UNKNOWN_ID}"), None, not_found, "not_found", None),
        case(M::GET, format!("/api/v1/contacts/{company}"), None, not_found, "not_found", None),
        case(M::PATCH, format!("/api/v1/contacts/{UNKNOWN_ID}"), Some(r#"{"first_name": "x"}"#), not_found, "not_found", None),
        case(M::DELETE, format!("/api/v1/deals/{UNKNOWN_ID}"), None, not_found, "not_found", None),
        case(M::GET, format!("/api/v1/contacts/{UNKNOWN_ID}/timeline"), None, not_found, "not_found", None),
        case(M::GET, "/api/v1/contacts/not-a-uuid", None, not_found, "not_found", None),
        case(M::PATCH, "/api/v1/contacts/not-a-uuid", Some(r#"{"first_name": "x"}"#), not_found, "not_found", None),
        case(M::DELETE, "/api/v1/contacts/12345", None, not_found, "not_found", None),
        case(M::GET, "/api/v1/contacts/not-a-uuid/timeline", None, not_found, "not_found", None),
        // Bad list queries.
        case(M::GET, "/api/v1/contacts?nope=1", None, bad, "bad_query", Some("nope")),
        case(M::GET, "/api/v1/contacts/count?nope=1", None, bad, "bad_query", Some("nope")),
        case(M::GET, "/api/v1/contacts?x[zz]=1", None, bad, "bad_query", Some("x")),
        case(M::GET, "/api/v1/contacts?first_name[like]=A", None, bad, "bad_query", Some("first_name")),
        case(M::GET, "/api/v1/contacts?custom.nope=1", None, bad, "bad_query", Some("custom.nope")),
        case(M::GET, "/api/v1/contacts?cursor=not-a-cursor!", None, bad, "bad_query", Some("cursor")),
        case(M::GET, "/api/v1/contacts?cursor=AAAA", None, bad, "bad_query", Some("cursor")),
        case(M::GET, "/api/v1/contacts?limit=0", None, bad, "bad_query", Some("limit")),
        case(M::GET, "/api/v1/contacts?limit=ten", None, bad, "bad_query", Some("limit")),
        case(M::GET, "/api/v1/contacts?limit=5000", None, bad, "bad_query", Some("limit")),
        case(M::GET, "/api/v1/contacts?sort=-shoe_size", None, bad, "bad_query", Some("sort")),
        case(M::GET, "/api/v1/contacts?created_at[gt]=yesterday", None, bad, "bad_query", Some("created_at")),
        case(M::GET, "/api/v1/deals?amount[gte]=lots", None, bad, "bad_query", Some("amount")),
        case(M::GET, "/api/v1/deals?status=maybe", None, bad, "bad_query", Some("status")),
        case(M::GET, "/api/v1/deals?status[in]=open,maybe", None, bad, "bad_query", Some("status")),
        case(M::GET, format!("/api/v1/contacts/{ada}/timeline?first_name=x"), None, bad, "bad_query", Some("first_name")),
        case(M::GET, format!("/api/v1/contacts/{ada}/timeline?cursor=AAAA"), None, bad, "bad_query", Some("cursor")),
        case(M::GET, "/api/v1/events?after=abc", None, bad, "bad_query", None),
        // Routes and methods that do not exist.
        case(M::GET, "/api/v1/nope", None, not_found, "not_found", None),
        case(M::GET, "/no-such-page", None, not_found, "not_found", None),
        case(M::GET, "/api/v2/contacts", None, not_found, "not_found", None),
        case(M::GET, format!("/api/v1/contacts/{ada}/friends"), None, not_found, "not_found", None),
        case(M::POST, "/api/v1/widgets", Some("{}"), not_found, "not_found", None),
        case(M::GET, "/api/v1/fields/widgets", None, not_found, "not_found", None),
        case(M::DELETE, "/api/v1/fields/contacts/shoe_size", None, not_found, "not_found", None),
        case(M::GET, "/api/v1/pipelines/nope", None, not_found, "not_found", None),
        case(M::PUT, contacts, Some("{}"), S::METHOD_NOT_ALLOWED, "method_not_allowed", None),
        case(M::DELETE, contacts, None, S::METHOD_NOT_ALLOWED, "method_not_allowed", None),
        case(M::PUT, &ada_path, Some("{}"), S::METHOD_NOT_ALLOWED, "method_not_allowed", None),
        case(M::POST, &ada_path, Some("{}"), S::METHOD_NOT_ALLOWED, "method_not_allowed", None),
        case(M::POST, "/api/v1/contacts/count", Some("{}"), S::METHOD_NOT_ALLOWED, "method_not_allowed", None),
        case(M::POST, "/api/v1/health", Some("{}"), S::METHOD_NOT_ALLOWED, "method_not_allowed", None),
        case(M::DELETE, "/api/v1/events", None, S::METHOD_NOT_ALLOWED, "method_not_allowed", None),
        // Bad custom field definitions and pipelines.
        case(M::POST, "/api/v1/fields/contacts", Some(r#"{"name": "tier", "type": "choice", "options": ["a"]}"#), S::CONFLICT, "conflict", Some("name")),
        case(M::POST, "/api/v1/fields/contacts", Some(r#"{"name": "email", "type": "text"}"#), invalid, "validation_failed", Some("name")),
        case(M::POST, "/api/v1/fields/contacts", Some(r#"{"name": "level", "type": "choice"}"#), invalid, "validation_failed", Some("options")),
        case(M::POST, "/api/v1/fields/contacts", Some(r#"{"name": "Bad Name", "type": "text"}"#), invalid, "validation_failed", Some("name")),
        case(M::POST, "/api/v1/fields/contacts", Some(r#"{"name": "level", "type": "rainbow"}"#), invalid, "validation_failed", None),
        case(M::POST, "/api/v1/fields/widgets", Some(r#"{"name": "level", "type": "text"}"#), not_found, "not_found", None),
        case(M::POST, "/api/v1/pipelines", Some(r#"{"key": "default", "name": "Again", "stages": []}"#), S::CONFLICT, "conflict", Some("key")),
        case(M::POST, "/api/v1/pipelines", Some(r#"{"key": "x"}"#), invalid, "validation_failed", None),
        case(M::POST, "/api/v1/pipelines", Some(r#"{"key": "x", "name": "X", "stages": [{"key": "a", "name": "A", "probability": 5}]}"#), invalid, "validation_failed", Some("stages")),
    ];
    for c in &cases {
        let what = format!("{} {} {:?}", c.method, c.path, c.body);
        let reply = s
            .send(c.method.clone(), &c.path, c.body.clone().map(Body::from))
            .await;
        let (status, body) = &reply;
        assert!(
            *status == c.status && body["error"]["code"] == json!(c.code),
            "{what}: expected {} {}, got {status} {body}",
            c.status,
            c.code
        );
        assert_error(&reply, c.status, c.code, c.field);
    }

    // Oversized bodies are refused before anything is parsed.
    let huge = format!(
        r#"{{"first_name": "{}"}}"#,
        "a".repeat(kith_host::api::MAX_BODY)
    );
    assert_error(
        &s.post_raw(contacts, huge).await,
        S::PAYLOAD_TOO_LARGE,
        "body_too_large",
        None,
    );
    let huge = format!(r#"{{"title": "{}"}}"#, "a".repeat(kith_host::api::MAX_BODY));
    assert_error(
        &s.send(M::PATCH, &ada_path, Some(Body::from(huge))).await,
        S::PAYLOAD_TOO_LARGE,
        "body_too_large",
        None,
    );

    // Bad input never hurts: counts, records and the event log are exactly as before.
    assert_eq!(s.health().await, before);
    assert_eq!(
        s.list_all("/api/v1/contacts?limit=100").await,
        contacts_before
    );
    assert_eq!(s.events().await, events_before);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limit_is_one_mebibyte() {
    let s = TestServer::start().await;
    let max = kith_host::api::MAX_BODY;
    assert_eq!(max, 1024 * 1024);
    // Padding with whitespace keeps the JSON valid and the record small.
    let frame = r#"{"first_name": "Roomy"}"#;
    let just_fits = format!("{}{}", " ".repeat(max - frame.len()), frame);
    assert_eq!(just_fits.len(), max);
    let (status, body) = s.post_raw("/api/v1/contacts", just_fits).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["first_name"], json!("Roomy"));

    let one_too_many = format!("{}{}", " ".repeat(max + 1 - frame.len()), frame);
    assert_error(
        &s.post_raw("/api/v1/contacts", one_too_many).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        None,
    );
    assert_eq!(s.count("contacts", "").await, 1);
    s.stop().await;
}
