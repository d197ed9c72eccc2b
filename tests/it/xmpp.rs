//! The XMPP backend against a real prosody on a random loopback port (plaintext, loopback
//! only, or STARTTLS with a certificate signed by a per-test private CA), with test users
//! that are the backend's own client code.

use std::{
    path::Path,
    process::{Command, Stdio},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use stormbridge::backends::xmpp::{
    client::{self, join_xml, message_xml, Login, XmppStream},
    config::{Jid, TlsMode},
    wire::{Element, Frame, MAX_STANZA},
};
use tokio::net::TcpStream;

use crate::support::{
    captured_logs, free_port, with_test_aliases, Options, Process, TestBridge, TestCerts, WAIT,
};

pub(crate) const ROOM: &str = "ops@conference.localhost";

/// A prosody in the foreground with a throw-away configuration; killed on drop.
pub(crate) struct Prosody {
    pub(crate) port: u16,
    dir: tempfile::TempDir,
    /// With [`Prosody::start_tls`]: the certificate and its CA; encryption is then required.
    certs: Option<TestCerts>,
    process: Process,
}

impl Prosody {
    /// A plaintext server (no certificate, so no STARTTLS offered).
    pub(crate) async fn start(users: &[&str]) -> Self {
        Self::start_with(users, None).await
    }

    /// A server that requires STARTTLS, on a certificate for `cert_name` signed by a private
    /// CA made for this server (see [`Prosody::ca_file`]).
    async fn start_tls(users: &[&str], cert_name: &str) -> Self {
        Self::start_with(users, Some(cert_name)).await
    }

    async fn start_with(users: &[&str], cert_name: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let certs = cert_name.map(|name| {
            let certs_dir = dir.path().join("tls");
            std::fs::create_dir_all(&certs_dir).expect("certs dir");
            TestCerts::make(&certs_dir, name)
        });
        let mut server = Self {
            port: free_port(),
            dir,
            certs,
            process: Process::default(),
        };
        let d = server.dir.path().to_owned();
        std::fs::create_dir_all(d.join("data")).expect("data dir");
        let (tls_module, encryption, ssl) = match &server.certs {
            None => (
                "",
                "allow_unencrypted_plain_auth = true\nc2s_require_encryption = false\n",
                String::new(),
            ),
            Some(c) => (
                " \"tls\";",
                "c2s_require_encryption = true\n",
                format!(
                    "    ssl = {{ certificate = \"{}\"; key = \"{}\" }}\n",
                    c.cert.display(),
                    c.key.display()
                ),
            ),
        };
        let text = format!(
            "run_as_root = true\npidfile = \"{d}/prosody.pid\"\ndata_path = \"{d}/data\"\n\
             interfaces = {{ \"127.0.0.1\" }}\nc2s_ports = {{ {port} }}\ns2s_ports = {{ {s2s} }}\n\
             http_ports = {{}}\nhttps_ports = {{}}\nc2s_direct_tls_ports = {{}}\n\
             admin_socket = \"{d}/admin.sock\"\n\
             log = {{ debug = \"{d}/prosody.log\" }}\n\
             modules_enabled = {{{tls_module} \"roster\"; \"saslauth\"; \"disco\"; \"ping\"; \"offline\"; \"mam\"; \"posix\" }}\n\
             modules_disabled = {{ \"s2s\" }}\n\
             {encryption}\
             authentication = \"internal_plain\"\nstorage = \"internal\"\n\
             c2s_stanza_size_limit = {stanza_limit}\n\
             VirtualHost \"localhost\"\n{ssl}\
             Component \"conference.localhost\" \"muc\"\n    muc_room_locking = false\n",
            d = d.display(),
            port = server.port,
            s2s = free_port(),
            // Above the bridge's own limit, so a test user can send it a stanza over that.
            stanza_limit = 4 * MAX_STANZA,
        );
        std::fs::write(d.join("prosody.cfg.lua"), text).expect("prosody config written");
        for user in users {
            let status = Command::new("prosodyctl")
                .arg("--config")
                .arg(d.join("prosody.cfg.lua"))
                .args(["register", user, "localhost", &format!("{user}-pw")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("prosodyctl runs (Debian package `prosody`; .ci/run installs it)");
            assert!(status.success(), "prosodyctl register {user} failed");
        }
        server.spawn().await;
        server
    }

    /// The private CA that signed the certificate of a [`Prosody::start_tls`] server.
    fn ca_file(&self) -> &Path {
        &self.certs.as_ref().expect("a TLS server").ca
    }

    async fn spawn(&mut self) {
        let conf = self.dir.path().join("prosody.cfg.lua");
        self.process = Process::spawn(
            Command::new("prosody")
                .arg("--config")
                .arg(&conf)
                .arg("-F")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "prosody (Debian package `prosody`; .ci/test-deps installs it)",
        );
        let up = eventually!(
            WAIT,
            TcpStream::connect(("127.0.0.1", self.port)).await.is_ok()
        );
        assert!(up, "prosody never listened on {}", self.port);
    }

    async fn restart(&mut self) {
        self.process.kill();
        self.spawn().await;
    }
}

/// A test user.
pub(crate) struct User {
    stream: XmppStream,
    seen: Vec<String>,
    /// Messages sent, for their ids: each its own, as clients make them (RFC 6120 §8.1.3).
    said: u64,
}

impl User {
    pub(crate) async fn connect(port: u16, name: &str) -> Self {
        Self::connect_with(port, name, None).await
    }

    /// Logs in with STARTTLS, trusting the private CA `ca`.
    async fn connect_tls(port: u16, name: &str, ca: &Path) -> Self {
        Self::connect_with(port, name, Some(ca)).await
    }

    async fn connect_with(port: u16, name: &str, ca: Option<&Path>) -> Self {
        let tls_config =
            ca.map(|ca| stormbridge::tls::client_config(true, Some(ca)).expect("test CA loads"));
        let login = Login {
            host: "127.0.0.1".into(),
            port,
            jid: Jid::parse(&format!("{name}@localhost")).expect("jid"),
            password: format!("{name}-pw").into(),
            resource: "test".into(),
            tls: if ca.is_some() {
                TlsMode::Starttls
            } else {
                TlsMode::Plaintext
            },
            tls_config,
            timeout: WAIT,
        };
        let session = client::connect(&login).await.expect("test user logs in");
        let mut user = Self {
            stream: session.stream,
            seen: Vec::new(),
            said: 0,
        };
        user.send("<presence/>".into()).await;
        user
    }

    async fn send(&mut self, xml: String) {
        self.stream.send(xml).await.expect("test user sends");
    }

    pub(crate) async fn join(&mut self, nick: &str) {
        self.send(join_xml(ROOM, nick)).await;
        let me = format!("{ROOM}/{nick}");
        self.wait_for(|e| e.local_name() == "presence" && e.attr("from") == Some(me.as_str()))
            .await;
    }

    pub(crate) async fn say(&mut self, to: &str, kind: &str, text: &str) {
        self.said += 1;
        let id = format!("t{}", self.said);
        self.send(message_xml(to, kind, text, &id)).await;
    }

    pub(crate) async fn wait_for(&mut self, pred: impl Fn(&Element) -> bool) -> Element {
        let deadline = tokio::time::Instant::now() + WAIT * 2;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next()).await;
            match next {
                Ok(Some(Ok(Frame::Stanza(e)))) => {
                    self.seen.push(format!("{e:?}"));
                    if pred(&e) {
                        return e;
                    }
                }
                Ok(Some(Ok(_))) => {}
                other => panic!("no matching stanza ({other:?}); saw {:#?}", self.seen),
            }
        }
    }

    /// The next stanza, or `None` if none comes within `limit` (a closed stream panics).
    pub(crate) async fn next_within(&mut self, limit: std::time::Duration) -> Option<Element> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Frame::Stanza(e)))) => {
                    self.seen.push(format!("{e:?}"));
                    return Some(e);
                }
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!(
                    "the test user's stream ended ({other:?}); saw {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// The body of the next message from `from` (a bare JID or `room/nick`) containing `needle`.
    async fn message_from(&mut self, from: &str, needle: &str) -> String {
        let e = self
            .wait_for(|e| {
                e.local_name() == "message"
                    && e.attr("from")
                        .is_some_and(|f| f == from || f.starts_with(&format!("{from}/")))
                    && e.child("body").is_some_and(|b| b.text().contains(needle))
            })
            .await;
        e.child("body").map(Element::text).unwrap_or_default()
    }
}

