//! Tests of the emulator over real loopback HTTP (awc), one emulator per test.

use std::pin::Pin;
use std::time::{Duration, Instant};

use awc::Client;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use serde_json::{json, Value};

use super::*;

const WAIT: Duration = Duration::from_secs(5);

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// Start an emulator for the awc tests: st2 reached directly ([`Framing::Direct`]:
/// awc cannot read nginx's close-delimited bodies, actix/actix-web#2287) and a
/// quiet bus (these tests count events).
async fn start(cfg: EmulatorConfig) -> Emulator {
    start_as_configured(EmulatorConfig {
        framing: Framing::Direct,
        background_interval: None,
        ..cfg
    })
    .await
}

/// Start an emulator exactly as configured.
async fn start_as_configured(cfg: EmulatorConfig) -> Emulator {
    match Emulator::start(cfg).await {
        Ok(e) => e,
        Err(e) => panic!("emulator did not start: {e}"),
    }
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(10)).finish()
}

/// Wait (bounded) until `cond` holds.
async fn wait_until<F: FnMut() -> bool>(what: &str, mut cond: F) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Resp {
    status: u16,
    headers: actix_web::http::header::HeaderMap,
    body: Value,
}

async fn finish<S>(r: Result<awc::ClientResponse<S>, awc::error::SendRequestError>) -> Resp
where
    S: Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
{
    let mut r = match r {
        Ok(r) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let bytes = match r.body().limit(8 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => panic!("body failed: {e}"),
    };
    Resp {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

async fn login(em: &Emulator) -> String {
    let r = finish(
        client()
            .post(format!("{}/tokens", em.auth_url()))
            .insert_header(("Authorization", basic("st2admin", "Ch@ngeMe")))
            .send()
            .await,
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["token"].as_str().unwrap_or_default().to_string()
}

async fn get(url: String, token: &str) -> Resp {
    finish(
        client()
            .get(url)
            .insert_header(("X-Auth-Token", token))
            .send()
            .await,
    )
    .await
}

async fn del(url: String, token: &str) -> Resp {
    finish(
        client()
            .delete(url)
            .insert_header(("X-Auth-Token", token))
            .send()
            .await,
    )
    .await
}

async fn post(url: String, token: &str, body: &Value) -> Resp {
    finish(
        client()
            .post(url)
            .insert_header(("X-Auth-Token", token))
            .send_json(body)
            .await,
    )
    .await
}

fn exec_body(name: &str, format: &str, command: &str) -> Value {
    json!({"name": name, "format": format, "command": command, "user": "alice",
           "source_channel": "C123", "notification_route": "stormbridge",
           "source_context": {"id": "1700000000.000100", "room": "C123"}})
}

type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, awc::error::PayloadError>>>>;

enum Read {
    Data(Bytes),
    Eof,
    Timeout,
}

/// A reader of st2's event stream.
struct Sse {
    body: ByteStream,
    buf: String,
}

impl Sse {
    async fn connect(em: &Emulator, query: &str, token: &str) -> Sse {
        let url = format!("{}/stream{query}", em.stream_url());
        let resp = client()
            .get(url)
            .insert_header(("X-Auth-Token", token))
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => panic!("stream request failed: {e}"),
        };
        assert_eq!(resp.status().as_u16(), 200);
        let h = resp.headers();
        assert_eq!(
            h.get("content-type").and_then(|v| v.to_str().ok()),
            Some("text/event-stream; charset=UTF-8")
        );
        assert_eq!(
            h.get("cache-control").and_then(|v| v.to_str().ok()),
            Some("no-cache")
        );
        assert_eq!(
            h.get("x-accel-buffering").and_then(|v| v.to_str().ok()),
            Some("no")
        );
        Sse {
            body: Box::pin(resp),
            buf: String::new(),
        }
    }

    async fn read(&mut self, t: Duration) -> Read {
        match tokio::time::timeout(t, self.body.next()).await {
            Err(_) => Read::Timeout,
            Ok(None | Some(Err(_))) => Read::Eof,
            Ok(Some(Ok(b))) => Read::Data(b),
        }
    }

    /// The next event (heartbeats skipped), or `None` on timeout or end.
    async fn next_event(&mut self, t: Duration) -> Option<(String, String)> {
        let deadline = Instant::now() + t;
        loop {
            let trimmed = self.buf.trim_start_matches('\n').len();
            self.buf.drain(..self.buf.len() - trimmed);
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = v.to_string();
                    }
                }
                return Some((name, data));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match self.read(left).await {
                Read::Data(b) => self.buf.push_str(&String::from_utf8_lossy(&b)),
                Read::Eof | Read::Timeout => return None,
            }
        }
    }

    /// The next event whose name is `name` (others skipped).
    async fn expect_event(&mut self, name: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left).await {
                Some((n, data)) if n == name => {
                    return serde_json::from_str(&data).unwrap_or(Value::Null)
                }
                Some(_) => {}
                None => panic!("no {name} event"),
            }
        }
    }

    /// Wait for the stream to end.
    async fn expect_eof(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read(left).await {
                Read::Eof => return,
                Read::Data(_) => {}
                Read::Timeout => panic!("stream did not end"),
            }
        }
    }
}

// ----- auth --------------------------------------------------------------------------

#[actix_web::test]
async fn token_success_shape_and_login_count() {
    let em = start(EmulatorConfig::default()).await;
    let r = finish(
        client()
            .post(format!("{}/tokens", em.auth_url()))
            .insert_header(("Authorization", basic("st2admin", "Ch@ngeMe")))
            .send_json(&json!({"ttl": 60}))
            .await,
    )
    .await;
    assert_eq!(r.status, 201);
    let token = r.body["token"].as_str().unwrap_or_default();
    assert_eq!(token.len(), 32);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(r.body["user"], "st2admin");
    assert_eq!(r.body["metadata"], json!({}));
    assert_eq!(r.body["id"].as_str().map(str::len), Some(24));
    let expiry = r.body["expiry"].as_str().unwrap_or_default();
    let parsed = chrono::DateTime::parse_from_rfc3339(expiry);
    assert!(
        parsed.is_ok() && expiry.ends_with('Z') && expiry.len() == 27,
        "{expiry}"
    );
    if let Ok(p) = parsed {
        let left = p.with_timezone(&chrono::Utc) - chrono::Utc::now();
        assert!(left.num_seconds() > 50 && left.num_seconds() <= 60);
    }
    assert_eq!(
        r.headers.get("x-api-url").and_then(|v| v.to_str().ok()),
        Some(format!("{}/api", em.base_url()).as_str())
    );
    assert!(r.headers.contains_key("x-request-id"));
    assert_eq!(em.login_count(), 1);
    login(&em).await;
    assert_eq!(em.login_count(), 2);
}

#[actix_web::test]
async fn token_failures() {
    let em = start(EmulatorConfig::default()).await;
    let url = format!("{}/tokens", em.auth_url());
    let cases: Vec<(Option<String>, Option<Value>, u16, &str)> = vec![
        (None, None, 401, "Invalid or missing credentials"),
        (
            Some(basic("st2admin", "wrong")),
            None,
            401,
            "Invalid or missing credentials",
        ),
        (
            Some(basic("nobody", "Ch@ngeMe")),
            None,
            401,
            "Invalid or missing credentials",
        ),
        (
            Some("Basic !!!notbase64".into()),
            None,
            401,
            "Invalid or missing credentials",
        ),
        (
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("nocolon")
            )),
            None,
            401,
            "Invalid or missing credentials",
        ),
        (
            Some("Bearer abc".into()),
            None,
            401,
            "Invalid or missing credentials",
        ),
        (
            Some(basic("st2admin", "Ch@ngeMe")),
            Some(json!({"ttl": 0})),
            400,
            "0 is less than the minimum of 1",
        ),
        (
            Some(basic("st2admin", "Ch@ngeMe")),
            Some(json!({"ttl": -1})),
            400,
            "-1 is less than the minimum of 1",
        ),
        (
            Some(basic("st2admin", "Ch@ngeMe")),
            Some(json!({"ttl": 86401})),
            400,
            "TTL specified 86401 is greater than max allowed 86400.",
        ),
        (
            Some(basic("st2admin", "Ch@ngeMe")),
            Some(json!({"ttl": "x"})),
            400,
            "'x' is not of type 'integer', 'null'",
        ),
        // Body validation comes before the credential check, the TTL cap after it.
        (
            None,
            Some(json!({"ttl": 0})),
            400,
            "0 is less than the minimum of 1",
        ),
        (
            None,
            Some(json!({"ttl": 86401})),
            401,
            "Invalid or missing credentials",
        ),
    ];
    for (auth, body, status, msg) in cases {
        let mut req = client().post(&url);
        if let Some(a) = &auth {
            req = req.insert_header(("Authorization", a.as_str()));
        }
        let r = match &body {
            Some(b) => finish(req.send_json(b).await).await,
            None => finish(req.send().await).await,
        };
        assert_eq!(r.status, status, "{auth:?} {body:?}");
        assert_eq!(r.body["faultstring"], msg, "{auth:?} {body:?}");
    }
    let r = finish(
        client()
            .post(&url)
            .insert_header(("Authorization", basic("st2admin", "Ch@ngeMe")))
            .insert_header(("Content-Type", "application/json"))
            .send_body("{not json")
            .await,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body["faultstring"]
        .as_str()
        .unwrap_or_default()
        .starts_with("Failed to parse request body: "));
    assert_eq!(em.login_count(), 0);
}

#[actix_web::test]
async fn validate_token_endpoint() {
    let em = start(EmulatorConfig {
        api_keys: vec![("k3y".into(), "bot".into())],
        ..EmulatorConfig::default()
    })
    .await;
    let url = format!("{}/tokens/validate", em.auth_url());
    let token = login(&em).await;
    let r = finish(
        client()
            .post(&url)
            .send_json(&json!({"token": token}))
            .await,
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body["faultstring"],
        "Unauthorized - One of Token or API key required."
    );
    let r = post(url.clone(), &token, &json!({"token": token})).await;
    assert_eq!((r.status, &r.body), (200, &json!({"valid": true})));
    let r = post(
        url.clone(),
        &token,
        &json!({"token": "0123456789abcdef0123456789abcdef"}),
    )
    .await;
    assert_eq!(r.body, json!({"valid": false}));
    let r = post(url.clone(), &token, &json!({})).await;
    assert_eq!(
        (r.status, r.body["faultstring"].as_str()),
        (400, Some("Token is not provided."))
    );
    em.revoke_all_tokens();
    let r = post(url.clone(), &token, &json!({"token": token})).await;
    assert_eq!(
        (r.status, r.body["faultstring"].as_str()),
        (401, Some("Unauthorized - Token has expired."))
    );
    let r = finish(
        client()
            .post(&url)
            .insert_header(("St2-Api-Key", "k3y"))
            .send_json(&json!({"token": token}))
            .await,
    )
    .await;
    assert_eq!((r.status, &r.body), (200, &json!({"valid": false})));
}

#[actix_web::test]
async fn credential_locations_and_401_texts() {
    let em = start(EmulatorConfig {
        api_keys: vec![("k3y".into(), "botuser".into())],
        ..EmulatorConfig::default()
    })
    .await;
    let token = login(&em).await;
    let list = format!("{}/actionalias", em.api_url());
    let ok = |r: &Resp| r.status == 200 && r.body.is_array();
    let r = finish(
        client()
            .get(&list)
            .insert_header(("X-Auth-Token", token.as_str()))
            .send()
            .await,
    )
    .await;
    assert!(ok(&r));
    assert!(r
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("auth-token=") && c.contains("HttpOnly")));
    let r = finish(
        client()
            .get(&list)
            .insert_header(("St2-Api-Key", "k3y"))
            .send()
            .await,
    )
    .await;
    assert!(ok(&r));
    let r = finish(
        client()
            .get(format!("{list}?x-auth-token={token}"))
            .send()
            .await,
    )
    .await;
    assert!(ok(&r));
    let r = finish(client().get(format!("{list}?st2-api-key=k3y")).send().await).await;
    assert!(ok(&r));
    let r = finish(
        client()
            .get(&list)
            .insert_header(("Cookie", format!("auth-token={token}")))
            .send()
            .await,
    )
    .await;
    assert!(ok(&r));

    let r = finish(client().get(&list).send().await).await;
    assert_eq!(
        (r.status, r.body["faultstring"].as_str()),
        (
            401,
            Some("Unauthorized - One of Token or API key required.")
        )
    );
    let r = finish(
        client()
            .get(&list)
            .insert_header(("X-Auth-Token", "nope"))
            .send()
            .await,
    )
    .await;
    assert_eq!(
        (r.status, r.body["faultstring"].as_str()),
        (401, Some("Unauthorized"))
    );
    let r = finish(
        client()
            .get(&list)
            .insert_header(("St2-Api-Key", "nope"))
            .send()
            .await,
    )
    .await;
    assert_eq!(r.status, 401);
    let msg = r.body["faultstring"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.starts_with("Unauthorized - ApiKey with key_hash=") && msg.ends_with(" not found."),
        "{msg}"
    );
    let hash = &msg["Unauthorized - ApiKey with key_hash=".len()..msg.len() - " not found.".len()];
    assert_eq!(hash.len(), 128);
    // The first credential present decides, even when a later one is good.
    let r = finish(
        client()
            .get(&list)
            .insert_header(("X-Auth-Token", "nope"))
            .insert_header(("St2-Api-Key", "k3y"))
            .send()
            .await,
    )
    .await;
    assert_eq!(r.status, 401);
    let r = finish(
        client()
            .get(format!("{list}?x-auth-token=nope&st2-api-key=k3y"))
            .send()
            .await,
    )
    .await;
    assert_eq!(r.status, 401);
    // A header beats the query string.
    let r = finish(
        client()
            .get(format!("{list}?x-auth-token=nope"))
            .insert_header(("St2-Api-Key", "k3y"))
            .send()
            .await,
    )
    .await;
    assert!(ok(&r));
    em.revoke_all_tokens();
    let r = get(list.clone(), &token).await;
    assert_eq!(
        (r.status, r.body["faultstring"].as_str()),
        (401, Some("Unauthorized - Token has expired."))
    );
}

// ----- aliases -----------------------------------------------------------------------

