//! Accounts over HTTP: who am I (`/me`, password change), users and teams (admins), API
//! tokens (your own; admins anyone's), and the organisation's access setting.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use kith_core::account::{
    self, AgentScope, NewUser, OrgSettings, Role, Team, UserChanges, UserInfo,
};
use kith_core::{Command, Id, NewToken, Outcome, Timestamp, Token, User};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};

use super::auth::{Caller, Need, Routes, Via};
use super::body::{JsonObject, Params, params};
use super::{ApiError, AppState, write};

pub(super) fn routes() -> Routes {
    use Method as M;
    Routes::new()
        .route("/api/v1/me", &[(M::GET, Need::Viewer)], get(me))
        .route(
            "/api/v1/me/password",
            &[(M::POST, Need::Viewer)],
            post(change_password),
        )
        .route(
            "/api/v1/users",
            &[(M::GET, Need::Admin), (M::POST, Need::Admin)],
            get(users).post(create_user),
        )
        .route(
            "/api/v1/users/{id}",
            &[(M::GET, Need::Admin), (M::PATCH, Need::Admin)],
            get(user).patch(update_user),
        )
        .route(
            "/api/v1/teams",
            &[(M::GET, Need::Viewer), (M::POST, Need::Admin)],
            get(teams).post(create_team),
        )
        .route(
            "/api/v1/teams/{key}",
            &[(M::PUT, Need::Admin), (M::DELETE, Need::Admin)],
            axum::routing::put(put_team).delete(delete_team),
        )
        .route(
            "/api/v1/tokens",
            &[(M::GET, Need::Viewer), (M::POST, Need::Viewer)],
            get(tokens).post(create_token),
        )
        .route(
            "/api/v1/tokens/{id}",
            &[(M::DELETE, Need::Viewer)],
            axum::routing::delete(revoke_token),
        )
        .route(
            "/api/v1/settings",
            &[(M::GET, Need::Viewer), (M::PUT, Need::Admin)],
            get(settings).put(put_settings),
        )
}

/// Parses a JSON object into `T`, answering 422 naming what is wrong.
fn parse<T: serde::de::DeserializeOwned>(
    body: serde_json::Map<String, JsonValue>,
    what: &str,
) -> Result<T, ApiError> {
    serde_json::from_value(JsonValue::Object(body)).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("not {what}: {e}"),
        )
    })
}

fn role(raw: &str) -> Result<Role, ApiError> {
    Role::parse(raw).map_err(|m| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", m).with_field("role")
    })
}

fn user_id(raw: &str) -> Result<Id, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("no user with id '{raw}' (ids are UUIDs)")))
}

/// Hashes a password on the blocking pool (Argon2id is slow on purpose).
async fn hash(password: String) -> Result<String, ApiError> {
    Ok(tokio::task::spawn_blocking(move || account::hash_password(&password)).await??)
}

fn user_json(u: &User) -> JsonValue {
    json!(u.public())
}

