//! Who may do what: every API route and web page answers anonymous visitors, viewers, agents,
//! managers and admins exactly as a hand-written table says, and agents see only their own
//! and their team's records when the organisation's setting says so.

use std::collections::{BTreeMap, BTreeSet};

use kith_core::money::Decimal;
use kith_host::api::{Need, route_table};
use reqwest::multipart::{Form, Part};
use reqwest::{Client, Method, StatusCode, header};
use serde_json::{Value, json};

use crate::lifecycle::plugin;
use crate::support::{Reply, TestServer, assert_error, client_with, id_of, ids, send, token_for};

/// What every route needs and answers, written out by hand rather than read from the
/// server, so that a route added, removed or re-ruled without updating this table fails.
///
/// Columns: method, path as registered, the least role that may use it, the status it
/// answers a caller who may, and (for the sign-in page) what a caller already signed in
/// gets instead.
const TABLE: &str = "
    GET    /api/v1/contacts                          viewer   200
    POST   /api/v1/contacts                          agent    201
    GET    /api/v1/contacts/count                    viewer   200
    GET    /api/v1/contacts/{id}                     viewer   200
    PATCH  /api/v1/contacts/{id}                     agent    200
    DELETE /api/v1/contacts/{id}                     agent    204
    GET    /api/v1/contacts/{id}/timeline            viewer   200
    GET    /api/v1/contacts/{id}/history             viewer   200
    GET    /api/v1/companies                         viewer   200
    POST   /api/v1/companies                         agent    201
    GET    /api/v1/companies/count                   viewer   200
    GET    /api/v1/companies/{id}                    viewer   200
    PATCH  /api/v1/companies/{id}                    agent    200
    DELETE /api/v1/companies/{id}                    agent    204
    GET    /api/v1/companies/{id}/timeline           viewer   200
    GET    /api/v1/companies/{id}/history            viewer   200
    GET    /api/v1/deals                             viewer   200
    POST   /api/v1/deals                             agent    201
    GET    /api/v1/deals/count                       viewer   200
    GET    /api/v1/deals/{id}                        viewer   200
    PATCH  /api/v1/deals/{id}                        agent    200
    DELETE /api/v1/deals/{id}                        agent    204
    GET    /api/v1/deals/{id}/timeline               viewer   200
    GET    /api/v1/deals/{id}/history                viewer   200
    GET    /api/v1/tickets                           viewer   200
    POST   /api/v1/tickets                           agent    201
    GET    /api/v1/tickets/count                     viewer   200
    GET    /api/v1/tickets/{id}                      viewer   200
    PATCH  /api/v1/tickets/{id}                      agent    200
    DELETE /api/v1/tickets/{id}                      agent    204
    GET    /api/v1/tickets/{id}/timeline             viewer   200
    GET    /api/v1/tickets/{id}/history              viewer   200
    GET    /api/v1/interactions                      viewer   200
    POST   /api/v1/interactions                      agent    201
    GET    /api/v1/interactions/count                viewer   200
    GET    /api/v1/interactions/{id}                 viewer   200
    PATCH  /api/v1/interactions/{id}                 agent    200
    DELETE /api/v1/interactions/{id}                 agent    204
    GET    /api/v1/interactions/{id}/timeline        viewer   200
    GET    /api/v1/interactions/{id}/history         viewer   200
    GET    /api/v1/tasks                             viewer   200
    POST   /api/v1/tasks                             agent    201
    GET    /api/v1/tasks/count                       viewer   200
    GET    /api/v1/tasks/{id}                        viewer   200
    PATCH  /api/v1/tasks/{id}                        agent    200
    DELETE /api/v1/tasks/{id}                        agent    204
    GET    /api/v1/tasks/{id}/timeline               viewer   200
    GET    /api/v1/tasks/{id}/history                viewer   200

    GET    /api/v1/audit                             admin    200
    GET    /api/v1/events                            admin    200
    GET    /api/v1/health                            public   200
    GET    /api/v1/openapi.json                      viewer   200
    GET    /api/v1/pipelines                         viewer   200
    POST   /api/v1/pipelines                         admin    201
    GET    /api/v1/pipelines/{key}                   viewer   200
    PUT    /api/v1/pipelines/{key}                   admin    200
    GET    /api/v1/fields/{kind}                     viewer   200
    POST   /api/v1/fields/{kind}                     admin    201
    PATCH  /api/v1/fields/{kind}/{name}              admin    200
    DELETE /api/v1/fields/{kind}/{name}              admin    204
    GET    /api/v1/reports                           viewer   200
    GET    /api/v1/reports/{id}                      viewer   200

    GET    /api/v1/plugins                           admin    200
    POST   /api/v1/plugins                           admin    201
    GET    /api/v1/plugins/{id}                      admin    200
    PUT    /api/v1/plugins/{id}                      admin    200
    DELETE /api/v1/plugins/{id}                      admin    204
    POST   /api/v1/plugins/{id}/enable               admin    200
    POST   /api/v1/plugins/{id}/disable              admin    200
    POST   /api/v1/plugins/{id}/resume               admin    200
    GET    /api/v1/plugins/{id}/delivery             admin    200
    PUT    /api/v1/plugins/{id}/settings             admin    200
    PATCH  /api/v1/plugins/{id}/settings             admin    200
    PUT    /api/v1/plugins/{id}/limits               admin    200
    PATCH  /api/v1/plugins/{id}/limits               admin    200
    POST   /api/v1/scores/rescore                    admin    200

    GET    /api/v1/me                                viewer   200
    POST   /api/v1/me/password                       viewer   204
    GET    /api/v1/users                             admin    200
    POST   /api/v1/users                             admin    201
    GET    /api/v1/users/{id}                        admin    200
    PATCH  /api/v1/users/{id}                        admin    200
    GET    /api/v1/teams                             viewer   200
    POST   /api/v1/teams                             admin    201
    PUT    /api/v1/teams/{key}                       admin    200
    DELETE /api/v1/teams/{key}                       admin    204
    GET    /api/v1/tokens                            viewer   200
    POST   /api/v1/tokens                            viewer   201
    DELETE /api/v1/tokens/{id}                       viewer   200
    GET    /api/v1/settings                          viewer   200
    PUT    /api/v1/settings                          admin    200

    GET    /                                         viewer   200
    GET    /search                                   viewer   200
    GET    /deals/board                              viewer   200
    POST   /deals/{id}/stage                         agent    303
    GET    /reports                                  viewer   200
    GET    /reports/{id}                             viewer   200
    GET    /login                                    public   200  303
    POST   /login                                    public   303
    POST   /logout                                   viewer   303
    GET    /account                                  viewer   200
    POST   /account/password                         viewer   200
    POST   /account/tokens                           viewer   200
    POST   /account/tokens/revoke                    viewer   200
    GET    /admin/users                              admin    200
    POST   /admin/users                              admin    200
    GET    /admin/users/{id}                         admin    200
    POST   /admin/users/{id}                         admin    200
    POST   /admin/users/{id}/password                admin    200
    POST   /admin/teams                              admin    200
    POST   /admin/teams/delete                       admin    200
    POST   /admin/settings                           admin    200
    POST   /admin/tokens/revoke                      admin    200
    GET    /contacts                                 viewer   200
    POST   /contacts                                 agent    303
    GET    /contacts/new                             agent    200
    GET    /contacts/{id}                            viewer   200
    POST   /contacts/{id}                            agent    303
    GET    /contacts/{id}/edit                       agent    200
    POST   /contacts/{id}/delete                     agent    303
    GET    /companies                                viewer   200
    POST   /companies                                agent    303
    GET    /companies/new                            agent    200
    GET    /companies/{id}                           viewer   200
    POST   /companies/{id}                           agent    303
    GET    /companies/{id}/edit                      agent    200
    POST   /companies/{id}/delete                    agent    303
    GET    /deals                                    viewer   200
    POST   /deals                                    agent    303
    GET    /deals/new                                agent    200
    GET    /deals/{id}                               viewer   200
    POST   /deals/{id}                               agent    303
    GET    /deals/{id}/edit                          agent    200
    POST   /deals/{id}/delete                        agent    303
    GET    /tickets                                  viewer   200
    POST   /tickets                                  agent    303
    GET    /tickets/new                              agent    200
    GET    /tickets/{id}                             viewer   200
    POST   /tickets/{id}                             agent    303
    GET    /tickets/{id}/edit                        agent    200
    POST   /tickets/{id}/delete                      agent    303
    GET    /tasks                                    viewer   200
    POST   /tasks                                    agent    303
    GET    /tasks/new                                agent    200
    GET    /tasks/{id}                               viewer   200
    POST   /tasks/{id}                               agent    303
    GET    /tasks/{id}/edit                          agent    200
    POST   /tasks/{id}/delete                        agent    303
    GET    /interactions                             viewer   200
    POST   /interactions                             agent    303
    GET    /interactions/new                         agent    200
    GET    /interactions/{id}                        viewer   200
    POST   /interactions/{id}                        agent    303
    GET    /interactions/{id}/edit                   agent    200
    POST   /interactions/{id}/delete                 agent    303
    GET    /admin/plugins                            admin    200
    POST   /admin/plugins/upload                     admin    200
    POST   /admin/plugins/approve                    admin    303
    GET    /admin/plugins/{id}                       admin    200
    POST   /admin/plugins/{id}                       admin    200
    POST   /admin/plugins/{id}/settings              admin    200
    GET    /admin/fields                             admin    200
    POST   /admin/fields                             admin    200
    GET    /admin/fields/{kind}/{name}               admin    200
    POST   /admin/fields/{kind}/{name}               admin    303
    POST   /admin/fields/delete                      admin    200
    GET    /admin/pipelines                          admin    200
    POST   /admin/pipelines                          admin    303
    POST   /admin/pipelines/{key}                    admin    303
    GET    /assets/kith.css                          public   200
    GET    /assets/kith.js                           public   200
    GET    /assets/favicon.svg                       public   200
