//! Plugin administration: `/api/v1/plugins` to list and install (multipart upload), and per
//! plugin: show, upgrade, enable, disable, resume, settings, limits, workflow delivery state,
//! uninstall; plus rescoring.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{DefaultBodyLimit, Multipart, Path, RawQuery, State};
use axum::http::Method;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use kith_core::EntityKind;
use serde_json::json;

use super::auth::{Need, Routes};
use super::body::{JsonObject, value};
use super::{ApiError, AppState};
use crate::plugin::manifest::MAX_MANIFEST;
use crate::plugin::registry::MAX_WASM;
use crate::plugin::{InstallMode, PluginError, Registry, RegistryError};

pub(super) fn routes() -> Routes {
    use Method as M;
    use Need::Admin;
    let upload_limit = DefaultBodyLimit::max(MAX_WASM + MAX_MANIFEST + 64 * 1024);
    // Plugins are administration: every route is for admins.
    Routes::new()
        .route(
            "/api/v1/plugins",
            &[(M::GET, Admin), (M::POST, Admin)],
            get(list).post(install).layer(upload_limit),
        )
        .route(
            "/api/v1/plugins/{id}",
            &[(M::GET, Admin), (M::PUT, Admin), (M::DELETE, Admin)],
            get(show).put(upgrade).delete(remove).layer(upload_limit),
        )
        .route(
            "/api/v1/plugins/{id}/enable",
            &[(M::POST, Admin)],
            post(enable),
        )
        .route(
            "/api/v1/plugins/{id}/disable",
            &[(M::POST, Admin)],
            post(disable),
        )
        .route(
            "/api/v1/plugins/{id}/resume",
            &[(M::POST, Admin)],
            post(resume),
        )
        .route(
            "/api/v1/plugins/{id}/delivery",
            &[(M::GET, Admin)],
            get(delivery),
        )
        .route(
            "/api/v1/plugins/{id}/settings",
            &[(M::PUT, Admin), (M::PATCH, Admin)],
            put(settings).patch(settings),
        )
        .route(
            "/api/v1/plugins/{id}/limits",
            &[(M::PUT, Admin), (M::PATCH, Admin)],
            put(limits).patch(limits),
        )
        .route("/api/v1/scores/rescore", &[(M::POST, Admin)], post(rescore))
}

/// Runs a registry operation on the blocking pool (they compile code and wait for commits).
pub(crate) async fn blocking<T: Send + 'static>(
    registry: &Registry,
    f: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, ApiError> {
    let r = registry.clone();
    Ok(tokio::task::spawn_blocking(move || f(&r)).await??)
}

async fn list(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let plugins = blocking(&state.plugins, |r| Ok(r.list())).await?;
    Ok(Json(json!({ "items": plugins })))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(blocking(&state.plugins, move |r| r.view(&id)).await?))
}

/// The parts of an install or upgrade upload.
struct Upload {
    manifest: String,
    wasm: Vec<u8>,
    grant: Vec<String>,
}

async fn read_upload(mut form: Multipart) -> Result<Upload, ApiError> {
    let bad = |field: &str, m: String| {
        ApiError::bad_request("bad_upload", m).with_field(field.to_owned())
    };
    let (mut manifest, mut wasm, mut grant) = (None, None, Vec::new());
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(&e)),
        };
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field.bytes().await.map_err(|e| multipart_error(&e))?;
        match name.as_str() {
            "manifest" => {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| bad("manifest", "the manifest is not UTF-8 text".to_owned()))?;
                manifest = Some(text);
            }
            "wasm" => wasm = Some(bytes.to_vec()),
            "grant" => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                grant.extend(
                    text.split([',', ' ', '\n'])
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
            }
            other => {
                return Err(bad(
                    other,
                    format!("unexpected part '{other}'; send manifest, wasm and grant"),
                ));
            }
        }
    }
    let manifest = manifest.ok_or_else(|| {
        bad(
            "manifest",
            "the upload has no 'manifest' part (the kith-plugin.toml)".to_owned(),
        )
    })?;
    let wasm = wasm.ok_or_else(|| {
        bad(
            "wasm",
            "the upload has no 'wasm' part (the plugin's .wasm file)".to_owned(),
        )
    })?;
    Ok(Upload {
        manifest,
        wasm,
        grant,
    })
}

