//! Starting and stopping the server: open the store, seed demo data on first start, bind,
//! serve, and on shutdown stop accepting, let in-flight requests (and their writes) finish,
//! then close the database.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use kith_core::{Clock, Store, StoreConfig, StoreError, SystemClock};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{AppState, app};
use crate::plugin::{Registry, Runtime};

/// How to run a server.
pub struct ServerConfig {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    pub addr: SocketAddr,
    /// Seed demo data if the database is empty.
    pub demo: bool,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// Most writes per transaction; 1 turns group commit off.
    pub max_batch: usize,
    /// Bytes the record cache (answers of single-record GETs) may hold; 0 turns it off.
    pub record_cache_bytes: usize,
    /// The ceiling of every plugin's limits (admins may tighten them per plugin).
    pub plugin_limits: crate::plugin::Limits,
    /// Mark cookies `Secure` (set when users reach the server over TLS, e.g. via a proxy).
    pub secure_cookies: bool,
    /// The email of the admin created on a first start with no users.
    pub admin_email: String,
}

impl ServerConfig {
    /// Defaults for a data directory and address: system clock, group commit on, no demo.
    pub fn new(data_dir: impl Into<PathBuf>, addr: SocketAddr) -> Self {
        ServerConfig {
            data_dir: data_dir.into(),
            addr,
            demo: false,
            clock: Arc::new(SystemClock),
            max_batch: 1024,
            record_cache_bytes: DEFAULT_RECORD_CACHE_MIB << 20,
            plugin_limits: crate::plugin::Limits::default(),
            secure_cookies: false,
            admin_email: DEFAULT_ADMIN_EMAIL.to_owned(),
        }
    }
}

/// The record cache's size unless configured otherwise, in MiB: about 100,000 contacts.
pub const DEFAULT_RECORD_CACHE_MIB: usize = 64;

/// The email of the first admin unless configured otherwise.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@example.com";

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The first admin could not be created.
    #[error("creating the first admin: {0}")]
    Accounts(kith_core::Error),
    /// Seeding demo data failed.
    #[error("seeding demo data: {0}")]
    Demo(kith_core::Error),
    /// The plugin runtime or the installed plugins could not be loaded.
    #[error("plugins: {0}")]
    Plugins(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A startup task failed.
    #[error("startup task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A running server.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its store (for tests and tools that want to look inside).
    pub store: Store,
    /// Its installed plugins.
    pub plugins: Registry,
    /// The admin created because the database had no users: email and password, to be shown
    /// once to whoever started the server.
    pub first_admin: Option<(String, String)>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The base URL, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops gracefully: no new connections, in-flight requests finish, the writer drains,
    /// the database closes.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            // The server task may already have ended; then there is nothing to signal.
            let _ = tx.send(());
        }
        let served = self.task.await.map_err(std::io::Error::other)?;
        // The hook holds the registry, which holds the store: drop it to break the cycle.
        self.store.set_write_hook(None);
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.close())
            .await
            .map_err(std::io::Error::other)?;
        served
    }

    /// Serves until SIGINT or SIGTERM, then stops gracefully.
    pub async fn run_until_signal(self) -> std::io::Result<()> {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        self.stop().await
    }
}

