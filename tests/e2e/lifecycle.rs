//! Installed plugins in a running server: upload through `/api/v1/plugins`, grants, settings,
//! enable and disable, upgrade, uninstall, validators and computed fields in the write path,
//! stored scores, suspension of a failing plugin, restart, and the offline CLI functions.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::support::{Reply, TestServer, assert_error, id_of};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn wasm(file: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("KITH_TEST_PLUGINS")).join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn manifest(dir: &str) -> String {
    std::fs::read_to_string(root().join(dir).join("kith-plugin.toml")).unwrap()
}

/// (manifest, binary) of a plugin the tests install.
pub(crate) fn plugin(id: &str) -> (String, Vec<u8>) {
    match id {
        "lead-scoring" => (
            manifest("plugins/lead-scoring"),
            wasm("kith_plugin_lead_scoring.wasm"),
        ),
        "deal-fields" => (
            manifest("plugins/deal-fields"),
            wasm("kith_plugin_deal_fields.wasm"),
        ),
        "hostile" => (
            manifest("tests/plugins/hostile"),
            wasm("kith_test_hostile.wasm"),
        ),
        "sla-escalation" => (
            manifest("plugins/sla-escalation"),
            wasm("kith_plugin_sla_escalation.wasm"),
        ),
        "stale-deals" => (
            manifest("plugins/stale-deals"),
            wasm("kith_plugin_stale_deals.wasm"),
        ),
        "win-loss" => (
            manifest("plugins/win-loss"),
            wasm("kith_plugin_win_loss.wasm"),
        ),
        "probe" => (
            manifest("tests/plugins/workflow-probe"),
            wasm("kith_test_workflow.wasm"),
        ),
        other => panic!("no test plugin {other}"),
    }
}

const LEAD_GRANT: &str = "read:company,read:contact,read:deal,read:interaction";

/// Uploads a plugin as multipart: `manifest`, `wasm`, and `grant` when given.
pub(crate) async fn upload(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    manifest: &str,
    wasm: Vec<u8>,
    grant: Option<&str>,
) -> Reply {
    let mut form = Form::new()
        .part(
            "manifest",
            Part::text(manifest.to_owned()).file_name("kith-plugin.toml"),
        )
        .part("wasm", Part::bytes(wasm).file_name("plugin.wasm"));
    if let Some(g) = grant {
        form = form.text("grant", g.to_owned());
    }
    let response = s
        .client()
        .request(method, format!("{}{path}", s.url()))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(json!(format!("NOT JSON: {text}"))),
    )
}

