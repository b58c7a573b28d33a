//! The `kith` command: `kith serve` runs the CRM server; `kith user`, `kith team` and
//! `kith token` manage accounts offline; `kith plugin` manages plugins.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kith_host::{ServerConfig, admin, start};
use tracing_subscriber::EnvFilter;

// mimalloc: the server allocates many small short-lived values per request; measured with
// the load benchmark, the system allocator's malloc/free were the top user-space symbols.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: how long (ms) freed memory stays mapped before it is
/// handed back to the system. Not exported as a constant by `libmimalloc-sys`; it is the
/// enum's 16th entry in both mimalloc v2 and v3, and a test below checks that it reads the
/// documented default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory mapped for 10 s instead of mimalloc's 1 s before returning it.
///
/// Why: under a steady stream of writes, redb allocates a zeroed buffer for every page a
/// transaction dirties and frees it soon after; with the 1 s default, mimalloc kept handing
/// the emptied memory back and faulting fresh (transparent huge) pages in again, and the
/// kernel zeroing them was a tenth of the writer thread's time in `perf`. With 10 s, minor
/// faults during the load benchmark's creates fell from thousands to under a hundred per
/// 4 s. Memory still goes back to the system after 10 s of not being reused. An explicit
/// `MIMALLOC_PURGE_DELAY` in the environment wins.
#[allow(unsafe_code)]
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option table; it takes no
    // pointers, is thread-safe, and mimalloc reads the option each time it considers a purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10_000) }
}

/// Turns transparent huge pages off for this process (Linux only; elsewhere nothing to do).
///
/// Why: the write path churns through memory (redb's page buffers, the record cache, each
/// batch's encodings), and with huge pages every fresh 2 MiB region the allocator touches is
/// zeroed in one fault: in `perf` that zeroing was about a tenth of the writer thread's time,
/// and how long it took varied tenfold from minute to minute on a shared VM. Databases such as
/// Redis and MongoDB advise turning huge pages off for the same reason. Measured with the load
/// benchmark, alternating builds with and without this: durable creates +19% in median and
/// the server's CPU per create −8% (five 4 s runs each), +4% and −5% (three 5 s runs, a slower
/// hour). The price is on reads, whose record cache is spread over more, smaller pages: GETs
/// by id cost 6–7% more server CPU, their rate within the noise. Creates are what a 2-core
/// server runs out of first. The flag is per process and inherited by children, so it changes
/// nothing for the rest of the machine.
fn disable_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        // Only a kernel without the prctl (before 3.15) refuses; Kith runs as before.
        tracing::debug!("could not turn transparent huge pages off: {e}");
    }
}

