//! Create, read, partial update and delete for every record kind, and exact money amounts.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, assert_error, id_of};

/// Walks one record of `kind` through its life: create, get, patch, delete.
///
/// `create` must be given in the server's normalised form, because every field it names is
/// expected back unchanged. `patch` is applied next: a `null` must clear the field, anything
/// else must be stored as given, and every field not in `patch` (nor in `derived`, fields the
/// server recomputes) must keep its value.
async fn check_crud(s: &TestServer, kind: &str, create: Value, patch: Value, derived: &[&str]) {
    let base = format!("/api/v1/{kind}");
    let count_before = s.count(kind, "").await;

    let (status, created) = s.post(&base, &create).await;
    assert_eq!(status, StatusCode::CREATED, "{kind}: {created}");
    let id = id_of(&created);
    assert!(
        id.parse::<kith_core::Id>().is_ok(),
        "{kind}: id {id} is a UUID"
    );
    for key in ["created_at", "updated_at"] {
        crate::support::time(&created[key]);
    }
    assert_eq!(created["created_at"], created["updated_at"]);
    for key in created.as_object().unwrap().keys() {
        assert!(
            key.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{kind}: field '{key}' is not snake_case"
        );
    }
    for (key, want) in create.as_object().unwrap() {
        assert_eq!(&created[key], want, "{kind}.{key} as stored: {created}");
    }
    assert_eq!(s.count(kind, "").await, count_before + 1);

    let path = format!("{base}/{id}");
    assert_eq!(
        s.get_ok(&path).await,
        created,
        "{kind}: GET returns what POST returned"
    );

    let (status, updated) = s.patch(&path, &patch).await;
    assert_eq!(status, StatusCode::OK, "{kind}: {updated}");
    for (key, want) in patch.as_object().unwrap() {
        if want.is_null() {
            assert!(
                updated[key].is_null() || updated[key] == json!([]),
                "{kind}.{key} was cleared: {updated}"
            );
        } else {
            assert_eq!(&updated[key], want, "{kind}.{key} after PATCH: {updated}");
        }
    }
    for (key, before) in created.as_object().unwrap() {
        if key == "updated_at" || patch.get(key).is_some() || derived.contains(&key.as_str()) {
            continue;
        }
        assert_eq!(
            &updated[key], before,
            "{kind}.{key} must not change on PATCH"
        );
    }
    assert!(
        crate::support::time(&updated["updated_at"]) > crate::support::time(&created["updated_at"]),
        "{kind}: updated_at moves forward"
    );
    assert_eq!(
        s.get_ok(&path).await,
        updated,
        "{kind}: GET returns what PATCH returned"
    );

    let (status, body) = s.delete(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{kind}: {body}");
    assert!(body.is_null(), "{kind}: 204 has no body: {body}");
    assert_error(
        &s.get(&path).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &s.delete(&path).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &s.patch(&path, &patch).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_eq!(s.count(kind, "").await, count_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_crud() {
    let s = TestServer::start().await;
    // The owner is a user; records store the user's id.
    let alex = s.user("alex@example.com", "agent", None).await["id"].clone();
    check_crud(
        &s,
        "contacts",
        json!({
            "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
            "phone": "+44 20 7946 0000", "title": "Analyst", "tags": ["math", "vip"],
            "lifecycle_stage": "customer", "source": "referral", "owner": alex,
        }),
        json!({ "title": null, "last_name": "King", "tags": ["math"] }),
        &[],
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn companies_crud() {
    let s = TestServer::start().await;
    check_crud(
        &s,
        "companies",
        json!({
            "name": "Analytical Engines", "domain": "engines.example.com", "industry": "Computing",
            "size": 12, "city": "London", "country": "UK", "website": "https://engines.example.com",
        }),
        json!({ "industry": null, "size": 40 }),
        &[],
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deals_crud() {
    let s = TestServer::start().await;
    let company = s
        .create_id("companies", json!({ "name": "Babbage & Co" }))
        .await;
    let contact = s
        .create_id("contacts", json!({ "first_name": "Charles" }))
        .await;
    check_crud(
        &s,
        "deals",
        json!({
            "title": "Difference engine", "amount": "1234.50", "currency": "GBP",
            "pipeline": "default", "stage": "proposal",
            "expected_close": "2026-09-30", "company_id": company, "contact_ids": [contact],
            "tags": ["big"],
        }),
        json!({ "expected_close": null, "amount": "99.95", "company_id": null }),
        &[],
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_crud() {
    let s = TestServer::start().await;
    let requester = s
        .create_id("contacts", json!({ "email": "help@example.com" }))
        .await;
    check_crud(
        &s,
        "tickets",
        json!({
            "subject": "Engine jams", "description": "Gear 3 sticks", "priority": "high",
            "channel": "email", "assignee": "sam", "status": "open", "requester_id": requester,
        }),
        json!({ "assignee": null, "priority": "urgent", "status": "resolved" }),
        &["resolved_at"],
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactions_crud() {
    let s = TestServer::start().await;
    let contact = s
        .create_id("contacts", json!({ "first_name": "Mary" }))
        .await;
    let company = s
        .create_id("companies", json!({ "name": "Somerville Ltd" }))
        .await;
    check_crud(
        &s,
        "interactions",
        json!({
            "kind": "call", "direction": "outbound", "subject": "Intro call",
            "duration_seconds": 300, "occurred_at": "2026-03-01T09:30:00Z",
            "contact_id": contact, "company_id": company,
        }),
        json!({ "subject": null, "duration_seconds": 600, "contact_id": null }),
        &[],
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_crud() {
    let s = TestServer::start().await;
    let contact = s
        .create_id("contacts", json!({ "first_name": "Grace" }))
        .await;
    check_crud(
        &s,
        "tasks",
        json!({
            "title": "Send plans", "notes": "Both volumes", "due_at": "2026-04-01T12:00:00Z",
            "assignee": "jordan", "done": false, "contact_id": contact,
        }),
        json!({ "notes": null, "done": true }),
        &["completed_at"],
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_fields_follow_updates() {
    let s = TestServer::start().await;
    let contact = s
        .create_id("contacts", json!({ "first_name": "Grace" }))
        .await;

    let task = s
        .create(
            "tasks",
            json!({ "title": "Call back", "contact_id": contact }),
        )
        .await;
    assert_eq!(task["done"], json!(false));
    assert!(task["completed_at"].is_null());
    let path = format!("/api/v1/tasks/{}", id_of(&task));
    let (_, done) = s.patch(&path, &json!({ "done": true })).await;
    crate::support::time(&done["completed_at"]);
    let (_, reopened) = s.patch(&path, &json!({ "done": false })).await;
    assert!(reopened["completed_at"].is_null(), "{reopened}");

    let ticket = s
        .create(
            "tickets",
            json!({ "subject": "Broken", "requester_id": contact }),
        )
        .await;
    assert_eq!(ticket["status"], json!("open"));
    assert_eq!(ticket["priority"], json!("normal"));
    assert!(ticket["resolved_at"].is_null());
    let path = format!("/api/v1/tickets/{}", id_of(&ticket));
    let (_, resolved) = s.patch(&path, &json!({ "status": "resolved" })).await;
    let resolved_at = resolved["resolved_at"].clone();
    crate::support::time(&resolved_at);
    // Closing a resolved ticket keeps the time it was first resolved.
    let (_, closed) = s.patch(&path, &json!({ "status": "closed" })).await;
    assert_eq!(closed["resolved_at"], resolved_at);

    // An interaction without occurred_at happened now.
    let note = s
        .create(
            "interactions",
            json!({ "kind": "note", "contact_id": contact }),
        )
        .await;
    assert_eq!(note["occurred_at"], note["created_at"]);

    // A PATCH that changes nothing returns the record untouched.
    let path = format!("/api/v1/interactions/{}", id_of(&note));
    let (status, same) = s.patch(&path, &json!({ "kind": "note" })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(same, note);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_contact_clears_references_to_it() {
    let s = TestServer::start().await;
    let contact = s
        .create_id("contacts", json!({ "first_name": "Ada" }))
        .await;
    let other = s
        .create_id("contacts", json!({ "first_name": "Charles" }))
        .await;
    let deal = s
        .create_id(
            "deals",
            json!({ "title": "Engine", "stage": "lead", "contact_ids": [contact, other] }),
        )
        .await;
    let ticket = s
        .create_id(
            "tickets",
            json!({ "subject": "Help", "requester_id": contact }),
        )
        .await;
    let only_linked = s
        .create_id("tasks", json!({ "title": "Call", "contact_id": contact }))
        .await;
    let also_linked = s
        .create_id(
            "tasks",
            json!({ "title": "Quote", "contact_id": contact, "deal_id": deal }),
        )
        .await;

    let (status, _) = s.delete(&format!("/api/v1/contacts/{contact}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let deal = s.get_ok(&format!("/api/v1/deals/{deal}")).await;
    assert_eq!(deal["contact_ids"], json!([other]));
    let ticket = s.get_ok(&format!("/api/v1/tickets/{ticket}")).await;
    assert!(ticket["requester_id"].is_null(), "{ticket}");
    // A task linked to nothing else goes with the contact; one still linked stays.
    let (status, _) = s.get(&format!("/api/v1/tasks/{only_linked}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let task = s.get_ok(&format!("/api/v1/tasks/{also_linked}")).await;
    assert!(task["contact_id"].is_null(), "{task}");
    assert_eq!(task["deal_id"], json!(id_of(&deal)));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_is_free_again_once_its_contact_lets_go() {
    let s = TestServer::start().await;
    let ada = s
        .create_id("contacts", json!({ "email": "ada@example.com" }))
        .await;
    let taken = json!({ "email": "Ada@Example.com" });
    assert_error(
        &s.post("/api/v1/contacts", &taken).await,
        StatusCode::CONFLICT,
        "conflict",
        Some("email"),
    );

    // Changing the email frees the old address and takes the new one.
    let (status, _) = s
        .patch(
            &format!("/api/v1/contacts/{ada}"),
            &json!({ "email": "countess@example.com" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let second = s.create_id("contacts", taken.clone()).await;
    let (status, same) = s
        .patch(
            &format!("/api/v1/contacts/{ada}"),
            &json!({ "email": "COUNTESS@example.com" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a contact does not conflict with itself: {same}"
    );

    // Deleting frees it too.
    let (status, _) = s.delete(&format!("/api/v1/contacts/{second}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    s.create_id("contacts", taken).await;
    assert_eq!(s.count("contacts", "email=ada@example.com").await, 1);
    assert_eq!(s.count("contacts", "email=countess@example.com").await, 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_is_exact() {
    let s = TestServer::start().await;
    // (amount as sent, amount as stored)
    let cases = [
        (json!(19.99), "19.99"),
        (json!("1234.50"), "1234.50"),
        (json!(0.1), "0.1"),
        (json!(100), "100"),
        (json!("0.0001"), "0.0001"),
        (json!(123_456_789.12), "123456789.12"),
    ];
    for (sent, stored) in cases {
        let deal = s
            .create(
                "deals",
                json!({ "title": "Exact", "stage": "lead", "amount": sent, "currency": "usd" }),
            )
            .await;
        assert_eq!(deal["amount"], json!(stored), "sent {sent}");
        assert_eq!(deal["currency"], json!("USD"));
        let again = s.get_ok(&format!("/api/v1/deals/{}", id_of(&deal))).await;
        assert_eq!(again["amount"], json!(stored), "sent {sent}, read back");
    }
    let deal = s
        .create(
            "deals",
            json!({ "title": "Patch me", "stage": "lead", "amount": "1", "currency": "EUR" }),
        )
        .await;
    let (_, patched) = s
        .patch(
            &format!("/api/v1/deals/{}", id_of(&deal)),
            &json!({ "amount": 19.99 }),
        )
        .await;
    assert_eq!(patched["amount"], json!("19.99"));

    // Bad amounts are refused, naming the field.
    for (body, field) in [
        (
            json!({ "title": "x", "stage": "lead", "amount": "12.34567", "currency": "USD" }),
            "amount",
        ),
        (
            json!({ "title": "x", "stage": "lead", "amount": "-5", "currency": "USD" }),
            "amount",
        ),
        (
            json!({ "title": "x", "stage": "lead", "amount": "lots", "currency": "USD" }),
            "amount",
        ),
        (
            json!({ "title": "x", "stage": "lead", "amount": "5" }),
            "currency",
        ),
        (
            json!({ "title": "x", "stage": "lead", "amount": "5", "currency": "EURO" }),
            "currency",
        ),
    ] {
        assert_error(
            &s.post("/api/v1/deals", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some(field),
        );
    }
    s.stop().await;
}
