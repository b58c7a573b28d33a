//! The web UI in a real browser (headless Chromium through chromedriver, see [`browser`])
//! against a real server seeded with the demo data: a person creates a contact through the
//! form and finds it in the list and through the search box, logs an interaction and sees it
//! on the timeline, gets a validation error beside its field, drags a deal to the next stage
//! and sees it stay there after a reload, runs a report and sees its chart; at 375 px no page
//! scrolls sideways. Every page visited is saved as a screenshot in `target/screenshots/`.
//!
//! [`browser`]: crate::browser

use reqwest::Method;
use serde_json::json;

use crate::browser::{Browser, Driver, browser_or_skip};
use crate::support::TestServer;

/// The WebDriver key code for Enter.
const ENTER: &str = "\u{E007}";

/// Signs the browser in on the sign-in page.
async fn sign_in(b: &Browser, base: &str, email: &str, password: &str) {
    b.goto(&format!("{base}/login")).await;
    b.type_into("#email", email).await;
    b.type_into("#password", password).await;
    b.click("main button[type=submit]").await;
    b.wait_url(|u| u.trim_end_matches('/') == base).await;
}

/// The text of the whole page.
async fn page_text(b: &Browser) -> String {
    b.run("return document.body.innerText;")
        .await
        .as_str()
        .unwrap()
        .to_owned()
}

