//! Durability across restarts: records, custom fields, pipelines and the event log survive a
//! graceful stop, and a data directory can only be served by one server at a time.

use kith_core::StoreError;
use kith_host::StartError;
use reqwest::StatusCode;
use serde_json::json;
use tempfile::TempDir;

use crate::support::{TestServer, id_of, seqs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_restart() {
    let dir = TempDir::new().unwrap();
    let s = TestServer::start_in(dir.path(), false).await.unwrap();
    let (status, _) = s
        .post(
            "/api/v1/fields/contacts",
            &json!({ "name": "tier", "type": "choice", "options": ["gold", "silver"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let company = s
        .create_id(
            "companies",
            json!({ "name": "Acme", "domain": "acme.example.com" }),
        )
        .await;
    let ada = s
        .create("contacts", json!({ "first_name": "Ada", "email": "ada@example.com", "company_id": company, "custom": { "tier": "gold" } }))
        .await;
    let deal = s
        .create("deals", json!({ "title": "Engine", "amount": "1234.50", "currency": "GBP", "stage": "proposal", "contact_ids": [id_of(&ada)] }))
        .await;
    let (status, ada) = s
        .patch(
            &format!("/api/v1/contacts/{}", id_of(&ada)),
            &json!({ "title": "Countess" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let removed = s
        .create_id(
            "tasks",
            json!({ "title": "Gone soon", "contact_id": id_of(&ada) }),
        )
        .await;
    let (status, _) = s.delete(&format!("/api/v1/tasks/{removed}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let health = s.health().await;
    let events = s.events().await;
    let timeline = s
        .get_ok(&format!("/api/v1/contacts/{}/timeline", id_of(&ada)))
        .await;
    assert_eq!(events.len(), 6, "{events:?}");
    s.stop().await;

    let s = TestServer::start_in(dir.path(), false).await.unwrap();
    assert_eq!(s.health().await, health);
    assert_eq!(s.events().await, events);
    assert_eq!(
        s.get_ok(&format!("/api/v1/contacts/{}", id_of(&ada))).await,
        ada
    );
    assert_eq!(
        s.get_ok(&format!("/api/v1/deals/{}", id_of(&deal))).await,
        deal
    );
    assert_eq!(
        s.get_ok(&format!("/api/v1/contacts/{}/timeline", id_of(&ada)))
            .await,
        timeline
    );
    let (status, _) = s.get(&format!("/api/v1/tasks/{removed}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Indexes survived too: unique emails, filters, custom fields.
    let (status, body) = s
        .post("/api/v1/contacts", &json!({ "email": "ADA@example.com" }))
        .await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (StatusCode::CONFLICT, &json!("email")),
        "{body}"
    );
    assert_eq!(
        s.count("contacts", &format!("company_id={company}")).await,
        1
    );
    assert_eq!(s.count("contacts", "custom.tier=gold").await, 1);
    assert_eq!(s.count("deals", "stage=proposal").await, 1);

    // The event log continues without a gap.
    s.create_id("contacts", json!({ "first_name": "Charles" }))
        .await;
    let after = s.events().await;
    assert_eq!(after.len(), events.len() + 1);
    let seqs = seqs(&after);
    assert_eq!(seqs, (1..=after.len() as u64).collect::<Vec<_>>());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_in_use_is_refused() {
    let dir = TempDir::new().unwrap();
    let first = TestServer::start_in(dir.path(), false).await.unwrap();
    first
        .create_id("contacts", json!({ "first_name": "Ada" }))
        .await;

    match kith_host::start(crate::support::config(dir.path(), false)).await {
        Err(StartError::Store(e @ StoreError::InUse { .. })) => {
            let message = e.to_string();
            assert!(message.contains("already in use"), "{message}");
        }
        Err(other) => panic!("expected InUse, got {other}"),
        Ok(second) => {
            let url = second.url();
            second.stop().await.unwrap();
            panic!("a second server started on a directory in use, at {url}");
        }
    }

    // The first server is unharmed, and once it stops the directory can be used again.
    assert_eq!(first.count("contacts", "").await, 1);
    first.stop().await;
    let again = TestServer::start_in(dir.path(), false).await.unwrap();
    assert_eq!(again.count("contacts", "").await, 1);
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_stop_under_load() {
    let dir = TempDir::new().unwrap();
    let s = TestServer::start_in(dir.path(), false).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (client, url) = (s.client(), s.url());
        tasks.push(tokio::spawn(async move {
            let body = json!({ "first_name": format!("Late{i}") }).to_string();
            // Requests that arrive after the server stopped listening fail to connect; only
            // answered ones count.
            let response = client
                .post(format!("{url}/api/v1/contacts"))
                .body(body)
                .send()
                .await
                .ok()?;
            let status = response.status();
            let record: serde_json::Value = response.json().await.ok()?;
            match status {
                StatusCode::CREATED => Some(id_of(&record)),
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(record["error"]["code"], json!("shutting_down"));
                    None
                }
                other => panic!("unexpected {other}: {record}"),
            }
        }));
    }
    // Stop while most requests are still in flight.
    let mut tasks = tasks.into_iter();
    let first = tasks.next().unwrap().await.unwrap();
    s.stop().await;
    let mut acknowledged: Vec<String> = first.into_iter().collect();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    assert!(!acknowledged.is_empty());

    let s = TestServer::start_in(dir.path(), false).await.unwrap();
    for id in &acknowledged {
        let (status, body) = s.get(&format!("/api/v1/contacts/{id}")).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "acknowledged contact {id} was lost: {body}"
        );
    }
    let stored = s.count("contacts", "").await;
    assert_eq!(
        stored,
        acknowledged.len() as u64,
        "only acknowledged writes are stored"
    );
    let seqs = seqs(&s.events().await);
    assert_eq!(seqs, (1..=stored).collect::<Vec<_>>());
    s.stop().await;
}
