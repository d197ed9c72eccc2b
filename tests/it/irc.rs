//! The IRC backend against a real ngircd on a random loopback port, with a test user that is
//! a raw IRC client (NICK/USER/JOIN/PRIVMSG, answering PING).

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use irc_proto::{Command as IrcCommand, Message};
use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    net::{
        tcp::{OwnedReadHalf, OwnedWriteHalf},
        TcpStream,
    },
};

use crate::support::{
    captured_logs, free_port, with_test_aliases, Options, Process, TestBridge, TestCerts, WAIT,
};

/// An ngircd in the foreground with a throw-away configuration; killed on drop.
pub(crate) struct Ngircd {
    pub(crate) port: u16,
    /// The TLS port, when started with [`Ngircd::start_tls`]; its CA is `ca_file()`.
    tls_port: Option<u16>,
    /// The TLS port's certificate and its CA.
    certs: Option<TestCerts>,
    password: Option<String>,
    dir: tempfile::TempDir,
    process: Process,
}

impl Ngircd {
    pub(crate) async fn start(password: Option<&str>) -> Self {
        let mut server = Self {
            port: free_port(),
            tls_port: None,
            certs: None,
            password: password.map(str::to_owned),
            dir: tempfile::tempdir().expect("temp dir"),
            process: Process::default(),
        };
        server.spawn().await;
        server
    }

    /// A server that also listens with TLS, on a certificate for `localhost` signed by a
    /// private CA (made with the `openssl` command).
    async fn start_tls() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let certs = TestCerts::make(dir.path(), "localhost");
        let mut server = Self {
            port: free_port(),
            tls_port: Some(free_port()),
            certs: Some(certs),
            password: None,
            dir,
            process: Process::default(),
        };
        server.spawn().await;
        server
    }

    fn ca_file(&self) -> PathBuf {
        self.certs.as_ref().expect("a TLS server").ca.clone()
    }

    async fn spawn(&mut self) {
        let conf = self.dir.path().join("ngircd.conf");
        let password = self
            .password
            .as_ref()
            .map(|p| format!("Password = {p}\n"))
            .unwrap_or_default();
        let text = format!(
            "[Global]\nName = irc.test\nInfo = stormbridge test server\nPorts = {port}\n\
             Listen = 127.0.0.1\nMotdPhrase = test\n{password}\
             [Limits]\nMaxNickLength = 30\nMaxConnectionsIP = 0\nPingTimeout = 120\n\
             [Options]\nPAM = no\nIdent = no\nDNS = no\n{tls}",
            port = self.port,
            tls = self
                .tls_port
                .zip(self.certs.as_ref())
                .map(|(p, c)| {
                    format!(
                        "[SSL]\nPorts = {p}\nCertFile = {}\nKeyFile = {}\n",
                        c.cert.display(),
                        c.key.display()
                    )
                })
                .unwrap_or_default(),
        );
        std::fs::write(&conf, text).expect("ngircd config written");
        self.process = Process::spawn(
            Command::new(crate::support::sbin_program("ngircd"))
                .arg("-n")
                .arg("-f")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "ngircd (Debian package `ngircd`; .ci/test-deps installs it)",
        );
        for port in std::iter::once(self.port).chain(self.tls_port) {
            let up = eventually!(WAIT, TcpStream::connect(("127.0.0.1", port)).await.is_ok());
            assert!(up, "ngircd never listened on {port}");
        }
    }

    /// Kills the server and starts it again on the same port.
    async fn restart(&mut self) {
        self.process.kill();
        self.spawn().await;
    }
}

/// A test user: a raw IRC client.
pub(crate) struct Client {
    nick: String,
    reader: Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
    /// Every line received, for failure messages.
    seen: Vec<String>,
}