pub(crate) async fn install(s: &TestServer, id: &str, grant: &str) -> Value {
    let (m, w) = plugin(id);
    let (status, body) = upload(
        s,
        reqwest::Method::POST,
        "/api/v1/plugins",
        &m,
        w,
        Some(grant),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// Polls `GET path` until `done` holds (scoring runs in the background).
pub(crate) async fn wait_for(s: &TestServer, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let (status, body) = s.get(path).await;
        if status == StatusCode::OK && done(&body) {
            return body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting on {path}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn install_needs_every_capability_granted_and_a_valid_upload() {
    let s = TestServer::start().await;
    let (m, w) = plugin("lead-scoring");
    let post = reqwest::Method::POST;

    let r = upload(&s, post.clone(), "/api/v1/plugins", &m, w.clone(), None).await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_granted",
        Some("grant"),
    );
    assert!(
        r.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("read:interaction")
    );
    let r = upload(
        &s,
        post.clone(),
        "/api/v1/plugins",
        &m,
        w.clone(),
        Some("read:contact"),
    )
    .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_granted",
        Some("grant"),
    );

    let bad = m.replace("version = \"0.1.0\"", "version = \"soon\"");
    let r = upload(
        &s,
        post.clone(),
        "/api/v1/plugins",
        &bad,
        w.clone(),
        Some(LEAD_GRANT),
    )
    .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_manifest",
        Some("manifest.version"),
    );
    let r = upload(
        &s,
        post.clone(),
        "/api/v1/plugins",
        "id = ",
        w.clone(),
        Some(LEAD_GRANT),
    )
    .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_manifest",
        Some("manifest.toml"),
    );
    let r = upload(
        &s,
        post.clone(),
        "/api/v1/plugins",
        &m,
        b"not wasm".to_vec(),
        Some(LEAD_GRANT),
    )
    .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_plugin",
        Some("wasm"),
    );
    let mut truncated = w.clone();
    truncated.truncate(w.len() / 2);
    let r = upload(
        &s,
        post.clone(),
        "/api/v1/plugins",
        &m,
        truncated,
        Some(LEAD_GRANT),
    )
    .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_plugin",
        Some("wasm"),
    );
    // The manifest of another plugin does not match this binary's version or needs.
    let (other, _) = plugin("deal-fields");
    let r = upload(
        &s,
        post.clone(),
        "/api/v1/plugins",
        &other,
        w.clone(),
        Some(LEAD_GRANT),
    )
    .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "manifest_mismatch",
        Some("manifest"),
    );
    // A part missing, or no multipart at all.
    let form = Form::new().text("manifest", m.clone());
    let response = s
        .client()
        .post(format!("{}/api/v1/plugins", s.url()))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let r = s.post("/api/v1/plugins", &json!({"manifest": "x"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_upload", None);

    // None of that installed anything.
    assert_eq!(s.get_ok("/api/v1/plugins").await["items"], json!([]));

    let p = install(&s, "lead-scoring", LEAD_GRANT).await;
    assert_eq!(p["status"], "active");
    assert_eq!(p["granted"].as_array().unwrap().len(), 4);
    assert_eq!(p["scorers"][0]["key"], "lead-scoring/lead");
    let r = upload(&s, post, "/api/v1/plugins", &m, w, Some(LEAD_GRANT)).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict", None);
    s.stop().await;
}

#[tokio::test]
async fn scores_are_stored_with_reasons_and_follow_changes_and_settings() {
    let s = TestServer::start().await;
    install(&s, "lead-scoring", LEAD_GRANT).await;
    let company = s
        .create("companies", json!({"name": "Acme", "size": 5000}))
        .await;
    let id = s
        .create_id(
            "contacts",
            json!({"first_name": "Ada", "email": "ada@acme.example", "title": "Engineer", "company_id": id_of(&company)}),
        )
        .await;
    let path = format!("/api/v1/contacts/{id}");
    let first = wait_for(&s, &path, |b| b["scores"]["lead-scoring/lead"].is_object()).await;
    let score = &first["scores"]["lead-scoring/lead"];
    let value = score["value"].as_u64().unwrap();
    assert!(
        score["reasons"].as_array().is_some_and(|r| !r.is_empty()),
        "{score}"
    );

    // A change to the contact rescores it: a senior title adds points.
    s.patch(&path, &json!({"title": "CEO"})).await;
    let after = wait_for(&s, &path, |b| {
        b["scores"]["lead-scoring/lead"]["value"]
            .as_u64()
            .unwrap_or(0)
            > value
    })
    .await;
    let ceo = after["scores"]["lead-scoring/lead"]["value"]
        .as_u64()
        .unwrap();

    // A linked record changing rescores it too: an open deal adds points.
    s.create(
        "deals",
        json!({"title": "Big one", "stage": "lead", "company_id": id_of(&company), "contact_ids": [id]}),
    )
    .await;
    wait_for(&s, &path, |b| {
        b["scores"]["lead-scoring/lead"]["value"]
            .as_u64()
            .unwrap_or(0)
            > ceo
    })
    .await;

    // Settings change the rules and trigger a rescore.
    let bad = s
        .patch(
            "/api/v1/plugins/lead-scoring/settings",
            &json!({"senior_points": "lots"}),
        )
        .await;
    assert_error(
        &bad,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("senior_points"),
    );
    let bad = s
        .patch(
            "/api/v1/plugins/lead-scoring/settings",
            &json!({"no_such": 1}),
        )
        .await;
    assert_error(
        &bad,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("no_such"),
    );
    let current = s.get_ok(&path).await["scores"]["lead-scoring/lead"]["value"]
        .as_u64()
        .unwrap();
    let (status, view) = s
        .patch(
            "/api/v1/plugins/lead-scoring/settings",
            &json!({"senior_points": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let setting = view["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "senior_points")
        .unwrap();
    assert_eq!(setting["value"], 0);
    wait_for(&s, &path, |b| {
        b["scores"]["lead-scoring/lead"]["value"]
            .as_u64()
            .unwrap_or(100)
            < current
    })
    .await;

    // Explicit rescoring reports what it did; a bad kind is refused.
    let (status, body) = s
        .post("/api/v1/scores/rescore?kind=contact", &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scored"], 1);
    let r = s
        .post("/api/v1/scores/rescore?kind=planet", &json!({}))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_query", Some("kind"));

    let metrics = s.get_ok("/api/v1/plugins/lead-scoring").await["metrics"].clone();
    assert!(metrics["calls"].as_u64().unwrap() >= 4, "{metrics}");
    assert_eq!(metrics["failures"], 0);
    assert!(metrics["p99_us"].as_u64().unwrap() >= metrics["p50_us"].as_u64().unwrap());
    s.stop().await;
}

#[tokio::test]
async fn plugin_fields_validate_and_compute_inside_the_write_path() {
    let s = TestServer::start().await;
    install(&s, "deal-fields", "").await;
    let defs = s.get_ok("/api/v1/fields/deal").await;
    let custom = defs["items"].as_array().unwrap();
    let field = |name: &str| custom.iter().find(|f| f["name"] == name).unwrap().clone();
    assert_eq!(field("next_step")["plugin"], "deal-fields");
    assert_eq!(field("days_in_stage")["computed"], true);
    assert_eq!(field("renewal_date")["type"], "date");

    // The validator refuses a Proposal deal without a next step, and nothing is stored.
    let r = s
        .post("/api/v1/deals", &json!({"title": "T", "stage": "proposal"}))
        .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("custom.next_step"),
    );
    assert!(
        r.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deal-fields")
    );
    assert_eq!(s.count("deals", "").await, 0);

    let deal = s
        .create("deals", json!({"title": "T", "stage": "lead"}))
        .await;
    assert_eq!(deal["custom"]["days_in_stage"], 0);
    assert_eq!(deal["custom"]["deal_age_days"], 0);
    let path = format!("/api/v1/deals/{}", id_of(&deal));
    let r = s.patch(&path, &json!({"stage": "proposal"})).await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("custom.next_step"),
    );
    assert_eq!(
        s.get_ok(&path).await["stage"],
        "lead",
        "a refused update changes nothing"
    );
    let (status, moved) = s
        .patch(
            &path,
            &json!({"stage": "proposal", "custom": {"next_step": "Send the quote"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["custom"]["next_step"], "Send the quote");

    // Computed fields cannot be set by hand, and admins cannot delete a plugin's field.
    let r = s
        .patch(&path, &json!({"custom": {"days_in_stage": 9}}))
        .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("custom.days_in_stage"),
    );
    let r = s.delete("/api/v1/fields/deal/next_step").await;
    assert_error(&r, StatusCode::CONFLICT, "conflict", Some("name"));
    let r = s
        .post(
            "/api/v1/fields/deal",
            &json!({"name": "next_step", "type": "text"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CONFLICT, "{}", r.1);

    // Settings: with the rule off, Negotiation needs no next step.
    let (status, _) = s
        .patch(
            "/api/v1/plugins/deal-fields/settings",
            &json!({"require_next_step_in": []}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let ok = s
        .post(
            "/api/v1/deals",
            &json!({"title": "U", "stage": "negotiation"}),
        )
        .await;
    assert_eq!(ok.0, StatusCode::CREATED, "{}", ok.1);

    // Disabled, it neither validates nor computes; enabled again, it does.
    s.patch(
        "/api/v1/plugins/deal-fields/settings",
        &json!({"require_next_step_in": ["proposal"]}),
    )
    .await;
    let (status, v) = s
        .post("/api/v1/plugins/deal-fields/disable", &json!({}))
        .await;
    assert_eq!(
        (status, v["status"].clone()),
        (StatusCode::OK, json!("disabled"))
    );
    let ok = s
        .post("/api/v1/deals", &json!({"title": "V", "stage": "proposal"}))
        .await;
    assert_eq!(ok.0, StatusCode::CREATED, "{}", ok.1);
    assert!(ok.1["custom"].get("deal_age_days").is_none());
    let (status, v) = s
        .post("/api/v1/plugins/deal-fields/enable", &json!({}))
        .await;
    assert_eq!(
        (status, v["status"].clone()),
        (StatusCode::OK, json!("active"))
    );
    let r = s
        .post("/api/v1/deals", &json!({"title": "W", "stage": "proposal"}))
        .await;
    assert_eq!(r.0, StatusCode::UNPROCESSABLE_ENTITY);

    // Uninstalled: the definitions go, the values stay readable as plain data.
    let (status, _) = s.delete("/api/v1/plugins/deal-fields").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &s.get("/api/v1/plugins/deal-fields").await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let kept = s.get_ok(&path).await;
    assert_eq!(kept["custom"]["next_step"], "Send the quote");
    let defs = s.get_ok("/api/v1/fields/deal").await;
    assert_eq!(defs["items"], json!([]));
    let r = s
        .post("/api/v1/deals", &json!({"title": "X", "stage": "proposal"}))
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    s.stop().await;
}

#[tokio::test]
async fn upgrade_in_place_keeps_settings_and_rejects_the_wrong_plugin() {
    let s = TestServer::start().await;
    install(&s, "deal-fields", "").await;
    s.patch(
        "/api/v1/plugins/deal-fields/settings",
        &json!({"require_next_step_in": ["lead"]}),
    )
    .await;
    let (m, w) = plugin("deal-fields");
    let put = reqwest::Method::PUT;
    let (status, v) = upload(
        &s,
        put.clone(),
        "/api/v1/plugins/deal-fields",
        &m,
        w.clone(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["settings"][0]["value"], json!(["lead"]));
    let r = s
        .post("/api/v1/deals", &json!({"title": "T", "stage": "lead"}))
        .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("custom.next_step"),
    );

    let (lm, lw) = plugin("lead-scoring");
    let r = upload(
        &s,
        put.clone(),
        "/api/v1/plugins/deal-fields",
        &lm,
        lw.clone(),
        Some(LEAD_GRANT),
    )
    .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "manifest_mismatch",
        Some("manifest"),
    );
    let r = upload(
        &s,
        put,
        "/api/v1/plugins/lead-scoring",
        &lm,
        lw,
        Some(LEAD_GRANT),
    )
    .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found", None);
    s.stop().await;
}

#[tokio::test]
async fn a_failing_plugin_is_contained_then_suspended_until_resumed() {
    let s = TestServer::start().await;
    install(&s, "hostile", "read:contact").await;

    // A validator that runs past its deadline or panics rejects the write, naming itself;
    // a concurrent request is served meanwhile, and nothing is stored.
    let looping = json!({"subject": "loop"});
    let slow = s.post("/api/v1/tickets", &looping);
    let other = s.get("/api/v1/health");
    let (slow, other) = tokio::join!(slow, other);
    assert_eq!(other.0, StatusCode::OK);
    assert_error(
        &slow,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("plugin"),
    );
    let message = slow.1["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("hostile") && message.contains("limit"),
        "{message}"
    );
    let r = s
        .post("/api/v1/tickets", &json!({"subject": "panic"}))
        .await;
    assert!(
        r.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gave up on purpose"),
        "{}",
        r.1
    );
    let r = s
        .post("/api/v1/tickets", &json!({"subject": "reject"}))
        .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("subject"),
    );
    assert_eq!(s.count("tickets", "").await, 0);
    let ok = s.post("/api/v1/tickets", &json!({"subject": "fine"})).await;
    assert_eq!(ok.0, StatusCode::CREATED);

    // Its scorer fails on every contact change; contacts are still written (fail open), and
    // after enough failures in a row it is suspended, with the reason shown.
    let mut v = Value::Null;
    for i in 0..40 {
        let r = s
            .post("/api/v1/contacts", &json!({"first_name": format!("P{i}")}))
            .await;
        assert_eq!(r.0, StatusCode::CREATED);
        // Give the background scorer time to fail on this one alone.
        tokio::time::sleep(Duration::from_millis(250)).await;
        v = s.get_ok("/api/v1/plugins/hostile").await;
        if v["status"] == "suspended" {
            break;
        }
    }
    assert_eq!(v["status"], "suspended", "{v}");
    assert!(
        v["status_reason"].as_str().unwrap().contains("in a row"),
        "{v}"
    );
    assert!(v["metrics"]["failures"].as_u64().unwrap() >= 5);
    // Suspended, it no longer validates: a "reject" ticket goes through.
    let r = s
        .post("/api/v1/tickets", &json!({"subject": "reject"}))
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);

    let (status, v) = s.post("/api/v1/plugins/hostile/resume", &json!({})).await;
    assert_eq!(
        (status, v["status"].clone()),
        (StatusCode::OK, json!("active"))
    );
    assert_eq!(v["metrics"]["consecutive_failures"], 0);
    let r = s
        .post("/api/v1/tickets", &json!({"subject": "reject"}))
        .await;
    assert_eq!(r.0, StatusCode::UNPROCESSABLE_ENTITY);
    s.stop().await;
}

#[tokio::test]
async fn installed_plugins_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), false).await.unwrap();
    install(&s, "deal-fields", "").await;
    s.post("/api/v1/plugins/deal-fields/disable", &json!({}))
        .await;
    s.post("/api/v1/plugins/deal-fields/enable", &json!({}))
        .await;
    s.stop().await;

    let s = TestServer::start_in(dir.path(), false).await.unwrap();
    let list = s.get_ok("/api/v1/plugins").await;
    assert_eq!(list["items"][0]["id"], "deal-fields");
    assert_eq!(list["items"][0]["status"], "active");
    let r = s
        .post("/api/v1/deals", &json!({"title": "T", "stage": "proposal"}))
        .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("custom.next_step"),
    );
    // Compiled code was cached by content hash, so this start did not compile it again.
    let cached = std::fs::read_dir(dir.path().join("plugin-cache"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .count();
    assert_eq!(cached, 1);
    s.stop().await;
}

#[tokio::test]
async fn the_cli_installs_lists_disables_rescores_and_removes_offline() {
    use kith_host::admin;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A plugin directory as an author has it: manifest plus built binary.
    let plugin_dir = dir.path().join("lead-scoring");
    std::fs::create_dir_all(&plugin_dir).unwrap();
    let (m, w) = plugin("lead-scoring");
    std::fs::write(plugin_dir.join("kith-plugin.toml"), &m).unwrap();
    std::fs::write(plugin_dir.join("lead_scoring.wasm"), &w).unwrap();

    // Not a terminal and no --yes: the grant is not assumed.
    let e = admin::install(&data, &plugin_dir, None, admin::Grant::Refuse, false).unwrap_err();
    assert!(e.to_string().contains("--yes"), "{e}");
    let no = |_: &str| false;
    let e = admin::install(&data, &plugin_dir, None, admin::Grant::Ask(&no), false).unwrap_err();
    assert!(e.to_string().contains("not granted"), "{e}");
    assert!(admin::list(&data).unwrap().contains("no plugins"));
    let yes = |what: &str| what.contains("read:contact");
    let out = admin::install(&data, &plugin_dir, None, admin::Grant::Ask(&yes), false).unwrap();
    assert!(out.contains("installed lead-scoring 0.1.0"), "{out}");
    assert!(admin::list(&data).unwrap().contains("lead-scoring"));
    assert!(
        admin::change(&data, "lead-scoring", "disable")
            .unwrap()
            .contains("disabled")
    );
    assert!(
        admin::change(&data, "lead-scoring", "enable")
            .unwrap()
            .contains("active")
    );
    let out = admin::settings(&data, "lead-scoring", &["senior_points=30".to_owned()]).unwrap();
    assert!(out.contains("senior_points = 30"), "{out}");
    assert!(admin::settings(&data, "lead-scoring", &["senior_points=x".to_owned()]).is_err());
    let out = admin::limits(&data, "lead-scoring", Some(50), None, false).unwrap();
    assert!(out.contains("up to 50 ms"), "{out}");
    assert!(admin::limits(&data, "lead-scoring", Some(5000), None, false).is_err());
    let out = admin::limits(&data, "lead-scoring", None, None, true).unwrap();
    assert!(out.contains("server's limits"), "{out}");

    // Seed a few contacts through a server, then rescore offline.
    let s = TestServer::start_in(&data, false).await.unwrap();
    for i in 0..3 {
        s.create("contacts", json!({"first_name": format!("C{i}")}))
            .await;
    }
    // While the server runs, the CLI refuses and says why.
    let e = admin::list(&data).unwrap_err();
    assert!(e.to_string().contains("running"), "{e}");
    s.stop().await;
    let out = admin::rescore(&data, Some("contact")).unwrap();
    assert!(out.contains("rescored 3 records"), "{out}");
    assert!(admin::rescore(&data, Some("planet")).is_err());

    assert!(
        admin::change(&data, "lead-scoring", "remove")
            .unwrap()
            .contains("removed")
    );
    assert!(admin::list(&data).unwrap().contains("no plugins"));
    assert!(admin::change(&data, "lead-scoring", "remove").is_err());
}

#[tokio::test]
async fn demo_installs_the_bundled_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), true).await.unwrap();
    let list = s.get_ok("/api/v1/plugins").await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "deal-fields",
            "lead-scoring",
            "sla-escalation",
            "stale-deals",
            "win-loss"
        ]
    );
    let deals = s.get_ok("/api/v1/deals?stage=proposal&limit=5").await;
    for d in deals["items"].as_array().unwrap() {
        assert!(d["custom"]["next_step"].is_string(), "{d}");
        assert!(d["custom"]["deal_age_days"].is_number(), "{d}");
    }
    let contact = s.get_ok("/api/v1/contacts?limit=1").await["items"][0].clone();
    wait_for(&s, &format!("/api/v1/contacts/{}", id_of(&contact)), |c| {
        c["scores"]["lead-scoring/lead"]["value"].is_number()
    })
    .await;
    s.stop().await;
}

#[tokio::test]
async fn a_scaffolded_plugin_passes_its_test_builds_to_wasm_and_installs() {
    use kith_host::plugin::scaffold::{ScaffoldOptions, SdkSource, scaffold};
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("profile-check");
    scaffold(&ScaffoldOptions {
        name: "profile-check".to_owned(),
        dir: crate_dir.clone(),
        sdk: SdkSource::Path(root().join("sdk").canonicalize().unwrap()),
    })
    .unwrap();
    // Share the wasm build cache with tests/build.rs, as an author's own target dir would be.
    let target = root().join("target").join("wasm-scaffold");
    let cargo = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO"))
            .args(args)
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cargo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cargo(&["test", "--quiet"]);
    cargo(&["build", "--release", "--quiet", "--target", "wasm32-wasip2"]);
    let wasm = target.join("wasm32-wasip2/release/kith_plugin_profile_check.wasm");
    let data = dir.path().join("data");
    let out = kith_host::admin::install(
        &data,
        &crate_dir,
        Some(&wasm),
        kith_host::admin::Grant::Yes,
        false,
    )
    .unwrap();
    assert!(out.contains("installed profile-check 0.1.0"), "{out}");
}
