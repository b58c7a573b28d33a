//! Who is asking and what they may do: every route is registered with the least role it
//! needs ([`Routes`]), and one middleware ([`guard`]) authenticates the caller (an API token
//! in `Authorization: Bearer`, or a session cookie), checks the role, checks the CSRF token of
//! cookie-authenticated changes, and adds the security headers to every response.
//!
//! A method with no rule on a known path is for admins only (fail closed; normally the
//! router answers it 405), and the route table is public ([`route_table`]) so the
//! authorization-matrix test covers every route.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use chrono::TimeDelta;
use kith_core::account::{self, Refusal};
use kith_core::{Access, Id, Role, Timestamp, User};

use super::{ApiError, AppState};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "kith_session";
/// The header carrying the CSRF token on cookie-authenticated API changes.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts after sign-in.
pub const SESSION_LIFETIME: chrono::Duration = chrono::Duration::days(7);

/// The least a caller needs to use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Need {
    /// Anyone, signed in or not (health, the sign-in page, the stylesheet).
    Public,
    /// Any signed-in user.
    Viewer,
    /// Agents and above (changing records).
    Agent,
    /// Managers and admins.
    Manager,
    /// Admins only.
    Admin,
}

impl Need {
    /// Its name: `public`, or the least role's.
    pub fn name(self) -> &'static str {
        match self {
            Need::Public => "public",
            Need::Viewer => "viewer",
            Need::Agent => "agent",
            Need::Manager => "manager",
            Need::Admin => "admin",
        }
    }

    /// Whether a user with `role` meets it.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Need::Public | Need::Viewer => true,
            Need::Agent => role >= Role::Agent,
            Need::Manager => role >= Role::Manager,
            Need::Admin => role == Role::Admin,
        }
    }
}

/// One route and its access rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The method.
    pub method: Method,
    /// The path as registered (`/api/v1/contacts/{id}`).
    pub path: String,
    /// The least role.
    pub need: Need,
}

/// A router under construction together with the access rule of each method and path.
pub(crate) struct Routes {
    router: Router<AppState>,
    table: Vec<RouteInfo>,
}

impl Routes {
    pub(crate) fn new() -> Self {
        Routes {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// Adds `handlers` at `path`, with the least role each method needs. Every method the
    /// `MethodRouter` answers must be listed, or it is refused for everyone.
    pub(crate) fn route(
        mut self,
        path: &str,
        needs: &[(Method, Need)],
        handlers: MethodRouter<AppState>,
    ) -> Self {
        self.router = self.router.route(path, handlers);
        for (method, need) in needs {
            self.table.push(RouteInfo {
                method: method.clone(),
                path: path.to_owned(),
                need: *need,
            });
        }
        self
    }

    pub(crate) fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.table.extend(other.table);
        self
    }

    pub(crate) fn into_parts(self) -> (Router<AppState>, Vec<RouteInfo>) {
        (self.router, self.table)
    }
}

/// Every route the server answers, with its access rule.
pub fn route_table() -> Vec<RouteInfo> {
    super::routes().into_parts().1
}

/// The access rules by method and path, for [`guard`].
pub(crate) type Policy = HashMap<(Method, String), Need>;

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A browser session.
    Session {
        /// The hash the session is stored under (sign-out, password change).
        hash: String,
        /// The CSRF token forms and scripts must send back.
        csrf: String,
    },
    /// An API token.
    Token(Id),
}

/// The signed-in caller of a request, put in its extensions by [`guard`].
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who (the password hash removed).
    pub user: User,
    /// What they may see and change.
    pub access: Access,
    /// How they signed in.
    pub via: Via,
}

impl Caller {
    /// The actor recorded in the event log: `user:<id>`, or `user:<id>/token:<id>` for a
    /// token, so a search by user finds what their scripts did too.
    pub fn actor(&self) -> String {
        match &self.via {
            Via::Session { .. } => format!("user:{}", self.user.id),
            Via::Token(t) => format!("user:{}/token:{t}", self.user.id),
        }
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.user.role
    }

    /// The CSRF token, for a session.
    pub fn csrf(&self) -> Option<&str> {
        match &self.via {
            Via::Session { csrf, .. } => Some(csrf),
            Via::Token(_) => None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("sign in, or send Authorization: Bearer <token>"))
    }
}

