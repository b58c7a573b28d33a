//! Load benchmark: starts the release `kith` server on a temporary directory and drives it
//! over HTTP from 64 concurrent keep-alive clients. Phases: durable contact creates, GETs by
//! id (answered from the record cache), list pages, and a no-op request (the machine's
//! ceiling for any request). Then it restarts the server with group commit off (one
//! transaction and one fsync per request) and the record cache off, runs the same creates and
//! the same GETs (each now a storage read), and prints the ratios.
//!
//! Run: `cargo bench -p kith-host --bench load` (optional: `KITH_BENCH_SECS=10`, and
//! `KITH_BENCH_ONLY=get` to run the creates that seed the ids and then only the named phases,
//! comma-separated, out of `get,list,noop,anon,single,cold`: handy under a profiler).
//! Not a test: it asserts nothing about speed; it prints figures.

#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

mod common;
use common::Server;

const CLIENTS: usize = 64;

/// The API token every request sends (made with `kith token create` before each start).
static TOKEN: std::sync::RwLock<String> = std::sync::RwLock::new(String::new());

/// Starts the server with group commit taking at most `max_batch` writes per transaction,
/// and makes its token the one every request sends.
/// With `cache_mib` 0 the record cache is off, so every GET by id reads storage.
fn start(max_batch: usize, cache_mib: usize) -> Server {
    let server = Server::start(
        &[],
        &[
            ("KITH_MAX_BATCH", max_batch.to_string()),
            ("KITH_RECORD_CACHE_MIB", cache_mib.to_string()),
        ],
    );
    *TOKEN.write().unwrap_or_else(|p| p.into_inner()) = format!("Bearer {}", server.token);
    server
}

async fn connect(addr: &str) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

/// One request signed with the benchmark's admin token.
async fn call(
    sender: &mut SendRequest<Full<Bytes>>,
    method: Method,
    addr: &str,
    path: &str,
    body: Option<String>,
) -> (StatusCode, Bytes) {
    let token = TOKEN.read().unwrap_or_else(|p| p.into_inner()).clone();
    call_as(sender, method, addr, path, body, Some(&token)).await
}

/// One request, signed with `authorization` (a whole header value) when given.
async fn call_as(
    sender: &mut SendRequest<Full<Bytes>>,
    method: Method,
    addr: &str,
    path: &str,
    body: Option<String>,
    authorization: Option<&str>,
) -> (StatusCode, Bytes) {
    sender.ready().await.expect("connection ready");
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr)
        .header("content-type", "application/json");
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, bytes)
}

struct PhaseResult {
    name: &'static str,
    ops: usize,
    secs: f64,
    lat_us: Vec<u64>,
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
            "{:<34} {:>9} ops {:>7.1} s {:>10.0} /s   p50 {:>7.2} ms   p99 {:>7.2} ms",
            self.name,
            self.ops,
            self.secs,
            self.rate(),
            self.pct(0.50),
            self.pct(0.99)
        );
    }
}