pub(crate) fn xmpp_chat(name: &str, port: u16, more: &str) -> String {
    format!(
        "[[chat]]\nname = \"{name}\"\nbackend = \"xmpp\"\njid = \"stormbot@localhost\"\n\
         password = \"stormbot-pw\"\nserver = \"127.0.0.1:{port}\"\ntls = \"plaintext\"\n\
         rooms = [\"{ROOM}\"]\nnick = \"stormbot\"\n{more}\n"
    )
}

/// prosody, alice in the room, and a bridge whose bot has joined it.
async fn setup(name: &str, more: &str) -> (Prosody, User, TestBridge) {
    let server = Prosody::start(&["alice", "stormbot", "otherbot"]).await;
    let mut alice = User::connect(server.port, "alice").await;
    alice.join("alice").await;
    let bridge = bridge_in_room(&mut alice, server.port, name, more).await;
    (server, alice, bridge)
}

/// A bridge whose connection `name` reaches the server on `port` (prosody, or a relay to
/// it), once alice, in the room, sees its bot join.
async fn bridge_in_room(alice: &mut User, port: u16, name: &str, more: &str) -> TestBridge {
    let mut opts: Options = with_test_aliases();
    opts.extra_toml = xmpp_chat(name, port, more);
    let bridge = TestBridge::start_with(opts).await;
    bridge.wait_ready(200).await;
    let bot = format!("{ROOM}/stormbot");
    alice
        .wait_for(|e| e.local_name() == "presence" && e.attr("from") == Some(bot.as_str()))
        .await;
    bridge
}

