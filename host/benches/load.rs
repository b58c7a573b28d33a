//! Load benchmark: starts the release `kith` server on a temporary directory and drives it
//! over HTTP from 64 concurrent keep-alive clients. Phases: durable contact creates, GETs by
//! id (answered from the record cache), list pages, and a no-op request (the machine's
//! ceiling for any request). Then it restarts the server with group commit off (one
//! transaction and one fsync per request) and the record cache off, runs the same creates and
//! the same GETs (each now a storage read), and prints the ratios.
//!
//! The clients share one thread and speak just enough HTTP/1.1 to write a request and read
//! its answer (status line, `content-length`, body): on two cores every cycle the load
//! generator spends is a cycle the server under test does not get, so it builds each request
//! into a reused buffer and parses no more of the answer than it checks.
//!
//! Run: `cargo bench -p kith-host --bench load` (optional: `KITH_BENCH_SECS=10`, and
//! `KITH_BENCH_ONLY=get` to run the creates that seed the ids and then only the named phases,
//! comma-separated, out of `get,list,noop,anon,single,cold`: handy under a profiler;
//! `KITH_BENCH_MAX_BATCH=32` to cap group commit's batches below the server's default).
//! Each phase also prints the CPU time per request of the server and of the load generator:
//! on a shared machine whose speed drifts, the server's figure compared with the generator's
//! (a fixed amount of work per request) tells a real change from a slower minute.
//! Not a test: it asserts nothing about speed; it prints figures.

#![allow(missing_docs)]

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::{Server, cpu_ns};

const CLIENTS: usize = 64;

/// Starts the server with group commit taking at most `max_batch` writes per transaction.
/// With `cache_mib` 0 the record cache is off, so every GET by id reads storage.
fn start(max_batch: usize, cache_mib: usize) -> Server {
    Server::start(
        &[],
        &[
            ("KITH_MAX_BATCH", max_batch.to_string()),
            ("KITH_RECORD_CACHE_MIB", cache_mib.to_string()),
        ],
    )
}

/// Where requests go and how they are signed.
#[derive(Clone)]
struct Target {
    addr: Arc<str>,
    /// `Bearer <token>` for an admin, made before the server started.
    authorization: Arc<str>,
    /// The server's process, whose CPU time each phase reports.
    pid: u32,
}

impl Target {
    fn of(server: &Server) -> Target {
        Target {
            addr: server.addr.as_str().into(),
            authorization: format!("Bearer {}", server.token).into(),
            pid: server.pid(),
        }
    }
}

/// Writes one request into `out` (emptied first): `method path`, signed unless `signed` is
/// false, with `body` as JSON when given.
fn request(
    out: &mut Vec<u8>,
    target: &Target,
    method: &str,
    path: &str,
    signed: bool,
    body: Option<&[u8]>,
) {
    out.clear();
    let _ = write!(out, "{method} {path} HTTP/1.1\r\nHost: {}\r\n", target.addr);
    if signed {
        let _ = write!(out, "Authorization: {}\r\n", target.authorization);
    }
    if let Some(body) = body {
        let _ = write!(
            out,
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
}

/// A keep-alive connection that sends one request at a time and reads its whole answer.
struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet consumed; an answer never outlives the next request.
    buf: Vec<u8>,
    filled: usize,
}

impl Conn {
    async fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream,
            buf: vec![0; 64 * 1024],
            filled: 0,
        }
    }

    /// Sends `req` and reads the answer: its status and body.
    async fn send(&mut self, req: &[u8]) -> (u16, &[u8]) {
        self.stream.write_all(req).await.expect("send");
        self.filled = 0;
        let (status, head, length) = loop {
            if let Some(parsed) = parse_head(&self.buf[..self.filled]) {
                break parsed;
            }
            self.read_more().await;
        };
        while self.filled < head + length {
            self.read_more().await;
        }
        (status, &self.buf[head..head + length])
    }

    async fn read_more(&mut self) {
        if self.filled == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self
            .stream
            .read(&mut self.buf[self.filled..])
            .await
            .expect("receive");
        assert!(n > 0, "the server closed the connection");
        self.filled += n;
    }
}

/// The status, head length and body length of an answer whose head `buf` holds whole;
/// `None` while the head is still incomplete. The server always sends `content-length`.
fn parse_head(buf: &[u8]) -> Option<(u16, usize, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).expect("an ASCII head");
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head}"));
    let length = head
        .split("\r\n")
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().expect("a length"))
        })
        .unwrap_or_else(|| panic!("an answer with content-length: {head}"));
    Some((status, end, length))
}

struct PhaseResult {
    name: &'static str,
    ops: usize,
    secs: f64,
    lat_us: Vec<u64>,
    /// CPU time per request, in microseconds, of the server and of the load generator.
    cpu_us: Option<(f64, f64)>,
}

