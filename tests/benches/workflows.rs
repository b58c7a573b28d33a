//! Workflow delivery benchmark: how many events per second a no-op workflow plugin (the
//! probe in `noop` mode: a fresh instance per event, an empty action list back) is fed from
//! the event log, cursor stored as it goes. Baseline in the same run: the same number of
//! bare `on-event` calls in a loop, with no log reading and no cursor writes — the floor
//! the delivery machinery adds to.
//!
//! Run: `cargo bench -p kith-tests --bench workflows` (`KITH_BENCH_EVENTS=20000` for a
//! shorter run). It prints figures; it asserts nothing about speed.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kith_core::{Command, EntityKind, Input, Store, StoreConfig, Value};
use kith_host::plugin::manifest::Manifest;
use kith_host::plugin::wit::kith::plugin::types as w;
use kith_host::plugin::{InstallMode, Limits, Registry, Runtime};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn main() {
    let n: usize = std::env::var("KITH_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let runtime = Runtime::new(Limits::default()).unwrap();
    let registry = Registry::open(runtime, store.clone(), dir.path().join("cache")).unwrap();
    let manifest_text =
        std::fs::read_to_string(root().join("tests/plugins/workflow-probe/kith-plugin.toml"))
            .unwrap();
    let wasm =
        std::fs::read(PathBuf::from(env!("KITH_TEST_PLUGINS")).join("kith_test_workflow.wasm"))
            .unwrap();
    let manifest = Manifest::parse(&manifest_text).unwrap();
    registry
        .install(
            &manifest_text,
            &wasm,
            &manifest.requested(),
            InstallMode::New,
        )
        .unwrap();
    let mut settings = BTreeMap::new();
    settings.insert("mode".to_owned(), Value::Text("noop".to_owned()));
    registry.set_settings("probe", settings).unwrap();

    // The events: contact creates, written before delivery starts.
    let start = Instant::now();
    let cmds: Vec<Command> = (0..n)
        .map(|i| Command::Create {
            kind: EntityKind::Contact,
            input: Input::with([("first_name", Value::Text(format!("c{i}")))]),
        })
        .collect();
    for chunk in cmds.chunks(10_000) {
        for r in store.execute_all(chunk.to_vec(), "bench") {
            r.unwrap();
        }
    }
    let head = store.last_event_seq().unwrap();
    println!(
        "wrote {n} contact events in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    // Delivery: from the plugin's cursor (at install, before the events) to the head.
    let from = store.delivery_state("probe").unwrap().unwrap().cursor;
    let start = Instant::now();
    registry.start_workflows().unwrap();
    loop {
        let at = store.delivery_state("probe").unwrap().unwrap().cursor;
        if at >= head {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let delivered = head - from;
    let delivery = start.elapsed().as_secs_f64();
    let state = store.delivery_state("probe").unwrap().unwrap();
    assert!(state.failures.is_empty(), "{:?}", state.failures);

    // Baseline: the same number of bare calls, same plugin, same settings.
    let plugin = Runtime::new(Limits::default())
        .unwrap()
        .load("probe", &wasm)
        .unwrap()
        .with_setting("mode", w::FieldValue::Choice("noop".to_owned()));
    let events = store.events(from, 1).unwrap();
    let event = kith_host::plugin::event_to_wit(&events[0]);
    let start = Instant::now();
    for _ in 0..delivered {
        let (actions, _) = plugin.on_event(&event, 0).unwrap();
        assert!(actions.is_empty());
    }
    let bare = start.elapsed().as_secs_f64();

    let rate = delivered as f64 / delivery;
    let bare_rate = delivered as f64 / bare;
    println!();
    println!("| measure | events | seconds | events/s |");
    println!("|---|---:|---:|---:|");
    println!("| delivery through the no-op plugin | {delivered} | {delivery:.2} | {rate:.0} |");
    println!("| bare on-event calls (baseline) | {delivered} | {bare:.2} | {bare_rate:.0} |");
    println!();
    println!(
        "delivery runs at {:.2}x the bare call rate; target 20,000 events/s: {:.2}x of target",
        rate / bare_rate,
        rate / 20_000.0
    );
    drop(registry);
    store.close();
}