#[actix_rt::test]
async fn commands_from_a_room_and_a_direct_chat_come_back_to_the_same_place() {
    let (_server, mut alice, b) = setup("xmpp", "").await;
    let bot_in_room = format!("{ROOM}/stormbot");

    alice.say(ROOM, "groupchat", "!st2 run date").await;
    let ack = alice.message_from(&bot_in_room, "Started").await;
    let exec = b.emulator.executions();
    assert_eq!(exec.len(), 1, "{exec:?}");
    let e = &exec[0];
    assert!(ack.contains(&e.id), "{ack}");
    assert_eq!(e.parameters.get("cmd").map(String::as_str), Some("date"));
    // The room is semi-anonymous (prosody's default), so the user is the occupant JID.
    assert_eq!(e.request["user"], "ops@conference.localhost/alice");
    assert_eq!(e.request["source_channel"], ROOM);
    let ctx = &e.request["source_context"];
    assert_eq!(ctx["connection"], "xmpp");
    assert_eq!(ctx["room"], ROOM);
    assert_eq!(ctx["room_kind"], "group");
    assert_eq!(ctx["user_id"], "ops@conference.localhost/alice");
    let result = alice
        .message_from(&bot_in_room, &format!("execution: {}", e.id))
        .await;
    // In a room the result starts with who ran the command, by their nick.
    assert!(result.starts_with("alice: "), "{result}");

    // A direct chat: the reply is a direct chat back, to the bare JID.
    alice
        .say("stormbot@localhost", "chat", "!st2 run uptime")
        .await;
    alice.message_from("stormbot@localhost", "Started").await;
    let exec = b.emulator.executions();
    assert_eq!(exec.len(), 2);
    let e = &exec[1];
    assert_eq!(e.parameters.get("cmd").map(String::as_str), Some("uptime"));
    assert_eq!(e.request["user"], "alice@localhost");
    assert_eq!(e.request["source_channel"], "alice@localhost");
    assert_eq!(e.request["source_context"]["room_kind"], "direct");
    alice
        .message_from("stormbot@localhost", &format!("execution: {}", e.id))
        .await;

    // A mention works without the `!`.
    alice
        .say(ROOM, "groupchat", "stormbot: st2 run whoami")
        .await;
    alice.message_from(&bot_in_room, "Started").await;
    assert_eq!(
        b.emulator.executions()[2]
            .parameters
            .get("cmd")
            .map(String::as_str),
        Some("whoami")
    );

    alice.say(ROOM, "groupchat", "!st2help").await;
    let help = alice.message_from(&bot_in_room, "run").await;
    assert!(!help.is_empty());
    assert_eq!(b.emulator.executions().len(), 3, "help runs nothing");
}