fn multipart_error(e: &axum::extract::multipart::MultipartError) -> ApiError {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            "body_too_large",
            format!("the upload is larger than {MAX_WASM} bytes"),
        )
    } else {
        ApiError::bad_request(
            "bad_upload",
            format!("malformed multipart upload: {}", e.body_text()),
        )
    }
}

async fn install(
    State(state): State<AppState>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let form = form.map_err(|e| ApiError::bad_request("bad_upload", e.body_text()))?;
    let up = read_upload(form).await?;
    let view = blocking(&state.plugins, move |r| {
        r.install(&up.manifest, &up.wasm, &up.grant, InstallMode::New)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn upgrade(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let form = form.map_err(|e| ApiError::bad_request("bad_upload", e.body_text()))?;
    let up = read_upload(form).await?;
    let view = blocking(&state.plugins, move |r| {
        let m = crate::plugin::manifest::Manifest::parse(&up.manifest)?;
        if m.id != id {
            return Err(RegistryError::Mismatch {
                plugin: id,
                message: format!("the uploaded manifest is for plugin '{}'", m.id),
            });
        }
        r.install(&up.manifest, &up.wasm, &up.grant, InstallMode::Upgrade)
    })
    .await?;
    Ok(Json(view))
}

async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    blocking(&state.plugins, move |r| r.remove(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn enable(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        blocking(&state.plugins, move |r| r.enable(&id)).await?,
    ))
}

async fn disable(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        blocking(&state.plugins, move |r| r.disable(&id)).await?,
    ))
}

async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        blocking(&state.plugins, move |r| r.resume(&id)).await?,
    ))
}

/// Workflow delivery: cursor lag, pending timers, recent failures.
async fn delivery(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        blocking(&state.plugins, move |r| r.delivery(&id)).await?,
    ))
}

async fn settings(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let mut values = BTreeMap::new();
    for (k, v) in body {
        let v = value(&k, v)?;
        values.insert(k, v);
    }
    Ok(Json(
        blocking(&state.plugins, move |r| r.set_settings(&id, values)).await?,
    ))
}

async fn limits(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let limits: kith_core::PluginLimits = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("limits: {e} (fields: hook_timeout_ms, memory_mib; null for the server's)"),
        )
    })?;
    Ok(Json(
        blocking(&state.plugins, move |r| r.set_limits(&id, limits)).await?,
    ))
}

async fn rescore(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let mut kind = None;
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("kind", k)) => {
                kind = Some(EntityKind::parse(k).ok_or_else(|| {
                    ApiError::bad_request("bad_query", format!("kind: '{k}' is not an entity kind"))
                        .with_field("kind")
                })?);
            }
            _ => {
                return Err(ApiError::bad_request(
                    "bad_query",
                    format!("unknown parameter '{pair}'; the only one is kind"),
                ));
            }
        }
    }
    let scored = blocking(&state.plugins, move |r| r.rescore(kind, &|_, _| {})).await?;
    Ok(Json(json!({ "scored": scored })))
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let message = e.to_string();
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
        match e {
            RegistryError::Manifest(m) => Self::new(unprocessable, "invalid_manifest", message)
                .with_field(format!("manifest.{}", m.field)),
            RegistryError::Plugin(PluginError::Invalid { .. }) => {
                Self::new(unprocessable, "invalid_plugin", message).with_field("wasm")
            }
            RegistryError::Plugin(_) => {
                Self::new(unprocessable, "plugin_failed", message).with_field("wasm")
            }
            RegistryError::Mismatch { .. } => {
                Self::new(unprocessable, "manifest_mismatch", message).with_field("manifest")
            }
            RegistryError::NotGranted { .. } => {
                Self::new(unprocessable, "not_granted", message).with_field("grant")
            }
            RegistryError::State { .. } => Self::new(StatusCode::CONFLICT, "conflict", message),
            RegistryError::NotFound(_) => Self::not_found(message),
            RegistryError::Setting { setting, .. } => {
                Self::new(unprocessable, "validation_failed", message).with_field(setting)
            }
            RegistryError::TooLarge(_) => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message)
                    .with_field("wasm")
            }
            RegistryError::Store(e) => Self::from(e),
        }
    }
}