impl Client {
    pub(crate) async fn connect(port: u16, nick: &str, password: Option<&str>) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to ngircd");
        let (r, w) = stream.into_split();
        let mut c = Self {
            nick: nick.to_owned(),
            reader: BufReader::new(r).lines(),
            writer: w,
            seen: Vec::new(),
        };
        if let Some(p) = password {
            c.send(&format!("PASS {p}")).await;
        }
        c.send(&format!("NICK {nick}")).await;
        c.send(&format!("USER {nick} 0 * :Test {nick}")).await;
        c.wait_for(|m| {
            matches!(
                m.command,
                IrcCommand::Response(irc_proto::Response::RPL_WELCOME, _)
            )
        })
        .await;
        c
    }

    pub(crate) async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("write to ngircd");
    }

    pub(crate) async fn join(&mut self, channel: &str) {
        self.send(&format!("JOIN {channel}")).await;
        self.wait_for(|m| {
            matches!(
                m.command,
                IrcCommand::Response(irc_proto::Response::RPL_ENDOFNAMES, _)
            )
        })
        .await;
    }

    pub(crate) async fn say(&mut self, target: &str, text: &str) {
        self.send(&format!("PRIVMSG {target} :{text}")).await;
    }

    /// The next message (raw line and parsed), answering PINGs; `None` after `limit`.
    pub(crate) async fn next_within(&mut self, limit: Duration) -> Option<(String, Message)> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = match tokio::time::timeout(left, self.reader.next_line()).await {
                Ok(Ok(Some(line))) => line,
                Ok(Ok(None)) | Ok(Err(_)) => {
                    panic!("{}: connection closed; seen: {:#?}", self.nick, self.seen)
                }
                Err(_) => return None,
            };
            self.seen.push(line.clone());
            let Ok(msg) = line.parse::<Message>() else {
                continue;
            };
            if let IrcCommand::PING(ref s, _) = msg.command {
                let pong = format!("PONG :{s}");
                self.send(&pong).await;
                continue;
            }
            return Some((line, msg));
        }
    }

    /// Reads until a message satisfies `pred`; panics after `WAIT` with what was seen.
    pub(crate) async fn wait_for(&mut self, pred: impl Fn(&Message) -> bool) -> (String, Message) {
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next_within(left).await {
                Some((line, msg)) if pred(&msg) => return (line, msg),
                Some(_) => {}
                None => break,
            }
        }
        panic!("{}: no expected message; seen: {:#?}", self.nick, self.seen)
    }

    /// The next PRIVMSG from `from` to `to` whose text contains `needle`: (raw line, text).
    async fn privmsg_containing(&mut self, from: &str, to: &str, needle: &str) -> (String, String) {
        let (line, msg) = self
            .wait_for(|m| {
                m.source_nickname() == Some(from)
                    && matches!(&m.command, IrcCommand::PRIVMSG(t, text) if t == to && text.contains(needle))
            })
            .await;
        let IrcCommand::PRIVMSG(_, text) = msg.command else {
            unreachable!("matched a PRIVMSG")
        };
        (line, text)
    }

    /// Every line received so far.
    pub(crate) fn seen_lines(&self) -> &[String] {
        &self.seen
    }

    /// Waits until `nick` joins `channel`.
    pub(crate) async fn sees_join(&mut self, nick: &str, channel: &str) {
        self.wait_for(|m| {
            m.source_nickname() == Some(nick)
                && matches!(&m.command, IrcCommand::JOIN(c, _, _) if c == channel)
        })
        .await;
    }
}

fn irc_chat(name: &str, port: u16, more: &str) -> String {
    format!(
        "[[chat]]\nname = \"{name}\"\nbackend = \"irc\"\nserver = \"127.0.0.1\"\nport = {port}\n\
         nick = \"stormbridge\"\nchannels = [\"#ops\"]\n{more}\n"
    )
}

/// ngircd, alice in #ops, and a bridge whose bot has joined #ops.
async fn setup(name: &str, password: Option<&str>, more: &str) -> (Ngircd, Client, TestBridge) {
    let server = Ngircd::start(password).await;
    let mut alice = Client::connect(server.port, "alice", password).await;
    alice.join("#ops").await;
    let mut opts: Options = with_test_aliases();
    opts.extra_toml = irc_chat(name, server.port, more);
    let bridge = TestBridge::start_with(opts).await;
    bridge.wait_ready(200).await;
    (server, alice, bridge)
}

