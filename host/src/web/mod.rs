//! The web pages, rendered on the server with maud (which escapes every value it inserts):
//! sign-in, sign-out, the account page (password change, API tokens), and the admin's pages
//! for people, teams and record access ([`admin`]). Forms carry a CSRF
//! token checked by [`CsrfForm`]; the sign-in form, used before any session exists, checks
//! its token against a short-lived cookie instead (double submit).

use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use kith_core::Command;
use kith_core::Timestamp;
use kith_core::account::{self, Session, Token};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::api::auth::{Caller, MaybeCaller, Need, Routes, SESSION_COOKIE, SESSION_LIFETIME, Via};
use crate::api::{ApiError, AppState, expiry_in_days, issue_token, submit, write};

/// The cookie holding the sign-in form's CSRF token.
const LOGIN_CSRF_COOKIE: &str = "kith_login_csrf";

mod admin;
mod board;
mod charts;
mod dashboard;
mod fields;
mod plugins;
mod records;
mod reports;
mod schema;

pub(crate) use plugins::Uploads;

pub(crate) fn routes() -> Routes {
    use Method as M;
    admin::routes()
        .merge(records::routes())
        .merge(board::routes())
        .merge(dashboard::routes())
        .merge(reports::routes())
        .merge(plugins::routes())
        .merge(schema::routes())
        .route(
            "/login",
            &[(M::GET, Need::Public), (M::POST, Need::Public)],
            get(login_page).post(login),
        )
        .route("/logout", &[(M::POST, Need::Viewer)], post(logout))
        .route("/account", &[(M::GET, Need::Viewer)], get(account_page))
        .route(
            "/account/password",
            &[(M::POST, Need::Viewer)],
            post(account_password),
        )
        .route(
            "/account/tokens",
            &[(M::POST, Need::Viewer)],
            post(account_token),
        )
        .route(
            "/account/tokens/revoke",
            &[(M::POST, Need::Viewer)],
            post(account_revoke),
        )
        .route(
            "/assets/kith.css",
            &[(M::GET, Need::Public)],
            get(stylesheet),
        )
        .route("/assets/kith.js", &[(M::GET, Need::Public)], get(script))
        .route(
            "/assets/favicon.svg",
            &[(M::GET, Need::Public)],
            get(favicon),
        )
}

/// Sends a browser to the sign-in page, to come back to `from` afterwards.
pub(crate) fn to_sign_in(from: &Uri) -> Response {
    let next = from
        .path_and_query()
        .map_or("/", axum::http::uri::PathAndQuery::as_str);
    let target = format!("/login?next={}", encode(next));
    Redirect::to(&target).into_response()
}

pub(crate) fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Only a path on this site: never `//elsewhere` or `https://elsewhere`. Browsers drop tabs
/// and line breaks from URLs and read `\` as `/`, so `/\t/elsewhere` or `/\\elsewhere` would
/// leave the site too: a path with anything but printable ASCII (a `next` we made is always
/// percent-encoded) or with a backslash is refused whole.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.chars().all(|c| c.is_ascii_graphic() && c != '\\') =>
        {
            n
        }
        _ => "/",
    }
}

