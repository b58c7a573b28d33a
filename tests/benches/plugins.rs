//! Plugin benchmark, in one run: the cost of a no-op hook call (a fresh instance per call),
//! and rescoring 100,000 contacts with the lead-scoring plugin (batches through the `score`
//! export) against a native Rust implementation of the same rule reading the same store.
//!
//! Run: `cargo bench -p kith-tests --bench plugins` (`KITH_BENCH_CONTACTS=20000` for a
//! shorter run). It prints figures; it asserts nothing about speed.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use kith_core::{
    AnyRecord, Command, EntityKind, Filter, FilterOp, Input, Outcome, Query, Store, StoreConfig,
    Value,
};
use kith_host::plugin::wit::kith::plugin::types as w;
use kith_host::plugin::{Limits, Runtime, StoreAccess, entity_from_record};

// The allocator the `kith` server runs with, so both sides are measured as they would run there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn wasm(file: &str) -> Vec<u8> {
    std::fs::read(PathBuf::from(env!("KITH_TEST_PLUGINS")).join(file))
        .expect("tests/build.rs builds the plugins")
}

fn ids(results: Vec<Result<Outcome, kith_core::Error>>) -> Vec<kith_core::Id> {
    results
        .into_iter()
        .map(|r| match r.unwrap() {
            Outcome::Record(r) => r.id(),
            _ => unreachable!("creates return records"),
        })
        .collect()
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

/// The lead-scoring rule with its default settings, natively: same reads, same points.
fn native_score(store: &Store, c: &AnyRecord, now: chrono::DateTime<chrono::Utc>) -> u8 {
    let AnyRecord::Contact(c) = c else { return 0 };
    let mut total: i32 = 0;
    if let Some(title) = &c.title {
        let lower = title.to_lowercase();
        let words: Vec<&str> = lower
            .split(|ch: char| !ch.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let has = |p: &str| {
            let p: Vec<&str> = p.split_whitespace().collect();
            words.windows(p.len()).any(|w| w == p.as_slice())
        };
        if [
            "chief",
            "ceo",
            "cto",
            "cfo",
            "coo",
            "founder",
            "owner",
            "president",
            "vp",
            "vice president",
            "head",
            "director",
        ]
        .iter()
        .any(|k| has(k))
        {
            total += 25;
        } else if ["manager", "lead", "principal", "senior"]
            .iter()
            .any(|k| has(k))
        {
            total += 10;
        }
    }
    if let Some(domain) = c
        .email
        .as_deref()
        .and_then(|e| e.rsplit_once('@'))
        .map(|(_, d)| d.to_lowercase())
    {
        let free = [
            "gmail.com",
            "yahoo.com",
            "hotmail.com",
            "outlook.com",
            "icloud.com",
            "aol.com",
            "proton.me",
            "protonmail.com",
            "gmx.com",
            "mail.com",
        ];
        total += if free.contains(&domain.as_str()) {
            -5
        } else {
            15
        };
    }
    if let Some(company) = c.company_id
        && let Ok(AnyRecord::Company(co)) = store.get(EntityKind::Company, company)
        && let Some(size) = co.size
    {
        total += if size >= 1000 {
            20
        } else if size >= 100 {
            10
        } else {
            0
        };
    }
    let eq = |field: &str, value: String| Filter {
        field: field.to_owned(),
        op: FilterOp::Eq,
        value,
    };
    let mut count = 0;
    let mut last = None;
    let mut cursor = None;
    loop {
        let q = Query {
            filters: vec![eq("contact_id", c.id.to_string())],
            limit: 1000,
            cursor,
            ..Query::default()
        };
        let page = store.list(EntityKind::Interaction, &q).unwrap();
        for i in &page.items {
            if let AnyRecord::Interaction(i) = i
                && let Some(t) = i.occurred_at
                && t <= now
                && now - t <= chrono::Duration::days(90)
            {
                count += 1;
                last = last.max(Some(t));
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if count > 0 {
        total += (5 * count).min(20);
        if last.is_some_and(|t| now - t <= chrono::Duration::days(14)) {
            total += 10;
        }
    }
    let deals = store
        .list(
            EntityKind::Deal,
            &Query {
                filters: vec![
                    eq("contact_ids", c.id.to_string()),
                    eq("status", "open".to_owned()),
                ],
                limit: 1,
                ..Query::default()
            },
        )
        .unwrap();
    if !deals.items.is_empty() {
        total += 20;
    }
    u8::try_from(total.clamp(0, 100)).unwrap_or(0)
}

fn main() {
    let n: usize = std::env::var("KITH_BENCH_CONTACTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let runtime = Runtime::new(Limits::default()).unwrap();

    // 1. A no-op hook: `score` with no entities, a fresh instance per call.
    let hostile = runtime
        .load("hostile", &wasm("kith_test_hostile.wasm"))
        .unwrap();
    for _ in 0..200 {
        hostile.score("none", &[], 0).unwrap();
    }
    let calls = 20_000;
    let t = Instant::now();
    for _ in 0..calls {
        hostile.score("none", &[], 0).unwrap();
    }
    let noop_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(calls);
    println!("no-op hook call, fresh instance each: {noop_us:.1} µs");

    // 2. A store with n contacts, n/50 companies, n/2 interactions, n/20 deals.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let now = store.clock().now();
    let t = Instant::now();
    let companies = ids(store.execute_all(
        (0..n / 50)
            .map(|i| Command::Create {
                kind: EntityKind::Company,
                input: Input::with([
                    ("name", text(format!("Co {i}"))),
                    ("size", Value::Integer([20, 150, 5000][i % 3])),
                ]),
            })
            .collect(),
        "bench",
    ));
    let titles = [
        "VP Sales",
        "Engineer",
        "Head of IT",
        "Account Manager",
        "Intern",
        "CEO",
    ];
    let contacts = ids(store.execute_all(
        (0..n)
            .map(|i| {
                let mut input = Input::with([
                    ("first_name", text(format!("P{i}"))),
                    ("title", text(titles[i % titles.len()])),
                    (
                        "email",
                        text(if i % 4 == 0 {
                            format!("p{i}@gmail.com")
                        } else {
                            format!("p{i}@corp{}.example.com", i % 97)
                        }),
                    ),
                ]);
                if i % 5 != 0 {
                    input.fields.insert(
                        "company_id".into(),
                        Value::Ref(companies[i % companies.len()]),
                    );
                }
                Command::Create {
                    kind: EntityKind::Contact,
                    input,
                }
            })
            .collect(),
        "bench",
    ));
    store.execute_all(
        (0..n / 2)
            .map(|i| Command::Create {
                kind: EntityKind::Interaction,
                input: Input::with([
                    ("kind", text("call")),
                    ("contact_id", Value::Ref(contacts[(i * 7) % contacts.len()])),
                    (
                        "occurred_at",
                        Value::DateTime(
                            now - chrono::Duration::days(i64::try_from(i % 120).unwrap_or(0)),
                        ),
                    ),
                ]),
            })
            .collect(),
        "bench",
    );
    store.execute_all(
        (0..n / 20)
            .map(|i| Command::Create {
                kind: EntityKind::Deal,
                input: Input::with([
                    ("title", text("Deal")),
                    ("stage", text(["lead", "proposal", "won"][i % 3])),
                    (
                        "contact_ids",
                        Value::List(vec![Value::Ref(contacts[(i * 13) % contacts.len()])]),
                    ),
                ]),
            })
            .collect(),
        "bench",
    );
    println!(
        "seeded {n} contacts with companies, interactions and deals in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let records: Vec<AnyRecord> = contacts
        .iter()
        .map(|id| store.get(EntityKind::Contact, *id).unwrap())
        .collect();

    // 3. Rescoring through the plugin, in batches of the `score` export.
    let (plugin, _) = runtime
        .load("lead-scoring", &wasm("kith_plugin_lead_scoring.wasm"))
        .unwrap()
        .as_declared()
        .unwrap();
    let plugin = plugin
        .with_data(Arc::new(StoreAccess(
            store.scoped(kith_core::Access::everything()),
        )))
        .with_limits(Limits {
            hook_timeout: std::time::Duration::from_secs(2),
            ..Limits::default()
        });
    // 4. The same rule natively over the same store, interleaved with the plugin in rounds
    // so a burst of noise on this shared machine hits both sides alike; the median of the
    // per-round ratios is the figure to quote.
    let batch = 200;
    let rounds = 10;
    let per_round = records.len().div_ceil(rounds).max(batch);
    let (mut wasm_secs, mut native_secs) = (0.0, 0.0);
    let mut ratios = Vec::new();
    let mut wasm_scores = Vec::with_capacity(n);
    let mut native_scores: Vec<u8> = Vec::with_capacity(n);
    for round in records.chunks(per_round) {
        let t = Instant::now();
        for chunk in round.chunks(batch) {
            let entities: Vec<w::Entity> = chunk.iter().map(entity_from_record).collect();
            let (scores, _) = plugin
                .score("lead", &entities, now.timestamp_micros())
                .unwrap();
            wasm_scores.extend(scores.into_iter().map(|s| s.value));
        }
        let w = t.elapsed().as_secs_f64();
        let t = Instant::now();
        native_scores.extend(round.iter().map(|r| native_score(&store, r, now)));
        let nat = t.elapsed().as_secs_f64();
        wasm_secs += w;
        native_secs += nat;
        ratios.push(w / nat);
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];

    let agree = wasm_scores
        .iter()
        .zip(&native_scores)
        .filter(|(a, b)| a == b)
        .count();
    println!(
        "rescoring {n} contacts, plugin (batches of {batch}): {wasm_secs:.2} s = {:.1} µs each",
        wasm_secs * 1e6 / n as f64
    );
    println!(
        "rescoring {n} contacts, native rule:              {native_secs:.2} s = {:.1} µs each",
        native_secs * 1e6 / n as f64
    );
    println!(
        "plugin / native: {:.2}x overall, median of {} interleaved rounds {median:.2}x (range {:.2}-{:.2})   (scores agree on {agree} of {n})",
        wasm_secs / native_secs,
        ratios.len(),
        ratios[0],
        ratios[ratios.len() - 1],
    );
    store.close();
}