#[actix_web::test]
async fn alias_list_paging_and_filters() {
    let em = start(EmulatorConfig::default()).await;
    let token = login(&em).await;
    let base = format!("{}/actionalias", em.api_url());
    let r = get(base.clone(), &token).await;
    let refs: Vec<&str> = r
        .body
        .as_array()
        .map(|a| a.iter().filter_map(|v| v["ref"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        refs,
        [
            "examples.remote_shell_cmd",
            "examples.run_local",
            "examples.run_remote",
            "linux.date",
            "ops.deploy",
            "ops.maintenance",
            "ops.restart_service"
        ]
    );
    assert_eq!(
        r.headers.get("x-total-count").and_then(|v| v.to_str().ok()),
        Some("7")
    );
    // Served verbatim.
    let demo = demo_aliases();
    assert!(r
        .body
        .as_array()
        .is_some_and(|a| a.iter().all(|v| demo.contains(v))));
    let r = get(format!("{base}?limit=2&offset=1"), &token).await;
    let refs: Vec<&str> = r
        .body
        .as_array()
        .map(|a| a.iter().filter_map(|v| v["ref"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(refs, ["examples.run_local", "examples.run_remote"]);
    assert_eq!(
        r.headers.get("x-limit").and_then(|v| v.to_str().ok()),
        Some("2")
    );
    let r = get(format!("{base}?limit=-1&offset=0"), &token).await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(7));
    let r = get(format!("{base}?pack=ops"), &token).await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(3));
    let r = get(format!("{base}?name=date"), &token).await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(1));
    for (q, msg) in [
        (
            "limit=0",
            "Limit, \"0\" specified, must be a positive number or -1 for full result set.",
        ),
        (
            "limit=-22",
            "Limit, \"-22\" specified, must be a positive number.",
        ),
        ("limit=abc", "Parameter \"limit\" is not of type integer"),
        ("offset=x", "Parameter \"offset\" is not of type integer"),
    ] {
        let r = get(format!("{base}?{q}"), &token).await;
        assert_eq!(
            (r.status, r.body["faultstring"].as_str()),
            (400, Some(msg)),
            "{q}"
        );
    }
    let r = get(format!("{base}/linux.date"), &token).await;
    assert_eq!(r.body["name"], "date");
    let r = get(format!("{base}/5f3c1a0e9d1b2c0001a1b004"), &token).await;
    assert_eq!(r.body["name"], "deploy");
    let r = get(format!("{base}/nope.nope"), &token).await;
    assert_eq!(
        (r.status, r.body["faultstring"].as_str()),
        (
            404,
            Some("Resource with a ref or id \"nope.nope\" not found")
        )
    );
}

#[actix_web::test]
async fn alias_help_endpoint() {
    let em = start(EmulatorConfig::default()).await;
    let token = login(&em).await;
    let base = format!("{}/actionalias/help", em.api_url());
    let r = get(base.clone(), &token).await;
    assert_eq!(r.status, 200);
    // 7 displays: the disabled alias is left out.
    assert_eq!(r.body["available"], 7);
    assert_eq!(r.body["helpstrings"].as_array().map(Vec::len), Some(7));
    assert_eq!(
        r.body["helpstrings"][1],
        json!({"pack": "examples", "display": "run {{cmd}}", "description": "Run a shell command on the StackStorm host"})
    );
    let r = get(format!("{base}?filter=RUN&limit=1&offset=0"), &token).await;
    assert_eq!(r.body["available"], 2);
    assert_eq!(r.body["helpstrings"].as_array().map(Vec::len), Some(1));
    let r = get(format!("{base}?pack=linux"), &token).await;
    assert_eq!(r.body["available"], 2);
    let r = get(format!("{base}?limit=x"), &token).await;
    assert_eq!(r.status, 400);
}

#[actix_web::test]
async fn alias_match_endpoint() {
    let em = start(EmulatorConfig::default()).await;
    let token = login(&em).await;
    let url = format!("{}/actionalias/match", em.api_url());
    let r = post(url.clone(), &token, &json!({"command": "what time is it"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["actionalias"]["ref"], "linux.date");
    assert_eq!(r.body["representation"], "what time is it");
    assert_eq!(r.body["display"], "what time is it");
    let r = post(
        url.clone(),
        &token,
        &json!({"command": "deploy web to prod"}),
    )
    .await;
    assert_eq!(r.body["actionalias"], demo_aliases()[3]);
    let r = post(url.clone(), &token, &json!({"command": "make coffee"})).await;
    assert_eq!(
        (r.status, r.body["faultstring"].as_str()),
        (400, Some("Command 'make coffee' matched no patterns"))
    );
    let r = post(url.clone(), &token, &json!({"command": "run date on web1"})).await;
    assert_eq!(
        (r.status, r.body["faultstring"].as_str()),
        (
            400,
            Some("Command 'run date on web1' matched more than 1 pattern")
        )
    );
    let r = post(url.clone(), &token, &json!({})).await;
    assert_eq!(r.body["faultstring"], "'command' is a required property");
    let r = post(url.clone(), &token, &json!({"command": "date", "x": 1})).await;
    assert_eq!(
        r.body["faultstring"],
        "Additional properties are not allowed ('x' was unexpected)"
    );
}

// ----- alias executions ----------------------------------------------------------------

#[actix_web::test]
async fn alias_execution_success_and_completion() {
    let em = start(EmulatorConfig {
        web_url: Some("https://st2.example.com/".into()),
        ..EmulatorConfig::default()
    })
    .await;
    let token = login(&em).await;
    let body = exec_body("date", "date", "date");
    let r = post(format!("{}/aliasexecution", em.api_url()), &token, &body).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let ex = &r.body["execution"];
    let id = ex["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(id.len(), 24);
    assert_eq!(ex["status"], "requested");
    assert_eq!(ex["action"]["ref"], "core.local");
    assert_eq!(ex["parameters"], json!({"cmd": "date"}));
    assert_eq!(ex["context"]["api_user"], "alice");
    assert_eq!(ex["context"]["user"], "st2admin");
    assert_eq!(ex["context"]["source_channel"], "C123");
    assert_eq!(
        ex["context"]["action_alias_ref"],
        json!({"id": "5f3c1a0e9d1b2c0001a1b003", "name": "date"})
    );
    assert_eq!(
        ex["notify"]["on_complete"]["routes"],
        json!(["stormbridge"])
    );
    assert_eq!(
        ex["web_url"],
        format!("https://st2.example.com/#/history/{id}/general")
    );
    assert_eq!(r.body["actionalias"], demo_aliases()[2]);
    // The date alias has ack settings but no ack.format: no message.
    assert!(r.body.get("message").is_none());
    let recs = em.executions();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].id, id);
    assert_eq!(recs[0].request, body);
    assert_eq!(recs[0].st2_user, "st2admin");
    assert_eq!(recs[0].credential_kind, CredentialKind::Token);
    assert_eq!(recs[0].alias_ref, "linux.date");
    assert_eq!(
        recs[0].parameters.get("cmd").map(String::as_str),
        Some("date")
    );

    let url = format!("{}/executions/{id}", em.api_url());
    let deadline = Instant::now() + WAIT;
    let done = loop {
        let r = get(url.clone(), &token).await;
        if r.body["status"] == "succeeded" {
            break r.body;
        }
        assert!(Instant::now() < deadline, "execution never finished");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(done["result"]["stdout"]
        .as_str()
        .is_some_and(|s| s.contains(" UTC ")));
    assert_eq!(done["result"]["return_code"], 0);
    assert!(done["elapsed_seconds"].as_f64().is_some());
    assert_eq!(
        get(
            format!("{}/executions/ffffffffffffffffffffffff", em.api_url()),
            &token
        )
        .await
        .status,
        404
    );

    // Without a route, notify routes is [null]; API keys are recorded as such.
    let em2 = start(EmulatorConfig {
        api_keys: vec![("k".into(), "bot".into())],
        ..EmulatorConfig::default()
    })
    .await;
    let r = finish(
        client()
            .post(format!("{}/aliasexecution", em2.api_url()))
            .insert_header(("St2-Api-Key", "k"))
            .send_json(&json!({"name": "run_local", "format": "run {{cmd}}", "command": "run uptime", "source_channel": "C1"}))
            .await,
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(
        r.body["execution"]["notify"]["on_complete"]["routes"],
        json!([null])
    );
    assert_eq!(r.body["execution"]["context"]["user"], "bot");
    assert_eq!(r.body["execution"]["context"]["api_user"], Value::Null);
    assert_eq!(em2.executions()[0].credential_kind, CredentialKind::ApiKey);
    assert_eq!(em2.executions()[0].st2_user, "bot");
}

#[actix_web::test]
async fn alias_execution_errors_in_st2_order() {
    let mut aliases = demo_aliases();
    aliases.push(
        json!({"name": "imm", "pack": "t", "action_ref": "core.remote",
        "formats": ["imm {{cmd}}", "imm2 {{hosts}}"], "immutable_parameters": {"cmd": "date"}}),
    );
    aliases.push(
        json!({"name": "date", "pack": "zz", "action_ref": "core.noop", "formats": ["other date"]}),
    );
    let em = start(EmulatorConfig {
        aliases,
        ..EmulatorConfig::default()
    })
    .await;
    let token = login(&em).await;
    let url = format!("{}/aliasexecution", em.api_url());
    let mut unknown_key = exec_body("date", "date", "date");
    unknown_key["bogus"] = json!(1);
    let mut two_unknown = exec_body("date", "date", "date");
    two_unknown["b"] = json!(1);
    two_unknown["a"] = json!(1);
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            unknown_key,
            400,
            "Additional properties are not allowed ('bogus' was unexpected)",
        ),
        (
            two_unknown,
            400,
            "Additional properties are not allowed ('a', 'b' were unexpected)",
        ),
        (
            json!({"format": "date", "command": "date", "source_channel": "c"}),
            400,
            "'name' is a required property",
        ),
        (
            json!({"name": "date", "command": "date", "source_channel": "c"}),
            400,
            "'format' is a required property",
        ),
        (
            json!({"name": "date", "format": "date", "command": "date"}),
            400,
            "'source_channel' is a required property",
        ),
        (
            json!({"name": 5, "format": "date", "command": "date", "source_channel": "c"}),
            400,
            "5 is not of type 'string'",
        ),
        (
            json!({"name": "date", "format": "date", "command": "date", "source_channel": "c", "source_context": "x"}),
            400,
            "'x' is not of type 'object'",
        ),
        (json!([1]), 400, "[1] is not of type 'object'"),
        (
            exec_body("", "date", "date"),
            400,
            "Alias execution \"name\" is required",
        ),
        (
            exec_body("nope", "date", "date"),
            404,
            "Unable to find the ActionAliasDB instance. {'name': 'nope'}",
        ),
        (
            exec_body("maintenance", "maintenance on", "maintenance on"),
            400,
            "Action alias with name \"maintenance\" is disabled.",
        ),
        (
            exec_body("date", "dat", "date"),
            400,
            "Format string \"dat\" is not available on the alias \"date\"",
        ),
        // A display is not a format string.
        (
            exec_body("run_remote", "run <cmd> on <hosts>", "run ls on x"),
            400,
            "Format string \"run <cmd> on <hosts>\" is not available on the alias \"run_remote\"",
        ),
        (
            exec_body("run_remote", "run {{cmd}} on {{hosts}}", "run ls"),
            400,
            "Command \"run ls\" doesn't match format string \"run {{cmd}} on {{hosts}}\"",
        ),
        (
            exec_body("imm", "imm {{cmd}}", "imm ls"),
            400,
            "Immutable arguments cannot be overriden: cmd",
        ),
    ];
    for (body, status, msg) in cases {
        let r = post(url.clone(), &token, &body).await;
        assert_eq!(
            (r.status, r.body["faultstring"].as_str()),
            (status, Some(msg)),
            "{body}"
        );
    }
    // Name lookup ignores the pack: the first "date" wins (linux.date, not zz.date).
    let r = post(
        url.clone(),
        &token,
        &exec_body("date", "other date", "other date"),
    )
    .await;
    assert_eq!(
        r.body["faultstring"],
        "Format string \"other date\" is not available on the alias \"date\""
    );
    // Immutable parameters are merged when not overridden.
    let r = post(
        url.clone(),
        &token,
        &exec_body("imm", "imm2 {{hosts}}", "imm2 hello"),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(
        r.body["execution"]["parameters"],
        json!({"hosts": "hello", "cmd": "date"})
    );
    // Bad JSON.
    let r = finish(
        client()
            .post(&url)
            .insert_header(("X-Auth-Token", token.as_str()))
            .insert_header(("Content-Type", "application/json"))
            .send_body("{\"name\": ")
            .await,
    )
    .await;
    assert_eq!(r.status, 400);
    // Injected failure, once, after auth and validation.
    em.fail_next_execution(503, "Service Unavailable (injected)");
    let r = post(url.clone(), &token, &exec_body("nope", "x", "x")).await;
    assert_eq!(
        (r.status, r.body["faultstring"].as_str()),
        (503, Some("Service Unavailable (injected)"))
    );
    let r = post(url.clone(), &token, &exec_body("date", "date", "date")).await;
    assert_eq!(r.status, 201);
    assert_eq!(em.executions().len(), 2);
    // Huge bodies are refused without being buffered.
    let big = "x".repeat(2 * 1024 * 1024);
    let r = finish(
        client()
            .post(&url)
            .insert_header(("X-Auth-Token", token.as_str()))
            .send_json(&json!({"name": big}))
            .await,
    )
    .await;
    assert_eq!(r.status, 413);
    // Unknown paths are JSON 404s.
    let r = get(format!("{}/nothing", em.api_url()), &token).await;
    assert_eq!(r.status, 404);
    assert!(r.body["faultstring"].is_string());
}

#[actix_web::test]
async fn ack_message_rendering() {
    let mut aliases = demo_aliases();
    aliases.push(
        json!({"name": "undef", "pack": "t", "action_ref": "core.local",
        "formats": ["undef {{cmd}}"], "ack": {"format": "x {{ foo }}"}}),
    );
    aliases.push(json!({"name": "noattr", "pack": "t", "action_ref": "core.local",
        "formats": ["noattr {{cmd}}"],
        "ack": {"format": "{{execution.nope}}", "extra": {"who": "{{ execution.context.api_user }}", "n": 3, "nested": {"id": "{{ execution.id }}"}}}}));
    let em = start(EmulatorConfig {
        aliases,
        ..EmulatorConfig::default()
    })
    .await;
    let token = login(&em).await;
    let url = format!("{}/aliasexecution", em.api_url());
    let r = post(
        url.clone(),
        &token,
        &exec_body(
            "run_remote",
            "run {{cmd}} on {{hosts}}",
            "run uptime on web1,web2",
        ),
    )
    .await;
    assert_eq!(r.status, 201);
    let id = r.body["execution"]["id"].as_str().unwrap_or_default();
    assert_eq!(
        r.body["message"],
        format!("Running `uptime` on web1,web2 (execution {id}).")
    );
    let r = post(
        url.clone(),
        &token,
        &exec_body("undef", "undef {{cmd}}", "undef ls"),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.body["message"],
        "Cannot render \"format\" in field \"ack\" for alias. 'foo' is undefined"
    );
    let r = post(
        url.clone(),
        &token,
        &exec_body("noattr", "noattr {{cmd}}", "noattr ls"),
    )
    .await;
    assert_eq!(
        r.body["message"],
        "Cannot render \"format\" in field \"ack\" for alias. 'st2common.models.api.execution.ActionExecutionAPI object' has no attribute 'nope'"
    );
    let id = r.body["execution"]["id"].as_str().unwrap_or_default();
    assert_eq!(
        r.body["extra"],
        json!({"who": "alice", "n": 3, "nested": {"id": id}})
    );
}

#[actix_web::test]
async fn match_and_execute_endpoint() {
    let em = start(EmulatorConfig::default()).await;
    let token = login(&em).await;
    let url = format!("{}/aliasexecution/match_and_execute", em.api_url());
    let r = post(url.clone(), &token, &json!({"command": "deploy web to prod", "source_channel": "C1", "user": "bob", "notification_route": "errbot"})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(
        r.body["results"][0]["execution"]["parameters"],
        json!({"app": "web", "env": "prod"})
    );
    assert_eq!(r.body["results"][0]["message"], "Deploying web to prod...");
    let r = post(
        url.clone(),
        &token,
        &json!({"command": "deploy web to prod", "source_channel": "C1", "source_context": {}}),
    )
    .await;
    assert_eq!(
        r.body["faultstring"],
        "Additional properties are not allowed ('source_context' was unexpected)"
    );
    let r = post(
        url.clone(),
        &token,
        &json!({"command": "zzz", "source_channel": "C1"}),
    )
    .await;
    assert_eq!(r.body["faultstring"], "Command 'zzz' matched no patterns");
}

#[actix_web::test]
async fn cancel_semantics() {
    let em = start(EmulatorConfig {
        execution_delay: Duration::from_secs(30),
        ..EmulatorConfig::default()
    })
    .await;
    let token = login(&em).await;
    let r = post(
        format!("{}/aliasexecution", em.api_url()),
        &token,
        &exec_body("date", "date", "date"),
    )
    .await;
    let id = r.body["execution"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let url = format!("{}/executions/{id}", em.api_url());
    let r = del(url.clone(), &token).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("canceled"))
    );
    let r = del(url.clone(), &token).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("canceled"))
    );
    let r = del(
        format!("{}/executions/000000000000000000000000", em.api_url()),
        &token,
    )
    .await;
    assert_eq!(r.status, 404);

    let em = start(EmulatorConfig::default()).await;
    let token = login(&em).await;
    let r = post(
        format!("{}/aliasexecution", em.api_url()),
        &token,
        &exec_body("date", "date", "date"),
    )
    .await;
    let id = r.body["execution"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let url = format!("{}/executions/{id}", em.api_url());
    let deadline = Instant::now() + WAIT;
    while get(url.clone(), &token).await.body["status"] != "succeeded" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = del(url, &token).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"faultstring": "Action cannot be canceled. State = succeeded."})
    );
}

