//! Page benchmark: starts the release `kith` server with the demo data on a temporary
//! directory and asks for every main web page in turn from one client over a keep-alive
//! connection, printing each page's p50 and p99 time (request sent to last byte read) and its
//! p50 against two baselines measured in the same run: the JSON API's list of 25 contacts (the
//! same kind of read without rendering) and `/api/v1/health` (a request that touches no
//! records).
//!
//! Run: `cargo bench -p kith-host --bench pages` (optional: `KITH_BENCH_ROUNDS=500`).
//! Not a test: it asserts nothing about speed; it prints figures.

#![allow(missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

mod common;
use common::Server;

/// A keep-alive HTTP/1.1 connection speaking just enough of the protocol for GETs.
struct Conn {
    stream: BufReader<TcpStream>,
    host: String,
    auth: String,
}

impl Conn {
    fn open(s: &Server) -> Conn {
        let stream = TcpStream::connect(&s.addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream: BufReader::new(stream),
            host: s.addr.clone(),
            auth: format!("Bearer {}", s.token),
        }
    }

    /// GETs `path`; the status and body.
    fn get(&mut self, path: &str) -> (u16, Vec<u8>) {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\r\n",
            self.host, self.auth
        );
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .expect("send");
        let mut line = String::new();
        self.stream.read_line(&mut line).expect("status line");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status");
        let mut length = 0;
        loop {
            line.clear();
            self.stream.read_line(&mut line).expect("header");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().expect("a length");
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).expect("body");
        (status, body)
    }
}

/// Times `rounds` GETs of `path`; (p50, p99) in milliseconds.
fn time(conn: &mut Conn, path: &str, rounds: usize) -> (f64, f64) {
    let mut ms: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            let (status, body) = conn.get(path);
            assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99))
}

fn main() {
    let rounds: usize = std::env::var("KITH_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let server = Server::start(&["--demo"], &[]);
    let mut conn = Conn::open(&server);
    // A contact and a deal to open, from the demo data.
    let (_, list) = conn.get("/api/v1/contacts?limit=1");
    let list: serde_json::Value = serde_json::from_slice(&list).expect("a contact list");
    let contact = list["items"][0]["id"]
        .as_str()
        .expect("a contact")
        .to_owned();
    let (_, list) = conn.get("/api/v1/deals?limit=1");
    let list: serde_json::Value = serde_json::from_slice(&list).expect("a deal list");
    let deal = list["items"][0]["id"].as_str().expect("a deal").to_owned();

    let contact_page = format!("/contacts/{contact}");
    let deal_page = format!("/deals/{deal}");
    let pages = [
        "/",
        "/contacts",
        "/contacts?q=an&sort=last_name",
        contact_page.as_str(),
        "/contacts/new",
        "/companies",
        "/deals",
        deal_page.as_str(),
        "/deals/board",
        "/tickets",
        "/tasks?view=all",
        "/reports/pipeline",
        "/search?q=an",
        "/admin/plugins",
    ];
    // Warm up: the first report run builds its projection, the first page compiles nothing
    // but fills caches.
    for page in pages {
        time(&mut conn, page, 5);
    }
    println!(
        "kith page benchmark: demo data, one keep-alive client, {rounds} requests per page, release server"
    );
    let (api, _) = time(&mut conn, "/api/v1/contacts?limit=25", rounds);
    let (health, _) = time(&mut conn, "/api/v1/health", rounds);
    println!("{:<34} {:>9} {:>9}", "baseline", "p50 ms", "");
    println!("{:<34} {api:>9.2}", "GET /api/v1/contacts?limit=25");
    println!("{:<34} {health:>9.2}", "GET /api/v1/health");
    println!();
    println!(
        "{:<34} {:>9} {:>9} {:>12} {:>12}",
        "page", "p50 ms", "p99 ms", "p50/api", "p50/health"
    );
    for page in pages {
        let (p50, p99) = time(&mut conn, page, rounds);
        let name = if page.starts_with("/contacts/0") {
            "/contacts/{id}"
        } else if page.starts_with("/deals/0") {
            "/deals/{id}"
        } else {
            page
        };
        println!(
            "{name:<34} {p50:>9.2} {p99:>9.2} {:>11.1}x {:>11.1}x",
            p50 / api,
            p50 / health
        );
    }
}
