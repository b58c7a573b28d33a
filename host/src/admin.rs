//! Offline administration for the `kith` command: plugin install, list, enable, disable,
//! resume, settings and removal, and rescoring, run against a data directory while the
//! server is stopped (a running server holds the database; use its API instead).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use kith_core::{EntityKind, Store, StoreConfig, StoreError, Value};

use crate::plugin::manifest::Manifest;
use crate::plugin::{InstallMode, PluginView, Registry, Runtime};

/// An administration failure, already worded for the person at the terminal.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AdminError(pub String);

impl AdminError {
    fn new(m: impl Into<String>) -> Self {
        AdminError(m.into())
    }
}

impl From<crate::plugin::RegistryError> for AdminError {
    fn from(e: crate::plugin::RegistryError) -> Self {
        AdminError(e.to_string())
    }
}

impl From<kith_core::Error> for AdminError {
    fn from(e: kith_core::Error) -> Self {
        AdminError(e.to_string())
    }
}

/// The store and plugins of a data directory, opened for a command and closed after it.
pub struct Offline {
    store: Store,
    registry: Registry,
}

impl Offline {
    /// Opens the data directory; fails with advice when a server is using it.
    pub fn open(data: &Path) -> Result<Offline, AdminError> {
        let store = Store::open(StoreConfig::new(data)).map_err(|e| match e {
            StoreError::InUse { .. } => AdminError::new(format!(
                "a running Kith server is using {}; stop it first, or use the server's API \
                 (/api/v1/plugins) to change plugins without a restart",
                data.display()
            )),
            other => AdminError::new(other.to_string()),
        })?;
        let runtime = Runtime::global().map_err(|e| AdminError::new(e.to_string()))?;
        let registry = Registry::open(runtime, store.clone(), data.join("plugin-cache"))?;
        store.set_write_hook(Some(std::sync::Arc::new(registry.clone())));
        Ok(Offline { store, registry })
    }

    /// The plugins.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl Drop for Offline {
    fn drop(&mut self) {
        self.store.set_write_hook(None);
        self.store.close();
    }
}

/// Finds a plugin's manifest and binary from a path: a directory holding `kith-plugin.toml`
/// (the binary is `--wasm`, a single `.wasm` in the directory, or the crate's release build
/// for `wasm32-wasip2`), or the manifest file itself.
pub fn locate(path: &Path, wasm: Option<&Path>) -> Result<(PathBuf, PathBuf), AdminError> {
    let (dir, manifest) = if path.is_dir() {
        (path.to_path_buf(), path.join("kith-plugin.toml"))
    } else {
        let dir = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        (dir, path.to_path_buf())
    };
    if !manifest.is_file() {
        return Err(AdminError::new(format!(
            "no manifest at {}: a plugin directory holds kith-plugin.toml",
            manifest.display()
        )));
    }
    if let Some(w) = wasm {
        return Ok((manifest, w.to_path_buf()));
    }
    let wasm_files = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut found = wasm_files(&dir);
    if found.is_empty() {
        let text = std::fs::read_to_string(&manifest).unwrap_or_default();
        let id = Manifest::parse(&text).map(|m| m.id).unwrap_or_default();
        let release = dir.join("target/wasm32-wasip2/release");
        found = wasm_files(&release)
            .into_iter()
            .filter(|p| {
                p.file_stem().is_some_and(|s| {
                    let s = s.to_string_lossy();
                    s == id.replace('-', "_")
                        || s == format!("kith_plugin_{}", id.replace('-', "_"))
                })
            })
            .collect();
    }
    match found.len() {
        1 => Ok((manifest, found.remove(0))),
        0 => Err(AdminError::new(format!(
            "no .wasm found beside {}; build the plugin (cargo build --release --target \
             wasm32-wasip2) or pass --wasm FILE",
            manifest.display()
        ))),
        _ => Err(AdminError::new(format!(
            "several .wasm files in {}; pass --wasm FILE",
            dir.display()
        ))),
    }
}

/// How the capabilities a plugin requests get granted.
pub enum Grant<'a> {
    /// Granted up front (`--yes`).
    Yes,
    /// Ask this function, which gets the list and answers whether it is granted.
    Ask(&'a dyn Fn(&str) -> bool),
    /// Nobody to ask: refuse unless the plugin requests nothing.
    Refuse,
}

/// Asks on the terminal whether to grant `what`.
pub fn ask_on_terminal(what: &str) -> bool {
    let mut out = std::io::stdout();
    let _ = write!(out, "Grant {what} and install? [y/N] ");
    let _ = out.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

/// The grant for a terminal session: `--yes`, else ask when stdin is a terminal, else refuse.
pub fn terminal_grant(yes: bool) -> Grant<'static> {
    if yes {
        Grant::Yes
    } else if std::io::stdin().is_terminal() {
        Grant::Ask(&ask_on_terminal)
    } else {
        Grant::Refuse
    }
}

