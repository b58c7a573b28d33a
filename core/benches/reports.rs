//! Report latency over many deals, no HTTP: loads `KITH_BENCH_DEALS` deals (default
//! 1,000,000) into a real store, then times the built-in deal reports (pipeline, forecast,
//! win rate) from a warm engine, the first (cold) call that builds the projection, a call
//! after a burst of changes (incremental catch-up), and as the baseline a plain full
//! decode-scan of every deal, which is what answering from the store alone would cost.
//!
//! Run: `cargo bench -p kith-core --bench reports` (`KITH_BENCH_DEALS=100000` to shrink,
//! `KITH_BENCH_RUNS` for more timed runs). It prints figures; it asserts nothing about speed.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{Duration as Days, NaiveDate, Utc};
use kith_core::entity::Deal;
use kith_core::money::Decimal;
use kith_core::{Command, EntityKind, Input, Reports, Store, StoreConfig, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const STAGES: [&str; 6] = [
    "lead",
    "qualified",
    "proposal",
    "negotiation",
    "won",
    "lost",
];
const SOURCES: [&str; 6] = ["web", "referral", "event", "partner", "ads", "outbound"];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A deal created some time in the last two years (so its id, creation and close times
/// spread over them), in a random stage, owner and source, mostly with an amount.
fn deal(rng: &mut StdRng, now: chrono::DateTime<Utc>) -> Command {
    let created = now - Days::minutes(rng.random_range(1..2 * 365 * 24 * 60));
    let stage = STAGES[rng.random_range(0..STAGES.len())];
    let mut fields = vec![
        ("title", Value::Text("Bench deal".into())),
        ("stage", Value::Text(stage.into())),
        (
            "owner",
            Value::Text(format!("rep{:02}", rng.random_range(0..50))),
        ),
    ];
    if rng.random_bool(0.9) {
        fields.push((
            "source",
            Value::Text(SOURCES[rng.random_range(0..SOURCES.len())].into()),
        ));
    }
    if rng.random_bool(0.95) {
        let currency = match rng.random_range(0..20) {
            0..=15 => "USD",
            16..=18 => "EUR",
            _ => "GBP",
        };
        fields.push((
            "amount",
            Value::Number(Decimal::new(rng.random_range(10_000..10_000_000), 2)),
        ));
        fields.push(("currency", Value::Text(currency.into())));
    }
    if rng.random_bool(0.8) {
        let close: NaiveDate = (created + Days::days(rng.random_range(0..240))).date_naive();
        fields.push(("expected_close", Value::Date(close)));
    }
    Command::Backdated {
        at: created,
        command: Box::new(Command::Create {
            kind: EntityKind::Deal,
            input: Input::with(fields),
        }),
    }
}

/// A report id, its label in the table, and its parameters.
type Case = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

/// Median and max of some timings.
fn stats(mut t: Vec<Duration>) -> (Duration, Duration) {
    t.sort();
    (t[t.len() / 2], t[t.len() - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn main() {
    let n = env("KITH_BENCH_DEALS", 1_000_000);
    let runs = env("KITH_BENCH_RUNS", 9).max(1);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let now = Utc::now();
    let mut rng = StdRng::seed_from_u64(2026);

    let t = Instant::now();
    let mut loaded = 0;
    while loaded < n {
        let chunk = (n - loaded).min(50_000);
        let cmds: Vec<Command> = (0..chunk).map(|_| deal(&mut rng, now)).collect();
        for r in store.execute_all(cmds, "bench") {
            r.unwrap();
        }
        loaded += chunk;
    }
    let load = t.elapsed();
    println!(
        "loaded {n} deals in {:.1} s ({:.0}/s)",
        load.as_secs_f64(),
        n as f64 / load.as_secs_f64()
    );

    // Baseline: decode every deal from redb, as a report answered from the store would.
    let scan = (0..3)
        .map(|_| {
            let t = Instant::now();
            let mut count = 0u64;
            store
                .scan_as::<Deal>(EntityKind::Deal, |_, d| {
                    black_box(&d);
                    count += 1;
                    Ok(())
                })
                .unwrap();
            assert_eq!(count, n as u64);
            t.elapsed()
        })
        .collect::<Vec<_>>();
    let (scan_median, _) = stats(scan);

    let none = BTreeMap::new();
    let reports = Reports::new(store.clone());
    let rss_before = rss_mib();
    let t = Instant::now();
    black_box(reports.run("pipeline", &none).unwrap());
    let cold = t.elapsed();
    let rss_after = rss_mib();

    let cases: [Case; 5] = [
        ("pipeline", "pipeline", vec![]),
        ("forecast", "forecast", vec![]),
        ("win-rate", "win-rate (by owner)", vec![]),
        ("win-rate", "win-rate (by month)", vec![("by", "month")]),
        (
            "win-rate",
            "win-rate (one owner, one year)",
            vec![
                ("owner", "rep07"),
                ("from", "2025-01-01"),
                ("to", "2025-12-31"),
            ],
        ),
    ];
    let mut rows = Vec::new();
    for (id, label, params) in &cases {
        let params: BTreeMap<String, String> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let times = (0..runs)
            .map(|_| {
                let t = Instant::now();
                black_box(reports.run(id, &params).unwrap());
                t.elapsed()
            })
            .collect::<Vec<_>>();
        rows.push((*label, stats(times)));
    }

    // A burst of 1,000 changes, then the next report (which catches up first).
    let changes: Vec<Command> = (0..1_000).map(|_| deal(&mut rng, now)).collect();
    for r in store.execute_all(changes, "bench") {
        r.unwrap();
    }
    let t = Instant::now();
    black_box(reports.run("pipeline", &none).unwrap());
    let after_burst = t.elapsed();

    println!();
    println!("deals: {n}, timed runs per report: {runs}");
    println!(
        "{:<34} {:>10} {:>10} {:>14}",
        "", "median ms", "max ms", "scan / median"
    );
    println!(
        "{:<34} {:>10} {:>10} {:>14}",
        "full decode-scan (baseline)",
        ms(scan_median),
        "",
        "1.0"
    );
    for (label, (median, max)) in &rows {
        println!(
            "{:<34} {:>10} {:>10} {:>14.0}",
            label,
            ms(*median),
            ms(*max),
            scan_median.as_secs_f64() / median.as_secs_f64()
        );
    }
    println!(
        "{:<34} {:>10} {:>10} {:>14}",
        "first call (builds the projection)",
        ms(cold),
        "",
        format!("{:.2}", scan_median.as_secs_f64() / cold.as_secs_f64())
    );
    println!(
        "{:<34} {:>10} {:>10} {:>14}",
        "pipeline after 1,000 new deals",
        ms(after_burst),
        "",
        ""
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        println!(
            "resident memory {before:.0} MiB before the first call, {after:.0} MiB after \
             (the deal projection and what the scan left in the allocator)"
        );
    }
    store.close();
}

/// This process's resident memory in MiB, where `/proc` says (Linux).
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
