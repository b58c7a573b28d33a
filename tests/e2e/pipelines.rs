//! Deal pipelines: the default pipeline, status and close time following the stage, creating
//! and replacing pipelines, and stages checked against the deal's own pipeline.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, assert_error, id_of, time};

fn stage_keys(pipeline: &Value) -> Vec<&str> {
    pipeline["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect()
}

fn renewals() -> Value {
    json!({
        "key": "renewals",
        "name": "Renewals",
        "stages": [
            { "key": "due", "name": "Due", "probability": 60 },
            { "key": "quoted", "name": "Quoted", "probability": 80, "outcome": "open" },
            { "key": "renewed", "name": "Renewed", "probability": 100, "outcome": "won" },
            { "key": "churned", "name": "Churned", "probability": 0, "outcome": "lost" },
        ],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_pipeline_and_stage_moves() {
    let s = TestServer::start().await;
    let list = s.get_ok("/api/v1/pipelines").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let default = &items[0];
    assert_eq!(default["key"], json!("default"));
    assert_eq!(
        stage_keys(default),
        [
            "lead",
            "qualified",
            "proposal",
            "negotiation",
            "won",
            "lost"
        ]
    );
    let outcomes: Vec<&Value> = default["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["outcome"])
        .collect();
    assert_eq!(
        outcomes,
        [
            &json!("open"),
            &json!("open"),
            &json!("open"),
            &json!("open"),
            &json!("won"),
            &json!("lost")
        ]
    );
    assert_eq!(&s.get_ok("/api/v1/pipelines/default").await, default);

    let deal = s
        .create("deals", json!({ "title": "Engine", "stage": "lead" }))
        .await;
    assert_eq!(deal["pipeline"], json!("default"));
    assert_eq!(deal["status"], json!("open"));
    assert!(deal["closed_at"].is_null());
    let entered_lead = time(&deal["stage_changed_at"]);
    let path = format!("/api/v1/deals/{}", id_of(&deal));

    let (status, moved) = s.patch(&path, &json!({ "stage": "negotiation" })).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["status"], json!("open"));
    assert!(moved["closed_at"].is_null());
    assert!(time(&moved["stage_changed_at"]) > entered_lead);

    let (status, won) = s.patch(&path, &json!({ "stage": "won" })).await;
    assert_eq!(status, StatusCode::OK, "{won}");
    assert_eq!(won["status"], json!("won"));
    let closed_at = time(&won["closed_at"]);
    assert_eq!(won["closed_at"], won["stage_changed_at"]);
    assert!(closed_at >= time(&moved["stage_changed_at"]));

    // Editing another field of a won deal keeps its close time.
    let (_, edited) = s.patch(&path, &json!({ "title": "Engine (signed)" })).await;
    assert_eq!(edited["closed_at"], won["closed_at"]);
    assert_eq!(edited["status"], json!("won"));

    let (_, lost) = s
        .patch(&path, &json!({ "stage": "LOST", "lost_reason": "Budget" }))
        .await;
    assert_eq!(lost["stage"], json!("lost"));
    assert_eq!(lost["status"], json!("lost"));
    crate::support::time(&lost["closed_at"]);

    // Reopening clears the close time.
    let (_, reopened) = s.patch(&path, &json!({ "stage": "proposal" })).await;
    assert_eq!(reopened["status"], json!("open"));
    assert!(reopened["closed_at"].is_null(), "{reopened}");

    // The event log recorded the derived fields along with the stage.
    let events = s.events().await;
    let won_event = events
        .iter()
        .find(|e| {
            e["changes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["field"] == json!("stage") && c["after"] == json!("won"))
        })
        .expect("an event for the move to won");
    let fields: Vec<&str> = won_event["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"status") && fields.contains(&"closed_at"),
        "{won_event}"
    );

    // Won and lost deals are filtered by status.
    assert_eq!(s.count("deals", "status=open").await, 1);
    assert_eq!(s.count("deals", "status=won").await, 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_pipelines() {
    let s = TestServer::start().await;
    let (status, created) = s.post("/api/v1/pipelines", &renewals()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        stage_keys(&created),
        ["due", "quoted", "renewed", "churned"]
    );
    assert_eq!(s.get_ok("/api/v1/pipelines/renewals").await, created);
    let keys: Vec<Value> = s.get_ok("/api/v1/pipelines").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].clone())
        .collect();
    assert!(
        keys.contains(&json!("default")) && keys.contains(&json!("renewals")),
        "{keys:?}"
    );

    // A deal in the new pipeline uses its stages and outcomes.
    let deal = s
        .create(
            "deals",
            json!({ "title": "Renewal 2027", "pipeline": "renewals", "stage": "due" }),
        )
        .await;
    assert_eq!(deal["pipeline"], json!("renewals"));
    assert_eq!(deal["status"], json!("open"));
    let path = format!("/api/v1/deals/{}", id_of(&deal));
    let (_, renewed) = s.patch(&path, &json!({ "stage": "renewed" })).await;
    assert_eq!(renewed["status"], json!("won"));
    crate::support::time(&renewed["closed_at"]);

    // A stage is only valid in its own pipeline.
    let outside = json!({ "title": "Wrong", "pipeline": "renewals", "stage": "proposal" });
    assert_error(
        &s.post("/api/v1/deals", &outside).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("stage"),
    );
    let outside = json!({ "title": "Wrong", "stage": "renewed" });
    assert_error(
        &s.post("/api/v1/deals", &outside).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("stage"),
    );
    assert_error(
        &s.patch(&path, &json!({ "stage": "won" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("stage"),
    );
    // Moving to another pipeline without a matching stage is refused too.
    assert_error(
        &s.patch(&path, &json!({ "pipeline": "default" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("stage"),
    );
    let (status, moved) = s
        .patch(&path, &json!({ "pipeline": "default", "stage": "won" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["pipeline"], json!("default"));

    // The same key cannot be created twice.
    assert_error(
        &s.post("/api/v1/pipelines", &renewals()).await,
        StatusCode::CONFLICT,
        "conflict",
        Some("key"),
    );

    // PUT replaces a pipeline; a stage that still has deals cannot be dropped.
    s.create(
        "deals",
        json!({ "title": "Pending", "pipeline": "renewals", "stage": "quoted" }),
    )
    .await;
    let mut fewer = renewals();
    fewer["stages"].as_array_mut().unwrap().remove(1);
    assert_error(
        &s.send(
            Method::PUT,
            "/api/v1/pipelines/renewals",
            Some(fewer.to_string().into()),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("stages"),
    );
    let mut renamed = renewals();
    renamed["name"] = json!("Renewals 2027");
    let (status, stored) = s
        .send(
            Method::PUT,
            "/api/v1/pipelines/renewals",
            Some(renamed.to_string().into()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(
        s.get_ok("/api/v1/pipelines/renewals").await["name"],
        json!("Renewals 2027")
    );
    s.stop().await;
}

/// The OpenAPI document lists only `key` and `probability` as required for a stage, and the
/// server fills a missing stage name from its key, so a stage without a name must be accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_name_is_optional_as_documented() {
    let s = TestServer::start().await;
    let doc = s.get_ok("/api/v1/openapi.json").await;
    let stage_schema = &doc["components"]["schemas"]["Pipeline"]["properties"]["stages"]["items"];
    assert_eq!(stage_schema["required"], json!(["key", "probability"]));

    let pipeline = json!({
        "key": "support",
        "name": "Support contracts",
        "stages": [
            { "key": "open", "probability": 50 },
            { "key": "signed", "probability": 100, "outcome": "won" },
            { "key": "declined", "probability": 0, "outcome": "lost" },
        ],
    });
    let (status, created) = s.post("/api/v1/pipelines", &pipeline).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["stages"][0]["name"], json!("open"));
    s.stop().await;
}