/// The caller, when there is one, for pages that also show something to visitors.
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeCaller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeCaller(parts.extensions.get::<Caller>().cloned()))
    }
}

/// The value of cookie `name`.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Finds the caller from the request's credentials. `Ok(None)`: there are none.
fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    let directory = state.store.directory();
    let now = state.store.clock().now();
    let refused = |r: Refusal, what: &str| match r {
        Refusal::Unknown => ApiError::unauthorized(format!("this {what} is not valid")),
        other => ApiError::unauthorized(other.to_string()),
    };
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be 'Bearer <token>'")
            })?;
        let (user, token) = directory
            .by_token(secret, now)
            .map_err(|r| refused(r, "API token"))?;
        return Ok(Some(Caller {
            access: directory.access(user),
            user: without_hash(user),
            via: Via::Token(token.id),
        }));
    }
    let Some(secret) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let (user, session) = directory
        .by_session(secret, now)
        .map_err(|r| refused(r, "session"))?;
    Ok(Some(Caller {
        access: directory.access(user),
        user: without_hash(user),
        via: Via::Session {
            hash: session.hash.clone(),
            csrf: account::csrf_token(secret),
        },
    }))
}

fn without_hash(user: &User) -> User {
    User {
        password_hash: None,
        ..user.clone()
    }
}

/// Whether a request changes something (and so needs a CSRF token when a cookie signs it).
fn is_change(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The middleware in front of every route: authentication, the route's role, CSRF on
/// cookie-signed API changes, security headers on every answer.
pub(crate) async fn guard(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    let is_page = !path.starts_with("/api/");
    let need = match &matched {
        // A known path with a method it has no rule for is normally one the router answers
        // 405; should a handler ever be registered without its rule, only an admin reaches
        // it (fail closed). The authorization matrix test checks every such pair is a 405.
        Some(m) => state
            .policy
            .get(&(req.method().clone(), m.as_str().to_owned()))
            .copied()
            .unwrap_or(Need::Admin),
        // No route matched: the fallback answers 404, but only to signed-in callers, so
        // nobody can map the API without credentials.
        None => Need::Viewer,
    };
    let result = admit(&state, need, &mut req, is_page);
    let mut response = match result {
        Ok(()) => next.run(req).await,
        Err(e) if is_page && e.status() == axum::http::StatusCode::UNAUTHORIZED => {
            // A person in a browser is sent to the sign-in page, and back here afterwards.
            super::super::web::to_sign_in(req.uri())
        }
        Err(e) => e.into_response(),
    };
    security_headers(response.headers_mut());
    response
}

fn admit(state: &AppState, need: Need, req: &mut Request, is_page: bool) -> Result<(), ApiError> {
    let caller = match authenticate(state, req.headers()) {
        Ok(c) => c,
        // A public route still answers a caller whose old cookie no longer works.
        Err(_) if need == Need::Public => None,
        Err(e) => return Err(e),
    };
    if need == Need::Public {
        if let Some(c) = caller {
            req.extensions_mut().insert(c);
        }
        return Ok(());
    }
    let caller = caller
        .ok_or_else(|| ApiError::unauthorized("sign in, or send Authorization: Bearer <token>"))?;
    if !need.allows(caller.role()) {
        return Err(ApiError::forbidden(format!(
            "this needs the {} role or higher; you are {}",
            need.name(),
            caller.role()
        )));
    }
    // Pages check the token in the form body themselves (see `web::Form`); the API wants it
    // in a header, which another site's form cannot set.
    if !is_page
        && is_change(req.method())
        && let Some(expected) = caller.csrf()
    {
        let sent = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !account::same_secret(sent, expected) {
            return Err(ApiError::csrf(format!(
                "a change signed by a session cookie needs the {CSRF_HEADER} header \
                 (GET /api/v1/me gives the token)"
            )));
        }
    }
    req.extensions_mut().insert(caller);
    Ok(())
}

/// The headers every answer carries: no inline script or style, no framing, no sniffing,
/// no referrer leaving the site.
pub(crate) fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// Slows down password guessing: after [`Throttle::FREE_FAILURES`] failed sign-ins for one
/// email, each further attempt waits out a lock that doubles (1 minute up to 15), whether the
/// password is right or not. A success clears the count. Kept in memory: a restart forgets.
///
/// An attempt is counted when it *starts* ([`Throttle::attempt`]) and forgiven only when it
/// succeeds, so guesses sent all at once cannot all pass the lock check while the (slow)
/// password checks of the first ones are still running. Time is the store's clock.
#[derive(Debug, Default)]
pub struct Throttle {
    by_email: Mutex<HashMap<String, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Timestamp,
}

impl Throttle {
    /// Failed attempts allowed before locking.
    pub const FREE_FAILURES: u32 = 5;
    /// The longest lock.
    pub const MAX_LOCK: TimeDelta = TimeDelta::minutes(15);

    fn lock_for(count: u32) -> TimeDelta {
        if count < Self::FREE_FAILURES {
            return TimeDelta::zero();
        }
        let doublings = (count - Self::FREE_FAILURES).min(4);
        (TimeDelta::minutes(1) * 2i32.pow(doublings)).min(Self::MAX_LOCK)
    }

    /// Starts a sign-in attempt for `email` at `now`: `Err(seconds to wait)` while it is
    /// locked; otherwise the attempt counts as failed until [`Throttle::succeeded`] says
    /// otherwise.
    pub fn attempt(&self, email: &str, now: Timestamp) -> Result<(), u64> {
        let mut map = self.by_email.lock().unwrap_or_else(|p| p.into_inner());
        let f = map.entry(email.trim().to_lowercase()).or_insert(Failures {
            count: 0,
            last: now,
        });
        // An old run of failures is forgotten once the longest lock has passed.
        if now - f.last > Self::MAX_LOCK {
            f.count = 0;
        }
        let until = f.last + Self::lock_for(f.count);
        if until > now {
            let secs = (until - now).num_seconds().max(1);
            return Err(u64::try_from(secs).unwrap_or(1));
        }
        f.count += 1;
        f.last = now;
        // Bound the memory an attacker cycling through emails can take.
        if map.len() > 100_000 {
            map.retain(|_, f| now - f.last <= Self::MAX_LOCK);
        }
        Ok(())
    }

    /// Clears an email's failures after a successful sign-in.
    pub fn succeeded(&self, email: &str) {
        self.by_email
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&email.trim().to_lowercase());
    }
}