/// Installs (or with `upgrade`, upgrades) the plugin at `path`. The requested capabilities
/// are shown and must be granted (see [`Grant`]).
pub fn install(
    data: &Path,
    path: &Path,
    wasm: Option<&Path>,
    grant: Grant<'_>,
    upgrade: bool,
) -> Result<String, AdminError> {
    let (manifest_path, wasm_path) = locate(path, wasm)?;
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| AdminError::new(format!("cannot read {}: {e}", p.display())))
    };
    let text = String::from_utf8(read(&manifest_path)?)
        .map_err(|_| AdminError::new(format!("{} is not UTF-8", manifest_path.display())))?;
    let bytes = read(&wasm_path)?;
    let manifest = Manifest::parse(&text).map_err(|e| AdminError::new(e.to_string()))?;
    let requested = manifest.requested();
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "{} {} ({})\n  {}\n  wasm: {}",
        manifest.name,
        manifest.version,
        manifest.id,
        manifest.description,
        wasm_path.display()
    );
    if requested.is_empty() {
        let _ = writeln!(out, "  requests no capabilities");
    } else {
        let list = requested.join(", ");
        let _ = writeln!(out, "  requests: {list}");
        match grant {
            Grant::Yes => {}
            Grant::Ask(ask) => {
                if !ask(&list) {
                    return Err(AdminError::new("not installed: capabilities not granted"));
                }
            }
            Grant::Refuse => {
                return Err(AdminError::new(format!(
                    "granting {list} needs confirmation; pass --yes to grant it"
                )));
            }
        }
    }
    let offline = Offline::open(data)?;
    let mode = if upgrade {
        InstallMode::Upgrade
    } else {
        InstallMode::New
    };
    let view = offline.registry.install(&text, &bytes, &requested, mode)?;
    let verb = if upgrade { "upgraded" } else { "installed" };
    let s = format!("{verb} {} {}\n{}", view.id, view.version, describe(&view));
    Ok(s + &rescore_now(&offline, &view)?)
}

/// Rescores what an active plugin's scorers cover, with a progress bar.
fn rescore_now(offline: &Offline, view: &PluginView) -> Result<String, AdminError> {
    if view.scorers.is_empty() || view.status != "active" {
        return Ok(String::new());
    }
    let bar = ProgressBar::new();
    let n = offline
        .registry
        .rescore_plugin(&view.id, None, &|done, total| bar.show(done, total))?;
    bar.finish();
    Ok(format!("scored {n} records\n"))
}

/// A table of the installed plugins.
pub fn list(data: &Path) -> Result<String, AdminError> {
    let offline = Offline::open(data)?;
    let plugins = offline.registry.list();
    if plugins.is_empty() {
        return Ok("no plugins installed\n".to_owned());
    }
    let mut s = format!(
        "{:<20} {:<10} {:<10} {}\n",
        "ID", "VERSION", "STATUS", "NAME"
    );
    for p in plugins {
        s.push_str(&format!(
            "{:<20} {:<10} {:<10} {}\n",
            p.id, p.version, p.status, p.name
        ));
    }
    Ok(s)
}

/// Enables, disables, resumes or removes a plugin.
pub fn change(data: &Path, id: &str, action: &str) -> Result<String, AdminError> {
    let offline = Offline::open(data)?;
    let r = &offline.registry;
    let view = match action {
        "enable" => r.enable(id)?,
        "disable" => r.disable(id)?,
        "resume" => r.resume(id)?,
        "remove" => {
            r.remove(id)?;
            return Ok(format!(
                "removed {id}; values of its custom fields stay on records as plain data\n"
            ));
        }
        other => return Err(AdminError::new(format!("unknown action '{other}'"))),
    };
    let mut out = format!("{} is {}\n", view.id, view.status);
    // No server is running to rescore in the background, so bring scores up to date now.
    if action != "disable" {
        out.push_str(&rescore_now(&offline, &view)?);
    }
    Ok(out)
}

/// Sets settings from `name=value` pairs (values are JSON, or plain text).
pub fn settings(data: &Path, id: &str, pairs: &[String]) -> Result<String, AdminError> {
    let offline = Offline::open(data)?;
    let mut values = BTreeMap::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| AdminError::new(format!("'{p}' is not name=value")))?;
        let json =
            serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_owned()));
        let value: Value =
            serde_json::from_value(json).map_err(|e| AdminError::new(format!("{k}: {e}")))?;
        values.insert(k.to_owned(), value);
    }
    if values.is_empty() {
        return Ok(describe(&offline.registry.view(id)?));
    }
    let view = offline.registry.set_settings(id, values)?;
    let rescored = rescore_now(&offline, &view)?;
    Ok(describe(&view) + &rescored)
}

