//! Client-side mode: per-user StackStorm identity through the login page.

use std::time::Duration;
use stormbridge::backends::registry::REGISTRY;

use serde_json::json;

use crate::{
    browser::Browser,
    support::{captured_logs, with_test_aliases, Options, TestBridge, WAIT},
};

/// StackStorm users of the emulator, besides the bridge's own `st2admin`.
const ALICE_ST2: (&str, &str) = ("alice-st2", "alice-pass-7Qz");
const BOB_KEY: (&str, &str) = ("bobkey0123456789abcdef", "bob-st2");

fn clientside(extra_auth: &str) -> Options {
    let mut o = with_test_aliases();
    o.emulator
        .users
        .push((ALICE_ST2.0.into(), ALICE_ST2.1.into()));
    o.emulator
        .api_keys
        .push((BOB_KEY.0.into(), BOB_KEY.1.into()));
    o.extra_toml = format!(
        "[auth]\nmode = \"clientside\"\npublic_url = \"https://bridge.test\"\n{extra_auth}\n"
    );
    o
}

/// Asks for a link in a DM and returns its id (the host is `public_url`; tests talk to the
/// bridge's real address instead).
async fn start_session(b: &mut TestBridge, word: &str) -> String {
    b.say(&format!("/dm st2session_start {word}")).await;
    let line = b.line_containing("https://bridge.test/login/").await;
    assert!(line.starts_with("[stormbridge] @alice (dm): "), "{line}");
    let id = line
        .split("https://bridge.test/login/")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("link id")
        .to_owned();
    assert!(id.len() >= 20, "link id too short to be unguessable: {id}");
    id
}

/// The login form filled with Alice's StackStorm username and password.
fn alice_password(word: &str) -> [(&str, &str); 4] {
    [
        ("shared_word", word),
        ("method", "password"),
        ("username", ALICE_ST2.0),
        ("password", ALICE_ST2.1),
    ]
}

/// Posts the login form with an API key.
async fn post_api_key(b: &TestBridge, id: &str, word: &str, key: &str) -> (u16, serde_json::Value) {
    post_form(
        b,
        id,
        &[
            ("shared_word", word),
            ("method", "api_key"),
            ("api_key", key),
        ],
    )
    .await
}

async fn post_form(b: &TestBridge, id: &str, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let url = format!("http://{}/login/{id}", b.app.http_addr);
    let mut resp = b
        .http
        .post(url)
        .insert_header(("Accept", "application/json"))
        .send_form(&form)
        .await
        .expect("post");
    let status = resp.status().as_u16();
    let body = resp.json::<serde_json::Value>().await.unwrap_or(json!({}));
    (status, body)
}

/// An HTTP client whose connections come from `source`: any 127.x.y.z reaches the bridge
/// on 127.0.0.1, so a test can be several client addresses.
fn client_from(source: &str) -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().local_address(source.parse().expect("an address")))
        .finish()
}

