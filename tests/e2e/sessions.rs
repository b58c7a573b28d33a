//! Sign-in sessions and API tokens end to end, with the defences around them: tokens stop
//! working when revoked, expired or their user is deactivated; secrets never reach the data
//! directory in clear; cookie-signed changes need the session's CSRF token; sign-in always
//! issues a fresh session; sign-out and password changes end sessions; repeated failed
//! sign-ins are throttled; every answer carries the security headers and pages escape what
//! people typed.
//!
//! Pages are driven with a client that follows no redirects and keeps no cookie jar: every
//! cookie a request carries is written out in the test, so it is plain which session a
//! request presents (the fixation tests depend on that).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kith_core::ManualClock;
use kith_core::account::hash_secret;
use kith_host::api::auth::{CSRF_HEADER, SESSION_COOKIE, SESSION_LIFETIME, Throttle};
use reqwest::header::{self, HeaderMap};
use reqwest::{Body, Client, Method, StatusCode, redirect};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{Reply, TestServer, assert_error, client_with, config, id_of, send};

/// The cookie holding the sign-in form's CSRF token (the web module keeps the name private).
const LOGIN_CSRF_COOKIE: &str = "kith_login_csrf";

/// A password that meets the length rule, for people the tests sign in as.
const PASSWORD: &str = "correct-horse-battery-staple";