/// Sets a plugin's own limits (or with `reset`, returns it to the server's).
pub fn limits(
    data: &Path,
    id: &str,
    timeout_ms: Option<u64>,
    memory_mib: Option<u64>,
    reset: bool,
) -> Result<String, AdminError> {
    let offline = Offline::open(data)?;
    let current = offline.registry.view(id)?;
    let limits = if reset {
        kith_core::PluginLimits::default()
    } else {
        let stored = offline
            .store
            .plugin(id)?
            .map(|p| p.limits)
            .unwrap_or_default();
        kith_core::PluginLimits {
            hook_timeout_ms: timeout_ms.or(stored.hook_timeout_ms),
            memory_mib: memory_mib.or(stored.memory_mib),
        }
    };
    let view = if reset || timeout_ms.is_some() || memory_mib.is_some() {
        offline.registry.set_limits(id, limits)?
    } else {
        current
    };
    Ok(format!(
        "{}: hook calls up to {} ms, memory up to {} MiB{}\n",
        view.id,
        view.limits.hook_timeout_ms,
        view.limits.memory_mib,
        if view.limits.custom {
            ""
        } else {
            " (the server's limits)"
        }
    ))
}

/// Rescores every record (or every record of `kind`) with a progress bar on stderr.
pub fn rescore(data: &Path, kind: Option<&str>) -> Result<String, AdminError> {
    let kind = kind
        .map(|k| {
            EntityKind::parse(k)
                .ok_or_else(|| AdminError::new(format!("'{k}' is not an entity kind")))
        })
        .transpose()?;
    let offline = Offline::open(data)?;
    let start = std::time::Instant::now();
    let bar = ProgressBar::new();
    let n = offline
        .registry
        .rescore(kind, &|done, total| bar.show(done, total))?;
    bar.finish();
    Ok(format!(
        "rescored {n} records in {:.1} s\n",
        start.elapsed().as_secs_f64()
    ))
}

/// A one-line progress bar on stderr, redrawn at most every 100 ms.
struct ProgressBar {
    last: std::cell::Cell<Option<std::time::Instant>>,
    tty: bool,
}

