//! The Matrix backend against a real Synapse (from PyPI) on a random loopback port, with a
//! throw-away configuration and SQLite database per test. The test users are a small,
//! independent client written here against the client-server API.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::support::{
    captured_logs, config_toml, free_port, with_test_aliases, Options, Process, TestBridge, WAIT,
};

/// Synapse's first start (schema creation) and rate-limited replies take longer than the
/// usual bound on a loaded 2-core machine.
pub(crate) const SLOW: Duration = Duration::from_secs(60);
const SHARED_SECRET: &str = "test-registration-secret";
pub(crate) const BOT_PASSWORD: &str = "b0t-pa55word";

/// The Python that has Synapse: `STORMBRIDGE_SYNAPSE_PYTHON`, else the virtualenv that
/// `.ci/run` makes.
fn synapse_python() -> PathBuf {
    if let Some(p) = std::env::var_os("STORMBRIDGE_SYNAPSE_PYTHON") {
        return p.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/stormbridge-synapse/bin/python")
}

/// A Synapse homeserver (`server_name` localhost); killed on drop.
pub(crate) struct Synapse {
    pub(crate) port: u16,
    dir: tempfile::TempDir,
    process: Process,
    http: awc::Client,
}

impl Synapse {
    /// Starts Synapse with message rate limits of `per_second` and `burst` for every user,
    /// and registers `users` (password `<name>-pw`) and the bot (`stormbridge`).
    pub(crate) async fn start(per_second: f64, burst: u32, users: &[&str]) -> Self {
        let mut server = Self {
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            process: Process::default(),
            http: awc::Client::builder().timeout(WAIT).finish(),
        };
        let d = server.dir.path().to_owned();
        let yaml = format!(
            r#"server_name: "localhost"
pid_file: "{d}/homeserver.pid"
listeners:
  - port: {port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "{d}/homeserver.db"
media_store_path: "{d}/media"
signing_key_path: "{d}/signing.key"
registration_shared_secret: "{SHARED_SECRET}"
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
enable_metrics: false
presence:
  enabled: false
rc_message:
  per_second: {per_second}
  burst_count: {burst}
rc_login:
  address: {{per_second: 1000, burst_count: 1000}}
  account: {{per_second: 1000, burst_count: 1000}}
  failed_attempts: {{per_second: 1000, burst_count: 1000}}
rc_joins:
  local: {{per_second: 1000, burst_count: 1000}}
rc_invites:
  per_room: {{per_second: 1000, burst_count: 1000}}
  per_user: {{per_second: 1000, burst_count: 1000}}
"#,
            d = d.display(),
            port = server.port,
        );
        std::fs::write(d.join("homeserver.yaml"), yaml).expect("synapse config written");
        let status = Command::new(synapse_python())
            .args(["-m", "synapse.app.homeserver", "--generate-keys", "-c"])
            .arg(d.join("homeserver.yaml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("synapse's python runs (.ci/run installs matrix-synapse in ~/.cache/stormbridge-synapse)");
        assert!(status.success(), "synapse --generate-keys failed");
        server.spawn().await;
        server.register("stormbridge", BOT_PASSWORD).await;
        for user in users {
            server.register(user, &format!("{user}-pw")).await;
        }
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("synapse.out"))
            .expect("synapse log file");
        self.process = Process::spawn(
            Command::new(synapse_python())
                .args(["-m", "synapse.app.homeserver", "-c"])
                .arg(self.dir.path().join("homeserver.yaml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log),
            "synapse (.ci/test-deps installs matrix-synapse)",
        );
        let versions = format!("{}/_matrix/client/versions", self.url());
        let up = eventually!(SLOW, {
            match self.http.get(&versions).send().await {
                Ok(resp) => resp.status().is_success(),
                Err(_) => false,
            }
        });
        assert!(up, "synapse never answered on {}", self.port);
    }

    /// Registers a user with the shared-secret admin API (HMAC-SHA1 over the nonce).
    async fn register(&self, user: &str, password: &str) {
        let url = format!("{}/_synapse/admin/v1/register", self.url());
        let nonce: Value = self
            .http
            .get(&url)
            .send()
            .await
            .expect("nonce")
            .json()
            .await
            .expect("nonce json");
        let nonce = nonce["nonce"].as_str().expect("nonce string");
        let key = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            SHARED_SECRET.as_bytes(),
        );
        let message = format!("{nonce}\0{user}\0{password}\0notadmin");
        let mac: String = ring::hmac::sign(&key, message.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let resp = self
            .http
            .post(&url)
            .send_json(&json!({"nonce": nonce, "username": user, "password": password, "admin": false, "mac": mac}))
            .await
            .expect("register");
        assert!(
            resp.status().is_success(),
            "register {user}: {}",
            resp.status()
        );
    }

    async fn restart(&mut self) {
        self.process.kill();
        self.spawn().await;
    }
}

/// A person (or another bot) on the homeserver, with its own sync position and every
/// timeline event it has seen.
pub(crate) struct MxUser {
    base: String,
    token: String,
    pub(crate) user_id: String,
    http: awc::Client,
    since: Option<String>,
    /// `(room id, event)` in the order seen.
    pub(crate) seen: Vec<(String, Value)>,
    /// Events before this index were returned by (or skipped on the way to) a `wait_for`.
    cursor: usize,
    /// Rooms it was invited to, in the order seen.
    pub(crate) invites: Vec<String>,
    txn: u64,
}

impl MxUser {
    pub(crate) async fn login(server: &Synapse, name: &str) -> Self {
        let mut user = Self::login_as(server, name, &format!("{name}-pw")).await;
        user.sync(0).await;
        user
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        let mut resp = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        }
        .expect("request");
        let v: Value = resp.json().limit(64 << 20).await.unwrap_or(Value::Null);
        (resp.status().as_u16(), v)
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert_eq!(status, 200, "{method} {path}: {v}");
        v
    }

    /// A public room with alias `#<alias>:localhost`.
    pub(crate) async fn create_room(&self, alias: &str) -> String {
        let v = self
            .ok(
                "POST",
                "/createRoom",
                Some(json!({"room_alias_name": alias, "name": "Operations", "preset": "public_chat"})),
            )
            .await;
        v["room_id"].as_str().expect("room id").to_owned()
    }

    /// A direct chat with `user`, as clients open one (`is_direct`).
    pub(crate) async fn create_dm(&self, user: &str) -> String {
        let v = self
            .ok(
                "POST",
                "/createRoom",
                Some(
                    json!({"is_direct": true, "invite": [user], "preset": "trusted_private_chat"}),
                ),
            )
            .await;
        v["room_id"].as_str().expect("room id").to_owned()
    }

    pub(crate) async fn join(&self, room: &str) {
        self.ok("POST", &format!("/join/{}", enc(room)), Some(json!({})))
            .await;
    }

    async fn kick(&self, room: &str, user: &str) {
        self.ok(
            "POST",
            &format!("/rooms/{}/kick", enc(room)),
            Some(json!({"user_id": user, "reason": "test"})),
        )
        .await;
    }

    /// Sends `content` as an `m.room.message`; the event id.
    pub(crate) async fn send_content(&mut self, room: &str, content: Value) -> String {
        self.txn += 1;
        let path = format!("/rooms/{}/send/m.room.message/t{}", enc(room), self.txn);
        let v = self.ok("PUT", &path, Some(content)).await;
        v["event_id"].as_str().expect("event id").to_owned()
    }

    pub(crate) async fn say(&mut self, room: &str, text: &str) -> String {
        self.send_content(room, json!({"msgtype": "m.text", "body": text}))
            .await
    }

    /// One `/sync` round (waiting up to `timeout_ms` for events).
    pub(crate) async fn sync(&mut self, timeout_ms: u64) {
        let filter = enc(r#"{"presence":{"not_types":["*"]},"room":{"timeline":{"limit":200}}}"#);
        let mut path = format!("/sync?timeout={timeout_ms}&filter={filter}");
        if let Some(since) = &self.since {
            path.push_str(&format!("&since={}", enc(since)));
        }
        let (status, v) = self.call("GET", &path, None).await;
        if status != 200 {
            return;
        }
        if let Some(rooms) = v["rooms"]["join"].as_object() {
            for (room, data) in rooms {
                for e in data["timeline"]["events"].as_array().into_iter().flatten() {
                    self.seen.push((room.clone(), e.clone()));
                }
            }
        }
        if let Some(rooms) = v["rooms"]["invite"].as_object() {
            self.invites.extend(rooms.keys().cloned());
        }
        self.since = v["next_batch"].as_str().map(str::to_owned);
    }

    /// Syncs until an event after the last one returned satisfies `pred` (events are
    /// consumed like lines of a stream); panics after `SLOW`.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&str, &Value) -> bool) -> Value {
        let deadline = Instant::now() + SLOW;
        loop {
            if let Some(i) = self.seen[self.cursor..]
                .iter()
                .position(|(r, e)| pred(r, e))
            {
                self.cursor += i + 1;
                return self.seen[self.cursor - 1].1.clone();
            }
            if Instant::now() >= deadline {
                let bodies: Vec<String> = self
                    .seen
                    .iter()
                    .filter_map(|(r, e)| e["content"]["body"].as_str().map(|b| format!("{r}: {b}")))
                    .collect();
                panic!("{} never saw {what}; saw {bodies:#?}", self.user_id);
            }
            self.sync(500).await;
        }
    }

    /// The first room this user is invited to; panics after `SLOW`.
    async fn invitation(&mut self) -> String {
        let deadline = Instant::now() + SLOW;
        while self.invites.is_empty() {
            assert!(
                Instant::now() < deadline,
                "{} was never invited",
                self.user_id
            );
            self.sync(500).await;
        }
        self.invites.remove(0)
    }

    /// The next message from `sender` in `room` whose body contains `needle`.
    async fn message_from(&mut self, sender: &str, room: &str, needle: &str) -> Value {
        self.wait_for(&format!("{needle:?} from {sender} in {room}"), |r, e| {
            r == room
                && e["type"] == "m.room.message"
                && e["sender"] == sender
                && e["content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.contains(needle))
        })
        .await
    }

    /// Waits until `user` has joined `room` (again).
    pub(crate) async fn sees_join(&mut self, room: &str, user: &str) {
        self.wait_for(&format!("{user} joining {room}"), |r, e| {
            r == room
                && e["type"] == "m.room.member"
                && e["state_key"] == user
                && e["content"]["membership"] == "join"
        })
        .await;
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

pub(crate) const BOT: &str = "@stormbridge:localhost";

fn matrix_chat(name: &str, server: &Synapse, more: &str) -> String {
    format!(
        "[[chat]]\nname = \"{name}\"\nbackend = \"matrix\"\nhomeserver = \"{}\"\nuser = \"stormbridge\"\npassword = \"{BOT_PASSWORD}\"\nrooms = [\"#ops:localhost\"]\nsync_timeout_secs = 5\n{more}\n",
        server.url()
    )
}

/// Synapse, alice with a public room `#ops:localhost`, and a bridge on it.
async fn setup(per_second: f64, burst: u32, more: &str) -> (Synapse, MxUser, String, TestBridge) {
    let server = Synapse::start(per_second, burst, &["alice", "otherbot"]).await;
    let mut alice = MxUser::login(&server, "alice").await;
    let room = alice.create_room("ops").await;
    let mut opts: Options = with_test_aliases();
    opts.extra_toml = matrix_chat("matrix", &server, more);
    let bridge = TestBridge::start_with(opts).await;
    alice.sees_join(&room, BOT).await;
    bridge.wait_ready(200).await;
    (server, alice, room, bridge)
}

#[actix_rt::test]
async fn commands_in_a_room_a_thread_and_a_direct_chat_come_back_where_they_were_said() {
    let (_server, mut alice, room, b) = setup(100.0, 100, "").await;

    alice.say(&room, "!st2 run date").await;
    let ack = alice.message_from(BOT, &room, "Started").await;
    assert_eq!(ack["content"]["msgtype"], "m.notice");
    let exec = b.emulator.executions();
    assert_eq!(exec.len(), 1, "{exec:?}");
    let e = &exec[0];
    assert!(ack["content"]["body"].as_str().unwrap().contains(&e.id));
    assert_eq!(e.parameters.get("cmd").map(String::as_str), Some("date"));
    assert_eq!(e.request["user"], "@alice:localhost");
    assert_eq!(e.request["source_channel"], room.as_str());
    let ctx = &e.request["source_context"];
    assert_eq!(ctx["connection"], "matrix");
    assert_eq!(ctx["room"], room.as_str());
    assert_eq!(ctx["room_kind"], "group");
    assert_eq!(ctx["user_id"], "@alice:localhost");
    let result = alice
        .message_from(BOT, &room, &format!("execution: {}", e.id))
        .await;
    assert_eq!(result["content"]["format"], "org.matrix.custom.html");
    assert!(result["content"]["formatted_body"].as_str().is_some());
    assert!(result["content"].get("m.relates_to").is_none());
    // In a room the result starts with the name people see for who ran the command, which
    // their client highlights.
    assert!(
        result["content"]["body"]
            .as_str()
            .is_some_and(|body| body.starts_with("alice: ")),
        "{result}"
    );

    // In a thread: the answer is in the same thread.
    let root = alice.say(&room, "deploy discussion").await;
    alice
        .send_content(
            &room,
            json!({"msgtype": "m.text", "body": "!st2 run uptime",
                   "m.relates_to": {"rel_type": "m.thread", "event_id": root}}),
        )
        .await;
    let ack = alice.message_from(BOT, &room, "Started").await;
    assert_eq!(ack["content"]["m.relates_to"]["rel_type"], "m.thread");
    assert_eq!(ack["content"]["m.relates_to"]["event_id"], root.as_str());
    let e = b.emulator.executions()[1].clone();
    assert_eq!(e.request["source_context"]["thread"], root.as_str());
    let result = alice
        .message_from(BOT, &room, &format!("execution: {}", e.id))
        .await;
    assert_eq!(result["content"]["m.relates_to"]["event_id"], root.as_str());

    // A mention works without the `!`.
    alice.say(&room, "stormbridge: st2 run whoami").await;
    alice.message_from(BOT, &room, "Started").await;
    assert_eq!(
        b.emulator.executions()[2]
            .parameters
            .get("cmd")
            .map(String::as_str),
        Some("whoami")
    );

    // A direct chat: the bot accepts the invitation, and answers there.
    let dm = alice.create_dm(BOT).await;
    alice.sees_join(&dm, BOT).await;
    alice.say(&dm, "!st2 run hostname").await;
    alice.message_from(BOT, &dm, "Started").await;
    let e = b.emulator.executions()[3].clone();
    assert_eq!(e.request["source_channel"], dm.as_str());
    assert_eq!(e.request["source_context"]["room_kind"], "direct");
    alice
        .message_from(BOT, &dm, &format!("execution: {}", e.id))
        .await;

    // A whisper goes to the user's direct chat; an announcement may name a room by alias.
    b.emulator.announce(
        "stormbridge",
        json!({"message": "just for alice", "channel": format!("matrix:{room}"), "user": "@alice:localhost", "whisper": true}),
    );
    alice.message_from(BOT, &dm, "just for alice").await;
    b.emulator.announce(
        "stormbridge",
        json!({"message": "to the alias", "channel": "matrix:#ops:localhost"}),
    );
    alice.message_from(BOT, &room, "to the alias").await;

    // The room's name and the user's display name come from the room's state.
    alice
        .ok(
            "PUT",
            &format!("/profile/{}/displayname", enc("@alice:localhost")),
            Some(json!({"displayname": "Alice Admin"})),
        )
        .await;
    // Synapse updates the member event in each room after answering; wait for it.
    alice
        .wait_for("alice's new display name in the room", |r, e| {
            r == room
                && e["type"] == "m.room.member"
                && e["content"]["displayname"] == "Alice Admin"
        })
        .await;
    alice.say(&room, "!st2whoami").await;
    let whoami = alice.message_from(BOT, &room, "You are").await;
    let whoami = whoami["content"]["body"].as_str().unwrap();
    assert!(
        whoami.contains("`matrix:@alice:localhost` (Alice Admin)"),
        "{whoami}"
    );
    assert!(whoami.contains("(Operations)"), "{whoami}");

    alice.say(&room, "!st2help").await;
    let help = alice.message_from(BOT, &room, "run").await;
    assert!(help["content"]["body"].as_str().unwrap().contains("[core]"));
    assert_eq!(b.emulator.executions().len(), 4, "help runs nothing");
    assert!(
        !captured_logs().contains(BOT_PASSWORD),
        "the bot's password was logged"
    );
}

#[actix_rt::test]
async fn a_long_reply_arrives_complete_in_parts_through_the_servers_rate_limit() {
    // Synapse lets each user send 3 messages at once, then 2 a second: the bridge gets 429s.
    let (_server, mut alice, room, b) = setup(2.0, 3, "max_message_bytes = 1000").await;
    let words: Vec<String> = (0..1000).map(|i| format!("w{i:03}é")).collect();
    let message = format!("first line\n{}\nlast line", words.join(" "));
    b.emulator.announce(
        "stormbridge",
        json!({"message": message, "channel": format!("matrix:{room}")}),
    );
    let mut bodies = Vec::new();
    loop {
        let e = alice.message_from(BOT, &room, "").await;
        let body = e["content"]["body"].as_str().unwrap().to_owned();
        assert!(body.len() <= 1000, "{} bytes", body.len());
        let last = body.ends_with("last line");
        bodies.push(body);
        if last {
            break;
        }
    }
    assert!(bodies.len() >= 6, "split into {} parts", bodies.len());
    assert!(bodies[0].starts_with("first line"));
    let all = bodies.join(" ");
    let received: Vec<&str> = all
        .split_whitespace()
        .filter(|w| !["first", "last", "line"].contains(w))
        .collect();
    assert_eq!(
        received,
        words.iter().map(String::as_str).collect::<Vec<_>>()
    );
    if std::env::var_os("TEST_LOG").is_none() {
        assert!(
            captured_logs().contains("matrix rate limit; retrying later"),
            "the server never rate-limited the bridge; the test proves nothing about 429s"
        );
    }
}

#[actix_rt::test]
async fn after_a_server_restart_the_bridge_reconnects_and_delivers_what_was_queued() {
    let (mut server, mut alice, room, b) = setup(100.0, 100, "").await;
    server.process.kill();
    b.wait_ready(503).await;
    assert_eq!(b.actor("chat:matrix").await["state"], "reconnecting");
    b.emulator.announce(
        "stormbridge",
        json!({"message": "queued while the server was away", "channel": format!("matrix:{room}")}),
    );
    if std::env::var_os("TEST_LOG").is_none() {
        let queued = eventually!(WAIT, {
            captured_logs()
                .lines()
                .any(|l| l.contains("connection=matrix") && l.contains("queued while disconnected"))
        });
        assert!(queued, "the reply was not queued");
    }
    server.restart().await;
    b.wait_ready(200).await;
    alice
        .message_from(BOT, &room, "queued while the server was away")
        .await;
    alice.say(&room, "!st2 run date").await;
    alice.message_from(BOT, &room, "Started").await;
}

#[actix_rt::test]
async fn other_bots_edits_and_the_bridges_own_messages_are_not_commands_and_a_kick_is_undone() {
    let server = Synapse::start(100.0, 100, &["alice", "otherbot", "noticebot"]).await;
    let mut alice = MxUser::login(&server, "alice").await;
    let room = alice.create_room("ops").await;
    // This time the bridge uses an access token, sends m.text (so its own messages look
    // like anyone's), and ignores one bot by name.
    let bot_login = MxUser::login_as(&server, "stormbridge", BOT_PASSWORD).await;
    bot_login.join(&room).await;
    let mut opts: Options = with_test_aliases();
    opts.extra_toml = format!(
        "[[chat]]\nname = \"mx\"\nbackend = \"matrix\"\nhomeserver = \"{}\"\naccess_token = \"{}\"\nrooms = [\"{room}\"]\nmsgtype = \"text\"\nignore_users = [\"@otherbot:localhost\"]\nsync_timeout_secs = 5\n",
        server.url(),
        bot_login.token
    );
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    let mut otherbot = MxUser::login(&server, "otherbot").await;
    otherbot.join(&room).await;
    let mut noticebot = MxUser::login(&server, "noticebot").await;
    noticebot.join(&room).await;

    otherbot.say(&room, "!st2 run date").await;
    noticebot
        .send_content(
            &room,
            json!({"msgtype": "m.notice", "body": "!st2 run date"}),
        )
        .await;
    let original = alice.say(&room, "hello").await;
    alice
        .send_content(
            &room,
            json!({"msgtype": "m.text", "body": "* !st2 run date",
                   "m.new_content": {"msgtype": "m.text", "body": "!st2 run date"},
                   "m.relates_to": {"rel_type": "m.replace", "event_id": original}}),
        )
        .await;
    // Help lists commands as `!st2 …`: the bridge must not run its own reply.
    alice.say(&room, "!st2help run").await;
    let help = alice.message_from(BOT, &room, "!st2 run").await;
    assert_eq!(help["content"]["msgtype"], "m.text");
    alice.say(&room, "!st2 run date").await;
    alice.message_from(BOT, &room, "Started").await;
    let exec = b.emulator.executions();
    assert_eq!(exec.len(), 1, "only alice's command ran: {exec:?}");
    assert_eq!(exec[0].request["user"], "@alice:localhost");

    // Kicked from its room, the bot comes back.
    alice.kick(&room, BOT).await;
    alice.sees_join(&room, BOT).await;
    alice.say(&room, "!st2 run uptime").await;
    alice.message_from(BOT, &room, "Started").await;
    assert_eq!(b.emulator.executions().len(), 2);

    // A whisper to someone without a direct chat opens one (and reuses it next time).
    let whisper = |text: &str| json!({"message": text, "channel": format!("mx:{room}"), "user": "@alice:localhost", "whisper": true});
    b.emulator.announce("stormbridge", whisper("psst"));
    let dm = alice.invitation().await;
    alice.join(&dm).await;
    alice.message_from(BOT, &dm, "psst").await;
    b.emulator.announce("stormbridge", whisper("again"));
    alice.message_from(BOT, &dm, "again").await;
    assert!(alice.invites.is_empty(), "a second direct chat was opened");

    assert!(
        !captured_logs().contains(&bot_login.token),
        "the access token was logged"
    );
}

#[actix_rt::test]
async fn a_restarted_bridge_carries_on_from_its_saved_position_on_one_device() {
    let server = Synapse::start(100.0, 100, &["alice"]).await;
    let mut alice = MxUser::login(&server, "alice").await;
    let room = alice.create_room("ops").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("matrix-state.json");
    let emulator = stormbridge::emulator::Emulator::start(with_test_aliases().emulator)
        .await
        .expect("emulator starts");
    let mut opts: Options = with_test_aliases();
    let http_port = free_port();
    opts.http_toml = format!("[http]\nlisten = \"127.0.0.1:{http_port}\"\n");
    opts.extra_toml = matrix_chat(
        "matrix",
        &server,
        &format!("state_file = \"{}\"", state.display()),
    );
    let config = dir.path().join("stormbridge.toml");
    std::fs::write(&config, config_toml(&emulator, &opts)).expect("config written");
    let http = awc::Client::default();
    let start_bridge = || {
        Process::spawn(
            Command::new(env!("CARGO_BIN_EXE_stormbridge"))
                .args(["run", "--config"])
                .arg(&config)
                .env_remove("RUST_LOG")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "the bridge",
        )
    };
    let ready = |http: &awc::Client| {
        let url = format!("http://127.0.0.1:{http_port}/ready");
        let req = http.get(url);
        async move { matches!(req.send().await, Ok(r) if r.status() == 200) }
    };

    let mut first = start_bridge();
    assert!(
        eventually!(SLOW, ready(&http).await),
        "first bridge never ready"
    );
    alice.say(&room, "!st2 run date").await;
    alice.message_from(BOT, &room, "Started").await;
    // Killed outright: no chance to save anything on the way out.
    first.kill();
    assert!(state.exists(), "no state file written");

    alice.say(&room, "!st2 run uptime").await;
    let _second = start_bridge();
    alice.message_from(BOT, &room, "Started").await;
    let exec = emulator.executions();
    let commands: Vec<_> = exec
        .iter()
        .map(|e| e.parameters.get("cmd").cloned().unwrap_or_default())
        .collect();
    assert_eq!(
        commands,
        ["date", "uptime"],
        "replayed or skipped a command"
    );

    // Both runs logged in as the same device.
    let bot = MxUser::login_as(&server, "stormbridge", BOT_PASSWORD).await;
    let devices = bot.ok("GET", "/devices", None).await;
    let ours = devices["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .filter(|d| d["display_name"] == "stormbridge")
        .count();
    assert_eq!(ours, 1, "{devices}");
}

impl MxUser {
    /// Logs in as `name` with an explicit password (the bot's account, for the tests that
    /// need its token or its device list).
    async fn login_as(server: &Synapse, name: &str, password: &str) -> Self {
        Self::login_device(server, name, password, None).await
    }

    /// [`MxUser::login_as`], as device `device` when given.
    async fn login_device(
        server: &Synapse,
        name: &str,
        password: &str,
        device: Option<&str>,
    ) -> Self {
        let http = awc::Client::builder().timeout(WAIT).finish();
        let base = format!("{}/_matrix/client/v3", server.url());
        let mut body = json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": name}, "password": password, "initial_device_display_name": "test"});
        if let Some(device) = device {
            body["device_id"] = json!(device);
        }
        let v: Value = http
            .post(format!("{base}/login"))
            .send_json(&body)
            .await
            .expect("login")
            .json()
            .await
            .expect("login json");
        Self {
            base,
            token: v["access_token"].as_str().expect("token").to_owned(),
            user_id: v["user_id"].as_str().expect("user id").to_owned(),
            http,
            since: None,
            seen: Vec::new(),
            cursor: 0,
            invites: Vec::new(),
            txn: 0,
        }
    }
}

/// What a holder that takes a Matrix connection over relies on (`backends/matrix/platform.rs`:
/// a result's parts have transaction ids every bridge process derives alike, and each holder
/// logs in as the device the last one used): the server answers a transaction id it already
/// has from that device with the event it made the first time — after a new login too — and
/// posts nothing new (client-server API, "Transaction identifiers").
#[actix_rt::test]
async fn a_result_part_posted_again_by_the_next_holder_on_the_same_device_is_not_posted_twice() {
    let server = Synapse::start(100.0, 100, &["alice"]).await;
    let mut alice = MxUser::login(&server, "alice").await;
    let room = alice.create_room("ops").await;
    let holder = MxUser::login_device(&server, "stormbridge", BOT_PASSWORD, Some("SBHOLDER")).await;
    holder.join(&room).await;
    let part = json!({"msgtype": "m.text", "body": "the result, part 1"});
    let path = format!(
        "/rooms/{}/send/m.room.message/9f86d081884c7d659a2feaa0",
        enc(&room)
    );
    let posted = holder.ok("PUT", &path, Some(part.clone())).await;
    // The holder dies before recording the part as posted; the next one logs in as the same
    // device and posts the part again under the same transaction id.
    let next = MxUser::login_device(&server, "stormbridge", BOT_PASSWORD, Some("SBHOLDER")).await;
    let again = next.ok("PUT", &path, Some(part)).await;
    assert_eq!(posted["event_id"], again["event_id"], "{posted} / {again}");
    // What the room shows: the part once, then a later message of the new holder's.
    let later = json!({"msgtype": "m.text", "body": "the next result"});
    let path = format!("/rooms/{}/send/m.room.message/0b1c2d3e4f", enc(&room));
    next.ok("PUT", &path, Some(later)).await;
    alice.message_from(BOT, &room, "the next result").await;
    let parts = alice
        .seen
        .iter()
        .filter(|(r, e)| r == &room && e["content"]["body"] == "the result, part 1")
        .count();
    assert_eq!(parts, 1, "the part was posted {parts} times");
}
