//! The admin's plugin pages: `/admin/plugins` lists what is installed with its health and
//! takes an upload (manifest and `.wasm`); the upload is held for a few minutes while the
//! admin reads what the plugin asks to do and ticks what to grant (for an upgrade, what it
//! asks beyond its current grant is marked new); approving installs or upgrades it.
//! `/admin/plugins/{id}` shows one plugin: status, health (calls, failures, last error,
//! suspension), its fields, reports and scorers, a settings form generated from its settings
//! schema, and enable, disable, resume and remove.
//!
//! Every action goes through the same [`Registry`](crate::plugin::Registry) calls as the
//! plugin API, so the rules and messages are the API's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use kith_core::money::Decimal;
use kith_core::{Timestamp, Value};
use maud::{Markup, html};

use super::fields::posted;
use super::{CsrfPosted, Notice, check_csrf, html_page, notices};
use crate::api::auth::{Caller, Need, Routes};
use crate::api::{ApiError, AppState, plugin_call};
use crate::plugin::manifest::{MAX_MANIFEST, Manifest};
use crate::plugin::registry::{MAX_WASM, PluginView};
use crate::plugin::{InstallMode, Registry, RegistryError};

/// How long an upload waits for the admin's approval.
const HOLD_MINUTES: i64 = 15;

/// Uploads waiting for approval, by a random id.
pub(crate) type Uploads = Arc<Mutex<HashMap<String, Held>>>;

/// One upload waiting for approval.
pub(crate) struct Held {
    manifest: String,
    wasm: Vec<u8>,
    /// Who uploaded it (only they may approve it).
    by: kith_core::Id,
    at: Timestamp,
}

pub(super) fn routes() -> Routes {
    use Method as M;
    let limit = DefaultBodyLimit::max(MAX_WASM + MAX_MANIFEST + 64 * 1024);
    Routes::new()
        .route("/admin/plugins", &[(M::GET, Need::Admin)], get(list_page))
        .route(
            "/admin/plugins/upload",
            &[(M::POST, Need::Admin)],
            post(upload).layer(limit),
        )
        .route(
            "/admin/plugins/approve",
            &[(M::POST, Need::Admin)],
            post(approve),
        )
        .route(
            "/admin/plugins/{id}",
            &[(M::GET, Need::Admin), (M::POST, Need::Admin)],
            get(plugin_page).post(act),
        )
        .route(
            "/admin/plugins/{id}/settings",
            &[(M::POST, Need::Admin)],
            post(settings),
        )
}

/// Runs a registry call on the blocking pool (installs compile code).
async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, ApiError> {
    plugin_call(&state.plugins, f).await
}

/// What a capability lets a plugin do, in words.
fn explain(capability: &str) -> String {
    match capability.split_once(':') {
        Some(("read", kind)) => format!("Read every {kind} record"),
        Some(("action", action)) => format!("Act on records: {}", action.replace('-', " ")),
        _ => capability.to_owned(),
    }
}

async fn list_page(State(state): State<AppState>, caller: Caller) -> Response {
    list_view(&state, &caller, StatusCode::OK, &Notice::default())
}

