//! The OpenAPI document: it is 3.1, covers every record kind, its references resolve, and
//! every route it lists exists — each listed method on each listed path is answered with
//! something other than 404 or 405.

use reqwest::{Body, Method, StatusCode};
use serde_json::{Value, json};

use crate::support::TestServer;

const KINDS: [&str; 6] = [
    "contacts",
    "companies",
    "deals",
    "tickets",
    "interactions",
    "tasks",
];

/// Every `$ref` anywhere in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_only_routes_that_exist() {
    let s = TestServer::start().await;
    let doc = s.get_ok("/api/v1/openapi.json").await;
    assert_eq!(doc["openapi"], json!("3.1.0"));
    assert!(doc["info"]["title"].is_string());
    let paths = doc["paths"].as_object().unwrap();
    for kind in KINDS {
        for path in [
            format!("/api/v1/{kind}"),
            format!("/api/v1/{kind}/count"),
            format!("/api/v1/{kind}/{{id}}"),
            format!("/api/v1/{kind}/{{id}}/timeline"),
        ] {
            assert!(paths.contains_key(&path), "no {path} in the document");
        }
    }
    for path in [
        "/api/v1/health",
        "/api/v1/events",
        "/api/v1/pipelines",
        "/api/v1/fields/{kind}",
    ] {
        assert!(paths.contains_key(path), "no {path} in the document");
    }
    // Every API route the server has is documented, with the least role the server enforces.
    for route in kith_host::api::route_table() {
        if !route.path.starts_with("/api/") {
            continue;
        }
        let method = route.method.as_str().to_ascii_lowercase();
        let op = &doc["paths"][&route.path][&method];
        assert!(
            op.is_object(),
            "{} {} is not documented",
            route.method,
            route.path
        );
        assert_eq!(
            op["x-kith-role"],
            json!(route.need.name()),
            "{} {}",
            route.method,
            route.path
        );
    }
    assert_eq!(doc["paths"]["/api/v1/health"]["get"]["security"], json!([]));
    assert!(doc["components"]["securitySchemes"]["token"].is_object());

    // Every reference points at a schema that is there.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("odd $ref {r}"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "$ref {r} resolves to nothing"
        );
    }

    // Every record kind's input schema lists exactly the writable fields the server accepts:
    // creating with each documented property must not be refused as an unknown field.
    for kind in KINDS {
        let singular = match kind {
            "companies" => "Company".to_owned(),
            k => {
                let one = k.strip_suffix('s').unwrap();
                one[..1].to_uppercase() + &one[1..]
            }
        };
        let schema = &doc["components"]["schemas"][format!("{singular}Input")];
        let props = schema["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("no {singular}Input"));
        for prop in props.keys() {
            let (status, body) = s
                .post(&format!("/api/v1/{kind}"), &json!({ prop: null }))
                .await;
            assert_ne!(
                body["error"]["code"],
                json!("unknown_field"),
                "{kind}: documented field {prop} is unknown to the server ({status})"
            );
        }
    }

    // One real record of every kind, a custom field and the default pipeline give every
    // path parameter a value that exists.
    let (status, _) = s
        .post(
            "/api/v1/fields/contacts",
            &json!({ "name": "probe", "type": "text" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let contact = s
        .create_id("contacts", json!({ "first_name": "Probe" }))
        .await;
    let mut ids = vec![("contacts", contact.clone())];
    ids.push((
        "companies",
        s.create_id("companies", json!({ "name": "Probe Inc" }))
            .await,
    ));
    ids.push((
        "deals",
        s.create_id("deals", json!({ "title": "Probe", "stage": "lead" }))
            .await,
    ));
    ids.push((
        "tickets",
        s.create_id("tickets", json!({ "subject": "Probe" })).await,
    ));
    ids.push((
        "interactions",
        s.create_id(
            "interactions",
            json!({ "kind": "note", "contact_id": contact }),
        )
        .await,
    ));
    ids.push((
        "tasks",
        s.create_id("tasks", json!({ "title": "Probe", "contact_id": contact }))
            .await,
    ));
    crate::lifecycle::install(&s, "deal-fields", "").await;
    ids.push(("plugins", "deal-fields".to_owned()));
    ids.push(("reports", "pipeline".to_owned()));
    // Accounts: the admin themself, a token of theirs that is not the one this client sends
    // (the documented DELETE revokes it), and a team whose key is the `{key}` every path gets.
    let me = s.get_ok("/api/v1/me").await;
    ids.push(("users", me["user"]["id"].as_str().unwrap().to_owned()));
    let (status, token) = s.post("/api/v1/tokens", &json!({ "name": "probe" })).await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    ids.push(("tokens", token["token"]["id"].as_str().unwrap().to_owned()));
    let (status, team) = s
        .send(
            Method::PUT,
            "/api/v1/teams/default",
            Some(Body::from(r#"{"name": "Default"}"#)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{team}");

    let concrete = |path: &str| -> String {
        let kind = path
            .trim_start_matches("/api/v1/")
            .split('/')
            .next()
            .unwrap_or("");
        let id = ids
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, id)| id.as_str())
            .unwrap_or("");
        path.replace("{id}", id)
            .replace("{kind}", "contacts")
            .replace("{key}", "default")
            .replace("{name}", "probe")
    };
    // Deletes go last so that they do not remove what the other calls need, and the contact
    // goes very last: deleting it also deletes the interaction and task linked only to it.
    let mut calls: Vec<(Method, String, String)> = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            if method == "parameters" {
                continue;
            }
            assert!(
                ["get", "post", "put", "patch", "delete"].contains(&method.as_str()),
                "{path}: unexpected key {method}"
            );
            let m: Method = method.to_uppercase().parse().unwrap();
            calls.push((m, path.clone(), concrete(path)));
        }
    }
    calls.sort_by_key(|(m, template, _)| {
        (
            *m == Method::DELETE,
            template.as_str() == "/api/v1/contacts/{id}",
        )
    });
    assert!(calls.len() >= KINDS.len() * 6, "{} operations", calls.len());
    for (method, template, url) in calls {
        assert!(
            !url.contains('{'),
            "{template}: unfilled parameter in {url}"
        );
        let body =
            matches!(method, Method::POST | Method::PUT | Method::PATCH).then(|| Body::from("{}"));
        let (status, reply) = s.send(method.clone(), &url, body).await;
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {template} (as {url}) is documented but answered {status} {reply}"
        );
        assert!(
            !status.is_server_error(),
            "{method} {url}: {status} {reply}"
        );
    }
    s.stop().await;
}
