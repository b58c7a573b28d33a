//! Demo data: a server started with `demo = true` seeds a realistic CRM once, and never again.

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::TestServer;

/// Waits until every workflow plugin has handled the whole log and has no timer due.
async fn settle(s: &TestServer) {
    let start = std::time::Instant::now();
    for plugin in ["sla-escalation", "stale-deals"] {
        loop {
            let d = s
                .get_ok(&format!("/api/v1/plugins/{plugin}/delivery"))
                .await;
            let due = d["next_timers"][0]["at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t <= chrono::Utc::now() + chrono::Duration::minutes(1));
            if d["lag"] == 0 && !due {
                break;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "{plugin} did not settle: {d}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_data_is_seeded_once() {
    let dir = TempDir::new().unwrap();
    let s = TestServer::start_in(dir.path(), true).await.unwrap();
    // The bundled workflows react to the seeded data (escalations, follow-ups) in the
    // background; counts are stable once they have caught up.
    settle(&s).await;
    let health = s.health().await;
    let records = &health["records"];
    for (kind, at_least) in [
        ("contacts", 200),
        ("companies", 40),
        ("deals", 60),
        ("tickets", 30),
        ("interactions", 300),
        ("tasks", 300),
    ] {
        let n = records[kind]
            .as_u64()
            .unwrap_or_else(|| panic!("no count for {kind}: {health}"));
        assert!(n >= at_least, "{kind}: {n} < {at_least}");
        assert_eq!(
            s.count(kind, "").await,
            n,
            "{kind}: count agrees with health"
        );
    }
    for stage in [
        "lead",
        "qualified",
        "proposal",
        "negotiation",
        "won",
        "lost",
    ] {
        assert!(
            s.count("deals", &format!("stage={stage}")).await > 0,
            "no deal in {stage}"
        );
    }
    assert!(s.count("deals", "status=won").await > 0);
    assert!(s.count("deals", "status=lost").await > 0);

    // Demo deals carry exact amounts with a currency.
    let page = s.get_ok("/api/v1/deals?limit=5&amount[gt]=0").await;
    let deal = &page["items"][0];
    assert!(deal["amount"].is_string(), "{deal}");
    assert_eq!(deal["currency"].as_str().map(str::len), Some(3), "{deal}");
    let seq = health["last_event_seq"].as_u64().unwrap();
    let total: u64 = records
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(
        seq >= total,
        "every demo record was written through the event log: {health}"
    );
    s.stop().await;

    // Starting again with demo on adds nothing.
    let s = TestServer::start_in(dir.path(), true).await.unwrap();
    settle(&s).await;
    let again = s.health().await;
    assert_eq!(again["records"], *records);
    assert_eq!(again["last_event_seq"], json!(seq));
    s.stop().await;

    // Demo data is only for an empty database.
    let dir = TempDir::new().unwrap();
    let s = TestServer::start_in(dir.path(), false).await.unwrap();
    s.create_id("contacts", json!({ "first_name": "Only me" }))
        .await;
    s.stop().await;
    let s = TestServer::start_in(dir.path(), true).await.unwrap();
    let records: Value = s.health().await["records"].clone();
    assert_eq!(records["contacts"], json!(1));
    assert_eq!(records["deals"], json!(0));
    s.stop().await;
}
