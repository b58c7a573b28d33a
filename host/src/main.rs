//! The `kith` command: `kith serve` runs the CRM server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kith_host::{ServerConfig, start};
use tracing_subscriber::EnvFilter;

// mimalloc: the server allocates many small short-lived values per request; measured with
// the load benchmark, the system allocator's malloc/free were the top user-space symbols.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    },
    /// Work with plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCmd,
    },
}

#[derive(Subcommand)]
enum PluginCmd {
    /// Run one hook of a plugin against a sample input, without a server: prints the result,
    /// the plugin's logs, time and memory used.
    Run {
        /// The plugin's .wasm component.
        path: PathBuf,
        /// The hook to call: describe or score.
        #[arg(long, default_value = "describe")]
        hook: String,
        /// A JSON sample: entities (the hook's input), records (what get and query find),
        /// settings overrides, scorer, now.
        #[arg(long)]
        input: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
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
        Cmd::Serve {
            data,
            addr,
            demo,
            max_batch,
        } => runtime.block_on(async move {
            let mut config = ServerConfig::new(data.clone(), addr);
            config.demo = demo;
            config.max_batch = max_batch;
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
                "API: {}/api/v1/health  ·  OpenAPI: {}/api/v1/openapi.json",
                running.url(),
                running.url()
            );
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