/// Kith: a self-hosted CRM.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Serve {
        /// Data directory (created if missing).
        #[arg(long, env = "KITH_DATA", default_value = "./kith-data")]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long, env = "KITH_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Seed realistic demo data on first start (when the database is empty).
        #[arg(long)]
        demo: bool,
        /// Most writes committed per transaction; 1 turns group commit off (for benchmarks).
        #[arg(long, env = "KITH_MAX_BATCH", default_value_t = 1024, hide = true)]
        max_batch: usize,
        /// Memory for recently written and read records, kept so reading one by id needs no
        /// storage read, in MiB (0 turns it off).
        #[arg(long, env = "KITH_RECORD_CACHE_MIB", default_value_t = kith_host::server::DEFAULT_RECORD_CACHE_MIB)]
        record_cache_mib: usize,
        /// Longest any plugin hook call may run, in milliseconds (admins may set less per plugin).
        #[arg(long, env = "KITH_PLUGIN_TIMEOUT_MS", default_value_t = 100)]
        plugin_timeout_ms: u64,
        /// Most memory any plugin call may use, in MiB (admins may set less per plugin).
        #[arg(long, env = "KITH_PLUGIN_MEMORY_MIB", default_value_t = 64)]
        plugin_memory_mib: usize,
        /// Mark session cookies Secure: set this when users reach Kith over HTTPS (say,
        /// through a reverse proxy that terminates TLS).
        #[arg(long, env = "KITH_SECURE_COOKIES")]
        secure_cookies: bool,
        /// Email of the admin created on the first start (when there are no users).
        #[arg(long, env = "KITH_ADMIN_EMAIL", default_value = kith_host::server::DEFAULT_ADMIN_EMAIL)]
        admin_email: String,
    },
    /// Manage users (stop the server first, or use /api/v1/users).
    User {
        #[command(subcommand)]
        command: UserCmd,
    },
    /// Manage teams (stop the server first, or use /api/v1/teams).
    Team {
        #[command(subcommand)]
        command: TeamCmd,
    },
    /// Manage API tokens (stop the server first, or use /api/v1/tokens).
    Token {
        #[command(subcommand)]
        command: TokenCmd,
    },
    /// Work with plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCmd,
    },
    /// Recompute every plugin score (stop the server first), with a progress bar.
    Rescore {
        /// Data directory.
        #[arg(long, env = "KITH_DATA", default_value = "./kith-data")]
        data: PathBuf,
        /// Only scorers of this kind (contact, company, deal, ...).
        #[arg(long)]
        kind: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user. Without --password-stdin a password is generated and printed once.
    Add {
        /// Sign-in email.
        #[arg(long)]
        email: String,
        /// admin, manager, agent or viewer.
        #[arg(long)]
        role: String,
        /// Display name (default: the email's local part).
        #[arg(long)]
        name: Option<String>,
        /// Team key (create the team first with `kith team add`).
        #[arg(long)]
        team: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Data directory.
        #[arg(long, env = "KITH_DATA", default_value = "./kith-data")]
        data: PathBuf,
    },
    /// Set a user's password (for a forgotten one, or the only admin locked out), ending
    /// their sessions. Without --password-stdin a password is generated and printed once.
    Password {
        /// Their sign-in email.
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Data directory.
        #[arg(long, env = "KITH_DATA", default_value = "./kith-data")]
        data: PathBuf,
    },
    /// List users.
    List {
        /// Data directory.
        #[arg(long, env = "KITH_DATA", default_value = "./kith-data")]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum TeamCmd {
    /// Add or rename a team.
    Add {
        /// Short key records store (lower-case letters, digits, '-').
        key: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Data directory.
        #[arg(long, env = "KITH_DATA", default_value = "./kith-data")]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create an API token for a user; prints it once.
    Create {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// What the token is for.
        #[arg(long, default_value = "command line")]
        name: String,
        /// Days until it expires (default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
        /// Data directory.
        #[arg(long, env = "KITH_DATA", default_value = "./kith-data")]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum PluginCmd {
    /// Install a plugin from its directory (kith-plugin.toml plus its .wasm). Shows the
    /// capabilities it requests and asks you to grant them. Stop the server first, or use
    /// the API to install into a running server.
    Install {
        /// The plugin directory, or its kith-plugin.toml.
        path: PathBuf,
        /// The .wasm file, when it is not beside the manifest or in the crate's release build.
        #[arg(long)]
        wasm: Option<PathBuf>,
        /// Grant the requested capabilities without asking.
        #[arg(long, short)]
        yes: bool,
        /// Replace the installed version (settings that still exist keep their values).
        #[arg(long)]
        upgrade: bool,
        /// Data directory.
        #[arg(long, env = "KITH_DATA", default_value = "./kith-data")]
        data: PathBuf,
    },
    /// List installed plugins and their status.
    List {
        /// Data directory.
        #[arg(long, env = "KITH_DATA", default_value = "./kith-data")]
        data: PathBuf,
    },
    /// Let an installed plugin run again.
    Enable {
        /// The plugin's id.
        id: String,
        /// Data directory.
        #[arg(long, env = "KITH_DATA", default_value = "./kith-data")]
        data: PathBuf,
    },
    /// Stop a plugin from running (its fields and scores stay).
    Disable {
        /// The plugin's id.
        id: String,
        /// Data directory.
        #[arg(long, env = "KITH_DATA", default_value = "./kith-data")]
        data: PathBuf,
    },
    /// Lift the suspension of a plugin that failed repeatedly.
    Resume {
        /// The plugin's id.
        id: String,
        /// Data directory.
        #[arg(long, env = "KITH_DATA", default_value = "./kith-data")]
        data: PathBuf,
    },
    /// Show a plugin's settings, or change them: `kith plugin settings ID name=value ...`
    /// (values are JSON, e.g. `senior_points=30` or `free_email_domains='["gmail.com"]'`).
    Settings {
        /// The plugin's id.
        id: String,
        /// `name=value` pairs.
        values: Vec<String>,
        /// Data directory.
        #[arg(long, env = "KITH_DATA", default_value = "./kith-data")]
        data: PathBuf,
    },
    /// Set a plugin's own limits, below the server's (`--reset` returns to the server's).
    Limits {
        /// The plugin's id.
        id: String,
        /// Longest a hook call may run, in milliseconds.
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// Most memory a call may use, in MiB.
        #[arg(long)]
        memory_mib: Option<u64>,
        /// Use the server's limits again.
        #[arg(long)]
        reset: bool,
        /// Data directory.
        #[arg(long, env = "KITH_DATA", default_value = "./kith-data")]
        data: PathBuf,
    },
    /// Uninstall a plugin; values of its custom fields stay on records as plain data.
    Remove {
        /// The plugin's id.
        id: String,
        /// Data directory.
        #[arg(long, env = "KITH_DATA", default_value = "./kith-data")]
        data: PathBuf,
    },
    /// Create a new plugin crate that builds to wasm and passes its own test.
    New {
        /// The plugin's id (lower-case letters, digits and '-').
        name: String,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run one hook of a plugin against a sample input, without a server: prints the result,
    /// the plugin's logs, time and memory used.
    Run {
        /// The plugin's .wasm component.
        path: PathBuf,
        /// The hook to call: describe, score, validate, compute-fields, on-event, on-timer
        /// or run-report.
        #[arg(long, default_value = "describe")]
        hook: String,
        /// A JSON sample: entities (the hook's input), records (what get and query find),
        /// settings overrides, scorer, now.
        #[arg(long)]
        input: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    disable_huge_pages();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Cmd::Plugin {
            command: PluginCmd::Run { path, hook, input },
        } => run_plugin(&path, &hook, input.as_deref()),
        Cmd::Plugin { command } => report(plugin_admin(command)),
        Cmd::Rescore { data, kind } => report(admin::rescore(&data, kind.as_deref())),
        Cmd::User {
            command:
                UserCmd::Add {
                    email,
                    role,
                    name,
                    team,
                    password_stdin,
                    data,
                },
        } => {
            let password = match read_password(password_stdin) {
                Ok(p) => p,
                Err(code) => return code,
            };
            report(admin::user_add(
                &data,
                &email,
                &role,
                name.as_deref(),
                team.as_deref(),
                password,
            ))
        }
        Cmd::User {
            command:
                UserCmd::Password {
                    email,
                    password_stdin,
                    data,
                },
        } => match read_password(password_stdin) {
            Ok(password) => report(admin::user_password(&data, &email, password)),
            Err(code) => code,
        },
        Cmd::User {
            command: UserCmd::List { data },
        } => report(admin::user_list(&data)),
        Cmd::Team {
            command: TeamCmd::Add { key, name, data },
        } => report(admin::team_add(&data, &key, &name)),
        Cmd::Token {
            command:
                TokenCmd::Create {
                    email,
                    name,
                    expires_in_days,
                    data,
                },
        } => report(admin::token_create(&data, &email, &name, expires_in_days)),
        Cmd::Serve {
            data,
            addr,
            demo,
            max_batch,
            record_cache_mib,
            plugin_timeout_ms,
            plugin_memory_mib,
            secure_cookies,
            admin_email,
        } => runtime.block_on(async move {
            let mut config = ServerConfig::new(data.clone(), addr);
            config.demo = demo;
            config.max_batch = max_batch;
            config.record_cache_bytes = record_cache_mib.saturating_mul(1 << 20);
            config.plugin_limits.hook_timeout = std::time::Duration::from_millis(plugin_timeout_ms);
            config.plugin_limits.memory = plugin_memory_mib << 20;
            config.secure_cookies = secure_cookies;
            config.admin_email = admin_email;
            let running = match start(config).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            println!(
                "Kith is serving {} (data in {})",
                running.url(),
                data.display()
            );
            println!(
                "Sign in at {}/login  ·  API: {}/api/v1 (Authorization: Bearer <token>)",
                running.url(),
                running.url()
            );
            if let Some((email, password)) = &running.first_admin {
                // Printed once, here, and never logged: the store keeps only its hash.
                println!();
                println!("First start: created the admin account");
                println!("  email:    {email}");
                println!("  password: {password}");
                println!(
                    "Sign in and change the password on the account page. It is not shown again."
                );
                println!();
            }
            match running.run_until_signal().await {
                Ok(()) => {
                    println!("Kith stopped cleanly.");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error while serving: {e}");
                    ExitCode::FAILURE
                }
            }
        }),
    }
}

fn plugin_admin(cmd: PluginCmd) -> Result<String, admin::AdminError> {
    match cmd {
        PluginCmd::Install {
            path,
            wasm,
            yes,
            upgrade,
            data,
        } => admin::install(
            &data,
            &path,
            wasm.as_deref(),
            admin::terminal_grant(yes),
            upgrade,
        ),
        PluginCmd::List { data } => admin::list(&data),
        PluginCmd::Enable { id, data } => admin::change(&data, &id, "enable"),
        PluginCmd::Disable { id, data } => admin::change(&data, &id, "disable"),
        PluginCmd::Resume { id, data } => admin::change(&data, &id, "resume"),
        PluginCmd::Remove { id, data } => admin::change(&data, &id, "remove"),
        PluginCmd::Settings { id, values, data } => admin::settings(&data, &id, &values),
        PluginCmd::Limits {
            id,
            timeout_ms,
            memory_mib,
            reset,
            data,
        } => admin::limits(&data, &id, timeout_ms, memory_mib, reset),
        PluginCmd::New { name, dir } => new_plugin(&name, dir),
        PluginCmd::Run { .. } => Err(admin::AdminError("handled above".to_owned())),
    }
}

fn new_plugin(name: &str, dir: Option<PathBuf>) -> Result<String, admin::AdminError> {
    use kith_host::plugin::scaffold;
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let opts = scaffold::ScaffoldOptions {
        name: name.to_owned(),
        dir: dir.clone(),
        sdk: scaffold::default_sdk_source(),
    };
    let files = scaffold::scaffold(&opts).map_err(|e| admin::AdminError(e.to_string()))?;
    let mut s = format!("created plugin '{name}' in {}:\n", dir.display());
    for f in files {
        s.push_str(&format!("  {}\n", f.display()));
    }
    s.push_str(&format!(
        "next:\n  cd {}\n  cargo test\n  cargo build --release --target wasm32-wasip2\n  kith plugin install .\n",
        dir.display()
    ));
    Ok(s)
}

/// The password on standard input's first line when `from_stdin`, else `None` (generate one).
fn read_password(from_stdin: bool) -> Result<Option<String>, ExitCode> {
    if !from_stdin {
        return Ok(None);
    }
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(_) => Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned())),
        Err(e) => {
            eprintln!("error: cannot read the password from standard input: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn report(result: Result<String, admin::AdminError>) -> ExitCode {
    match result {
        Ok(s) => {
            print!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_plugin(path: &std::path::Path, hook: &str, input: Option<&std::path::Path>) -> ExitCode {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let result = read(path).and_then(|wasm| {
        let sample = match input {
            Some(p) => String::from_utf8(read(p)?)
                .map_err(|_| format!("{} is not UTF-8 text", p.display()))?,
            None => String::new(),
        };
        let name = path
            .file_stem()
            .map_or_else(|| "plugin".to_owned(), |s| s.to_string_lossy().into_owned());
        kith_host::plugin::devloop::run(&wasm, &name, hook, &sample)
    });
    match result {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    /// `MI_OPTION_PURGE_DELAY` is a bare number: should a mimalloc upgrade renumber its
    /// options, this fails rather than `tune_allocator` quietly setting some other option.
    #[test]
    #[allow(unsafe_code)]
    fn the_tuned_option_is_mimallocs_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads an integer from mimalloc's option table.
        let value = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            value, 1000,
            "mimalloc v3 documents a purge delay of 1000 ms by default"
        );
    }

    /// The flag is the process's, so reading it back is what the server runs with.
    #[test]
    #[cfg(target_os = "linux")]
    fn huge_pages_end_up_off_for_the_process() {
        super::disable_huge_pages();
        assert_eq!(
            rustix::thread::transparent_huge_pages_are_disabled().ok(),
            Some(true)
        );
    }
}
