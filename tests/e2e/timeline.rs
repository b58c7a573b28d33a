//! A record's timeline: linked interactions, tasks, tickets and deals plus its own changes,
//! newest first, and paging through it.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, id_of, time};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_timeline_shows_everything_newest_first() {
    let s = TestServer::start().await;
    let contact = s
        .create_id(
            "contacts",
            json!({ "first_name": "Ada", "last_name": "Lovelace" }),
        )
        .await;
    let other = s
        .create_id(
            "contacts",
            json!({ "first_name": "Someone", "last_name": "Else" }),
        )
        .await;
    let interaction = s
        .create_id(
            "interactions",
            json!({ "kind": "call", "subject": "Intro", "contact_id": contact }),
        )
        .await;
    let task = s
        .create_id(
            "tasks",
            json!({ "title": "Send notes", "contact_id": contact }),
        )
        .await;
    let ticket = s
        .create_id(
            "tickets",
            json!({ "subject": "Login fails", "requester_id": contact }),
        )
        .await;
    let deal = s
        .create_id(
            "deals",
            json!({ "title": "Engine", "stage": "lead", "contact_ids": [contact, other] }),
        )
        .await;
    // Noise on another contact must not show up.
    s.create_id(
        "tasks",
        json!({ "title": "Unrelated", "contact_id": other }),
    )
    .await;
    let (status, _) = s
        .patch(
            &format!("/api/v1/contacts/{contact}"),
            &json!({ "title": "Countess" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let page = s
        .get_ok(&format!("/api/v1/contacts/{contact}/timeline"))
        .await;
    assert!(page["next_cursor"].is_null(), "{page}");
    let items = page["items"].as_array().unwrap();
    let shape: Vec<(&str, String)> = items
        .iter()
        .map(|i| (i["type"].as_str().unwrap(), id_of(i)))
        .collect();
    assert_eq!(
        shape,
        vec![
            ("change", contact.clone()),
            ("deal", deal.clone()),
            ("ticket", ticket.clone()),
            ("task", task.clone()),
            ("interaction", interaction.clone()),
            ("change", contact.clone()),
        ],
        "{page}"
    );
    let times: Vec<_> = items.iter().map(|i| time(&i["at"])).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );

    // Record items carry the record; change items carry the event with its field diffs.
    assert_eq!(items[1]["record"]["title"], json!("Engine"));
    assert_eq!(items[2]["record"]["requester_id"], json!(contact));
    assert_eq!(items[4]["summary"], json!("call: Intro"));
    assert_eq!(items[0]["event"]["op"], json!("updated"));
    assert_eq!(
        items[0]["event"]["changes"],
        json!([{ "field": "title", "before": null, "after": "Countess" }])
    );
    assert_eq!(items[5]["event"]["op"], json!("created"));
    for item in items {
        let has_record = item.get("record").is_some();
        let has_event = item.get("event").is_some();
        assert_eq!(
            item["type"] == json!("change"),
            has_event && !has_record,
            "{item}"
        );
    }

    // Paging the timeline yields the same items in the same order.
    let mut paged: Vec<Value> = Vec::new();
    let mut path = format!("/api/v1/contacts/{contact}/timeline?limit=2");
    loop {
        let page = s.get_ok(&path).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        paged.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/contacts/{contact}/timeline?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(&paged, items);

    // The deal's own timeline shows its creation; an interaction backdated to 2020 sorts last.
    let old = s
        .create_id(
            "interactions",
            json!({ "kind": "email", "occurred_at": "2020-01-01T00:00:00Z", "deal_id": deal }),
        )
        .await;
    let deal_page = s.get_ok(&format!("/api/v1/deals/{deal}/timeline")).await;
    let deal_items = deal_page["items"].as_array().unwrap();
    let types: Vec<&str> = deal_items
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["change", "interaction"], "{deal_page}");
    assert_eq!(deal_items[1]["id"], json!(old));

    // Deleting a linked record takes it off the timeline.
    let (status, _) = s.delete(&format!("/api/v1/tickets/{ticket}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let after = s
        .get_ok(&format!("/api/v1/contacts/{contact}/timeline"))
        .await;
    assert!(
        after["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["id"] != json!(ticket)),
        "{after}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn company_timeline_includes_linked_records() {
    let s = TestServer::start().await;
    let company = s.create_id("companies", json!({ "name": "Acme" })).await;
    let deal = s
        .create_id(
            "deals",
            json!({ "title": "Anvils", "stage": "qualified", "company_id": company }),
        )
        .await;
    let ticket = s
        .create_id(
            "tickets",
            json!({ "subject": "Rocket skates", "company_id": company }),
        )
        .await;
    let task = s
        .create_id(
            "tasks",
            json!({ "title": "Invoice", "company_id": company }),
        )
        .await;
    let page = s
        .get_ok(&format!("/api/v1/companies/{company}/timeline"))
        .await;
    let shape: Vec<(String, String)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["type"].as_str().unwrap().to_owned(), id_of(i)))
        .collect();
    assert_eq!(
        shape,
        vec![
            ("task".to_owned(), task),
            ("ticket".to_owned(), ticket),
            ("deal".to_owned(), deal),
            ("change".to_owned(), company),
        ]
    );
    s.stop().await;
}