#[actix_rt::test]
async fn commands_from_a_channel_and_a_private_message_come_back_to_the_same_place() {
    let (_server, mut alice, b) = setup("irc", None, "").await;
    alice.sees_join("stormbridge", "#ops").await;

    alice.say("#ops", "!st2 run date").await;
    let (_, ack) = alice
        .privmsg_containing("stormbridge", "#ops", "Started")
        .await;
    let exec = b.emulator.executions();
    assert_eq!(exec.len(), 1, "{exec:?}");
    let e = &exec[0];
    assert!(ack.contains(&e.id), "{ack}");
    assert_eq!(e.parameters.get("cmd").map(String::as_str), Some("date"));
    assert_eq!(e.request["user"], "alice");
    assert_eq!(e.request["source_channel"], "#ops");
    let ctx = &e.request["source_context"];
    assert_eq!(ctx["connection"], "irc");
    assert_eq!(ctx["room"], "#ops");
    assert_eq!(ctx["room_kind"], "group");
    assert_eq!(ctx["user_id"], "alice");
    // In a channel the result's first line starts with who ran the command, by nick (as
    // IRC clients highlight it).
    let (_, first) = alice
        .wait_for(|m| {
            m.source_nickname() == Some("stormbridge")
                && matches!(&m.command, IrcCommand::PRIVMSG(t, _) if t == "#ops")
        })
        .await;
    assert!(
        matches!(&first.command, IrcCommand::PRIVMSG(_, text) if text.starts_with("alice:")),
        "{first:?}"
    );
    let (_, result) = alice
        .privmsg_containing("stormbridge", "#ops", &format!("execution: {}", e.id))
        .await;
    assert!(!result.contains('\n'));

    // A private message is a direct chat: the reply is a private message back.
    alice.say("stormbridge", "!st2 run uptime").await;
    alice
        .privmsg_containing("stormbridge", "alice", "Started")
        .await;
    let exec = b.emulator.executions();
    assert_eq!(exec.len(), 2);
    let e = &exec[1];
    assert_eq!(e.parameters.get("cmd").map(String::as_str), Some("uptime"));
    assert_eq!(e.request["user"], "alice");
    assert_eq!(e.request["source_channel"], "alice");
    assert_eq!(e.request["source_context"]["room_kind"], "direct");
    alice
        .privmsg_containing("stormbridge", "alice", &format!("execution: {}", e.id))
        .await;

    // A mention works without the `!`.
    alice.say("#ops", "StormBridge: st2 run whoami").await;
    alice
        .privmsg_containing("stormbridge", "#ops", "Started")
        .await;
    assert_eq!(
        b.emulator.executions()[2]
            .parameters
            .get("cmd")
            .map(String::as_str),
        Some("whoami")
    );

    // A whisper (`Target::User`) is a private message.
    b.emulator.announce(
        "stormbridge",
        json!({"message": "just for alice", "channel": "irc:#ops", "user": "alice", "whisper": true}),
    );
    alice
        .privmsg_containing("stormbridge", "alice", "just for alice")
        .await;

    alice.say("#ops", "!st2help").await;
    let (_, help) = alice.privmsg_containing("stormbridge", "#ops", "run").await;
    assert!(!help.is_empty());
    assert_eq!(b.emulator.executions().len(), 3, "help runs nothing");
}