#[actix_web::test]
async fn malformed_aliases_served_verbatim_good_ones_still_work() {
    let good = json!({"name": "ping", "pack": "net", "action_ref": "net.ping", "formats": ["ping {{host}}"]});
    let aliases = vec![
        json!({"name": "nopack", "action_ref": "x.y", "formats": ["nopack"]}),
        good.clone(),
        json!(42),
        json!({"name": "badformats", "pack": "p", "action_ref": "p.a", "formats": [1]}),
    ];
    let em = start(EmulatorConfig {
        aliases: aliases.clone(),
        // An action of a pack of one's own (EmulatorConfig::actions).
        actions: vec![
            json!({"pack": "net", "name": "ping", "runner_type": "python-script",
            "parameters": {"host": {"type": "string", "required": true}}}),
        ],
        ..EmulatorConfig::default()
    })
    .await;
    let token = login(&em).await;
    let r = get(format!("{}/actionalias?limit=-1", em.api_url()), &token).await;
    let served = r.body.as_array().cloned().unwrap_or_default();
    assert_eq!(served.len(), 4);
    for a in &aliases {
        assert!(served.contains(a), "{a} not served");
    }
    let r = post(
        format!("{}/aliasexecution", em.api_url()),
        &token,
        &exec_body("ping", "ping {{host}}", "ping db1"),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["execution"]["parameters"], json!({"host": "db1"}));
    assert_eq!(r.body["actionalias"], good);
    let r = post(
        format!("{}/actionalias/match", em.api_url()),
        &token,
        &json!({"command": "ping db1"}),
    )
    .await;
    assert_eq!(r.body["actionalias"], good, "{} {:?}", r.status, r.body);
    let r = post(
        format!("{}/aliasexecution", em.api_url()),
        &token,
        &exec_body("nopack", "nopack", "nopack"),
    )
    .await;
    assert_eq!(r.status, 404);
    // An alias whose format Python cannot compile is served, breaks st2's /match
    // for every command (HTTP 500), and leaves other aliases executable.
    let mut with_broken = aliases.clone();
    let broken =
        json!({"name": "broken", "pack": "p", "action_ref": "p.a", "formats": ["broken {{a.b}}"]});
    with_broken.push(broken.clone());
    em.set_aliases(with_broken);
    let r = get(format!("{}/actionalias?limit=-1", em.api_url()), &token).await;
    assert!(r.body.as_array().is_some_and(|a| a.contains(&broken)));
    let r = post(
        format!("{}/actionalias/match", em.api_url()),
        &token,
        &json!({"command": "ping db1"}),
    )
    .await;
    assert_eq!(
        (r.status, r.body["faultstring"].as_str()),
        (500, Some("Internal Server Error"))
    );
    let r = post(
        format!("{}/aliasexecution", em.api_url()),
        &token,
        &exec_body("ping", "ping {{host}}", "ping db2"),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = post(
        format!("{}/aliasexecution", em.api_url()),
        &token,
        &exec_body("broken", "broken {{a.b}}", "broken x"),
    )
    .await;
    assert_eq!(
        (r.status, r.body["faultstring"].as_str()),
        (500, Some("Internal Server Error"))
    );
}

// ----- stream ------------------------------------------------------------------------

#[actix_web::test]
async fn announcement_reaches_stream_with_payload_and_filter() {
    let em = start(EmulatorConfig::default()).await;
    let token = login(&em).await;
    let mut ann = Sse::connect(&em, "?events=st2.announcement__*", &token).await;
    assert!(matches!(ann.read(WAIT).await, Read::Data(b) if b.as_ref() == b"\n"));
    let mut all = Sse::connect(&em, "", &token).await;
    assert_eq!(em.stream_event_filter(), None);
    let mut aliases_only = Sse::connect(
        &em,
        "?events=st2.actionalias__*,st2.announcement__nothing",
        &token,
    )
    .await;
    assert_eq!(
        em.stream_event_filter().as_deref(),
        Some("st2.actionalias__*,st2.announcement__nothing")
    );
    wait_until("3 streams", || em.stream_connections() == 3).await;

    let body = exec_body("deploy", "deploy {{app}} to {{env}}", "deploy web to prod");
    let r = post(format!("{}/aliasexecution", em.api_url()), &token, &body).await;
    assert_eq!(r.status, 201);
    let id = r.body["execution"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // Only the announcement passes `events=st2.announcement__*`.
    let (name, data) = ann.next_event(WAIT).await.unwrap_or_default();
    assert_eq!(name, "st2.announcement__stormbridge");
    assert!(
        !data.contains('\n') && !data.contains("\": ") && !data.contains(", \""),
        "compact json: {data}"
    );
    let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
    assert_eq!(
        v,
        json!({"payload": {
            "message": "Deployment of web to prod: succeeded",
            "channel": "C123",
            "user": "alice",
            "whisper": false,
            "context": {"id": "1700000000.000100", "room": "C123"},
            "extra": {"slack": {"color": "good", "thread_response": true}},
        }, "trace_context": null})
    );

    // The default filter has executions, liveactions and announcements, in order.
    let mut names = Vec::new();
    while names.last().map(String::as_str) != Some("st2.announcement__stormbridge") {
        match all.next_event(WAIT).await {
            Some((n, d)) => {
                if n == "st2.execution__create" {
                    let v: Value = serde_json::from_str(&d).unwrap_or(Value::Null);
                    assert_eq!(v["id"], id.as_str());
                }
                names.push(n);
            }
            None => panic!("stream ended early: {names:?}"),
        }
    }
    assert_eq!(
        names.first().map(String::as_str),
        Some("st2.liveaction__create")
    );
    assert!(names.contains(&"st2.execution__create".to_string()));
    assert_eq!(
        names
            .iter()
            .filter(|n| *n == "st2.execution__update")
            .count(),
        3
    );

    // Nothing reached the alias-only stream but the alias event we send now.
    em.set_aliases(demo_aliases().into_iter().take(5).collect());
    let (name, data) = aliases_only.next_event(WAIT).await.unwrap_or_default();
    assert_eq!(name, "st2.actionalias__delete");
    assert!(data.contains("\"ops.maintenance\""), "{data}");
}

#[actix_web::test]
async fn hubot_route_gets_chatops_default_message_and_disabled_results_stay_silent() {
    let em = start(EmulatorConfig::default()).await;
    let token = login(&em).await;
    let mut s = Sse::connect(&em, "?events=st2.announcement__*", &token).await;
    let mut body = exec_body("date", "date", "date");
    body["notification_route"] = json!("hubot");
    let r = post(format!("{}/aliasexecution", em.api_url()), &token, &body).await;
    let id = r.body["execution"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let v = s.expect_event("st2.announcement__chatops").await;
    let msg = v["payload"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with(&format!(
            "\nAction core.local completed.\nstatus : succeeded\nexecution: {id}\n\nweb_url: {DEFAULT_WEBUI_BASE_URL}/#/history/{id}/general\n\nTook "
        )),
        "{msg:?}"
    );
    assert!(
        msg.contains("\u{3bc}s to complete.\n\nresult :\n--------\nstdout : "),
        "{msg:?}"
    );

    // result.enabled false: no announcement; the marker sent afterwards comes first.
    let r = post(
        format!("{}/aliasexecution", em.api_url()),
        &token,
        &exec_body(
            "restart_service",
            "restart {{service}} on {{hosts}}",
            "restart nginx on web1",
        ),
    )
    .await;
    assert_eq!(r.status, 201);
    let id = r.body["execution"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let url = format!("{}/executions/{id}", em.api_url());
    let deadline = Instant::now() + WAIT;
    while get(url.clone(), &token).await.body["status"] != "succeeded" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    em.announce("marker", json!({"message": "m"}));
    let (name, _) = s.next_event(WAIT).await.unwrap_or_default();
    assert_eq!(name, "st2.announcement__marker");

    // Failed commands are announced with their status.
    let r = post(
        format!("{}/aliasexecution", em.api_url()),
        &token,
        &exec_body("run_local", "run {{cmd}}", "run false"),
    )
    .await;
    assert_eq!(r.status, 201);
    let v = s.expect_event("st2.announcement__stormbridge").await;
    assert!(v["payload"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("status : failed\n") && m.contains("return_code : 1")));
}

#[actix_web::test]
async fn heartbeat_on_connect_and_when_idle() {
    let em = start(EmulatorConfig {
        heartbeat: Duration::from_millis(50),
        ..EmulatorConfig::default()
    })
    .await;
    let token = login(&em).await;
    let mut s = Sse::connect(&em, "", &token).await;
    let mut beats = 0;
    let deadline = Instant::now() + WAIT;
    while beats < 3 {
        assert!(Instant::now() < deadline, "heartbeats missing");
        match s.read(WAIT).await {
            Read::Data(b) => {
                assert!(b.iter().all(|c| *c == b'\n'), "{b:?}");
                beats += b.len();
            }
            _ => panic!("stream ended"),
        }
    }
    // A stream is refused before streaming when the credential is bad.
    let r = finish(
        client()
            .get(format!("{}/stream", em.stream_url()))
            .send()
            .await,
    )
    .await;
    assert_eq!(
        (r.status, r.body["faultstring"].as_str()),
        (
            401,
            Some("Unauthorized - One of Token or API key required.")
        )
    );
    let r = finish(
        client()
            .get(format!("{}/stream?x-auth-token=nope", em.stream_url()))
            .send()
            .await,
    )
    .await;
    assert_eq!(r.status, 401);
}

#[actix_web::test]
async fn raw_events_and_drop_streams() {
    let em = start(EmulatorConfig::default()).await;
    let token = login(&em).await;
    let mut s = Sse::connect(&em, "?events=st2.announcement__*", &token).await;
    let mut s2 = Sse::connect(&em, "", &token).await;
    wait_until("2 streams", || em.stream_connections() == 2).await;
    em.send_raw_event("st2.announcement__stormbridge", "this is {not json");
    let (name, data) = s.next_event(WAIT).await.unwrap_or_default();
    assert_eq!(
        (name.as_str(), data.as_str()),
        ("st2.announcement__stormbridge", "this is {not json")
    );
    em.drop_streams();
    s.expect_eof().await;
    s2.expect_eof().await;
    wait_until("no streams", || em.stream_connections() == 0).await;
    assert_eq!(em.stream_connects_total(), 2);
    let _s3 = Sse::connect(&em, "", &token).await;
    wait_until("1 stream", || em.stream_connections() == 1).await;
    assert_eq!(em.stream_connects_total(), 3);
}

#[actix_web::test]
async fn stalled_streams_send_nothing_then_resume() {
    let em = start(EmulatorConfig {
        heartbeat: Duration::from_millis(30),
        ..EmulatorConfig::default()
    })
    .await;
    let token = login(&em).await;
    let mut s = Sse::connect(&em, "?events=st2.announcement__*", &token).await;
    assert!(matches!(s.read(WAIT).await, Read::Data(_)));
    em.stall_streams(true);
    // Drain whatever was in flight before the stall took effect.
    while let Read::Data(_) = s.read(Duration::from_millis(100)).await {}
    em.announce("lost", json!({"message": "x"}));
    assert!(matches!(
        s.read(Duration::from_millis(300)).await,
        Read::Timeout
    ));
    assert_eq!(em.stream_connections(), 1);
    // New connections during a stall get headers and nothing else.
    let mut s2 = Sse::connect(&em, "", &token).await;
    assert!(matches!(
        s2.read(Duration::from_millis(200)).await,
        Read::Timeout
    ));
    em.stall_streams(false);
    em.announce("back", json!({"message": "y"}));
    let (name, _) = s.next_event(WAIT).await.unwrap_or_default();
    assert_eq!(name, "st2.announcement__back");
    assert!(matches!(s2.read(WAIT).await, Read::Data(_)));
}

#[actix_web::test]
async fn stop_and_restart_keep_state_and_port() {
    let em = start(EmulatorConfig::default()).await;
    let token = login(&em).await;
    let addr = em.addr();
    let mut s = Sse::connect(&em, "", &token).await;
    for round in 0..2 {
        em.stop().await;
        s.expect_eof().await;
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "port still accepts (round {round})"
        );
        let r = client()
            .get(format!("{}/actionalias", em.api_url()))
            .send()
            .await;
        assert!(r.is_err());
        wait_until("streams closed", || em.stream_connections() == 0).await;
        em.stop().await; // idempotent
        match em.restart().await {
            Ok(()) => {}
            Err(e) => panic!("restart failed: {e}"),
        }
        assert_eq!(em.addr(), addr);
        // Same state: the token still works.
        let r = get(format!("{}/actionalias", em.api_url()), &token).await;
        assert_eq!(r.status, 200);
        s = Sse::connect(&em, "", &token).await;
    }
    assert!(em.restart().await.is_ok()); // already running
    let r = post(
        format!("{}/aliasexecution", em.api_url()),
        &token,
        &exec_body("date", "date", "date"),
    )
    .await;
    assert_eq!(r.status, 201);
    let _ = s.expect_event("st2.execution__create").await;
}

#[actix_web::test]
async fn announce_before_response_orders_result_first() {
    let em = start(EmulatorConfig::default()).await;
    let token = login(&em).await;
    let mut s = Sse::connect(&em, "?events=st2.announcement__*", &token).await;
    wait_until("stream", || em.stream_connections() == 1).await;
    em.set_announce_before_response(true);
    let r = post(
        format!("{}/aliasexecution", em.api_url()),
        &token,
        &exec_body("date", "date", "date"),
    )
    .await;
    assert_eq!(r.status, 201);
    // The 201 still carries the execution as created...
    assert_eq!(r.body["execution"]["status"], "requested");
    // ...but it has finished and its announcement was published already.
    let id = r.body["execution"]["id"].as_str().unwrap_or_default();
    let now = get(format!("{}/executions/{id}", em.api_url()), &token).await;
    assert_eq!(now.body["status"], "succeeded");
    let v = s.expect_event("st2.announcement__stormbridge").await;
    assert_eq!(v["payload"]["channel"], "C123");
}

#[actix_web::test]
async fn alias_change_events() {
    let em = start(EmulatorConfig::default()).await;
    let token = login(&em).await;
    let mut s = Sse::connect(&em, "?events=st2.actionalias__*", &token).await;
    wait_until("stream", || em.stream_connections() == 1).await;
    let mut next = demo_aliases();
    next.remove(0); // delete examples.run_local
    next[0]["description"] = json!("changed"); // update examples.run_remote
    next.push(json!({"name": "new", "pack": "p", "action_ref": "core.noop", "formats": ["new"]}));
    em.set_aliases(next);
    let mut got = Vec::new();
    for _ in 0..3 {
        let (name, data) = s.next_event(WAIT).await.unwrap_or_default();
        let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
        let key = v["ref"].as_str().map_or_else(
            || {
                format!(
                    "{}.{}",
                    v["pack"].as_str().unwrap_or(""),
                    v["name"].as_str().unwrap_or("")
                )
            },
            str::to_string,
        );
        got.push((name, key));
    }
    assert_eq!(
        got,
        vec![
            (
                "st2.actionalias__delete".to_string(),
                "examples.run_local".to_string()
            ),
            (
                "st2.actionalias__update".to_string(),
                "examples.run_remote".to_string()
            ),
            ("st2.actionalias__create".to_string(), "p.new".to_string()),
        ]
    );
    let r = post(
        format!("{}/actionalias/match", em.api_url()),
        &token,
        &json!({"command": "new"}),
    )
    .await;
    assert_eq!(r.body["actionalias"]["name"], "new");
}

#[actix_web::test]
async fn stream_execution_filter_and_end_event() {
    let em = start(EmulatorConfig {
        execution_delay: Duration::from_millis(300),
        ..EmulatorConfig::default()
    })
    .await;
    let token = login(&em).await;
    let r = post(
        format!("{}/aliasexecution", em.api_url()),
        &token,
        &exec_body("date", "date", "date"),
    )
    .await;
    let id = r.body["execution"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let q = format!("?execution_ids={id}&end_execution_id={id}&end_event=st2.execution__update");
    let started = Instant::now();
    let mut s = Sse::connect(&em, &q, &token).await;
    let mut statuses = Vec::new();
    // Liveaction events and the announcement are dropped by `execution_ids`; the
    // stream ends after the update that completes the execution.
    while let Some((name, data)) = s.next_event(WAIT).await {
        assert_eq!(name, "st2.execution__update");
        let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
        statuses.push(v["status"].as_str().unwrap_or_default().to_string());
    }
    assert!(started.elapsed() < WAIT, "stream did not end");
    assert_eq!(statuses, ["scheduled", "running", "succeeded"]);
}

#[actix_web::test]
async fn client_disconnect_is_noticed_even_when_idle_or_stalled() {
    let em = start(EmulatorConfig::default()).await;
    let token = login(&em).await;
    let s = Sse::connect(&em, "", &token).await;
    wait_until("stream open", || em.stream_connections() == 1).await;
    drop(s);
    wait_until("idle stream closed", || em.stream_connections() == 0).await;
    em.stall_streams(true);
    let s = Sse::connect(&em, "", &token).await;
    wait_until("stalled stream open", || em.stream_connections() == 1).await;
    drop(s);
    wait_until("stalled stream closed", || em.stream_connections() == 0).await;
}

// ----- GET /api/v1/user and RBAC on inquiries ---------------------------------------

async fn put(url: String, token: &str, body: &Value) -> Resp {
    finish(
        client()
            .put(url)
            .insert_header(("X-Auth-Token", token))
            .send_json(body)
            .await,
    )
    .await
}

fn token_for(em: &Emulator, user: &str) -> String {
    match em.issue_token(user, "pw") {
        Some(t) => t,
        None => panic!("no token for {user}"),
    }
}

fn users(names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|u| ((*u).to_string(), "pw".to_string()))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
        .collect()
}

/// `st2api/controllers/v1/user.py`: `{username, authentication: {method, location,
/// token_expire?}, rbac: {enabled, roles, is_admin}}`, in that order, with the router's
/// `auth_info` (`st2common/router.py:376-389`).
#[actix_web::test]
async fn user_endpoint_describes_the_credential_without_rbac() {
    let em = start(EmulatorConfig {
        api_keys: vec![("k3y".into(), "botuser".into())],
        ..EmulatorConfig::default()
    })
    .await;
    let token = login(&em).await;
    let url = format!("{}/user", em.api_url());
    let r = get(url.clone(), &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let expire = r.body["authentication"]["token_expire"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // `strftime("%Y-%m-%dT%H:%M:%SZ")`: no fraction.
    assert!(
        expire.len() == 20 && expire.ends_with('Z') && expire.as_bytes()[10] == b'T',
        "{expire}"
    );
    assert_eq!(
        serde_json::to_string(&r.body).unwrap_or_default(),
        format!(
            r#"{{"username":"st2admin","authentication":{{"method":"authentication token","location":"header","token_expire":"{expire}"}},"rbac":{{"enabled":false,"roles":[],"is_admin":true}}}}"#
        )
    );
    // A token in the query string, and in the cookie (whose security definition says
    // `in: header`, `x-in: cookie`).
    let r = finish(
        client()
            .get(format!("{url}?x-auth-token={token}"))
            .send()
            .await,
    )
    .await;
    assert_eq!(
        r.body["authentication"]["location"], "query",
        "{:?}",
        r.body
    );
    assert_eq!(r.body["authentication"]["method"], "authentication token");
    let r = finish(
        client()
            .get(url.as_str())
            .insert_header(("Cookie", format!("auth-token={token}")))
            .send()
            .await,
    )
    .await;
    assert_eq!(
        r.body["authentication"]["location"], "header",
        "{:?}",
        r.body
    );
    // API keys: no token_expire.
    let r = finish(
        client()
            .get(url.as_str())
            .insert_header(("St2-Api-Key", "k3y"))
            .send()
            .await,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body,
        json!({"username": "botuser",
               "authentication": {"method": "API key", "location": "header"},
               "rbac": {"enabled": false, "roles": [], "is_admin": true}})
    );
    let r = finish(client().get(format!("{url}?st2-api-key=k3y")).send().await).await;
    assert_eq!(
        r.body["authentication"],
        json!({"method": "API key", "location": "query"})
    );
    // Unauthenticated: the router's 401.
    let r = finish(client().get(url.as_str()).send().await).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body["faultstring"],
        "Unauthorized - One of Token or API key required."
    );
}

/// With RBAC on, `rbac.roles` lists the user's roles (system roles first, in st2's order)
/// and `is_admin` is true for `admin` and `system_admin`.
#[actix_web::test]
async fn user_endpoint_lists_roles_with_rbac() {
    let em = start(EmulatorConfig {
        users: users(&["st2admin", "bob", "carol", "dave"]),
        rbac: true,
        roles: pairs(&[
            ("bob", "ops"),
            ("bob", "observer"),
            ("carol", "system_admin"),
            ("st2admin", "system_admin"),
            ("st2admin", "admin"),
        ]),
        ..EmulatorConfig::default()
    })
    .await;
    let url = format!("{}/user", em.api_url());
    for (user, roles, admin) in [
        ("st2admin", json!(["system_admin", "admin"]), true),
        ("bob", json!(["observer", "ops"]), false),
        ("carol", json!(["system_admin"]), true),
        ("dave", json!([]), false),
    ] {
        let r = get(url.clone(), &token_for(&em, user)).await;
        assert_eq!(r.status, 200, "{user}: {:?}", r.body);
        assert_eq!(r.body["username"], user);
        assert_eq!(
            r.body["rbac"],
            json!({"enabled": true, "roles": roles, "is_admin": admin}),
            "{user}"
        );
    }
    // The configured admins alone have `admin` (st2's documented assignment).
    let em = start(EmulatorConfig {
        rbac: true,
        ..EmulatorConfig::default()
    })
    .await;
    let r = get(format!("{}/user", em.api_url()), &login(&em).await).await;
    assert_eq!(
        r.body["rbac"],
        json!({"enabled": true, "roles": ["admin"], "is_admin": true})
    );
}

/// `x-permissions: inquiry_list` on the list (`openapi.yaml.j2:1465`), `inquiry_view` and
/// `inquiry_respond` on one inquiry (`inquiries.py` `get_one` / `put`), with
/// st2-rbac-backend's inquiry resolver: admins and `system_admin` everything, `observer`
/// list and view, grants of any of `inquiry_view`/`respond`/`all` both view and respond,
/// `inquiry_list` only by itself.
#[actix_web::test]
async fn inquiry_permissions_with_rbac() {
    let em = start(EmulatorConfig {
        users: users(&["st2admin", "dave", "obs", "resp", "lister", "allr", "sys"]),
        rbac: true,
        roles: pairs(&[("obs", "observer"), ("sys", "system_admin")]),
        grants: pairs(&[
            ("resp", "inquiry_respond"),
            ("lister", "inquiry_list"),
            ("allr", "inquiry_all"),
        ]),
        ..EmulatorConfig::default()
    })
    .await;
    let list = format!("{}/inquiries", em.api_url());
    let denied = |user: &str, perm: &str| json!({ "faultstring": format!("User \"{user}\" doesn't have required permission \"{perm}\"") });
    for (user, allowed) in [
        ("st2admin", true),
        ("sys", true),
        ("obs", true),
        ("lister", true),
        ("allr", false),
        ("resp", false),
        ("dave", false),
    ] {
        let r = get(list.clone(), &token_for(&em, user)).await;
        if allowed {
            assert_eq!(r.status, 200, "{user}: {:?}", r.body);
        } else {
            assert_eq!(r.status, 403, "{user}: {:?}", r.body);
            assert_eq!(r.body, denied(user, "inquiry_list"));
        }
    }
    // The router checks `x-permissions` before it reads the parameters.
    let r = get(format!("{list}?limit=x"), &token_for(&em, "dave")).await;
    assert_eq!((r.status, r.body), (403, denied("dave", "inquiry_list")));

    let id = em.ask(InquirySpec::default());
    let one = format!("{list}/{id}");
    for (user, allowed) in [
        ("st2admin", true),
        ("sys", true),
        ("obs", true),
        ("resp", true),
        ("allr", true),
        ("lister", false),
        ("dave", false),
    ] {
        let r = get(one.clone(), &token_for(&em, user)).await;
        if allowed {
            assert_eq!(r.status, 200, "{user}: {:?}", r.body);
            assert_eq!(r.body["id"], id.as_str());
        } else {
            assert_eq!(
                (r.status, &r.body),
                (403, &denied(user, "inquiry_view")),
                "{user}"
            );
        }
    }
    // An unknown id is a 404 whoever asks (the execution is looked up first).
    let r = get(
        format!("{list}/5f0e1d2c3b4a596877665544"),
        &token_for(&em, "dave"),
    )
    .await;
    assert_eq!(r.status, 404, "{:?}", r.body);

    let answer = json!({"id": id, "response": {"continue": true}});
    // The body is validated before the controller runs.
    let r = put(one.clone(), &token_for(&em, "dave"), &json!({"id": id})).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    for user in ["dave", "obs", "lister"] {
        let r = put(one.clone(), &token_for(&em, user), &answer).await;
        assert_eq!(
            (r.status, &r.body),
            (403, &denied(user, "inquiry_respond")),
            "{user}"
        );
    }
    assert_eq!(em.inquiry_response(&id), None);
    let r = put(one.clone(), &token_for(&em, "resp"), &answer).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(em.inquiry_response(&id), Some(json!({"continue": true})));
}

/// Without RBAC every user has every inquiry permission.
#[actix_web::test]
async fn inquiry_permissions_without_rbac() {
    let em = start(EmulatorConfig {
        users: users(&["dave"]),
        ..EmulatorConfig::default()
    })
    .await;
    let token = token_for(&em, "dave");
    let id = em.ask(InquirySpec::default());
    let list = format!("{}/inquiries", em.api_url());
    let r = get(list.clone(), &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body.as_array().map(Vec::len), Some(1));
    let r = get(format!("{list}/{id}"), &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = put(
        format!("{list}/{id}"),
        &token,
        &json!({"id": id, "response": {"continue": false}}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// `GET /api/v1/actionalias` is `x-permissions: action_alias_list`: with RBAC on, a user
/// who is no admin needs `observer` or a grant of it, for every page and every `limit`
/// (the router refuses before the controller looks at `limit`); a grant can be given
/// and taken back while StackStorm runs.
#[actix_web::test]
async fn alias_list_needs_action_alias_list_with_rbac() {
    let em = start(EmulatorConfig {
        users: users(&["st2admin", "bot", "obs", "dave"]),
        rbac: true,
        roles: pairs(&[("obs", "observer")]),
        grants: pairs(&[("bot", "action_alias_list"), ("dave", "action_alias_all")]),
        ..EmulatorConfig::default()
    })
    .await;
    let list = format!("{}/actionalias", em.api_url());
    let denied = |user: &str| json!({ "faultstring": format!("User \"{user}\" doesn't have required permission \"action_alias_list\"") });
    for (user, allowed) in [
        ("st2admin", true),
        ("obs", true),
        ("bot", true),
        ("dave", false),
    ] {
        for query in ["", "?limit=100&offset=0", "?limit=5&offset=5", "?limit=-1"] {
            let r = get(format!("{list}{query}"), &token_for(&em, user)).await;
            if !allowed {
                assert_eq!((r.status, &r.body), (403, &denied(user)), "{user}{query}");
            } else if query == "?limit=-1" && user != "st2admin" {
                // Listed, but not all at once: that needs an admin.
                assert_eq!(r.status, 403, "{user}{query}: {:?}", r.body);
                assert_ne!(r.body, denied(user));
            } else {
                assert_eq!(r.status, 200, "{user}{query}: {:?}", r.body);
            }
        }
    }
    em.revoke("bot", "action_alias_list");
    let r = get(list.clone(), &token_for(&em, "bot")).await;
    assert_eq!((r.status, &r.body), (403, &denied("bot")));
    em.grant("dave", "action_alias_list");
    let r = get(list.clone(), &token_for(&em, "dave")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // An observer's list permission comes with the role, not a grant.
    em.revoke("obs", "action_alias_list");
    let r = get(list, &token_for(&em, "obs")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// A proxy that sets its own `X-Request-ID`: st2 echoes the id that reached it, so the
/// answer carries the proxy's id, not the client's.
#[actix_web::test]
async fn a_request_id_override_replaces_the_one_the_client_sent() {
    let em = start(EmulatorConfig::default()).await;
    let token = login(&em).await;
    let sent = |id: &'static str| {
        client()
            .get(format!("{}/actionalias?limit=1", em.api_url()))
            .insert_header(("X-Auth-Token", token.clone()))
            .insert_header(("X-Request-ID", id))
            .send()
    };
    let r = finish(sent("client-1").await).await;
    assert_eq!(
        r.headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        Some("client-1")
    );
    em.set_request_id_override(Some("proxy-7"));
    let r = finish(sent("client-2").await).await;
    assert_eq!(
        r.headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        Some("proxy-7")
    );
    em.set_request_id_override(None);
    let r = finish(sent("client-3").await).await;
    assert_eq!(
        r.headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        Some("client-3")
    );
}

/// An inquiry's `roles` go through `user_has_role` (`services/inquiry.py:80`): the
/// admins have `admin`, not `system_admin`, unless assigned; custom roles count.
#[actix_web::test]
async fn inquiry_roles_are_the_users_assigned_roles() {
    let em = start(EmulatorConfig {
        users: users(&["st2admin", "sys", "opsy"]),
        rbac: true,
        roles: pairs(&[("sys", "system_admin"), ("opsy", "ops")]),
        grants: pairs(&[("opsy", "inquiry_respond")]),
        ..EmulatorConfig::default()
    })
    .await;
    let list = format!("{}/inquiries", em.api_url());
    let ask = |roles: &[&str]| {
        em.ask(InquirySpec {
            roles: roles.iter().map(|r| (*r).to_string()).collect(),
            ..InquirySpec::default()
        })
    };
    for (roles, user, ok) in [
        (&["system_admin"][..], "st2admin", false),
        (&["system_admin"][..], "sys", true),
        (&["admin"][..], "st2admin", true),
        (&["ops"][..], "st2admin", false),
        (&["ops"][..], "opsy", true),
    ] {
        let id = ask(roles);
        let r = put(
            format!("{list}/{id}"),
            &token_for(&em, user),
            &json!({"id": id, "response": {"continue": true}}),
        )
        .await;
        if ok {
            assert_eq!(r.status, 200, "{roles:?} {user}: {:?}", r.body);
        } else {
            assert_eq!(r.status, 403, "{roles:?} {user}: {:?}", r.body);
            let msg = r.body["faultstring"].as_str().unwrap_or_default();
            assert!(
                msg.contains(&format!("name=\"{user}\""))
                    && msg.contains("does not have permission to respond to inquiry"),
                "{msg}"
            );
        }
    }
}

#[actix_web::test]
async fn dropping_emulators_ends_their_threads() {
    // Threads the emulator names itself ("st2-emulator-http", "st2-emulator-runner";
    // the kernel keeps 15 characters). Other tests may run emulators concurrently,
    // so wait for the count to come back down rather than compare at one instant.
    let ours = || {
        std::fs::read_dir("/proc/self/task")
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|t| {
                        std::fs::read_to_string(t.path().join("comm"))
                            .is_ok_and(|c| c.starts_with("st2-emulator"))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let before = ours();
    for i in 0..6 {
        // Every other one with a busy background ticker (it must end too).
        let em = if i % 2 == 0 {
            start(EmulatorConfig::default()).await
        } else {
            start_as_configured(EmulatorConfig {
                framing: Framing::Direct,
                background_interval: Some(Duration::from_millis(5)),
                ..EmulatorConfig::default()
            })
            .await
        };
        let _ = login(&em).await;
        let _s = Sse::connect(&em, "", &login(&em).await).await;
        drop(em);
    }
    wait_until("emulator threads to end", || ours() <= before).await;
}

/// The emulator does not need an actix runtime around it.
#[tokio::test]
async fn works_from_a_plain_tokio_runtime() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let em = start(EmulatorConfig::default()).await;
    let raw = |em: &Emulator| {
        let addr = em.addr();
        async move {
            let mut sock = match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => s,
                Err(e) => panic!("connect: {e}"),
            };
            let req = "GET /api/v1/actionalias HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            assert!(sock.write_all(req.as_bytes()).await.is_ok());
            let mut out = String::new();
            let _ = tokio::time::timeout(WAIT, sock.read_to_string(&mut out)).await;
            out
        }
    };
    let out = raw(&em).await;
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    assert!(out.contains("Unauthorized - One of Token or API key required."));
    em.stop().await;
    assert!(tokio::net::TcpStream::connect(em.addr()).await.is_err());
    assert!(em.restart().await.is_ok());
    assert!(raw(&em).await.starts_with("HTTP/1.1 401"));
}

// ----- matching: the emulator's own port of st2's alias parser -------------------------

/// What st2's `ActionAliasFormatParser` gives for a case.
enum Expect {
    /// The parameters (`match_multiple`: the list of parameter sets), as JSON, in
    /// st2's key order.
    Ok(&'static str),
    /// A `ParseException` with this text.
    Fails(&'static str),
    /// `re.error` (an HTTP 500 on st2).
    ReError,
}

// st2's own parser tests (st2common/tests/unit/test_action_alias_utils.py, first 33
// rows), then the quirks the design notes list. Every expected value was produced by
// running st2's `ActionAliasFormatParser` (master c2eaf56b) under Python 3.11.
const PARSER_CASES: &[(&str, &str, bool, Expect)] = &[
    (
        "",
        "",
        false,
        Expect::Ok("{}"),
    ),
    (
        "",
        "a=foobar1",
        false,
        Expect::Ok("{\"a\": \"foobar1\"}"),
    ),
    (
        "foo",
        "foo a=\"foobar2 poonies bar\"",
        false,
        Expect::Ok("{\"a\": \"foobar2 poonies bar\"}"),
    ),
    (
        "foo",
        "foo a='foobar2 poonies bar'",
        false,
        Expect::Ok("{\"a\": \"foobar2 poonies bar\"}"),
    ),
    (
        "foo",
        "foo a={\"foobar2\": \"poonies\"}",
        false,
        Expect::Ok("{\"a\": \"{\\\"foobar2\\\": \\\"poonies\\\"}\"}"),
    ),
    (
        "",
        "a=foobar1 b=\"boobar2 3 4\" c='coobar3 4' d={\"a\": \"b\"}",
        false,
        Expect::Ok("{\"a\": \"foobar1\", \"b\": \"boobar2 3 4\", \"c\": \"coobar3 4\", \"d\": \"{\\\"a\\\": \\\"b\\\"}\"}"),
    ),
    (
        "{{ captain }} is my captain",
        "Malcolm Reynolds is my captain weirdo=\"River Tam\"",
        false,
        Expect::Ok("{\"captain\": \"Malcolm Reynolds\", \"weirdo\": \"River Tam\"}"),
    ),
    (
        "skip {{a}} more skip {{b}} and skip more.",
        "skip a1 more skip b1 and skip more.",
        false,
        Expect::Ok("{\"a\": \"a1\", \"b\": \"b1\"}"),
    ),
    (
        "skip {{a}} more skip {{b}}",
        "skip a1 more skip b1",
        false,
        Expect::Ok("{\"a\": \"a1\", \"b\": \"b1\"}"),
    ),
    (
        "skip {{a}} more skip {{b}} and skip more.",
        "skip \"a1 a2\" more skip b1 and skip more.",
        false,
        Expect::Ok("{\"a\": \"a1 a2\", \"b\": \"b1\"}"),
    ),
    (
        "acl {{a}} {{b}} {{c}} {{d=1}}",
        "acl \"a1 a2\" \"b1\" \"c1\"",
        false,
        Expect::Ok("{\"a\": \"a1 a2\", \"b\": \"b1\", \"c\": \"c1\", \"d\": \"1\"}"),
    ),
    (
        "acl {{a=test}}",
        "acl",
        false,
        Expect::Ok("{\"a\": \"test\"}"),
    ),
    (
        "skip {{a}} more skip.",
        "skip {\"a\": \"b\", \"c\": \"d\"} more skip.",
        false,
        Expect::Ok("{\"a\": \"{\\\"a\\\": \\\"b\\\", \\\"c\\\": \\\"d\\\"}\"}"),
    ),
    (
        "skip {{a}} more skip {{b}}.",
        "skip {\"a\": \"b\", \"c\": \"d\"} more skip x.",
        false,
        Expect::Ok("{\"a\": \"{\\\"a\\\": \\\"b\\\", \\\"c\\\": \\\"d\\\"}\", \"b\": \"x\"}"),
    ),
    (
        "s {{a}} more {{ b }} more {{ c=99 }} more {{ d = 99 }}",
        "s one more two more three more",
        false,
        Expect::Ok("{\"a\": \"one\", \"b\": \"two\", \"c\": \"three\", \"d\": \"99\"}"),
    ),
    (
        "skip {{ a = value }} more",
        "skip one more",
        false,
        Expect::Ok("{\"a\": \"one\"}"),
    ),
    (
        "skip {{ a = value }} more",
        "skip more",
        false,
        Expect::Ok("{\"a\": \"value\"}"),
    ),
    (
        "two by two hands of {{ color = {{ colors.default_color }} }}",
        "two by two hands of",
        false,
        Expect::Ok("{\"color\": \"{{ colors.default_color }}\"}"),
    ),
    (
        "testing {{ a }}",
        "testing value b=value2",
        false,
        Expect::Ok("{\"a\": \"value\", \"b\": \"value2\"}"),
    ),
    (
        "testing {{ a=new }}",
        "testing b=\"another value\"",
        false,
        Expect::Ok("{\"a\": \"new\", \"b\": \"another value\"}"),
    ),
    (
        "testing {{ b=abc }} {{ c=xyz }}",
        "testing newvalue d={\"1\": \"2\"} e=\"long value\"",
        false,
        Expect::Ok("{\"b\": \"newvalue\", \"c\": \"xyz\", \"d\": \"{\\\"1\\\": \\\"2\\\"}\", \"e\": \"long value\"}"),
    ),
    (
        "skip {{d=test1}} more skip {{e=test1}}.",
        "skip more skip",
        false,
        Expect::Ok("{\"d\": \"test1\", \"e\": \"test1\"}"),
    ),
    (
        "skip {{d=test}} more skip {{e=test}}",
        "skip ponies more skip",
        false,
        Expect::Ok("{\"d\": \"ponies\", \"e\": \"test\"}"),
    ),
    (
        "skip {{d}} more skip {{e}}.",
        "",
        false,
        Expect::Fails("Command \"\" doesn't match format string \"skip {{d}} more skip {{e}}.\""),
    ),
    (
        "{{ p0='http' }} g {{ p1=p }} a {{ url }} {{ p2={'a':'b'} }} {{ p3={{ e.i }} }}",
        "g a http://google.com {{ execution.id }} p4='testing' p5={'a':'c'}",
        false,
        Expect::Ok("{\"p0\": \"http\", \"p1\": \"p\", \"url\": \"http://google.com\", \"p2\": \"{{ execution.id }}\", \"p3\": \"{{ e.i }}\", \"p4\": \"testing\", \"p5\": \"{'a':'c'}\"}"),
    ),
    (
        "foo bar ponies",
        "foo lulz ponies",
        false,
        Expect::Fails("Command \"foo lulz ponies\" doesn't match format string \"foo bar ponies\""),
    ),
    (
        "foo bar",
        "foo bar pony1=foo pony2=bar",
        false,
        Expect::Ok("{\"pony1\": \"foo\", \"pony2\": \"bar\"}"),
    ),
    (
        "^\\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)",
        "foo ASDF-1234",
        false,
        Expect::Ok("{\"issue_key\": \"ASDF-1234\"}"),
    ),
    (
        "^\\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)",
        "bar foo ASDF-1234",
        false,
        Expect::Fails("Command \"bar foo ASDF-1234\" doesn't match format string \"^\\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)\""),
    ),
    (
        "foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)\\s*$",
        "foo ASDF-1234",
        false,
        Expect::Ok("{\"issue_key\": \"ASDF-1234\"}"),
    ),
    (
        "foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)\\s*$",
        "foo ASDF-1234 bar",
        false,
        Expect::Fails("Command \"foo ASDF-1234 bar\" doesn't match format string \"foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)\\s*$\""),
    ),
    (
        "^\\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+) bar\\s*$",
        "foo ASDF-1234 bar",
        false,
        Expect::Ok("{\"issue_key\": \"ASDF-1234\"}"),
    ),
    (
        "^\\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)\\s*$",
        "bar ASDF-1234",
        false,
        Expect::Fails("Command \"bar ASDF-1234\" doesn't match format string \"^\\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)\\s*$\""),
    ),
    (
        "run {{cmd}} {{hosts=localhost}}",
        "run uname -a 10.0.10.1",
        false,
        Expect::Ok("{\"cmd\": \"uname\", \"hosts\": \"-a 10.0.10.1\"}"),
    ),
    (
        "run {{cmd}} on {{hosts}}",
        "run ls on h1 hosts=h2",
        false,
        Expect::Ok("{\"cmd\": \"ls\", \"hosts\": \"h2\"}"),
    ),
    (
        "How do I feel? I feel... {{status}}!",
        "How do I feel? I feel... great!",
        false,
        Expect::Fails("Command \"How do I feel? I feel... great!\" doesn't match format string \"How do I feel? I feel... {{status}}!\""),
    ),
    (
        "How do I feel? I feel... {{status}}!",
        "How do I fee I feelxyz great!",
        false,
        Expect::Ok("{\"status\": \"great\"}"),
    ),
    (
        "run {{cmd}} on {{hosts}}",
        "RUN date ON localhost",
        false,
        Expect::Fails("Command \"RUN date ON localhost\" doesn't match format string \"run {{cmd}} on {{hosts}}\""),
    ),
    (
        "run {{cmd}}",
        "   run date   ",
        false,
        Expect::Ok("{\"cmd\": \"date\"}"),
    ),
    (
        "run {{cmd}}",
        "run a\nb",
        false,
        Expect::Ok("{\"cmd\": \"a\\nb\"}"),
    ),
    (
        "run {{cmd}} now",
        "run x\nnow",
        false,
        Expect::Fails("Command \"run x\nnow\" doesn't match format string \"run {{cmd}} now\""),
    ),
    (
        "run {{cmd}} on {{hosts}}",
        "run 'ls -la' on localhost",
        false,
        Expect::Ok("{\"cmd\": \"ls -la\", \"hosts\": \"localhost\"}"),
    ),
    (
        "run {{cmd}} on {{hosts}}",
        "run ls on \"a=b\"",
        false,
        Expect::Fails("Command \"run ls on \"a=b\"\" doesn't match format string \"run {{cmd}} on {{hosts}}\""),
    ),
    (
        "run {{cmd}}",
        "run ",
        false,
        Expect::Ok("{\"cmd\": \" \"}"),
    ),
    (
        "",
        "x=1 y=2",
        false,
        Expect::Ok("{\"x\": \"1\", \"y\": \"2\"}"),
    ),
    (
        "",
        "hello",
        false,
        Expect::Fails("Command \"hello\" doesn't match format string \"\""),
    ),
    (
        "foo {{a}} bar",
        "foo x=1 bar x=1",
        false,
        Expect::Fails("Command \"foo x=1 bar x=1\" doesn't match format string \"foo {{a}} bar\""),
    ),
    (
        "run {{cmd}} on {{hosts}}",
        "run \"ls on localhost",
        false,
        Expect::Ok("{\"cmd\": \"ls\", \"hosts\": \"localhost\"}"),
    ),
    (
        "(?:\\b|^)run {{cmd}}",
        "xx run date",
        false,
        Expect::Ok("{\"cmd\": \"date\"}"),
    ),
    (
        "(?:^|\\b)run {{cmd}}",
        "xx run date",
        false,
        Expect::Fails("Command \"xx run date\" doesn't match format string \"(?:^|\\b)run {{cmd}}\""),
    ),
    (
        "run {{cmd}}$",
        "run date",
        false,
        Expect::Ok("{\"cmd\": \"date \"}"),
    ),
    (
        "run {{cmd}}\\Z",
        "run date\n",
        false,
        Expect::Ok("{\"cmd\": \"date\\n \"}"),
    ),
    (
        "\\Arun {{cmd}}",
        " run date",
        false,
        Expect::Fails("Command \" run date\" doesn't match format string \"\\Arun {{cmd}}\""),
    ),
    (
        "run {~} {{cmd}}",
        "run {~} date",
        false,
        Expect::Ok("{\"cmd\": \"date\"}"),
    ),
    (
        "deploy {{app}} to {{env=staging}}",
        "deploy web",
        false,
        Expect::Fails("Command \"deploy web\" doesn't match format string \"deploy {{app}} to {{env=staging}}\""),
    ),
    (
        "deploy {{app}} to {{env=staging}}",
        "deploy web to ",
        false,
        Expect::Ok("{\"app\": \"web\", \"env\": \" \"}"),
    ),
    (
        "deploy {{app}}",
        "deploy web env=prod",
        false,
        Expect::Ok("{\"app\": \"web\", \"env\": \"prod\"}"),
    ),
    (
        "x {{a}}",
        "x a=1 b=2",
        false,
        Expect::Fails("Command \"x a=1 b=2\" doesn't match format string \"x {{a}}\""),
    ),
    (
        "{{a}} and {{b}}",
        "1 and 2 and 3 and 4",
        false,
        Expect::Ok("{\"a\": \"1\", \"b\": \"2 and 3 and 4\"}"),
    ),
    (
        "multi {{x}}",
        "multi a multi b",
        true,
        Expect::Ok("[{\"x\": \"a multi b\"}]"),
    ),
    (
        "(?P<x>\\w+)=(?P<y>\\w+)",
        "a=b c=d",
        true,
        Expect::Ok("[]"),
    ),
    (
        "show {{n}}",
        "show x k = v",
        false,
        Expect::Ok("{\"n\": \"x k = v\"}"),
    ),
    (
        "show {{n}}",
        "show x k=\"\"",
        false,
        Expect::Ok("{\"n\": \"x\", \"k\": \"\"}"),
    ),
    (
        "show {{n}}",
        "show x k=''",
        false,
        Expect::Ok("{\"n\": \"x\", \"k\": \"\"}"),
    ),
    (
        "go {{a=1}}",
        "go",
        false,
        Expect::Ok("{\"a\": \"1\"}"),
    ),
    (
        "go {{a=\"\"}}",
        "go",
        false,
        Expect::Ok("{\"a\": \"\"}"),
    ),
    (
        "(?i)run {{cmd}}",
        "RUN date",
        false,
        Expect::ReError,
    ),
    (
        "run {{cmd}} (on|at) {{host}}",
        "run date at web1",
        false,
        Expect::Ok("{\"cmd\": \"date\", \"host\": \"web1\"}"),
    ),
    (
        "run [a-z]+ {{x}}",
        "run abc 1",
        false,
        Expect::Ok("{\"x\": \"1\"}"),
    ),
    (
        "a{2} {{x}}",
        "aa 1",
        false,
        Expect::Ok("{\"x\": \"1\"}"),
    ),
    (
        "a{,2} {{x}}",
        "a 1",
        false,
        Expect::Ok("{\"x\": \"1\"}"),
    ),
    (
        "x {{y}}",
        "x a\u{a0}b",
        false,
        Expect::Ok("{\"y\": \"a\u{a0}b\"}"),
    ),
    (
        "x {{y}} z",
        "x a\u{1c}z",
        false,
        Expect::Fails("Command \"x a\u{1c}z\" doesn't match format string \"x {{y}} z\""),
    ),
    (
        "x {{y}}",
        "x \"quoted value\"",
        false,
        Expect::Ok("{\"y\": \"quoted value\"}"),
    ),
    (
        "x {{y}}",
        "x 'quoted value",
        false,
        Expect::Ok("{\"y\": \"quoted value\"}"),
    ),
    (
        "restart {{service}} on {{hosts}}",
        "restart nginx on web1,web2",
        false,
        Expect::Ok("{\"service\": \"nginx\", \"hosts\": \"web1,web2\"}"),
    ),
    (
        "broken {{a.b}}",
        "broken x",
        false,
        Expect::ReError,
    ),
    (
        "x {{a}} {{a}}",
        "x 1 2",
        false,
        Expect::ReError,
    ),
    (
        "x {{a=}}",
        "x",
        false,
        Expect::ReError,
    ),
    (
        "x {{a=}} y {{b}}",
        "x y 1",
        false,
        Expect::Ok("{\"a\": \"y 1\"}"),
    ),
];

#[test]
fn parser_agrees_with_st2_on_its_own_tests_and_quirks() {
    for (format, command, multiple, expect) in PARSER_CASES {
        let got = matching::extract_parameters(format, command, *multiple);
        let case = format!("format {format:?}, command {command:?}");
        match (expect, got) {
            (Expect::Ok(want), Ok(sets)) => {
                let got = if *multiple {
                    Value::Array(sets.into_iter().map(Value::Object).collect())
                } else {
                    Value::Object(sets.into_iter().next().unwrap_or_default())
                };
                let want: Value = serde_json::from_str(want).unwrap();
                // Same values in the same order.
                assert_eq!(got.to_string(), want.to_string(), "{case}");
            }
            (Expect::Fails(want), Err(e)) => assert_eq!(&e.to_string(), want, "{case}"),
            (Expect::ReError, Err(matching::ParseError::Regex(_))) => {}
            (_, got) => panic!("{case}: got {got:?}"),
        }
    }
}

// ----- Jinja as st2 configures it -------------------------------------------------------

enum Rendered {
    Text(&'static str),
    /// `UndefinedError` with Jinja2's message.
    Undefined(&'static str),
}

// (template, StrictUndefined, `execution` passed as an API object, what Jinja2 3.1.6 in
// st2's environment — trim_blocks, lstrip_blocks — renders).
const JINJA_CASES: &[(&str, bool, bool, Rendered)] = &[
    ("x {{ foo }}", true, true, Rendered::Undefined("'foo' is undefined")),
    ("{{execution.nope}}", true, true, Rendered::Undefined("'st2common.models.api.execution.ActionExecutionAPI object' has no attribute 'nope'")),
    ("{{ execution.parameters.nope }}", true, true, Rendered::Undefined("'dict object' has no attribute 'nope'")),
    ("{{ execution.list[3] }}", true, true, Rendered::Undefined("list object has no element 3")),
    ("{{ execution.parameters[0] }}", true, true, Rendered::Undefined("dict object has no element 0")),
    ("{{ execution['parameters']['cmd'] }}", true, true, Rendered::Text("date")),
    ("{% if execution.status == 'succeeded' %}ok{% else %}no{% endif %}", true, true, Rendered::Text("ok")),
    ("{{ execution.parameters }}", true, false, Rendered::Text("{'cmd': 'date', 'n': 3}")),
    ("{% for k, v in execution.parameters.items() %}\n  {{k}}={{v}}\n{% endfor %}\nend\n", true, false, Rendered::Text("  cmd=date\n  n=3\nend")),
    ("[{{ execution.result.stdout | trim }}]", true, false, Rendered::Text("[out]")),
    ("[{{ nothing }}]", false, false, Rendered::Text("[]")),
    ("{{ execution.result.missing.deeper }}", false, false, Rendered::Undefined("'dict object' has no attribute 'missing'")),
    ("{{ true }} {{ none }} {{ 2.0 }} {{ 7 / 2 }} {{ [1, 'a', none] }} {{ 7 // 2 }}", true, false, Rendered::Text("True None 2.0 3.5 [1, 'a', None] 3")),
    ("{{ execution.list | length }} {{ execution.list[-1] }} {{ execution.parameters | length }}", true, false, Rendered::Text("2 2 2")),
    ("{% if execution.nope %}y{% endif %}", true, false, Rendered::Undefined("'dict object' has no attribute 'nope'")),
    ("{{ execution.nope | default('d') }} {{ execution.nope is defined }}", true, false, Rendered::Text("d False")),
    ("{{ 'x' ~ execution.parameters.n }}", true, false, Rendered::Text("x3")),
    ("a\n  {% if true %}\n  b\n  {% endif %}\nc", true, false, Rendered::Text("a\n  b\nc")),
];

// Jinja2 builtins the emulator writes itself (`truncate`, `wordcount`, `center`,
// `dictsort`'s tuples) and Python's unbounded ints, as Jinja2 3.1.6 renders them
// (`jinja2/filters.py`: `do_truncate`, `do_wordcount`, `do_center`, `do_dictsort`).
const JINJA_BUILTIN_CASES: &[(&str, bool, bool, Rendered)] = &[
    ("{{ 'Hello world, how are you'|truncate(12) }}", false, false, Rendered::Text("Hello...")),
    ("{{ 'Hello world, how are you'|truncate(12, true) }}", false, false, Rendered::Text("Hello wor...")),
    ("{{ 'Hello world, how are you'|truncate(12, end='!', leeway=0) }}", false, false, Rendered::Text("Hello!")),
    ("{{ 'abcdefghij'|truncate(6) }}", false, false, Rendered::Text("abcdefghij")),
    ("{{ 'abcdefghij'|truncate(6, leeway=0) }}", false, false, Rendered::Text("abc...")),
    ("{{ 'abcdefghij'|truncate(length=6, killwords=False, end='>>', leeway=0) }}", false, false, Rendered::Text("abcd>>")),
    ("[{{ nothing|truncate(3) }}]", false, false, Rendered::Text("[]")),
    ("{{ 'héllo wörld ünïcode'|truncate(10, leeway=0) }}", false, false, Rendered::Text("héllo...")),
    ("{{ 'Hello, world! foo_bar 42 x-y'|wordcount }}", false, false, Rendered::Text("6")),
    ("{{ ''|wordcount }} {{ 123|wordcount }} {{ none|wordcount }} {{ nothing|wordcount }}", false, false, Rendered::Text("0 1 1 0")),
    ("{{ 'naïve café'|wordcount }}", false, false, Rendered::Text("2")),
    ("[{{ 'ab'|center(7) }}] [{{ 'abc'|center(6) }}] [{{ 'ab'|center(6) }}] [{{ 'abc'|center(7) }}] [{{ 'abcd'|center(2) }}] [{{ 7|center(5) }}]", false, false, Rendered::Text("[   ab  ] [ abc  ] [  ab  ] [  abc  ] [abcd] [  7  ]")),
    ("[{{ 'x'|center }}]", false, false, Rendered::Text("[                                       x                                        ]")),
    ("[{{ 'x'|center(width=4) }}]", false, false, Rendered::Text("[ x  ]")),
    ("{{ execution.parameters|dictsort }}", false, false, Rendered::Text("[('cmd', 'date'), ('n', 3)]")),
    ("{% for item in execution.parameters|dictsort %}{{ item }};{% endfor %}", false, false, Rendered::Text("('cmd', 'date');('n', 3);")),
    ("{% for k, v in execution.parameters|dictsort(reverse=true) %}{{ k }}={{ v }};{% endfor %}", false, false, Rendered::Text("n=3;cmd=date;")),
    ("{{ {'b': 1, 'A': 2, 'c': 0}|dictsort }} {{ {'b': 1, 'A': 2, 'c': 0}|dictsort(true) }} {{ {'b': 1, 'A': 2, 'c': 0}|dictsort(by='value') }} {{ {'b': 1, 'A': 2, 'c': 0}|dictsort(false, 'value', true) }}", false, false, Rendered::Text("[('A', 2), ('b', 1), ('c', 0)] [('A', 2), ('b', 1), ('c', 0)] [('c', 0), ('b', 1), ('A', 2)] [('A', 2), ('b', 1), ('c', 0)]")),
    ("{{ (execution.parameters|dictsort)[0] }} {{ (execution.parameters|dictsort)[0][1] }} {{ execution.parameters|dictsort|length }}", false, false, Rendered::Text("('cmd', 'date') date 2")),
    ("{{ 10**20 }} {{ 2**64 }} {{ 2**127 }} {{ -(2**127) }} {{ 2**127 + (2**127 - 1) }} {{ [10**20, 1] }} {{ {'a': 10**19} }} {{ 10**20 // 3 }} {{ 2**-1 }}", false, false, Rendered::Text("100000000000000000000 18446744073709551616 170141183460469231731687303715884105728 -170141183460469231731687303715884105728 340282366920938463463374607431768211455 [100000000000000000000, 1] {'a': 10000000000000000000} 33333333333333333333 0.5")),
    ("[{{ nothing|truncate(3) }}]", true, false, Rendered::Undefined("'nothing' is undefined")),
    ("{{ nothing|wordcount }}", true, false, Rendered::Undefined("'nothing' is undefined")),
    ("{{ nothing|center(3) }}", true, false, Rendered::Undefined("'nothing' is undefined")),
];

#[test]
fn jinja_renders_jinja2s_builtins_and_python_values() {
    check_jinja_cases(JINJA_BUILTIN_CASES);
}

/// Templates Jinja2 refuses: `do_truncate`'s assertions, `do_dictsort`'s `by`, a filter
/// argument given twice.
#[test]
fn jinja_refuses_what_jinja2s_builtins_refuse() {
    for (template, want) in [
        ("{{ 'abcdef'|truncate(2) }}", "expected length >= 3, got 2"),
        (
            "{{ 'abcdef'|truncate(5, leeway=-1) }}",
            "expected leeway >= 0, got -1",
        ),
        (
            "{{ {'a': 1}|dictsort(by='size') }}",
            "You can only sort by either",
        ),
        (
            "{{ 'x'|center(3, width=4) }}",
            "got multiple values for argument 'width'",
        ),
        ("{{ 'x'|center(3, size=4) }}", ""),
        // Python prints 340282366920938463463374607431768211456; minijinja's integers stop
        // at u128, so the emulator cannot render it.
        ("{{ 2**128 }}", "unable to calculate"),
    ] {
        match jinja::render(template, &[], jinja::Extras::default(), false) {
            Err(jinja::JinjaError::Other(e)) => assert!(e.contains(want), "{template:?}: {e}"),
            got => panic!("{template:?}: got {got:?}"),
        }
    }
}

#[test]
fn jinja_renders_as_st2s_environment_does() {
    check_jinja_cases(JINJA_CASES);
}

fn check_jinja_cases(cases: &[(&str, bool, bool, Rendered)]) {
    let execution = json!({"id": "abc", "status": "succeeded", "parameters": {"cmd": "date", "n": 3},
        "list": [1, 2], "result": {"stdout": "  out  \n", "return_code": 0}});
    for (template, strict, api, want) in cases {
        let var = if *api {
            jinja::Var::api("execution", execution.clone(), jinja::EXECUTION_API)
        } else {
            jinja::Var::dict("execution", execution.clone())
        };
        let got = jinja::render(template, &[var], jinja::Extras::default(), *strict);
        match (want, got) {
            (Rendered::Text(t), Ok(s)) => assert_eq!(&s, t, "{template:?}"),
            (Rendered::Undefined(m), Err(jinja::JinjaError::Undefined(e))) => {
                assert_eq!(&e, m, "{template:?}");
            }
            (_, got) => panic!("{template:?}: got {got:?}"),
        }
    }
}

// ----- the action registry: casts, schema validation, immutables -------------------------

// (action, parameters as extracted from a command, what st2 stores or its faultstring),
// produced by running st2's `cast_params` (with the alias controller's array override),
// `get_schema_for_action_parameters` and `util_schema.validate` with jsonschema 4.26
// over the actions' and runners' YAML from st2 master.
const PARAM_CASES: &[(&str, &str, Result<&str, &str>)] = &[
    (
        "core.local",
        "{\"cmd\": \"date\"}",
        Ok("{\"cmd\": \"date\"}"),
    ),
    (
        "core.local",
        "{\"cmd\": \"date\", \"timeout\": \"30\"}",
        Ok("{\"cmd\": \"date\", \"timeout\": 30}"),
    ),
    (
        "core.local",
        "{\"cmd\": \"date\", \"timeout\": \"soon\"}",
        Err("Failed to cast value \"soon\" (type: str) for parameter \"timeout\" of type \"integer\": invalid literal for int() with base 10: 'soon'. Perhaps the value is of an invalid type?"),
    ),
    (
        "core.local",
        "{\"cmd\": \"date\", \"timeout\": \"2.5\"}",
        Err("Failed to cast value \"2.5\" (type: str) for parameter \"timeout\" of type \"integer\": invalid literal for int() with base 10: '2.5'. Perhaps the value is of an invalid type?"),
    ),
    (
        "core.local",
        "{\"cmd\": \"date\", \"who\": \"world\"}",
        Err("Additional properties are not allowed ('who' was unexpected)\n\nFailed validating 'additionalProperties' in schema:\n    {'type': 'object',\n     'properties': {'cmd': {'description': 'Arbitrary Linux command to be '\n                                           'executed on the local host.',\n                            'type': 'string',\n                            'required': True},\n                    'cwd': {'description': 'Working directory where the '\n                                           'command will be executed in',\n                            'type': ['string', 'null']},\n                    'env': {'description': 'Environment variables which '\n                                           'will be available to the '\n                                           'command(e.g. '\n                                           'key1=val1,key2=val2)',\n                            'type': ['object', 'null']},\n                    'kwarg_op': {'default': '--',\n                                 'description': 'Operator to use in front '\n                                                'of keyword args i.e. \"--\" '\n                                                'or \"-\".',\n                                 'type': 'string'},\n                    'sudo': {'default': False,\n                             'description': 'The command will be executed '\n                                            'with sudo.',\n                             'type': 'boolean',\n                             'immutable': True},\n                    'sudo_password': {'default': None,\n                                      'description': 'Sudo password. To be '\n                                                     'used when '\n                                                     'passwordless sudo is '\n                                                     'not allowed.',\n                                      'type': ['string', 'null'],\n                                      'secret': True,\n                                      'required': False},\n                    'timeout': {'default': 60,\n                                'description': 'Action timeout in seconds. '\n                                               'Action will get killed if '\n                                               \"it doesn't finish in \"\n                                               'timeout seconds.',\n                                'type': 'integer'}},\n     'additionalProperties': False,\n     'title': 'local',\n     'description': 'Action that executes an arbitrary Linux command on '\n                    'the localhost.'}\n\nOn instance:\n    {'cmd': 'date',\n     'who': 'world',\n     'kwarg_op': '--',\n     'sudo': False,\n     'sudo_password': None,\n     'timeout': 60}"),
    ),
    (
        "core.local",
        "{\"who\": \"world\", \"zed\": \"1\", \"abc\": \"2\"}",
        Err("Additional properties are not allowed ('abc', 'who', 'zed' were unexpected)\n\nFailed validating 'additionalProperties' in schema:\n    {'type': 'object',\n     'properties': {'cmd': {'description': 'Arbitrary Linux command to be '\n                                           'executed on the local host.',\n                            'type': 'string',\n                            'required': True},\n                    'cwd': {'description': 'Working directory where the '\n                                           'command will be executed in',\n                            'type': ['string', 'null']},\n                    'env': {'description': 'Environment variables which '\n                                           'will be available to the '\n                                           'command(e.g. '\n                                           'key1=val1,key2=val2)',\n                            'type': ['object', 'null']},\n                    'kwarg_op': {'default': '--',\n                                 'description': 'Operator to use in front '\n                                                'of keyword args i.e. \"--\" '\n                                                'or \"-\".',\n                                 'type': 'string'},\n                    'sudo': {'default': False,\n                             'description': 'The command will be executed '\n                                            'with sudo.',\n                             'type': 'boolean',\n                             'immutable': True},\n                    'sudo_password': {'default': None,\n                                      'description': 'Sudo password. To be '\n                                                     'used when '\n                                                     'passwordless sudo is '\n                                                     'not allowed.',\n                                      'type': ['string', 'null'],\n                                      'secret': True,\n                                      'required': False},\n                    'timeout': {'default': 60,\n                                'description': 'Action timeout in seconds. '\n                                               'Action will get killed if '\n                                               \"it doesn't finish in \"\n                                               'timeout seconds.',\n                                'type': 'integer'}},\n     'additionalProperties': False,\n     'title': 'local',\n     'description': 'Action that executes an arbitrary Linux command on '\n                    'the localhost.'}\n\nOn instance:\n    {'who': 'world',\n     'zed': '1',\n     'abc': '2',\n     'kwarg_op': '--',\n     'sudo': False,\n     'sudo_password': None,\n     'timeout': 60}"),
    ),
    (
        "core.local",
        "{\"cwd\": \"/tmp\"}",
        Err("'cmd' is a required property\n\nFailed validating 'required' in schema['properties']['cmd']:\n    {'type': 'object',\n     'properties': {'cmd': {'description': 'Arbitrary Linux command to be '\n                                           'executed on the local host.',\n                            'type': 'string',\n                            'required': True},\n                    'cwd': {'description': 'Working directory where the '\n                                           'command will be executed in',\n                            'type': ['string', 'null']},\n                    'env': {'description': 'Environment variables which '\n                                           'will be available to the '\n                                           'command(e.g. '\n                                           'key1=val1,key2=val2)',\n                            'type': ['object', 'null']},\n                    'kwarg_op': {'default': '--',\n                                 'description': 'Operator to use in front '\n                                                'of keyword args i.e. \"--\" '\n                                                'or \"-\".',\n                                 'type': 'string'},\n                    'sudo': {'default': False,\n                             'description': 'The command will be executed '\n                                            'with sudo.',\n                             'type': 'boolean',\n                             'immutable': True},\n                    'sudo_password': {'default': None,\n                                      'description': 'Sudo password. To be '\n                                                     'used when '\n                                                     'passwordless sudo is '\n                                                     'not allowed.',\n                                      'type': ['string', 'null'],\n                                      'secret': True,\n                                      'required': False},\n                    'timeout': {'default': 60,\n                                'description': 'Action timeout in seconds. '\n                                               'Action will get killed if '\n                                               \"it doesn't finish in \"\n                                               'timeout seconds.',\n                                'type': 'integer'}},\n     'additionalProperties': False,\n     'title': 'local',\n     'description': 'Action that executes an arbitrary Linux command on '\n                    'the localhost.'}\n\nOn instance['cmd']:\n    {'cwd': '/tmp',\n     'kwarg_op': '--',\n     'sudo': False,\n     'sudo_password': None,\n     'timeout': 60}"),
    ),
    (
        "core.local",
        "{\"cmd\": \"date\", \"sudo\": \"true\"}",
        Err("'true' is not of type 'boolean'\n\nFailed validating 'type' in schema['properties']['sudo']:\n    {'default': False,\n     'description': 'The command will be executed with sudo.',\n     'type': 'boolean',\n     'immutable': True}\n\nOn instance['sudo']:\n    'true'"),
    ),
    (
        "core.local",
        "{\"cmd\": \"date\", \"sudo\": \"yes\"}",
        Err("'yes' is not of type 'boolean'\n\nFailed validating 'type' in schema['properties']['sudo']:\n    {'default': False,\n     'description': 'The command will be executed with sudo.',\n     'type': 'boolean',\n     'immutable': True}\n\nOn instance['sudo']:\n    'yes'"),
    ),
    (
        "core.local",
        "{\"cmd\": \"date\", \"env\": \"prod\"}",
        Err("Failed to cast value \"prod\" (type: str) for parameter \"env\" of type \"object\": malformed node or string on line 1: <ast.Name object at 0x7f6e7ceedbd0>. Perhaps the value is of an invalid type?"),
    ),
    (
        "core.local",
        "{\"cmd\": \"date\", \"env\": \"{\\\"A\\\": \\\"1\\\"}\"}",
        Ok("{\"cmd\": \"date\", \"env\": {\"A\": \"1\"}}"),
    ),
    (
        "core.local",
        "{\"cmd\": \"date\", \"env\": \"{'A': 1}\"}",
        Ok("{\"cmd\": \"date\", \"env\": {\"A\": 1}}"),
    ),
    (
        "core.local",
        "{\"cmd\": \"date\", \"cwd\": null}",
        Ok("{\"cmd\": \"date\", \"cwd\": null}"),
    ),
    (
        "core.remote",
        "{\"cmd\": \"uptime\", \"hosts\": \"web1, web2\"}",
        Ok("{\"cmd\": \"uptime\", \"hosts\": \"web1, web2\"}"),
    ),
    (
        "core.remote",
        "{\"cmd\": \"uptime\"}",
        Err("'hosts' is a required property\n\nFailed validating 'required' in schema['properties']['hosts']:\n    {'type': 'object',\n     'properties': {'bastion_host': {'description': 'The host SSH '\n                                                    'connections will be '\n                                                    'proxied through. '\n                                                    'Note: This connection '\n                                                    'is made using the '\n                                                    'same parameters as '\n                                                    'the final connection.',\n                                     'required': False,\n                                     'type': ['string', 'null']},\n                    'cmd': {'description': 'Arbitrary Linux command to be '\n                                           'executed on the remote '\n                                           'host(s).',\n                            'type': 'string',\n                            'required': True},\n                    'cwd': {'default': '/tmp',\n                            'description': 'Working directory where the '\n                                           'script will be executed in',\n                            'type': 'string'},\n                    'dir': {'default': '/tmp',\n                            'description': 'The working directory where '\n                                           'the script will be copied to '\n                                           'on the remote host.',\n                            'immutable': True,\n                            'type': 'string'},\n                    'env': {'description': 'Environment variables which '\n                                           'will be available to the '\n                                           'command(e.g. '\n                                           'key1=val1,key2=val2)',\n                            'type': ['object', 'null']},\n                    'hosts': {'description': 'A comma delimited string of '\n                                             'a list of hosts where the '\n                                             'remote command will be '\n                                             'executed. For example: '\n                                             'example1.com,example2.com,example3.com:5555',\n                              'required': True,\n                              'type': 'string'},\n                    'kwarg_op': {'default': '--',\n                                 'description': 'Operator to use in front '\n                                                'of keyword args i.e. \"--\" '\n                                                'or \"-\".',\n                                 'type': 'string'},\n                    'parallel': {'default': False,\n                                 'description': 'Default to parallel '\n                                                'execution.',\n                                 'immutable': True,\n                                 'type': 'boolean'},\n                    'passphrase': {'description': 'Passphrase for the '\n                                                  'private key, if needed.',\n                                   'required': False,\n                                   'secret': True,\n                                   'type': ['string', 'null']},\n                    'password': {'description': 'Password used to log in. '\n                                                'If not provided, private '\n                                                'key from the config file '\n                                                'is used.',\n                                 'required': False,\n                                 'secret': True,\n                                 'type': ['string', 'null']},\n                    'port': {'description': 'SSH port. If not specified as '\n                                            'part of the hosts list, '\n                                            'default port will be used '\n                                            '(22).',\n                             'required': False,\n                             'type': ['integer', 'null']},\n                    'private_key': {'description': 'Private key material '\n                                                   'or path to the private '\n                                                   'key file on disk used '\n                                                   'to log in.',\n                                    'required': False,\n                                    'secret': True,\n                                    'type': ['string', 'null']},\n                    'sudo': {'default': False,\n                             'description': 'The remote command will be '\n                                            'executed with sudo.',\n                             'type': 'boolean',\n                             'immutable': True},\n                    'sudo_password': {'default': None,\n                                      'description': 'Sudo password. To be '\n                                                     'used when '\n                                                     'passwordless sudo is '\n                                                     'not allowed.',\n                                      'type': ['string', 'null'],\n                                      'required': False,\n                                      'secret': True},\n                    'timeout': {'default': 60,\n                                'description': 'Action timeout in seconds. '\n                                               'Action will get killed if '\n                                               \"it doesn't finish in \"\n                                               'timeout seconds.',\n                                'type': 'integer'},\n                    'username': {'description': 'Username used to log-in. '\n                                                'If not provided, default '\n                                                'username from config is '\n                                                'used.',\n                                 'required': False,\n                                 'type': ['string', 'null']}},\n     'additionalProperties': False,\n     'title': 'remote',\n     'description': 'Action to execute arbitrary linux command remotely.'}\n\nOn instance['hosts']:\n    {'cmd': 'uptime',\n     'cwd': '/tmp',\n     'dir': '/tmp',\n     'kwarg_op': '--',\n     'parallel': False,\n     'sudo': False,\n     'sudo_password': None,\n     'timeout': 60}"),
    ),
    (
        "core.remote",
        "{\"cmd\": \"uptime\", \"hosts\": \"h\", \"port\": \"22x\"}",
        Err("Failed to cast value \"22x\" (type: str) for parameter \"port\" of type \"integer\": invalid literal for int() with base 10: '22x'. Perhaps the value is of an invalid type?"),
    ),
    (
        "core.remote",
        "{\"cmd\": \"uptime\", \"hosts\": \"h\", \"parallel\": \"false\"}",
        Err("Override of immutable parameter(s) ['parallel'] is unsupported."),
    ),
    (
        "core.http",
        "{\"url\": \"https://x\", \"method\": \"FETCH\"}",
        Err("'FETCH' is not one of ['HEAD', 'GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'PATCH', 'PURGE']\n\nFailed validating 'enum' in schema['properties']['method']:\n    {'description': 'HTTP method to use.',\n     'type': ['string', 'null'],\n     'enum': ['HEAD',\n              'GET',\n              'POST',\n              'PUT',\n              'DELETE',\n              'OPTIONS',\n              'TRACE',\n              'PATCH',\n              'PURGE']}\n\nOn instance['method']:\n    'FETCH'"),
    ),
    (
        "core.http",
        "{\"url\": \"https://x\", \"method\": \"GET\", \"timeout\": \"1.5\"}",
        Ok("{\"url\": \"https://x\", \"method\": \"GET\", \"timeout\": 1.5}"),
    ),
    (
        "core.http",
        "{\"url\": \"https://x\", \"timeout\": \"fast\"}",
        Err("Failed to cast value \"fast\" (type: str) for parameter \"timeout\" of type \"number\": could not convert string to float: 'fast'. Perhaps the value is of an invalid type?"),
    ),
    (
        "core.echo",
        "{\"message\": \"hi\"}",
        Ok("{\"message\": \"hi\"}"),
    ),
    (
        "core.echo",
        "{\"message\": \"hi\", \"cmd\": \"rm -rf /\"}",
        Err("Override of immutable parameter(s) ['cmd'] is unsupported."),
    ),
    (
        "core.noop",
        "{}",
        Ok("{}"),
    ),
    (
        "core.noop",
        "{\"x\": \"1\"}",
        Ok("{\"x\": \"1\"}"),
    ),
    (
        "ops.deploy",
        "{\"app\": \"web\", \"env\": \"prod\"}",
        Ok("{\"app\": \"web\", \"env\": \"prod\"}"),
    ),
    (
        "ops.deploy",
        "{\"cmd\": \"web\", \"env\": \"prod\"}",
        Err("Additional properties are not allowed ('cmd' was unexpected)\n\nFailed validating 'additionalProperties' in schema:\n    {'type': 'object',\n     'properties': {'debug': {'description': 'Enable runner debug mode.',\n                              'type': 'boolean',\n                              'required': False,\n                              'default': False},\n                    'content_version': {'description': 'Git revision of '\n                                                       'the pack content '\n                                                       'to use for this '\n                                                       'action execution '\n                                                       '(git commit sha / '\n                                                       'tag / branch). '\n                                                       'Only applies to '\n                                                       'packs which are '\n                                                       'git repositories.',\n                                        'type': ['string', 'null'],\n                                        'required': False},\n                    'env': {'description': 'Environment to deploy to.',\n                            'type': 'string',\n                            'default': 'staging'},\n                    'timeout': {'default': 600,\n                                'description': 'Action timeout in seconds. '\n                                               'Action will get killed if '\n                                               \"it doesn't finish in \"\n                                               'timeout seconds.',\n                                'type': 'integer'},\n                    'log_level': {'description': 'Default log level for '\n                                                 'Python runner actions.',\n                                  'type': 'string',\n                                  'default': 'DEBUG',\n                                  'enum': ['AUDIT',\n                                           'CRITICAL',\n                                           'ERROR',\n                                           'WARNING',\n                                           'INFO',\n                                           'DEBUG']},\n                    'app': {'description': 'Application to deploy.',\n                            'type': 'string',\n                            'required': True}},\n     'additionalProperties': False,\n     'title': 'deploy',\n     'description': 'Deploy an application to an environment (demo action)'}\n\nOn instance:\n    {'cmd': 'web',\n     'env': 'prod',\n     'debug': False,\n     'timeout': 600,\n     'log_level': 'DEBUG'}"),
    ),
    (
        "core.local",
        "{\"cmd\": \"date\", \"timeout\": \"1_000\"}",
        Ok("{\"cmd\": \"date\", \"timeout\": 1000}"),
    ),
    (
        "core.local",
        "{\"cmd\": \"date\", \"sudo\": \"1\"}",
        Err("'1' is not of type 'boolean'\n\nFailed validating 'type' in schema['properties']['sudo']:\n    {'default': False,\n     'description': 'The command will be executed with sudo.',\n     'type': 'boolean',\n     'immutable': True}\n\nOn instance['sudo']:\n    '1'"),
    ),
];

/// The address in `<ast.Name object at 0x…>` is whatever CPython allocated.
fn without_addresses(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(" at 0x") {
        out.push_str(&rest[..i + 6]);
        rest = rest[i + 6..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out.push_str(rest);
    out
}

#[test]
fn parameters_are_cast_and_validated_as_st2_does() {
    let reg = registry::Registry::new(&[]);
    for (action, params, want) in PARAM_CASES {
        let a = reg.get(action).unwrap();
        let params: serde_json::Map<String, Value> = serde_json::from_str(params).unwrap();
        let got = registry::prepare(a, params.clone());
        match (want, got) {
            (Ok(want), Ok(p)) => {
                let want: Value = serde_json::from_str(want).unwrap();
                assert_eq!(
                    Value::Object(p).to_string(),
                    want.to_string(),
                    "{action} {params:?}"
                );
            }
            (Err(want), Err(r)) => {
                assert_eq!(r.status, 400, "{action} {params:?}");
                assert_eq!(
                    without_addresses(&r.message),
                    without_addresses(want),
                    "{action} {params:?}"
                );
            }
            (_, got) => panic!("{action} {params:?}: got {got:?}"),
        }
    }
    assert!(reg.get("core.nothing").is_none());
    assert_eq!(
        registry::not_found("core.nothing").message,
        "Action with ref \"core.nothing\" not found "
    );
}

// ----- actions: metadata and secret parameters --------------------------------------------

/// `GET /api/v1/actions/{ref_or_id}`: by ref or id, the action's own parameters (a
/// `secret: true` one included); unknown keys are st2's 404.
#[actix_web::test]
async fn action_metadata_by_ref_and_id() {
    let em = start(EmulatorConfig::default()).await;
    let token = login(&em).await;
    let r = get(format!("{}/actions/ops.set_password", em.api_url()), &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["ref"], "ops.set_password");
    assert_eq!(r.body["uid"], "action:ops:set_password");
    assert_eq!(r.body["runner_type"], "python-script");
    assert_eq!(r.body["parameters"]["password"]["secret"], true);
    assert!(r.body["parameters"]["user"].get("secret").is_none());
    // Only the action's own parameters: no runner ones (`timeout`, `env`, ...).
    assert!(r.body["parameters"].get("timeout").is_none());
    let id = r.body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(id.len(), 24);
    let by_id = get(format!("{}/actions/{id}", em.api_url()), &token).await;
    assert_eq!(by_id.status, 200);
    assert_eq!(by_id.body, r.body);
    for key in ["ops.nothing", "5f3c1a0e9d1b2c0001a1b0ff", "not-an-id"] {
        let r = get(format!("{}/actions/{key}", em.api_url()), &token).await;
        assert_eq!(
            (r.status, r.body["faultstring"].as_str()),
            (
                404,
                Some(format!("Resource with a reference or id \"{key}\" not found").as_str())
            )
        );
    }
    let r = get(format!("{}/actions/ops.set_password", em.api_url()), "bad").await;
    assert_eq!(r.status, 401);
}

/// `GET /api/v1/actions/views/parameters/{ref_or_id}`: runner and action specs merged, so
/// a runner's secret parameters show (`core.remote`'s `password`, `sudo_password`).
#[actix_web::test]
async fn action_parameters_view_merges_runner_secrets() {
    let em = start(EmulatorConfig::default()).await;
    let token = login(&em).await;
    let url = |key: &str| format!("{}/actions/views/parameters/{key}", em.api_url());
    let r = get(url("core.remote"), &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let p = &r.body["parameters"];
    for secret in ["password", "private_key", "passphrase", "sudo_password"] {
        assert_eq!(p[secret]["secret"], true, "{secret}");
    }
    // The action's spec wins where both set a key; `immutable` is either's.
    assert_eq!(p["cmd"]["required"], true);
    assert_eq!(p["sudo"]["immutable"], true);
    assert_eq!(p["sudo"]["type"], "boolean");
    let r = get(url("ops.set_password"), &token).await;
    assert_eq!(r.body["parameters"]["password"]["secret"], true);
    assert_eq!(r.body["parameters"]["timeout"]["default"], 600);
    let r = get(url("ops.nothing"), &token).await;
    assert_eq!(
        (r.status, r.body["faultstring"].as_str()),
        (
            404,
            Some("Database lookup for ref=\"ops.nothing\" resulted in exception. Referenced action \"ops.nothing\" doesnt exist")
        )
    );
    let r = get(url("5f3c1a0e9d1b2c0001a1b0ff"), &token).await;
    assert_eq!(
        r.body["faultstring"],
        "Database lookup for id=\"5f3c1a0e9d1b2c0001a1b0ff\" resulted in exception. Unable to find the ActionDB instance. {'id': '5f3c1a0e9d1b2c0001a1b0ff'}"
    );
}

/// With RBAC on, viewing an action needs `action_view` (or `action_all`, or a role that
/// has it); the 404 comes first.
#[actix_web::test]
async fn action_view_needs_permission_with_rbac() {
    let em = start(EmulatorConfig {
        users: users(&["st2admin", "bob", "carol", "dave"]),
        rbac: true,
        roles: pairs(&[("carol", "observer")]),
        grants: pairs(&[("dave", "action_view")]),
        ..EmulatorConfig::default()
    })
    .await;
    for path in [
        "actions/ops.set_password",
        "actions/views/parameters/ops.set_password",
    ] {
        let url = format!("{}/{path}", em.api_url());
        for (user, status) in [
            ("st2admin", 200),
            ("carol", 200),
            ("dave", 200),
            ("bob", 403),
        ] {
            let r = get(url.clone(), &token_for(&em, user)).await;
            assert_eq!(r.status, status, "{user} {path}: {:?}", r.body);
        }
        let r = get(url, &token_for(&em, "bob")).await;
        assert_eq!(
            r.body["faultstring"],
            "User \"bob\" doesn't have required permission \"action_view\" on resource \"action:ops:set_password\""
        );
    }
    let r = get(
        format!("{}/actions/ops.nothing", em.api_url()),
        &token_for(&em, "bob"),
    )
    .await;
    assert_eq!(r.status, 404);
}

/// The secret-parameter alias runs `ops.set_password`, whose announced result carries
/// the password (StackStorm does not mask results): what the bridge must mask.
#[actix_web::test]
async fn a_secret_parameter_comes_back_in_the_announcement() {
    let em = start(EmulatorConfig {
        aliases: [demo_aliases(), vec![set_password_alias()]].concat(),
        ..EmulatorConfig::default()
    })
    .await;
    let token = login(&em).await;
    let body = exec_body(
        "set_password",
        "set password for {{user}} to {{password}}",
        "set password for bob to Hunter2-Secret",
    );
    let r = post(format!("{}/aliasexecution", em.api_url()), &token, &body).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["message"], "Setting the password of bob...");
    wait_until("the announcement", || !em.announcements().is_empty()).await;
    let (name, data) = em.announcements().remove(0);
    assert_eq!(name, "st2.announcement__stormbridge");
    let message = data["payload"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("Hunter2-Secret"), "{message}");
    // The execution itself is served masked, parameters and liveaction alike
    // (`ActionExecutionDB.mask_secrets`); the real value is what ran.
    let id = r.body["execution"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let e = get(format!("{}/executions/{id}", em.api_url()), &token).await;
    assert_eq!(e.status, 200, "{:?}", e.body);
    assert_eq!(e.body["parameters"]["password"], "********");
    assert_eq!(e.body["parameters"]["user"], "bob");
    assert_eq!(e.body["liveaction"]["parameters"]["password"], "********");
    assert_eq!(
        em.executions()[0]
            .parameters
            .get("password")
            .map(String::as_str),
        Some("Hunter2-Secret")
    );
}

// ----- long jobs, execution output, cancellation --------------------------------------

/// `GET` returning the raw body: status, `Content-Type`, text.
async fn get_text(url: String, token: &str) -> (u16, String, String) {
    let resp = client()
        .get(url)
        .insert_header(("X-Auth-Token", token))
        .send()
        .await;
    let mut resp = match resp {
        Ok(r) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let body = match resp.body().limit(8 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => panic!("body failed: {e}"),
    };
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (
        resp.status().as_u16(),
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn with_long_job(cfg: EmulatorConfig) -> EmulatorConfig {
    EmulatorConfig {
        aliases: [demo_aliases(), vec![long_job_alias()]].concat(),
        ..cfg
    }
}

/// Start `start long job <seconds>` as `token`'s user: the execution id.
async fn start_long_job(em: &Emulator, token: &str, seconds: u64) -> String {
    let body = exec_body(
        "long_job",
        "start long job {{seconds=30}}",
        &format!("start long job {seconds}"),
    );
    let r = post(format!("{}/aliasexecution", em.api_url()), token, &body).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["execution"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `GET /api/v1/executions/{id}?exclude_attributes=…`: `result` and `trigger_instance`
/// left out, the rest as without; an attribute `get_one` does not let be excluded is a 400
/// naming it, before the execution is looked for.
#[actix_web::test]
async fn an_execution_read_without_its_result() {
    let (em, token, id, whole) = a_finished_date().await;
    assert!(whole.get("result").is_some(), "{whole}");
    let url = format!("{}/executions/{id}", em.api_url());
    let r = get(
        format!("{url}?exclude_attributes=result,trigger_instance"),
        &token,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body.get("result").is_none(), "{:?}", r.body);
    assert_eq!(r.body["status"], "succeeded");
    assert_eq!(r.body["end_timestamp"], whole["end_timestamp"]);
    let r = get(format!("{url}?exclude_attributes=result,action"), &token).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["faultstring"],
        "Invalid or unsupported exclude attribute specified: action"
    );
    let unknown = format!(
        "{}/executions/{}?exclude_attributes=runner",
        em.api_url(),
        "0".repeat(24)
    );
    assert_eq!(get(unknown, &token).await.status, 400);
}

/// `GET /api/v1/executions/{id}?include_attributes=…`: only the named attributes and `id`
/// (st2's router cuts the answer down); a dotted name keeps that part of its object and the
/// parts st2 always reads; a name that is not a stored field, or both filters at once, is a
/// 400.
#[actix_web::test]
async fn an_execution_read_for_some_attributes_only() {
    let (em, token, id, whole) = a_finished_date().await;
    let url = format!("{}/executions/{id}", em.api_url());
    let r = get(
        format!("{url}?include_attributes=status,start_timestamp,end_timestamp,web_url"),
        &token,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut keys: Vec<&str> = r
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "end_timestamp",
            "id",
            "start_timestamp",
            "status",
            "web_url"
        ]
    );
    assert_eq!(r.body["end_timestamp"], whole["end_timestamp"]);
    assert_eq!(r.body["web_url"], whole["web_url"]);
    let r = get(format!("{url}?include_attributes=action.ref"), &token).await;
    assert_eq!(r.body["action"]["ref"], whole["action"]["ref"]);
    assert_eq!(r.body["action"]["pack"], whole["action"]["pack"]);
    assert!(
        r.body["action"].get("runner_type").is_none(),
        "{:?}",
        r.body
    );
    assert!(r.body.get("runner").is_none() && r.body.get("status").is_none());
    for bad in ["elapsed_seconds", "status,nonsense.x"] {
        let r = get(format!("{url}?include_attributes={bad}"), &token).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(
            r.body["faultstring"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Invalid or unsupported include attribute specified"),
            "{:?}",
            r.body
        );
    }
    let r = get(
        format!("{url}?include_attributes=status&exclude_attributes=result"),
        &token,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body["faultstring"]
        .as_str()
        .unwrap_or_default()
        .contains("mutually exclusive"));
}

/// An emulator, a token, and the id and whole document of a `date` run to success.
async fn a_finished_date() -> (Emulator, String, String, Value) {
    let em = start(EmulatorConfig::default()).await;
    let token = login(&em).await;
    let body = exec_body("date", "date", "date");
    let r = post(format!("{}/aliasexecution", em.api_url()), &token, &body).await;
    let id = r.body["execution"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let whole = wait_status(&em, &token, &id, "succeeded").await;
    (em, token, id, whole)
}

/// Poll `GET /api/v1/executions/{id}` until its status is `status`.
async fn wait_status(em: &Emulator, token: &str, id: &str, status: &str) -> Value {
    let url = format!("{}/executions/{id}", em.api_url());
    let deadline = Instant::now() + WAIT;
    loop {
        let r = get(url.clone(), token).await;
        if r.body["status"] == status {
            return r.body;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never reached {status}: {:?}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `ops.long_job`: `running`, a line per tick stored and published as
/// `st2.execution.output__create` (to streams that ask for it), then `succeeded` with the
/// local runner's result and the announcement; `/output` serves the lines as text.
#[actix_web::test]
async fn long_job_prints_its_output_then_succeeds() {
    let em = start(with_long_job(EmulatorConfig::default())).await;
    em.set_long_job_tick(Duration::from_millis(10));
    let token = login(&em).await;
    let mut output = Sse::connect(
        &em,
        "?events=st2.execution.output__create,st2.execution__update",
        &token,
    )
    .await;
    let mut default = Sse::connect(&em, "", &token).await;
    let r = post(
        format!("{}/aliasexecution", em.api_url()),
        &token,
        &exec_body(
            "long_job",
            "start long job {{seconds=30}}",
            "start long job 1",
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["execution"]["parameters"], json!({"seconds": 1}));
    assert_eq!(r.body["execution"]["runner"]["name"], "local-shell-cmd");
    let id = r.body["execution"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        r.body["message"],
        format!("Long job of 1 s started (execution {id}).")
    );

    let done = wait_status(&em, &token, &id, "succeeded").await;
    let lines: String = (1..=5).map(|i| format!("step {i} of 5\n")).collect();
    assert_eq!(done["action"]["ref"], "ops.long_job");
    assert_eq!(
        done["result"],
        json!({"failed": false, "succeeded": true, "return_code": 0,
               "stdout": lines.trim_end(), "stderr": ""})
    );
    assert!(done["start_timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(done["end_timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let log: Vec<&str> = done["log"]
        .as_array()
        .map(|l| l.iter().filter_map(|e| e["status"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(log, ["requested", "scheduled", "running", "succeeded"]);

    // The stream: five output records, then the end.
    let mut seen = Vec::new();
    loop {
        let (name, data) = match output.next_event(WAIT).await {
            Some(e) => e,
            None => panic!("stream ended early: {seen:?}"),
        };
        let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
        if name == "st2.execution__update" {
            if v["id"] == id.as_str() && v["status"] == "succeeded" {
                break;
            }
            continue;
        }
        assert_eq!(name, "st2.execution.output__create");
        let keys: Vec<&String> = v
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            [
                "id",
                "execution_id",
                "action_ref",
                "runner_ref",
                "timestamp",
                "output_type",
                "data"
            ]
        );
        assert_eq!(v["execution_id"], id.as_str());
        assert_eq!(v["action_ref"], "ops.long_job");
        assert_eq!(v["runner_ref"], "local-shell-cmd");
        assert_eq!(v["output_type"], "stdout");
        assert!(v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
        seen.push(v["data"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(seen.concat(), lines);
    // st2's default event list has no output events.
    let mut names = Vec::new();
    while let Some((name, _)) = default.next_event(Duration::from_millis(300)).await {
        names.push(name);
    }
    assert!(
        names.iter().any(|n| n == "st2.execution__update"),
        "{names:?}"
    );
    assert!(
        names.iter().all(|n| n != "st2.execution.output__create"),
        "{names:?}"
    );

    let url = format!("{}/executions/{id}/output", em.api_url());
    let (status, content_type, body) = get_text(url.clone(), &token).await;
    assert_eq!(
        (status, content_type.as_str(), body.as_str()),
        (200, "text/plain; charset=UTF-8", lines.as_str())
    );
    for (q, want) in [
        ("?output_type=all", lines.as_str()),
        ("?output_type=", lines.as_str()),
        ("?output_type=stdout", lines.as_str()),
        ("?output_type=stderr", ""),
        // Not checked against the spec's enum: a filter that matches nothing.
        ("?output_type=bogus", ""),
    ] {
        let (status, _, body) = get_text(format!("{url}{q}"), &token).await;
        assert_eq!((status, body.as_str()), (200, want), "{q}");
    }
    let records = em.execution_output(&id);
    assert_eq!(records.len(), 5);
    assert_eq!(records[0]["data"], "step 1 of 5\n");
    assert!(em.execution_output("nope").is_empty());
    let announced = em.announcements();
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0].0, "st2.announcement__stormbridge");
    let (status, _, body) = get_text(
        format!(
            "{}/executions/000000000000000000000000/output",
            em.api_url()
        ),
        &token,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
        json!({"faultstring": "Unable to identify resource with id \"000000000000000000000000\"."})
    );
}

/// Actions of the local and Python runners store their (emulated) output when they finish.
#[actix_web::test]
async fn finished_commands_have_their_output_stored() {
    let em = start(EmulatorConfig::default()).await;
    let token = login(&em).await;
    let r = post(
        format!("{}/aliasexecution", em.api_url()),
        &token,
        &exec_body("run_local", "run {{cmd}}", "run echo hello"),
    )
    .await;
    let id = r.body["execution"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    wait_status(&em, &token, &id, "succeeded").await;
    let url = format!("{}/executions/{id}/output", em.api_url());
    assert_eq!(
        get_text(url, &token).await,
        (200, "text/plain; charset=UTF-8".into(), "hello\n".into())
    );
    let r = post(
        format!("{}/aliasexecution", em.api_url()),
        &token,
        &exec_body("deploy", "deploy {{app}} to {{env}}", "deploy web to prod"),
    )
    .await;
    let id = r.body["execution"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    wait_status(&em, &token, &id, "succeeded").await;
    let (status, _, body) =
        get_text(format!("{}/executions/{id}/output", em.api_url()), &token).await;
    assert_eq!((status, body.as_str()), (200, ""));
}

/// A running job: `DELETE` answers `canceling` (st2's `request_cancellation`), the runner
/// then makes it `canceled` and it is announced; the command goes on printing, as st2's
/// local runner does not kill it; a second `DELETE` returns the canceled execution.
#[actix_web::test]
async fn cancelling_a_running_job() {
    let em = start(with_long_job(EmulatorConfig::default())).await;
    let token = login(&em).await;
    let mut s = Sse::connect(&em, "?events=st2.execution__update", &token).await;
    let id = start_long_job(&em, &token, 30).await;
    wait_status(&em, &token, &id, "running").await;
    wait_until("a line of output", || !em.execution_output(&id).is_empty()).await;
    let url = format!("{}/executions/{id}", em.api_url());
    let r = del(url.clone(), &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "canceling");
    assert_eq!(
        r.body["result"],
        json!({"message": "Action canceled by user.", "user": "st2admin"})
    );
    assert_eq!(r.body["context"]["cancelled_by"], "st2admin");
    assert!(r.body.get("end_timestamp").is_none());

    let canceled = wait_status(&em, &token, &id, "canceled").await;
    assert!(canceled["end_timestamp"].is_string());
    assert_eq!(canceled["result"], r.body["result"]);
    let mut statuses = Vec::new();
    while statuses.last().map(String::as_str) != Some("canceled") {
        let v = s.expect_event("st2.execution__update").await;
        if v["id"] == id.as_str() {
            statuses.push(v["status"].as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(statuses, ["scheduled", "running", "canceling", "canceled"]);
    wait_until("the announcement", || !em.announcements().is_empty()).await;
    let (name, data) = em.announcements().remove(0);
    assert_eq!(name, "st2.announcement__stormbridge");
    assert_eq!(data["payload"]["channel"], "C123");

    // The command still prints; the execution stays canceled.
    let lines = em.execution_output(&id).len();
    wait_until("more output after the cancel", || {
        em.execution_output(&id).len() > lines
    })
    .await;
    let r = del(url.clone(), &token).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("canceled"))
    );
    assert_eq!(get(url, &token).await.body["status"], "canceled");
    assert_eq!(em.announcements().len(), 1);
}

/// A job that has not started is canceled at once, with no `canceling` step; a finished
/// one gets st2's `abort(200, ...)`: status 200 and a faultstring body; an unknown id 404.
#[actix_web::test]
async fn cancelling_before_the_start_and_after_the_end() {
    let em = start(with_long_job(EmulatorConfig {
        execution_delay: Duration::from_secs(30),
        ..EmulatorConfig::default()
    }))
    .await;
    let token = login(&em).await;
    let id = start_long_job(&em, &token, 1).await;
    let url = format!("{}/executions/{id}", em.api_url());
    let r = del(url.clone(), &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "canceled");
    assert_eq!(r.body["result"]["message"], "Action canceled by user.");
    let log: Vec<&str> = r.body["log"]
        .as_array()
        .map(|l| l.iter().filter_map(|e| e["status"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(log, ["requested", "canceled"]);
    wait_until("the announcement", || em.announcements().len() == 1).await;
    let (status, _, body) = get_text(format!("{url}/output"), &token).await;
    assert_eq!((status, body.as_str()), (200, ""));

    let em = start(with_long_job(EmulatorConfig::default())).await;
    em.set_long_job_tick(Duration::from_millis(5));
    let token = login(&em).await;
    let id = start_long_job(&em, &token, 1).await;
    wait_status(&em, &token, &id, "succeeded").await;
    let r = finish(
        client()
            .delete(format!("{}/executions/{id}", em.api_url()))
            .insert_header(("X-Auth-Token", token.as_str()))
            .send()
            .await,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"faultstring": "Action cannot be canceled. State = succeeded."})
    );
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    // An error path: no cookie (st2's router adds it only to a controller's answer).
    assert!(r.headers.get("set-cookie").is_none());
    let r = del(
        format!("{}/executions/000000000000000000000000", em.api_url()),
        &token,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body["faultstring"],
        "Unable to identify resource with id \"000000000000000000000000\"."
    );
}

/// With RBAC on: `/output` needs `execution_view` (a role that has it, or `action_view`),
/// `DELETE` needs `execution_stop` (`action_execute` on the action); the permission is
/// checked before the 404, and st2's resolver fails (500) on an unknown id for users whose
/// role does not decide it.
#[actix_web::test]
async fn output_and_cancel_permissions_with_rbac() {
    let em = start(with_long_job(EmulatorConfig {
        users: users(&["st2admin", "bob", "carol", "dave", "eve"]),
        rbac: true,
        roles: pairs(&[("carol", "observer")]),
        grants: pairs(&[("dave", "action_view")]),
        denied_actions: pairs(&[("eve", "ops.long_job")]),
        ..EmulatorConfig::default()
    }))
    .await;
    let token = token_for(&em, "st2admin");
    let id = start_long_job(&em, &token, 30).await;
    wait_status(&em, &token, &id, "running").await;
    let output = format!("{}/executions/{id}/output", em.api_url());
    let unknown = format!("{}/executions/000000000000000000000000", em.api_url());
    for (user, status) in [
        ("st2admin", 200),
        ("carol", 200),
        ("dave", 200),
        ("bob", 403),
    ] {
        let (got, _, body) = get_text(output.clone(), &token_for(&em, user)).await;
        assert_eq!(got, status, "{user}: {body}");
    }
    let (_, _, body) = get_text(output, &token_for(&em, "bob")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap_or(Value::Null)["faultstring"],
        format!("User \"bob\" doesn't have required permission \"execution_view\" on resource \"execution:{id}\"")
    );
    for (user, status) in [("st2admin", 404), ("carol", 404), ("bob", 500)] {
        let (got, _, body) = get_text(format!("{unknown}/output"), &token_for(&em, user)).await;
        assert_eq!(got, status, "{user}: {body}");
    }
    for (user, status) in [("st2admin", 404), ("carol", 500), ("bob", 500)] {
        let r = del(unknown.clone(), &token_for(&em, user)).await;
        assert_eq!(r.status, status, "{user}: {:?}", r.body);
    }
    let url = format!("{}/executions/{id}", em.api_url());
    let r = del(url.clone(), &token_for(&em, "eve")).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body["faultstring"],
        format!("User \"eve\" doesn't have required permission \"execution_stop\" on resource \"execution:{id}\"")
    );
    // Anyone with `action_execute` on the action may stop it, not only who started it.
    let r = del(url, &token_for(&em, "bob")).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("canceling"))
    );
    assert_eq!(r.body["result"]["user"], "bob");
    assert_eq!(r.body["context"]["cancelled_by"], "bob");
}
