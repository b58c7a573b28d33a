//! List queries: cursor pagination, filters with every operator, free-text search, sorting,
//! custom-field filters and the count endpoint, each checked against a model of the data.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, id_of, ids};

const STAGES: [&str; 6] = [
    "lead",
    "qualified",
    "proposal",
    "negotiation",
    "won",
    "lost",
];

/// What the test created, to compute expected answers from.
struct Data {
    acme: String,
    contacts: Vec<ContactRow>,
    deals: Vec<DealRow>,
}

struct ContactRow {
    id: String,
    i: usize,
    last_name: String,
    at_acme: bool,
    tier: Option<&'static str>,
}

struct DealRow {
    id: String,
    amount: u64,
    stage: &'static str,
}

/// 2 companies, 30 contacts (half at Acme, every third a "Smithson", tiers gold/silver on
/// some) and 30 deals (amounts 0, 100, ..., 2900; stages in turn).
async fn seed(s: &TestServer) -> Data {
    let acme = s
        .create_id(
            "companies",
            json!({ "name": "Acme", "domain": "acme.example.com" }),
        )
        .await;
    s.create_id(
        "companies",
        json!({ "name": "Globex", "domain": "globex.example.com" }),
    )
    .await;
    let (status, field) = s
        .post(
            "/api/v1/fields/contacts",
            &json!({ "name": "tier", "type": "choice", "options": ["gold", "silver"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{field}");
    assert_eq!(field["name"], json!("tier"));
    assert_eq!(field["type"], json!("choice"));

    let mut contacts = Vec::new();
    for i in 0..30 {
        let last_name = if i % 3 == 0 {
            "Smithson".to_owned()
        } else {
            format!("Jones{i}")
        };
        let at_acme = i % 2 == 0;
        let tier = match i % 5 {
            0 => Some("gold"),
            1 => Some("silver"),
            _ => None,
        };
        let mut body = json!({
            "first_name": format!("Person{i:02}"),
            "last_name": last_name,
            "email": format!("person{i:02}@mail{}.example.org", i % 4),
        });
        if at_acme {
            body["company_id"] = json!(acme);
        }
        if let Some(t) = tier {
            body["custom"] = json!({ "tier": t });
        }
        let record = s.create("contacts", body).await;
        if let Some(t) = tier {
            assert_eq!(record["custom"]["tier"], json!(t));
        }
        contacts.push(ContactRow {
            id: id_of(&record),
            i,
            last_name,
            at_acme,
            tier,
        });
    }

    let mut deals = Vec::new();
    for i in 0..30 {
        let amount = (i as u64) * 100;
        let stage = STAGES[i % STAGES.len()];
        let id = s
            .create_id(
                "deals",
                json!({ "title": format!("Deal {i}"), "amount": format!("{amount}.00"),
                        "currency": "USD", "stage": stage }),
            )
            .await;
        deals.push(DealRow { id, amount, stage });
    }
    Data {
        acme,
        contacts,
        deals,
    }
}

fn id_set<'a>(ids: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    ids.into_iter().cloned().collect()
}

/// Lists `kind` with `query` through every page and checks the ids are exactly `want`, each
/// once; also checks `/count` with the same filters agrees.
async fn check(s: &TestServer, kind: &str, query: &str, want: &BTreeSet<String>) {
    let items = s.list_all(&format!("/api/v1/{kind}?limit=4&{query}")).await;
    let got = ids(&items);
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        got.len(),
        "{kind}?{query}: an item appeared twice"
    );
    assert_eq!(&unique, want, "{kind}?{query}");
    assert_eq!(
        s.count(kind, query).await,
        want.len() as u64,
        "{kind}/count?{query}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_returns_every_record_exactly_once() {
    let s = TestServer::start().await;
    let data = seed(&s).await;
    let all_contacts = id_set(data.contacts.iter().map(|c| &c.id));

    for limit in [1, 7, 30, 50] {
        let items = s.list_all(&format!("/api/v1/contacts?limit={limit}")).await;
        let got = ids(&items);
        assert_eq!(got.len(), 30, "limit {limit}");
        // Newest first by default.
        let newest_first: Vec<String> = data.contacts.iter().rev().map(|c| c.id.clone()).collect();
        assert_eq!(got, newest_first, "limit {limit}");
    }
    let first = s.get_ok("/api/v1/contacts?limit=7").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 7);
    assert!(first["next_cursor"].is_string());
    let last = s.get_ok("/api/v1/contacts?limit=30").await;
    assert!(
        last["next_cursor"].is_null(),
        "one full page has no next page: {last}"
    );
    // Without a limit, pages hold 50.
    let default = s.get_ok("/api/v1/contacts").await;
    assert_eq!(default["items"].as_array().unwrap().len(), 30);

    let oldest_first = s.list_all("/api/v1/contacts?limit=7&sort=created_at").await;
    let want: Vec<String> = data.contacts.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids(&oldest_first), want);

    // Paging through a sorted list (not in id order) is stable too.
    let by_name = s
        .list_all("/api/v1/contacts?limit=4&sort=-first_name")
        .await;
    // Names are Person00..Person29 in creation order, so descending by name is newest first.
    let want: Vec<String> = data.contacts.iter().rev().map(|c| c.id.clone()).collect();
    assert_eq!(ids(&by_name), want);
    check(&s, "contacts", "", &all_contacts).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_match_the_model() {
    let s = TestServer::start().await;
    let data = seed(&s).await;
    let deals =
        |f: &dyn Fn(&DealRow) -> bool| id_set(data.deals.iter().filter(|d| f(d)).map(|d| &d.id));
    let contacts = |f: &dyn Fn(&ContactRow) -> bool| {
        id_set(data.contacts.iter().filter(|c| f(c)).map(|c| &c.id))
    };

    check(
        &s,
        "deals",
        "stage=proposal",
        &deals(&|d| d.stage == "proposal"),
    )
    .await;
    check(
        &s,
        "deals",
        "stage=PROPOSAL",
        &deals(&|d| d.stage == "proposal"),
    )
    .await;
    check(
        &s,
        "deals",
        "stage[ne]=proposal",
        &deals(&|d| d.stage != "proposal"),
    )
    .await;
    check(
        &s,
        "deals",
        "amount[gte]=1000",
        &deals(&|d| d.amount >= 1000),
    )
    .await;
    check(&s, "deals", "amount[gt]=1000", &deals(&|d| d.amount > 1000)).await;
    check(&s, "deals", "amount[lt]=550.5", &deals(&|d| d.amount < 551)).await;
    check(&s, "deals", "amount[lte]=500", &deals(&|d| d.amount <= 500)).await;
    check(&s, "deals", "amount=1200", &deals(&|d| d.amount == 1200)).await;
    check(
        &s,
        "deals",
        "amount[gte]=1000&amount[lt]=2000",
        &deals(&|d| (1000..2000).contains(&d.amount)),
    )
    .await;
    check(
        &s,
        "deals",
        "status[in]=open,won",
        &deals(&|d| d.stage != "lost"),
    )
    .await;
    check(&s, "deals", "status=lost", &deals(&|d| d.stage == "lost")).await;
    check(
        &s,
        "deals",
        "status=open&amount[gte]=1000",
        &deals(&|d| !["won", "lost"].contains(&d.stage) && d.amount >= 1000),
    )
    .await;
    check(
        &s,
        "deals",
        "stage[in]=won,lost",
        &deals(&|d| d.stage == "won" || d.stage == "lost"),
    )
    .await;
    check(
        &s,
        "deals",
        "title[contains]=deal%201",
        &deals(&|d| d.amount == 100 || (1000..2000).contains(&d.amount)),
    )
    .await;

    check(
        &s,
        "contacts",
        "last_name[contains]=SMITH",
        &contacts(&|c| c.last_name == "Smithson"),
    )
    .await;
    check(
        &s,
        "contacts",
        "last_name=smithson",
        &contacts(&|c| c.last_name == "Smithson"),
    )
    .await;
    check(
        &s,
        "contacts",
        &format!("company_id={}", data.acme),
        &contacts(&|c| c.at_acme),
    )
    .await;
    check(
        &s,
        "contacts",
        &format!("company_id={}&last_name=Smithson", data.acme),
        &contacts(&|c| c.at_acme && c.last_name == "Smithson"),
    )
    .await;
    check(&s, "contacts", "company_id=", &contacts(&|c| !c.at_acme)).await;
    check(
        &s,
        "contacts",
        "email=PERSON07@mail3.example.org",
        &contacts(&|c| c.i == 7),
    )
    .await;
    check(
        &s,
        "contacts",
        "custom.tier=gold",
        &contacts(&|c| c.tier == Some("gold")),
    )
    .await;
    check(
        &s,
        "contacts",
        "custom.tier=GOLD",
        &contacts(&|c| c.tier == Some("gold")),
    )
    .await;
    check(
        &s,
        "contacts",
        "custom.tier[in]=gold,silver",
        &contacts(&|c| c.tier.is_some()),
    )
    .await;
    check(
        &s,
        "contacts",
        "custom.tier=",
        &contacts(&|c| c.tier.is_none()),
    )
    .await;
    check(
        &s,
        "contacts",
        "custom.tier=silver&last_name=smithson",
        &contacts(&|c| c.tier == Some("silver") && c.last_name == "Smithson"),
    )
    .await;

    // Free text looks at names, emails and domains, case-insensitively.
    check(&s, "contacts", "q=PERSON07", &contacts(&|c| c.i == 7)).await;
    check(
        &s,
        "contacts",
        "q=person07%20jones7",
        &contacts(&|c| c.i == 7),
    )
    .await;
    check(
        &s,
        "contacts",
        "q=mail2.example",
        &contacts(&|c| c.i % 4 == 2),
    )
    .await;
    check(
        &s,
        "contacts",
        "q=smithson&custom.tier=gold",
        &contacts(&|c| c.last_name == "Smithson" && c.tier == Some("gold")),
    )
    .await;
    check(&s, "contacts", "q=nobody-by-that-name", &BTreeSet::new()).await;
    let acme = s.list_all("/api/v1/companies?limit=10&q=acme").await;
    assert_eq!(ids(&acme), vec![data.acme.clone()]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorting_by_amount() {
    let s = TestServer::start().await;
    let data = seed(&s).await;

    let items = s.list_all("/api/v1/deals?limit=8&sort=-amount").await;
    let amounts: Vec<String> = items
        .iter()
        .map(|d| d["amount"].as_str().unwrap().to_owned())
        .collect();
    let want: Vec<String> = (0..30).rev().map(|i| format!("{}.00", i * 100)).collect();
    assert_eq!(amounts, want);

    let items = s
        .list_all("/api/v1/deals?limit=3&sort=amount&stage=proposal")
        .await;
    let mut want: Vec<&DealRow> = data
        .deals
        .iter()
        .filter(|d| d.stage == "proposal")
        .collect();
    want.sort_by_key(|d| d.amount);
    assert_eq!(
        ids(&items),
        want.iter().map(|d| d.id.clone()).collect::<Vec<_>>()
    );

    // Equal sort values are ordered by id, so paging never skips or repeats among ties.
    let by_stage = s.list_all("/api/v1/deals?limit=4&sort=stage").await;
    let got = ids(&by_stage);
    assert_eq!(got.len(), 30);
    assert_eq!(id_set(got.iter()), id_set(data.deals.iter().map(|d| &d.id)));
    let stages: Vec<&str> = by_stage
        .iter()
        .map(|d| d["stage"].as_str().unwrap())
        .collect();
    assert!(stages.windows(2).all(|w| w[0] <= w[1]), "{stages:?}");

    // Custom fields sort too.
    let by_tier = s
        .list_all("/api/v1/contacts?limit=5&sort=-custom.tier")
        .await;
    let tiers: Vec<&Value> = by_tier.iter().map(|c| &c["custom"]["tier"]).collect();
    let gold = tiers.iter().filter(|t| **t == &json!("gold")).count();
    let silver = tiers.iter().filter(|t| **t == &json!("silver")).count();
    assert_eq!((gold, silver, tiers.len()), (6, 6, 30));
    assert!(
        tiers[..6].iter().all(|t| **t == json!("silver")),
        "{tiers:?}"
    );
    s.stop().await;
}

/// Text filters compare case-insensitively (as `FilterOp::Eq` documents), and choice fields
/// accept their values in any case on input, so a filter on a choice field must too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choice_filters_ignore_case() {
    let s = TestServer::start().await;
    s.create_id("deals", json!({ "title": "Open one", "stage": "lead" }))
        .await;
    let ticket = s
        .create(
            "tickets",
            json!({ "subject": "Urgent", "priority": "HIGH" }),
        )
        .await;
    assert_eq!(
        ticket["priority"],
        json!("high"),
        "input is case-insensitive"
    );

    assert_eq!(s.count("deals", "status=open").await, 1);
    assert_eq!(s.count("tickets", "priority=high").await, 1);
    let (status, body) = s.get("/api/v1/deals/count?status=OPEN").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "count": 1 })),
        "status=OPEN"
    );
    let (status, body) = s.get("/api/v1/tickets/count?priority=High").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "count": 1 })),
        "priority=High"
    );
    s.stop().await;
}