/// Opens the store, seeds demo data if asked and the database is empty, and starts serving.
pub async fn start(config: ServerConfig) -> Result<Running, StartError> {
    let store_config = StoreConfig {
        dir: config.data_dir.clone(),
        clock: config.clock.clone(),
        max_batch: config.max_batch,
        ..StoreConfig::new(&config.data_dir)
    };
    let store = tokio::task::spawn_blocking(move || Store::open(store_config)).await??;
    let s = store.clone();
    let cache = config.data_dir.join("plugin-cache");
    let demo = config.demo;
    let limits = config.plugin_limits;
    let admin_email = config.admin_email.clone();
    let prepared =
        tokio::task::spawn_blocking(move || prepare(&s, cache, demo, limits, &admin_email)).await?;
    let (plugins, first_admin) = match prepared {
        Ok(p) => p,
        Err(e) => {
            store.set_write_hook(None);
            store.close();
            return Err(e);
        }
    };
    let listener = match TcpListener::bind(config.addr).await {
        Ok(l) => l,
        Err(source) => {
            store.set_write_hook(None);
            store.close();
            return Err(StartError::Bind {
                addr: config.addr,
                source,
            });
        }
    };
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.addr,
        source,
    })?;
    let reports = kith_core::Reports::new(store.clone());
    // Build the report projections in the background, so the first report after a start
    // does not pay for a full scan (about 2.5 s per million deals); a report asked for
    // meanwhile waits for the same build rather than starting its own.
    let warming = reports.clone();
    let warm = std::thread::Builder::new()
        .name("kith-reports-warm".to_owned())
        .spawn(move || match warming.warm() {
            Ok(()) | Err(kith_core::Error::ShuttingDown) => {}
            Err(e) => tracing::warn!(error = %e, "could not prepare the reports ahead of time"),
        });
    if let Err(e) = warm {
        tracing::warn!(error = %e, "could not start preparing the reports");
    }
    let router = app(AppState::new(
        store.clone(),
        plugins.clone(),
        reports,
        config.secure_cookies,
        config.record_cache_bytes,
    ));
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                // A dropped sender also means stop.
                let _ = rx.await;
            })
            .await
    });
    Ok(Running {
        addr,
        store,
        plugins,
        first_admin,
        shutdown: Some(tx),
        task,
    })
}

/// Loads the installed plugins into the write path and starts scoring and workflow delivery;
/// with `demo`, installs
/// the bundled plugins and seeds demo data into an empty database (after the plugins, so the
/// demo records carry their fields and scores).
fn prepare(
    store: &Store,
    cache: PathBuf,
    demo: bool,
    limits: crate::plugin::Limits,
    admin_email: &str,
) -> Result<(Registry, Option<(String, String)>), StartError> {
    let first_admin = bootstrap_admin(store, admin_email).map_err(StartError::Accounts)?;
    let runtime = Runtime::global_with(limits).map_err(|e| StartError::Plugins(e.to_string()))?;
    let plugins = Registry::open(runtime, store.clone(), cache)
        .map_err(|e| StartError::Plugins(e.to_string()))?;
    store.set_write_hook(Some(Arc::new(plugins.clone())));
    plugins
        .start_scoring()
        .map_err(|e| StartError::Plugins(e.to_string()))?;
    plugins
        .start_workflows()
        .map_err(|e| StartError::Plugins(e.to_string()))?;
    if demo {
        for p in crate::bundled::install_missing(&plugins)
            .map_err(|e| StartError::Plugins(e.to_string()))?
        {
            tracing::info!(plugin = %p.id, version = %p.version, "installed bundled plugin");
        }
        match crate::demo::seed_if_empty(store) {
            Ok(Some(summary)) => tracing::info!("{summary}"),
            Ok(None) => tracing::info!("database already has data; demo data not added again"),
            Err(e) => return Err(StartError::Demo(e)),
        }
    }
    Ok((plugins, first_admin))
}

/// On a first start (no user at all), creates an admin with a generated password, so that
/// someone can sign in; returns the email and password to show once.
fn bootstrap_admin(
    store: &Store,
    email: &str,
) -> Result<Option<(String, String)>, kith_core::Error> {
    if !store.directory().is_empty() {
        return Ok(None);
    }
    let password = crate::api::generate_password();
    let user = kith_core::NewUser {
        email: email.to_owned(),
        name: "Administrator".to_owned(),
        role: kith_core::Role::Admin,
        team: None,
        password_hash: Some(kith_core::account::hash_password(&password)?),
    };
    match store.execute(kith_core::Command::CreateUser(user), "system")? {
        kith_core::Outcome::User(u) => {
            tracing::info!(user = %u.id, email = %u.email, "created the first admin");
            Ok(Some((u.email, password)))
        }
        _ => Ok(None),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
