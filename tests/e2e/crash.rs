//! Crash safety of workflow delivery: a server in a child process takes a storm of writes
//! while a workflow plugin reacts to each one and schedules a timer, and is killed with
//! SIGKILL at a random moment, again and again. After the last restart every acknowledged
//! write is there, and every contact in the store was handled exactly once in effect: one
//! welcome task, one tag, one count in the plugin's storage, one fired timer.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kith_core::{Store, StoreConfig};
use reqwest::{Client, StatusCode};
use serde_json::json;

use crate::lifecycle::install;
use crate::support::{TestServer, client_with, config};

/// The environment variable that turns [`crash_child`] into a server.
const CHILD_DIR: &str = "KITH_CRASH_CHILD_DIR";

/// Not a test of its own: the crash test runs this binary again with only this function
/// and [`CHILD_DIR`] set, and it serves until killed.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "the server process the crash test starts and kills"]
async fn crash_child() {
    let dir = std::env::var(CHILD_DIR).expect("run by the crash test, which sets the directory");
    let running = kith_host::start(config(Path::new(&dir), false))
        .await
        .expect("start the server");
    println!("KITH_URL={}", running.url());
    std::future::pending::<()>().await;
}

/// Starts the child server on `dir`; returns it and its URL.
fn spawn_child(dir: &Path) -> (Child, String) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "crash::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the child server");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the child printed its URL before exiting")
            .unwrap();
        // libtest prints "test crash::crash_child ... " before the test's own output.
        if let Some((_, url)) = line.split_once("KITH_URL=") {
            break url.trim().to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, url)
}

/// Creates a contact; its id once the server acknowledged it, `None` when the request
/// failed in any way (the server was killed under it).
async fn try_create(client: &Client, url: &str, body: &serde_json::Value) -> Option<String> {
    let response = client
        .post(format!("{url}/api/v1/contacts"))
        .json(body)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    if response.status() != StatusCode::CREATED {
        return None;
    }
    let created: serde_json::Value = response.json().await.ok()?;
    created["id"].as_str().map(str::to_owned)
}

/// A cheap varying number (no random crate in the tests): the clock's nanoseconds.
fn jitter(max: u64) -> u64 {
    u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
    ) % max
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_servers_lose_no_acknowledged_write_and_handle_every_event_once() {
    const ROUNDS: usize = 6;
    const WRITERS: usize = 4;
    let dir = tempfile::TempDir::new().unwrap();

    // The plugin is installed once, through a normal server; the children inherit it.
    let s = TestServer::start_in(dir.path(), false).await.unwrap();
    install(
        &s,
        "probe",
        "read:contact,action:create-task,action:add-tag,action:remove-tag,action:log-interaction,action:schedule",
    )
    .await;
    s.patch(
        "/api/v1/plugins/probe/settings",
        &json!({ "timer_secs": 1 }),
    )
    .await;
    let token = s.token().to_owned();
    s.stop().await;

    let mut acknowledged: Vec<String> = Vec::new();
    for round in 0..ROUNDS {
        let (mut child, url) = spawn_child(dir.path());
        let client = client_with(&token);
        let deadline = Instant::now() + Duration::from_millis(300 + jitter(1200));
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let (client, url) = (client.clone(), url.clone());
            writers.push(tokio::spawn(async move {
                let mut ok = Vec::new();
                for i in 0.. {
                    let body = json!({
                        "first_name": format!("r{round}w{w}n{i}"),
                        "email": format!("r{round}.w{w}.n{i}@crash.example"),
                    });
                    match try_create(&client, &url, &body).await {
                        Some(id) => ok.push(id),
                        // The server is gone (or going): stop writing.
                        None => break,
                    }
                }
                ok
            }));
        }
        tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
        child.kill().expect("SIGKILL the child");
        child.wait().unwrap();
        for w in writers {
            acknowledged.extend(w.await.unwrap());
        }
    }
    assert!(
        acknowledged.len() > ROUNDS,
        "the storm wrote something: {}",
        acknowledged.len()
    );

    // A last, clean start: delivery and timers catch up.
    let s = TestServer::start_in(dir.path(), false).await.unwrap();
    let start = Instant::now();
    loop {
        let d = s.get_ok("/api/v1/plugins/probe/delivery").await;
        if d["lag"] == 0 && d["pending_timers"] == 0 {
            assert_eq!(d["recent_failures"], json!([]), "{d}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "delivery did not catch up: {d}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in &acknowledged {
        let (status, body) = s.get(&format!("/api/v1/contacts/{id}")).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "acknowledged contact {id} is missing: {body}"
        );
    }
    let contacts = s.list_all("/api/v1/contacts?limit=500").await;
    assert!(contacts.len() >= acknowledged.len());
    let tasks = s.list_all("/api/v1/tasks?limit=500").await;
    let notes = s.list_all("/api/v1/interactions?limit=500").await;
    for c in &contacts {
        let id = c["id"].as_str().unwrap();
        let n_tasks = tasks.iter().filter(|t| t["contact_id"] == id).count();
        let n_notes = notes.iter().filter(|t| t["contact_id"] == id).count();
        let n_tags = c["tags"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| *t == "welcomed")
            .count();
        assert_eq!(
            (n_tasks, n_tags, n_notes),
            (1, 1, 1),
            "contact {id}: tasks, tags, timer notes"
        );
    }
    assert_eq!(tasks.len(), contacts.len());
    assert_eq!(notes.len(), contacts.len());
    s.stop().await;

    // The plugin's own count, kept in its storage by the same deliveries, agrees.
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let count = store.plugin_kv("probe", "count").unwrap().unwrap();
    assert_eq!(
        String::from_utf8(count).unwrap(),
        contacts.len().to_string()
    );
    assert!(store.verify_indexes().unwrap().is_empty());
    store.close();
}