";

/// The record kinds, as URLs spell them.
const KINDS: [&str; 6] = [
    "contacts",
    "companies",
    "deals",
    "tickets",
    "interactions",
    "tasks",
];

/// The methods a route could be registered for; every one a path has no rule for must be a
/// 405, which is how a handler registered without its rule would show.
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// Every test user's password (the least length is 10).
const PASSWORD: &str = "correct horse battery";
/// What password changes change it to.
const NEW_PASSWORD: &str = "staple battery horse";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_page_answers_each_role_as_its_table_says() {
    let rules = parse_table();

    // The table and the server agree on which routes exist and what each needs.
    let table: BTreeMap<(String, String), Need> = rules
        .iter()
        .map(|r| ((r.method.to_string(), r.path.clone()), r.need))
        .collect();
    assert_eq!(table.len(), rules.len(), "the table lists a route twice");
    let server: BTreeMap<(String, String), Need> = route_table()
        .into_iter()
        .map(|r| ((r.method.to_string(), r.path), r.need))
        .collect();
    let unlisted: Vec<String> = server
        .keys()
        .filter(|k| !table.contains_key(*k))
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    let gone: Vec<String> = table
        .keys()
        .filter(|k| !server.contains_key(*k))
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    assert!(
        unlisted.is_empty() && gone.is_empty(),
        "the route table and this test's table differ.\nRoutes the server has that the \
         table lacks: {unlisted:#?}\nRoutes the table lists that the server lacks: {gone:#?}"
    );
    let reruled: Vec<String> = table
        .iter()
        .filter(|(k, need)| server[*k] != **need)
        .map(|((m, p), need)| {
            format!(
                "{m} {p}: table {need:?}, server {:?}",
                server[&(m.clone(), p.clone())]
            )
        })
        .collect();
    assert!(
        reruled.is_empty(),
        "routes needing another role: {reruled:#?}"
    );

    // Against a real server: every route, called by everyone.
    let s = TestServer::start().await;
    let mut m = Matrix::new(&s).await;
    let mut failures = Vec::new();
    let mut calls = 0;
    for rule in &rules {
        for who in Who::EVERYONE {
            let call = m.prepare(rule, who).await;
            let answer = m
                .web
                .call(rule.method.clone(), &call.path, &call.auth, call.body)
                .await;
            calls += 1;
            if let Some(problem) = judge(rule, who, &call.path, call.location.as_deref(), &answer) {
                failures.push(problem);
            }
        }
    }

    // A method a path has no rule for is refused by the router, not answered by a handler.
    let paths: BTreeSet<&str> = rules.iter().map(|r| r.path.as_str()).collect();
    for path in paths {
        for method in METHODS {
            if table.contains_key(&(method.to_string(), path.to_owned())) {
                continue;
            }
            let concrete = m.concrete(path);
            let auth = m.auth(Who::Admin, path);
            let answer = m
                .web
                .call(method.clone(), &concrete, &auth, Payload::None)
                .await;
            calls += 1;
            let code = answer.json()["error"]["code"].clone();
            if answer.status != StatusCode::METHOD_NOT_ALLOWED || code != "method_not_allowed" {
                failures.push(format!(
                    "admin {method} {concrete} (no rule): want 405 method_not_allowed, got {} {}",
                    answer.status,
                    answer.excerpt()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {calls} calls answered otherwise than the table says:\n{}",
        failures.len(),
        failures.join("\n")
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sees_only_own_and_team_records_when_the_setting_says_so() {
    let s = TestServer::start().await;
    let store = &s.running().store;
    for team in ["east", "west"] {
        let (status, body) = s
            .post("/api/v1/teams", &json!({"key": team, "name": team}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let e1 = id_of(&s.user("east1@example.com", "agent", Some("east")).await);
    let e2 = id_of(&s.user("east2@example.com", "agent", Some("east")).await);
    let w1 = id_of(&s.user("west1@example.com", "agent", Some("west")).await);
    let mgr = id_of(&s.user("manager@example.com", "manager", None).await);
    let vwr = id_of(&s.user("viewer@example.com", "viewer", None).await);
    let east = Api::new(&s, token_for(store, e1.parse().unwrap()));
    let manager = Api::new(&s, token_for(store, mgr.parse().unwrap()));
    let viewer = Api::new(&s, token_for(store, vwr.parse().unwrap()));
    let everyone = Api::new(&s, s.token().to_owned());

    let (status, body) = s
        .send(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"agent_scope": "own_and_team"}).to_string().into()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(east.get_ok("/api/v1/me").await["sees"], "own_and_team");
    assert_eq!(manager.get_ok("/api/v1/me").await["sees"], "all");

    // The same set of records for each owner; every summary says "Zephyr" so one search
    // finds them all, and the owner's word finds theirs.
    let mine = seed(&s, Some(&e1), "Eastwood", "USD", "100").await;
    let mate = seed(&s, Some(&e2), "Easton", "USD", "200").await;
    let west = seed(&s, Some(&w1), "Westerly", "EUR", "300").await;
    let boss = seed(&s, None, "Adminton", "USD", "400").await;

    // Records that cross teams, linked to my contact. Interactions and tasks take the team of
    // the record they are linked to unless given one, so the first is visible to the east
    // team though a west agent owns it; the others are the west team's.
    let crossing = s
        .create_id(
            "interactions",
            json!({"kind": "call", "subject": "Zephyr Westerly calls east", "owner": w1,
                   "contact_id": mine.contact}),
        )
        .await;
    let hidden_interaction = s
        .create_id(
            "interactions",
            json!({"kind": "email", "subject": "Zephyr Westerly private", "owner": w1,
                   "team": "west", "contact_id": mine.contact}),
        )
        .await;
    let hidden_task = s
        .create_id(
            "tasks",
            json!({"title": "Zephyr Westerly private", "owner": w1, "team": "west",
                   "contact_id": mine.contact}),
        )
        .await;
    let hidden_deal = s
        .create_id(
            "deals",
            json!({"title": "Zephyr Westerly poaching", "stage": "lead", "owner": w1,
                   "contact_ids": [mine.contact]}),
        )
        .await;
    let hidden_ticket = s
        .create_id(
            "tickets",
            json!({"subject": "Zephyr Westerly escalation", "owner": w1,
                   "requester_id": mine.contact}),
        )
        .await;
    // A teammate's deal that involves a west contact.
    let mixed_deal = s
        .create_id(
            "deals",
            json!({"title": "Zephyr Easton joint", "stage": "qualified", "owner": e2,
                   "amount": "50", "currency": "USD", "contact_ids": [west.contact]}),
        )
        .await;

    // What the admin sees, and which of it the rule lets the east agent see.
    let mut all = BTreeMap::new();
    let mut visible = BTreeMap::new();
    for kind in KINDS {
        let records = everyone
            .list_all(&format!("/api/v1/{kind}?limit=100"))
            .await;
        let seen: Vec<Value> = records
            .iter()
            .filter(|r| r["owner"] == json!(e1) || r["team"] == json!("east"))
            .cloned()
            .collect();
        all.insert(kind, records);
        visible.insert(kind, seen);
    }
    let visible_ids =
        |kind: &str| -> BTreeSet<String> { ids(&visible[kind]).into_iter().collect() };
    // The rule, applied to these records, means what the test intends.
    for (kind, id) in mine.all().into_iter().chain(mate.all()) {
        assert!(
            visible_ids(kind).contains(&id),
            "{kind} {id} should be visible"
        );
    }
    for (kind, id) in west.all().into_iter().chain(boss.all()) {
        assert!(
            !visible_ids(kind).contains(&id),
            "{kind} {id} should be hidden"
        );
    }
    assert!(visible_ids("interactions").contains(&crossing));
    assert!(visible_ids("deals").contains(&mixed_deal));
    for (kind, id) in [
        ("interactions", &hidden_interaction),
        ("tasks", &hidden_task),
        ("deals", &hidden_deal),
        ("tickets", &hidden_ticket),
    ] {
        assert!(
            !visible_ids(kind).contains(id),
            "{kind} {id} should be hidden"
        );
    }

    // Lists, counts and searches hold exactly the visible records; small pages, so paging
    // past hidden records is covered, in creation order and in an order that sorts.
    for kind in KINDS {
        let want = visible_ids(kind);
        for order in ["", "&sort=-updated_at"] {
            let got: BTreeSet<String> = ids(&east
                .list_all(&format!("/api/v1/{kind}?limit=2{order}"))
                .await)
            .into_iter()
            .collect();
            assert_eq!(got, want, "{kind} listed for the east agent{order}");
        }
        assert_eq!(
            east.count(kind, "").await,
            want.len() as u64,
            "{kind} count"
        );
        let found: BTreeSet<String> = ids(&east
            .list_all(&format!("/api/v1/{kind}?q=zephyr&limit=100"))
            .await)
        .into_iter()
        .collect();
        assert_eq!(found, want, "{kind} searched for zephyr");
        assert_eq!(east.count(kind, "q=zephyr").await, want.len() as u64);
        // The west agent's word finds only what of theirs is visible here.
        let westerly: BTreeSet<String> = ids(&east
            .list_all(&format!("/api/v1/{kind}?q=westerly&limit=100"))
            .await)
        .into_iter()
        .collect();
        let want_westerly: BTreeSet<String> = visible[kind]
            .iter()
            .filter(|r| r["owner"] == json!(w1))
            .map(id_of)
            .collect();
        assert_eq!(westerly, want_westerly, "{kind} searched for westerly");
        assert!(
            everyone.count(kind, "").await > want.len() as u64,
            "{kind}: the admin sees more than the east agent"
        );
    }
    let stage_won = visible["deals"]
        .iter()
        .filter(|d| d["stage"] == "won")
        .count() as u64;
    assert_eq!(east.count("deals", "stage=won").await, stage_won);
    assert_eq!(
        ids(&east
            .list_all("/api/v1/interactions?q=westerly&limit=100")
            .await),
        std::slice::from_ref(&crossing)
    );

    // My contact's timeline leaves out what is linked to it but belongs to the west team.
    let linked = |page: &Value| -> BTreeSet<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["type"] != "change")
            .map(id_of)
            .collect()
    };
    let path = format!("/api/v1/contacts/{}/timeline", mine.contact);
    let full = linked(&everyone.get_ok(&path).await);
    for id in [
        &hidden_interaction,
        &hidden_task,
        &hidden_deal,
        &hidden_ticket,
        &crossing,
    ] {
        assert!(full.contains(id), "the admin's timeline lacks {id}");
    }
    let everything_visible: BTreeSet<String> = KINDS.iter().flat_map(|k| visible_ids(k)).collect();
    let want: BTreeSet<String> = full.intersection(&everything_visible).cloned().collect();
    let got = linked(&east.get_ok(&path).await);
    assert_eq!(got, want, "my contact's timeline");
    assert!(got.contains(&crossing) && got.contains(&mine.interaction) && got.contains(&mine.task));
    // A teammate's contact has a timeline too.
    east.get_ok(&format!("/api/v1/contacts/{}/timeline", mate.contact))
        .await;

    // Reports count only the visible records: the east agent's figures are those of the
    // two east agents' records as the admin sees them.
    check_reports(&s, &east, &everyone, &[&e1, &e2], &w1, &visible).await;

    // A west record is not found, whatever is asked of it, exactly as if it did not exist.
    const UNKNOWN: &str = "01890a5d-ac96-774b-bcce-b302099a8057";
    for (kind, id) in west.all() {
        let before = everyone.get_ok(&format!("/api/v1/{kind}/{id}")).await;
        for (method, suffix, body) in [
            (Method::GET, "", None),
            (Method::GET, "/history", None),
            (Method::GET, "/timeline", None),
            (Method::PATCH, "", Some(patch_body(kind))),
            (Method::DELETE, "", None),
        ] {
            let hidden = east
                .send(
                    method.clone(),
                    &format!("/api/v1/{kind}/{id}{suffix}"),
                    body.clone(),
                )
                .await;
            assert_error(&hidden, StatusCode::NOT_FOUND, "not_found", None);
            let unknown = east
                .send(
                    method.clone(),
                    &format!("/api/v1/{kind}/{UNKNOWN}{suffix}"),
                    body,
                )
                .await;
            assert_eq!(
                message(&hidden).replace(id.as_str(), "<id>"),
                message(&unknown).replace(UNKNOWN, "<id>"),
                "{method} {kind}{suffix}: a hidden record answers like a missing one"
            );
        }
        assert_eq!(
            everyone.get_ok(&format!("/api/v1/{kind}/{id}")).await,
            before,
            "{kind} {id} is unchanged"
        );
    }

    // The web pages apply the same rule: a hidden record's page is not found, and no page
    // (lists, search, the board, a visible record's related records and timeline, the
    // dashboard's recent activity) links to a hidden record.
    for (kind, id) in west.all() {
        for suffix in ["", "/edit"] {
            let (status, _) = east
                .send(Method::GET, &format!("/{kind}/{id}{suffix}"), None)
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "page /{kind}/{id}{suffix}");
        }
    }
    let hidden: Vec<String> = west
        .all()
        .into_iter()
        .chain(boss.all())
        .map(|(_, id)| id)
        .chain([
            hidden_interaction.clone(),
            hidden_task.clone(),
            hidden_deal.clone(),
            hidden_ticket.clone(),
        ])
        .collect();
    for page in [
        format!("/contacts/{}", mine.contact),
        format!("/companies/{}", mine.company),
        "/".to_owned(),
        "/search?q=zephyr".to_owned(),
        "/deals/board".to_owned(),
    ]
    .into_iter()
    .chain(KINDS.iter().map(|k| format!("/{k}?q=zephyr")))
    {
        let (status, body) = east.send(Method::GET, &page, None).await;
        assert_eq!(status, StatusCode::OK, "{page}: {body}");
        let html = body.as_str().unwrap_or_default();
        for id in &hidden {
            assert!(
                !html.contains(id.as_str()),
                "{page} shows hidden record {id}"
            );
        }
    }
    let (_, my_page) = east
        .send(Method::GET, &format!("/contacts/{}", mine.contact), None)
        .await;
    assert!(
        my_page
            .as_str()
            .unwrap_or_default()
            .contains(crossing.as_str())
    );

    // A teammate's record is visible and editable but not the east agent's to delete.
    for (kind, id) in mate.all() {
        let r = east.delete(&format!("/api/v1/{kind}/{id}")).await;
        assert_error(&r, StatusCode::FORBIDDEN, "forbidden", None);
        let (status, body) = east
            .patch(&format!("/api/v1/{kind}/{id}"), &patch_body(kind))
            .await;
        assert_eq!(status, StatusCode::OK, "{kind}: {body}");
    }
    everyone
        .get_ok(&format!("/api/v1/contacts/{}", mate.contact))
        .await;
    // Their own record they may delete.
    let (status, body) = east
        .post(
            "/api/v1/tasks",
            &json!({"title": "Zephyr mine", "contact_id": mine.contact}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["owner"], json!(e1), "a new record is its creator's");
    assert_eq!(body["team"], json!("east"));
    let (status, body) = east
        .delete(&format!("/api/v1/tasks/{}", id_of(&body)))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // Linking to a hidden record is refused naming the field, as a link to nothing is.
    for (path, field, hidden, template) in [
        (
            "/api/v1/interactions",
            "contact_id",
            &west.contact,
            json!({"kind": "note", "subject": "Zephyr link", "contact_id": "<id>"}),
        ),
        (
            "/api/v1/deals",
            "company_id",
            &west.company,
            json!({"title": "Zephyr link", "stage": "lead", "company_id": "<id>"}),
        ),
        (
            "/api/v1/tickets",
            "requester_id",
            &west.contact,
            json!({"subject": "Zephyr link", "requester_id": "<id>"}),
        ),
    ] {
        let body = |id: &str| -> Value {
            serde_json::from_str(&template.to_string().replace("<id>", id)).unwrap()
        };
        let to_hidden = east.post(path, &body(hidden)).await;
        assert_error(
            &to_hidden,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some(field),
        );
        let to_nothing = east.post(path, &body(UNKNOWN)).await;
        assert_error(
            &to_nothing,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some(field),
        );
        assert_eq!(
            message(&to_hidden).replace(hidden.as_str(), "<id>"),
            message(&to_nothing).replace(UNKNOWN, "<id>"),
            "POST {path}: a hidden record answers like a missing one"
        );
    }
    let r = east
        .patch(
            &format!("/api/v1/contacts/{}", mine.contact),
            &json!({"company_id": west.company}),
        )
        .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("company_id"),
    );
    for kind in KINDS {
        assert_eq!(
            east.count(kind, "").await,
            visible[kind].len() as u64,
            "{kind}: nothing was created by refused writes"
        );
    }

    // A viewer sees everything and changes nothing.
    for kind in KINDS {
        assert_eq!(
            viewer.count(kind, "").await,
            all[kind].len() as u64,
            "{kind}"
        );
    }
    viewer
        .get_ok(&format!("/api/v1/contacts/{}", west.contact))
        .await;
    for (kind, id) in west.all() {
        let r = viewer
            .patch(&format!("/api/v1/{kind}/{id}"), &patch_body(kind))
            .await;
        assert_error(&r, StatusCode::FORBIDDEN, "forbidden", None);
        let r = viewer.delete(&format!("/api/v1/{kind}/{id}")).await;
        assert_error(&r, StatusCode::FORBIDDEN, "forbidden", None);
    }
    let r = viewer
        .post("/api/v1/contacts", &json!({"first_name": "Zephyr viewer"}))
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden", None);

    // A manager sees everything, reports on everything, and may delete anyone's record.
    for kind in KINDS {
        assert_eq!(
            manager.count(kind, "").await,
            all[kind].len() as u64,
            "{kind}"
        );
    }
    for (kind, id) in west.all() {
        manager.get_ok(&format!("/api/v1/{kind}/{id}")).await;
    }
    for report in ["pipeline", "win-rate?by=owner", "tickets", "interactions"] {
        assert_eq!(
            manager.get_ok(&format!("/api/v1/reports/{report}")).await,
            everyone.get_ok(&format!("/api/v1/reports/{report}")).await,
            "the manager's {report} report"
        );
    }
    let (status, body) = manager
        .delete(&format!("/api/v1/tasks/{}", west.task))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // With the setting back to all, the agent sees everything but still deletes only their own.
    let (status, body) = s
        .send(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"agent_scope": "all"}).to_string().into()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(east.get_ok("/api/v1/me").await["sees"], "all");
    for kind in KINDS {
        assert_eq!(
            east.count(kind, "").await,
            everyone.count(kind, "").await,
            "{kind} counted by the east agent seeing all"
        );
    }
    assert_eq!(
        east.get_ok("/api/v1/reports/pipeline").await,
        everyone.get_ok("/api/v1/reports/pipeline").await
    );
    for (kind, id) in west.all().into_iter().filter(|(k, _)| *k != "tasks") {
        east.get_ok(&format!("/api/v1/{kind}/{id}")).await;
        let r = east.delete(&format!("/api/v1/{kind}/{id}")).await;
        assert_error(&r, StatusCode::FORBIDDEN, "forbidden", None);
    }
    let r = east.delete(&format!("/api/v1/deals/{}", mate.won)).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden", None);
    let r = east.delete(&format!("/api/v1/deals/{}", boss.won)).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden", None);

    // Back to own and team: editing a visible record that already links to a hidden one
    // changes only what was asked. The link was there before (the deal's own JSON shows it)
    // and is not the agent's doing, so it must not be refused as a link "to nothing".
    let (status, body) = s
        .send(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"agent_scope": "own_and_team"}).to_string().into()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deal = east.get_ok(&format!("/api/v1/deals/{mixed_deal}")).await;
    assert_eq!(deal["contact_ids"], json!([west.contact]));
    let (status, body) = east
        .patch(
            &format!("/api/v1/deals/{mixed_deal}"),
            &json!({"source": "referral"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an east agent edits a teammate's deal that involves a west contact: {body}"
    );
    assert_eq!(body["source"], "referral");

    // A unique email held by a record the agent cannot see is still taken, but the answer
    // does not name that record.
    let hidden = s
        .create_id(
            "contacts",
            json!({"first_name": "Hidden", "email": "hidden@west.example", "owner": w1}),
        )
        .await;
    let reply = east
        .post(
            "/api/v1/contacts",
            &json!({"first_name": "Copy", "email": "hidden@west.example"}),
        )
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "conflict", Some("email"));
    assert!(!reply.1.to_string().contains(&hidden), "{}", reply.1);
    s.stop().await;
}

/// The README promises that a restricted agent's counts leave out what they cannot see; the
/// counts health shows a signed-in caller are counts too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_counts_only_what_a_restricted_agent_sees() {
    let s = TestServer::start().await;
    let (status, body) = s
        .post("/api/v1/teams", &json!({"key": "east", "name": "East"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let e1 = id_of(&s.user("east1@example.com", "agent", Some("east")).await);
    let east = Api::new(&s, token_for(&s.running().store, e1.parse().unwrap()));
    let (status, body) = s
        .send(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"agent_scope": "own_and_team"}).to_string().into()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    seed(&s, Some(&e1), "Eastwood", "USD", "100").await;
    seed(&s, None, "Adminton", "USD", "400").await;

    let health = east.get_ok("/api/v1/health").await;
    for kind in KINDS {
        let seen = east.count(kind, "").await;
        assert!(seen > 0 && s.count(kind, "").await > seen, "{kind}");
        assert_eq!(
            health["records"][kind],
            json!(seen),
            "{kind} in the health the east agent sees: {health}"
        );
    }
    s.stop().await;
}

// ---------------------------------------------------------------------------------------
// The route table and who calls it.

/// One row of [`TABLE`].
struct Rule {
    method: Method,
    path: String,
    need: Need,
    ok: StatusCode,
    /// What a signed-in caller gets instead of `ok` (the sign-in page sends them on).
    ok_signed_in: Option<StatusCode>,
}

fn parse_table() -> Vec<Rule> {
    TABLE
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let status = |s: &str| StatusCode::from_u16(s.parse().unwrap()).unwrap();
            Rule {
                method: cols[0].parse().unwrap(),
                path: cols[1].to_owned(),
                need: match cols[2] {
                    "public" => Need::Public,
                    "viewer" => Need::Viewer,
                    "agent" => Need::Agent,
                    "manager" => Need::Manager,
                    "admin" => Need::Admin,
                    other => panic!("no role {other} in: {line}"),
                },
                ok: status(cols[3]),
                ok_signed_in: cols.get(4).map(|s| status(s)),
            }
        })
        .collect()
}

/// Who calls: nobody signed in, or a user of one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Anonymous,
    Viewer,
    Agent,
    Manager,
    Admin,
}

impl Who {
    const EVERYONE: [Who; 5] = [
        Who::Anonymous,
        Who::Viewer,
        Who::Agent,
        Who::Manager,
        Who::Admin,
    ];

    fn role(self) -> &'static str {
        match self {
            Who::Anonymous => "nobody",
            Who::Viewer => "viewer",
            Who::Agent => "agent",
            Who::Manager => "manager",
            Who::Admin => "admin",
        }
    }

    /// Whether this caller meets `need`, by the documented order of roles (written out here
    /// rather than taken from the product's own check).
    fn meets(self, need: Need) -> bool {
        let least = match need {
            Need::Public => Who::Anonymous,
            Need::Viewer => Who::Viewer,
            Need::Agent => Who::Agent,
            Need::Manager => Who::Manager,
            Need::Admin => Who::Admin,
        };
        self >= least
    }
}

fn is_page(path: &str) -> bool {
    !path.starts_with("/api/")
}

/// Compares an answer with what the table says `who` should get; `Some` describes a
/// difference.
fn judge(
    rule: &Rule,
    who: Who,
    path: &str,
    location: Option<&str>,
    answer: &Answer,
) -> Option<String> {
    let (status, code, want_location) = if who.meets(rule.need) {
        let ok = match (who, rule.ok_signed_in) {
            (Who::Anonymous, _) | (_, None) => rule.ok,
            (_, Some(signed_in)) => signed_in,
        };
        // Where a redirect goes is part of what it answers.
        let to = location.filter(|_| ok == StatusCode::SEE_OTHER);
        (ok, None, to.map(str::to_owned))
    } else if who == Who::Anonymous && is_page(&rule.path) {
        // A browser is sent to sign in, and back here afterwards.
        let next = format!("/login?next={}", path.replace('/', "%2F"));
        (StatusCode::SEE_OTHER, None, Some(next))
    } else if who == Who::Anonymous {
        (StatusCode::UNAUTHORIZED, Some("unauthorized"), None)
    } else {
        (StatusCode::FORBIDDEN, Some("forbidden"), None)
    };
    let mut wrong = Vec::new();
    if answer.status != status {
        wrong.push(format!("want {status}, got {}", answer.status));
    }
    if let Some(code) = code
        && answer.json()["error"]["code"] != code
    {
        wrong.push(format!("want error code {code}"));
    }
    if let Some(to) = want_location
        && answer.location.as_deref() != Some(to.as_str())
    {
        wrong.push(format!("want Location {to}, got {:?}", answer.location));
    }
    (!wrong.is_empty()).then(|| {
        format!(
            "{} {} {path}: {}: {}",
            who.role(),
            rule.method,
            wrong.join("; "),
            answer.excerpt()
        )
    })
}

/// A signed-in user of the matrix: an API token for API routes, a browser session for pages.
struct Member {
    id: String,
    email: String,
    token: String,
    session: String,
    csrf: String,
}

/// How a request proves who sends it.
#[derive(Clone, Default)]
struct Auth {
    bearer: Option<String>,
    cookie: Option<String>,
}

impl Auth {
    fn bearer(token: &str) -> Auth {
        Auth {
            bearer: Some(token.to_owned()),
            cookie: None,
        }
    }

    fn session(secret: &str) -> Auth {
        Auth {
            bearer: None,
            cookie: Some(format!("kith_session={secret}")),
        }
    }
}

/// A request body.
enum Payload {
    None,
    Json(Value),
    Form(Vec<(&'static str, String)>),
    /// A form whose field names are not known in advance.
    Pairs(Vec<(String, String)>),
    /// A plugin upload: manifest, wasm, grant.
    Upload(String, Vec<u8>, String),
    /// A plugin upload from the web page: CSRF token, manifest, wasm.
    PageUpload(String, String, Vec<u8>),
}

/// An answer with what the checks need of it.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    cookies: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The start of the body, for failure messages.
    fn excerpt(&self) -> String {
        self.body.chars().take(300).collect()
    }
}

/// A browser-like client that follows no redirects and sends cookies it is given (the
/// workspace's reqwest has no cookie store).
struct Web {
    client: Client,
    base: String,
}

impl Web {
    fn new(base: String) -> Web {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Web { client, base }
    }

    async fn call(&self, method: Method, path: &str, auth: &Auth, body: Payload) -> Answer {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = &auth.bearer {
            request = request.bearer_auth(t);
        }
        if let Some(c) = &auth.cookie {
            request = request.header(header::COOKIE, c);
        }
        request = match body {
            Payload::None => request,
            Payload::Json(v) => request.json(&v),
            Payload::Form(pairs) => request.form(&pairs),
            Payload::Pairs(pairs) => request.form(&pairs),
            Payload::Upload(manifest, wasm, grant) => request.multipart(
                Form::new()
                    .part(
                        "manifest",
                        Part::text(manifest).file_name("kith-plugin.toml"),
                    )
                    .part("wasm", Part::bytes(wasm).file_name("plugin.wasm"))
                    .text("grant", grant),
            ),
            Payload::PageUpload(csrf, manifest, wasm) => request.multipart(
                Form::new()
                    .text("csrf", csrf)
                    .part(
                        "manifest",
                        Part::text(manifest).file_name("kith-plugin.toml"),
                    )
                    .part("wasm", Part::bytes(wasm).file_name("plugin.wasm")),
            ),
        };
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        let cookies = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| {
                let pair = v.to_str().ok()?.split(';').next()?;
                let (name, value) = pair.split_once('=')?;
                Some((name.trim().to_owned(), value.trim().to_owned()))
            })
            .collect();
        let body = response.text().await.unwrap();
        Answer {
            status,
            location,
            cookies,
            body,
        }
    }

    /// Opens the sign-in page as a visitor: the form's CSRF token and its cookie.
    async fn login_form(&self) -> (String, String) {
        let page = self
            .call(Method::GET, "/login", &Auth::default(), Payload::None)
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.excerpt());
        let cookie = page
            .cookie("kith_login_csrf")
            .expect("the sign-in page sets its CSRF cookie")
            .to_owned();
        let marker = "name=\"csrf\" value=\"";
        let start = page.body.find(marker).expect("the form has a csrf field") + marker.len();
        let field = page.body[start..].split('"').next().unwrap().to_owned();
        (cookie, field)
    }

    /// Signs in through the form as a browser does; returns the session cookie's value.
    async fn sign_in(&self, email: &str, password: &str) -> String {
        let (cookie, csrf) = self.login_form().await;
        let answer = self
            .call(
                Method::POST,
                "/login",
                &Auth {
                    bearer: None,
                    cookie: Some(format!("kith_login_csrf={cookie}")),
                },
                Payload::Form(vec![
                    ("csrf", csrf),
                    ("next", "/account".to_owned()),
                    ("email", email.to_owned()),
                    ("password", password.to_owned()),
                ]),
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.excerpt());
        answer
            .cookie("kith_session")
            .expect("signing in sets the session cookie")
            .to_owned()
    }

    /// The CSRF token of a session, as a page script would learn it.
    async fn csrf(&self, session: &str) -> String {
        let me = self
            .call(
                Method::GET,
                "/api/v1/me",
                &Auth::session(session),
                Payload::None,
            )
            .await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.excerpt());
        me.json()["csrf_token"].as_str().unwrap().to_owned()
    }

    /// Uploads a plugin on the plugins page as a signed-in admin; the review page's HTML.
    async fn page_upload(
        &self,
        session: &str,
        csrf: &str,
        manifest: String,
        wasm: Vec<u8>,
    ) -> String {
        let review = self
            .call(
                Method::POST,
                "/admin/plugins/upload",
                &Auth::session(session),
                Payload::PageUpload(csrf.to_owned(), manifest, wasm),
            )
            .await;
        assert_eq!(review.status, StatusCode::OK, "{}", review.excerpt());
        review.body
    }
}