#[actix_rt::test]
async fn a_long_reply_arrives_complete_in_parts() {
    let (_server, mut alice, b) = setup("xmpp", "max_message_bytes = 300").await;
    let bot_in_room = format!("{ROOM}/stormbot");
    let words: Vec<String> = (0..200).map(|i| format!("w{i:03}é")).collect();
    let message = format!("first {} last", words.join(" "));
    b.emulator.announce(
        "stormbridge",
        json!({"message": message, "channel": format!("xmpp:{ROOM}")}),
    );
    let mut text = alice.message_from(&bot_in_room, "first").await;
    let mut parts = 1;
    assert!(text.len() <= 300, "{} bytes", text.len());
    while !text.trim_end().ends_with("last") {
        let part = alice.message_from(&bot_in_room, "").await;
        assert!(part.len() <= 300, "{} bytes", part.len());
        text.push(' ');
        text.push_str(&part);
        parts += 1;
    }
    assert!(parts >= 4, "split into {parts} parts");
    let received: Vec<&str> = text.split_whitespace().collect();
    let mut expected = vec!["first"];
    expected.extend(words.iter().map(String::as_str));
    expected.push("last");
    assert_eq!(received, expected);
}

#[actix_rt::test]
async fn after_a_server_restart_the_bridge_reconnects_rejoins_and_delivers_what_was_queued() {
    let more = "reconnect_backoff_initial_ms = 4000\nreconnect_backoff_max_ms = 4000";
    let (mut server, alice, b) = setup("xmpp-restart", more).await;
    drop(alice);
    server.process.kill();
    b.wait_ready(503).await;
    assert_eq!(b.actor("chat:xmpp-restart").await["state"], "reconnecting");
    b.emulator.announce(
        "stormbridge",
        json!({"message": "queued while the server was away", "channel": "xmpp-restart:alice@localhost"}),
    );
    // Restart right after a failed attempt; prosody's offline storage holds the direct
    // message if the bot is back before alice.
    let before = b.actor("chat:xmpp-restart").await["restarts"].as_u64();
    let failed_again = eventually!(
        WAIT,
        b.actor("chat:xmpp-restart").await["restarts"].as_u64() > before
    );
    assert!(failed_again);
    server.restart().await;
    let mut alice = User::connect(server.port, "alice").await;
    alice.join("alice").await;
    alice
        .message_from("stormbot@localhost", "queued while the server was away")
        .await;
    b.wait_ready(200).await;
    // The bot rejoined the room: a command there is answered there.
    let bot = format!("{ROOM}/stormbot");
    alice.say(ROOM, "groupchat", "!st2 run date").await;
    alice.message_from(&bot, "Started").await;
}

#[actix_rt::test]
async fn other_bots_and_the_bridges_own_messages_are_not_commands() {
    let (server, mut alice, b) = setup(
        "xmpp",
        "ignore_jids = [\"otherbot@localhost\", \"otherbot\"]",
    )
    .await;
    let bot_in_room = format!("{ROOM}/stormbot");
    let mut otherbot = User::connect(server.port, "otherbot").await;
    otherbot.join("otherbot").await;
    otherbot
        .say("stormbot@localhost", "chat", "!st2 run from-a-bot-dm")
        .await;
    otherbot.say(ROOM, "groupchat", "!st2 run from-a-bot").await;
    alice
        .message_from(&format!("{ROOM}/otherbot"), "from-a-bot")
        .await;
    b.emulator.announce(
        "stormbridge",
        json!({"message": "!st2 run from-the-bridge", "channel": format!("xmpp:{ROOM}")}),
    );
    alice.message_from(&bot_in_room, "from-the-bridge").await;
    alice.say(ROOM, "groupchat", "!st2 run marker").await;
    alice.message_from(&bot_in_room, "Started").await;
    let cmds: Vec<String> = b
        .emulator
        .executions()
        .iter()
        .filter_map(|e| e.parameters.get("cmd").cloned())
        .collect();
    assert_eq!(cmds, vec!["marker".to_owned()]);
}