#[actix_rt::test]
async fn a_long_reply_arrives_complete_in_lines_that_fit_512_bytes_at_a_paced_rate() {
    let (_server, mut alice, b) = setup("irc", None, "").await;
    alice.sees_join("stormbridge", "#ops").await;
    let words: Vec<String> = (0..400).map(|i| format!("w{i:03}é")).collect();
    let message = format!("first line\n{}\nlast line", words.join(" "));
    b.emulator.announce(
        "stormbridge",
        json!({"message": message, "channel": "irc:#ops"}),
    );
    let (first, _) = alice
        .privmsg_containing("stormbridge", "#ops", "first line")
        .await;
    assert!(first.len() + 2 <= 512);
    let started = Instant::now();
    let mut text = String::new();
    let mut parts: u32 = 0;
    loop {
        let (line, part) = alice.privmsg_containing("stormbridge", "#ops", "").await;
        assert!(line.len() + 2 <= 512, "{} bytes: {line}", line.len() + 2);
        if part == "last line" {
            break;
        }
        parts += 1;
        text.push_str(&part);
        text.push(' ');
    }
    let elapsed = started.elapsed();
    assert!(parts >= 4, "split into {parts} parts");
    let received: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        received,
        words.iter().map(String::as_str).collect::<Vec<_>>()
    );
    // Burst of 4 (one was "first line"), then one line per 500 ms.
    let paced = (parts + 2).saturating_sub(4);
    assert!(
        elapsed >= Duration::from_millis(450) * paced.saturating_sub(1),
        "{parts} parts in {elapsed:?}: flood control did not pace them"
    );
}

#[actix_rt::test]
async fn server_password_and_nick_collision_fallback() {
    let server = Ngircd::start(Some("s3cret-pass")).await;
    let mut alice = Client::connect(server.port, "alice", Some("s3cret-pass")).await;
    alice.join("#ops").await;
    // Someone already has the bot's nick.
    let _squatter = Client::connect(server.port, "stormbridge", Some("s3cret-pass")).await;
    let mut opts = with_test_aliases();
    opts.extra_toml = irc_chat("irc-pass", server.port, "password = \"s3cret-pass\"");
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    alice.sees_join("stormbridge_", "#ops").await;
    alice.say("#ops", "stormbridge_: st2 run date").await;
    alice
        .privmsg_containing("stormbridge_", "#ops", "Started")
        .await;
    let e = &b.emulator.executions()[0];
    assert_eq!(e.request["user"], "alice");
    assert_eq!(e.request["source_context"]["connection"], "irc-pass");
    assert!(
        !captured_logs().contains("s3cret-pass"),
        "the server password was logged"
    );
}

#[actix_rt::test]
async fn a_wrong_server_password_keeps_the_connection_not_ready() {
    let server = Ngircd::start(Some("right")).await;
    let mut opts = with_test_aliases();
    opts.extra_toml = irc_chat("irc-badpass", server.port, "password = \"wrong\"");
    let b = TestBridge::start_with(opts).await;
    let restarted = eventually!(
        WAIT,
        b.actor("chat:irc-badpass").await["restarts"].as_u64() >= Some(1)
    );
    assert!(restarted, "{}", b.actor("chat:irc-badpass").await);
    let (status, body) = b.get("/ready").await;
    assert_eq!(status, 503, "{body}");
}

#[actix_rt::test]
async fn after_a_server_restart_the_bridge_reconnects_rejoins_and_delivers_what_was_queued() {
    let more = "reconnect_backoff_initial_ms = 4000\nreconnect_backoff_max_ms = 4000";
    let (mut server, mut alice, b) = setup("irc-restart", None, more).await;
    alice.sees_join("stormbridge", "#ops").await;
    drop(alice);

    server.process.kill();
    b.wait_ready(503).await;
    assert_eq!(b.actor("chat:irc-restart").await["state"], "reconnecting");

    b.emulator.announce(
        "stormbridge",
        json!({"message": "queued while the server was away", "channel": "irc-restart:#ops"}),
    );
    // The bridge's debug log says when it queued the reply (not captured under TEST_LOG).
    if std::env::var_os("TEST_LOG").is_none() {
        let queued = eventually!(WAIT, {
            captured_logs().lines().any(|l| {
                l.contains("connection=irc-restart") && l.contains("queued while disconnected")
            })
        });
        assert!(queued, "the reply was not queued");
    }

    // Restart right after a failed attempt, so alice is back in #ops before the bot's next
    // attempt (at least 2 s later with this backoff).
    let before = b.actor("chat:irc-restart").await["restarts"].as_u64();
    let failed_again = eventually!(
        WAIT,
        b.actor("chat:irc-restart").await["restarts"].as_u64() > before
    );
    assert!(failed_again);
    server.restart().await;
    let mut alice = Client::connect(server.port, "alice", None).await;
    alice.join("#ops").await;

    alice.sees_join("stormbridge", "#ops").await;
    alice
        .privmsg_containing("stormbridge", "#ops", "queued while the server was away")
        .await;
    b.wait_ready(200).await;

    // And commands work on the new connection.
    alice.say("#ops", "!st2 run date").await;
    alice
        .privmsg_containing("stormbridge", "#ops", "Started")
        .await;
}