/// What one call of the matrix sends, and where a redirect it earns should point.
struct Call {
    path: String,
    auth: Auth,
    body: Payload,
    location: Option<String>,
}

/// The server, a user of each role, and the records and names the routes' parameters take.
struct Matrix<'a> {
    s: &'a TestServer,
    web: Web,
    members: BTreeMap<Who, Member>,
    /// A record of each kind (plural) the read and edit routes use.
    records: BTreeMap<&'static str, String>,
    /// The user the admin routes on one user read and change.
    target_user: String,
    /// A token id for routes that only need some id.
    some_token: String,
    /// Makes names unique.
    next: u32,
}

impl<'a> Matrix<'a> {
    async fn new(s: &'a TestServer) -> Matrix<'a> {
        let web = Web::new(s.url());
        let mut members = BTreeMap::new();
        for who in [Who::Viewer, Who::Agent, Who::Manager, Who::Admin] {
            // Not admin@example.com: the first start's admin has that address.
            let email = format!("matrix-{}@example.com", who.role());
            members.insert(who, member(s, &web, who.role(), &email, true).await);
        }
        let contact = s
            .create_id(
                "contacts",
                json!({"first_name": "Ada", "last_name": "Lovelace"}),
            )
            .await;
        let mut records = BTreeMap::new();
        for kind in KINDS {
            let id = match kind {
                "contacts" => contact.clone(),
                other => s.create_id(other, new_record(other, &contact)).await,
            };
            records.insert(kind, id);
        }
        let target_user = id_of(&s.user("target@example.com", "viewer", None).await);
        let some_token = token_id(s, &members[&Who::Viewer].id).await;
        assert_eq!(
            s.post("/api/v1/pipelines", &pipeline("renewals")).await.0,
            StatusCode::CREATED
        );
        assert_eq!(
            s.post("/api/v1/teams", &json!({"key": "alpha", "name": "Alpha"}))
                .await
                .0,
            StatusCode::CREATED
        );
        install(s, "lead-scoring").await;
        Matrix {
            s,
            web,
            members,
            records,
            target_user,
            some_token,
            next: 0,
        }
    }

    fn unique(&mut self) -> u32 {
        self.next += 1;
        self.next
    }

    /// How `who` proves itself on `path`: a token for the API, a session for pages.
    fn auth(&self, who: Who, path: &str) -> Auth {
        match self.members.get(&who) {
            None => Auth::default(),
            Some(m) if is_page(path) => Auth::session(&m.session),
            Some(m) => Auth::bearer(&m.token),
        }
    }

    /// `path` with its parameters replaced by things that exist.
    fn concrete(&self, path: &str) -> String {
        if let Some((kind, _)) = record_route(path).or_else(|| page_record_route(path)) {
            return path.replace("{id}", &self.records[kind]);
        }
        let id = if path.starts_with("/api/v1/plugins/") || path.starts_with("/admin/plugins/") {
            "lead-scoring"
        } else if path.starts_with("/api/v1/users/") || path.starts_with("/admin/users/") {
            &self.target_user
        } else if path.starts_with("/api/v1/tokens/") {
            &self.some_token
        } else if path.starts_with("/api/v1/reports/") || path.starts_with("/reports/") {
            "pipeline"
        } else {
            "none"
        };
        let key = if path.starts_with("/api/v1/teams/") {
            "alpha"
        } else {
            "renewals"
        };
        path.replace("{id}", id)
            .replace("{key}", key)
            .replace("{kind}", "contacts")
            .replace("{name}", "absent")
    }

    /// Builds the call of `rule` by `who`: real ids in the path, a sensible body, and a
    /// fresh target for anything that uses one up (deletions, sign-outs, password changes).
    async fn prepare(&mut self, rule: &Rule, who: Who) -> Call {
        let s = self.s;
        let path = rule.path.as_str();
        let mut call = Call {
            path: self.concrete(path),
            auth: self.auth(who, path),
            body: Payload::None,
            location: None,
        };
        let owner = self
            .members
            .get(&who)
            .map_or_else(|| Value::Null, |m| json!(m.id));
        let csrf = self
            .members
            .get(&who)
            .map_or_else(|| "none".to_owned(), |m| m.csrf.clone());
        if let Some((kind, rest)) = record_route(path) {
            match (rule.method.as_str(), rest) {
                ("POST", "") => {
                    call.body = Payload::Json(new_record(kind, &self.records["contacts"]));
                }
                ("PATCH", "/{id}") => call.body = Payload::Json(patch_body(kind)),
                ("DELETE", "/{id}") => {
                    // Agents may delete only their own records: the target is the caller's.
                    let mut body = new_record(kind, &self.records["contacts"]);
                    body["owner"] = owner;
                    let id = s.create_id(kind, body).await;
                    call.path = format!("/api/v1/{kind}/{id}");
                }
                ("GET", _) => {}
                other => panic!("no recipe for {other:?} on {path}"),
            }
            return call;
        }
        if let Some((kind, rest)) = page_record_route(path) {
            // The record pages post forms with the same fields the API takes as JSON.
            match (rule.method.as_str(), rest) {
                ("POST", "") => {
                    call.body = form_of(&new_record(kind, &self.records["contacts"]), &csrf);
                    if let Payload::Pairs(pairs) = &mut call.body {
                        pairs.push(("back".to_owned(), format!("/{kind}")));
                    }
                    call.location = Some(format!("/{kind}"));
                }
                ("POST", "/{id}") => {
                    call.body = form_of(&patch_body(kind), &csrf);
                    call.location = Some(call.path.clone());
                }
                ("POST", "/{id}/delete") => {
                    let mut body = new_record(kind, &self.records["contacts"]);
                    body["owner"] = owner;
                    let id = s.create_id(kind, body).await;
                    call.path = format!("/{kind}/{id}/delete");
                    call.body = form_of(&json!({}), &csrf);
                    call.location = Some(format!("/{kind}"));
                }
                ("POST", "/{id}/stage") => {
                    call.body = form_of(&json!({"stage": "qualified"}), &csrf);
                    call.location = Some("/deals/board?pipeline=default".to_owned());
                }
                ("GET", _) => {}
                other => panic!("no recipe for {other:?} on {path}"),
            }
            return call;
        }
        let n = self.unique();
        match (rule.method.as_str(), path) {
            ("POST", "/api/v1/pipelines") => {
                call.body = Payload::Json(pipeline(&format!("p{n}")));
            }
            ("PUT", "/api/v1/pipelines/{key}") => {
                let mut body = pipeline("renewals");
                body.as_object_mut().unwrap().remove("key");
                call.body = Payload::Json(body);
            }
            ("POST", "/api/v1/fields/{kind}") => {
                call.body = Payload::Json(json!({"name": format!("extra_{n}"), "type": "text"}));
            }
            ("PATCH", "/api/v1/fields/{kind}/{name}") => {
                let name = text_field(s, &format!("changed_{n}")).await;
                call.path = format!("/api/v1/fields/contacts/{name}");
                call.body = Payload::Json(json!({"label": "Changed"}));
            }
            ("DELETE", "/api/v1/fields/{kind}/{name}") => {
                let name = text_field(s, &format!("gone_{n}")).await;
                call.path = format!("/api/v1/fields/contacts/{name}");
            }
            ("POST", "/api/v1/plugins") => {
                // Installing needs the plugin absent.
                if s.get("/api/v1/plugins/win-loss").await.0 == StatusCode::OK {
                    assert_eq!(
                        s.delete("/api/v1/plugins/win-loss").await.0,
                        StatusCode::NO_CONTENT
                    );
                }
                let (manifest, wasm) = plugin("win-loss");
                call.body = Payload::Upload(manifest, wasm, "read:deal".to_owned());
            }
            ("PUT", "/api/v1/plugins/{id}") => {
                let (manifest, wasm) = plugin("lead-scoring");
                call.body = Payload::Upload(manifest, wasm, LEAD_GRANT.to_owned());
            }
            ("DELETE", "/api/v1/plugins/{id}") => {
                if s.get("/api/v1/plugins/win-loss").await.0 != StatusCode::OK {
                    install(s, "win-loss").await;
                }
                call.path = "/api/v1/plugins/win-loss".to_owned();
            }
            ("PUT" | "PATCH", "/api/v1/plugins/{id}/settings") => {
                call.body = Payload::Json(json!({"senior_points": 25}));
            }
            ("PUT" | "PATCH", "/api/v1/plugins/{id}/limits") => {
                call.body = Payload::Json(json!({"hook_timeout_ms": null, "memory_mib": null}));
            }
            ("POST", "/api/v1/me/password") => {
                // A password change ends the user's sessions, so a stand-in of the same role
                // changes theirs.
                if let Some(m) = self.stand_in(who, false).await {
                    call.auth = Auth::bearer(&m.token);
                }
                call.body = Payload::Json(
                    json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
                );
            }
            ("POST", "/api/v1/users") => {
                call.body = Payload::Json(json!({
                    "email": format!("new{n}@example.com"), "name": "New", "role": "viewer",
                }));
            }
            ("PATCH", "/api/v1/users/{id}") => {
                call.body = Payload::Json(json!({"name": format!("Target {n}")}));
            }
            ("POST", "/api/v1/teams") => {
                call.body = Payload::Json(json!({"key": format!("team-{n}"), "name": "Team"}));
            }
            ("PUT", "/api/v1/teams/{key}") => {
                call.body = Payload::Json(json!({"name": format!("Alpha {n}")}));
            }
            ("DELETE", "/api/v1/teams/{key}") => {
                let key = format!("gone-{n}");
                let (status, body) = s
                    .post("/api/v1/teams", &json!({"key": key, "name": "Gone"}))
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
                call.path = format!("/api/v1/teams/{key}");
            }
            ("POST", "/api/v1/tokens") => {
                call.body = Payload::Json(json!({"name": format!("script {n}")}));
            }
            ("DELETE", "/api/v1/tokens/{id}") => {
                // The caller's own token, made for this call.
                let user = self
                    .members
                    .get(&who)
                    .unwrap_or(&self.members[&Who::Viewer]);
                call.path = format!("/api/v1/tokens/{}", token_id(s, &user.id).await);
            }
            ("PUT", "/api/v1/settings") => {
                call.body = Payload::Json(json!({"agent_scope": "all"}));
            }
            ("GET", "/login") => call.location = Some("/".to_owned()),
            ("POST", "/login") => {
                // A visitor signs in as the viewer; a signed-in caller signs in again from a
                // session made for this call (signing in ends the browser's old session).
                let (cookie, form_csrf) = self.web.login_form().await;
                let user = self
                    .members
                    .get(&who)
                    .unwrap_or(&self.members[&Who::Viewer]);
                let mut cookies = format!("kith_login_csrf={cookie}");
                if who != Who::Anonymous {
                    let fresh = self.web.sign_in(&user.email, PASSWORD).await;
                    cookies.push_str(&format!("; kith_session={fresh}"));
                }
                call.auth = Auth {
                    bearer: None,
                    cookie: Some(cookies),
                };
                call.body = Payload::Form(vec![
                    ("csrf", form_csrf),
                    ("next", "/account".to_owned()),
                    ("email", user.email.clone()),
                    ("password", PASSWORD.to_owned()),
                ]);
                call.location = Some("/account".to_owned());
            }
            ("POST", "/logout") => {
                // Signing out ends a session made for this call.
                let mut form_csrf = csrf;
                if let Some(m) = self.members.get(&who) {
                    let fresh = self.web.sign_in(&m.email, PASSWORD).await;
                    form_csrf = self.web.csrf(&fresh).await;
                    call.auth = Auth::session(&fresh);
                }
                call.body = Payload::Form(vec![("csrf", form_csrf)]);
                call.location = Some("/login".to_owned());
            }
            ("POST", "/account/password") => {
                let mut form_csrf = csrf;
                if let Some(m) = self.stand_in(who, true).await {
                    form_csrf = m.csrf.clone();
                    call.auth = Auth::session(&m.session);
                }
                call.body = Payload::Form(vec![
                    ("csrf", form_csrf),
                    ("current_password", PASSWORD.to_owned()),
                    ("new_password", NEW_PASSWORD.to_owned()),
                ]);
            }
            ("POST", "/account/tokens") => {
                call.body = Payload::Form(vec![
                    ("csrf", csrf),
                    ("name", format!("page token {n}")),
                    ("expires_in_days", String::new()),
                ]);
            }
            ("POST", "/account/tokens/revoke") => {
                let user = self
                    .members
                    .get(&who)
                    .unwrap_or(&self.members[&Who::Viewer]);
                let id = token_id(s, &user.id).await;
                call.body = Payload::Form(vec![("csrf", csrf), ("id", id)]);
            }
            ("POST", "/admin/users") => {
                call.body = Payload::Form(vec![
                    ("csrf", csrf),
                    ("email", format!("page{n}@example.com")),
                    ("name", "Paged".to_owned()),
                    ("role", "viewer".to_owned()),
                    ("team", String::new()),
                    ("password", String::new()),
                ]);
            }
            ("POST", "/admin/users/{id}") => {
                let (status, target) = s.get(&format!("/api/v1/users/{}", self.target_user)).await;
                assert_eq!(status, StatusCode::OK, "{target}");
                call.body = Payload::Form(vec![
                    ("csrf", csrf),
                    ("name", format!("Target {n}")),
                    ("email", target["email"].as_str().unwrap().to_owned()),
                    ("role", target["role"].as_str().unwrap().to_owned()),
                    ("team", target["team"].as_str().unwrap_or("").to_owned()),
                    ("status", "active".to_owned()),
                ]);
            }
            ("POST", "/admin/users/{id}/password") => {
                call.body = Payload::Form(vec![("csrf", csrf)]);
            }
            ("POST", "/admin/plugins/upload") => {
                let (manifest, mut wasm) = plugin("win-loss");
                if who != Who::Admin {
                    // Refused before the body is read: a large unread body can reset the
                    // connection before the client reads the answer.
                    wasm.truncate(16);
                }
                call.body = Payload::PageUpload(csrf, manifest, wasm);
            }
            ("POST", "/admin/plugins/approve") => {
                // Approving needs an upload by the same admin, waiting: made for this call.
                let mut upload = "none".to_owned();
                if let Some(m) = self.members.get(&who).filter(|_| who == Who::Admin) {
                    if s.get("/api/v1/plugins/win-loss").await.0 == StatusCode::OK {
                        assert_eq!(
                            s.delete("/api/v1/plugins/win-loss").await.0,
                            StatusCode::NO_CONTENT
                        );
                    }
                    let (manifest, wasm) = plugin("win-loss");
                    let review = self
                        .web
                        .page_upload(&m.session, &m.csrf, manifest, wasm)
                        .await;
                    upload = review
                        .split("name=\"upload\" value=\"")
                        .nth(1)
                        .and_then(|rest| rest.split('"').next())
                        .expect("the review page names the upload")
                        .to_owned();
                }
                call.body = Payload::Form(vec![
                    ("csrf", csrf),
                    ("upload", upload),
                    ("grant", "read:deal".to_owned()),
                ]);
                call.location = Some("/admin/plugins/win-loss".to_owned());
            }
            ("POST", "/admin/plugins/{id}") => {
                call.body = Payload::Form(vec![("csrf", csrf), ("do", "enable".to_owned())]);
            }
            ("POST", "/admin/plugins/{id}/settings") => {
                call.body = Payload::Form(vec![("csrf", csrf), ("senior_points", "25".to_owned())]);
            }
            ("POST", "/admin/fields") => {
                call.body = Payload::Form(vec![
                    ("csrf", csrf),
                    ("kind", "contacts".to_owned()),
                    ("name", format!("paged_{n}")),
                    ("type", "text".to_owned()),
                ]);
            }
            ("GET", "/admin/fields/{kind}/{name}") => {
                let name = text_field(s, &format!("shown_{n}")).await;
                call.path = format!("/admin/fields/contacts/{name}");
            }
            ("POST", "/admin/fields/{kind}/{name}") => {
                let name = text_field(s, &format!("paged_change_{n}")).await;
                call.path = format!("/admin/fields/contacts/{name}");
                call.body = Payload::Form(vec![("csrf", csrf), ("label", "Changed".to_owned())]);
                call.location = Some("/admin/fields".to_owned());
            }
            ("POST", "/admin/fields/delete") => {
                let name = text_field(s, &format!("gone_page_{n}")).await;
                call.body = Payload::Form(vec![
                    ("csrf", csrf),
                    ("kind", "contacts".to_owned()),
                    ("name", name),
                ]);
            }
            ("POST", "/admin/pipelines") => {
                call.body = Payload::Form(vec![
                    ("csrf", csrf),
                    ("key", format!("paged-{n}")),
                    ("name", "Paged".to_owned()),
                    ("stage_key", "open".to_owned()),
                    ("stage_name", "Open".to_owned()),
                    ("stage_probability", "50".to_owned()),
                    ("stage_outcome", "open".to_owned()),
                    ("stage_key", "won".to_owned()),
                    ("stage_name", "Won".to_owned()),
                    ("stage_probability", "100".to_owned()),
                    ("stage_outcome", "won".to_owned()),
                    ("stage_key", "lost".to_owned()),
                    ("stage_name", "Lost".to_owned()),
                    ("stage_probability", "0".to_owned()),
                    ("stage_outcome", "lost".to_owned()),
                ]);
                call.location = Some("/admin/pipelines".to_owned());
            }
            ("POST", "/admin/pipelines/{key}") => {
                let mut form = vec![("csrf", csrf), ("name", format!("Renewals {n}"))];
                for (key, probability, outcome) in [
                    ("due", "60", "open"),
                    ("renewed", "100", "won"),
                    ("churned", "0", "lost"),
                ] {
                    form.extend([
                        ("stage_key", key.to_owned()),
                        ("stage_name", key.to_owned()),
                        ("stage_probability", probability.to_owned()),
                        ("stage_outcome", outcome.to_owned()),
                    ]);
                }
                call.body = Payload::Form(form);
                call.location = Some("/admin/pipelines".to_owned());
            }
            ("POST", "/admin/teams") => {
                call.body = Payload::Form(vec![
                    ("csrf", csrf),
                    ("key", format!("paged-{n}")),
                    ("name", "Paged team".to_owned()),
                ]);
            }
            ("POST", "/admin/teams/delete") => {
                let key = format!("gone-page-{n}");
                let (status, body) = s
                    .post("/api/v1/teams", &json!({"key": key, "name": "Gone"}))
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
                call.body = Payload::Form(vec![("csrf", csrf), ("key", key)]);
            }
            ("POST", "/admin/settings") => {
                call.body = Payload::Form(vec![("csrf", csrf), ("agent_scope", "all".to_owned())]);
            }
            ("POST", "/admin/tokens/revoke") => {
                let id = token_id(s, &self.target_user).await;
                call.body = Payload::Form(vec![("csrf", csrf), ("id", id)]);
            }
            ("GET", _)
            | (
                "POST",
                "/api/v1/plugins/{id}/enable"
                | "/api/v1/plugins/{id}/disable"
                | "/api/v1/plugins/{id}/resume"
                | "/api/v1/scores/rescore",
            ) => {}
            other => panic!("no recipe for {other:?}"),
        }
        call
    }

    /// A new user of `who`'s role (none for a visitor), signed in when `browser` says so.
    async fn stand_in(&mut self, who: Who, browser: bool) -> Option<Member> {
        if who == Who::Anonymous {
            return None;
        }
        let n = self.unique();
        let email = format!("{}-{n}@example.com", who.role());
        Some(member(self.s, &self.web, who.role(), &email, browser).await)
    }
}

/// The kind (plural) and the rest of a record route's path, e.g. `("deals", "/{id}")`.
fn record_route(path: &str) -> Option<(&'static str, &str)> {
    let rest = path.strip_prefix("/api/v1/")?;
    KINDS.into_iter().find_map(|kind| {
        let tail = rest.strip_prefix(kind)?;
        (tail.is_empty() || tail.starts_with('/')).then_some((kind, tail))
    })
}

/// Defines a text field `name` on contacts, for a call that removes it; its name.
async fn text_field(s: &TestServer, name: &str) -> String {
    let (status, body) = s
        .post(
            "/api/v1/fields/contacts",
            &json!({"name": name, "type": "text"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    name.to_owned()
}

/// The kind and the rest of a record page's path (`/contacts/{id}/edit`); not the board,
/// which is a page of its own.
fn page_record_route(path: &str) -> Option<(&'static str, &str)> {
    if path == "/deals/board" {
        return None;
    }
    let rest = path.strip_prefix('/')?;
    KINDS.into_iter().find_map(|kind| {
        let tail = rest.strip_prefix(kind)?;
        (tail.is_empty() || tail.starts_with('/')).then_some((kind, tail))
    })
}

/// A JSON body as the form a page would post, with the CSRF token.
fn form_of(body: &Value, csrf: &str) -> Payload {
    let mut pairs = vec![("csrf".to_owned(), csrf.to_owned())];
    for (k, v) in body.as_object().into_iter().flatten() {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        pairs.push((k.clone(), text));
    }
    Payload::Pairs(pairs)
}

/// Creates a user with a password, an API token, and (when `browser`) a signed-in session.
async fn member(s: &TestServer, web: &Web, role: &str, email: &str, browser: bool) -> Member {
    let (status, body) = s
        .post(
            "/api/v1/users",
            &json!({"email": email, "name": email, "role": role, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = id_of(&body["user"]);
    let token = token_for(&s.running().store, id.parse().unwrap());
    let (session, csrf) = if browser {
        let session = web.sign_in(email, PASSWORD).await;
        let csrf = web.csrf(&session).await;
        (session, csrf)
    } else {
        (String::new(), String::new())
    };
    Member {
        id,
        email: email.to_owned(),
        token,
        session,
        csrf,
    }
}

/// The id of a new API token for `user`, made by the admin.
async fn token_id(s: &TestServer, user: &str) -> String {
    let (status, body) = s
        .post(
            "/api/v1/tokens",
            &json!({"user": user, "name": "to revoke"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    id_of(&body["token"])
}

const LEAD_GRANT: &str = "read:company,read:contact,read:deal,read:interaction";

async fn install(s: &TestServer, id: &str) {
    let grant = match id {
        "lead-scoring" => LEAD_GRANT,
        "win-loss" => "read:deal",
        other => panic!("no grant for {other}"),
    };
    let (manifest, wasm) = plugin(id);
    let web = Web::new(s.url());
    let answer = web
        .call(
            Method::POST,
            "/api/v1/plugins",
            &Auth::bearer(s.token()),
            Payload::Upload(manifest, wasm, grant.to_owned()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.excerpt());
}

/// A pipeline named `key`.
fn pipeline(key: &str) -> Value {
    json!({
        "key": key,
        "name": key,
        "stages": [
            { "key": "due", "name": "Due", "probability": 60 },
            { "key": "renewed", "name": "Renewed", "probability": 100, "outcome": "won" },
            { "key": "churned", "name": "Churned", "probability": 0, "outcome": "lost" },
        ],
    })
}

/// A valid new record of `kind`; interactions and tasks are linked to `contact`.
fn new_record(kind: &str, contact: &str) -> Value {
    match kind {
        "contacts" => json!({"first_name": "Grace", "last_name": "Hopper"}),
        "companies" => json!({"name": "Analytical Engines"}),
        "deals" => json!({"title": "Difference engine", "stage": "lead"}),
        "tickets" => json!({"subject": "The engine jams"}),
        "interactions" => json!({"kind": "note", "subject": "Met", "contact_id": contact}),
        "tasks" => json!({"title": "Follow up", "contact_id": contact}),
        other => panic!("no kind {other}"),
    }
}

/// A harmless change to a record of `kind`.
fn patch_body(kind: &str) -> Value {
    match kind {
        "contacts" => json!({"title": "Engineer"}),
        "companies" => json!({"industry": "Software"}),
        "deals" => json!({"source": "web"}),
        "tickets" => json!({"description": "It jams on Tuesdays"}),
        "interactions" => json!({"subject": "Zephyr met again"}),
        "tasks" => json!({"notes": "Bring the notes"}),
        other => panic!("no kind {other}"),
    }
}

// ---------------------------------------------------------------------------------------
// Records for the visibility test.

/// One owner's records: a company, a contact working there, three deals (open, won, lost)
/// involving the contact, a ticket the contact raised, and an interaction and a task with
/// the contact.
struct Owned {
    company: String,
    contact: String,
    open: String,
    won: String,
    lost: String,
    ticket: String,
    interaction: String,
    task: String,
}

impl Owned {
    fn all(&self) -> Vec<(&'static str, String)> {
        vec![
            ("companies", self.company.clone()),
            ("contacts", self.contact.clone()),
            ("deals", self.open.clone()),
            ("deals", self.won.clone()),
            ("deals", self.lost.clone()),
            ("tickets", self.ticket.clone()),
            ("interactions", self.interaction.clone()),
            ("tasks", self.task.clone()),
        ]
    }
}

/// Creates one owner's records as the admin (`owner` `None`: the admin's own, in no team).
async fn seed(
    s: &TestServer,
    owner: Option<&str>,
    word: &str,
    currency: &str,
    amount: &str,
) -> Owned {
    let with_owner = |mut v: Value| {
        if let Some(o) = owner {
            v["owner"] = json!(o);
        }
        v
    };
    let company = s
        .create_id(
            "companies",
            with_owner(json!({"name": format!("Zephyr {word} Ltd")})),
        )
        .await;
    let contact = s
        .create_id(
            "contacts",
            with_owner(json!({"first_name": "Zephyr", "last_name": word,
                              "company_id": company, "source": "web"})),
        )
        .await;
    let deal = |stage: &str, close: &str| {
        with_owner(json!({
            "title": format!("Zephyr {word} {stage}"), "stage": stage, "amount": amount,
            "currency": currency, "company_id": company, "contact_ids": [contact],
            "expected_close": close, "source": "referral",
        }))
    };
    let open = s.create_id("deals", deal("proposal", "2026-06-15")).await;
    let won = s.create_id("deals", deal("won", "2026-05-01")).await;
    let lost = s.create_id("deals", deal("lost", "2026-05-01")).await;
    let ticket = s
        .create_id(
            "tickets",
            with_owner(
                json!({"subject": format!("Zephyr {word} broken"), "priority": "high",
                              "requester_id": contact}),
            ),
        )
        .await;
    let interaction = s
        .create_id(
            "interactions",
            with_owner(
                json!({"kind": "meeting", "subject": format!("Zephyr {word} meeting"),
                              "direction": "outbound", "contact_id": contact}),
            ),
        )
        .await;
    let task = s
        .create_id(
            "tasks",
            with_owner(json!({"title": format!("Zephyr {word} follow-up"), "contact_id": contact})),
        )
        .await;
    Owned {
        company,
        contact,
        open,
        won,
        lost,
        ticket,
        interaction,
        task,
    }
}

/// A client acting as one user through their API token.
struct Api {
    client: Client,
    base: String,
}

impl Api {
    fn new(s: &TestServer, token: String) -> Api {
        Api {
            client: client_with(&token),
            base: s.url(),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        send(
            &self.client,
            &self.base,
            method,
            path,
            body.map(|b| b.to_string().into()),
        )
        .await
    }

    async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.send(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::POST, path, Some(body.clone())).await
    }

    async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::PATCH, path, Some(body.clone())).await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None).await
    }

    async fn count(&self, kind: &str, query: &str) -> u64 {
        self.get_ok(&format!("/api/v1/{kind}/count?{query}")).await["count"]
            .as_u64()
            .unwrap()
    }

    /// Every item of a list, page by page; `path` carries a query string.
    async fn list_all(&self, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let page_path = match &cursor {
                Some(c) => format!("{path}&cursor={c}"),
                None => path.to_owned(),
            };
            let page = self.get_ok(&page_path).await;
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return items,
            }
        }
        panic!("{path}: more than 100 pages");
    }
}

fn message(reply: &Reply) -> String {
    reply.1["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// Reports seen by a restricted agent.

/// Checks every built-in report (and a plugin's) run by `agent`, who sees the records of
/// `team` (the east agents) and the west agent `other`'s records in the east team, against
/// the admin's figures for the same records.
async fn check_reports(
    s: &TestServer,
    agent: &Api,
    admin: &Api,
    team: &[&str],
    other: &str,
    visible: &BTreeMap<&str, Vec<Value>>,
) {
    // Reports that only add up: the agent's figures are the sum of the admin's for each
    // east owner. Zero rows (a stage without deals) are left out of both sides.
    for (report, keys, measures) in [
        (
            "pipeline",
            &["pipeline", "stage", "currency"][..],
            &["deals", "amount", "weighted_amount"][..],
        ),
        (
            "forecast",
            &["month", "currency"][..],
            &["deals", "amount", "weighted_amount"][..],
        ),
        ("new-contacts", &["period", "source"][..], &["contacts"][..]),
    ] {
        let mine = agent.get_ok(&format!("/api/v1/reports/{report}")).await;
        let mut theirs = Vec::new();
        for owner in team {
            theirs.push(
                admin
                    .get_ok(&format!("/api/v1/reports/{report}?owner={owner}"))
                    .await,
            );
        }
        let want = summed(&theirs, keys, measures);
        assert!(!want.is_empty(), "{report}: the east agents have figures");
        assert_eq!(
            summed(&[mine], keys, measures),
            want,
            "the east agent's {report} report"
        );
        let everything = admin.get_ok(&format!("/api/v1/reports/{report}")).await;
        assert_ne!(
            summed(&[everything], keys, measures),
            want,
            "{report}: the admin's figures include other teams'"
        );
    }

    // Win rate by owner: a row per east owner, each the admin's.
    let of_team = |table: &Value, column: &str| -> Vec<BTreeMap<String, Value>> {
        rows(table)
            .into_iter()
            .filter(|r| team.iter().any(|t| r[column] == json!(t)))
            .collect()
    };
    let mine = agent.get_ok("/api/v1/reports/win-rate?by=owner").await;
    let everything = admin.get_ok("/api/v1/reports/win-rate?by=owner").await;
    assert_eq!(
        rows(&mine),
        of_team(&everything, "owner"),
        "win rate by owner"
    );
    assert_eq!(rows(&mine).len(), team.len(), "{mine}");
    assert!(rows(&everything).len() > team.len(), "{everything}");

    // Interactions by owner: the east owners' rows are the admin's; the west agent's row
    // holds only their interaction filed with the east team.
    let mine = agent.get_ok("/api/v1/reports/interactions").await;
    let everything = admin.get_ok("/api/v1/reports/interactions").await;
    assert_eq!(
        of_team(&mine, "owner"),
        of_team(&everything, "owner"),
        "interactions of the east owners"
    );
    let total_of = |table: &Value, owner: &str| -> u64 {
        rows(table)
            .iter()
            .filter(|r| r["owner"] == json!(owner))
            .map(|r| r["interactions"].as_u64().unwrap())
            .sum()
    };
    let crossing = visible["interactions"]
        .iter()
        .filter(|r| r["owner"] == json!(other))
        .count() as u64;
    assert_eq!(
        total_of(&mine, other),
        crossing,
        "the west agent's visible interactions"
    );
    assert!(total_of(&everything, other) > crossing);
    let owners: BTreeSet<String> = rows(&mine)
        .iter()
        .map(|r| r["owner"].as_str().unwrap_or("none").to_owned())
        .collect();
    let want: BTreeSet<String> = team
        .iter()
        .map(|t| (*t).to_owned())
        .chain([other.to_owned()])
        .collect();
    assert_eq!(
        owners, want,
        "owners in the east agent's interactions report"
    );

    // Tickets by priority: counted from the visible tickets.
    let mine = agent.get_ok("/api/v1/reports/tickets").await;
    for priority in ["low", "normal", "high", "urgent"] {
        let of: Vec<&Value> = visible["tickets"]
            .iter()
            .filter(|t| t["priority"] == priority)
            .collect();
        let open = of.iter().filter(|t| t["status"] == "open").count() as u64;
        let row = rows(&mine).into_iter().find(|r| r["priority"] == priority);
        let (tickets, open_got) = row.map_or((0, 0), |r| {
            (r["tickets"].as_u64().unwrap(), r["open"].as_u64().unwrap())
        });
        assert_eq!(
            (tickets, open_got),
            (of.len() as u64, open),
            "{priority} tickets for the east agent: {mine}"
        );
    }

    // A plugin's report reads through the same restriction.
    install(s, "win-loss").await;
    let mine = agent
        .get_ok("/api/v1/reports/win-loss.summary?by=owner")
        .await;
    let everything = admin
        .get_ok("/api/v1/reports/win-loss.summary?by=owner")
        .await;
    // The plugin adds a pair of columns per currency it meets, so the agent's table lacks
    // the currency only hidden deals are in; in the admin's east rows those columns are zero.
    let columns: BTreeSet<String> = rows(&mine)
        .first()
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default();
    let theirs: Vec<BTreeMap<String, Value>> = of_team(&everything, "owner")
        .into_iter()
        .map(|mut row| {
            for (name, value) in &row {
                assert!(
                    columns.contains(name) || *value == json!("0"),
                    "{name} of an east owner's row is {value}, but the agent's table has no {name}"
                );
            }
            row.retain(|name, _| columns.contains(name));
            row
        })
        .collect();
    assert_eq!(
        rows(&mine),
        theirs,
        "the win-loss plugin's summary by owner: {everything}"
    );
    assert!(!rows(&mine).is_empty() && rows(&everything).len() > rows(&mine).len());
}

/// A report's rows as column name → value.
fn rows(table: &Value) -> Vec<BTreeMap<String, Value>> {
    let names: Vec<String> = table["columns"]
        .as_array()
        .unwrap_or_else(|| panic!("no columns in {table}"))
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            names
                .iter()
                .cloned()
                .zip(row.as_array().unwrap().iter().cloned())
                .collect()
        })
        .collect()
}

/// The rows of `tables` added up by `keys`: each measure summed, all-zero groups left out.
fn summed(
    tables: &[Value],
    keys: &[&str],
    measures: &[&str],
) -> BTreeMap<Vec<String>, Vec<Decimal>> {
    let mut out: BTreeMap<Vec<String>, Vec<Decimal>> = BTreeMap::new();
    for table in tables {
        for row in rows(table) {
            let key = keys.iter().map(|k| row[*k].to_string()).collect();
            let sums = out
                .entry(key)
                .or_insert_with(|| vec![Decimal::ZERO; measures.len()]);
            for (sum, m) in sums.iter_mut().zip(measures) {
                *sum += figure(&row[*m]);
            }
        }
    }
    out.retain(|_, sums| sums.iter().any(|d| !d.is_zero()));
    for sums in out.values_mut() {
        for d in sums.iter_mut() {
            *d = d.normalize();
        }
    }
    out
}

/// A count or a decimal string as a number; null as zero.
fn figure(v: &Value) -> Decimal {
    match v {
        Value::Null => Decimal::ZERO,
        Value::Number(n) => Decimal::from(n.as_u64().unwrap()),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("not a figure: {other}"),
    }
}