fn page(title: &str, caller: Option<&Caller>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Kith" }
                link rel="stylesheet" href="/assets/kith.css";
                link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
                script src="/assets/kith.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Kith" }
                    @if let Some(c) = caller {
                        form.top-search method="get" action="/search" role="search" {
                            label.sr for="search" { "Search contacts, companies, deals and tickets" }
                            input #search type="search" name="q" placeholder="Search (press /)" autocomplete="off";
                        }
                        nav.main aria-label="Main" {
                            @for kind in records::PAGE_KINDS.into_iter().take(5) {
                                a href=(format!("/{}", kind.plural())) aria-current=[(title == records::title(kind)).then_some("page")] { (records::title(kind)) }
                            }
                            a href="/reports" { "Reports" }
                            @if c.role() == kith_core::Role::Admin {
                                a href="/admin/users" { "Admin" }
                            }
                        }
                        nav.account aria-label="Account" {
                            a href="/account" { (c.user.name) " (" (c.user.role) ")" }
                            @if let Some(csrf) = c.csrf() {
                                form.inline method="post" action="/logout" {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button.link type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// A `Set-Cookie` value for a cookie scripts cannot read, sent back only to this site's
/// top-level navigations and requests, and only over TLS when `secure`.
fn cookie_header(secure: bool, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let v = format!("{name}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether this request reached the server over TLS (directly or through a proxy that says
/// so), in which case cookies are marked `Secure`.
fn over_tls(state: &AppState, headers: &HeaderMap) -> bool {
    state.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    MaybeCaller(caller): MaybeCaller,
    Query(q): Query<Next>,
) -> Response {
    if caller.is_some() {
        return Redirect::to(local_path(q.next.as_deref())).into_response();
    }
    login_form(
        &state,
        &headers,
        StatusCode::OK,
        q.next.as_deref(),
        None,
        "",
    )
}

/// The sign-in page, for a browser that sent `headers`.
///
/// A browser that already holds a sign-in token keeps it: a second sign-in page loaded
/// meanwhile (another tab, or a favicon request sent to sign in) must not make the form
/// already on screen stale.
fn login_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    next: Option<&str>,
    error: Option<&str>,
    email: &str,
) -> Response {
    let secure = over_tls(state, headers);
    let csrf = crate::api::auth::cookie(headers, LOGIN_CSRF_COOKIE)
        .filter(|c| {
            c.len() >= 32
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(|| account::new_secret(""), str::to_owned);
    let body = html! {
        section.card {
            h1 { "Sign in" }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="next" value=(local_path(next));
                label for="email" { "Email" }
                input #email type="email" name="email" value=(email) autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        }
    };
    let mut response = (status, Html(page("Sign in", None, body).into_string())).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(secure, LOGIN_CSRF_COOKIE, &csrf, 3600),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<axum::Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let secure = over_tls(&state, &headers);
    let Ok(axum::Form(f)) = form else {
        return login_form(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            None,
            Some("The form was incomplete; enter your email and password."),
            "",
        );
    };
    let expected = crate::api::auth::cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if expected.is_empty() || !account::same_secret(&f.csrf, expected) {
        return login_form(
            &state,
            &headers,
            StatusCode::FORBIDDEN,
            f.next.as_deref(),
            Some("The sign-in form expired or came from another site; please try again."),
            &f.email,
        );
    }
    if let Err(wait) = state.throttle.attempt(&f.email, state.store.clock().now()) {
        let mut r = login_form(
            &state,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            f.next.as_deref(),
            Some(&format!(
                "Too many failed sign-ins for this email. Try again in {} minute(s).",
                wait.div_ceil(60)
            )),
            &f.email,
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return r;
    }
    let dir = state.store.directory();
    let user = dir.user_by_email(&f.email).filter(|u| u.active).cloned();
    let hash = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| account::decoy_hash().to_owned());
    let password = f.password;
    let verified = tokio::task::spawn_blocking(move || account::verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| verified) else {
        tracing::info!(email = %f.email, "failed sign-in");
        return login_form(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            f.next.as_deref(),
            Some("That email and password do not match an active account."),
            &f.email,
        );
    };
    state.throttle.succeeded(&f.email);
    // Always a fresh session id: a cookie planted before sign-in never becomes signed in.
    let secret = account::new_secret("");
    let now = state.store.clock().now();
    let session = Session {
        hash: account::hash_secret(&secret),
        user: user.id,
        created_at: now,
        expires_at: now + SESSION_LIFETIME,
    };
    let actor = format!("user:{}", user.id);
    if let Err(e) = submit(&state.store, &actor, Command::StartSession(session)).await {
        return e.into_response();
    }
    if let Some(old) = crate::api::auth::cookie(&headers, SESSION_COOKIE) {
        let hash = account::hash_secret(old);
        // An earlier session in this browser ends; failing to end it changes nothing.
        let _ = submit(&state.store, &actor, Command::EndSession { hash }).await;
    }
    tracing::info!(user = %user.id, "signed in");
    let mut response = Redirect::to(local_path(f.next.as_deref())).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(
            secure,
            SESSION_COOKIE,
            &secret,
            SESSION_LIFETIME.num_seconds(),
        ),
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(secure, LOGIN_CSRF_COOKIE, "", 0),
    );
    response
}

/// A form whose `csrf` field must match the session's token.
pub(crate) struct CsrfForm<T>(pub T);

#[derive(Deserialize)]
struct WithCsrf<T> {
    csrf: String,
    #[serde(flatten)]
    rest: T,
}

impl<S, T> FromRequest<S> for CsrfForm<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let expected = session_csrf(&req);
        let axum::Form(f) = axum::Form::<WithCsrf<T>>::from_request(req, state)
            .await
            .map_err(|e| {
                ApiError::bad_request(
                    "bad_form",
                    format!("the form is malformed: {}", e.body_text()),
                )
                .into_response()
            })?;
        check_csrf(expected.as_deref(), &f.csrf).map_err(IntoResponse::into_response)?;
        Ok(CsrfForm(f.rest))
    }
}

/// The CSRF token of the session a request came with.
fn session_csrf(req: &Request) -> Option<String> {
    req.extensions()
        .get::<Caller>()
        .and_then(|c| c.csrf().map(str::to_owned))
}

/// Refuses a form whose token is not the session's.
fn check_csrf(expected: Option<&str>, sent: &str) -> Result<(), ApiError> {
    match expected {
        Some(token) if account::same_secret(sent, token) => Ok(()),
        _ => Err(ApiError::csrf(
            "the form's CSRF token does not match your session; reload the page and try again",
        )),
    }
}

/// A form read as its (name, value) pairs (record forms, whose fields depend on the
/// kind's custom fields), after its `csrf` pair matched the session's token.
pub(crate) struct CsrfPosted(pub fields::Posted);

impl<S: Send + Sync> FromRequest<S> for CsrfPosted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let expected = session_csrf(&req);
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(ApiError::bad_request(
                "bad_form",
                "expected a form (application/x-www-form-urlencoded)",
            )
            .into_response());
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::from(e).into_response())?;
        let mut pairs: fields::Posted = url::form_urlencoded::parse(&bytes).into_owned().collect();
        let sent = fields::posted(&pairs, "csrf").unwrap_or("").to_owned();
        check_csrf(expected.as_deref(), &sent).map_err(IntoResponse::into_response)?;
        pairs.retain(|(k, _)| k != "csrf");
        Ok(CsrfPosted(pairs))
    }
}

/// A form with nothing but its CSRF token.
#[derive(Deserialize)]
struct Empty {}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    CsrfForm(Empty {}): CsrfForm<Empty>,
) -> Response {
    if let Via::Session { hash, .. } = &caller.via {
        let hash = hash.clone();
        if let Err(e) = write(&state.store, &caller, Command::EndSession { hash }).await {
            return e.into_response();
        }
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(over_tls(&state, &headers), SESSION_COOKIE, "", 0),
    );
    r
}

/// What a page shows after one of its forms was sent.
#[derive(Default)]
struct Notice {
    /// What went well.
    ok: Option<String>,
    /// What went wrong.
    error: Option<String>,
    /// A secret to show this once (a new token or password).
    secret: Option<String>,
    /// The form field the error is about, shown beside it.
    field: Option<String>,
}

impl Notice {
    fn ok(message: impl Into<String>) -> Notice {
        Notice {
            ok: Some(message.into()),
            ..Notice::default()
        }
    }

    fn error(message: impl Into<String>) -> Notice {
        Notice {
            error: Some(message.into()),
            ..Notice::default()
        }
    }
}

/// The links between the admin's pages, `current` marked.
fn admin_nav(current: &str) -> Markup {
    html! {
        nav.views aria-label="Administration" {
            @for (href, label) in [
                ("/admin/users", "People and teams"),
                ("/admin/plugins", "Plugins"),
                ("/admin/fields", "Custom fields"),
                ("/admin/pipelines", "Pipelines"),
            ] {
                a href=(href) aria-current=[(href == current).then_some("page")] { (label) }
            }
        }
    }
}

/// A notice's success and error lines (announced to screen readers).
fn notices(n: &Notice) -> Markup {
    html! {
        @if let Some(m) = &n.ok { p.ok role="status" { (m) } }
        @if let Some(e) = &n.error { p.error role="alert" { (e) } }
    }
}

/// A whole page as an answer with `status`; never cached, since pages show private data.
fn html_page(status: StatusCode, title: &str, caller: Option<&Caller>, body: Markup) -> Response {
    let mut r = (status, Html(page(title, caller, body).into_string())).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The account page after one of its forms: with `result`'s notice, or with the error's
/// message and status.
fn after_form(state: &AppState, caller: &Caller, result: Result<Notice, ApiError>) -> Response {
    match result {
        Ok(notice) => account_view(state, caller, StatusCode::OK, notice),
        Err(e) => account_view(state, caller, e.status(), Notice::error(e.message())),
    }
}

async fn account_page(State(state): State<AppState>, caller: Caller) -> Response {
    account_view(&state, &caller, StatusCode::OK, Notice::default())
}

fn account_view(state: &AppState, caller: &Caller, status: StatusCode, n: Notice) -> Response {
    let dir = state.store.directory();
    let tokens = dir.tokens(Some(caller.user.id));
    let now = state.store.clock().now();
    let csrf = caller.csrf().unwrap_or("");
    let u = &caller.user;
    let body = html! {
        section.card {
            h1 { "Your account" }
            (notices(&n))
            dl {
                dt { "Name" } dd { (u.name) }
                dt { "Email" } dd { (u.email) }
                dt { "Role" } dd { (u.role) }
                dt { "Team" } dd { (u.team.as_deref().unwrap_or("none")) }
                dt { "Sees" } dd { @if caller.access.sees_all { "all records" } @else { "own and team records" } }
            }
        }
        section.card {
            h2 { "Change password" }
            form method="post" action="/account/password" {
                input type="hidden" name="csrf" value=(csrf);
                label for="current" { "Current password" }
                input #current type="password" name="current_password" autocomplete="current-password" required;
                label for="new" { "New password (at least " (account::MIN_PASSWORD) " characters)" }
                input #new type="password" name="new_password" autocomplete="new-password" minlength=(account::MIN_PASSWORD) required;
                button type="submit" { "Change password" }
            }
        }
        section.card {
            h2 { "API tokens" }
            p { "Scripts send a token as " code { "Authorization: Bearer <token>" } ". It acts as you." }
            @if let Some(s) = &n.secret {
                p.ok role="status" { "Your new token (copy it now; it is not shown again): " code.secret { (s) } }
            }
            (tokens_table(&tokens, now, csrf, "/account/tokens/revoke"))
            form method="post" action="/account/tokens" {
                input type="hidden" name="csrf" value=(csrf);
                label for="token-name" { "New token name" }
                input #token-name type="text" name="name" maxlength="200" required;
                label for="token-days" { "Expires after (days, empty for never)" }
                input #token-days type="number" name="expires_in_days" min="1" max="3650";
                button type="submit" { "Create token" }
            }
        }
    };
    html_page(status, "Account", Some(caller), body)
}

/// A table of API tokens, each active one with a button posting its id to `revoke`.
fn tokens_table(tokens: &[Token], now: Timestamp, csrf: &str, revoke: &str) -> Markup {
    html! {
        @if tokens.is_empty() {
            p { "No tokens." }
        } @else {
            table {
                thead { tr { th { "Name" } th { "Created" } th { "Expires" } th { "State" } th { span.sr { "Action" } } } }
                tbody {
                    @for t in tokens {
                        tr {
                            td { (t.name) }
                            td { (t.created_at.format("%Y-%m-%d %H:%M")) }
                            td { (t.expires_at.map_or_else(|| "never".to_owned(), |e| e.format("%Y-%m-%d").to_string())) }
                            td { (t.refusal(now).unwrap_or("active")) }
                            td {
                                @if t.revoked_at.is_none() {
                                    form.inline method="post" action=(revoke) {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="id" value=(t.id.to_string());
                                        button type="submit" aria-label={ "Revoke token " (t.name) } { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct PasswordForm {
    current_password: String,
    new_password: String,
}

async fn account_password(
    State(state): State<AppState>,
    caller: Caller,
    CsrfForm(f): CsrfForm<PasswordForm>,
) -> Response {
    let result =
        crate::api::accounts_change_password(&state, &caller, f.current_password, f.new_password)
            .await
            .map(|()| Notice::ok("Password changed. Your other sessions were signed out."));
    after_form(&state, &caller, result)
}

#[derive(Deserialize)]
struct TokenForm {
    name: String,
    #[serde(default)]
    expires_in_days: String,
}

async fn account_token(
    State(state): State<AppState>,
    caller: Caller,
    CsrfForm(f): CsrfForm<TokenForm>,
) -> Response {
    let result = async {
        let now = state.store.clock().now();
        let expires_at = match f.expires_in_days.trim() {
            "" => None,
            // Not a number is out of range too: 0 days is refused with the same message.
            d => Some(expiry_in_days(now, d.parse().unwrap_or(0))?),
        };
        let (_, secret) = issue_token(&state, &caller, caller.user.id, f.name, expires_at).await?;
        Ok(Notice {
            secret: Some(secret),
            ..Notice::default()
        })
    }
    .await;
    after_form(&state, &caller, result)
}

#[derive(Deserialize)]
struct RevokeForm {
    id: String,
}

async fn account_revoke(
    State(state): State<AppState>,
    caller: Caller,
    CsrfForm(f): CsrfForm<RevokeForm>,
) -> Response {
    let result = async {
        let token =
            f.id.parse()
                .ok()
                .and_then(|id| state.store.directory().token(id))
                .filter(|t| t.user == caller.user.id)
                .ok_or_else(|| ApiError::not_found("You have no such token."))?;
        write(&state.store, &caller, Command::RevokeToken { id: token.id }).await?;
        Ok(Notice::ok(format!("Token '{}' revoked.", token.name)))
    }
    .await;
    after_form(&state, &caller, result)
}

/// The icon browsers show for the site (linked from every page, so they do not go looking
/// for `/favicon.ico`).
async fn favicon() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("favicon.svg"),
    )
}

/// The one script: `/` focuses search, drag and drop on the pipeline board, confirmation
/// before deleting. Pages work without it.
async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("kith.js"),
    )
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("kith.css"),
    )
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_paths_of_this_site_are_followed_after_sign_in() {
        for ok in ["/", "/account", "/contacts?q=a%20b&sort=-name"] {
            assert_eq!(local_path(Some(ok)), ok);
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example/",
            "/\t/evil.example/",
            "/\n/evil.example/",
            "/ü",
            "/a b",
            "account",
            "",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_path(None), "/");
    }
}