#[actix_rt::test]
async fn a_line_written_into_a_dying_link_is_sent_again_on_the_next_and_arrives_once() {
    let server = Ngircd::start(None).await;
    let relay = crate::contract::relay::Relay::start(server.port).await;
    let mut alice = Client::connect(server.port, "alice", None).await;
    alice.join("#ops").await;
    let mut opts: Options = with_test_aliases();
    opts.extra_toml = irc_chat(
        "irc-dying",
        relay.port,
        "reconnect_backoff_initial_ms = 200\nreconnect_backoff_max_ms = 500",
    );
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    alice.sees_join("stormbridge", "#ops").await;
    let bot_says = |text: &'static str| {
        move |m: &Message| {
            m.source_nickname()
                .is_some_and(|n| n.starts_with("stormbridge"))
                && matches!(&m.command, IrcCommand::PRIVMSG(t, said) if t == "#ops" && said == text)
        }
    };

    // The link dies under the bridge: what it writes never reaches the server.
    relay.swallow(true);
    let lost = "written into a dying link";
    b.emulator.announce(
        "stormbridge",
        json!({"message": lost, "channel": "irc-dying:#ops"}),
    );
    let written = eventually!(WAIT, relay.swallowed().contains(lost));
    assert!(written, "the bridge wrote the line into the link");
    relay.go_down();
    relay.swallow(false);
    relay.come_up();
    alice.wait_for(bot_says(lost)).await;

    // A line after: it comes after anything sent again.
    let after = "said after the reconnect";
    b.emulator.announce(
        "stormbridge",
        json!({"message": after, "channel": "irc-dying:#ops"}),
    );
    alice.wait_for(bot_says(after)).await;
    let times = alice
        .seen
        .iter()
        .filter(|l| l.contains("PRIVMSG #ops") && l.contains(lost))
        .count();
    assert_eq!(
        times, 1,
        "the line arrived {times} times: {:#?}",
        alice.seen
    );
    // Operators see it: the line sent again is counted.
    let resent = b
        .metric(r#"stormbridge_chat_outbound_resent_total{connection="irc-dying"}"#)
        .await;
    assert!(resent >= 1.0, "resent {resent}");
}

