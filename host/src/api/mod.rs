//! The REST API under `/api/v1`. Each feature module exposes `router()`; [`app`] merges them
//! and adds the shared layers (body limit, panic catcher, request tracing, JSON fallbacks).

mod audit;
mod body;
pub mod error;
mod meta;
pub mod openapi;
mod plugins;
mod records;
mod reports;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kith_core::{Command, Error as CoreError, Outcome, Reports, Store};
use tower_http::catch_panic::CatchPanicLayer;

use crate::plugin::Registry;
use tower_http::trace::TraceLayer;

pub use self::error::ApiError;

/// The largest request body accepted, in bytes.
pub const MAX_BODY: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The CRM store.
    pub store: Store,
    /// Installed plugins.
    pub plugins: Registry,
    /// The report engine (built-in reports from in-memory projections of the store).
    pub reports: Reports,
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(records::router())
        .merge(audit::router())
        .merge(meta::router())
        .merge(plugins::router())
        .merge(reports::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "nothing at {}; see /api/v1/openapi.json",
        uri.path()
    ))
}

async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not support this method", uri.path()),
    )
}

fn panic_response(cause: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = cause
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| cause.downcast_ref::<&str>().copied())
        .unwrap_or("a handler panicked");
    ApiError::internal(&message).into_response()
}

/// The actor recorded in the event log for API writes, until accounts exist.
const API_ACTOR: &str = "api";

/// Sends a command to the store's writer and waits (without blocking the executor) until
/// its batch is durable.
pub(crate) async fn write(store: &Store, cmd: Command) -> Result<Outcome, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.submit(
        cmd,
        API_ACTOR,
        Box::new(move |result| {
            // If the client went away the receiver is gone; the write still happened.
            let _ = tx.send(result);
        }),
    );
    match rx.await {
        Ok(result) => result.map_err(ApiError::from),
        Err(_) => Err(ApiError::from(CoreError::ShuttingDown)),
    }
}

/// Runs a read on the blocking pool so storage I/O never stalls the async executor.
pub(crate) async fn read<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, CoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = store.clone();
    Ok(tokio::task::spawn_blocking(move || f(&store)).await??)
}