fn list_view(state: &AppState, caller: &Caller, status: StatusCode, n: &Notice) -> Response {
    let plugins = state.plugins.list();
    let csrf = caller.csrf().unwrap_or("");
    let body = html! {
        h1 { "Plugins" }
        (super::admin_nav("/admin/plugins"))
        (notices(n))
        section.card {
            h2 { "Installed" }
            @if plugins.is_empty() {
                p { "No plugins are installed." }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr { th { "Plugin" } th { "Version" } th { "Status" } th { "Calls" } th { "Failures" } th { "Last error" } } }
                        tbody {
                            @for p in &plugins {
                                tr {
                                    td { a href=(format!("/admin/plugins/{}", p.id)) { (p.name) } br; small.muted { (p.id) } }
                                    td { (p.version) }
                                    td class=(if p.status == "active" { "" } else { "overdue" }) { (p.status) }
                                    td { (p.metrics.calls) }
                                    td { (p.metrics.failures) }
                                    td { (p.metrics.last_error.as_deref().unwrap_or("—")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "Install or upgrade" }
            p { "Upload the plugin's " code { "kith-plugin.toml" } " and its " code { ".wasm" } " file. Before anything is installed you see what it asks to do and choose what to grant; a plugin already installed is upgraded." }
            form method="post" action="/admin/plugins/upload" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(csrf);
                label for="manifest" { "Manifest (kith-plugin.toml)" }
                input #manifest type="file" name="manifest" accept=".toml" required;
                label for="wasm" { "Component (.wasm)" }
                input #wasm type="file" name="wasm" accept=".wasm" required;
                button type="submit" { "Upload and review" }
            }
        }
    };
    html_page(status, "Plugins", Some(caller), body)
}

/// The upload's parts, the CSRF token checked.
async fn read_upload(caller: &Caller, mut form: Multipart) -> Result<(String, Vec<u8>), ApiError> {
    let (mut csrf, mut manifest, mut wasm) = (String::new(), None, None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request("bad_upload", e.body_text()))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::bad_request("bad_upload", e.body_text()))?;
        match name.as_str() {
            "csrf" => csrf = String::from_utf8_lossy(&bytes).into_owned(),
            "manifest" => {
                manifest = Some(String::from_utf8(bytes.to_vec()).map_err(|_| {
                    ApiError::bad_request("bad_upload", "the manifest is not UTF-8 text")
                        .with_field("manifest")
                })?);
            }
            "wasm" => wasm = Some(bytes.to_vec()),
            _ => {}
        }
    }
    check_csrf(caller.csrf(), &csrf)?;
    let manifest = manifest.filter(|m| !m.trim().is_empty()).ok_or_else(|| {
        ApiError::bad_request("bad_upload", "choose the plugin's manifest file")
            .with_field("manifest")
    })?;
    let wasm = wasm.filter(|w| !w.is_empty()).ok_or_else(|| {
        ApiError::bad_request("bad_upload", "choose the plugin's .wasm file").with_field("wasm")
    })?;
    Ok((manifest, wasm))
}

async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let result = async {
        let form = form.map_err(|e| ApiError::bad_request("bad_upload", e.body_text()))?;
        let (manifest, wasm) = read_upload(&caller, form).await?;
        if wasm.len() > MAX_WASM {
            return Err(ApiError::from(RegistryError::TooLarge(wasm.len())));
        }
        let m =
            Manifest::parse(&manifest).map_err(|e| ApiError::from(RegistryError::Manifest(e)))?;
        let now = state.store.clock().now();
        let key = kith_core::account::new_secret("");
        let mut held = state
            .uploads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Uploads nobody approved in time are dropped (and with them their memory).
        held.retain(|_, h| now - h.at < chrono::Duration::minutes(HOLD_MINUTES));
        held.insert(
            key.clone(),
            Held {
                manifest,
                wasm,
                by: caller.user.id,
                at: now,
            },
        );
        Ok((key, m))
    }
    .await;
    match result {
        Ok((key, m)) => {
            let installed = state.plugins.view(&m.id).ok();
            review(&caller, &key, &m, installed.as_ref())
        }
        Err(e) => list_view(&state, &caller, e.status(), &Notice::error(e.message())),
    }
}

/// The approval page: what the plugin is and what it asks to do.
fn review(caller: &Caller, key: &str, m: &Manifest, installed: Option<&PluginView>) -> Response {
    let requested = m.requested();
    let granted: Vec<String> = installed.map(|p| p.granted.clone()).unwrap_or_default();
    let body = html! {
        section.card {
            h1 { @if installed.is_some() { "Upgrade " } @else { "Install " } (m.name) }
            dl {
                dt { "Id" } dd { (m.id) }
                dt { "Version" } dd {
                    (m.version)
                    @if let Some(p) = installed { " (installed: " (p.version) ")" }
                }
                dt { "Description" } dd { (m.description) }
            }
            form method="post" action="/admin/plugins/approve" {
                input type="hidden" name="csrf" value=(caller.csrf().unwrap_or(""));
                input type="hidden" name="upload" value=(key);
                fieldset {
                    legend { "It asks to" }
                    @if requested.is_empty() {
                        p { "Nothing beyond its own hooks: it reads no records and takes no actions." }
                    }
                    @for (i, cap) in requested.iter().enumerate() {
                        label.choice for=(format!("cap-{i}")) {
                            input id=(format!("cap-{i}")) type="checkbox" name="grant" value=(cap) checked;
                            (explain(cap)) " " code { (cap) }
                            @if installed.is_some() && !granted.contains(cap) { " " strong.badge { "new" } }
                        }
                    }
                }
                p.muted { "A capability left unticked is refused: the plugin gets a clear error when it tries. A plugin whose hooks need it may fail to install." }
                div.actions {
                    button type="submit" { @if installed.is_some() { "Approve and upgrade" } @else { "Approve and install" } }
                    a href="/admin/plugins" { "Cancel" }
                }
            }
        }
    };
    html_page(StatusCode::OK, "Review plugin", Some(caller), body)
}

