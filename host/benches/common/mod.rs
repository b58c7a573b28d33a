//! What the server benchmarks share: starting the release `kith` binary on a temporary data
//! directory with an admin's API token made by `kith user add` and `kith token create`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The `kith` binary under test: this build's, unless `KITH_BENCH_BINARY` names another (to
/// compare two builds on the same machine at the same time).
fn binary() -> std::ffi::OsString {
    std::env::var_os("KITH_BENCH_BINARY").unwrap_or_else(|| env!("CARGO_BIN_EXE_kith").into())
}

/// Runs the `kith` binary with `args` on `data`; its standard output.
pub fn kith(args: &[&str], data: &std::path::Path) -> String {
    let out = Command::new(binary())
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .expect("run the kith binary");
    assert!(
        out.status.success(),
        "kith {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running server, stopped on drop.
pub struct Server {
    child: Child,
    /// `host:port`.
    pub addr: String,
    /// An admin's API token (the secret alone).
    pub token: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `kith serve` with `extra` arguments and `env` on a new temporary directory.
    pub fn start(extra: &[&str], env: &[(&str, String)]) -> Server {
        let dir = tempfile::tempdir().expect("temporary directory");
        kith(
            &[
                "user",
                "add",
                "--email",
                "bench@example.com",
                "--role",
                "admin",
            ],
            dir.path(),
        );
        let printed = kith(
            &["token", "create", "--email", "bench@example.com"],
            dir.path(),
        );
        let token = printed.lines().next().expect("the token").trim().to_owned();
        let mut child = Command::new(binary())
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .arg("--data")
            .arg(dir.path())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the kith binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("server printed its address")
                .expect("stdout");
            if let Some(rest) = line.strip_prefix("Kith is serving http://") {
                break rest.split_whitespace().next().expect("address").to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            addr,
            token,
            _dir: dir,
        }
    }
}

impl Server {
    /// The server's process id.
    #[allow(dead_code)] // Not every benchmark measures the server's CPU.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// CPU time process `pid` (this one when `None`) has used so far, user and system, in
/// nanoseconds; `None` where the system does not expose it. Read from `/proc/<pid>/stat`,
/// which also counts threads that have already ended (the blocking pool's threads end after
/// a quiet spell, and summing the live threads alone would then lose their time). Its unit is
/// 1/100 s, ample for phases of seconds.
#[allow(dead_code)] // Not every benchmark measures CPU.
pub fn cpu_ns(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) start at the state, field 3;
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // Linux reports these in USER_HZ, which is 100 on every architecture it runs on.
    Some((utime + stime) * 10_000_000)
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM would be gentler, but the data directory is thrown away anyway.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
