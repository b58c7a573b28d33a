//! The admin's pages for people: users (add, change name, email, role and team, deactivate,
//! set a new password, revoke their API tokens), teams (add, rename, remove) and the
//! organisation's record-access setting. Every form goes through the same functions and
//! commands as the API (`api::accounts`), so the rules (the last active admin stays, a team
//! with members stays, passwords are long enough) are the API's, with the API's messages.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use kith_core::account::{AgentScope, OrgSettings, Role, Team, UserInfo};
use kith_core::{Command, Id};
use maud::{Markup, html};
use serde::Deserialize;

use super::{CsrfForm, Empty, Notice, html_page, notices, tokens_table};
use crate::api::auth::{Caller, Need, Routes};
use crate::api::{ApiError, AppState, NewUserBody, UserPatch, add_user, change_user, write};

pub(super) fn routes() -> Routes {
    use Method as M;
    Routes::new()
        .route(
            "/admin/users",
            &[(M::GET, Need::Admin), (M::POST, Need::Admin)],
            get(people_page).post(add_person),
        )
        .route(
            "/admin/users/{id}",
            &[(M::GET, Need::Admin), (M::POST, Need::Admin)],
            get(person_page).post(change_person),
        )
        .route(
            "/admin/users/{id}/password",
            &[(M::POST, Need::Admin)],
            post(new_password),
        )
        .route("/admin/teams", &[(M::POST, Need::Admin)], post(put_team))
        .route(
            "/admin/teams/delete",
            &[(M::POST, Need::Admin)],
            post(delete_team),
        )
        .route(
            "/admin/settings",
            &[(M::POST, Need::Admin)],
            post(put_settings),
        )
        .route(
            "/admin/tokens/revoke",
            &[(M::POST, Need::Admin)],
            post(revoke_token),
        )
}

/// Which page a form's answer shows.
enum View {
    People,
    Person(Id),
}

/// The page `view` after a form: with `result`'s notice, or with the error's message and
/// status.
fn after(
    state: &AppState,
    caller: &Caller,
    view: View,
    result: Result<Notice, ApiError>,
) -> Response {
    let (status, notice) = match result {
        Ok(n) => (StatusCode::OK, n),
        Err(e) => (e.status(), Notice::error(e.message())),
    };
    match view {
        View::People => people_view(state, caller, status, &notice),
        View::Person(id) => person_view(state, caller, id, status, &notice),
    }
}

/// A `<select>` of roles with `current` chosen.
fn role_select(id: &str, current: Role) -> Markup {
    html! {
        select id=(id) name="role" {
            @for r in Role::ALL {
                option value=(r.name()) selected[r == current] { (r.name()) }
            }
        }
    }
}

/// A `<select>` of teams (and none) with `current` chosen.
fn team_select(id: &str, teams: &[Team], current: Option<&str>) -> Markup {
    html! {
        select id=(id) name="team" {
            option value="" selected[current.is_none()] { "No team" }
            @for t in teams {
                option value=(t.key) selected[current == Some(t.key.as_str())] { (t.name) " (" (t.key) ")" }
            }
        }
    }
}

/// A password shown once, when a form made one.
fn shown_password(n: &Notice) -> Markup {
    html! {
        @if let Some(p) = &n.secret {
            p.ok role="status" {
                "Their password (copy it now and hand it over; it is not shown again): "
                code.secret { (p) }
            }
        }
    }
}

async fn people_page(State(state): State<AppState>, caller: Caller) -> Response {
    people_view(&state, &caller, StatusCode::OK, &Notice::default())
}