async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    CsrfPosted(form): CsrfPosted,
) -> Response {
    let key = posted(&form, "upload").unwrap_or("").to_owned();
    let grant: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "grant")
        .map(|(_, v)| v.clone())
        .collect();
    let held = {
        let mut uploads = state
            .uploads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match uploads.get(&key) {
            Some(h) if h.by == caller.user.id => uploads.remove(&key),
            _ => None,
        }
    };
    let Some(held) = held else {
        let e = "That upload is no longer waiting (it expired or was already installed); upload it again.";
        return list_view(&state, &caller, StatusCode::NOT_FOUND, &Notice::error(e));
    };
    let result = blocking(&state, move |r| {
        let id = Manifest::parse(&held.manifest)?.id;
        let mode = if r.view(&id).is_ok() {
            InstallMode::Upgrade
        } else {
            InstallMode::New
        };
        r.install(&held.manifest, &held.wasm, &grant, mode)
    })
    .await;
    match result {
        Ok(view) => Redirect::to(&format!("/admin/plugins/{}", view.id)).into_response(),
        Err(e) => list_view(&state, &caller, e.status(), &Notice::error(e.message())),
    }
}

async fn plugin_page(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    plugin_view(&state, &caller, &id, StatusCode::OK, &Notice::default())
}

fn plugin_view(
    state: &AppState,
    caller: &Caller,
    id: &str,
    status: StatusCode,
    n: &Notice,
) -> Response {
    let p = match state.plugins.view(id) {
        Ok(p) => p,
        Err(e) => return super::records::error_page(caller, &ApiError::from(e)),
    };
    let csrf = caller.csrf().unwrap_or("");
    let action = |label: &str, what: &str, danger: bool| {
        html! {
            form.inline method="post" action=(format!("/admin/plugins/{}", p.id)) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="do" value=(what);
                @if danger {
                    button.danger type="submit" data-confirm=(format!("Remove the plugin {}? Its fields' values stay on records.", p.name)) { (label) }
                } @else {
                    button type="submit" { (label) }
                }
            }
        }
    };
    let body = html! {
        p.muted { a href="/admin/plugins" { "All plugins" } }
        div.page-head {
            h1 { (p.name) " " small.muted { (p.version) } }
            @if p.enabled { (action("Disable", "disable", false)) } @else { (action("Enable", "enable", false)) }
            @if p.status == "suspended" { (action("Resume", "resume", false)) }
            (action("Remove", "remove", true))
        }
        (notices(n))
        div.detail {
            section.card {
                h2 { "Health" }
                dl {
                    dt { "Status" } dd class=(if p.status == "active" { "" } else { "overdue" }) { (p.status) }
                    @if let Some(r) = &p.status_reason { dt { "Why" } dd { (r) } }
                    dt { "Calls" } dd { (p.metrics.calls) }
                    dt { "Failures" } dd { (p.metrics.failures) " (" (p.metrics.consecutive_failures) " in a row)" }
                    dt { "Last error" } dd { (p.metrics.last_error.as_deref().unwrap_or("—")) }
                    @if let Some(at) = p.metrics.last_error_at { dt { "Failed at" } dd { (at.format("%Y-%m-%d %H:%M")) } }
                    dt { "Latency p50 / p99" } dd {
                        (p.metrics.p50_us.map_or("—".to_owned(), |u| format!("{u} µs"))) " / "
                        (p.metrics.p99_us.map_or("—".to_owned(), |u| format!("{u} µs")))
                    }
                    dt { "Limits" } dd { (p.limits.hook_timeout_ms) " ms, " (p.limits.memory_mib) " MiB" }
                }
            }
            section.card {
                h2 { "What it does" }
                p { (p.description) }
                dl {
                    dt { "Granted" } dd { @if p.granted.is_empty() { "nothing" } @else { (p.granted.join(", ")) } }
                    @if p.requested != p.granted { dt { "Requested" } dd { (p.requested.join(", ")) } }
                    dt { "Custom fields" } dd { @if p.fields.is_empty() { "none" } @else { (p.fields.join(", ")) } }
                    dt { "Reports" } dd {
                        @if p.reports.is_empty() { "none" }
                        @for r in &p.reports { a href=(format!("/reports/{r}")) { (r) } " " }
                    }
                    dt { "Scorers" } dd { @if p.scorers.is_empty() { "none" } @else { (p.scorers.iter().map(|s| s.key.clone()).collect::<Vec<_>>().join(", ")) } }
                }
            }
            @if !p.settings.is_empty() {
                section.card {
                    h2 { "Settings" }
                    form method="post" action=(format!("/admin/plugins/{}/settings", p.id)) {
                        input type="hidden" name="csrf" value=(csrf);
                        (settings_controls(&p, n))
                        button type="submit" { "Save settings" }
                    }
                }
            }
        }
    };
    html_page(status, &p.name, Some(caller), body)
}

