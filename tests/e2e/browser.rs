//! Real-browser tests: headless Chromium, driven through chromedriver with the W3C WebDriver
//! protocol (plain JSON over HTTP, spoken here with reqwest), against a real server. A person
//! signs in, makes an API token, adds a colleague, signs out; the session cookie is out of
//! the page scripts' reach; at 375 px wide nothing scrolls sideways. Screenshots of each
//! page go to `target/screenshots/` for a person to look at.
//!
//! Without Chromium and chromedriver the test says loudly that it skipped and how to run it,
//! and passes, so the README's test command works on any machine; with
//! `KITH_BROWSER_TESTS=required` (CI sets it) a missing browser is a failure.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, client_with, send};

/// The key W3C WebDriver answers an element reference under.
pub(crate) const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where the browser and its driver are, if this machine has them.
fn browser_binaries() -> Option<(PathBuf, PathBuf)> {
    let find = |env: &str, names: &[&str]| -> Option<PathBuf> {
        if let Some(p) = std::env::var_os(env) {
            return Some(PathBuf::from(p)).filter(|p| p.is_file());
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
            .find(|p| p.is_file())
    };
    let driver = find("KITH_CHROMEDRIVER", &["chromedriver"])?;
    let browser = find(
        "KITH_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    )?;
    Some((driver, browser))
}

/// The browser and driver, or `None` after saying loudly that the browser tests are skipped
/// (a failure instead when `KITH_BROWSER_TESTS=required`).
pub(crate) fn browser_or_skip(test: &str) -> Option<(PathBuf, PathBuf)> {
    let found = browser_binaries();
    if found.is_none() {
        let required = std::env::var("KITH_BROWSER_TESTS").is_ok_and(|v| v == "required");
        assert!(
            !required,
            "KITH_BROWSER_TESTS=required, but chromium and chromedriver are not on PATH"
        );
        // Straight to the terminal: libtest hides what a passing test prints with eprintln!.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED browser test {test}: Chromium and chromedriver were not found.\n\
             *** Install them (Debian: apt-get install chromium chromium-driver) and run\n\
             *** `cargo test --workspace` again; KITH_BROWSER_TESTS=required turns this skip\n\
             *** into a failure.\n"
        );
    }
    found
}

/// A chromedriver process on a free loopback port, stopped on drop.
pub(crate) struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    pub(crate) async fn start(driver: &PathBuf) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        // Owned at once, so the process is stopped and reaped (on drop) however this ends.
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = Client::new();
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await
                && r.status().is_success()
            {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not answer on {}", driver.url);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser window.
pub(crate) struct Browser {
    http: Client,
    session: String,
}

impl Browser {
    pub(crate) async fn open(driver: &Driver, chromium: &PathBuf) -> Browser {
        let http = Client::new();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"],
            },
        } } });
        let reply: Value = http
            .post(format!("{}/session", driver.url))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session reply");
        let id = reply["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {reply}"));
        Browser {
            http,
            session: format!("{}/session/{id}", driver.url),
        }
    }

    /// A WebDriver command; its `value`, panicking with the driver's error.
    pub(crate) async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        self.try_cmd(method.clone(), path, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// A WebDriver command; its `value`, or the driver's error.
    pub(crate) async fn try_cmd(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if let Some(b) = body {
            request = request.json(&b);
        }
        let reply: Value = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        if reply["value"]["error"].is_string() {
            return Err(reply["value"].clone());
        }
        Ok(reply["value"].clone())
    }

    /// Waits (up to 10 s) until the address satisfies `done`, as a submitted form's answer
    /// may still be loading when the click returns.
    pub(crate) async fn wait_url(&self, done: impl Fn(&str) -> bool) -> String {
        for _ in 0..100 {
            let url = self.url().await;
            if done(&url) {
                return url;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the browser stayed at {}", self.url().await)
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.cmd(Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub(crate) async fn url(&self) -> String {
        self.cmd(Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The first element `css` selects, waiting up to 10 s for it to appear.
    pub(crate) async fn find(&self, css: &str) -> String {
        let query = json!({ "using": "css selector", "value": css });
        let mut last = Value::Null;
        for _ in 0..100 {
            match self
                .try_cmd(Method::POST, "/element", Some(query.clone()))
                .await
            {
                Ok(v) => return v[ELEMENT].as_str().unwrap().to_owned(),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no element {css}: {last}")
    }

    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(
            Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    pub(crate) async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd(
            Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.cmd(Method::GET, &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Runs a script in the page (WebDriver's own channel, which the page's CSP does not
    /// govern) and returns what it returns.
    pub(crate) async fn run(&self, script: &str) -> Value {
        self.cmd(
            Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    pub(crate) async fn resize(&self, width: u32, height: u32) {
        self.cmd(
            Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    /// Saves a screenshot as `target/screenshots/<name>.png`.
    pub(crate) async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let png = self.cmd(Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .expect("a base64 PNG");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    /// Whether the page is wider than the window (it scrolls sideways).
    pub(crate) async fn scrolls_sideways(&self) -> bool {
        self.run("return document.documentElement.scrollWidth > window.innerWidth;")
            .await
            .as_bool()
            .unwrap()
    }

    pub(crate) async fn close(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_makes_a_token_adds_a_colleague_and_signs_out() {
    let Some((driver_bin, chromium)) =
        browser_or_skip("a_person_signs_in_makes_a_token_adds_a_colleague_and_signs_out")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), false).await.unwrap();
    let (email, password) = s.running().first_admin.clone().unwrap();
    let base = s.url();
    let driver = Driver::start(&driver_bin).await;
    let b = Browser::open(&driver, &chromium).await;

    // A page sends a visitor to sign in and back afterwards.
    b.goto(&format!("{base}/account")).await;
    assert!(
        b.url().await.contains("/login?next=%2Faccount"),
        "{}",
        b.url().await
    );
    b.screenshot("sign-in").await;
    b.type_into("#email", &email).await;
    b.type_into("#password", "not the password").await;
    b.click("button[type=submit]").await;
    let alert = b.text("[role=alert]").await;
    assert!(alert.contains("do not match"), "{alert}");
    b.type_into("#password", &password).await;
    b.click("button[type=submit]").await;
    b.wait_url(|u| u.ends_with("/account")).await;
    assert_eq!(b.text("h1").await, "Your account");
    // The session cookie is there for the server and not for scripts.
    let cookies = b.run("return document.cookie;").await;
    assert!(
        !cookies.as_str().unwrap().contains("kith_session"),
        "{cookies}"
    );

    // An API token made on the page works, once copied.
    b.type_into("#token-name", "laptop script").await;
    b.click("form[action='/account/tokens'] button").await;
    let secret = b.text("code.secret").await;
    let (status, me) = send(
        &client_with(&secret),
        &base,
        Method::GET,
        "/api/v1/me",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    b.screenshot("account").await;

    // A colleague added on the People page gets a generated password that signs in.
    b.click("nav a[href='/admin/users']").await;
    b.wait_url(|u| u.ends_with("/admin/users")).await;
    assert_eq!(b.text("h1").await, "People");
    b.type_into("#new-email", "lena@acme.com").await;
    b.type_into("#new-name", "Lena").await;
    b.click("form[action='/admin/users'] button").await;
    let generated = b.text("code.secret").await;
    assert!(
        crate::support::sign_in(&base, "lena@acme.com", &generated)
            .await
            .is_ok()
    );
    b.screenshot("people").await;

    // On a phone-sized window nothing scrolls sideways.
    b.resize(375, 800).await;
    for page in ["/account", "/admin/users"] {
        b.goto(&format!("{base}{page}")).await;
        assert!(
            !b.scrolls_sideways().await,
            "{page} scrolls sideways at 375 px"
        );
        b.screenshot(&format!(
            "{}-375",
            page.trim_start_matches('/').replace('/', "-")
        ))
        .await;
    }

    // Signing out ends the session: the account page sends the browser to sign in again.
    b.click("form[action='/logout'] button").await;
    b.wait_url(|u| u.ends_with("/login")).await;
    assert!(
        !b.scrolls_sideways().await,
        "the sign-in page scrolls sideways at 375 px"
    );
    b.goto(&format!("{base}/account")).await;
    assert!(b.url().await.contains("/login"), "{}", b.url().await);
    b.close().await;
    drop(driver);
    s.stop().await;
}