async fn me(caller: Caller) -> impl IntoResponse {
    let scope = if caller.access.sees_all {
        "all"
    } else {
        "own_and_team"
    };
    let (signed_in_with, token_id) = match &caller.via {
        Via::Session { .. } => ("session", None),
        Via::Token(t) => ("token", Some(t.to_string())),
    };
    Json(json!({
        "user": user_json(&caller.user),
        "sees": scope,
        "signed_in_with": signed_in_with,
        "token_id": token_id,
        // What the audit log records as this caller's changes.
        "actor": caller.actor(),
        "csrf_token": caller.csrf(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let p: PasswordChange = parse(body, "a password change (current_password, new_password)")?;
    change_own_password(&state, &caller, p.current_password, p.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the current password, stores the new one and ends the user's other sessions.
/// Shared by the API and the account page.
pub(crate) async fn change_own_password(
    state: &AppState,
    caller: &Caller,
    current: String,
    new: String,
) -> Result<(), ApiError> {
    account::check_password(&new).map_err(ApiError::from)?;
    let stored = state
        .store
        .directory()
        .user(caller.user.id)
        .and_then(|u| u.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || {
        stored.is_some_and(|h| account::verify_password(&current, &h))
    })
    .await?;
    if !ok {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "current_password: is not your current password",
        )
        .with_field("current_password"));
    }
    let keep = match &caller.via {
        Via::Session { hash, .. } => Some(hash.clone()),
        Via::Token(_) => None,
    };
    let changes = UserChanges {
        password_hash: Some(hash(new).await?),
        keep_session: keep,
        ..UserChanges::default()
    };
    write(
        &state.store,
        caller,
        Command::UpdateUser {
            id: caller.user.id,
            changes,
        },
    )
    .await?;
    Ok(())
}

async fn users(State(state): State<AppState>) -> impl IntoResponse {
    let dir = state.store.directory();
    let items: Vec<JsonValue> = dir.users().into_iter().map(user_json).collect();
    Json(json!({ "items": items }))
}

async fn user(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = user_id(&raw)?;
    let dir = state.store.directory();
    let u = dir
        .user(id)
        .ok_or_else(|| ApiError::not_found(format!("no user with id {id}")))?;
    Ok(Json(user_json(u)))
}

/// A new user as the API and the admin page take it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUserBody {
    pub(crate) email: String,
    #[serde(default)]
    pub(crate) name: String,
    pub(crate) role: String,
    #[serde(default)]
    pub(crate) team: Option<String>,
    #[serde(default)]
    pub(crate) password: Option<String>,
}

/// Adds a user on `caller`'s authority; returns them, and the generated password when the
/// body had none (shown once, for the admin to hand over). Shared by the API and the page.
pub(crate) async fn add_user(
    state: &AppState,
    caller: &Caller,
    b: NewUserBody,
) -> Result<(UserInfo, Option<String>), ApiError> {
    let (password, generated) = match b.password {
        Some(p) => (p, false),
        None => (generate_password(), true),
    };
    let new = NewUser {
        email: b.email,
        name: b.name,
        role: role(&b.role)?,
        team: b.team,
        password_hash: Some(hash(password.clone()).await?),
    };
    match write(&state.store, caller, Command::CreateUser(new)).await? {
        Outcome::User(u) => Ok((u.public(), generated.then_some(password))),
        other => Err(ApiError::internal(&format!(
            "create user returned {other:?}"
        ))),
    }
}

async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let b: NewUserBody = parse(body, "a user (email, name, role, team, password)")?;
    let (user, generated) = add_user(&state, &caller, b).await?;
    let mut out = json!({ "user": user });
    if let Some(password) = generated {
        out["password"] = json!(password);
    }
    Ok((StatusCode::CREATED, Json(out)))
}

/// A password for a new account: 120 random bits, easy to copy.
pub(crate) fn generate_password() -> String {
    account::new_secret("")[..20].to_owned()
}

/// A change to a user as the API and the admin page take it; what is `None` stays.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserPatch {
    pub(crate) email: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) role: Option<String>,
    /// `Some(None)` takes them out of their team.
    #[serde(default, with = "double_option")]
    pub(crate) team: Option<Option<String>>,
    pub(crate) active: Option<bool>,
    pub(crate) password: Option<String>,
}

/// Tells a field set to `null` (`Some(None)`) from one left out (`None`).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let id = user_id(&raw)?;
    let p: UserPatch = parse(
        body,
        "a user change (email, name, role, team, active, password)",
    )?;
    Ok(Json(json!(change_user(&state, &caller, id, p).await?)))
}

/// Applies `p` to user `id` on `caller`'s authority (a new password or deactivation ends
/// their sessions). Shared by the API and the admin page.
pub(crate) async fn change_user(
    state: &AppState,
    caller: &Caller,
    id: Id,
    p: UserPatch,
) -> Result<UserInfo, ApiError> {
    let password_hash = match p.password {
        Some(pw) => Some(hash(pw).await?),
        None => None,
    };
    let changes = UserChanges {
        email: p.email,
        name: p.name,
        role: p.role.as_deref().map(role).transpose()?,
        team: p.team,
        active: p.active,
        password_hash,
        keep_session: None,
    };
    match write(&state.store, caller, Command::UpdateUser { id, changes }).await? {
        Outcome::User(u) => Ok(u.public()),
        other => Err(ApiError::internal(&format!(
            "update user returned {other:?}"
        ))),
    }
}