/// Runs `CLIENTS` clients for `secs`; each calls `step(client, n)` in a loop.
async fn phase<F, Fut>(name: &'static str, addr: &str, secs: f64, step: F) -> PhaseResult
where
    F: Fn(SendRequest<Full<Bytes>>, usize, usize) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = SendRequest<Full<Bytes>>> + Send,
{
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let addr = addr.to_owned();
        let step = step.clone();
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(&addr).await;
            let mut lat = Vec::new();
            let mut n = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                sender = step(sender, c, n).await;
                lat.push(t.elapsed().as_micros() as u64);
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
    lat_us.sort_unstable();
    PhaseResult {
        name,
        ops: lat_us.len(),
        secs,
        lat_us,
    }
}

fn contact_body(c: usize, n: usize, tag: &str) -> String {
    format!(
        r#"{{"first_name":"Load{c}","last_name":"Client{n}","email":"{tag}-{c}-{n}@load.example.com","title":"Buyer","source":"bench"}}"#
    )
}

async fn create_phase(
    addr: &str,
    secs: f64,
    tag: &'static str,
    name: &'static str,
    ids: Option<Arc<std::sync::Mutex<Vec<String>>>>,
) -> PhaseResult {
    let addr_owned = addr.to_owned();
    phase(name, addr, secs, move |mut s, c, n| {
        let addr = addr_owned.clone();
        let ids = ids.clone();
        async move {
            let (status, body) = call(
                &mut s,
                Method::POST,
                &addr,
                "/api/v1/contacts",
                Some(contact_body(c, n, tag)),
            )
            .await;
            assert_eq!(
                status,
                StatusCode::CREATED,
                "{}",
                String::from_utf8_lossy(&body)
            );
            if let Some(ids) = ids {
                // The id is the first field of the record: {"id":"<36 chars>"...
                let id = String::from_utf8_lossy(&body[7..43]).into_owned();
                ids.lock().expect("ids").push(id);
            }
            s
        }
    })
    .await
}

/// GETs by id of `ids`, spread over them by a stride prime to their number.
async fn get_phase(
    addr: &str,
    secs: f64,
    name: &'static str,
    ids: Arc<Vec<String>>,
) -> PhaseResult {
    let counter = Arc::new(AtomicUsize::new(0));
    let get_addr = addr.to_owned();
    phase(name, addr, secs, move |mut s, _c, _n| {
        let addr = get_addr.clone();
        let ids = ids.clone();
        let i = counter.fetch_add(7919, Ordering::Relaxed) % ids.len();
        async move {
            let path = format!("/api/v1/contacts/{}", ids[i]);
            let (status, _) = call(&mut s, Method::GET, &addr, &path, None).await;
            assert_eq!(status, StatusCode::OK);
            s
        }
    })
    .await
}

/// GETs of one `path`, signed with the admin token or anonymous, each answered `expect`.
async fn fixed_phase(
    name: &'static str,
    addr: &str,
    secs: f64,
    path: &'static str,
    signed: bool,
    expect: StatusCode,
) -> PhaseResult {
    let owned = addr.to_owned();
    phase(name, addr, secs, move |mut s, _c, _n| {
        let addr = owned.clone();
        async move {
            let status = if signed {
                call(&mut s, Method::GET, &addr, path, None).await.0
            } else {
                call_as(&mut s, Method::GET, &addr, path, None, None)
                    .await
                    .0
            };
            assert_eq!(status, expect);
            s
        }
    })
    .await
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
        let server = start(1024, 64);
        let addr = server.addr.clone();
        let ids = Arc::new(std::sync::Mutex::new(Vec::new()));
        let creates = create_phase(&addr, secs, "gc", "create (group commit)", Some(ids.clone())).await;
        creates.print();
        let ids = Arc::new(ids.lock().expect("ids").clone());
        let gets = if wants("get") {
            Some(get_phase(&addr, secs, "get by id", ids).await)
        } else {
            None
        };
        gets.iter().for_each(PhaseResult::print);
        let list_addr = addr.clone();
        if wants("list") {
            let lists = phase("list page (50 contacts)", &addr, secs, move |mut s, c, n| {
                let addr = list_addr.clone();
                async move {
                    let filter = if (c + n) % 2 == 0 { "" } else { "&sort=created_at" };
                    let path = format!("/api/v1/contacts?limit=50{filter}");
                    let (status, _) = call(&mut s, Method::GET, &addr, &path, None).await;
                    assert_eq!(status, StatusCode::OK);
                    s
                }
            })
            .await;
            lists.print();
        }
        // The ceiling of this machine for any request: routing and a small JSON error body,
        // no storage at all. Reads cannot beat it; it puts the figures above in proportion.
        let noop = if wants("noop") {
            Some(fixed_phase("no-op request (404, no storage)", &addr, secs, "/api/v1/nothing", true, StatusCode::NOT_FOUND).await)
        } else {
            None
        };
        noop.iter().for_each(PhaseResult::print);
        // The same kind of answer (a small JSON body, no storage) without authentication: the
        // difference to the no-op above is what checking a token costs.
        let anon = if wants("anon") {
            Some(fixed_phase("health, anonymous (no auth, no storage)", &addr, secs, "/api/v1/health", false, StatusCode::OK).await)
        } else {
            None
        };
        anon.iter().for_each(PhaseResult::print);
        drop(server);

        // One transaction per request, and the record cache off: the same creates, then the
        // same GETs each reading storage.
        let (single, cold) = if wants("single") || wants("cold") {
            let server = start(1, 0);
            let ids = Arc::new(std::sync::Mutex::new(Vec::new()));
            let single = create_phase(&server.addr.clone(), secs, "tx", "create (one transaction per request)", Some(ids.clone())).await;
            single.print();
            let ids = Arc::new(ids.lock().expect("ids").clone());
            let cold = if wants("cold") {
                let cold = get_phase(&server.addr, secs, "get by id (record cache off)", ids).await;
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
