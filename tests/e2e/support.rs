//! Shared test support: [`TestServer`] starts a real Kith server on `127.0.0.1:0` with its own
//! temporary data directory and talks to it over HTTP, returning `(status, JSON body)` pairs so
//! tests can assert exact status codes and error shapes.

use std::net::SocketAddr;
use std::path::Path;

use std::sync::Arc;

use kith_core::{ManualClock, Timestamp};
use kith_host::{Running, ServerConfig, StartError};
use reqwest::{Body, Client, Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

/// A status code and the parsed JSON body (`null` for an empty body).
pub type Reply = (StatusCode, Value);

/// A running server plus an HTTP client pointed at it.
pub struct TestServer {
    running: Running,
    client: Client,
    /// The admin API token the client sends.
    token: String,
    /// Kept so the data directory lives exactly as long as the server that owns it.
    _dir: Option<TempDir>,
}

impl TestServer {
    /// Starts a server on a fresh, empty data directory.
    pub async fn start() -> TestServer {
        let dir = TempDir::new().expect("create a temporary data directory");
        let mut server = TestServer::start_in(dir.path(), false)
            .await
            .expect("start a server");
        server._dir = Some(dir);
        server
    }

    /// Starts a server on `dir`, which the caller keeps alive (for restart tests).
    pub async fn start_in(dir: &Path, demo: bool) -> Result<TestServer, StartError> {
        let running = kith_host::start(config(dir, demo)).await?;
        Ok(TestServer::signed_in(running))
    }

    /// Starts a server on `dir` whose clock is `clock` (tests that move time), the caller
    /// keeping `dir` alive.
    pub async fn start_with_clock(dir: &Path, clock: Arc<ManualClock>) -> TestServer {
        let mut config = config(dir, false);
        config.clock = clock;
        let running = kith_host::start(config).await.expect("start a server");
        TestServer::signed_in(running)
    }

    /// Wraps a running server with a client that sends an admin's API token on every request
    /// (every route but health needs one).
    fn signed_in(running: Running) -> TestServer {
        let secret = admin_token(&running.store);
        let client = client_with(&secret);
        TestServer {
            running,
            client,
            token: secret,
            _dir: None,
        }
    }

    /// The admin API token this server's client sends (it lives in the data directory, so it
    /// keeps working after a restart).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The running server (its store, its plugins).
    pub fn running(&self) -> &Running {
        &self.running
    }

    /// Stops the server gracefully; its data directory (if it owns one) is removed.
    pub async fn stop(self) {
        self.running.stop().await.expect("the server stops cleanly");
    }

    /// The base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        self.running.url()
    }

    /// The HTTP client, sending the admin token (cheap to clone: it shares one pool).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Sends a request with an optional raw body; `path` starts with `/` and may carry a query.
    pub async fn send(&self, method: Method, path: &str, body: Option<Body>) -> Reply {
        send(&self.client, &self.url(), method, path, body).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::POST, path, Some(Body::from(body.to_string())))
            .await
    }

    /// `POST path` with a body sent exactly as given.
    pub async fn post_raw(&self, path: &str, body: impl Into<Body>) -> Reply {
        self.send(Method::POST, path, Some(body.into())).await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::PATCH, path, Some(Body::from(body.to_string())))
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None).await
    }

    /// Creates a record of `kind` (plural, as in the URL), asserting 201; returns it.
    pub async fn create(&self, kind: &str, body: Value) -> Value {
        let (status, record) = self.post(&format!("/api/v1/{kind}"), &body).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "creating {kind} {body}: {record}"
        );
        record
    }

    /// Creates a user with `email` and `role` (and `team`, if given) through the admin API,
    /// asserting 201; returns the user as the API shows it.
    pub async fn user(&self, email: &str, role: &str, team: Option<&str>) -> Value {
        let body = json!({ "email": email, "name": email, "role": role, "team": team });
        let (status, reply) = self.post("/api/v1/users", &body).await;
        assert_eq!(status, StatusCode::CREATED, "creating user {body}: {reply}");
        reply["user"].clone()
    }

    /// The id of a freshly created record of `kind`.
    pub async fn create_id(&self, kind: &str, body: Value) -> String {
        id_of(&self.create(kind, body).await)
    }

    /// `GET path`, asserting 200.
    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// `GET /api/v1/{kind}/count?{query}`.
    pub async fn count(&self, kind: &str, query: &str) -> u64 {
        let body = self.get_ok(&format!("/api/v1/{kind}/count?{query}")).await;
        body["count"].as_u64().expect("count is a number")
    }

    /// Every item of a list, following `next_cursor` page by page. `path` must carry a query
    /// string (possibly just `?limit=N`). Fails if a page repeats or never ends.
    pub async fn list_all(&self, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1_000 {
            let page_path = match &cursor {
                Some(c) => format!("{path}&cursor={c}"),
                None => path.to_owned(),
            };
            let page = self.get_ok(&page_path).await;
            items.extend(
                page["items"]
                    .as_array()
                    .expect("items is a list")
                    .iter()
                    .cloned(),
            );
            match page["next_cursor"].as_str() {
                Some(next) => {
                    assert_ne!(cursor.as_deref(), Some(next), "the cursor did not advance");
                    cursor = Some(next.to_owned());
                }
                None => {
                    assert!(page["next_cursor"].is_null(), "next_cursor: {page}");
                    return items;
                }
            }
        }
        panic!("{path}: more than 1,000 pages");
    }

    /// `GET /api/v1/health`.
    pub async fn health(&self) -> Value {
        self.get_ok("/api/v1/health").await
    }

    /// The whole event log, oldest first, following `next_after`.
    pub async fn events(&self) -> Vec<Value> {
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .get_ok(&format!("/api/v1/events?after={after}&limit=1000"))
                .await;
            let items = page["items"].as_array().expect("items is a list");
            if items.is_empty() {
                return events;
            }
            events.extend(items.iter().cloned());
            let next = page["next_after"].as_u64().expect("next_after is a number");
            assert!(next > after, "next_after did not advance: {page}");
            after = next;
        }
    }
}

