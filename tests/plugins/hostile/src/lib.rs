//! A hostile plugin for the sandbox tests: each scorer name picks one way to misbehave.
//! `ok` behaves, so tests can show the runtime still works after the others.
//!
//! Installed into a server, it declares a `panic` scorer on contacts (so every contact
//! change makes it fail, which must end in its suspension) and validates tickets by subject:
//! `loop` runs forever, `panic` panics, `reject` is refused with a message, anything else
//! passes.

use std::hint::black_box;

use kith_sdk::host;
use kith_sdk::{
    Capabilities, Entity, EntityExt, EntityKind, FieldError, Level, Plugin, PluginInfo, Score,
    ScoreCard, ScorerDef, Timestamp,
};

/// The plugin.
pub struct Hostile;

// Unbounded on purpose: the sandbox must turn it into a clean stack-overflow error.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    // black_box keeps the optimiser from turning the recursion into a loop.
    black_box(recurse(black_box(depth + 1))) + 1
}

/// Some work that takes measurable time.
fn recurse_a_little(n: u64) -> u64 {
    (0..n).map(|i| black_box(i * i)).sum()
}

impl Plugin for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "Hostile".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Misbehaves on purpose.".to_owned(),
            fields: Vec::new(),
            scorers: vec![ScorerDef {
                name: "panic".to_owned(),
                kind: EntityKind::Contact,
                description: "Fails every time.".to_owned(),
                depends_on: Vec::new(),
            }],
            reports: Vec::new(),
            settings: Vec::new(),
            subscriptions: Vec::new(),
            validates: vec![EntityKind::Ticket],
            capabilities: Capabilities {
                read: vec![EntityKind::Contact],
                actions: Vec::new(),
            },
        }
    }

    fn validate(
        entity: &Entity,
        _before: Option<&Entity>,
        _now: Timestamp,
    ) -> Result<(), Vec<FieldError>> {
        match entity.text("subject").unwrap_or_default() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "panic" => panic!("the hostile validator gave up on purpose"),
            "reject" => Err(vec![FieldError {
                field: "subject".to_owned(),
                message: "the hostile validator refuses this subject".to_owned(),
            }]),
            _ => Ok(()),
        }
    }

    fn score(scorer: &str, entity: &Entity, _now: Timestamp) -> Option<Score> {
        let mut card = ScoreCard::new();
        match scorer {
            "ok" => {
                card.add(42, "behaved");
            }
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![black_box(1u8); 1 << 20]);
                    black_box(&hoard);
                }
            }
            "recurse" => {
                card.add(i32::try_from(recurse(0) % 2).unwrap_or(0), "never");
            }
            "panic" => panic!("the hostile plugin gave up on purpose"),
            "big" => {
                card.add(1, "x".repeat(4 << 20));
            }
            "host-spam" => loop {
                host::log(Level::Info, "spam");
            },
            "ungranted" => {
                let _ = host::get(EntityKind::Deal, &entity.id);
                card.add(1, "read a deal");
            }
            "file" => {
                let read = std::fs::read_to_string("/etc/hostname");
                card.add(
                    1,
                    format!("file: {}", if read.is_ok() { "READ" } else { "refused" }),
                );
            }
            "clock" => {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(u64::MAX, |d| d.as_secs());
                let start = std::time::Instant::now();
                black_box(recurse_a_little(1000));
                let moved = start.elapsed() > std::time::Duration::ZERO;
                card.add(1, format!("clock: {secs} s, instant moved: {moved}"));
            }
            "random" => {
                // std seeds hash maps from WASI randomness.
                use std::hash::BuildHasher;
                let h = std::collections::hash_map::RandomState::new().hash_one(1u8);
                card.add(1, format!("random: {h}"));
            }
            "env" => {
                let vars = std::env::vars().count();
                let home = std::env::var("HOME").is_ok();
                card.add(1, format!("env: {vars} variables, HOME visible: {home}"));
            }
            _ => return None,
        }
        Some(card.finish(entity))
    }
}

kith_sdk::register_plugin!(Hostile);