fn people_view(state: &AppState, caller: &Caller, status: StatusCode, n: &Notice) -> Response {
    let dir = state.store.directory();
    let csrf = caller.csrf().unwrap_or("");
    let teams = dir.teams();
    let users = dir.users();
    let members = |key: &str| {
        users
            .iter()
            .filter(|u| u.team.as_deref() == Some(key))
            .count()
    };
    let scope = dir.settings().agent_scope;
    let body = html! {
        (super::admin_nav("/admin/users"))
        section.card {
            h1 { "People" }
            (notices(n))
            (shown_password(n))
            table {
                thead { tr { th { "Name" } th { "Email" } th { "Role" } th { "Team" } th { "Status" } } }
                tbody {
                    @for u in &users {
                        tr {
                            td { a href={ "/admin/users/" (u.id) } { (display_name(&u.public())) } }
                            td { (u.email) }
                            td { (u.role) }
                            td { (u.team.as_deref().unwrap_or("—")) }
                            td { @if u.active { "active" } @else { "deactivated" } }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "Add a person" }
            form method="post" action="/admin/users" {
                input type="hidden" name="csrf" value=(csrf);
                label for="new-email" { "Email" }
                input #new-email type="email" name="email" autocomplete="off" required;
                label for="new-name" { "Name" }
                input #new-name type="text" name="name" maxlength="200";
                label for="new-role" { "Role" }
                (role_select("new-role", Role::Agent))
                label for="new-team" { "Team" }
                (team_select("new-team", teams, None))
                label for="new-password" { "Password (leave empty to generate one)" }
                input #new-password type="password" name="password" autocomplete="new-password"
                    minlength=(kith_core::account::MIN_PASSWORD);
                button type="submit" { "Add person" }
            }
        }
        section.card {
            h2 { "Teams" }
            @if teams.is_empty() {
                p { "No teams yet." }
            } @else {
                table {
                    thead { tr { th { "Key" } th { "Name" } th { "Members" } th { span.sr { "Action" } } } }
                    tbody {
                        @for t in teams {
                            tr {
                                td { code { (t.key) } }
                                td { (t.name) }
                                td { (members(&t.key)) }
                                td {
                                    form.inline method="post" action="/admin/teams/delete" {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="key" value=(t.key);
                                        button type="submit" aria-label={ "Remove team " (t.name) } { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action="/admin/teams" {
                input type="hidden" name="csrf" value=(csrf);
                label for="team-key" { "Key (lower-case letters, digits and -; an existing key renames that team)" }
                input #team-key type="text" name="key" maxlength="64" pattern="[a-z0-9-]+" required;
                label for="team-name" { "Name" }
                input #team-name type="text" name="name" maxlength="200" required;
                button type="submit" { "Save team" }
            }
        }
        section.card {
            h2 { "Record access" }
            form method="post" action="/admin/settings" {
                input type="hidden" name="csrf" value=(csrf);
                fieldset {
                    legend { "Agents see" }
                    label.choice {
                        input type="radio" name="agent_scope" value="all" checked[scope == AgentScope::All];
                        "every record"
                    }
                    label.choice {
                        input type="radio" name="agent_scope" value="own_and_team" checked[scope == AgentScope::OwnAndTeam];
                        "only their own and their team's records"
                    }
                }
                button type="submit" { "Save" }
            }
        }
    };
    html_page(status, "People", Some(caller), body)
}

/// A user's name, or their email when they have none.
fn display_name(u: &UserInfo) -> &str {
    if u.name.trim().is_empty() {
        &u.email
    } else {
        &u.name
    }
}

async fn person_page(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Response {
    match raw.parse() {
        Ok(id) => person_view(&state, &caller, id, StatusCode::OK, &Notice::default()),
        Err(_) => people_view(
            &state,
            &caller,
            StatusCode::NOT_FOUND,
            &Notice::error(format!("There is no user with id '{raw}'.")),
        ),
    }
}

fn person_view(
    state: &AppState,
    caller: &Caller,
    id: Id,
    status: StatusCode,
    n: &Notice,
) -> Response {
    let dir = state.store.directory();
    let Some(u) = dir.user(id).map(kith_core::User::public) else {
        return people_view(
            state,
            caller,
            StatusCode::NOT_FOUND,
            &Notice::error(format!("There is no user with id {id}.")),
        );
    };
    let csrf = caller.csrf().unwrap_or("");
    let now = state.store.clock().now();
    let tokens = dir.tokens(Some(id));
    let body = html! {
        p { a href="/admin/users" { "← All people" } }
        section.card {
            h1 { (display_name(&u)) }
            (notices(n))
            (shown_password(n))
            form method="post" action={ "/admin/users/" (id) } {
                input type="hidden" name="csrf" value=(csrf);
                label for="name" { "Name" }
                input #name type="text" name="name" value=(u.name) maxlength="200";
                label for="email" { "Email" }
                input #email type="email" name="email" value=(u.email) required;
                label for="role" { "Role" }
                (role_select("role", u.role))
                label for="team" { "Team" }
                (team_select("team", dir.teams(), u.team.as_deref()))
                label for="status" { "Status" }
                select #status name="status" {
                    option value="active" selected[u.active] { "Active: can sign in" }
                    option value="inactive" selected[!u.active] { "Deactivated: signed out, tokens refused" }
                }
                button type="submit" { "Save changes" }
            }
        }
        section.card {
            h2 { "Password" }
            p { "Sets a new generated password, shown once, and signs them out everywhere." }
            form method="post" action={ "/admin/users/" (id) "/password" } {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Set a new password" }
            }
        }
        section.card {
            h2 { "API tokens" }
            (tokens_table(&tokens, now, csrf, "/admin/tokens/revoke"))
        }
    };
    html_page(status, display_name(&u), Some(caller), body)
}

/// Text fields of a form: empty means "none".
fn some(s: String) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

#[derive(Deserialize)]
struct AddForm {
    email: String,
    #[serde(default)]
    name: String,
    role: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    password: String,
}

async fn add_person(
    State(state): State<AppState>,
    caller: Caller,
    CsrfForm(f): CsrfForm<AddForm>,
) -> Response {
    let body = NewUserBody {
        email: f.email,
        name: f.name,
        role: f.role,
        team: some(f.team),
        // Passwords are taken as typed: only an empty field means "generate one".
        password: (!f.password.is_empty()).then_some(f.password),
    };
    let result = add_user(&state, &caller, body)
        .await
        .map(|(u, generated)| Notice {
            ok: Some(format!("Added {} as {}.", u.email, u.role)),
            secret: generated,
            ..Notice::default()
        });
    after(&state, &caller, View::People, result)
}

#[derive(Deserialize)]
struct PersonForm {
    name: String,
    email: String,
    role: String,
    #[serde(default)]
    team: String,
    status: String,
}

async fn change_person(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    CsrfForm(f): CsrfForm<PersonForm>,
) -> Response {
    let Ok(id) = raw.parse::<Id>() else {
        return person_page(State(state), caller, Path(raw)).await;
    };
    let result = async {
        let active = match f.status.as_str() {
            "active" => true,
            "inactive" => false,
            other => {
                return Err(ApiError::bad_request(
                    "bad_form",
                    format!("status: '{other}' is neither active nor inactive"),
                )
                .with_field("status"));
            }
        };
        let patch = UserPatch {
            email: Some(f.email),
            name: Some(f.name),
            role: Some(f.role),
            team: Some(some(f.team)),
            active: Some(active),
            password: None,
        };
        let u = change_user(&state, &caller, id, patch).await?;
        Ok(Notice::ok(format!("Saved {}.", u.email)))
    }
    .await;
    after(&state, &caller, View::Person(id), result)
}

async fn new_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    CsrfForm(Empty {}): CsrfForm<Empty>,
) -> Response {
    let Ok(id) = raw.parse::<Id>() else {
        return person_page(State(state), caller, Path(raw)).await;
    };
    let password = crate::api::generate_password();
    let patch = UserPatch {
        password: Some(password.clone()),
        ..UserPatch::default()
    };
    let result = change_user(&state, &caller, id, patch)
        .await
        .map(|u| Notice {
            ok: Some(format!(
                "{} has a new password and was signed out.",
                u.email
            )),
            secret: Some(password),
            ..Notice::default()
        });
    after(&state, &caller, View::Person(id), result)
}

#[derive(Deserialize)]
struct TeamForm {
    key: String,
    name: String,
}

async fn put_team(
    State(state): State<AppState>,
    caller: Caller,
    CsrfForm(f): CsrfForm<TeamForm>,
) -> Response {
    let team = Team {
        key: f.key.trim().to_owned(),
        name: f.name.trim().to_owned(),
    };
    let saved = format!("Saved team {}.", team.name);
    let result = write(&state.store, &caller, Command::PutTeam(team))
        .await
        .map(|_| Notice::ok(saved));
    after(&state, &caller, View::People, result)
}

#[derive(Deserialize)]
struct KeyForm {
    key: String,
}

async fn delete_team(
    State(state): State<AppState>,
    caller: Caller,
    CsrfForm(f): CsrfForm<KeyForm>,
) -> Response {
    let removed = format!("Removed team {}.", f.key);
    let result = write(&state.store, &caller, Command::DeleteTeam { key: f.key })
        .await
        .map(|_| Notice::ok(removed));
    after(&state, &caller, View::People, result)
}

#[derive(Deserialize)]
struct ScopeForm {
    agent_scope: String,
}

async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    CsrfForm(f): CsrfForm<ScopeForm>,
) -> Response {
    let result = async {
        let agent_scope = match f.agent_scope.as_str() {
            "all" => AgentScope::All,
            "own_and_team" => AgentScope::OwnAndTeam,
            other => {
                return Err(ApiError::bad_request(
                    "bad_form",
                    format!("agent_scope: '{other}' is neither all nor own_and_team"),
                )
                .with_field("agent_scope"));
            }
        };
        write(
            &state.store,
            &caller,
            Command::SetOrgSettings(OrgSettings { agent_scope }),
        )
        .await?;
        Ok(Notice::ok("Saved the record access setting."))
    }
    .await;
    after(&state, &caller, View::People, result)
}

#[derive(Deserialize)]
struct TokenForm {
    id: String,
}

async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    CsrfForm(f): CsrfForm<TokenForm>,
) -> Response {
    let token =
        f.id.parse()
            .ok()
            .and_then(|id| state.store.directory().token(id));
    let Some(token) = token else {
        return after(
            &state,
            &caller,
            View::People,
            Err(ApiError::not_found(format!(
                "There is no token with id '{}'.",
                f.id
            ))),
        );
    };
    let result = write(&state.store, &caller, Command::RevokeToken { id: token.id })
        .await
        .map(|_| Notice::ok(format!("Revoked token '{}'.", token.name)));
    after(&state, &caller, View::Person(token.user), result)
}
