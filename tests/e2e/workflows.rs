//! Workflow delivery through a running server: a real workflow plugin (the probe in
//! `tests/plugins/workflow-probe`) reacts to events with tasks, tags and timers; timers fire
//! when an injected clock reaches them, also across a restart; failures are retried, then
//! suspend the plugin, which resumes from its place in the log; loops are cut off.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use kith_core::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::lifecycle::{install, plugin, upload, wait_for};
use crate::support::TestServer;

const PROBE_GRANT: &str = "read:contact,action:create-task,action:add-tag,action:remove-tag,action:log-interaction,action:schedule";

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().unwrap(),
    ))
}

async fn contact(s: &TestServer, first: &str) -> String {
    s.create_id(
        "contacts",
        json!({ "first_name": first, "email": format!("{first}.{}@example.com", rand_suffix()) }),
    )
    .await
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn tags(c: &Value) -> Vec<String> {
    c["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn welcomed(s: &TestServer, id: &str) -> Value {
    wait_for(s, &format!("/api/v1/contacts/{id}"), |c| {
        tags(c).contains(&"welcomed".to_owned())
    })
    .await
}

async fn notes(s: &TestServer, id: &str) -> Vec<Value> {
    s.list_all(&format!("/api/v1/interactions?contact_id={id}&limit=100"))
        .await
}

async fn delivery(s: &TestServer) -> Value {
    s.get_ok("/api/v1/plugins/probe/delivery").await
}

#[tokio::test]
async fn a_workflow_reacts_to_each_event_once_as_itself() {
    let s = TestServer::start().await;
    install(&s, "probe", PROBE_GRANT).await;
    let mut ids = Vec::new();
    for name in ["ada", "grace", "edsger"] {
        ids.push(contact(&s, name).await);
    }
    for id in &ids {
        welcomed(&s, id).await;
    }
    let d = wait_for(&s, "/api/v1/plugins/probe/delivery", |d| d["lag"] == 0).await;
    assert_eq!(d["pending_timers"], 3, "{d}");
    assert_eq!(d["recent_failures"], json!([]), "{d}");
    for (id, name) in ids.iter().zip(["ada", "grace", "edsger"]) {
        let tasks = s
            .list_all(&format!("/api/v1/tasks?contact_id={id}&limit=100"))
            .await;
        assert_eq!(tasks.len(), 1, "{tasks:?}");
        assert_eq!(tasks[0]["title"], format!("Welcome {name}"));
    }
    // What the plugin did is in the log under its name, one level down the chain.
    let events = s.events().await;
    let by_probe: Vec<&Value> = events
        .iter()
        .filter(|e| e["actor"] == "plugin:probe")
        .collect();
    assert_eq!(by_probe.len(), 6, "a task and a tag per contact");
    assert!(by_probe.iter().all(|e| e["depth"] == 1), "{by_probe:?}");
    s.stop().await;
}

#[tokio::test]
async fn timers_fire_when_the_clock_reaches_them_and_survive_a_restart() {
    let dir = tempfile::TempDir::new().unwrap();
    let clock = clock();
    let s = TestServer::start_with_clock(dir.path(), clock.clone()).await;
    install(&s, "probe", PROBE_GRANT).await;
    let (status, body) = s
        .patch(
            "/api/v1/plugins/probe/settings",
            &json!({ "timer_secs": 3600 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let early = contact(&s, "early").await;
    welcomed(&s, &early).await;
    let d = delivery(&s).await;
    assert_eq!(d["pending_timers"], 1, "{d}");
    assert_eq!(
        d["next_timers"][0]["at"],
        json!("2026-03-02T10:00:00Z"),
        "{d}"
    );

    // Not yet: a minute before the hour nothing fires.
    clock.advance(Duration::minutes(59));
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(notes(&s, &early).await.is_empty());
    clock.advance(Duration::minutes(1));
    wait_for(&s, "/api/v1/plugins/probe/delivery", |d| {
        d["pending_timers"] == 0
    })
    .await;
    let n = notes(&s, &early).await;
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(n[0]["body"].as_str().unwrap().contains(&early), "{n:?}");

    // A timer set before a shutdown, whose time passes while the server is down, fires
    // when it starts again.
    let late = contact(&s, "late").await;
    welcomed(&s, &late).await;
    s.stop().await;
    clock.advance(Duration::hours(5));
    let s = TestServer::start_with_clock(dir.path(), clock.clone()).await;
    wait_for(&s, "/api/v1/plugins/probe/delivery", |d| {
        d["pending_timers"] == 0
    })
    .await;
    assert_eq!(notes(&s, &late).await.len(), 1);
    assert_eq!(notes(&s, &early).await.len(), 1, "fired once, not again");
    s.stop().await;
}

#[tokio::test]
async fn failures_are_retried_then_suspend_and_resume_from_the_same_event() {
    let s = TestServer::start().await;
    install(&s, "probe", PROBE_GRANT).await;
    s.patch(
        "/api/v1/plugins/probe/settings",
        &json!({ "fail_first_name": "broken" }),
    )
    .await;
    // A second workflow, to show one plugin's failures hold up neither it nor requests.
    install(
        &s,
        "sla-escalation",
        "read:ticket,action:update-fields,action:create-task,action:log-interaction,action:schedule",
    )
    .await;
    let bad = contact(&s, "broken").await;
    let good = contact(&s, "fine").await;
    let ticket = s
        .create_id(
            "tickets",
            json!({ "subject": "Still served", "priority": "high" }),
        )
        .await;
    wait_for(&s, &format!("/api/v1/tickets/{ticket}"), |t| {
        !t["first_response_due"].is_null()
    })
    .await;
    let view = wait_for(&s, "/api/v1/plugins/probe", |p| p["status"] == "suspended").await;
    assert!(
        view["status_reason"]
            .as_str()
            .unwrap()
            .contains("asked to fail"),
        "{view}"
    );
    // The fifth failure is stored just after the suspension shows.
    let d = wait_for(&s, "/api/v1/plugins/probe/delivery", |d| {
        d["recent_failures"].as_array().unwrap().len() == 5
    })
    .await;
    assert!(d["lag"].as_u64().unwrap() >= 2, "both events wait: {d}");
    let failures = d["recent_failures"].as_array().unwrap();
    assert!(
        failures
            .iter()
            .all(|f| f["message"].as_str().unwrap().contains("asked to fail"))
    );
    // Order holds: the contact after the failing one was not handled either.
    assert!(
        !tags(&s.get_ok(&format!("/api/v1/contacts/{good}")).await)
            .contains(&"welcomed".to_owned())
    );

    // The admin fixes the cause and resumes: delivery picks up at the failed event.
    s.patch(
        "/api/v1/plugins/probe/settings",
        &json!({ "fail_first_name": "" }),
    )
    .await;
    let (status, body) = s.post("/api/v1/plugins/probe/resume", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    welcomed(&s, &bad).await;
    welcomed(&s, &good).await;
    s.stop().await;
}

#[tokio::test]
async fn actions_need_their_capability() {
    let s = TestServer::start().await;
    // A manifest that does not ask for create-task (the binary does not declare it either,
    // so install accepts it), while the code still returns create-task actions.
    let (manifest, wasm) = plugin("probe");
    let manifest = manifest.replace("\"create-task\", ", "");
    assert!(!manifest.contains("create-task"));
    let (status, body) = upload(
        &s,
        reqwest::Method::POST,
        "/api/v1/plugins",
        &manifest,
        wasm,
        Some(
            "read:contact,action:add-tag,action:remove-tag,action:log-interaction,action:schedule",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = contact(&s, "nocap").await;
    let d = wait_for(&s, "/api/v1/plugins/probe/delivery", |d| {
        !d["recent_failures"].as_array().unwrap().is_empty()
    })
    .await;
    let message = d["recent_failures"][0]["message"].as_str().unwrap();
    assert!(message.contains("action:create-task"), "{message}");
    // All or nothing: the tag in the same call was not applied either.
    let c = s.get_ok(&format!("/api/v1/contacts/{id}")).await;
    assert!(!tags(&c).contains(&"welcomed".to_owned()), "{c}");
    s.stop().await;
}

#[tokio::test]
async fn a_reaction_loop_is_cut_off_at_the_chain_limit() {
    let s = TestServer::start().await;
    install(&s, "probe", PROBE_GRANT).await;
    let id = contact(&s, "looper").await;
    welcomed(&s, &id).await;
    let (status, body) = s
        .patch(
            &format!("/api/v1/contacts/{id}"),
            &json!({ "tags": ["welcomed", "ping"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for(&s, "/api/v1/plugins/probe/delivery", |d| {
        d["recent_failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["message"].as_str().unwrap().contains("chain cut off"))
    })
    .await;
    let d = wait_for(&s, "/api/v1/plugins/probe/delivery", |d| d["lag"] == 0).await;
    let events = s.events().await;
    let deepest = events
        .iter()
        .filter(|e| e["id"] == id.as_str())
        .filter_map(|e| e["depth"].as_u64())
        .max()
        .unwrap();
    assert_eq!(deepest, 16, "{d}");
    // The plugin is not suspended by a cut-off: it keeps working.
    let p = s.get_ok("/api/v1/plugins/probe").await;
    assert_eq!(p["status"], "active", "{p}");
    let other = contact(&s, "after").await;
    welcomed(&s, &other).await;
    s.stop().await;
}
