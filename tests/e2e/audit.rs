//! Audit history through a running server: a record's history shows every change with who
//! made it and each field before and after, survives the record's deletion, and pages; the
//! whole log is searched by actor, kind, record and time.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, assert_error, id_of};

fn seqs(page: &Value) -> Vec<u64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_record_history_shows_who_changed_what_and_outlives_the_record() {
    let s = TestServer::start().await;
    let c = s
        .create(
            "contacts",
            json!({ "first_name": "Ada", "email": "ada@example.com", "title": "Engineer" }),
        )
        .await;
    let id = id_of(&c);
    for title in ["Lead engineer", "CTO"] {
        let (status, body) = s
            .patch(
                &format!("/api/v1/contacts/{id}"),
                &json!({ "title": title }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let h = s.get_ok(&format!("/api/v1/contacts/{id}/history")).await;
    let items = h["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{h}");
    assert_eq!(
        items
            .iter()
            .map(|e| e["op"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["updated", "updated", "created"]
    );
    let me = s.get_ok("/api/v1/me").await;
    assert!(items.iter().all(|e| e["actor"] == me["actor"]), "{h}");
    let newest = &items[0]["changes"];
    assert_eq!(
        newest,
        &json!([{ "field": "title", "before": "Lead engineer", "after": "CTO" }]),
        "{h}"
    );
    assert!(h["next_before"].is_null());

    // Paging: one at a time, newest first, with next_before.
    let p1 = s
        .get_ok(&format!("/api/v1/contacts/{id}/history?limit=2"))
        .await;
    let before = p1["next_before"].as_u64().unwrap();
    let p2 = s
        .get_ok(&format!(
            "/api/v1/contacts/{id}/history?limit=2&before={before}"
        ))
        .await;
    let mut all = seqs(&p1);
    all.extend(seqs(&p2));
    assert_eq!(all, seqs(&h));
    assert!(p2["next_before"].is_null());

    // Deleted, its history stays (the audit log is append-only).
    let (status, _) = s.delete(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let h = s.get_ok(&format!("/api/v1/contacts/{id}/history")).await;
    assert_eq!(h["items"][0]["op"], "deleted");
    assert_eq!(h["items"].as_array().unwrap().len(), 4);

    // Unknown records and bad parameters.
    let missing = "0190a0a0-0000-7000-8000-000000000000";
    let reply = s.get(&format!("/api/v1/contacts/{missing}/history")).await;
    assert_eq!(reply.0, StatusCode::NOT_FOUND, "{}", reply.1);
    let reply = s.get(&format!("/api/v1/deals/{id}/history")).await;
    assert_eq!(
        reply.0,
        StatusCode::NOT_FOUND,
        "a contact is not a deal: {}",
        reply.1
    );
    let reply = s
        .get(&format!("/api/v1/contacts/{id}/history?colour=red"))
        .await;
    assert_eq!(reply.0, StatusCode::BAD_REQUEST, "{}", reply.1);
    s.stop().await;
}

#[tokio::test]
async fn the_audit_log_is_searched_by_actor_kind_record_and_time() {
    let s = TestServer::start().await;
    let company = s
        .create_id(
            "companies",
            json!({ "name": "Acme", "domain": "acme.example" }),
        )
        .await;
    let contact = s
        .create_id(
            "contacts",
            json!({ "first_name": "Grace", "company_id": company }),
        )
        .await;
    s.patch(
        &format!("/api/v1/companies/{company}"),
        &json!({ "industry": "Tools" }),
    )
    .await;
    let all = s.get_ok("/api/v1/audit").await;
    assert_eq!(seqs(&all), [3, 2, 1], "{all}");

    let companies = s.get_ok("/api/v1/audit?kind=company").await;
    assert_eq!(seqs(&companies), [3, 1]);
    let one = s.get_ok(&format!("/api/v1/audit?record={contact}")).await;
    assert_eq!(seqs(&one), [2]);
    // The admin's changes, by their user (whatever token signed them) or by email.
    let me = s.get_ok("/api/v1/me").await;
    let user = format!("user:{}", me["user"]["id"].as_str().unwrap());
    let by_api = s
        .get_ok(&format!("/api/v1/audit?actor={user}&limit=2"))
        .await;
    assert_eq!(seqs(&by_api), [3, 2]);
    assert_eq!(by_api["next_before"], 2);
    let by_email = s.get_ok("/api/v1/audit?user=admin@example.com").await;
    assert_eq!(seqs(&by_email), [3, 2, 1]);
    let rest = s
        .get_ok(&format!("/api/v1/audit?actor={user}&limit=2&before=2"))
        .await;
    assert_eq!(seqs(&rest), [1]);
    assert!(
        s.get_ok("/api/v1/audit?actor=demo").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Time: from the second event's time on.
    let at = all["items"][1]["at"].as_str().unwrap().to_owned();
    let since = s
        .get_ok(&format!("/api/v1/audit?from={}", at.replace('+', "%2B")))
        .await;
    assert!(seqs(&since).iter().all(|seq| *seq >= 2), "{since}");
    let until = s
        .get_ok(&format!("/api/v1/audit?to={}", at.replace('+', "%2B")))
        .await;
    assert!(seqs(&until).iter().all(|seq| *seq < 2), "{until}");

    let reply = s.get("/api/v1/audit?kind=spaceship").await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "bad_query", Some("kind"));
    let reply = s.get("/api/v1/audit?from=yesterday").await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "bad_query", Some("from"));
    let reply = s.get("/api/v1/audit?record=42").await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "bad_query", Some("record"));
    s.stop().await;
}