#[actix_rt::test]
async fn starttls_is_required_by_default_and_a_wrong_password_is_not_a_login() {
    // This prosody has no certificate, so it offers no STARTTLS: the default mode refuses it
    // rather than logging in in plaintext.
    let server = Prosody::start(&["stormbot"]).await;
    let mut opts = with_test_aliases();
    opts.extra_toml = format!(
        "[[chat]]\nname = \"xmpp-tls\"\nbackend = \"xmpp\"\njid = \"stormbot@localhost\"\n\
         password = \"stormbot-pw\"\nserver = \"127.0.0.1:{}\"\n\n\
         [[chat]]\nname = \"xmpp-badpass\"\nbackend = \"xmpp\"\njid = \"stormbot@localhost\"\n\
         password = \"wrong\"\nserver = \"127.0.0.1:{}\"\ntls = \"plaintext\"\n",
        server.port, server.port
    );
    let b = TestBridge::start_with(opts).await;
    for (name, error) in [
        ("chat:xmpp-tls", "does not offer STARTTLS"),
        ("chat:xmpp-badpass", "authentication failed"),
    ] {
        let refused = eventually!(
            WAIT,
            b.actor(name).await["last_error"]
                .as_str()
                .is_some_and(|e| e.contains(error))
        );
        assert!(refused, "{}", b.actor(name).await);
        assert_ne!(b.actor(name).await["state"], "up");
    }
    let (status, body) = b.get("/ready").await;
    assert_eq!(status, 503, "{body}");
}

/// A bridge chat `name` for `tlsbot@localhost` in the default mode (STARTTLS required),
/// connecting to the address `127.0.0.1`: the certificate names only `localhost`, the JID's
/// domain, which is what the client must verify.
fn starttls_chat(name: &str, port: u16, more: &str) -> String {
    format!(
        "[[chat]]\nname = \"{name}\"\nbackend = \"xmpp\"\njid = \"tlsbot@localhost\"\n\
         password = \"tlsbot-pw\"\nserver = \"127.0.0.1:{port}\"\n{more}\n"
    )
}

#[actix_rt::test]
async fn starttls_with_a_private_ca_logs_in_and_answers_a_direct_chat() {
    let server = Prosody::start_tls(&["alice", "tlsbot"], "localhost").await;
    let mut alice = User::connect_tls(server.port, "alice", server.ca_file()).await;
    let mut opts = with_test_aliases();
    opts.extra_toml = starttls_chat(
        "xmpp-starttls",
        server.port,
        &format!("tls_ca_file = \"{}\"", server.ca_file().display()),
    );
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    let actor = b.actor("chat:xmpp-starttls").await;
    assert_eq!(actor["state"], "up", "{actor}");

    alice.say("tlsbot@localhost", "chat", "!st2 run date").await;
    alice.message_from("tlsbot@localhost", "Started").await;
    let exec = b.emulator.executions();
    assert_eq!(exec.len(), 1, "{exec:?}");
    let e = &exec[0];
    assert_eq!(e.parameters.get("cmd").map(String::as_str), Some("date"));
    assert_eq!(e.request["user"], "alice@localhost");
    assert_eq!(e.request["source_context"]["connection"], "xmpp-starttls");
    alice
        .message_from("tlsbot@localhost", &format!("execution: {}", e.id))
        .await;
    assert!(
        !captured_logs().contains("tlsbot-pw"),
        "the password was logged"
    );
}

#[actix_rt::test]
async fn starttls_to_a_server_whose_ca_is_not_trusted_is_refused() {
    // No `tls_ca_file`: the private CA is unknown to the web PKI roots.
    let server = Prosody::start_tls(&["tlsbot"], "localhost").await;
    let mut opts = with_test_aliases();
    opts.extra_toml = starttls_chat("xmpp-untrusted", server.port, "");
    let b = TestBridge::start_with(opts).await;
    let name = "chat:xmpp-untrusted";
    // Refused on more than one attempt, each time for the certificate.
    let refused = eventually!(WAIT, {
        let actor = b.actor(name).await;
        actor["restarts"].as_u64() >= Some(2)
            && actor["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("certificate is not trusted"))
    });
    let actor = b.actor(name).await;
    assert!(refused, "{actor}");
    assert_ne!(actor["state"], "up", "{actor}");
    let (status, body) = b.get("/ready").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        !captured_logs().contains("tlsbot-pw"),
        "the password was logged"
    );
}