/// Shared handle to the throttle.
pub(crate) type SharedThrottle = Arc<Throttle>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_grow_and_are_capped() {
        assert_eq!(Throttle::lock_for(4), TimeDelta::zero());
        assert_eq!(Throttle::lock_for(5), TimeDelta::minutes(1));
        assert_eq!(Throttle::lock_for(6), TimeDelta::minutes(2));
        assert_eq!(Throttle::lock_for(50), Throttle::MAX_LOCK);
    }

    #[test]
    fn throttle_counts_attempts_per_email_until_one_succeeds() {
        let t = Throttle::default();
        let now = Timestamp::default();
        for _ in 0..Throttle::FREE_FAILURES {
            assert!(t.attempt("A@example.com", now).is_ok());
        }
        assert_eq!(t.attempt("a@EXAMPLE.com", now), Err(60));
        assert!(t.attempt("b@example.com", now).is_ok());
        // The lock runs out; the next failure locks for twice as long.
        let later = now + TimeDelta::seconds(61);
        assert!(t.attempt("a@example.com", later).is_ok());
        assert_eq!(t.attempt("a@example.com", later), Err(120));
        t.succeeded("a@example.com");
        assert!(t.attempt("a@example.com", later).is_ok());
        // A run of failures older than the longest lock is forgotten.
        let t = Throttle::default();
        for _ in 0..Throttle::FREE_FAILURES {
            assert!(t.attempt("c@example.com", now).is_ok());
        }
        let much_later = now + Throttle::MAX_LOCK + TimeDelta::seconds(1);
        assert!(t.attempt("c@example.com", much_later).is_ok());
        assert!(t.attempt("c@example.com", much_later).is_ok());
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; kith_session=xyz; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