#[actix_rt::test]
async fn other_bots_ctcp_notices_and_the_bridges_own_messages_are_not_commands() {
    let (server, mut alice, b) = setup("irc", None, "ignore_nicks = [\"otherbot\"]").await;
    alice.sees_join("stormbridge", "#ops").await;
    let mut otherbot = Client::connect(server.port, "otherbot", None).await;
    otherbot.join("#ops").await;

    // The private message first: once alice sees the channel one, both were relayed.
    otherbot.say("stormbridge", "!st2 run from-a-bot-dm").await;
    otherbot.say("#ops", "!st2 run from-a-bot").await;
    alice
        .wait_for(|m| m.source_nickname() == Some("otherbot"))
        .await;
    alice.say("#ops", "\x01ACTION !st2 run ctcp\x01").await;
    alice.send("NOTICE #ops :!st2 run notice").await;
    // The bridge's own message, announced into the channel.
    b.emulator.announce(
        "stormbridge",
        json!({"message": "!st2 run from-the-bridge", "channel": "irc:#ops"}),
    );
    alice
        .privmsg_containing("stormbridge", "#ops", "from-the-bridge")
        .await;

    alice.say("#ops", "!st2 run marker").await;
    alice
        .privmsg_containing("stormbridge", "#ops", "Started")
        .await;
    let cmds: Vec<String> = b
        .emulator
        .executions()
        .iter()
        .filter_map(|e| e.parameters.get("cmd").cloned())
        .collect();
    assert_eq!(cmds, vec!["marker".to_owned()]);

    // CTCP in a private message (where text needs no prefix) gets no answer at all.
    alice.say("stormbridge", "\x01VERSION\x01").await;
    alice
        .say("stormbridge", "\x01ACTION st2 run ctcp-dm\x01")
        .await;
    alice.say("stormbridge", "!st2 run marker-dm").await;
    let (line, _) = alice
        .wait_for(|m| {
            m.source_nickname() == Some("stormbridge")
                && matches!(&m.command, IrcCommand::PRIVMSG(t, _) | IrcCommand::NOTICE(t, _) if t == "alice")
        })
        .await;
    assert!(
        line.contains("Started") && line.contains("marker-dm"),
        "{line}"
    );
    assert_eq!(b.emulator.executions().len(), 2);
}

#[actix_rt::test]
async fn a_kicked_bot_rejoins_its_channel() {
    let (_server, mut alice, b) = setup("irc", None, "").await;
    alice.sees_join("stormbridge", "#ops").await;
    // alice created #ops, so she is its operator.
    alice.send("KICK #ops stormbridge :out").await;
    alice
        .wait_for(|m| matches!(&m.command, IrcCommand::KICK(_, who, _) if who == "stormbridge"))
        .await;
    alice.sees_join("stormbridge", "#ops").await;
    alice.say("#ops", "!st2 run date").await;
    alice
        .privmsg_containing("stormbridge", "#ops", "Started")
        .await;
    assert_eq!(b.emulator.executions().len(), 1);
}