/// An HTTP client that sends `token` on every request.
pub fn client_with(token: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .expect("a token is a valid header value"),
    );
    Client::builder()
        .default_headers(headers)
        .build()
        .expect("build an HTTP client")
}

/// A new API token for the first active admin of `store` (the one a first start creates).
pub fn admin_token(store: &kith_core::Store) -> String {
    let dir = store.directory();
    let admin = dir
        .users()
        .into_iter()
        .find(|u| u.active && u.role == kith_core::Role::Admin)
        .expect("a first start creates an admin");
    token_for(store, admin.id)
}

/// A new API token for user `id`, made directly in the store.
pub fn token_for(store: &kith_core::Store, id: kith_core::Id) -> String {
    let secret = kith_core::account::new_secret("kith_");
    let token = kith_core::NewToken {
        user: id,
        name: "test".to_owned(),
        hash: kith_core::account::hash_secret(&secret),
        expires_at: None,
    };
    store
        .execute(kith_core::Command::CreateToken(token), "test")
        .expect("create a token");
    secret
}

/// The sequence numbers of events, in order.
pub fn seqs(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq is a number"))
        .collect()
}

/// The configuration every test server uses: loopback, any free port.
pub fn config(dir: &Path, demo: bool) -> ServerConfig {
    let mut config = ServerConfig::new(dir, SocketAddr::from(([127, 0, 0, 1], 0)));
    config.demo = demo;
    config
}

/// Sends one request with `client` to `base` + `path` and reads the JSON reply. A body that is
/// not JSON comes back as a string tagged `NOT JSON`, so shape assertions fail visibly.
pub async fn send(
    client: &Client,
    base: &str,
    method: Method,
    path: &str,
    body: Option<Body>,
) -> Reply {
    let mut request = client.request(method.clone(), format!("{base}{path}"));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status();
    let text = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"));
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| json!(format!("NOT JSON: {text}")))
    };
    (status, json)
}

/// Asserts that a reply is the API's error shape with this status, code and field (`None`:
/// the error names no field).
#[track_caller]
pub fn assert_error(reply: &Reply, status: StatusCode, code: &str, field: Option<&str>) {
    let (got, body) = reply;
    assert_eq!(*got, status, "status of {body}");
    let error = &body["error"];
    assert_eq!(error["code"], json!(code), "code of {body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message of {body}"
    );
    match field {
        Some(f) => assert_eq!(error["field"], json!(f), "field of {body}"),
        None => assert!(error.get("field").is_none(), "unexpected field in {body}"),
    }
}

/// A record's id.
#[track_caller]
pub fn id_of(record: &Value) -> String {
    record["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {record}"))
        .to_owned()
}

/// The ids of a list of records, in order.
pub fn ids(records: &[Value]) -> Vec<String> {
    records.iter().map(id_of).collect()
}

/// Parses an RFC 3339 timestamp from a JSON value.
#[track_caller]
pub fn time(v: &Value) -> Timestamp {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    kith_core::schema::parse_timestamp(s).unwrap_or_else(|e| panic!("{e}"))
}

/// Signs in through the sign-in page as a browser does (fetch the form for its CSRF cookie
/// and field, post it) and returns the `kith_session` cookie's value, or the status the
/// sign-in answered when it did not redirect with a session.
pub async fn sign_in(base: &str, email: &str, password: &str) -> Result<String, StatusCode> {
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("build an HTTP client");
    let form = client
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("GET /login");
    let csrf_cookie = set_cookie(&form, "kith_login_csrf").expect("the form sets its CSRF cookie");
    let page = form.text().await.expect("the sign-in page");
    let field = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form carries a csrf field")
        .to_owned();
    let reply = client
        .post(format!("{base}/login"))
        .header("cookie", format!("kith_login_csrf={csrf_cookie}"))
        .form(&[("email", email), ("password", password), ("csrf", &field)])
        .send()
        .await
        .expect("POST /login");
    match set_cookie(&reply, "kith_session") {
        Some(session) if reply.status() == StatusCode::SEE_OTHER && !session.is_empty() => {
            Ok(session)
        }
        _ => Err(reply.status()),
    }
}

/// The value `response` sets for cookie `name`, if it sets it.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .map(|rest| rest.split(';').next().unwrap_or("").to_owned())
}