#[actix_rt::test]
async fn starttls_to_a_server_whose_certificate_names_another_domain_is_refused() {
    // The CA is trusted, but the certificate is not for `localhost`, the JID's domain.
    let server = Prosody::start_tls(&["tlsbot"], "xmpp.example.net").await;
    let mut opts = with_test_aliases();
    opts.extra_toml = starttls_chat(
        "xmpp-wrongname",
        server.port,
        &format!("tls_ca_file = \"{}\"", server.ca_file().display()),
    );
    let b = TestBridge::start_with(opts).await;
    let name = "chat:xmpp-wrongname";
    let refused = eventually!(
        WAIT,
        b.actor(name).await["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("not valid for `localhost`"))
    );
    let actor = b.actor(name).await;
    assert!(refused, "{actor}");
    assert!(
        actor["last_error"]
            .as_str()
            .is_some_and(|e| e.ends_with("(it names xmpp.example.net)")),
        "{actor}"
    );
    assert_ne!(actor["state"], "up", "{actor}");
    assert_eq!(b.get("/ready").await.0, 503);
}

#[actix_rt::test]
async fn a_kicked_bot_rejoins_its_room() {
    let (_server, mut alice, _b) = setup("xmpp", "").await;
    let bot = format!("{ROOM}/stormbot");
    // alice created the room, so she is its owner and may kick.
    alice
        .send(format!(
            "<iq type='set' to='{ROOM}' id='kick1'><query xmlns='http://jabber.org/protocol/muc#admin'>\
             <item nick='stormbot' role='none'/></query></iq>"
        ))
        .await;
    alice
        .wait_for(|e| {
            e.local_name() == "presence"
                && e.attr("from") == Some(bot.as_str())
                && e.attr("type") == Some("unavailable")
        })
        .await;
    alice
        .wait_for(|e| {
            e.local_name() == "presence"
                && e.attr("from") == Some(bot.as_str())
                && e.attr("type").is_none()
        })
        .await;
    alice.say(ROOM, "groupchat", "!st2 run date").await;
    alice.message_from(&bot, "Started").await;
}

/// The number of stanzas the bridge skipped for being over a reader limit, as `/actors`
/// shows it (0 before the first).
async fn skipped_stanzas(b: &TestBridge, name: &str) -> u64 {
    b.actor(name).await["details"]["skipped_stanzas"]
        .as_u64()
        .unwrap_or(0)
}

#[actix_rt::test]
async fn a_big_message_is_read_and_one_over_the_limit_is_skipped_then_the_bot_answers() {
    let (_server, mut alice, b) = setup("xmpp-big", "").await;
    let name = "chat:xmpp-big";
    let restarts = b.actor(name).await["restarts"].as_u64();

    // A stanza bigger than prosody's default stanza limit (256 KiB) but within the bridge's:
    // a short command with a big payload beside it (as a client's rich-text or preview
    // extension may be) is read whole and answered.
    let payload = "x".repeat(600 * 1024);
    alice
        .send(format!(
            "<message to='stormbot@localhost' type='chat' id='big1'><body>!st2 run date</body>\
             <preview xmlns='urn:example:preview'>{payload}</preview></message>"
        ))
        .await;
    alice.message_from("stormbot@localhost", "Started").await;
    let exec = b.emulator.executions();
    assert_eq!(exec.len(), 1);
    assert_eq!(
        exec[0].parameters.get("cmd").map(String::as_str),
        Some("date")
    );
    assert_eq!(b.actor(name).await["restarts"].as_u64(), restarts);

    // Over the bridge's limit, a command with a 1 MiB text run: skipped without closing the
    // stream. alice is told, the skip is counted, and nothing ran.
    alice
        .say(
            "stormbot@localhost",
            "chat",
            &format!("!st2 run hidden {}", "y".repeat(MAX_STANZA + 1)),
        )
        .await;
    let told = alice
        .message_from("stormbot@localhost", "too large to read")
        .await;
    assert!(told.contains("the limit is 1024 KiB"), "{told}");
    let counted = eventually!(WAIT, skipped_stanzas(&b, name).await == 1);
    assert!(counted, "{}", b.actor(name).await);

    // No reconnect: the same connection reads and answers the next command.
    alice
        .say("stormbot@localhost", "chat", "!st2 run uptime")
        .await;
    alice.message_from("stormbot@localhost", "Started").await;
    let actor = b.actor(name).await;
    assert_eq!(actor["restarts"].as_u64(), restarts, "{actor}");
    assert_eq!(actor["state"], "up", "{actor}");
    let cmds: Vec<String> = b
        .emulator
        .executions()
        .iter()
        .filter_map(|e| e.parameters.get("cmd").cloned())
        .collect();
    assert_eq!(cmds, ["date", "uptime"]);
    let logs = captured_logs();
    assert!(
        logs.contains("skipped an inbound stanza over the reader's limit"),
        "no warning logged"
    );
    assert!(
        !logs.contains("yyyyyyyy"),
        "the stanza's content was logged"
    );
}

#[actix_rt::test]
async fn a_nesting_bomb_in_a_room_is_skipped_and_the_bot_answers() {
    let (_server, mut alice, b) = setup("xmpp-deep", "").await;
    let name = "chat:xmpp-deep";
    let bot = format!("{ROOM}/stormbot");
    let restarts = b.actor(name).await["restarts"].as_u64();
    // 10,000 levels: far past the bridge's limit of 32, small enough for prosody to relay.
    let depth = 10_000;
    alice
        .send(format!(
            "<message to='{ROOM}' type='groupchat' id='deep1'><body>!st2 run hidden</body>\
             <x xmlns='urn:example:x'>{}{}</x></message>",
            "<a>".repeat(depth),
            "</a>".repeat(depth)
        ))
        .await;
    let told = alice.message_from(&bot, "too complex to read").await;
    assert!(told.starts_with("alice: "), "{told}");
    let counted = eventually!(WAIT, skipped_stanzas(&b, name).await == 1);
    assert!(counted, "{}", b.actor(name).await);

    alice.say(ROOM, "groupchat", "!st2 run date").await;
    alice.message_from(&bot, "Started").await;
    let actor = b.actor(name).await;
    assert_eq!(actor["restarts"].as_u64(), restarts, "{actor}");
    let cmds: Vec<String> = b
        .emulator
        .executions()
        .iter()
        .filter_map(|e| e.parameters.get("cmd").cloned())
        .collect();
    assert_eq!(cmds, ["date"]);
}

#[actix_rt::test]
async fn an_over_limit_message_stored_offline_is_skipped_at_login_without_a_reconnect_loop() {
    // The bot is offline: prosody stores the direct message and delivers it at login.
    let server = Prosody::start(&["alice", "stormbot"]).await;
    let mut alice = User::connect(server.port, "alice").await;
    alice
        .say(
            "stormbot@localhost",
            "chat",
            &format!("!st2 run hidden {}", "y".repeat(MAX_STANZA + 1)),
        )
        .await;
    let mut opts: Options = with_test_aliases();
    opts.extra_toml = xmpp_chat("xmpp-offline", server.port, "");
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    let name = "chat:xmpp-offline";
    let told = alice
        .message_from("stormbot@localhost", "too large to read")
        .await;
    assert!(told.starts_with("Sorry, "), "{told}");
    let counted = eventually!(WAIT, skipped_stanzas(&b, name).await == 1);
    assert!(counted, "{}", b.actor(name).await);
    alice
        .say("stormbot@localhost", "chat", "!st2 run uptime")
        .await;
    alice.message_from("stormbot@localhost", "Started").await;
    let actor = b.actor(name).await;
    assert_eq!(actor["restarts"], 0, "{actor}");
    assert_eq!(actor["state"], "up", "{actor}");
    assert_eq!(b.emulator.executions().len(), 1);
}

/// Issue 18: a bridge killed after posting results and before recording them as posted
/// leaves them owed in its store. The next start finds each part by the key it carries as
/// its id and origin-id (XEP-0359) — in the room's history, and for a direct chat in the
/// bot's archive (prosody's `mod_mam`, XEP-0313) — and posts nothing.
#[actix_rt::test]
async fn a_result_owed_again_after_a_kill_is_found_in_the_rooms_history_or_the_archive_and_posted_once(
) {
    use crate::bridge_process::{
        binary_config, bridge_ready, owe_again_in_sqlite, owed_in_sqlite, BridgeProcess,
    };
    let server = Prosody::start(&["alice", "stormbot"]).await;
    let mut alice = User::connect(server.port, "alice").await;
    alice.join("alice").await;
    let emulator =
        stormbridge::emulator::Emulator::start(crate::crowd::CrowdOptions::default().emulator)
            .await
            .expect("emulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = binary_config(
        dir.path(),
        &emulator,
        port,
        &xmpp_chat("xmpp", server.port, ""),
    );
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let bot = format!("{ROOM}/stormbot");
    let mut bridge = BridgeProcess::start(&config, &seen);
    assert!(bridge_ready(port).await, "the bridge became ready");
    alice
        .say(ROOM, "groupchat", "!st2 run echo posted-once")
        .await;
    let ran = eventually!(WAIT, emulator.executions().len() == 1);
    assert!(ran, "StackStorm ran the command");
    let posted = format!("execution: {}", emulator.executions()[0].id);
    alice.message_from(&bot, &posted).await;
    alice
        .say("stormbot@localhost", "chat", "!st2 run echo direct-once")
        .await;
    let ran = eventually!(WAIT, emulator.executions().len() == 2);
    assert!(ran, "StackStorm ran the direct command");
    let direct = format!("execution: {}", emulator.executions()[1].id);
    alice.message_from("stormbot@localhost", &direct).await;
    let recorded = eventually!(WAIT, owed_in_sqlite(dir.path()).await == Some(0));
    assert!(recorded, "the results were recorded as posted");

    // Killed between posting them and recording that: the store owes them again.
    bridge.process.kill();
    assert_eq!(owe_again_in_sqlite(dir.path()).await, Some(2));
    let _next = BridgeProcess::start(&config, &seen);
    assert!(bridge_ready(port).await, "the bridge restarted");
    let settled = eventually!(
        std::time::Duration::from_secs(30),
        owed_in_sqlite(dir.path()).await == Some(0)
    );
    assert!(settled, "the result is still owed after the restart");

    // A command after the restart: its result comes after anything the restart posted.
    alice.say(ROOM, "groupchat", "!st2 run echo fence").await;
    let ran = eventually!(WAIT, emulator.executions().len() == 3);
    assert!(ran, "StackStorm ran the fence");
    let fence = format!("execution: {}", emulator.executions()[2].id);
    alice.message_from(&bot, &fence).await;
    for result in [&posted, &direct] {
        let times = alice
            .seen
            .iter()
            .filter(|s| s.contains(result.as_str()))
            .count();
        assert_eq!(
            times, 1,
            "{result} was posted {times} times: {:#?}",
            alice.seen
        );
    }
}

/// No result lost to a dying link: what the bridge writes into a link that dies before the
/// server read it leaves no trace the bridge could see on the socket. A result part is
/// followed by a ping the server answers only after handling it; unanswered when the link
/// ends, the part is sent again on the next link, and arrives once.
#[actix_rt::test]
async fn a_result_written_into_a_dying_link_is_sent_again_on_the_next_and_arrives_once() {
    let server = Prosody::start(&["alice", "stormbot"]).await;
    let relay = crate::contract::relay::Relay::start(server.port).await;
    let mut alice = User::connect(server.port, "alice").await;
    alice.join("alice").await;
    let bridge = bridge_in_room(&mut alice, relay.port, "xm", "").await;
    let bot = format!("{ROOM}/stormbot");

    relay.swallow(true);
    alice
        .say(ROOM, "groupchat", "!st2 run echo through-a-dying-link")
        .await;
    let ran = eventually!(WAIT, bridge.emulator.executions().len() == 1);
    assert!(ran, "StackStorm ran the command");
    let result = format!("execution: {}", bridge.emulator.executions()[0].id);
    let written = eventually!(WAIT, relay.swallowed().contains(&result));
    assert!(written, "the bridge wrote the result into the link");
    relay.go_down();
    relay.swallow(false);
    relay.come_up();
    alice.message_from(&bot, &result).await;

    // A command after: its result comes after anything sent again.
    alice.say(ROOM, "groupchat", "!st2 run echo after").await;
    let ran = eventually!(WAIT, bridge.emulator.executions().len() == 2);
    assert!(ran, "StackStorm ran the second command");
    let after = format!("execution: {}", bridge.emulator.executions()[1].id);
    alice.message_from(&bot, &after).await;
    let times = alice.seen.iter().filter(|s| s.contains(&result)).count();
    assert_eq!(
        times, 1,
        "the result arrived {times} times: {:#?}",
        alice.seen
    );
}
