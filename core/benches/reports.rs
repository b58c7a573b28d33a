//! Report latency over many deals, no HTTP: loads `KITH_BENCH_DEALS` deals (default
//! 1,000,000, owned by 50 agents in 5 teams) into a real store, then times the built-in deal
//! reports (pipeline, forecast, win rate) from a warm engine, for everyone and for one agent
//! limited to their own and their team's deals, the first (cold) call that builds the
//! projection, a call after a burst of changes (incremental catch-up), and as the baseline a
//! plain full decode-scan of every deal, which is what answering from the store alone would
//! cost.
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
use kith_core::{
    Access, AgentScope, Command, EntityKind, Input, NewUser, OrgSettings, Reports, Role, Store,
    StoreConfig, Team, Value,
};
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
/// Deal owners: agents `rep00` to `rep49`, in teams `team0` to `team4` (`rep07` is in
/// `team2`).
const REPS: usize = 50;
const TEAMS: usize = 5;

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
            Value::Text(format!("rep{:02}@example.com", rng.random_range(0..REPS))),
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

/// A report id, its label in the table, its parameters, and whether it runs as the agent
/// limited to their own and their team's deals (rather than unrestricted).
type Case = (
    &'static str,
    &'static str,
    Vec<(&'static str, String)>,
    bool,
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

    let mut accounts: Vec<Command> = (0..TEAMS)
        .map(|t| {
            Command::PutTeam(Team {
                key: format!("team{t}"),
                name: format!("Team {t}"),
            })
        })
        .collect();
    accounts.extend((0..REPS).map(|i| {
        Command::CreateUser(NewUser {
            email: format!("rep{i:02}@example.com"),
            name: format!("rep{i:02}"),
            role: Role::Agent,
            team: Some(format!("team{}", i % TEAMS)),
            password_hash: None,
        })
    }));
    for r in store.execute_all(accounts, "bench") {
        r.unwrap();
    }
    let rep07 = store
        .directory()
        .user_by_email("rep07@example.com")
        .cloned()
        .unwrap();
    let rep07_id = rep07.id.to_string();
    let agent = Access::for_user(
        &rep07,
        &OrgSettings {
            agent_scope: AgentScope::OwnAndTeam,
        },
    );

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

    let cases: [Case; 7] = [
        ("pipeline", "pipeline", vec![], false),
        ("forecast", "forecast", vec![], false),
        ("win-rate", "win-rate (by owner)", vec![], false),
        (
            "win-rate",
            "win-rate (by month)",
            vec![("by", "month".into())],
            false,
        ),
        (
            "win-rate",
            "win-rate (one owner, one year)",
            vec![
                ("owner", rep07_id.clone()),
                ("from", "2025-01-01".into()),
                ("to", "2025-12-31".into()),
            ],
            false,
        ),
        ("pipeline", "pipeline (agent: own + team)", vec![], true),
        ("win-rate", "win-rate (agent: own + team)", vec![], true),
    ];
    let mut rows = Vec::new();
    for (id, label, params, restricted) in &cases {
        let params: BTreeMap<String, String> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let access = restricted.then_some(&agent);
        let times = (0..runs)
            .map(|_| {
                let t = Instant::now();
                black_box(reports.run_as(id, &params, access).unwrap());
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
