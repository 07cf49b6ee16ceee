//! The web UI in a real browser: Debian's Chromium driven through chromedriver (`WebDriver`,
//! plain HTTP) against a real `sop serve`. A person approves and rejects from the page,
//! and opens a run's page.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::daemon::Daemon;
use crate::support::{wait_for, Home};

/// `WebDriver`'s key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver, killed when dropped (also when starting the browser fails).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Browser {
    base: String,
    session: String,
    _profile: tempfile::TempDir,
    // Dropped after the session is closed (fields drop in order, after `drop` below).
    _driver: Driver,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
    }
}

impl Browser {
    fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Driver(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect(
                    "`chromedriver` (Debian's chromium-driver) runs the UI test; .ci/run installs it",
                ),
        );
        let base = format!("http://127.0.0.1:{port}");
        wait_for(Duration::from_secs(20), || {
            let ready = ureq::get(&format!("{base}/status")).call().ok()?;
            let v: Value = ready.into_json().ok()?;
            v["value"]["ready"].as_bool().filter(|r| *r)
        })
        .expect("chromedriver ready");
        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let session: Value = ureq::post(&format!("{base}/session"))
            .send_json(caps)
            .expect("a browser session")
            .into_json()
            .expect("json");
        let session = session["value"]["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        Browser {
            base,
            session,
            _profile: profile,
            _driver: driver,
        }
    }

    fn post(&self, path: &str, body: &Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        match ureq::post(&url).send_json(body.clone()) {
            Ok(r) => r.into_json().expect("json"),
            Err(ureq::Error::Status(_, r)) => r.into_json().unwrap_or(Value::Null),
            Err(e) => panic!("POST {path}: {e}"),
        }
    }

    fn get(&self, path: &str) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        match ureq::get(&url).call() {
            Ok(r) => r.into_json().expect("json"),
            Err(ureq::Error::Status(_, r)) => r.into_json().unwrap_or(Value::Null),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    fn open(&self, url: &str) {
        self.post("/url", &json!({ "url": url }));
    }

    /// The element `css` selects, once it is there.
    fn find(&self, css: &str) -> String {
        wait_for(Duration::from_secs(20), || {
            let v = self.post("/element", &json!({"using": "css selector", "value": css}));
            v["value"][ELEMENT].as_str().map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no `{css}` on the page: {}", self.text("body")))
    }

    /// Acts on the element `css` selects; again if the page redrew it meanwhile (it
    /// refreshes every 2 s, and a reference to a replaced element is stale).
    fn act(&self, css: &str, action: &str, body: &Value) {
        wait_for(Duration::from_secs(20), || {
            let el = self.find(css);
            let v = self.post(&format!("/element/{el}/{action}"), body);
            v["value"].is_null().then_some(())
        })
        .unwrap_or_else(|| panic!("could not {action} `{css}`"));
    }

    fn click(&self, css: &str) {
        self.act(css, "click", &json!({}));
    }

    fn type_into(&self, css: &str, text: &str) {
        self.act(css, "value", &json!({ "text": text }));
    }

    fn text(&self, css: &str) -> String {
        let v = self.post("/element", &json!({"using": "css selector", "value": css}));
        let Some(el) = v["value"][ELEMENT].as_str() else {
            return String::new();
        };
        self.get(&format!("/element/{el}/text"))["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn displayed(&self, css: &str) -> bool {
        let el = self.find(css);
        self.get(&format!("/element/{el}/displayed"))["value"]
            .as_bool()
            .unwrap_or(false)
    }

    fn wait_text(&self, css: &str, part: &str) -> String {
        wait_for(Duration::from_secs(20), || {
            let t = self.text(css);
            t.contains(part).then_some(t)
        })
        .unwrap_or_else(|| panic!("`{css}` never showed {part:?}: {}", self.text(css)))
    }
}

#[test]
fn a_person_approves_and_rejects_from_the_web_ui_and_follows_a_run() {
    let home = Home::new();
    home.simple(
        "gate",
        "max_concurrent = 5",
        "## Steps\n\n1. **Ship** [requires_approval: true]\n   ```bash\n   echo shipped-by-ui\n   ```\n",
    );
    let d = Daemon::start(&home);
    let a = d.execute("gate", &json!({}));
    d.wait_run(&a, |v| v["status"] == "waiting_approval");

    let b = Browser::start();
    b.open(&format!("{}/", d.url));
    b.wait_text("#approvals", &a);
    assert!(
        !b.displayed("#token-form"),
        "no tokens configured: no token asked for"
    );
    b.type_into(&format!("[data-comment=\"{a}\"]"), "looks right");
    b.click(&format!("[data-approve=\"{a}\"]"));
    let run = d.wait_run(&a, |v| v["status"] == "success");
    assert_eq!(run["approvals"][0]["channel"], "ui", "{run}");
    assert_eq!(run["approvals"][0]["comment"], "looks right");

    // A rejection needs a reason: without one the page says so and nothing is sent.
    let r = d.execute("gate", &json!({}));
    d.wait_run(&r, |v| v["status"] == "waiting_approval");
    b.wait_text("#approvals", &r);
    b.click(&format!("[data-reject=\"{r}\"]"));
    b.wait_text("#status", "a rejection needs a reason");
    assert_eq!(d.run(&r)["status"], "waiting_approval");
    b.type_into(&format!("[data-comment=\"{r}\"]"), "not today");
    b.click(&format!("[data-reject=\"{r}\"]"));
    let rejected = d.wait_run(&r, |v| v["status"] == "rejected");
    assert_eq!(rejected["approvals"][0]["comment"], "not today");

    // The SOP list shows its metrics, and the durations chart has the SOP; a run's page
    // shows its steps and output.
    b.wait_text("#sops", "50.0 %");
    b.wait_text("#durations", "gate");
    b.open(&format!("{}/#/run/{a}", d.url));
    b.wait_text("main", "shipped-by-ui");
    b.wait_text("main", &format!("Run {a} of gate"));

    // A run's page open while it waits: its output arrives live, its status follows.
    let followed = d.execute("gate", &json!({}));
    d.wait_run(&followed, |v| v["status"] == "waiting_approval");
    b.open(&format!("{}/#/run/{followed}", d.url));
    b.wait_text("#run", "waits at step 1");
    d.post(&format!("/api/runs/{followed}/approve"), &json!({}))
        .expect("approved");
    b.wait_text("#live", "shipped-by-ui");
    b.wait_text("#run", "success");
}
