//! The bundled workflow plugins end to end, through HTTP with an injected clock:
//! sla-escalation sets SLA due times and escalates an unanswered ticket when its first
//! response is overdue; stale-deals gives a deal's owner a follow-up task once a deal has
//! gone quiet for its stale period.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use kith_core::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::lifecycle::{install, wait_for};
use crate::support::{TestServer, time};

const SLA_GRANT: &str =
    "read:ticket,action:update-fields,action:create-task,action:log-interaction,action:schedule";
const STALE_GRANT: &str = "read:deal,read:interaction,read:task,action:create-task,action:schedule";

fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 6, 9, 0, 0).single().unwrap()
}

async fn idle(s: &TestServer, plugin: &str) -> Value {
    wait_for(s, &format!("/api/v1/plugins/{plugin}/delivery"), |d| {
        d["lag"] == 0
    })
    .await
}

async fn linked(s: &TestServer, kind: &str, field: &str, id: &str) -> Vec<Value> {
    s.list_all(&format!("/api/v1/{kind}?{field}={id}&limit=100"))
        .await
}

#[tokio::test]
async fn an_unanswered_ticket_is_escalated_when_its_first_response_is_overdue() {
    let dir = tempfile::TempDir::new().unwrap();
    let clock = Arc::new(ManualClock::new(start_time()));
    let s = TestServer::start_with_clock(dir.path(), clock.clone()).await;
    install(&s, "sla-escalation", SLA_GRANT).await;

    let ticket = s
        .create_id(
            "tickets",
            json!({ "subject": "Invoices fail to export", "priority": "high", "assignee": "sam" }),
        )
        .await;
    let answered = s
        .create_id(
            "tickets",
            json!({ "subject": "Password reset", "priority": "high", "assignee": "sam" }),
        )
        .await;
    // Due times from the high-priority targets: first response 4 h, resolution 24 h.
    let t = wait_for(&s, &format!("/api/v1/tickets/{ticket}"), |t| {
        !t["first_response_due"].is_null()
    })
    .await;
    assert_eq!(
        time(&t["first_response_due"]),
        start_time() + Duration::hours(4)
    );
    assert_eq!(
        time(&t["resolution_due"]),
        start_time() + Duration::hours(24)
    );
    let d = idle(&s, "sla-escalation").await;
    assert_eq!(d["pending_timers"], 2, "{d}");

    // The second ticket gets its first response in time: its check is cancelled.
    let (status, body) = s
        .patch(
            &format!("/api/v1/tickets/{answered}"),
            &json!({ "first_response_at": (start_time() + Duration::hours(1)).to_rfc3339() }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for(&s, "/api/v1/plugins/sla-escalation/delivery", |d| {
        d["lag"] == 0 && d["pending_timers"] == 1
    })
    .await;

    // Four hours and a minute later, the first ticket is overdue.
    clock.advance(Duration::minutes(241));
    let t = wait_for(&s, &format!("/api/v1/tickets/{ticket}"), |t| {
        t["priority"] == "urgent"
    })
    .await;
    let tasks = linked(&s, "tasks", "ticket_id", &ticket).await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["assignee"], "sam");
    assert!(
        tasks[0]["title"]
            .as_str()
            .unwrap()
            .contains("Invoices fail to export"),
        "{tasks:?}"
    );
    let notes = linked(&s, "interactions", "ticket_id", &ticket).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["kind"], "note");
    // The urgent targets count from the escalation, not from creation.
    assert!(time(&t["first_response_due"]) > start_time() + Duration::minutes(241));
    // Nothing happened to the answered ticket.
    let other = s.get_ok(&format!("/api/v1/tickets/{answered}")).await;
    assert_eq!(other["priority"], "high");
    assert!(linked(&s, "tasks", "ticket_id", &answered).await.is_empty());
    // What the plugin changed is in the log under its name.
    let events = s.events().await;
    assert!(
        events
            .iter()
            .any(|e| e["actor"] == "plugin:sla-escalation" && e["id"] == ticket.as_str()),
    );
    s.stop().await;
}

#[tokio::test]
async fn a_quiet_deal_gets_one_follow_up_per_stale_period() {
    let dir = tempfile::TempDir::new().unwrap();
    let clock = Arc::new(ManualClock::new(start_time()));
    let s = TestServer::start_with_clock(dir.path(), clock.clone()).await;
    install(&s, "stale-deals", STALE_GRANT).await;
    let olga = s.user("olga@example.com", "agent", None).await["id"].clone();
    let quiet = s
        .create_id(
            "deals",
            json!({ "title": "Quiet renewal", "stage": "qualified", "owner": "olga@example.com" }),
        )
        .await;
    let busy = s
        .create_id(
            "deals",
            json!({ "title": "Busy expansion", "stage": "qualified", "owner": "olga@example.com" }),
        )
        .await;
    idle(&s, "stale-deals").await;

    // Day 10: a call on the busy deal restarts its clock.
    clock.advance(Duration::days(10));
    s.create(
        "interactions",
        json!({ "kind": "call", "deal_id": busy, "subject": "Scoping call" }),
    )
    .await;
    idle(&s, "stale-deals").await;

    // Day 15: the quiet deal is stale, the busy one is not.
    clock.advance(Duration::days(5));
    wait_for(
        &s,
        &format!("/api/v1/tasks?deal_id={quiet}&limit=10"),
        |p| p["items"].as_array().is_some_and(|a| a.len() == 1),
    )
    .await;
    let task = &linked(&s, "tasks", "deal_id", &quiet).await[0];
    // The deal's owner is stored as her user id; the task is assigned to her and hers.
    assert_eq!(task["assignee"], olga);
    assert_eq!(task["owner"], olga);
    assert_eq!(task["title"], "Follow up: Quiet renewal");
    idle(&s, "stale-deals").await;
    assert!(linked(&s, "tasks", "deal_id", &busy).await.is_empty());

    // Day 25: the busy deal's period (from its call on day 10) is over; the quiet deal's
    // next one (from its follow-up on day 15) is not.
    clock.advance(Duration::days(10));
    wait_for(&s, &format!("/api/v1/tasks?deal_id={busy}&limit=10"), |p| {
        p["items"].as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    idle(&s, "stale-deals").await;
    assert_eq!(linked(&s, "tasks", "deal_id", &quiet).await.len(), 1);

    // A won deal is left alone.
    let (status, body) = s
        .patch(
            &format!("/api/v1/deals/{quiet}"),
            &json!({ "stage": "won" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    idle(&s, "stale-deals").await;
    clock.advance(Duration::days(30));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    idle(&s, "stale-deals").await;
    assert_eq!(linked(&s, "tasks", "deal_id", &quiet).await.len(), 1);
    s.stop().await;
}