fn retry_after(headers: &awc::http::header::HeaderMap) -> Option<u64> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// `GET /login/<id>` through `client` with extra headers: status, `Retry-After`, body.
async fn view(
    client: &awc::Client,
    b: &TestBridge,
    id: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<u64>, String) {
    let mut req = client.get(format!("http://{}/login/{id}", b.app.http_addr));
    for h in headers {
        req = req.insert_header(*h);
    }
    let mut resp = req.send().await.expect("get");
    let body = resp.body().await.expect("body");
    (
        resp.status().as_u16(),
        retry_after(resp.headers()),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Posts the form through `client` with extra headers, asking for JSON: status, answer,
/// `Retry-After`.
async fn post_from(
    client: &awc::Client,
    b: &TestBridge,
    id: &str,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (u16, serde_json::Value, Option<u64>) {
    let mut req = client
        .post(format!("http://{}/login/{id}", b.app.http_addr))
        .insert_header(("Accept", "application/json"));
    for h in headers {
        req = req.insert_header(*h);
    }
    let mut resp = req.send_form(&form).await.expect("post");
    let answer = resp.json::<serde_json::Value>().await.unwrap_or(json!({}));
    (resp.status().as_u16(), answer, retry_after(resp.headers()))
}

#[actix_rt::test]
async fn each_credential_type_links_the_user_and_commands_run_as_them() {
    let mut b = TestBridge::start_with(clientside("")).await;
    b.wait_ready(200).await;

    // No session yet: refused with the hint, nothing reaches st2; help still works.
    b.say("!st2 run date").await;
    let reply = b.line_containing("no StackStorm session").await;
    assert!(reply.contains("session_start"), "{reply}");
    b.say("!st2help").await;
    b.line_containing("[core]").await;
    assert!(b.emulator.executions().is_empty());

    // 1. Username and password.
    let id = start_session(&mut b, "sesame").await;
    let (status, body) = post_form(&b, &id, &alice_password("sesame")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    let confirm = b.line_containing("now linked").await;
    assert!(
        confirm.starts_with("[stormbridge] @alice (dm): ") && confirm.contains(ALICE_ST2.0),
        "{confirm}"
    );
    b.say("!st2 run date").await;
    b.line_containing("Started").await;
    let e = b.emulator.executions().pop().expect("execution");
    assert_eq!(e.st2_user, ALICE_ST2.0, "ran as the user, not the bridge");

    // 2. An API key.
    let id = start_session(&mut b, "second word").await;
    let (status, body) = post_api_key(&b, &id, "second word", BOB_KEY.0).await;
    assert_eq!(status, 200, "{body}");
    b.line_containing("now linked").await;
    b.say("!st2 run uptime").await;
    b.line_containing("Started `run uptime`").await;
    let e = b.emulator.executions().pop().expect("execution");
    assert_eq!(e.st2_user, BOB_KEY.1);
    assert_eq!(format!("{:?}", e.credential_kind), "ApiKey");

    // 3. A user token (validated with st2, then used as the user's credential).
    let token = st2_token(&b, ALICE_ST2.0, ALICE_ST2.1).await;
    let id = start_session(&mut b, "third").await;
    let (status, body) = post_form(
        &b,
        &id,
        &[
            ("shared_word", "third"),
            ("method", "token"),
            ("user_token", &token),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    b.line_containing("now linked").await;
    b.say("!st2 run hostname").await;
    b.line_containing("Started `run hostname`").await;
    let e = b.emulator.executions().pop().expect("execution");
    assert_eq!(e.st2_user, ALICE_ST2.0);
    assert_eq!(format!("{:?}", e.credential_kind), "Token");

    // session_end drops the credential.
    b.say("/dm st2session_end").await;
    b.line_containing("session has ended").await;
    b.say("!st2 run date").await;
    b.line_containing("no StackStorm session").await;

    for secret in [ALICE_ST2.1, BOB_KEY.0, token.as_str(), id.as_str()] {
        assert!(
            !captured_logs().contains(secret),
            "a secret reached the logs"
        );
    }
}

async fn st2_token(b: &TestBridge, user: &str, password: &str) -> String {
    b.emulator
        .issue_token(user, password)
        .expect("the emulator knows this user")
}

#[actix_rt::test]
async fn links_are_single_use_and_failures_never_log_anyone_out() {
    let mut b = TestBridge::start_with(clientside("")).await;
    b.wait_ready(200).await;
    let id = start_session(&mut b, "sesame").await;
    let good = [
        ("shared_word", "sesame"),
        ("method", "password"),
        ("username", ALICE_ST2.0),
        ("password", ALICE_ST2.1),
    ];

    // A wrong shared word counts, but keeps the link usable.
    let (status, body) = post_form(
        &b,
        &id,
        &[
            ("shared_word", "nope"),
            ("method", "password"),
            ("username", "x"),
            ("password", "y"),
        ],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap_or("").contains("attempt"),
        "{body}"
    );
    // Wrong StackStorm credentials: refused, link still usable.
    let (status, body) = post_form(
        &b,
        &id,
        &[
            ("shared_word", "sesame"),
            ("method", "password"),
            ("username", ALICE_ST2.0),
            ("password", "wrong"),
        ],
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = post_form(&b, &id, &good).await;
    assert_eq!(status, 200);
    b.line_containing("now linked").await;

    // Replay: refused, and the session that exists stays.
    let (status, body) = post_form(&b, &id, &good).await;
    assert_eq!(status, 410, "{body}");
    assert!(
        body["title"]
            .as_str()
            .unwrap_or("")
            .contains("already used"),
        "{body}"
    );
    b.say("!st2 run date").await;
    b.line_containing("Started").await;

    // A new pending link does not weaken the existing session either.
    let id2 = start_session(&mut b, "other").await;
    let (status, _) = post_form(
        &b,
        &id2,
        &[
            ("shared_word", "bad"),
            ("method", "password"),
            ("username", "x"),
            ("password", "y"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    b.say("!st2 run date").await;
    b.line_containing("Started").await;
    assert_eq!(b.emulator.executions().len(), 2);
}

#[actix_rt::test]
async fn expired_links_oversized_bodies_and_rate_limits_are_refused() {
    let mut b =
        TestBridge::start_with(clientside("link_ttl = 1\nlogin_attempts_per_address = 4\n")).await;
    b.wait_ready(200).await;
    let id = start_session(&mut b, "w").await;
    let url = format!("http://{}/login/{id}", b.app.http_addr);

    let big = "x".repeat(64 * 1024);
    let resp = b
        .http
        .post(&url)
        .send_form(&[("shared_word", big.as_str())])
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 413);

    // The page itself carries the security headers.
    let resp = b.http.get(&url).send().await.expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    let h = resp.headers();
    let csp = h
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(
        h.get("x-frame-options").and_then(|v| v.to_str().ok()),
        Some("DENY")
    );
    // No referrer to any other origin; the page's own posts carry their real Origin.
    assert_eq!(
        h.get("referrer-policy").and_then(|v| v.to_str().ok()),
        Some("same-origin")
    );
    assert_eq!(
        h.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );

    assert!(
        eventually!(Duration::from_secs(5), {
            let (status, _) = post_api_key(&b, &id, "w", BOB_KEY.0).await;
            status == 410
        }),
        "an expired link is refused"
    );
    let (status, body) = post_api_key(&b, &id, "w", BOB_KEY.0).await;
    assert!(status == 410 || status == 429, "{status} {body}");

    // Per-address limit: the next attempts are refused outright, with when to retry.
    let mut retry_after = None;
    for _ in 0..6 {
        let (status, _, retry) = post_from(
            &b.http,
            &b,
            "unknown-link-id-000000000",
            &[
                ("shared_word", "w"),
                ("method", "api_key"),
                ("api_key", "k"),
            ],
            &[],
        )
        .await;
        if status == 429 {
            retry_after = retry;
        }
    }
    let retry_after = retry_after.expect("the per-address attempt limit never triggered");
    assert!((1..=600).contains(&retry_after), "{retry_after}");
}

#[actix_rt::test]
async fn session_commands_are_dm_only_and_admin_commands_are_for_admins() {
    let mut b = TestBridge::start_with(clientside("")).await;
    b.wait_ready(200).await;
    b.say("!st2session_start sesame").await;
    let reply = b.line_containing("direct message").await;
    assert!(
        reply.starts_with("[stormbridge] #ops: ") && !reply.contains("/login/"),
        "{reply}"
    );
    let id = start_session(&mut b, "sesame").await;
    b.say("!st2session_list").await;
    let list = b.line_containing("session(s)").await;
    assert!(
        list.contains("console:alice") && !list.contains(&id),
        "{list}"
    );
    let session_id = list
        .split("id ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("session id")
        .to_owned();
    b.say(&format!("!st2session_cancel {session_id}")).await;
    b.line_containing("cancelled").await;
    let (status, _) = post_api_key(&b, &id, "sesame", BOB_KEY.0).await;
    assert!(
        status == 404 || status == 410,
        "a cancelled session's link is dead: {status}"
    );
}

#[actix_rt::test]
async fn in_a_real_browser_the_form_links_the_account_and_shows_clear_errors() {
    let mut b = TestBridge::start_with(clientside("")).await;
    b.wait_ready(200).await;
    for javascript in [true, false] {
        let browser = Browser::start(javascript).await;
        // Wrong password: the page says so and the link still works.
        let id = start_session(&mut b, "sesame").await;
        let url = format!("http://{}/login/{id}", b.app.http_addr);
        browser.goto(&url).await;
        browser.wait_for_text("Link your StackStorm account").await;
        browser.type_into("#shared_word", "sesame").await;
        browser.type_into("#username", ALICE_ST2.0).await;
        browser.type_into("#password", "not-the-password").await;
        browser.click("#submit").await;
        browser.wait_for_text("did not accept").await;
        if !javascript {
            browser.goto(&url).await;
        }
        browser.type_into("#shared_word", "sesame").await;
        browser.type_into("#username", ALICE_ST2.0).await;
        browser.type_into("#password", ALICE_ST2.1).await;
        browser.click("#submit").await;
        let text = browser.wait_for_text("Your account is linked").await;
        assert!(text.contains(ALICE_ST2.0), "{text}");
        b.line_containing("now linked").await;
        // The used link.
        browser.goto(&url).await;
        browser.wait_for_text("already used").await;
        browser.close().await;
    }
    b.say("!st2 run date").await;
    b.line_containing("Started").await;
    assert_eq!(
        b.emulator.executions().pop().expect("execution").st2_user,
        ALICE_ST2.0
    );
    assert!(!captured_logs().contains(ALICE_ST2.1));
    let _ = WAIT;
}

fn sqlite_options(dir: &std::path::Path, key_hex: &str) -> Options {
    let key_file = dir.join(format!("key-{}", &key_hex[..4]));
    std::fs::write(&key_file, format!("{key_hex}\n")).expect("key file");
    let mut o = clientside("");
    o.extra_toml.push_str(&format!(
        "[store]\nbackend = \"sqlite\"\npath = \"{}\"\nkey_file = \"{}\"\n",
        dir.join("sessions.db").display(),
        key_file.display()
    ));
    o
}

#[actix_rt::test]
async fn with_sqlite_sessions_survive_a_restart_and_a_wrong_key_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_a = "0f".repeat(32);
    let mut b = TestBridge::start_with(sqlite_options(dir.path(), &key_a)).await;
    b.wait_ready(200).await;
    let id = start_session(&mut b, "sesame").await;
    let (status, _) = post_api_key(&b, &id, "sesame", BOB_KEY.0).await;
    assert_eq!(status, 200);
    b.line_containing("now linked").await;
    let raw = std::fs::read(dir.path().join("sessions.db")).expect("db file");
    let raw = String::from_utf8_lossy(&raw);
    assert!(
        !raw.contains(BOB_KEY.0),
        "the API key is stored in the clear"
    );

    // The bridge restarts (same StackStorm, same file): the session is still there.
    b.app.stop().await;
    let TestBridge { emulator, .. } = b;
    let mut b = TestBridge::start_with_emulator(emulator, sqlite_options(dir.path(), &key_a)).await;
    b.wait_ready(200).await;
    b.say("!st2 run date").await;
    b.line_containing("Started").await;
    assert_eq!(
        b.emulator.executions().pop().expect("execution").st2_user,
        BOB_KEY.1
    );

    // Another key: the bridge refuses to start and says why.
    let other = sqlite_options(dir.path(), &"a1".repeat(32));
    let settings = crate::support::settings_for(&b.emulator, &other);
    let err = stormbridge::app::start(settings, stormbridge::app::AppOptions::default())
        .await
        .err()
        .expect("a wrong key must stop the start");
    assert!(err.to_string().contains("does not match"), "{err}");
    assert!(
        !err.to_string().contains(&"a1".repeat(32)),
        "the key is in the error: {err}"
    );
}

#[test]
fn a_missing_or_broken_store_key_is_a_configuration_error() {
    let base = "[st2]\napi_url = \"http://h/api/v1\"\n[st2.credentials]\napi_key = \"k\"\n[[chat]]\nname = \"c\"\nbackend = \"console\"\n";
    let e = stormbridge::config::load_from_str(
        &format!("{base}[store]\nbackend = \"sqlite\"\n"),
        &REGISTRY,
    )
    .unwrap_err();
    assert!(e.to_string().contains("store.key_file"), "{e}");
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("key");
    std::fs::write(&bad, "not a key").expect("write");
    let e = stormbridge::config::load_from_str(
        &format!(
            "{base}[store]\nbackend = \"sqlite\"\nkey_file = \"{}\"\n",
            bad.display()
        ),
        &REGISTRY,
    )
    .unwrap_err();
    assert!(e.to_string().contains("store.key_file"), "{e}");
    assert!(!e.to_string().contains("not a key"), "{e}");
}

#[actix_rt::test]
async fn users_are_warned_before_their_token_expires_and_told_when_it_has() {
    let mut b = TestBridge::start_with(clientside("user_token_ttl = 6\nrenew_warning = 4\n")).await;
    b.wait_ready(200).await;
    let id = start_session(&mut b, "sesame").await;
    let (status, _) = post_form(&b, &id, &alice_password("sesame")).await;
    assert_eq!(status, 200);
    b.line_containing("now linked").await;
    let warning = b.line_containing("session ends in").await;
    assert!(
        warning.starts_with("[stormbridge] @alice (dm): ") && warning.contains("session_start"),
        "{warning}"
    );
    // Keep asking until the answer to a command says the session is over (before it, the
    // command still runs and is acknowledged; results of earlier commands are skipped). A
    // command sent in the instant StackStorm expires the token, before the bridge's own
    // clock does, is refused by StackStorm instead: "no longer accepts your session".
    let over = |line: &str| {
        line.contains("session has expired") || line.contains("no longer accepts your session")
    };
    assert!(eventually!(Duration::from_secs(20), {
        b.say("!st2 run date").await;
        let mut answer = String::new();
        while let Some(line) = b.next_line_within(Duration::from_secs(5)).await {
            if line.contains("Started") || over(&line) {
                answer = line;
                break;
            }
        }
        over(&answer)
    }));
    // Once it is over, commands are answered here and never reach st2.
    let before = b.emulator.executions().len();
    b.say("!st2 run date").await;
    let reply = b.line_containing("session_start").await;
    assert!(
        reply.contains("session has expired") || reply.contains("no StackStorm session"),
        "{reply}"
    );
    assert_eq!(b.emulator.executions().len(), before);
}

#[actix_rt::test]
async fn a_token_ttl_above_stackstorms_maximum_is_explained() {
    let mut opts = clientside("");
    opts.emulator.token_ttl_max = 3600;
    let mut b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    let id = start_session(&mut b, "sesame").await;
    let (status, body) = post_form(&b, &id, &alice_password("sesame")).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("user_token_ttl"),
        "{body}"
    );
}

#[actix_rt::test]
async fn cross_origin_posts_are_refused_without_touching_the_link() {
    let mut b = TestBridge::start_with(clientside("")).await;
    b.wait_ready(200).await;
    let id = start_session(&mut b, "sesame").await;
    let own = format!("http://{}", b.app.http_addr);
    let form = alice_password("sesame");

    // Another site's page, however it dresses the request: 403, the page's words only.
    for headers in [
        vec![("Origin", "https://evil.example")],
        vec![("Origin", "https://bridge.test.evil.example")],
        vec![("Origin", "null")],
        vec![("Referer", "https://evil.example/login.html")],
        vec![("Origin", own.as_str()), ("Sec-Fetch-Site", "cross-site")],
        vec![("Origin", "http://bridge.test")],
    ] {
        let (status, answer, _) = post_from(&b.http, &b, &id, &form, &headers).await;
        assert_eq!(status, 403, "{headers:?}: {answer}");
        assert_eq!(answer["title"], "Request refused", "{answer}");
        let text = answer.to_string();
        assert!(
            !text.contains("evil") && !text.to_lowercase().contains("origin"),
            "the refusal names what was checked: {text}"
        );
    }
    // A plain form post (no JavaScript) gets the page, with its security headers.
    let mut resp = b
        .http
        .post(format!("{own}/login/{id}"))
        .insert_header(("Origin", "https://evil.example"))
        .send_form(&form)
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 403);
    assert!(resp.headers().contains_key("content-security-policy"));
    let page = String::from_utf8_lossy(&resp.body().await.expect("body")).into_owned();
    assert!(
        page.contains("<!doctype html>") && page.contains("Request refused"),
        "{page}"
    );
    assert!(
        captured_logs().contains("login form post from another origin refused")
            || std::env::var_os("TEST_LOG").is_some()
    );

    // None of that counted against the link: the public origin, then the address the page
    // was opened at, are the bridge's own.
    let (status, answer, _) = post_from(
        &b.http,
        &b,
        &id,
        &[
            ("shared_word", "wrong"),
            ("method", "password"),
            ("username", "x"),
            ("password", "y"),
        ],
        &[
            ("Origin", "https://bridge.test"),
            ("Sec-Fetch-Site", "same-origin"),
        ],
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or("")
            .contains("4 attempt(s) left"),
        "the refused posts used up attempts: {answer}"
    );
    let referer = format!("{own}/login/{id}");
    let (status, answer, _) =
        post_from(&b.http, &b, &id, &form, &[("Referer", referer.as_str())]).await;
    assert_eq!(status, 200, "{answer}");
    b.line_containing("now linked").await;
}

/// Serves `html` at `/` on a loopback port; returns the port and the server's handle.
async fn serve_page(html: String) -> (u16, actix_web::dev::ServerHandle) {
    let server = actix_web::HttpServer::new(move || {
        let html = html.clone();
        actix_web::App::new().route(
            "/",
            actix_web::web::get().to(move || {
                let html = html.clone();
                async move {
                    actix_web::HttpResponse::Ok()
                        .content_type("text/html; charset=utf-8")
                        .body(html)
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    (port, handle)
}

#[actix_rt::test]
async fn in_a_real_browser_another_sites_form_is_refused() {
    let mut b = TestBridge::start_with(clientside("")).await;
    b.wait_ready(200).await;
    let id = start_session(&mut b, "sesame").await;
    let url = format!("http://{}/login/{id}", b.app.http_addr);
    // Another site whose page posts the login form (hidden fields, one button): even with
    // the right word and credentials, the bridge must not take it.
    let (port, evil) = serve_page(format!(
        r#"<!doctype html><title>prize</title><form method="post" action="{url}">
<input type="hidden" name="shared_word" value="sesame">
<input type="hidden" name="method" value="password">
<input type="hidden" name="username" value="{user}">
<input type="hidden" name="password" value="{password}">
<button id="submit" type="submit">Claim your prize</button></form>"#,
        user = ALICE_ST2.0,
        password = ALICE_ST2.1,
    ))
    .await;
    let browser = Browser::start(false).await;
    browser.goto(&format!("http://localhost:{port}/")).await;
    browser.click("#submit").await;
    let text = browser.wait_for_text("Request refused").await;
    assert!(!text.contains("linked"), "{text}");
    // The link is untouched and works from its own page.
    browser.goto(&url).await;
    browser.type_into("#shared_word", "sesame").await;
    browser.type_into("#username", ALICE_ST2.0).await;
    browser.type_into("#password", ALICE_ST2.1).await;
    browser.click("#submit").await;
    browser.wait_for_text("Your account is linked").await;
    b.line_containing("now linked").await;
    browser.close().await;
    evil.stop(false).await;
}

#[actix_rt::test]
async fn login_page_views_are_limited_per_address_and_say_when_to_retry() {
    let mut b = TestBridge::start_with(clientside("login_attempts_per_address = 6\n")).await;
    b.wait_ready(200).await;
    let id = start_session(&mut b, "sesame").await;
    // A user opening their link a few times is fine.
    for _ in 0..3 {
        let (status, _, page) = view(&b.http, &b, &id, &[]).await;
        assert_eq!(status, 200, "{page}");
    }
    // Guessing ids from one address: soon refused, with when to come back; the real link too.
    let mut refused = None;
    for i in 0..10 {
        let (status, retry, page) = view(&b.http, &b, &format!("guess-{i:020}"), &[]).await;
        match status {
            404 => assert!(refused.is_none(), "a guess answered after the limit"),
            429 => {
                assert!(page.contains("Too many attempts"), "{page}");
                refused = Some(retry.expect("429 without Retry-After"));
            }
            other => panic!("unexpected {other}: {page}"),
        }
    }
    let retry = refused.expect("guessing link ids was never limited");
    assert!((1..=600).contains(&retry), "Retry-After {retry}");
    let (status, _, _) = view(&b.http, &b, &id, &[]).await;
    assert_eq!(status, 429, "the limit holds for every link");

    // Another address is not locked out.
    let neighbour = client_from("127.0.0.2");
    let (status, _, page) = view(&neighbour, &b, &id, &[]).await;
    assert_eq!(status, 200, "{page}");
    // Views and posts are counted apart: the user can still sign in.
    let (status, answer, _) = post_from(&b.http, &b, &id, &alice_password("sesame"), &[]).await;
    assert_eq!(status, 200, "{answer}");
    b.line_containing("now linked").await;
}

#[actix_rt::test]
async fn behind_a_trusted_proxy_forwarded_clients_are_limited_separately_and_nobody_else_is_believed(
) {
    let mut opts = clientside("login_attempts_per_address = 3\n");
    opts.http_toml =
        "[http]\nlisten = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n"
            .into();
    let mut b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    let id = start_session(&mut b, "sesame").await;
    let proxy = &b.http; // connects from 127.0.0.1, a trusted proxy
    let unknown = "unknown-link-id-000000000";
    let form = [
        ("shared_word", "w"),
        ("method", "api_key"),
        ("api_key", "k"),
    ];
    let from = |xff: &'static str| [("X-Forwarded-For", xff)];

    // User A (behind the proxy) uses up their attempts.
    for _ in 0..3 {
        let (status, _, _) = post_from(proxy, &b, unknown, &form, &from("203.0.113.7")).await;
        assert_eq!(status, 404);
    }
    let (status, _, retry) = post_from(proxy, &b, unknown, &form, &from("203.0.113.7")).await;
    assert_eq!(status, 429);
    assert!(retry.is_some());
    // A spoofed left-most entry does not make A someone else; nor does an inner proxy hop.
    for xff in ["198.51.100.1, 203.0.113.7", "203.0.113.7, 10.1.2.3"] {
        let (status, _, _) = post_from(proxy, &b, unknown, &form, &from(xff)).await;
        assert_eq!(status, 429, "{xff}");
    }
    let (status, _, _) = view(proxy, &b, &id, &from("198.51.100.1, 203.0.113.7")).await;
    assert_eq!(status, 200, "page views are counted apart from posts");
    // User B behind the same proxy is not locked out by A, and signs in.
    let (status, answer, _) = post_from(
        proxy,
        &b,
        &id,
        &alice_password("sesame"),
        &from("203.0.113.8"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    b.line_containing("now linked").await;
    assert!(
        captured_logs().contains("203.0.113.7") || std::env::var_os("TEST_LOG").is_some(),
        "the limited client's address is logged, not the proxy's"
    );

    // From an address that is not a trusted proxy, X-Forwarded-For is ignored: two "users"
    // claiming different addresses share the peer's limit.
    let untrusted = client_from("127.0.0.2");
    for xff in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        let (status, _, _) = post_from(&untrusted, &b, unknown, &form, &from(xff)).await;
        assert_eq!(status, 404, "{xff}");
    }
    let (status, _, _) = post_from(&untrusted, &b, unknown, &form, &from("192.0.2.4")).await;
    assert_eq!(status, 429, "a forged X-Forwarded-For escaped the limit");
}

#[actix_rt::test]
async fn a_slow_request_body_is_cut_off_while_others_are_served() {
    use stormbridge::http::server::{BODY_TIMEOUT, HEAD_TIMEOUT};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut b = TestBridge::start_with(clientside("")).await;
    b.wait_ready(200).await;
    let id = start_session(&mut b, "sesame").await;
    let addr = b.app.http_addr;

    /// Everything the server sends until it closes, or until `limit`.
    async fn answer(stream: &mut tokio::net::TcpStream, limit: Duration) -> (String, bool) {
        let mut got = Vec::new();
        let read = tokio::time::timeout(limit, stream.read_to_end(&mut got)).await;
        (String::from_utf8_lossy(&got).into_owned(), read.is_ok())
    }

    // Headers, then a few bytes of the 100 promised, then nothing.
    let started = std::time::Instant::now();
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    slow.write_all(
        format!(
            "POST /login/{id} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nshared_word=ses"
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    // A head that never ends.
    let mut slow_head = tokio::net::TcpStream::connect(addr).await.expect("connect");
    slow_head
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");

    // Meanwhile the server answers everyone else.
    for _ in 0..3 {
        let (status, _) = tokio::time::timeout(Duration::from_secs(2), b.get("/health"))
            .await
            .expect("/health answered while a body dribbles");
        assert_eq!(status, 200);
    }

    let (text, closed) = answer(&mut slow_head, HEAD_TIMEOUT + Duration::from_secs(5)).await;
    assert!(closed, "an unfinished head kept its connection: {text:?}");
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );

    let (text, closed) = answer(&mut slow, BODY_TIMEOUT + Duration::from_secs(5)).await;
    assert!(
        text.starts_with("HTTP/1.1 408") && text.contains("took too long"),
        "a dribbled body was not cut off: {text:?}"
    );
    assert!(
        closed,
        "the connection stayed open after the timeout: {text:?}"
    );
    assert!(started.elapsed() < BODY_TIMEOUT + Duration::from_secs(8));

    // The link was not touched.
    let (status, answer, _) = post_from(&b.http, &b, &id, &alice_password("sesame"), &[]).await;
    assert_eq!(status, 200, "{answer}");
}
