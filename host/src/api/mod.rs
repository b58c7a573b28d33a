//! The REST API under `/api/v1` and the web pages. Each feature module exposes `routes()`
//! (handlers with the least role each needs); [`app`] merges them and adds the shared layers
//! (authentication and roles, body limit, panic catcher, request tracing, JSON fallbacks).

mod accounts;
mod audit;
pub mod auth;
mod body;
pub mod cache;
pub mod error;
mod meta;
pub mod openapi;
mod plugins;
mod records;
mod reports;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kith_core::store::Stamp;
use kith_core::{Command, Error as CoreError, Outcome, Reports, Scoped, Store};
use tower_http::catch_panic::CatchPanicLayer;

use crate::plugin::Registry;
use tower_http::trace::TraceLayer;

pub(crate) use self::accounts::{
    MAX_TOKEN_DAYS, NewUserBody, UserPatch, add_user,
    change_own_password as accounts_change_password, change_user, expiry_in_days,
    generate_password, issue_token,
};
pub use self::auth::{Caller, Need, RouteInfo, route_table};
pub use self::error::ApiError;
pub(crate) use self::plugins::blocking as plugin_call;
pub(crate) use self::records::{parse_id, parse_query};
pub(crate) use self::reports::{definitions as report_definitions, run_report};

/// The largest request body accepted, in bytes.
pub const MAX_BODY: usize = 1024 * 1024;

/// What every handler can reach: a handle to [`Shared`], which it derefs to. axum clones
/// the state for every request and every layer, so it is one reference count, not one per
/// field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The state itself (see [`AppState`]).
#[derive(Clone)]
pub struct Shared {
    /// The CRM store.
    pub store: Store,
    /// Installed plugins.
    pub plugins: Registry,
    /// The report engine (built-in reports from in-memory projections of the store).
    pub reports: Reports,
    /// Failed sign-ins, for throttling.
    pub throttle: auth::SharedThrottle,
    /// Whether cookies get `Secure` (the server is reached over TLS, say through a proxy).
    pub secure_cookies: bool,
    /// Plugin uploads waiting for an admin's approval on the web pages.
    pub(crate) uploads: crate::web::Uploads,
    /// The least role of each route; filled in by [`app`].
    pub(crate) policy: Arc<auth::Policy>,
    /// The answers of single-record GETs, kept current by the store's commit observer.
    pub records: Arc<cache::RecordCache>,
}

impl AppState {
    /// The state for a store, its plugins and reports.
    ///
    /// `cache_bytes` bounds the record cache (0 turns it off); the cache starts hearing the
    /// store's commits here, so make one `AppState` per store.
    pub fn new(
        store: Store,
        plugins: Registry,
        reports: Reports,
        secure_cookies: bool,
        cache_bytes: usize,
    ) -> Self {
        let records = Arc::new(cache::RecordCache::new(cache_bytes));
        let observer = records.clone();
        store.observe_commits(Arc::new(move |c| observer.committed(c)));
        AppState(Arc::new(Shared {
            store,
            plugins,
            reports,
            throttle: Arc::default(),
            secure_cookies,
            uploads: Arc::default(),
            policy: Arc::default(),
            records,
        }))
    }
}

/// Every route, with its access rule.
pub(crate) fn routes() -> auth::Routes {
    auth::Routes::new()
        .merge(records::routes())
        .merge(audit::routes())
        .merge(meta::routes())
        .merge(plugins::routes())
        .merge(reports::routes())
        .merge(accounts::routes())
        .merge(crate::web::routes())
}

/// The whole HTTP application.
pub fn app(mut state: AppState) -> Router {
    let (router, table) = routes().into_parts();
    Arc::make_mut(&mut state.0).policy = Arc::new(
        table
            .into_iter()
            .map(|r| ((r.method, r.path), r.need))
            .collect(),
    );
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
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

/// Sends a command on behalf of `caller` to the store's writer and waits (without blocking
/// the executor) until its batch is durable. Record changes run scoped to what the caller
/// may see and do ([`Command::Scoped`]); the event log names the caller.
pub(crate) async fn write(
    store: &Store,
    caller: &Caller,
    cmd: Command,
) -> Result<Outcome, ApiError> {
    Ok(write_stamped(store, caller, cmd).await?.0)
}

/// Like [`write`], also giving the command's [`Stamp`] (for the record cache).
pub(crate) async fn write_stamped(
    store: &Store,
    caller: &Caller,
    cmd: Command,
) -> Result<(Outcome, Stamp), ApiError> {
    let cmd = match cmd {
        c @ (Command::Create { .. } | Command::Update { .. } | Command::Delete { .. }) => {
            Command::Scoped {
                access: caller.access.clone(),
                command: Box::new(c),
            }
        }
        other => other,
    };
    submit_stamped(store, &caller.actor(), cmd).await
}

/// Sends a command as `actor` and waits until it is durable (for the sign-in page, where
/// nobody is signed in yet).
pub(crate) async fn submit(store: &Store, actor: &str, cmd: Command) -> Result<Outcome, ApiError> {
    Ok(submit_stamped(store, actor, cmd).await?.0)
}

async fn submit_stamped(
    store: &Store,
    actor: &str,
    cmd: Command,
) -> Result<(Outcome, Stamp), ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.submit_stamped(
        cmd,
        actor,
        Box::new(move |result, stamp| {
            // If the client went away the receiver is gone; the write still happened.
            let _ = tx.send(result.map(|o| (o, stamp)));
        }),
    );
    match rx.await {
        Ok(result) => result.map_err(ApiError::from),
        Err(_) => Err(ApiError::from(CoreError::ShuttingDown)),
    }
}

/// Runs a read of records on the blocking pool, limited to what `caller` may see.
pub(crate) async fn read_as<T: Send + 'static>(
    store: &Store,
    caller: &Caller,
    f: impl FnOnce(&Scoped) -> Result<T, CoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let scoped = store.scoped(caller.access.clone());
    Ok(tokio::task::spawn_blocking(move || f(&scoped)).await??)
}

/// Runs a read on the blocking pool so storage I/O never stalls the async executor. For
/// what is not a record (definitions, pipelines, plugins, the log admins search).
pub(crate) async fn read<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, CoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = store.clone();
    Ok(tokio::task::spawn_blocking(move || f(&store)).await??)
}