/// Drags the element `from` onto the element `to` with the mouse, in small steps, the way a
/// person would (pointer down, moves, pointer up).
async fn drag(b: &Browser, from: &str, to: &str) {
    let (a, z) = (b.find(from).await, b.find(to).await);
    let origin = |e: &str| json!({ crate::browser::ELEMENT: e });
    let actions = json!({ "actions": [{
        "type": "pointer", "id": "mouse", "parameters": { "pointerType": "mouse" },
        "actions": [
            { "type": "pointerMove", "duration": 0, "origin": origin(&a), "x": 0, "y": 0 },
            { "type": "pointerDown", "button": 0 },
            { "type": "pointerMove", "duration": 100, "origin": "pointer", "x": 20, "y": 5 },
            { "type": "pointerMove", "duration": 300, "origin": origin(&z), "x": 0, "y": 0 },
            { "type": "pointerMove", "duration": 100, "origin": origin(&z), "x": 2, "y": 2 },
            { "type": "pointerUp", "button": 0 },
        ],
    }]});
    b.cmd(Method::POST, "/actions", Some(actions)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_works_with_contacts_deals_and_reports_in_the_browser() {
    let test = "a_person_works_with_contacts_deals_and_reports_in_the_browser";
    let Some((driver_bin, chromium)) = browser_or_skip(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), true).await.unwrap();
    let (email, password) = s.running().first_admin.clone().unwrap();
    let base = s.url();
    let driver = Driver::start(&driver_bin).await;
    let b = Browser::open(&driver, &chromium).await;
    sign_in(&b, &base, &email, &password).await;

    // The dashboard is home, with the pipeline's figures and the new-contacts chart.
    assert_eq!(b.text("h1").await, "Dashboard");
    let text = page_text(&b).await;
    for figure in [
        "Open pipeline",
        "Weighted forecast",
        "Win rate",
        "Open tickets",
    ] {
        assert!(text.contains(figure), "{figure} missing from:\n{text}");
    }
    b.find("figure.chart svg").await;
    b.screenshot("ui-dashboard").await;

    // A contact created through the form is in the list and found by the search box.
    b.click("nav.main a[href='/contacts']").await;
    b.wait_url(|u| u.ends_with("/contacts")).await;
    b.screenshot("ui-contacts").await;
    b.click("a.button[href='/contacts/new']").await;
    b.type_into("#f-first_name", "Ottoline").await;
    b.type_into("#f-last_name", "Quennell").await;
    b.type_into("#f-email", "ottoline@quennell.example").await;
    b.type_into("#f-title", "Buyer").await;
    b.screenshot("ui-contact-new").await;
    b.click("main form button[type=submit]").await;
    let contact_url = b
        .wait_url(|u| u.contains("/contacts/") && !u.ends_with("/new"))
        .await;
    assert_eq!(b.text("h1").await, "Ottoline Quennell");
    b.goto(&format!("{base}/contacts?sort=-created_at")).await;
    assert!(page_text(&b).await.contains("Ottoline Quennell"));
    b.type_into("#list-q", "quennell").await;
    b.type_into("#list-q", ENTER).await;
    b.wait_url(|u| u.contains("q=quennell")).await;
    assert_eq!(
        b.text("table.records tbody tr td a").await,
        "Ottoline Quennell"
    );
    // "/" focuses the search box on any page.
    let slash = json!({ "actions": [{
        "type": "key", "id": "keyboard",
        "actions": [{ "type": "keyDown", "value": "/" }, { "type": "keyUp", "value": "/" }],
    }]});
    b.cmd(Method::POST, "/actions", Some(slash)).await;
    let focused = b.run("return document.activeElement.id;").await;
    assert_eq!(focused, "search");
    b.type_into("#search", &format!("ottoline{ENTER}")).await;
    b.wait_url(|u| u.contains("/search?q=ottoline")).await;
    b.click("main ul.related a").await;
    b.wait_url(|u| u == contact_url).await;

    // An interaction logged on the contact's page is on its timeline.
    b.type_into("#log-subject", "Called about the renewal")
        .await;
    b.type_into("#log-body", "Wants a quote by Friday.").await;
    b.click("form[action='/interactions'] button").await;
    b.wait_url(|u| u == contact_url).await;
    let timeline = b.text("ol.timeline").await;
    assert!(timeline.contains("Called about the renewal"), "{timeline}");
    b.screenshot("ui-contact").await;

    // A value the store refuses is explained beside its field, with what was typed kept.
    b.goto(&format!("{base}/deals/new")).await;
    b.type_into("#f-title", "Forty licences").await;
    b.type_into("#f-amount", "4000").await;
    b.type_into("#f-currency", "ZZZ").await;
    b.click("main form button[type=submit]").await;
    let error = b.text(".field.invalid .field-error").await;
    assert!(error.contains("currency"), "{error}");
    let beside = b
        .run("return document.querySelector('.field.invalid input').id;")
        .await;
    assert_eq!(beside, "f-currency");
    let kept = b
        .run("return document.getElementById('f-title').value;")
        .await;
    assert_eq!(kept, "Forty licences");
    b.screenshot("ui-deal-error").await;

    // A deal dragged to the next column stays there after a reload.
    b.goto(&format!("{base}/deals/board")).await;
    b.screenshot("ui-board").await;
    let card = b
        .run("return document.querySelector('.column[data-stage=lead] .deal-card').dataset.deal;")
        .await;
    let card = card.as_str().unwrap().to_owned();
    drag(
        &b,
        &format!(".deal-card[data-deal='{card}'] .grip"),
        ".column[data-stage=qualified] header",
    )
    .await;
    b.wait_url(|u| u.contains("/deals/board?pipeline=default"))
        .await;
    b.goto(&format!("{base}/deals/board")).await;
    b.find(&format!(
        ".column[data-stage=qualified] .deal-card[data-deal='{card}']"
    ))
    .await;
    let (_, deal) = s.get(&format!("/api/v1/deals/{card}")).await;
    assert_eq!(deal["stage"], "qualified", "{deal}");

    // Moving a deal to Lost asks why before it moves.
    b.run(&format!(
        "const f = document.querySelector(\".deal-card[data-deal='{card}'] form.move\");\
         f.querySelector('select').value = 'lost'; f.requestSubmit(); return true;"
    ))
    .await;
    b.type_into("#ask-lost_reason", "Went with a cheaper tool")
        .await;
    b.screenshot("ui-board-lost").await;
    b.click("main form button[type=submit]").await;
    b.wait_url(|u| u.contains("/deals/board")).await;
    let (_, deal) = s.get(&format!("/api/v1/deals/{card}")).await;
    assert_eq!(deal["status"], "lost", "{deal}");
    assert_eq!(deal["lost_reason"], "Went with a cheaper tool", "{deal}");

    // A report runs with its parameters and shows a chart beside its table.
    b.goto(&format!("{base}/reports")).await;
    b.screenshot("ui-reports").await;
    b.click("a[href='/reports/new-contacts']").await;
    b.wait_url(|u| u.ends_with("/reports/new-contacts")).await;
    b.run("document.getElementById('p-interval').value = 'week'; return true;")
        .await;
    b.click("form.params button").await;
    b.wait_url(|u| u.contains("interval=week")).await;
    b.find("figure.chart svg polyline").await;
    let csv = b
        .run("return document.querySelector('a[download]').getAttribute('href');")
        .await;
    assert!(csv.as_str().unwrap().contains("format=csv"), "{csv}");
    b.screenshot("ui-report").await;

    // A plugin installed through the upload page, its capabilities approved, adds its
    // custom field to the deal form.
    b.goto(&format!("{base}/admin/plugins/deal-fields")).await;
    b.click("form.inline button.danger").await;
    b.cmd(Method::POST, "/alert/accept", Some(json!({}))).await;
    b.wait_url(|u| u.ends_with("/admin/plugins/deal-fields"))
        .await;
    b.goto(&format!("{base}/deals/new")).await;
    assert!(!page_text(&b).await.contains("Next step"));
    b.goto(&format!("{base}/admin/plugins")).await;
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = root.join("plugins/deal-fields/kith-plugin.toml");
    let wasm =
        std::path::PathBuf::from(env!("KITH_TEST_PLUGINS")).join("kith_plugin_deal_fields.wasm");
    b.type_into(
        "#manifest",
        &manifest.canonicalize().unwrap().display().to_string(),
    )
    .await;
    b.type_into("#wasm", &wasm.display().to_string()).await;
    b.screenshot("ui-plugins").await;
    b.click("form[action='/admin/plugins/upload'] button").await;
    b.wait_url(|u| u.ends_with("/admin/plugins/upload")).await;
    let review = page_text(&b).await;
    assert!(review.contains("Install Deal fields"), "{review}");
    // Deal fields asks for nothing beyond its own hooks, and the page says so.
    assert!(review.contains("reads no records"), "{review}");
    b.screenshot("ui-plugin-review").await;
    b.click("form[action='/admin/plugins/approve'] button")
        .await;
    b.wait_url(|u| u.ends_with("/admin/plugins/deal-fields"))
        .await;
    assert!(page_text(&b).await.contains("active"));
    b.screenshot("ui-plugin").await;
    b.goto(&format!("{base}/deals/new")).await;
    let help = b
        .text("#f-custom-next_step ~ small.help, .field:has(#f-custom-next_step) small.help")
        .await;
    assert!(help.contains("deal-fields"), "{help}");

    // On a phone nothing scrolls sideways (wide tables and the board scroll inside
    // themselves).
    b.resize(375, 800).await;
    let contact_path = contact_url.trim_start_matches(&base).to_owned();
    for page in [
        "/",
        "/contacts",
        contact_path.as_str(),
        "/contacts/new",
        "/companies",
        "/deals",
        "/deals/board",
        "/tickets",
        "/tasks",
        "/reports",
        "/reports/pipeline",
        "/search?q=a",
        "/admin/plugins",
        "/admin/plugins/deal-fields",
        "/admin/fields",
        "/admin/pipelines",
        "/admin/users",
    ] {
        b.goto(&format!("{base}{page}")).await;
        if b.scrolls_sideways().await {
            let wide = b
                .run(
                    "return [...document.querySelectorAll('body *')]\
                       .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)\
                       .slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + \
                         Math.round(e.getBoundingClientRect().right)).join(', ');",
                )
                .await;
            panic!("{page} scrolls sideways at 375 px; too wide: {wide}");
        }
        let name = match page.trim_start_matches('/') {
            "" => "dashboard".to_owned(),
            p if p.starts_with("contacts/0") => "contact".to_owned(),
            p => p.replace(['/', '?', '='], "-"),
        };
        b.screenshot(&format!("ui-375-{name}")).await;
    }
    b.close().await;
    drop(driver);
    s.stop().await;
}