async fn teams(State(state): State<AppState>) -> impl IntoResponse {
    Json(json!({ "items": state.store.directory().teams() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamBody {
    key: String,
    name: String,
}

async fn create_team(
    State(state): State<AppState>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let t: TeamBody = parse(body, "a team (key, name)")?;
    if state
        .store
        .directory()
        .teams()
        .iter()
        .any(|x| x.key == t.key)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "a team '{}' already exists; PUT /api/v1/teams/{} to rename it",
                t.key, t.key
            ),
        )
        .with_field("key"));
    }
    let team = Team {
        key: t.key,
        name: t.name,
    };
    match write(&state.store, &caller, Command::PutTeam(team)).await? {
        Outcome::Team(t) => Ok((StatusCode::CREATED, Json(json!(t)))),
        other => Err(ApiError::internal(&format!("put team returned {other:?}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamRename {
    name: String,
}

async fn put_team(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let t: TeamRename = parse(body, "a team (name)")?;
    let team = Team { key, name: t.name };
    match write(&state.store, &caller, Command::PutTeam(team)).await? {
        Outcome::Team(t) => Ok(Json(json!(t))),
        other => Err(ApiError::internal(&format!("put team returned {other:?}"))),
    }
}

async fn delete_team(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    write(&state.store, &caller, Command::DeleteTeam { key }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensParams {
    /// A user id or email, or `all` (admins only).
    user: Option<String>,
}

async fn tokens(
    State(state): State<AppState>,
    caller: Caller,
    q: Params<TokensParams>,
) -> Result<impl IntoResponse, ApiError> {
    let wanted = params(q)?.user;
    let dir = state.store.directory();
    let user = match wanted.as_deref() {
        None => Some(caller.user.id),
        Some(_) if caller.role() != Role::Admin => {
            return Err(ApiError::forbidden(
                "only admins can list other users' tokens",
            ));
        }
        Some("all") => None,
        Some(u) => Some(named_user(&dir, u, "user", false)?),
    };
    Ok(Json(json!({ "items": dir.tokens(user) })))
}

/// The id of the user `u` names (id or email); an unknown one is an error naming `field`,
/// a 400 `bad_query` for a query parameter or a 422 for a body field.
fn named_user(
    dir: &kith_core::Directory,
    u: &str,
    field: &str,
    in_body: bool,
) -> Result<Id, ApiError> {
    dir.find_user(u).map(|x| x.id).ok_or_else(|| {
        let message = format!("{field}: there is no user '{u}'");
        let e = if in_body {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                message,
            )
        } else {
            ApiError::bad_request("bad_query", message)
        };
        e.with_field(field)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    expires_in_days: Option<u32>,
    #[serde(default)]
    user: Option<String>,
}

/// The longest a token may be given, in days, by `expires_in_days` (ten years).
pub(crate) const MAX_TOKEN_DAYS: u32 = 3650;

/// The expiry `days` from `now`, or a 422 naming `expires_in_days` when it is out of range.
pub(crate) fn expiry_in_days(now: Timestamp, days: u32) -> Result<Timestamp, ApiError> {
    if !(1..=MAX_TOKEN_DAYS).contains(&days) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("expires_in_days: must be a whole number of days from 1 to {MAX_TOKEN_DAYS}"),
        )
        .with_field("expires_in_days"));
    }
    Ok(now + chrono::Duration::days(i64::from(days)))
}

/// Creates an API token for `user` named `name`, signed by `caller`; returns it and its
/// secret, which exists nowhere else from then on (the store keeps its hash).
pub(crate) async fn issue_token(
    state: &AppState,
    caller: &Caller,
    user: Id,
    name: String,
    expires_at: Option<Timestamp>,
) -> Result<(Token, String), ApiError> {
    let secret = account::new_secret("kith_");
    let new = NewToken {
        user,
        name,
        hash: account::hash_secret(&secret),
        expires_at,
    };
    match write(&state.store, caller, Command::CreateToken(new)).await? {
        Outcome::Token(t) => Ok((t.public(), secret)),
        other => Err(ApiError::internal(&format!(
            "create token returned {other:?}"
        ))),
    }
}

async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let b: TokenBody = parse(body, "a token (name, expires_at or expires_in_days, user)")?;
    let user = match b.user.as_deref() {
        None => caller.user.id,
        Some(u) => {
            let found = named_user(&state.store.directory(), u, "user", true)?;
            if found != caller.user.id && caller.role() != Role::Admin {
                return Err(ApiError::forbidden(
                    "only admins can create tokens for other users",
                ));
            }
            found
        }
    };
    let now = state.store.clock().now();
    let expires_at = match (b.expires_at.as_deref(), b.expires_in_days) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "bad_body",
                "give expires_at or expires_in_days, not both",
            ));
        }
        (Some(t), None) => Some(kith_core::schema::parse_timestamp(t).map_err(|m| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                format!("expires_at: {m}"),
            )
            .with_field("expires_at")
        })?),
        (None, Some(days)) => Some(expiry_in_days(now, days)?),
        (None, None) => None,
    };
    if expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "expires_at: the token would have expired already",
        )
        .with_field("expires_at"));
    }
    let (token, secret) = issue_token(&state, &caller, user, b.name, expires_at).await?;
    // The secret is in this answer and nowhere else, ever.
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": token, "secret": secret })),
    ))
}

async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let not_found = || ApiError::not_found(format!("no token with id '{raw}'"));
    let id: Id = raw.parse().map_err(|_| not_found())?;
    let token = state.store.directory().token(id).ok_or_else(not_found)?;
    // Someone else's token is not found, rather than forbidden: its existence is not theirs
    // to learn.
    if token.user != caller.user.id && caller.role() != Role::Admin {
        return Err(not_found());
    }
    match write(&state.store, &caller, Command::RevokeToken { id }).await? {
        Outcome::Token(t) => Ok(Json(json!(t.public()))),
        other => Err(ApiError::internal(&format!(
            "revoke token returned {other:?}"
        ))),
    }
}

async fn settings(State(state): State<AppState>) -> impl IntoResponse {
    Json(json!(state.store.directory().settings()))
}

async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        agent_scope: AgentScope,
    }
    let b: Body = parse(body, "settings (agent_scope: all or own_and_team)")?;
    let s = OrgSettings {
        agent_scope: b.agent_scope,
    };
    write(&state.store, &caller, Command::SetOrgSettings(s.clone())).await?;
    Ok(Json(json!(s)))
}
