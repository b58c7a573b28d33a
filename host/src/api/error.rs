//! The one error type of the HTTP boundary. Every failure becomes
//! `{"error": {"code", "message", "field"?}}` with a status chosen here and nowhere else:
//! 400 malformed input, 401 missing or refused credentials, 403 not allowed, 404 unknown ids
//! (and records the caller may not see), 409 conflicts, 413 oversized bodies, 422 validation,
//! 429 too many failed sign-ins.
//! Internal failures are logged with a reference id; the client sees only the reference.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kith_core::Error as CoreError;
use serde_json::json;

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    /// Extra response headers (`WWW-Authenticate`, `Retry-After`).
    headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)>,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            headers: Vec::new(),
        }
    }

    /// 401: no credentials, or credentials that no longer work.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
        e.headers.push((
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer realm=\"kith\""),
        ));
        e
    }

    /// 403: signed in, but not allowed to do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 403 with code `csrf_failed`: a cookie-signed change without the session's CSRF token.
    pub fn csrf(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "csrf_failed", message)
    }

    /// 429: too many attempts; try again after `seconds`.
    pub fn too_many(message: impl Into<String>, seconds: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message);
        e.headers.push((
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(seconds),
        ));
        e
    }

    /// Names the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404: nothing at this address.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500: something failed inside. The cause is logged with a reference the client gets.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let reference = format!(
            "{:x}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        tracing::error!(%reference, error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error (reference {reference}); the server log has the details"),
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The field the error is about, when it is about one.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The message the client sees.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(field) = self.field {
            error["field"] = json!(field);
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let message = e.to_string();
        match e {
            CoreError::Invalid(f) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                message,
            )
            .with_field(f.field),
            CoreError::UnknownField { field, .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_field", message)
                    .with_field(field)
            }
            CoreError::NotFound { .. } | CoreError::NoSuch { .. } => Self::not_found(message),
            CoreError::Conflict { field, .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", message).with_field(field)
            }
            CoreError::BadQuery(f) => Self::bad_request("bad_query", message).with_field(f.field),
            CoreError::Forbidden(m) => Self::forbidden(m),
            CoreError::ShuttingDown => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down; retry shortly",
            ),
            other => Self::internal(&other),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(
                status,
                "body_too_large",
                format!("the request body is larger than {} bytes", super::MAX_BODY),
            )
        } else if status.is_client_error() {
            Self::new(status, "bad_body", r.body_text())
        } else {
            Self::internal(&r.body_text())
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::internal(&e)
    }
}