impl PhaseResult {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    fn pct(&self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return 0.0;
        }
        let i = ((self.lat_us.len() as f64 - 1.0) * p).round() as usize;
        self.lat_us[i] as f64 / 1000.0
    }

    fn print(&self) {
        println!(
            "{:<40} {:>9} ops {:>5.1} s {:>9.0} /s   p50 {:>6.2} ms   p99 {:>6.2} ms{}",
            self.name,
            self.ops,
            self.secs,
            self.rate(),
            self.pct(0.50),
            self.pct(0.99),
            self.cpu_us
                .map(|(server, client)| format!(
                    "   cpu/req server {server:>5.1} us, client {client:>4.1} us"
                ))
                .unwrap_or_default()
        );
    }
}

/// Writes client `c`'s `n`th request into the buffer.
type MakeRequest = Arc<dyn Fn(&mut Vec<u8>, usize, usize) + Send + Sync>;
/// Looks at an answer's body (after its status was checked).
type OnBody = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// Runs `CLIENTS` clients for `secs`; each sends `make`'s requests in a loop and checks that
/// every answer has status `expect`.
async fn phase(
    name: &'static str,
    target: &Target,
    secs: f64,
    expect: u16,
    make: MakeRequest,
    on_body: Option<OnBody>,
) -> PhaseResult {
    let cpu_before = (cpu_ns(Some(target.pid)), cpu_ns(None));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let addr = target.addr.clone();
        let make = make.clone();
        let on_body = on_body.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&addr).await;
            let mut req = Vec::with_capacity(512);
            let mut lat = Vec::new();
            let mut n = 0;
            while Instant::now() < deadline {
                make(&mut req, c, n);
                let t = Instant::now();
                let (status, body) = conn.send(&req).await;
                lat.push(t.elapsed().as_micros() as u64);
                assert_eq!(status, expect, "{name}: {}", String::from_utf8_lossy(body));
                if let Some(on_body) = &on_body {
                    on_body(body);
                }
                n += 1;
            }
            lat
        }));
    }
    let mut lat_us = Vec::new();
    for t in tasks {
        lat_us.extend(t.await.expect("client task"));
    }
    let secs = start.elapsed().as_secs_f64();
    let ops = lat_us.len();
    let per_op = |before: Option<u64>, after: Option<u64>| {
        Some(after?.saturating_sub(before?) as f64 / 1000.0 / ops.max(1) as f64)
    };
    let cpu_us =
        per_op(cpu_before.0, cpu_ns(Some(target.pid))).zip(per_op(cpu_before.1, cpu_ns(None)));
    lat_us.sort_unstable();
    PhaseResult {
        name,
        ops,
        secs,
        lat_us,
        cpu_us,
    }
}

/// Durable contact creates, each with a unique email; with `ids`, the new records' ids are
/// collected there.
async fn create_phase(
    target: &Target,
    secs: f64,
    tag: &'static str,
    name: &'static str,
    ids: Option<Arc<std::sync::Mutex<Vec<String>>>>,
) -> PhaseResult {
    let t = target.clone();
    let make: MakeRequest = Arc::new(move |out, c, n| {
        let body = format!(
            r#"{{"first_name":"Load{c}","last_name":"Client{n}","email":"{tag}-{c}-{n}@load.example.com","title":"Buyer","source":"bench"}}"#
        );
        request(
            out,
            &t,
            "POST",
            "/api/v1/contacts",
            true,
            Some(body.as_bytes()),
        );
    });
    let on_body: Option<OnBody> = ids.map(|ids| {
        Arc::new(move |body: &[u8]| {
            // The id is the first field of the record: {"id":"<36 chars>"...
            let id = String::from_utf8_lossy(&body[7..43]).into_owned();
            ids.lock().expect("ids").push(id);
        }) as OnBody
    });
    phase(name, target, secs, 201, make, on_body).await
}

/// GETs by id of `ids`, spread over them by a stride prime to their number.
async fn get_phase(
    target: &Target,
    secs: f64,
    name: &'static str,
    ids: Vec<String>,
) -> PhaseResult {
    let counter = AtomicUsize::new(0);
    let t = target.clone();
    let make: MakeRequest = Arc::new(move |out, _c, _n| {
        let i = counter.fetch_add(7919, Ordering::Relaxed) % ids.len();
        request(
            out,
            &t,
            "GET",
            &format!("/api/v1/contacts/{}", ids[i]),
            true,
            None,
        );
    });
    phase(name, target, secs, 200, make, None).await
}

/// GETs of one `path`, signed with the admin token or anonymous, each answered `expect`.
async fn fixed_phase(
    name: &'static str,
    target: &Target,
    secs: f64,
    path: &'static str,
    signed: bool,
    expect: u16,
) -> PhaseResult {
    let mut req = Vec::new();
    request(&mut req, target, "GET", path, signed, None);
    let make: MakeRequest = Arc::new(move |out, _c, _n| {
        out.clear();
        out.extend_from_slice(&req);
    });
    phase(name, target, secs, expect, make, None).await
}

