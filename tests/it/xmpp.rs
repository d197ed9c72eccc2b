//! The XMPP backend against a real prosody on a random loopback port (plaintext, loopback
//! only), with test users that are the backend's own client code.

use std::process::{Command, Stdio};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use stormbridge::backends::xmpp::{
    client::{self, join_xml, message_xml, Login, XmppStream},
    config::{Jid, TlsMode},
    xml::{Element, Frame},
};
use tokio::net::TcpStream;

use crate::support::{free_port, with_test_aliases, Options, Process, TestBridge, WAIT};

const ROOM: &str = "ops@conference.localhost";

/// A prosody in the foreground with a throw-away configuration; killed on drop.
struct Prosody {
    port: u16,
    dir: tempfile::TempDir,
    process: Process,
}

impl Prosody {
    async fn start(users: &[&str]) -> Self {
        let mut server = Self {
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            process: Process::default(),
        };
        let d = server.dir.path().to_owned();
        std::fs::create_dir_all(d.join("data")).expect("data dir");
        let text = format!(
            "run_as_root = true\npidfile = \"{d}/prosody.pid\"\ndata_path = \"{d}/data\"\n\
             interfaces = {{ \"127.0.0.1\" }}\nc2s_ports = {{ {port} }}\ns2s_ports = {{ {s2s} }}\n\
             http_ports = {{}}\nhttps_ports = {{}}\nc2s_direct_tls_ports = {{}}\n\
             admin_socket = \"{d}/admin.sock\"\n\
             log = {{ debug = \"{d}/prosody.log\" }}\n\
             modules_enabled = {{ \"roster\"; \"saslauth\"; \"disco\"; \"ping\"; \"offline\"; \"posix\" }}\n\
             modules_disabled = {{ \"s2s\" }}\n\
             allow_unencrypted_plain_auth = true\nc2s_require_encryption = false\n\
             authentication = \"internal_plain\"\nstorage = \"internal\"\n\
             VirtualHost \"localhost\"\n\
             Component \"conference.localhost\" \"muc\"\n    muc_room_locking = false\n",
            d = d.display(),
            port = server.port,
            s2s = free_port(),
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

    fn kill(&mut self) {
        self.process.kill();
    }

    async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

/// A test user.
struct User {
    stream: XmppStream,
    seen: Vec<String>,
}

impl User {
    async fn connect(port: u16, name: &str) -> Self {
        let login = Login {
            host: "127.0.0.1".into(),
            port,
            jid: Jid::parse(&format!("{name}@localhost")).expect("jid"),
            password: format!("{name}-pw").into(),
            resource: "test".into(),
            tls: TlsMode::Plaintext,
            tls_config: None,
            timeout: WAIT,
        };
        let session = client::connect(&login).await.expect("test user logs in");
        let mut user = Self {
            stream: session.stream,
            seen: Vec::new(),
        };
        user.send("<presence/>".into()).await;
        user
    }

    async fn send(&mut self, xml: String) {
        self.stream.send(xml).await.expect("test user sends");
    }

    async fn join(&mut self, nick: &str) {
        self.send(join_xml(ROOM, nick)).await;
        let me = format!("{ROOM}/{nick}");
        self.wait_for(|e| e.local_name() == "presence" && e.attr("from") == Some(me.as_str()))
            .await;
    }

    async fn say(&mut self, to: &str, kind: &str, text: &str) {
        self.send(message_xml(to, kind, text, "t1")).await;
    }

    async fn wait_for(&mut self, pred: impl Fn(&Element) -> bool) -> Element {
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

fn xmpp_chat(name: &str, port: u16, more: &str) -> String {
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
    let mut opts: Options = with_test_aliases();
    opts.extra_toml = xmpp_chat(name, server.port, more);
    let bridge = TestBridge::start_with(opts).await;
    bridge.wait_ready(200).await;
    let bot = format!("{ROOM}/stormbot");
    alice
        .wait_for(|e| e.local_name() == "presence" && e.attr("from") == Some(bot.as_str()))
        .await;
    (server, alice, bridge)
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
    alice
        .message_from(&bot_in_room, &format!("execution: {}", e.id))
        .await;

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
    server.kill();
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
    for name in ["chat:xmpp-tls", "chat:xmpp-badpass"] {
        let restarted = eventually!(WAIT, b.actor(name).await["restarts"].as_u64() >= Some(1));
        assert!(restarted, "{}", b.actor(name).await);
        assert_ne!(b.actor(name).await["state"], "up");
    }
    let (status, body) = b.get("/ready").await;
    assert_eq!(status, 503, "{body}");
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