/// A control per setting, by its type, filled with its current value.
fn settings_controls(p: &PluginView, n: &Notice) -> Markup {
    html! {
        @for s in &p.settings {
            @let id = format!("s-{}", s.name);
            @let current = match &s.value { Value::Null => String::new(), Value::List(items) => items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "), v => v.to_string() };
            @let bad = n.field.as_deref() == Some(s.name.as_str());
            div.field.invalid[bad] {
                @match s.setting_type {
                    "boolean" => {
                        input type="hidden" name=(s.name) value="false";
                        label.choice for=(id) {
                            input id=(id) type="checkbox" name=(s.name) value="true" checked[current == "true"];
                            (s.label)
                        }
                    }
                    "choice" => {
                        label for=(id) { (s.label) }
                        select id=(id) name=(s.name) {
                            @for o in &s.options { option value=(o) selected[*o == current] { (o) } }
                        }
                    }
                    ty => {
                        label for=(id) { (s.label) }
                        input id=(id) type="text" name=(s.name) value=(current)
                            inputmode=[matches!(ty, "integer" | "number").then_some("decimal")]
                            placeholder=[(ty == "text-list").then_some("comma, separated")];
                    }
                }
                small.help {
                    @if let Some(h) = &s.help { (h) " " }
                    @if s.default != Value::Null { "Default: " (s.default) "." }
                }
                @if bad { @if let Some(e) = &n.error { p.field-error { (e) } } }
            }
        }
    }
}

async fn act(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    CsrfPosted(form): CsrfPosted,
) -> Response {
    let what = posted(&form, "do").unwrap_or("").to_owned();
    let target = id.clone();
    let result = blocking(&state, move |r| match what.as_str() {
        "enable" => r.enable(&target).map(|_| "Enabled."),
        "disable" => r
            .disable(&target)
            .map(|_| "Disabled: its hooks no longer run."),
        "resume" => r.resume(&target).map(|_| "Resumed."),
        "remove" => r.remove(&target).map(|()| "Removed."),
        other => Err(RegistryError::State {
            plugin: target.clone(),
            message: format!(
                "'{other}' is not something a plugin can do (enable, disable, resume, remove)"
            ),
        }),
    })
    .await;
    match result {
        Ok("Removed.") => list_view(
            &state,
            &caller,
            StatusCode::OK,
            &Notice::ok(format!("Plugin {id} removed.")),
        ),
        Ok(message) => plugin_view(&state, &caller, &id, StatusCode::OK, &Notice::ok(message)),
        Err(e) => plugin_view(
            &state,
            &caller,
            &id,
            e.status(),
            &Notice::error(e.message()),
        ),
    }
}

async fn settings(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    CsrfPosted(form): CsrfPosted,
) -> Response {
    let result = async {
        let view = blocking(&state, {
            let id = id.clone();
            move |r| r.view(&id)
        })
        .await?;
        let mut values = BTreeMap::new();
        for s in &view.settings {
            let Some(raw) = posted(&form, &s.name).map(str::trim) else {
                continue;
            };
            let bad = |what: &str| {
                ApiError::from(RegistryError::Setting {
                    plugin: id.clone(),
                    setting: s.name.clone(),
                    message: format!("'{raw}' is not {what}"),
                })
            };
            let v = match s.setting_type {
                _ if raw.is_empty() && s.setting_type != "text-list" => Value::Null,
                "integer" => Value::Integer(raw.parse().map_err(|_| bad("a whole number"))?),
                "number" => Value::Number(raw.parse::<Decimal>().map_err(|_| bad("a number"))?),
                "boolean" => Value::Bool(raw == "true"),
                "text-list" => Value::List(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(|t| Value::Text(t.to_owned()))
                        .collect(),
                ),
                _ => Value::Text(raw.to_owned()),
            };
            values.insert(s.name.clone(), v);
        }
        let target = id.clone();
        blocking(&state, move |r| r.set_settings(&target, values)).await
    }
    .await;
    match result {
        Ok(_) => plugin_view(
            &state,
            &caller,
            &id,
            StatusCode::OK,
            &Notice::ok("Settings saved."),
        ),
        Err(e) => {
            let mut n = Notice::error(e.message());
            n.field = e.field().map(str::to_owned);
            plugin_view(&state, &caller, &id, e.status(), &n)
        }
    }
}