/// A well-formed id no token has.
const UNKNOWN_ID: &str = "01890a5d-ac96-774b-bcce-b302099a8057";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_stop_working_when_revoked_expired_or_their_user_is_deactivated() {
    let dir = TempDir::new().unwrap();
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let s = TestServer::start_with_clock(dir.path(), clock.clone()).await;
    let base = s.url();
    let ann = id_of(&s.user("ann@example.com", "agent", None).await);

    // An admin may make a token for someone else; it acts as that person.
    let (first, first_secret) = new_token(
        &s.client(),
        &base,
        json!({ "name": "ann's import", "user": ann }),
    )
    .await;
    let (status, me) = whoami(&base, &first_secret).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["id"], json!(ann));
    assert_eq!(me["signed_in_with"], json!("token"));
    assert_eq!(me["token_id"], first["id"]);
    assert!(
        me["csrf_token"].is_null(),
        "a token needs no CSRF token: {me}"
    );

    // Ann makes her own: one for good, one for a day.
    let ann_client = client_with(&first_secret);
    let (_, forever_secret) = new_token(&ann_client, &base, json!({ "name": "forever" })).await;
    let (daily, daily_secret) = new_token(
        &ann_client,
        &base,
        json!({ "name": "for a day", "expires_in_days": 1 }),
    )
    .await;
    assert!(daily["expires_at"].is_string(), "{daily}");
    let secrets = [&first_secret, &forever_secret, &daily_secret];

    // The list shows every token but never a secret, nor the hash it is looked up by.
    let (status, list) = send(&ann_client, &base, Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list["items"].as_array().expect("items is a list");
    assert_eq!(items.len(), 3, "{list}");
    for t in items {
        assert!(t.get("secret").is_none() && t.get("hash").is_none(), "{t}");
    }
    let (_, all) = s.get("/api/v1/tokens?user=all").await;
    let (_, one) = s.get(&format!("/api/v1/tokens?user={ann}")).await;
    for shown in [list.to_string(), all.to_string(), one.to_string()] {
        for secret in secrets {
            assert!(!shown.contains(secret_body(secret)), "a secret in {shown}");
        }
    }

    // A revoked token answers 401 at once; the others go on working.
    let (status, revoked) = send(
        &client_with(&forever_secret),
        &base,
        Method::DELETE,
        &format!("/api/v1/tokens/{}", id_of(&first)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    assert!(revoked.get("secret").is_none() && revoked.get("hash").is_none());
    assert_refused(&whoami(&base, &first_secret).await, "revoked");
    assert_eq!(whoami(&base, &forever_secret).await.0, StatusCode::OK);
    assert_eq!(whoami(&base, &daily_secret).await.0, StatusCode::OK);

    // Expiry follows the server's clock.
    clock.advance(chrono::Duration::days(2));
    assert_refused(&whoami(&base, &daily_secret).await, "expired");
    assert_eq!(whoami(&base, &forever_secret).await.0, StatusCode::OK);

    // A deactivated user's tokens stop working with them.
    let (status, body) = s
        .patch(&format!("/api/v1/users/{ann}"), &json!({ "active": false }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_refused(&whoami(&base, &forever_secret).await, "deactivated");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_admins_make_and_revoke_only_their_own_tokens() {
    let s = TestServer::start().await;
    let base = s.url();
    let ann = id_of(&s.user("ann@example.com", "manager", None).await);
    let bob = id_of(&s.user("bob@example.com", "manager", None).await);
    let (ann_token, ann_secret) =
        new_token(&s.client(), &base, json!({ "name": "ann's", "user": ann })).await;
    let (_, bob_secret) =
        new_token(&s.client(), &base, json!({ "name": "bob's", "user": bob })).await;
    let bob_client = client_with(&bob_secret);
    let post = |body: Value| {
        let client = bob_client.clone();
        let base = base.clone();
        async move {
            send(
                &client,
                &base,
                Method::POST,
                "/api/v1/tokens",
                Some(Body::from(body.to_string())),
            )
            .await
        }
    };

    // Bob cannot make a token that acts as Ann, whether he names her by id or by email.
    for who in [ann.as_str(), "ann@example.com"] {
        let reply = post(json!({ "name": "sneaky", "user": who })).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    }
    // Naming himself is fine.
    let (status, made) = post(json!({ "name": "mine", "user": bob })).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");

    // Ann's token is not found for Bob, exactly like a token that does not exist, so he
    // cannot even learn it is there; and it goes on working.
    for id in [id_of(&ann_token), UNKNOWN_ID.to_owned()] {
        let reply = send(
            &bob_client,
            &base,
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            None,
        )
        .await;
        assert_error(&reply, StatusCode::NOT_FOUND, "not_found", None);
    }
    assert_eq!(whoami(&base, &ann_secret).await.0, StatusCode::OK);

    // Bob sees only his own tokens.
    for query in ["?user=all".to_owned(), format!("?user={ann}")] {
        let reply = send(
            &bob_client,
            &base,
            Method::GET,
            &format!("/api/v1/tokens{query}"),
            None,
        )
        .await;
        assert_error(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    }
    let (status, list) = send(&bob_client, &base, Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let owners: Vec<&Value> = list["items"]
        .as_array()
        .expect("items is a list")
        .iter()
        .map(|t| &t["user"])
        .collect();
    assert_eq!(owners, vec![&json!(bob), &json!(bob)], "{list}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_data_directory_in_clear() {
    let dir = TempDir::new().unwrap();
    let s = TestServer::start_in(dir.path(), false).await.unwrap();
    let b = Browser::new(&s.url());
    let (admin_email, admin_password) = s
        .running()
        .first_admin
        .clone()
        .expect("a first start shows the new admin's password");
    let mut secrets = vec![s.token().to_owned(), admin_password.clone()];

    // People with passwords an admin chose, and one with a generated password.
    let first = "Tr0ub4dor&3-alices-first";
    user_with_password(&s, "alice@example.com", "Alice Liddell", "agent", first).await;
    let (status, made) = s
        .post(
            "/api/v1/users",
            &json!({ "email": "bob@example.com", "name": "Bob", "role": "viewer" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let bob = id_of(&made["user"]);
    let generated = made["password"]
        .as_str()
        .expect("a generated password is shown once")
        .to_owned();
    secrets.extend([first.to_owned(), generated.clone()]);

    // Sessions, and a wrong guess.
    secrets.push(b.sign_in("bob@example.com", &generated).await);
    secrets.push(b.sign_in(&admin_email, &admin_password).await);
    let guess = "not-alices-password-at-all";
    let page = b.sign_in_with("alice@example.com", guess, &[]).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    secrets.push(guess.to_owned());
    let current = b.sign_in("alice@example.com", first).await;
    let other = b.sign_in("alice@example.com", first).await;
    secrets.extend([current.clone(), other]);
    let csrf = b.csrf(&current).await;

    // Tokens made by an admin, over the API with a session, and with the account page.
    let (_, for_alice) = new_token(
        &s.client(),
        &s.url(),
        json!({ "name": "for alice", "user": "alice@example.com" }),
    )
    .await;
    let (status, made) = b
        .api(
            Method::POST,
            "/api/v1/tokens",
            Some(&current),
            Some(&csrf),
            Some(&json!({ "name": "alice's own" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let own = made["secret"].as_str().expect("a secret").to_owned();
    let page = b
        .post_form(
            "/account/tokens",
            Some(&current),
            &[
                ("csrf", &csrf),
                ("name", "alice's form"),
                ("expires_in_days", "30"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let from_form = shown_secret(&page).expect("the page shows the new token once");
    for token in [&for_alice, &own, &from_form] {
        assert_eq!(whoami(&s.url(), token).await.0, StatusCode::OK);
    }
    secrets.extend([for_alice.clone(), own, from_form]);

    // Password changes: over the API, with the form, and by an admin.
    let second = "second-Passw0rd-over-the-api";
    let (status, body) = b
        .api(
            Method::POST,
            "/api/v1/me/password",
            Some(&current),
            Some(&csrf),
            Some(&json!({ "current_password": first, "new_password": second })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let third = "third-Passw0rd-with-the-form";
    let page = b
        .post_form(
            "/account/password",
            Some(&current),
            &[
                ("csrf", &csrf),
                ("current_password", second),
                ("new_password", third),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let fourth = "fourth-Passw0rd-set-by-an-admin";
    let (status, body) = s
        .patch(
            &format!("/api/v1/users/{bob}"),
            &json!({ "password": fourth }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let live = b.sign_in("alice@example.com", third).await;
    b.sign_in("bob@example.com", fourth).await;
    secrets.extend([
        second.to_owned(),
        third.to_owned(),
        fourth.to_owned(),
        live.clone(),
    ]);
    s.stop().await;

    let files: Vec<(PathBuf, String)> = files_under(dir.path())
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            // Lossy decoding keeps every ASCII byte where it was, and secrets are ASCII, so a
            // secret in the bytes is a secret in the text (and `str::contains` is fast).
            (path, String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect();
    // The scan does see what is stored in clear: emails, names, and the hashes live tokens
    // and sessions are stored under. So a secret stored in clear would be seen too.
    for stored in [
        "alice@example.com".to_owned(),
        "Alice Liddell".to_owned(),
        hash_secret(&for_alice),
        hash_secret(&live),
    ] {
        assert!(
            files.iter().any(|(_, text)| text.contains(&stored)),
            "'{stored}' is not in any of {:?}",
            files.iter().map(|(p, _)| p).collect::<Vec<_>>()
        );
    }
    let mut found = Vec::new();
    for secret in &secrets {
        for needle in [secret.as_str(), secret_body(secret)] {
            for (path, text) in &files {
                if text.contains(needle) {
                    found.push(format!("'{needle}' in {}", path.display()));
                }
            }
        }
    }
    found.dedup();
    assert!(found.is_empty(), "secrets stored in clear: {found:#?}");
}

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// From the first call on, every log line Kith (and the HTTP layers under it) makes, at any
/// level, in every test of this binary. A global subscriber rather than a per-thread one:
/// tracing caches per call site whether anyone listens, and with other tests running at the
/// same time a thread-local subscriber misses lines.
fn captured_logs() -> &'static Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "kith_host=trace,kith_core=trace,tower_http=trace,axum=trace",
            ))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test installs a global subscriber");
        captured
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs_in_clear() {
    let logs = captured_logs();
    let s = TestServer::start().await;
    let admin_token = s.token().to_owned();
    let b = Browser::new(&s.url());
    let pia = "pia@example.com";
    let (guess, new_password) = ("a-wrong-guess-for-pia", "pia-has-a-new-password");
    user_with_password(&s, pia, "Pia", "agent", PASSWORD).await;
    let refused = b.sign_in_with(pia, guess, &[]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    let session = b.sign_in(pia, PASSWORD).await;
    let csrf = b.csrf(&session).await;
    let (status, reply) = b
        .api(
            Method::POST,
            "/api/v1/tokens",
            Some(&session),
            Some(&csrf),
            Some(&json!({ "name": "a script" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let token = reply["secret"].as_str().unwrap().to_owned();
    assert_eq!(whoami(&s.url(), &token).await.0, StatusCode::OK);
    let (status, reply) = b
        .api(
            Method::POST,
            "/api/v1/me/password",
            Some(&session),
            Some(&csrf),
            Some(&json!({ "current_password": PASSWORD, "new_password": new_password })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{reply}");
    s.stop().await;

    // Lines of every test since capturing began: none of them may show these secrets.
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    // The capture worked: what these requests log is there...
    for expected in [
        "failed sign-in",
        "signed in",
        "/api/v1/tokens",
        "/api/v1/me/password",
    ] {
        assert!(
            text.contains(expected),
            "no {expected:?} in the logs:\n{text}"
        );
    }
    // ...and no secret is.
    for secret in [
        PASSWORD,
        new_password,
        guess,
        &session,
        &csrf,
        &token,
        secret_body(&token),
        &admin_token,
        secret_body(&admin_token),
    ] {
        assert!(!text.contains(secret), "{secret:?} is in the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_signed_api_changes_need_the_session_csrf_token() {
    let s = TestServer::start().await;
    let b = Browser::new(&s.url());
    let carol = user_with_password(&s, "carol@example.com", "Carol", "agent", PASSWORD).await;
    let session = b.sign_in("carol@example.com", PASSWORD).await;
    let (status, me) = b.me(&session).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["signed_in_with"], json!("session"));
    let csrf = me["csrf_token"]
        .as_str()
        .expect("a session has a CSRF token")
        .to_owned();
    // The account page's forms carry the same token.
    let page = b.get("/account", Some(&session)).await;
    assert_eq!(page.field("csrf").as_deref(), Some(csrf.as_str()));
    // Each session has its own.
    let other_session = b.sign_in("carol@example.com", PASSWORD).await;
    let other_csrf = b.csrf(&other_session).await;
    assert_ne!(csrf, other_csrf);

    let body = json!({ "first_name": "Forged" });
    let wrong = "0".repeat(csrf.len());
    let upper = csrf.to_uppercase();
    let forged: [Option<&str>; 5] = [
        None,
        Some(""),
        Some(&wrong),
        Some(&other_csrf),
        Some(&upper),
    ];
    for header in forged {
        let reply = b
            .api(
                Method::POST,
                "/api/v1/contacts",
                Some(&session),
                header,
                Some(&body),
            )
            .await;
        assert_error(&reply, StatusCode::FORBIDDEN, "csrf_failed", None);
    }
    assert_eq!(s.count("contacts", "").await, 0);

    // With the token the change goes through, as Carol.
    let (status, contact) = b
        .api(
            Method::POST,
            "/api/v1/contacts",
            Some(&session),
            Some(&csrf),
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    assert_eq!(contact["owner"], json!(carol));
    let path = format!("/api/v1/contacts/{}", id_of(&contact));
    let change = json!({ "first_name": "Changed" });
    for header in forged {
        let reply = b
            .api(Method::PATCH, &path, Some(&session), header, Some(&change))
            .await;
        assert_error(&reply, StatusCode::FORBIDDEN, "csrf_failed", None);
        let reply = b
            .api(Method::DELETE, &path, Some(&session), header, None)
            .await;
        assert_error(&reply, StatusCode::FORBIDDEN, "csrf_failed", None);
    }
    assert_eq!(s.get_ok(&path).await["first_name"], json!("Forged"));
    // Reads need no token; changes with it work.
    let (status, _) = b.api(Method::GET, &path, Some(&session), None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, patched) = b
        .api(
            Method::PATCH,
            &path,
            Some(&session),
            Some(&csrf),
            Some(&change),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["first_name"], json!("Changed"));

    // A password change is a change like any other.
    let reply = b
        .api(
            Method::POST,
            "/api/v1/me/password",
            Some(&session),
            None,
            Some(&json!({ "current_password": PASSWORD, "new_password": "a-forged-new-password" })),
        )
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "csrf_failed", None);
    b.sign_in("carol@example.com", PASSWORD).await;

    // A token alone, without the cookie, is nothing.
    let reply = b
        .api(
            Method::POST,
            "/api/v1/contacts",
            None,
            Some(&csrf),
            Some(&body),
        )
        .await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized", None);

    // An API token needs no CSRF header: another site cannot make a browser send one.
    let (status, made) = b
        .api(
            Method::POST,
            "/api/v1/tokens",
            Some(&session),
            Some(&csrf),
            Some(&json!({ "name": "script" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let script = client_with(made["secret"].as_str().expect("a secret"));
    let (status, created) = send(
        &script,
        &s.url(),
        Method::POST,
        "/api/v1/contacts",
        Some(Body::from(json!({ "first_name": "Scripted" }).to_string())),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_forms_without_the_session_csrf_token_are_refused_and_change_nothing() {
    let s = TestServer::start().await;
    let b = Browser::new(&s.url());
    let dan = "dan@example.com";
    let new_password = "a-new-password-nobody-asked-for";
    user_with_password(&s, dan, "Dan", "agent", PASSWORD).await;
    let session = b.sign_in(dan, PASSWORD).await;
    let csrf = b.csrf(&session).await;
    let other_csrf = b.csrf(&b.sign_in(dan, PASSWORD).await).await;
    let (status, made) = b
        .api(
            Method::POST,
            "/api/v1/tokens",
            Some(&session),
            Some(&csrf),
            Some(&json!({ "name": "kept" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let token_id = id_of(&made["token"]);
    let token_secret = made["secret"].as_str().expect("a secret").to_owned();

    let wrong = "0".repeat(csrf.len());
    for forged in [None, Some(wrong.as_str()), Some(other_csrf.as_str())] {
        // A form without the field at all is malformed; one with the wrong token is forbidden.
        let (status, code) = match forged {
            None => (StatusCode::BAD_REQUEST, "bad_form"),
            Some(_) => (StatusCode::FORBIDDEN, "csrf_failed"),
        };
        let forms: [(&str, Vec<(&str, &str)>); 4] = [
            (
                "/account/password",
                with_csrf(
                    forged,
                    &[
                        ("current_password", PASSWORD),
                        ("new_password", new_password),
                    ],
                ),
            ),
            (
                "/account/tokens",
                with_csrf(forged, &[("name", "forged"), ("expires_in_days", "")]),
            ),
            (
                "/account/tokens/revoke",
                with_csrf(forged, &[("id", &token_id)]),
            ),
            ("/logout", with_csrf(forged, &[])),
        ];
        for (path, form) in &forms {
            let page = b.post_form(path, Some(&session), form).await;
            assert_eq!(
                (page.status, page.error_code().as_str()),
                (status, code),
                "POST {path} with csrf {forged:?}: {}",
                page.body
            );
            assert!(page.set_cookie(SESSION_COOKIE).is_none(), "POST {path}");
        }
    }

    // Nothing changed: the session works, the old password signs in and the new one does
    // not, there is still just the one token and it still works.
    assert_eq!(b.me(&session).await.0, StatusCode::OK);
    b.sign_in(dan, PASSWORD).await;
    let page = b.sign_in_with(dan, new_password, &[]).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    let (_, list) = b
        .api(Method::GET, "/api/v1/tokens", Some(&session), None, None)
        .await;
    let items = list["items"].as_array().expect("items is a list");
    assert_eq!(items.len(), 1, "{list}");
    assert!(items[0]["revoked_at"].is_null(), "{list}");
    assert_eq!(whoami(&s.url(), &token_secret).await.0, StatusCode::OK);

    // With the right token each form does its work, so the refusals were the token's doing.
    let page = b
        .post_form(
            "/account/tokens",
            Some(&session),
            &[
                ("csrf", &csrf),
                ("name", "by form"),
                ("expires_in_days", ""),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(shown_secret(&page).is_some(), "{}", page.body);
    let page = b
        .post_form(
            "/account/tokens/revoke",
            Some(&session),
            &[("csrf", &csrf), ("id", &token_id)],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_refused(&whoami(&s.url(), &token_secret).await, "revoked");
    let page = b
        .post_form("/logout", Some(&session), &[("csrf", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_needs_the_double_submit_token() {
    let s = TestServer::start().await;
    let b = Browser::new(&s.url());
    let eve = "eve@example.com";
    user_with_password(&s, eve, "Eve", "viewer", PASSWORD).await;
    let (cookie, field) = b.login_token().await;
    let (other_cookie, other_field) = b.login_token().await;
    assert_ne!(field, other_field, "each form gets its own token");
    let form = |csrf: &str| {
        vec![
            ("email", eve.to_owned()),
            ("password", PASSWORD.to_owned()),
            ("csrf", csrf.to_owned()),
            ("next", "/account".to_owned()),
        ]
    };
    let forged: [(&str, Option<&str>, FormFields); 6] = [
        ("no cookie", None, form(&field)),
        (
            "a wrong field",
            Some(cookie.as_str()),
            form(&"0".repeat(field.len())),
        ),
        (
            "another form's field",
            Some(cookie.as_str()),
            form(&other_field),
        ),
        (
            "another form's cookie",
            Some(other_cookie.as_str()),
            form(&field),
        ),
        ("an empty cookie and field", Some(""), form("")),
        (
            "no field",
            Some(cookie.as_str()),
            form(&field)[..2].to_vec(),
        ),
    ];
    for (what, cookie, form) in &forged {
        let cookies: Vec<(&str, &str)> = cookie.iter().map(|c| (LOGIN_CSRF_COOKIE, *c)).collect();
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = b
            .request(Method::POST, "/login", &cookies, &[], Some(&form))
            .await;
        let refused = if *what == "no field" {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(page.status, refused, "sign-in with {what}: {}", page.body);
        assert_eq!(page.session(), None, "sign-in with {what}");
    }

    // The matching pair signs in, and the sign-in form's cookie is cleared.
    let page = b
        .post_login(eve, PASSWORD, &(cookie, field), &[], &[])
        .await;
    assert_signed_in(&page, eve);
    assert_eq!(page.cookie(LOGIN_CSRF_COOKIE).as_deref(), Some(""));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_always_starts_a_fresh_session() {
    let s = TestServer::start().await;
    let b = Browser::new(&s.url());
    let fay = "fay@example.com";
    user_with_password(&s, fay, "Fay", "agent", PASSWORD).await;

    // A value planted in the browser before sign-in is never the one signed in.
    let planted = "planted-by-someone-else";
    let page = b
        .sign_in_with(fay, PASSWORD, &[(SESSION_COOKIE, planted)])
        .await;
    let first = assert_signed_in(&page, fay);
    assert_ne!(first, planted);
    assert_unauthorized(&b.me(planted).await);
    let (status, me) = b.me(&first).await;
    assert_eq!(
        (status, &me["user"]["email"]),
        (StatusCode::OK, &json!(fay))
    );

    // Nor is a value the server issued once and that has ended with sign-out.
    let csrf = b.csrf(&first).await;
    let page = b
        .post_form("/logout", Some(&first), &[("csrf", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = b
        .sign_in_with(fay, PASSWORD, &[(SESSION_COOKIE, &first)])
        .await;
    let second = assert_signed_in(&page, fay);
    assert_ne!(second, first);
    assert_unauthorized(&b.me(&first).await);
    assert_eq!(b.me(&second).await.0, StatusCode::OK);

    // Signing in while signed in replaces the session: the old one, and its CSRF token,
    // stop working.
    let old_csrf = b.csrf(&second).await;
    let page = b
        .sign_in_with(fay, PASSWORD, &[(SESSION_COOKIE, &second)])
        .await;
    let third = assert_signed_in(&page, fay);
    assert_ne!(third, second);
    assert_unauthorized(&b.me(&second).await);
    assert_eq!(b.me(&third).await.0, StatusCode::OK);
    let reply = b
        .api(
            Method::POST,
            "/api/v1/contacts",
            Some(&third),
            Some(&old_csrf),
            Some(&json!({ "first_name": "Stale" })),
        )
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "csrf_failed", None);

    // Someone planting their own live session in Fay's browser does not get her signed-in
    // session: she gets a new one, and theirs does not become hers.
    user_with_password(&s, "mal@example.com", "Mal", "viewer", PASSWORD).await;
    let mal = b.sign_in("mal@example.com", PASSWORD).await;
    let page = b
        .sign_in_with(fay, PASSWORD, &[(SESSION_COOKIE, &mal)])
        .await;
    let fourth = assert_signed_in(&page, fay);
    assert_ne!(fourth, mal);
    let (_, as_mal) = b.me(&mal).await;
    assert_ne!(as_mal["user"]["email"], json!(fay), "{as_mal}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_session() {
    let s = TestServer::start().await;
    let b = Browser::new(&s.url());
    let gus = "gus@example.com";
    user_with_password(&s, gus, "Gus", "agent", PASSWORD).await;
    let session = b.sign_in(gus, PASSWORD).await;
    let elsewhere = b.sign_in(gus, PASSWORD).await;
    let csrf = b.csrf(&session).await;
    // The page's sign-out form carries the token.
    let page = b.get("/account", Some(&session)).await;
    assert!(page.body.contains("action=\"/logout\""), "{}", page.body);

    let page = b
        .post_form("/logout", Some(&session), &[("csrf", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/login");
    let cleared = page
        .set_cookie(SESSION_COOKIE)
        .expect("sign-out clears the cookie");
    assert_eq!(page.cookie(SESSION_COOKIE).as_deref(), Some(""));
    assert!(
        attributes(&cleared).contains(&"max-age=0".to_owned()),
        "{cleared}"
    );

    // The old value is dead everywhere, even to someone who kept it and its CSRF token.
    assert_unauthorized(&b.me(&session).await);
    let page = b.get("/account", Some(&session)).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/login?next=%2Faccount");
    let reply = b
        .api(
            Method::POST,
            "/api/v1/contacts",
            Some(&session),
            Some(&csrf),
            Some(&json!({ "first_name": "Ghost" })),
        )
        .await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized", None);
    // Another browser's session is untouched.
    assert_eq!(b.me(&elsewhere).await.0, StatusCode::OK);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_the_other_sessions_but_not_the_current_one() {
    let s = TestServer::start().await;
    let b = Browser::new(&s.url());
    let hal = "hal@example.com";
    let (first, second, third) = (PASSWORD, "hal-second-password", "hal-third-password");
    user_with_password(&s, hal, "Hal", "agent", first).await;

    // Over the API.
    let current = b.sign_in(hal, first).await;
    let other = b.sign_in(hal, first).await;
    let csrf = b.csrf(&current).await;
    let change = |from: &str, to: &str| json!({ "current_password": from, "new_password": to });
    let reply = b
        .api(
            Method::POST,
            "/api/v1/me/password",
            Some(&current),
            Some(&csrf),
            Some(&change("not-hals-password", second)),
        )
        .await;
    assert_error(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("current_password"),
    );
    assert_eq!(
        b.me(&other).await.0,
        StatusCode::OK,
        "a refused change ends nothing"
    );
    let (status, body) = b
        .api(
            Method::POST,
            "/api/v1/me/password",
            Some(&current),
            Some(&csrf),
            Some(&change(first, second)),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(b.me(&current).await.0, StatusCode::OK);
    assert_unauthorized(&b.me(&other).await);
    assert_sign_in_refused(&b, hal, first).await;
    let newer = b.sign_in(hal, second).await;

    // With the account page's form.
    let again = b.sign_in(hal, second).await;
    let csrf = b.csrf(&newer).await;
    let page = b
        .post_form(
            "/account/password",
            Some(&newer),
            &[
                ("csrf", &csrf),
                ("current_password", "not-hals-password"),
                ("new_password", third),
            ],
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert_eq!(
        b.me(&again).await.0,
        StatusCode::OK,
        "a refused change ends nothing"
    );
    let page = b
        .post_form(
            "/account/password",
            Some(&newer),
            &[
                ("csrf", &csrf),
                ("current_password", second),
                ("new_password", third),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Password changed"), "{}", page.body);
    assert_eq!(b.me(&newer).await.0, StatusCode::OK);
    for ended in [&current, &again] {
        assert_unauthorized(&b.me(ended).await);
    }
    assert_sign_in_refused(&b, hal, second).await;
    b.sign_in(hal, third).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookies_are_http_only_same_site_and_secure_over_tls() {
    let s = TestServer::start().await;
    let b = Browser::new(&s.url());
    let ida = "ida@example.com";
    user_with_password(&s, ida, "Ida", "viewer", PASSWORD).await;
    let form = b.get("/login", None).await;
    let login_csrf = form
        .set_cookie(LOGIN_CSRF_COOKIE)
        .expect("the sign-in form sets its cookie");
    assert_cookie(&login_csrf, false);
    let page = b.sign_in_with(ida, PASSWORD, &[]).await;
    assert_signed_in(&page, ida);
    let session = page.set_cookie(SESSION_COOKIE).expect("a session cookie");
    assert_cookie(&session, false);
    let max_age = attributes(&session)
        .iter()
        .find_map(|a| a.strip_prefix("max-age=")?.parse::<i64>().ok())
        .expect("the session cookie has a Max-Age");
    assert_eq!(max_age, SESSION_LIFETIME.num_seconds(), "{session}");

    // Behind a proxy that terminates TLS every cookie is Secure: the sign-in form's, the
    // session's, and the one clearing it at sign-out.
    let tls = [("x-forwarded-proto", "https")];
    let form = b.request(Method::GET, "/login", &[], &tls, None).await;
    assert_cookie(&form.set_cookie(LOGIN_CSRF_COOKIE).unwrap(), true);
    let token = b.login_token().await;
    let page = b.post_login(ida, PASSWORD, &token, &[], &tls).await;
    let session = assert_signed_in(&page, ida);
    assert_cookie(&page.set_cookie(SESSION_COOKIE).unwrap(), true);
    let csrf = b.csrf(&session).await;
    let page = b
        .request(
            Method::POST,
            "/logout",
            &[(SESSION_COOKIE, &session)],
            &tls,
            Some(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_cookie(&page.set_cookie(SESSION_COOKIE).unwrap(), true);
    s.stop().await;

    // With secure cookies configured, every cookie is Secure: the sign-in form's, the
    // session's, and the one clearing it at sign-out.
    let dir = TempDir::new().unwrap();
    let mut secure = config(dir.path(), false);
    secure.secure_cookies = true;
    let running = kith_host::start(secure).await.expect("start a server");
    let (email, password) = running
        .first_admin
        .clone()
        .expect("a first start shows the new admin's password");
    let b = Browser::new(&running.url());
    let form = b.get("/login", None).await;
    assert_cookie(&form.set_cookie(LOGIN_CSRF_COOKIE).unwrap(), true);
    let page = b.sign_in_with(&email, &password, &[]).await;
    let session = assert_signed_in(&page, &email);
    assert_cookie(&page.set_cookie(SESSION_COOKIE).unwrap(), true);
    let csrf = b.csrf(&session).await;
    let page = b
        .post_form("/logout", Some(&session), &[("csrf", &csrf)])
        .await;
    assert_cookie(&page.set_cookie(SESSION_COOKIE).unwrap(), true);
    running.stop().await.expect("the server stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_and_end_when_their_user_is_deactivated() {
    let dir = TempDir::new().unwrap();
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let s = TestServer::start_with_clock(dir.path(), clock.clone()).await;
    let b = Browser::new(&s.url());
    let jay = "jay@example.com";
    let jay_id = user_with_password(&s, jay, "Jay", "agent", PASSWORD).await;
    let session = b.sign_in(jay, PASSWORD).await;

    clock.advance(SESSION_LIFETIME - chrono::Duration::minutes(1));
    assert_eq!(b.me(&session).await.0, StatusCode::OK);
    clock.advance(chrono::Duration::minutes(2));
    assert_refused(&b.me(&session).await, "expired");
    let page = b.get("/account", Some(&session)).await;
    assert_eq!(
        (page.status, page.location().as_str()),
        (StatusCode::SEE_OTHER, "/login?next=%2Faccount")
    );

    // Deactivating someone ends their sessions, and they cannot sign in again.
    let session = b.sign_in(jay, PASSWORD).await;
    let (status, body) = s
        .patch(
            &format!("/api/v1/users/{jay_id}"),
            &json!({ "active": false }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_unauthorized(&b.me(&session).await);
    assert_sign_in_refused(&b, jay, PASSWORD).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_sign_ins_lock_the_email_for_a_while() {
    let s = TestServer::start().await;
    let b = Browser::new(&s.url());
    let (lee, may) = ("lee@example.com", "may@example.com");
    user_with_password(&s, lee, "Lee", "agent", PASSWORD).await;
    user_with_password(&s, may, "May", "agent", PASSWORD).await;
    let token = b.login_token().await;
    let attempt = |email: &'static str, password: &'static str| {
        let (b, token) = (b.clone(), token.clone());
        async move { b.post_login(email, password, &token, &[], &[]).await }
    };

    for _ in 0..Throttle::FREE_FAILURES {
        let page = attempt(lee, "a-wrong-guess-for-lee").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
        assert!(page.headers.get(header::RETRY_AFTER).is_none());
    }
    // Then every attempt is refused without being checked, the right password too, whatever
    // the email's case.
    for (email, password) in [
        (lee, "a-wrong-guess-for-lee"),
        (lee, PASSWORD),
        ("LEE@Example.COM", PASSWORD),
    ] {
        let page = attempt(email, password).await;
        assert_eq!(
            page.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{email}: {}",
            page.body
        );
        assert_eq!(page.session(), None);
        let wait: u64 = page
            .headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("a 429 says when to retry, in seconds");
        assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    }

    // Another email is unaffected, and a success clears its count: May may fail a few
    // times, sign in, and fail a few times more without being locked.
    for _ in 0..2 {
        for _ in 1..Throttle::FREE_FAILURES {
            let page = attempt(may, "a-wrong-guess-for-may").await;
            assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
        }
        assert_signed_in(&attempt(may, PASSWORD).await, may);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_lock_runs_out_and_the_next_one_is_longer() {
    let dir = TempDir::new().unwrap();
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let s = TestServer::start_with_clock(dir.path(), clock.clone()).await;
    let b = Browser::new(&s.url());
    let ola = "ola@example.com";
    user_with_password(&s, ola, "Ola", "agent", PASSWORD).await;
    let token = b.login_token().await;
    let attempt = |password: &'static str| {
        let (b, token) = (b.clone(), token.clone());
        async move { b.post_login(ola, password, &token, &[], &[]).await }
    };
    let retry_after = |page: &Page| -> u64 {
        assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
        page.headers[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };

    for _ in 0..Throttle::FREE_FAILURES {
        assert_eq!(
            attempt("wrong-guess-one").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(retry_after(&attempt(PASSWORD).await), 60);
    // Half-way through the lock it still holds, and says how long is left.
    clock.advance(chrono::Duration::seconds(30));
    assert_eq!(retry_after(&attempt(PASSWORD).await), 30);
    // Once it has run out, one more guess is checked, and its failure locks for longer.
    clock.advance(chrono::Duration::seconds(31));
    assert_eq!(
        attempt("wrong-guess-two").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(retry_after(&attempt(PASSWORD).await), 120);
    clock.advance(chrono::Duration::seconds(121));
    assert_signed_in(&attempt(PASSWORD).await, ola);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guesses_do_not_slip_past_the_throttle() {
    let s = TestServer::start().await;
    let b = Browser::new(&s.url());
    let nat = "nat@example.com";
    user_with_password(&s, nat, "Nat", "agent", PASSWORD).await;
    let token = b.login_token().await;

    // An attacker sends many guesses at once rather than one after another.
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..12 {
        let (b, token) = (b.clone(), token.clone());
        guesses.spawn(async move {
            let guess = format!("concurrent-guess-{i}");
            b.post_login(nat, &guess, &token, &[], &[]).await.status
        });
    }
    let mut checked = 0;
    while let Some(status) = guesses.join_next().await {
        match status.unwrap() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("a guess got {other}"),
        }
    }
    assert!(
        checked <= Throttle::FREE_FAILURES,
        "{checked} of 12 concurrent guesses had their password checked; the throttle allows {}",
        Throttle::FREE_FAILURES
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let s = TestServer::start().await;
    let b = Browser::new(&s.url());
    let bearer = format!("Bearer {}", s.token());
    let admin = [("authorization", bearer.as_str())];
    let cases: [(&str, &str, Pairs, StatusCode); 8] = [
        ("an API answer", "/api/v1/me", &admin, StatusCode::OK),
        (
            "an API refusal",
            "/api/v1/me",
            &[],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "an unknown API path",
            "/api/v1/no-such-thing",
            &admin,
            StatusCode::NOT_FOUND,
        ),
        ("a page", "/login", &[], StatusCode::OK),
        ("a signed-in page", "/account", &admin, StatusCode::OK),
        ("a redirect", "/account", &[], StatusCode::SEE_OTHER),
        (
            "an unknown page",
            "/no-such-page",
            &admin,
            StatusCode::NOT_FOUND,
        ),
        ("the stylesheet", "/assets/kith.css", &[], StatusCode::OK),
    ];
    let mut problems = Vec::new();
    for (what, path, headers, status) in cases {
        let page = b.request(Method::GET, path, &[], headers, None).await;
        assert_eq!(page.status, status, "{what} ({path}): {}", page.body);
        problems.extend(
            security_header_problems(&page.headers)
                .into_iter()
                .map(|p| format!("{what} ({path}): {p}")),
        );
    }
    assert!(problems.is_empty(), "{problems:#?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_escape_what_people_typed() {
    let s = TestServer::start().await;
    let b = Browser::new(&s.url());
    let email = "xss@example.com";
    user_with_password(&s, email, "<script>alert(1)</script>", "agent", PASSWORD).await;
    let session = b.sign_in(email, PASSWORD).await;
    let csrf = b.csrf(&session).await;
    let (status, made) = b
        .api(
            Method::POST,
            "/api/v1/tokens",
            Some(&session),
            Some(&csrf),
            Some(&json!({ "name": "\"><img src=x onerror=alert(2)>" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");

    let page = b.get("/account", Some(&session)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"),
        "{}",
        page.body
    );
    // The only script tag is the page's own (`<script src=...>`).
    for raw in ["<script>", "<img"] {
        assert!(
            !page.body.contains(raw),
            "'{raw}' unescaped in {}",
            page.body
        );
    }

    // A record's fields are escaped on its list, its page, its edit form and in search.
    let (status, contact) = s
        .post(
            "/api/v1/contacts",
            &json!({"first_name": "<script>alert(5)</script>", "last_name": "\"><img src=x>",
                    "title": "<b>boss</b>"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    let id = contact["id"].as_str().unwrap();
    for path in [
        "/contacts".to_owned(),
        format!("/contacts/{id}"),
        format!("/contacts/{id}/edit"),
        "/search?q=alert".to_owned(),
    ] {
        let page = b.get(&path, Some(&session)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        for raw in ["<script>", "<img", "<b>"] {
            assert!(
                !page.body.contains(raw),
                "'{raw}' unescaped in {path}: {}",
                page.body
            );
        }
        assert!(
            page.body.contains("&lt;script&gt;alert(5)"),
            "{path}: {}",
            page.body
        );
    }

    // The sign-in form shows the email typed and the page to return to.
    let typed = "\"><script>alert(3)</script>";
    let page = b.sign_in_with(typed, "whatever-password", &[]).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    let back = "/\"><script>alert(4)</script>";
    let form = b
        .get(&format!("/login?next={}", urlencode(back)), None)
        .await;
    for page in [&page, &form] {
        for raw in ["<script>", "\"><script>"] {
            assert!(
                !page.body.contains(raw),
                "'{raw}' unescaped in {}",
                page.body
            );
        }
    }
    assert!(
        page.body.contains("&lt;script&gt;alert(3)"),
        "{}",
        page.body
    );
    assert!(
        form.body.contains("&lt;script&gt;alert(4)"),
        "{}",
        form.body
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sends_people_only_to_pages_of_this_site() {
    let s = TestServer::start().await;
    let b = Browser::new(&s.url());
    let ola = "ola@example.com";
    user_with_password(&s, ola, "Ola", "viewer", PASSWORD).await;
    // A browser drops tabs and line breaks from a URL and reads `\` as `/`, so each of these
    // would lead off the site if the server sent it back as it came.
    let offsite = [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example/",
        "/\t/evil.example/",
        "/\n/evil.example/",
        "/\t\\evil.example/",
    ];
    let mut problems = Vec::new();
    for next in offsite {
        let (cookie, field) = b.login_token().await;
        let form = [
            ("email", ola),
            ("password", PASSWORD),
            ("csrf", field.as_str()),
            ("next", next),
        ];
        let page = b
            .request(
                Method::POST,
                "/login",
                &[(LOGIN_CSRF_COOKIE, &cookie)],
                &[],
                Some(&form),
            )
            .await;
        let location = page.location();
        let followed: String = location
            .chars()
            .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
            .map(|c| if c == '\\' { '/' } else { c })
            .collect();
        if page.status != StatusCode::SEE_OTHER
            || !followed.starts_with('/')
            || followed.starts_with("//")
        {
            problems.push(format!(
                "next={next:?}: {} to {location:?} ({})",
                page.status,
                page.body.chars().take(200).collect::<String>()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "sign-in redirects off the site: {problems:#?}"
    );

    // A page of this site is where sign-in leads, query and all.
    let (cookie, field) = b.login_token().await;
    let form = [
        ("email", ola),
        ("password", PASSWORD),
        ("csrf", field.as_str()),
        ("next", "/account?tab=tokens"),
    ];
    let page = b
        .request(
            Method::POST,
            "/login",
            &[(LOGIN_CSRF_COOKIE, &cookie)],
            &[],
            Some(&form),
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/account?tab=tokens");
    s.stop().await;
}

/// Header or form field names and values.
type Pairs<'a> = &'a [(&'a str, &'a str)];

/// Form fields with values made in the test.
type FormFields<'a> = Vec<(&'a str, String)>;

/// An answer as a browser sees it: status, headers, body text.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    /// The whole `Set-Cookie` line for cookie `name`, if the answer sets it.
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|line| cookie_pair(line).is_some_and(|(k, _)| k == name))
            .map(str::to_owned)
    }

    /// The value the answer gives cookie `name` (empty when it clears it).
    fn cookie(&self, name: &str) -> Option<String> {
        let line = self.set_cookie(name)?;
        cookie_pair(&line).map(|(_, v)| v.to_owned())
    }

    /// The session id the answer hands out, if any (a cleared cookie is none).
    fn session(&self) -> Option<String> {
        self.cookie(SESSION_COOKIE).filter(|v| !v.is_empty())
    }

    /// The `Location` header byte for byte: control characters in it are kept, to be seen.
    fn location(&self) -> String {
        self.headers
            .get(header::LOCATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default()
    }

    /// The value of the first form field `name` on the page (hidden fields carry tokens).
    fn field(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let len = self.body[start..].find('"')?;
        Some(self.body[start..start + len].to_owned())
    }

    /// The `code` of a JSON error body.
    fn error_code(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("NOT AN ERROR: {}", self.body))
    }
}

/// A browser without a cookie jar or redirects: each request carries exactly the cookies the
/// test gives it, and a redirect is an answer to look at.
#[derive(Clone)]
struct Browser {
    client: Client,
    base: String,
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            client: Client::builder()
                .redirect(redirect::Policy::none())
                .build()
                .expect("build an HTTP client"),
            base: base.to_owned(),
        }
    }

    /// Sends one request with these cookies, headers and form fields.
    async fn request(
        &self,
        method: Method,
        path: &str,
        cookies: &[(&str, &str)],
        headers: &[(&str, &str)],
        form: Option<&[(&str, &str)]>,
    ) -> Page {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if !cookies.is_empty() {
            let jar: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            request = request.header(header::COOKIE, jar.join("; "));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(form) = form {
            request = request.form(form);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"));
        Page {
            status,
            headers,
            body,
        }
    }

    /// `GET path`, presenting `session` if given.
    async fn get(&self, path: &str, session: Option<&str>) -> Page {
        self.request(Method::GET, path, &session_cookie(session), &[], None)
            .await
    }

    /// Posts a form to `path`, presenting `session` if given.
    async fn post_form(&self, path: &str, session: Option<&str>, form: &[(&str, &str)]) -> Page {
        self.request(
            Method::POST,
            path,
            &session_cookie(session),
            &[],
            Some(form),
        )
        .await
    }

    /// Fetches the sign-in form: the CSRF cookie it sets and the token in its hidden field.
    async fn login_token(&self) -> (String, String) {
        let page = self.get("/login", None).await;
        assert_eq!(page.status, StatusCode::OK, "GET /login: {}", page.body);
        let cookie = page
            .cookie(LOGIN_CSRF_COOKIE)
            .expect("the sign-in form sets its CSRF cookie");
        let field = page
            .field("csrf")
            .expect("the sign-in form has a csrf field");
        (cookie, field)
    }

    /// Posts the sign-in form with the token pair `token` (cookie, field), the `cookies` the
    /// browser already holds and any extra `headers`.
    async fn post_login(
        &self,
        email: &str,
        password: &str,
        token: &(String, String),
        cookies: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut jar = vec![(LOGIN_CSRF_COOKIE, token.0.as_str())];
        jar.extend_from_slice(cookies);
        let form = [
            ("email", email),
            ("password", password),
            ("csrf", token.1.as_str()),
            ("next", "/account"),
        ];
        self.request(Method::POST, "/login", &jar, headers, Some(&form))
            .await
    }

    /// Signs in the way a browser does (form first, then post it), presenting `cookies`.
    async fn sign_in_with(&self, email: &str, password: &str, cookies: &[(&str, &str)]) -> Page {
        let token = self.login_token().await;
        self.post_login(email, password, &token, cookies, &[]).await
    }

    /// Signs in, asserting it works; returns the new session id.
    async fn sign_in(&self, email: &str, password: &str) -> String {
        assert_signed_in(&self.sign_in_with(email, password, &[]).await, email)
    }

    /// An API request signed by `session` (if given) with `csrf` in the CSRF header (if
    /// given) and a JSON body (if given).
    async fn api(
        &self,
        method: Method,
        path: &str,
        session: Option<&str>,
        csrf: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(session) = session {
            request = request.header(header::COOKIE, format!("{SESSION_COOKIE}={session}"));
        }
        if let Some(csrf) = csrf {
            request = request.header(CSRF_HEADER, csrf);
        }
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| json!(format!("NOT JSON: {text}")))
        };
        (status, json)
    }

    /// `GET /api/v1/me` with `session`.
    async fn me(&self, session: &str) -> Reply {
        self.api(Method::GET, "/api/v1/me", Some(session), None, None)
            .await
    }

    /// The CSRF token of `session`, from `GET /api/v1/me`.
    async fn csrf(&self, session: &str) -> String {
        let (status, me) = self.me(session).await;
        assert_eq!(status, StatusCode::OK, "{me}");
        me["csrf_token"]
            .as_str()
            .expect("a session has a CSRF token")
            .to_owned()
    }
}

/// The cookie list presenting `session`, or none.
fn session_cookie(session: Option<&str>) -> Vec<(&str, &str)> {
    session.map(|s| (SESSION_COOKIE, s)).into_iter().collect()
}

/// A form's fields with a `csrf` field first, when there is one.
fn with_csrf<'a>(csrf: Option<&'a str>, fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    csrf.map(|c| ("csrf", c))
        .into_iter()
        .chain(fields.iter().copied())
        .collect()
}

/// The `name=value` pair a `Set-Cookie` line starts with.
fn cookie_pair(line: &str) -> Option<(&str, &str)> {
    line.split(';').next()?.trim().split_once('=')
}

/// The attributes of a `Set-Cookie` line, lower-cased: `httponly`, `path=/`, ...
fn attributes(line: &str) -> Vec<String> {
    line.split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

/// Asserts a cookie is out of scripts' reach, not sent on other sites' requests, scoped to
/// the whole site, and `Secure` exactly when `secure`.
#[track_caller]
fn assert_cookie(line: &str, secure: bool) {
    let attrs = attributes(line);
    assert!(attrs.contains(&"httponly".to_owned()), "{line}");
    assert!(
        attrs
            .iter()
            .any(|a| a == "samesite=lax" || a == "samesite=strict"),
        "{line}"
    );
    assert!(attrs.contains(&"path=/".to_owned()), "{line}");
    assert_eq!(attrs.contains(&"secure".to_owned()), secure, "{line}");
}

/// Asserts a sign-in worked (a redirect with a session cookie); returns the session id.
#[track_caller]
fn assert_signed_in(page: &Page, who: &str) -> String {
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "signing in as {who}: {}",
        page.body
    );
    page.session()
        .unwrap_or_else(|| panic!("signing in as {who} set no session: {:?}", page.headers))
}

/// Asserts that `email` and `password` do not sign in.
async fn assert_sign_in_refused(b: &Browser, email: &str, password: &str) {
    let page = b.sign_in_with(email, password, &[]).await;
    assert_eq!(
        page.status,
        StatusCode::UNAUTHORIZED,
        "{email} with {password}: {}",
        page.body
    );
    assert_eq!(page.session(), None);
}

/// Asserts a 401 for credentials that do not work.
#[track_caller]
fn assert_unauthorized(reply: &Reply) {
    assert_error(reply, StatusCode::UNAUTHORIZED, "unauthorized", None);
}

/// Asserts a 401 whose message says why (`revoked`, `expired`, `deactivated`).
#[track_caller]
fn assert_refused(reply: &Reply, why: &str) {
    assert_unauthorized(reply);
    let message = reply.1["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(why), "expected '{why}' in {}", reply.1);
}

/// What is wrong with the security headers of an answer.
fn security_header_problems(h: &HeaderMap) -> Vec<String> {
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut problems = Vec::new();
    let csp = get("content-security-policy");
    if !csp.contains("default-src") || !csp.contains("frame-ancestors") {
        problems.push(format!("Content-Security-Policy: {csp:?}"));
    }
    if csp.contains("unsafe-inline") || csp.contains("unsafe-eval") {
        problems.push(format!(
            "Content-Security-Policy allows inline code: {csp:?}"
        ));
    }
    if get("x-frame-options") != "DENY" {
        problems.push(format!("X-Frame-Options: {:?}", get("x-frame-options")));
    }
    if get("x-content-type-options") != "nosniff" {
        problems.push(format!(
            "X-Content-Type-Options: {:?}",
            get("x-content-type-options")
        ));
    }
    let referrer = get("referrer-policy");
    if ![
        "no-referrer",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
    ]
    .contains(&referrer)
    {
        problems.push(format!("Referrer-Policy: {referrer:?}"));
    }
    problems
}

/// Creates a user with a known password through the admin API; returns their id.
async fn user_with_password(
    s: &TestServer,
    email: &str,
    name: &str,
    role: &str,
    password: &str,
) -> String {
    let body = json!({ "email": email, "name": name, "role": role, "password": password });
    let (status, reply) = s.post("/api/v1/users", &body).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "creating user {email}: {reply}"
    );
    // Only a generated password is ever shown back.
    assert!(reply.get("password").is_none(), "{reply}");
    id_of(&reply["user"])
}

/// Creates a token with `client`; returns the token as shown and its secret.
async fn new_token(client: &Client, base: &str, body: Value) -> (Value, String) {
    let (status, reply) = send(
        client,
        base,
        Method::POST,
        "/api/v1/tokens",
        Some(Body::from(body.to_string())),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "creating token {body}: {reply}"
    );
    let token = reply["token"].clone();
    assert!(token.get("hash").is_none(), "{reply}");
    let secret = reply["secret"]
        .as_str()
        .expect("the create reply shows the secret")
        .to_owned();
    assert!(secret.starts_with("kith_"), "{secret}");
    (token, secret)
}

/// `GET /api/v1/me` with the API token `secret`.
async fn whoami(base: &str, secret: &str) -> Reply {
    send(&client_with(secret), base, Method::GET, "/api/v1/me", None).await
}

/// A secret without its `kith_` prefix: the part that must not leak either.
fn secret_body(secret: &str) -> &str {
    secret.strip_prefix("kith_").unwrap_or(secret)
}

/// The new token's secret an account page shows once.
fn shown_secret(page: &Page) -> Option<String> {
    let marker = "class=\"secret\">";
    let start = page.body.find(marker)? + marker.len();
    let len = page.body[start..].find('<')?;
    Some(page.body[start..start + len].to_owned())
}

/// Every file under `dir`, however deep.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Percent-encodes a query value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_read_as_words() {
    let s = TestServer::start().await;
    let b = Browser::new(&s.url());
    let email = "filters@example.com";
    user_with_password(&s, email, "Filter Fan", "agent", PASSWORD).await;
    let session = b.sign_in(email, PASSWORD).await;
    let company = s
        .create_id(
            "companies",
            json!({"name": "Acme Ltd", "domain": "acme.example"}),
        )
        .await;
    s.create_id(
        "deals",
        json!({"title": "Anvils", "amount": 500, "currency": "USD", "stage": "proposal",
               "company_id": company}),
    )
    .await;
    let page = b
        .get(
            &format!("/deals?company_id={company}&amount[gte]=100&stage=proposal"),
            Some(&session),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for words in [
        "Company is Acme Ltd",
        "Amount at least 100",
        "Stage is proposal",
    ] {
        assert!(
            page.body.contains(words),
            "'{words}' missing: {}",
            page.body
        );
    }
    assert!(page.body.contains("Anvils"), "{}", page.body);
    s.stop().await;
}
