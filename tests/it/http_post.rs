//! `POST /hubot/st2` and `POST /chatops/message`: workflows posting into chat the way
//! st2chatops (hubot-stackstorm's `/hubot/st2` route) and err-stackstorm (its
//! `/chatops/message` webhook) let them, behind a bearer token.

use std::{collections::HashMap, time::Duration};

use serde_json::{json, Value};
use stormbridge::{
    app::{self, AppOptions},
    backends::console::{unescape_line, ConsoleIo},
    emulator::Emulator,
};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{captured_logs, init_test_log, settings_for, Options, TestBridge, WAIT};

/// The token the tests configure (distinctive, so the log check cannot match by accident).
const TOKEN: &str = "post-token-Zq8W3vR5yT1uN6mK";
/// A wrong token the tests send (it must not reach the logs either).
const WRONG: &str = "wrong-token-Hx4Jd9Lp2Cs7Vb0E";

fn with_token() -> Options {
    Options {
        http_toml: format!("[http]\nlisten = \"127.0.0.1:0\"\npost_token = \"{TOKEN}\"\n"),
        ..Options::default()
    }
}

async fn ready(opts: Options) -> TestBridge {
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    b
}

/// How a test authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Basic(&'a str, &'a str),
}

/// What the bridge answered: status, headers of interest, body.
struct Answer {
    status: u16,
    headers: awc::http::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What is sent.
enum Body<'a> {
    Json(&'a Value),
    Form(&'a [(&'a str, &'a str)]),
    Raw(&'a str, Vec<u8>),
}

async fn post(b: &TestBridge, path: &str, auth: Auth<'_>, body: Body<'_>) -> Answer {
    let url = format!("http://{}{path}", b.app.http_addr);
    let mut req = b.http.post(url).timeout(WAIT);
    match auth {
        Auth::None => {}
        Auth::Bearer(token) => {
            req = req.insert_header(("Authorization", format!("Bearer {token}")))
        }
        Auth::Basic(user, password) => req = req.basic_auth(user, password),
    }
    let sent = match body {
        Body::Json(v) => req.send_json(v).await,
        Body::Form(fields) => req.send_form(&fields).await,
        Body::Raw(content_type, bytes) => req.content_type(content_type).send_body(bytes).await,
    };
    let mut resp = sent.expect("http request");
    let body = resp.body().limit(1 << 20).await.expect("http body");
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

#[actix_rt::test]
async fn a_workflows_json_post_lands_in_the_room_with_the_answer_each_client_gave() {
    let mut b = ready(with_token()).await;
    // What a workflow's core.http sends to st2chatops' /hubot/st2 (chatops.post_message's
    // parameters), fields hubot ignores included.
    let payload = json!({"channel": "ops", "message": "deploy finished", "user": null,
        "whisper": false, "extra": {"color": "good"}, "route": "chatops", "context": {}});
    let a = post(&b, "/hubot/st2", Auth::Bearer(TOKEN), Body::Json(&payload)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json(),
        json!({"status": "completed", "msg": "Message posted successfully"})
    );
    assert_eq!(
        b.line_containing("deploy finished").await,
        "[stormbridge] #ops: deploy finished"
    );

    // err-stackstorm's /chatops/message, and its answer.
    let payload = json!({"channel": "ops", "message": "from an errbot workflow"});
    let a = post(
        &b,
        "/chatops/message",
        Auth::Bearer(TOKEN),
        Body::Json(&payload),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body, "Delivered to chat backend.");
    assert_eq!(
        b.line_containing("from an errbot workflow").await,
        "[stormbridge] #ops: from an errbot workflow"
    );

    // `curl -d '{…}'` labels JSON as a form; errbot read it as JSON, and so does the bridge.
    let raw = br#"{"channel": "ops", "message": "curl style"}"#.to_vec();
    let a = post(
        &b,
        "/chatops/message/",
        Auth::Bearer(TOKEN),
        Body::Raw("application/x-www-form-urlencoded", raw),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    b.line_containing("curl style").await;
}

#[actix_rt::test]
async fn hubots_form_payload_and_its_basic_auth_url_work() {
    let mut b = ready(with_token()).await;
    let payload = json!({"channel": "ops", "message": "from a form", "user": "alice"}).to_string();
    let a = post(
        &b,
        "/hubot/st2",
        Auth::Bearer(TOKEN),
        Body::Form(&[("payload", payload.as_str())]),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["status"], "completed");
    b.line_containing("from a form").await;

    // A hubot URL with EXPRESS_USER:EXPRESS_PASSWORD@ keeps working once the password is the token.
    let a = post(
        &b,
        "/hubot/st2",
        Auth::Basic("hubot", TOKEN),
        Body::Form(&[("channel", "ops"), ("message", "plain form fields")]),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    b.line_containing("plain form fields").await;
}

#[actix_rt::test]
async fn whispers_go_to_the_user_and_the_pretext_convention_applies() {
    let mut b = ready(with_token()).await;
    let payload = json!({"channel": "ops", "user": "alice", "whisper": true, "message": "for your eyes only"});
    let a = post(
        &b,
        "/chatops/message",
        Auth::Bearer(TOKEN),
        Body::Json(&payload),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        b.line_containing("for your eyes only").await,
        "[stormbridge] @alice (dm): for your eyes only"
    );
    // A form's whisper is text.
    let a = post(
        &b,
        "/hubot/st2",
        Auth::Bearer(TOKEN),
        Body::Form(&[
            ("user", "alice"),
            ("whisper", "true"),
            ("message", "form whisper"),
        ]),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        b.line_containing("form whisper").await,
        "[stormbridge] @alice (dm): form whisper"
    );

    let payload = json!({"channel": "ops", "message": "Deploy done {~} 3 hosts updated"});
    post(&b, "/hubot/st2", Auth::Bearer(TOKEN), Body::Json(&payload)).await;
    assert_eq!(
        b.line_containing("Deploy done").await,
        "[stormbridge] #ops: Deploy done\n3 hosts updated"
    );
    let payload = json!({"channel": "ops", "message": "all plain text{~}"});
    post(&b, "/hubot/st2", Auth::Bearer(TOKEN), Body::Json(&payload)).await;
    assert_eq!(
        b.line_containing("all plain").await,
        "[stormbridge] #ops: all plain text"
    );
}

#[actix_rt::test]
async fn a_missing_or_wrong_token_is_refused_alike_and_posts_nothing() {
    let mut b = ready(with_token()).await;
    let payload = json!({"channel": "ops", "message": "must not be posted"});
    let basic_wrong = Auth::Basic("hubot", WRONG);
    for (path, auth) in [
        ("/hubot/st2", Auth::None),
        ("/hubot/st2", Auth::Bearer(WRONG)),
        ("/chatops/message", Auth::Bearer(WRONG)),
        ("/chatops/message", basic_wrong),
        ("/chatops/message", Auth::Bearer("")),
    ] {
        let a = post(&b, path, auth, Body::Json(&payload)).await;
        assert_eq!(a.status, 401, "{path}: {}", a.body);
        assert_eq!(
            a.header("www-authenticate"),
            Some("Bearer realm=\"stormbridge\"")
        );
        assert!(
            a.json()["error"]
                .as_str()
                .unwrap_or("")
                .contains("Authorization: Bearer"),
            "{}",
            a.body
        );
    }
    let ok = json!({"channel": "ops", "message": "after the refusals"});
    let a = post(&b, "/hubot/st2", Auth::Bearer(TOKEN), Body::Json(&ok)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    b.line_containing("after the refusals").await;
    assert!(
        !b.seen.iter().any(|l| l.contains("must not be posted")),
        "{:#?}",
        b.seen
    );
    for secret in [TOKEN, WRONG] {
        assert!(
            !captured_logs().contains(secret),
            "a token reached the logs"
        );
    }
}

#[actix_rt::test]
async fn repeated_failures_from_one_address_are_answered_429_even_with_the_token() {
    let b = ready(with_token()).await;
    let payload = json!({"channel": "ops", "message": "x"});
    for _ in 0..10 {
        let a = post(&b, "/hubot/st2", Auth::Bearer(WRONG), Body::Json(&payload)).await;
        assert_eq!(a.status, 401);
    }
    let a = post(&b, "/hubot/st2", Auth::Bearer(TOKEN), Body::Json(&payload)).await;
    assert_eq!(a.status, 429, "{}", a.body);
    let retry: u64 = a
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=600).contains(&retry), "{retry}");
}

#[actix_rt::test]
async fn bad_bodies_and_fields_are_named_in_400s_and_large_or_foreign_ones_refused() {
    let mut b = ready(with_token()).await;
    let raw = |text: &str| Body::Raw("application/json", text.as_bytes().to_vec());
    let a = post(
        &b,
        "/chatops/message",
        Auth::Bearer(TOKEN),
        raw("{\"channel\": \"ops\", "),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["field"], "body");
    assert!(a.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("body: is not valid JSON"));

    let cases = [
        (json!({"channel": "ops"}), "message"),
        (json!({"channel": "ops", "message": ""}), "message"),
        (json!({"message": "nowhere to go"}), "channel"),
        (
            json!({"channel": "ops", "message": "m", "whisper": "perhaps"}),
            "whisper",
        ),
        (
            json!({"channel": "ops", "message": "m", "extra": "not an object"}),
            "extra",
        ),
        (json!({"payload": "{not json"}), "payload"),
    ];
    for (body, field) in cases {
        let a = post(&b, "/hubot/st2", Auth::Bearer(TOKEN), Body::Json(&body)).await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        let answer = a.json();
        assert_eq!(answer["field"], field, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{field}: ")),
            "{answer}"
        );
        // hubot's own shape for a failure, for scripts that read it.
        assert_eq!(answer["status"], "failed", "{answer}");
    }

    let big = "x".repeat(70 * 1024);
    let body = json!({"channel": "ops", "message": big});
    let a = post(
        &b,
        "/chatops/message",
        Auth::Bearer(TOKEN),
        Body::Json(&body),
    )
    .await;
    assert_eq!(a.status, 413, "{}", a.body);

    let a = post(
        &b,
        "/chatops/message",
        Auth::Bearer(TOKEN),
        Body::Raw("text/plain", b"channel=ops&message=m".to_vec()),
    )
    .await;
    assert_eq!(a.status, 415, "{}", a.body);
    assert!(
        a.json()["error"].as_str().unwrap().contains("text/plain"),
        "{}",
        a.body
    );

    // None of it reached chat; a good post still does.
    let ok = json!({"channel": "ops", "message": "still works"});
    assert_eq!(
        post(&b, "/chatops/message", Auth::Bearer(TOKEN), Body::Json(&ok))
            .await
            .status,
        200
    );
    let line = b.line_containing("still works").await;
    assert_eq!(b.seen, vec![line]);
}

#[actix_rt::test]
async fn without_a_token_the_endpoints_are_off() {
    let b = ready(Options::default()).await;
    let payload = json!({"channel": "ops", "message": "m"});
    for path in ["/hubot/st2", "/chatops/message"] {
        let a = post(&b, path, Auth::Bearer(TOKEN), Body::Json(&payload)).await;
        assert_eq!(a.status, 404, "{path}");
        assert_eq!(b.get(path).await.0, 404, "{path}");
    }
    // On, other methods are 405.
    let b = ready(with_token()).await;
    assert_eq!(b.get("/hubot/st2").await.0, 405);
}

/// A bridge with two console connections, `console` (room `ops`) and `second` (room
/// `lobby`): the lines each prints.
struct TwoConsoles {
    http_addr: std::net::SocketAddr,
    _emulator: Emulator,
    _app: app::RunningApp,
    /// The consoles' inputs, kept open (nothing is typed).
    _inputs: Vec<tokio::io::DuplexStream>,
    lines: HashMap<&'static str, tokio::sync::mpsc::UnboundedReceiver<String>>,
}

impl TwoConsoles {
    async fn start() -> Self {
        init_test_log();
        let opts = with_token();
        let emulator = Emulator::start(opts.emulator.clone())
            .await
            .expect("emulator starts");
        // A configuration file allows one console (one standard input); the tests' consoles
        // have pipes of their own, so a second is added to the loaded settings.
        let mut settings = settings_for(&emulator, &opts);
        let mut second = settings.chat[0].clone();
        second.name = "second".into();
        if let Some(base) = second
            .backend
            .as_any()
            .downcast_ref::<stormbridge::backends::console::ConsoleSettings>()
        {
            let mut console = base.clone();
            console.user_id = "bob".into();
            console.room = "lobby".into();
            second.backend = std::sync::Arc::new(console);
        }
        settings.chat.push(second);
        let mut consoles = HashMap::new();
        let mut lines = HashMap::new();
        let mut inputs = Vec::new();
        for name in ["console", "second"] {
            let (bot_in, input) = tokio::io::duplex(1 << 16);
            inputs.push(input);
            let (bot_out, output) = tokio::io::duplex(1 << 20);
            consoles.insert(
                name.to_owned(),
                ConsoleIo {
                    input: Box::new(bot_in),
                    output: Box::new(bot_out),
                    terminal: false,
                },
            );
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            actix_rt::spawn(async move {
                let mut out = BufReader::new(output).lines();
                while let Ok(Some(line)) = out.next_line().await {
                    if tx.send(unescape_line(&line)).is_err() {
                        break;
                    }
                }
            });
            lines.insert(name, rx);
        }
        let app = app::start(
            settings,
            AppOptions {
                consoles,
                ..AppOptions::default()
            },
        )
        .await
        .expect("bridge starts");
        Self {
            http_addr: app.http_addr,
            _emulator: emulator,
            _app: app,
            _inputs: inputs,
            lines,
        }
    }

    /// The next line `console` prints, if one comes within `limit`.
    async fn line(&mut self, console: &str, limit: Duration) -> Option<String> {
        let rx = self.lines.get_mut(console).expect("a console");
        tokio::time::timeout(limit, rx.recv()).await.ok().flatten()
    }
}

#[actix_rt::test]
async fn a_connection_room_channel_reaches_that_connection() {
    let mut t = TwoConsoles::start().await;
    let client = awc::Client::default();
    let send = |body: Value| {
        client
            .post(format!("http://{}/hubot/st2", t.http_addr))
            .insert_header(("Authorization", format!("Bearer {TOKEN}")))
            .send_json(&body)
    };
    let resp = send(json!({"channel": "second:lobby", "message": "to the second connection"}))
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 200);
    let resp = send(json!({"channel": "ops", "message": "a plain room goes to the first"}))
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        t.line("second", WAIT).await.as_deref(),
        Some("[stormbridge] #lobby: to the second connection")
    );
    assert_eq!(
        t.line("console", WAIT).await.as_deref(),
        Some("[stormbridge] #ops: a plain room goes to the first")
    );
    assert_eq!(t.line("second", Duration::from_millis(300)).await, None);
}