/// Whether `KITH_BENCH_ONLY` (unset: every phase) names `phase`.
fn wants(phase: &str) -> bool {
    std::env::var("KITH_BENCH_ONLY")
        .map(|only| only.split(',').any(|p| p.trim() == phase))
        .unwrap_or(true)
}

fn main() {
    let secs: f64 = std::env::var("KITH_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    // One client thread leaves the other core to the server.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "kith load benchmark: {CLIENTS} clients, {secs} s per phase, release server on a temporary directory"
    );
    rt.block_on(async {
        let batch = std::env::var("KITH_BENCH_MAX_BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024);
        let server = start(batch, 64);
        let target = Target::of(&server);
        let ids = Arc::new(std::sync::Mutex::new(Vec::new()));
        let creates = create_phase(&target, secs, "gc", "create (group commit)", Some(ids.clone())).await;
        creates.print();
        let ids = ids.lock().expect("ids").clone();
        let gets = if wants("get") {
            Some(get_phase(&target, secs, "get by id", ids).await)
        } else {
            None
        };
        gets.iter().for_each(PhaseResult::print);
        if wants("list") {
            let t = target.clone();
            let make: MakeRequest = Arc::new(move |out, c, n| {
                let path = if (c + n) % 2 == 0 {
                    "/api/v1/contacts?limit=50"
                } else {
                    "/api/v1/contacts?limit=50&sort=created_at"
                };
                request(out, &t, "GET", path, true, None);
            });
            phase("list page (50 contacts)", &target, secs, 200, make, None).await.print();
        }
        // The ceiling of this machine for any request: routing and a small JSON error body,
        // no storage at all. Reads cannot beat it; it puts the figures above in proportion.
        let noop = if wants("noop") {
            Some(fixed_phase("no-op request (404, no storage)", &target, secs, "/api/v1/nothing", true, 404).await)
        } else {
            None
        };
        noop.iter().for_each(PhaseResult::print);
        // The same kind of answer (a small JSON body, no storage) without authentication: the
        // difference to the no-op above is what checking a token costs.
        let anon = if wants("anon") {
            Some(fixed_phase("health, anonymous (no auth, no storage)", &target, secs, "/api/v1/health", false, 200).await)
        } else {
            None
        };
        anon.iter().for_each(PhaseResult::print);
        drop(server);

        // One transaction per request, and the record cache off: the same creates, then the
        // same GETs each reading storage.
        let (single, cold) = if wants("single") || wants("cold") {
            let server = start(1, 0);
            let target = Target::of(&server);
            let ids = Arc::new(std::sync::Mutex::new(Vec::new()));
            let single = create_phase(&target, secs, "tx", "create (one transaction per request)", Some(ids.clone())).await;
            single.print();
            let ids = ids.lock().expect("ids").clone();
            let cold = if wants("cold") {
                let cold = get_phase(&target, secs, "get by id (record cache off)", ids).await;
                cold.print();
                Some(cold)
            } else {
                None
            };
            (Some(single), cold)
        } else {
            (None, None)
        };
        println!();
        if let Some(single) = single {
            println!(
                "group commit vs one transaction per request: {:.1}x the throughput ({:.0} vs {:.0} creates/s)",
                creates.rate() / single.rate(),
                creates.rate(),
                single.rate()
            );
        }
        if let Some(noop) = &noop {
            // The machine's speed varies by the minute on a shared host; this proportion
            // varies less than the absolute rates.
            println!(
                "durable creates run at {:.0}% of the no-op request rate ({:.0} vs {:.0} /s)",
                100.0 * creates.rate() / noop.rate(),
                creates.rate(),
                noop.rate()
            );
        }
        if let (Some(gets), Some(noop)) = (&gets, &noop) {
            println!(
                "get by id runs at {:.0}% of the no-op request rate ({:.0} vs {:.0} /s)",
                100.0 * gets.rate() / noop.rate(),
                gets.rate(),
                noop.rate()
            );
        }
        if let (Some(gets), Some(cold)) = (&gets, &cold) {
            println!(
                "get by id from the record cache: {:.1}x the rate with the cache off ({:.0} vs {:.0} /s)",
                gets.rate() / cold.rate(),
                gets.rate(),
                cold.rate()
            );
        }
        if let (Some(noop), Some(anon)) = (&noop, &anon) {
            println!(
                "a token-checked no-op runs at {:.0}% of an anonymous one ({:.0} vs {:.0} /s)",
                100.0 * noop.rate() / anon.rate(),
                noop.rate(),
                anon.rate()
            );
        }
    });
}