#[actix_rt::test]
async fn sasl_refused_by_the_server_is_an_error_not_an_unauthenticated_login() {
    // ngircd does not offer SASL: it answers `CAP NAK`, and the bot must not register
    // without the authentication it was configured to use.
    let server = Ngircd::start(None).await;
    let mut alice = Client::connect(server.port, "alice", None).await;
    let mut opts = with_test_aliases();
    opts.extra_toml = irc_chat(
        "irc-sasl",
        server.port,
        "sasl_username = \"bot\"\nsasl_password = \"sasl-s3cret\"",
    );
    let b = TestBridge::start_with(opts).await;
    let failed = eventually!(
        WAIT,
        b.actor("chat:irc-sasl").await["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("SASL"))
    );
    assert!(failed, "{}", b.actor("chat:irc-sasl").await);
    assert_eq!(b.get("/ready").await.0, 503);
    alice.send("WHOIS stormbridge").await;
    let (line, _) = alice
        .wait_for(|m| {
            matches!(
                m.command,
                IrcCommand::Response(
                    irc_proto::Response::ERR_NOSUCHNICK | irc_proto::Response::RPL_WHOISUSER,
                    _
                )
            )
        })
        .await;
    assert!(line.contains(" 401 "), "the bot registered: {line}");
    assert!(!captured_logs().contains("sasl-s3cret"));
}

#[actix_rt::test]
async fn tls_connection_with_a_private_ca() {
    let server = Ngircd::start_tls().await;
    let mut alice = Client::connect(server.port, "alice", None).await;
    alice.join("#ops").await;
    let mut opts = with_test_aliases();
    let more = format!(
        "tls = true\ntls_ca_file = \"{}\"",
        server.ca_file().display()
    );
    let tls_port = server.tls_port.expect("a TLS port");
    opts.extra_toml = irc_chat("irc-tls", tls_port, &more).replace("127.0.0.1", "localhost");
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    alice.sees_join("stormbridge", "#ops").await;
    alice.say("#ops", "!st2 run date").await;
    alice
        .privmsg_containing("stormbridge", "#ops", "Started")
        .await;
    assert_eq!(
        b.emulator.executions()[0].request["source_context"]["connection"],
        "irc-tls"
    );
}

/// An InspIRCd 3 (Debian package `inspircd`) in the foreground on a random loopback port,
/// with what makes it replay a channel's history at every join: the `chanhistory` module,
/// and mode `+H 50:1d` on every new channel (`defaultmodes`; `o` ops its creator). With the
/// IRCv3 modules for `server-time`, `msgid` and `message-tags` (`ircv3_ctctags` offers the
/// capability; `msgid` goes only to clients that have it). The configuration keys are those
/// of InspIRCd 3's example configuration and module documentation
/// (<https://docs.inspircd.org/3/modules/chanhistory>). Killed on drop.
pub(crate) struct Inspircd {
    pub(crate) port: u16,
    _dir: tempfile::TempDir,
    _process: Process,
}

impl Inspircd {
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let d = dir.path().display();
        let conf = format!(
            r#"<server name="irc.test.local" description="stormbridge test server" network="Test">
<admin name="test" nick="test" email="test@example.invalid">
<bind address="127.0.0.1" port="{port}" type="clients">
<connect name="main" allow="*" timeout="20" pingfreq="120" sendq="1048576" recvq="65536"
         threshold="1000" commandrate="100000" fakelag="no" localmax="1000" globalmax="1000"
         maxchans="50" limit="5000" resolvehostnames="no" useident="no" modes="">
<performance netbuffersize="10240" somaxconn="128" softlimit="1024" clonesonconnect="no"
             timeskipwarn="0" quietbursts="yes">
<dns server="127.0.0.1" timeout="1">
<options defaultmodes="ntoH 50:1d" syntaxhints="no" announcets="no" allowmismatched="no"
         defaultbind="auto" pingwarning="15" serverpingfreq="1m" splitwhois="no">
<security announceinvites="dynamic" hideulines="no" hidesplits="no" maxtargets="20"
          customversion="" restrictbannedusers="yes" genericoper="no" userstats="Pu">
<limits maxnick="30" maxchan="64" maxmodes="20" maxident="10" maxhost="64" maxquit="255"
        maxtopic="307" maxkick="255" maxreal="128" maxaway="200">
<files motd="{d}/motd">
<pid file="{d}/inspircd.pid">
<whowas groupsize="10" maxgroups="100000" maxkeep="3d">
<module name="cap">
<module name="ircv3">
<module name="ircv3_servertime">
<module name="ircv3_msgid">
<module name="ircv3_batch">
<module name="ircv3_ctctags">
<module name="chanhistory">
<chanhistory bots="yes" enableumode="no" maxlines="50" prefixmsg="yes">
"#
        );
        std::fs::write(dir.path().join("motd"), "test\n").expect("motd written");
        let path = dir.path().join("inspircd.conf");
        std::fs::write(&path, conf).expect("inspircd config written");
        let process = Process::spawn(
            Command::new(crate::support::sbin_program("inspircd"))
                .arg("--config")
                .arg(&path)
                .arg("--nofork")
                // Refused as root without it (CI runs as root); harmless otherwise.
                .arg("--runasroot")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "inspircd (Debian package `inspircd`; .ci/test-deps installs it)",
        );
        let up = eventually!(WAIT, TcpStream::connect(("127.0.0.1", port)).await.is_ok());
        assert!(up, "inspircd never listened on {port}");
        Self {
            port,
            _dir: dir,
            _process: process,
        }
    }
}

