//! Managing people: the admin a first start creates, the `kith user/team/token` commands on a
//! stopped server's data directory, and users, teams and the access setting through the
//! admin API, with the refusals that keep an organisation from locking itself out.

use reqwest::{Body, Method, StatusCode};
use serde_json::json;

use crate::support::{TestServer, assert_error, client_with, send, sign_in};

/// The one line of `out` that starts with `prefix`, without it.
fn line_after<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in {out}"))
        .trim()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_creates_one_admin_whose_password_signs_in() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), false).await.unwrap();
    let (email, password) = s
        .running()
        .first_admin
        .clone()
        .expect("a first start creates an admin");
    assert_eq!(email, "admin@example.com");
    assert!(
        password.len() >= 16,
        "a generated password is long: {password}"
    );
    assert!(sign_in(&s.url(), &email, &password).await.is_ok());
    assert!(sign_in(&s.url(), &email, "not the password").await.is_err());
    let users = s.get_ok("/api/v1/users").await;
    assert_eq!(users["items"].as_array().unwrap().len(), 1, "{users}");
    assert_eq!(users["items"][0]["role"], "admin");
    s.stop().await;

    // The next start finds a user and creates nobody; the password still works.
    let s = TestServer::start_in(dir.path(), false).await.unwrap();
    assert!(s.running().first_admin.is_none());
    assert!(sign_in(&s.url(), &email, &password).await.is_ok());
    assert_eq!(
        s.get_ok("/api/v1/users").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_adds_teams_and_users_sets_passwords_and_makes_tokens() {
    use kith_host::admin;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // A first start makes the data directory and its admin.
    TestServer::start_in(data, false)
        .await
        .unwrap()
        .stop()
        .await;

    assert!(
        admin::team_add(data, "east", "East coast")
            .unwrap()
            .contains("east")
    );
    let out = admin::user_add(
        data,
        "Sam@Acme.com",
        "agent",
        Some("Sam"),
        Some("east"),
        None,
    )
    .unwrap();
    let generated = line_after(&out, "password:").to_owned();

    // Refusals name the problem and add nobody; emails compare without case.

    // Refusals name the problem and add nobody.
    let e = admin::user_add(data, "sam@acme.com", "agent", None, None, None).unwrap_err();
    assert!(e.to_string().contains("sam@acme.com"), "{e}");
    let e = admin::user_add(data, "kim@acme.com", "boss", None, None, None).unwrap_err();
    assert!(e.to_string().contains("boss"), "{e}");
    let e = admin::user_add(data, "kim@acme.com", "agent", None, Some("north"), None).unwrap_err();
    assert!(e.to_string().contains("north"), "{e}");
    let e = admin::user_add(data, "not an email", "agent", None, None, None).unwrap_err();
    assert!(e.to_string().contains("email"), "{e}");
    let e = admin::user_add(
        data,
        "kim@acme.com",
        "agent",
        None,
        None,
        Some("short".into()),
    )
    .unwrap_err();
    assert!(e.to_string().contains("10"), "{e}");
    let list = admin::user_list(data).unwrap();
    assert!(
        list.contains("Sam@acme.com") && list.contains("east"),
        "{list}"
    );
    assert!(!list.contains("kim@acme.com"), "{list}");

    let out = admin::token_create(data, "sam@acme.com", "import", Some(30)).unwrap();
    let token = out.lines().next().unwrap().trim().to_owned();
    assert!(admin::token_create(data, "nobody@acme.com", "x", None).is_err());
    let e = admin::token_create(data, "sam@acme.com", "x", Some(0)).unwrap_err();
    assert!(e.to_string().contains("expires-in-days"), "{e}");
    assert!(
        admin::user_password(data, "sam@acme.com", Some("a brand new password".into()))
            .unwrap()
            .contains("sessions")
    );
    assert!(admin::user_password(data, "nobody@acme.com", None).is_err());

    let s = TestServer::start_in(data, false).await.unwrap();
    // The token acts as Sam.
    let me = send(
        &client_with(&token),
        &s.url(),
        Method::GET,
        "/api/v1/me",
        None,
    )
    .await;
    assert_eq!(me.0, StatusCode::OK, "{}", me.1);
    assert_eq!(me.1["user"]["email"], "Sam@acme.com");
    assert_eq!(me.1["user"]["role"], "agent");
    assert_eq!(me.1["user"]["team"], "east");
    let tokens = send(
        &client_with(&token),
        &s.url(),
        Method::GET,
        "/api/v1/tokens",
        None,
    )
    .await;
    assert!(
        tokens.1["items"][0]["expires_at"].is_string(),
        "{}",
        tokens.1
    );
    // The generated password was replaced.
    assert!(sign_in(&s.url(), "sam@acme.com", &generated).await.is_err());
    assert!(
        sign_in(&s.url(), "sam@acme.com", "a brand new password")
            .await
            .is_ok()
    );
    // While the server runs, the commands refuse and say why.
    let e = admin::user_list(data).unwrap_err();
    assert!(e.to_string().contains("running"), "{e}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_users_teams_and_the_access_setting() {
    let s = TestServer::start().await;
    let put = |path: &'static str, body: &'static str| {
        let s = &s;
        async move { s.send(Method::PUT, path, Some(Body::from(body))).await }
    };

    // Teams: a key is short and plain; a team with members stays.
    let (status, team) = put("/api/v1/teams/east", r#"{"name": "East coast"}"#).await;
    assert_eq!(status, StatusCode::OK, "{team}");
    assert_error(
        &put("/api/v1/teams/East%20Coast", r#"{"name": "x"}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("key"),
    );
    let teams = s.get_ok("/api/v1/teams").await;
    assert_eq!(teams["items"][0]["name"], "East coast", "{teams}");

    // A user without a password gets a generated one, shown once.
    let (status, created) = s
        .post(
            "/api/v1/users",
            &json!({ "email": "kim@acme.com", "name": "Kim", "role": "agent", "team": "east" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let kim = created["user"]["id"].as_str().unwrap().to_owned();
    let password = created["password"].as_str().unwrap().to_owned();
    assert!(created["user"].get("password_hash").is_none(), "{created}");
    assert!(sign_in(&s.url(), "kim@acme.com", &password).await.is_ok());
    let shown = s.get_ok(&format!("/api/v1/users/{kim}")).await;
    assert!(shown.get("password").is_none() && shown.get("password_hash").is_none());

    // Refusals that name the field.
    for (body, status, code, field) in [
        (
            json!({ "email": "KIM@acme.com", "role": "agent" }),
            StatusCode::CONFLICT,
            "conflict",
            "email",
        ),
        (
            json!({ "email": "lee@acme.com", "role": "boss" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "role",
        ),
        (
            json!({ "email": "lee@acme.com", "role": "agent", "team": "north" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "team",
        ),
        (
            json!({ "email": "lee", "role": "agent" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "email",
        ),
        (
            json!({ "email": "lee@acme.com", "role": "agent", "password": "short" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "password",
        ),
    ] {
        let reply = s.post("/api/v1/users", &body).await;
        assert_error(&reply, status, code, Some(field));
    }
    assert_eq!(
        s.get_ok("/api/v1/users").await["items"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "nothing refused was added"
    );

    // The team with Kim in it cannot go; once she leaves it, it can.
    assert_error(
        &s.delete("/api/v1/teams/east").await,
        StatusCode::CONFLICT,
        "conflict",
        Some("team"),
    );
    let (status, moved) = s
        .patch(
            &format!("/api/v1/users/{kim}"),
            &json!({ "team": null, "role": "manager" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["role"], "manager");
    assert!(moved["team"].is_null());
    assert_eq!(
        s.delete("/api/v1/teams/east").await.0,
        StatusCode::NO_CONTENT
    );

    // The last active admin can be neither demoted nor deactivated.
    let me = s.get_ok("/api/v1/me").await;
    let admin = me["user"]["id"].as_str().unwrap().to_owned();
    for change in [json!({ "role": "manager" }), json!({ "active": false })] {
        let reply = s.patch(&format!("/api/v1/users/{admin}"), &change).await;
        assert_eq!(reply.0, StatusCode::CONFLICT, "{}", reply.1);
        assert!(
            reply.1["error"]["message"]
                .as_str()
                .unwrap()
                .contains("last active admin")
        );
    }
    assert_eq!(s.get_ok("/api/v1/me").await["user"]["role"], "admin");

    // Deactivating Kim stops her password at once.
    let (status, _) = s
        .patch(&format!("/api/v1/users/{kim}"), &json!({ "active": false }))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(sign_in(&s.url(), "kim@acme.com", &password).await.is_err());

    // The access setting: read by anyone signed in, changed by admins, checked.
    assert_eq!(s.get_ok("/api/v1/settings").await["agent_scope"], "all");
    let (status, _) = put("/api/v1/settings", r#"{"agent_scope": "own_and_team"}"#).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s.get_ok("/api/v1/settings").await["agent_scope"],
        "own_and_team"
    );
    let reply = put("/api/v1/settings", r#"{"agent_scope": "some"}"#).await;
    assert_eq!(reply.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.1);
    assert_eq!(
        s.get_ok("/api/v1/settings").await["agent_scope"],
        "own_and_team"
    );
    s.stop().await;
}

/// A browser signed in as someone: its session cookie and the session's CSRF token.
struct Signed {
    client: reqwest::Client,
    base: String,
    session: String,
    csrf: String,
}

impl Signed {
    async fn new(base: &str, email: &str, password: &str) -> Signed {
        let session = sign_in(base, email, password).await.expect("signs in");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let me: serde_json::Value = client
            .get(format!("{base}/api/v1/me"))
            .header("cookie", format!("kith_session={session}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Signed {
            client,
            base: base.to_owned(),
            session,
            csrf: me["csrf_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Posts a page form (the CSRF token added); the status and the page.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let mut form = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", format!("kith_session={}", self.session))
            .form(&form)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("kith_session={}", self.session))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }
}

/// The text of the first `<code class="secret">` on a page.
fn shown_secret(page: &str) -> &str {
    let start = page
        .find("class=\"secret\">")
        .expect("the page shows a secret")
        + 15;
    &page[start..start + page[start..].find('<').unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_people_teams_and_access_on_their_pages() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), false).await.unwrap();
    let (email, password) = s.running().first_admin.clone().unwrap();
    let admin = Signed::new(&s.url(), &email, &password).await;
    let (status, page) = admin.get("/admin/users").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("admin@example.com") && page.contains("Add a person"));

    // A team, then a person in it with a generated password, who can sign in with it.
    let (status, page) = admin
        .post("/admin/teams", &[("key", "east"), ("name", "East coast")])
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (status, page) = admin
        .post(
            "/admin/users",
            &[
                ("email", "ivy@acme.com"),
                ("name", "Ivy <b>"),
                ("role", "agent"),
                ("team", "east"),
                ("password", ""),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Ivy &lt;b&gt;"), "names are escaped");
    let generated = shown_secret(&page).to_owned();
    assert!(sign_in(&s.url(), "ivy@acme.com", &generated).await.is_ok());
    let ivy = s.get_ok("/api/v1/users").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "ivy@acme.com")
        .unwrap()
        .clone();
    assert_eq!(ivy["team"], "east");
    let id = ivy["id"].as_str().unwrap().to_owned();

    // Refusals come back on the page with the API's status and message; nothing changes.
    let (status, page) = admin
        .post(
            "/admin/users",
            &[
                ("email", "IVY@acme.com"),
                ("role", "agent"),
                ("password", ""),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("role=\"alert\""), "{page}");
    let (status, _) = admin.post("/admin/teams/delete", &[("key", "east")]).await;
    assert_eq!(status, StatusCode::CONFLICT, "a team with members stays");

    // Her page: promote her, move her out of the team, deactivate her.
    let (status, page) = admin.get(&format!("/admin/users/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("ivy@acme.com"));
    let (status, page) = admin
        .post(
            &format!("/admin/users/{id}"),
            &[
                ("name", "Ivy"),
                ("email", "ivy@acme.com"),
                ("role", "manager"),
                ("team", ""),
                ("status", "inactive"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let shown = s.get_ok(&format!("/api/v1/users/{id}")).await;
    assert_eq!(shown["role"], "manager");
    assert!(shown["team"].is_null());
    assert_eq!(shown["active"], false);
    assert!(sign_in(&s.url(), "ivy@acme.com", &generated).await.is_err());

    // Back to active with a new password, which works where the old one does not.
    let (status, _) = admin
        .post(
            &format!("/admin/users/{id}"),
            &[
                ("name", "Ivy"),
                ("email", "ivy@acme.com"),
                ("role", "manager"),
                ("team", ""),
                ("status", "active"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, page) = admin
        .post(&format!("/admin/users/{id}/password"), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let fresh = shown_secret(&page).to_owned();
    assert!(sign_in(&s.url(), "ivy@acme.com", &generated).await.is_err());
    assert!(sign_in(&s.url(), "ivy@acme.com", &fresh).await.is_ok());

    // The team is empty now and can go; the access setting changes.
    let (status, _) = admin.post("/admin/teams/delete", &[("key", "east")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        s.get_ok("/api/v1/teams").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (status, _) = admin
        .post("/admin/settings", &[("agent_scope", "own_and_team")])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s.get_ok("/api/v1/settings").await["agent_scope"],
        "own_and_team"
    );

    // The admin cannot lock everyone out by demoting themself.
    let me = s.get_ok("/api/v1/me").await;
    let admin_id = me["user"]["id"].as_str().unwrap();
    let (status, page) = admin
        .post(
            &format!("/admin/users/{admin_id}"),
            &[
                ("name", "Administrator"),
                ("email", "admin@example.com"),
                ("role", "viewer"),
                ("team", ""),
                ("status", "active"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("last active admin"));
    s.stop().await;
}