impl ProgressBar {
    fn new() -> Self {
        ProgressBar {
            last: std::cell::Cell::new(None),
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn show(&self, done: u64, total: u64) {
        let now = std::time::Instant::now();
        if self
            .last
            .get()
            .is_some_and(|t| now.duration_since(t).as_millis() < 100)
            && done < total
        {
            return;
        }
        self.last.set(Some(now));
        let width = 30u64;
        let filled = (done * width)
            .checked_div(total)
            .unwrap_or(width)
            .min(width);
        let bar: String = (0..width)
            .map(|i| if i < filled { '#' } else { '-' })
            .collect();
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        let line = format!("[{bar}] {done}/{total} ({pct}%)");
        if self.tty {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

/// A plugin's details for the terminal.
fn describe(p: &PluginView) -> String {
    let mut s = format!(
        "{} {} — {}\n  status: {}{}\n  granted: {}\n",
        p.id,
        p.version,
        p.name,
        p.status,
        p.status_reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default(),
        if p.granted.is_empty() {
            "nothing".to_owned()
        } else {
            p.granted.join(", ")
        }
    );
    if !p.fields.is_empty() {
        s.push_str(&format!("  fields: {}\n", p.fields.join(", ")));
    }
    for sc in &p.scorers {
        s.push_str(&format!("  scorer: {} ({})\n", sc.key, sc.kind));
    }
    for st in &p.settings {
        s.push_str(&format!("  setting {} = {}\n", st.name, st.value));
    }
    s
}

/// Opens only the store of a data directory (account commands need no plugins).
fn open_store(data: &Path) -> Result<Store, AdminError> {
    Store::open(StoreConfig::new(data)).map_err(|e| match e {
        StoreError::InUse { .. } => AdminError::new(format!(
            "a running Kith server is using {}; stop it first, or use the server's API \
             (/api/v1/users, /api/v1/tokens) while it runs",
            data.display()
        )),
        other => AdminError::new(other.to_string()),
    })
}

/// Runs `f` on the data directory's store, closing it afterwards whatever happens.
fn with_store<T>(
    data: &Path,
    f: impl FnOnce(&Store) -> Result<T, AdminError>,
) -> Result<T, AdminError> {
    let store = open_store(data)?;
    let result = f(&store);
    store.close();
    result
}

/// `kith user add`: creates a user; with no password given, generates one and prints it once.
pub fn user_add(
    data: &Path,
    email: &str,
    role: &str,
    name: Option<&str>,
    team: Option<&str>,
    password: Option<String>,
) -> Result<String, AdminError> {
    let role = kith_core::Role::parse(role).map_err(AdminError)?;
    let (password, generated) = match password {
        Some(p) => (p, false),
        None => (crate::api::generate_password(), true),
    };
    let hash = kith_core::account::hash_password(&password)?;
    with_store(data, |store| {
        let new = kith_core::NewUser {
            email: email.to_owned(),
            name: name.unwrap_or_default().to_owned(),
            role,
            team: team.map(str::to_owned),
            password_hash: Some(hash),
        };
        match store.execute(kith_core::Command::CreateUser(new), "cli")? {
            kith_core::Outcome::User(u) => {
                let mut out = format!(
                    "created {} ({}, {}{})\n",
                    u.email,
                    u.name,
                    u.role,
                    u.team
                        .as_deref()
                        .map(|t| format!(", team {t}"))
                        .unwrap_or_default()
                );
                if generated {
                    out.push_str(&format!(
                        "password: {password}\n(shown once; they can change it on their account page)\n"
                    ));
                }
                Ok(out)
            }
            other => Err(AdminError::new(format!("unexpected answer {other:?}"))),
        }
    })
}

/// `kith user password`: sets the password of the user with `email` (a generated one,
/// printed once, when `password` is `None`) and ends their sessions.
pub fn user_password(
    data: &Path,
    email: &str,
    password: Option<String>,
) -> Result<String, AdminError> {
    let (password, generated) = match password {
        Some(p) => (p, false),
        None => (crate::api::generate_password(), true),
    };
    let hash = kith_core::account::hash_password(&password)?;
    with_store(data, |store| {
        let id = store
            .directory()
            .user_by_email(email)
            .map(|u| u.id)
            .ok_or_else(|| AdminError::new(format!("there is no user with email '{email}'")))?;
        let changes = kith_core::UserChanges {
            password_hash: Some(hash),
            ..Default::default()
        };
        store.execute(kith_core::Command::UpdateUser { id, changes }, "cli")?;
        let mut out = format!("set the password of {email}; their sessions have ended\n");
        if generated {
            out.push_str(&format!("password: {password}\n(shown once)\n"));
        }
        Ok(out)
    })
}

/// `kith user list`.
pub fn user_list(data: &Path) -> Result<String, AdminError> {
    with_store(data, |store| {
        let dir = store.directory();
        let mut out = String::new();
        for u in dir.users() {
            out.push_str(&format!(
                "{}  {:<32} {:<8} {:<12} {}\n",
                u.id,
                u.email,
                u.role,
                u.team.as_deref().unwrap_or("-"),
                if u.active { "active" } else { "inactive" }
            ));
        }
        if out.is_empty() {
            out.push_str("no users yet\n");
        }
        Ok(out)
    })
}

/// `kith team add`.
pub fn team_add(data: &Path, key: &str, name: &str) -> Result<String, AdminError> {
    with_store(data, |store| {
        let team = kith_core::Team {
            key: key.to_owned(),
            name: name.to_owned(),
        };
        store.execute(kith_core::Command::PutTeam(team), "cli")?;
        Ok(format!("team '{key}' ({name}) saved\n"))
    })
}

/// `kith token create`: an API token for the user with `email`, printed once.
pub fn token_create(
    data: &Path,
    email: &str,
    name: &str,
    expires_in_days: Option<u32>,
) -> Result<String, AdminError> {
    let max = crate::api::MAX_TOKEN_DAYS;
    if let Some(d) = expires_in_days
        && !(1..=max).contains(&d)
    {
        return Err(AdminError::new(format!(
            "--expires-in-days must be a whole number of days from 1 to {max}"
        )));
    }
    with_store(data, |store| {
        let dir = store.directory();
        let user = dir
            .user_by_email(email)
            .ok_or_else(|| AdminError::new(format!("there is no user with email {email}")))?;
        let secret = kith_core::account::new_secret("kith_");
        let now = store.clock().now();
        let token = kith_core::NewToken {
            user: user.id,
            name: name.to_owned(),
            hash: kith_core::account::hash_secret(&secret),
            expires_at: expires_in_days.map(|d| now + chrono::Duration::days(i64::from(d))),
        };
        store.execute(kith_core::Command::CreateToken(token), "cli")?;
        Ok(format!(
            "{secret}\n(an API token for {email}: send it as 'Authorization: Bearer <token>'; \
             it is shown once and stored only as a hash)\n"
        ))
    })
}
