//! Store micro-benchmark, no HTTP: the writer's cost per durable create when batches are full,
//! and the cost of a read by id. Run: `cargo bench -p kith-core --bench store`.
//! It prints figures; it asserts nothing about speed.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use kith_core::{Command, EntityKind, Input, Outcome, Store, StoreConfig, Value};

fn contact(i: usize) -> Command {
    Command::Create {
        kind: EntityKind::Contact,
        input: Input::with([
            ("first_name", Value::Text("Load".into())),
            ("last_name", Value::Text(format!("Client{i}"))),
            ("email", Value::Text(format!("c{i}@load.example.com"))),
            ("title", Value::Text("Buyer".into())),
            ("source", Value::Text("bench".into())),
        ]),
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let n = 50_000;
    let cmds: Vec<Command> = (0..n).map(contact).collect();
    let t = Instant::now();
    let results = store.execute_all(cmds, "bench");
    let secs = t.elapsed().as_secs_f64();
    let ids: Vec<_> = results
        .into_iter()
        .map(|r| match r.unwrap() {
            Outcome::Record(r) => r.id(),
            _ => unreachable!("create returns a record"),
        })
        .collect();
    println!(
        "create, batches of up to 1024: {n} in {secs:.2} s = {:.1} µs each, {:.0}/s",
        secs * 1e6 / n as f64,
        n as f64 / secs
    );
    let t = Instant::now();
    for id in &ids {
        store.get(EntityKind::Contact, *id).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    println!("get by id: {:.2} µs each", secs * 1e6 / n as f64);
    let q = kith_core::Query {
        limit: 50,
        ..Default::default()
    };
    let t = Instant::now();
    for _ in 0..2000 {
        store.list(EntityKind::Contact, &q).unwrap();
    }
    println!(
        "list page of 50: {:.1} µs each",
        t.elapsed().as_secs_f64() * 1e6 / 2000.0
    );
    store.close();
}
