//! A headless Chromium driven over W3C WebDriver (Debian's `chromium` and `chromedriver`,
//! installed by `.ci/test-deps`). Just the handful of commands the login-page tests need, spoken
//! over HTTP with awc: no WebDriver crate, no browser download.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::support::{free_port, Process, WAIT};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session; the driver process is killed on drop.
pub struct Browser {
    driver: Process,
    base: String,
    session: String,
    http: awc::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with JavaScript on or off.
    pub async fn start(javascript: bool) -> Self {
        let port = free_port();
        let driver = Process::spawn(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "chromedriver (Debian packages chromium and chromium-driver; .ci/test-deps installs them)",
        );
        let base = format!("http://127.0.0.1:{port}");
        let http = awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish();
        let deadline = Instant::now() + WAIT;
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(mut r) => r
                    .json::<Value>()
                    .await
                    .ok()
                    .is_some_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if !javascript {
            args.push("--blink-settings=scriptEnabled=false".to_owned());
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let mut resp = http
            .post(format!("{base}/session"))
            .send_json(&caps)
            .await
            .expect("new WebDriver session");
        let body: Value = resp.json().limit(1 << 20).await.expect("session json");
        let session = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {body}"))
            .to_owned();
        Self {
            driver,
            base,
            session,
            http,
            _profile: profile,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url),
        };
        let mut resp = match body {
            Some(b) => req.send_json(&b).await,
            None if method == "POST" => req.send_json(&json!({})).await,
            None => req.send().await,
        }
        .expect("webdriver request");
        let v: Value = resp.json().limit(8 << 20).await.expect("webdriver json");
        v["value"].clone()
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url}))).await;
    }

    /// The element matching `css`, waiting (bounded) for it: right after a click the page
    /// may still be navigating, and a lookup then fails transiently.
    async fn element(&self, css: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self
                .call(
                    "POST",
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            if let Some(id) = v[ELEMENT_KEY].as_str() {
                return id.to_owned();
            }
            assert!(Instant::now() < deadline, "no element {css}: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `text` into the field matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call("POST", &format!("/element/{id}/clear"), None)
            .await;
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call("POST", &format!("/element/{id}/click"), None)
            .await;
    }

    /// The page's visible text.
    pub async fn body_text(&self) -> String {
        let id = self.element("body").await;
        // A stale element (the page changed under us) reads as no text; the caller retries.
        self.call("GET", &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the page text contains `needle`; returns the text.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.body_text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "page never showed {needle:?}; it shows: {text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Ends the browser session.
    pub async fn close(mut self) {
        self.call("DELETE", "", None).await;
        self.driver.kill();
    }
}