/// InspIRCd replays a channel's last lines to whoever joins, a bot included. The bridge
/// runs none of what was said before its first join, nothing twice after a rejoin, and what
/// was said while its link was down, once.
#[actix_rt::test]
async fn on_a_server_that_replays_history_at_a_join_old_commands_are_not_run_again_and_missed_ones_are(
) {
    let server = Inspircd::start().await;
    let relay = crate::contract::relay::Relay::start(server.port).await;
    let mut alice = Client::connect(server.port, "alice", None).await;
    alice.join("#ops").await;
    // Said before the bridge ever joined: in the channel's history, never to be run.
    alice.say("#ops", "!st2 run echo before-the-bot").await;
    let mut opts: Options = with_test_aliases();
    opts.extra_toml = irc_chat(
        "irc-history",
        relay.port,
        "reconnect_initial_ms = 1500\nreconnect_max_ms = 1500",
    );
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    alice.sees_join("stormbridge", "#ops").await;

    let runs_of = |marker: &str| crate::support::runs_of(&b.emulator, marker);
    // The line of a result that carries the command's output.
    let result_of = |marker: &'static str| {
        move |m: &Message| {
            m.source_nickname()
                .is_some_and(|n| n.starts_with("stormbridge"))
                && matches!(&m.command, IrcCommand::PRIVMSG(t, said) if t == "#ops" && said == &format!("stdout : {marker}"))
        }
    };
    alice.say("#ops", "!st2 run echo live-one").await;
    alice.wait_for(result_of("live-one")).await;

    // The bot's link is cut; it comes back after 1.5 s. Meanwhile alice says one more.
    relay.go_down();
    alice
        .wait_for(|m| {
            m.source_nickname()
                .is_some_and(|n| n.starts_with("stormbridge"))
                && matches!(m.command, IrcCommand::QUIT(_))
        })
        .await;
    alice.say("#ops", "!st2 run echo said-while-away").await;
    relay.come_up();
    alice.sees_join("stormbridge", "#ops").await;
    alice.wait_for(result_of("said-while-away")).await;
    alice.say("#ops", "!st2 run echo live-two").await;
    alice.wait_for(result_of("live-two")).await;

    // The server gets the bot's lines but its answers stop: the acknowledgement of the next
    // command reaches the channel, its confirming PONG never reaches the bot. The link is
    // then cut; on the next, the bot finds that line in the replayed history and does not
    // send it again.
    // StackStorm's answer is held until the bot can no longer hear the server, so the bot
    // writes its next line (the acknowledgement, or the result's first) into that link.
    b.emulator.hold_responses(true);
    alice.say("#ops", "!st2 run echo unanswered").await;
    let received = eventually!(WAIT, !runs_of("unanswered").is_empty());
    assert!(received, "the bridge ran the command");
    relay.deafen(true);
    b.emulator.hold_responses(false);
    alice
        .wait_for(|m| {
            m.source_nickname()
                .is_some_and(|n| n.starts_with("stormbridge"))
                && matches!(&m.command, IrcCommand::PRIVMSG(t, _) if t == "#ops")
        })
        .await;
    relay.go_down();
    relay.deafen(false);
    relay.come_up();
    alice.wait_for(result_of("unanswered")).await;

    assert!(
        runs_of("before-the-bot").is_empty(),
        "said before the bot's first join"
    );
    let acks = alice
        .seen
        .iter()
        .filter(|l| l.contains("PRIVMSG #ops :Started `run echo unanswered`"))
        .count();
    assert_eq!(
        acks, 1,
        "the acknowledgement was posted once: {:#?}",
        alice.seen
    );
    for marker in ["live-one", "said-while-away", "live-two", "unanswered"] {
        let runs = runs_of(marker);
        assert_eq!(runs.len(), 1, "{marker} ran once");
        let id = &runs[0].id;
        // A line inside the result, and its last line: the one written just before the cut
        // (its confirming PONG may not have come), which the bot then finds in the history
        // the server replays at the rejoin and does not send again.
        for said in [format!("execution: {id}"), format!("stdout : {marker}")] {
            let times = alice
                .seen
                .iter()
                .filter(|l| l.ends_with(&format!("PRIVMSG #ops :{said}")))
                .count();
            assert_eq!(times, 1, "`{said}` was posted once: {:#?}", alice.seen);
        }
    }
}
