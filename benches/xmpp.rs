//! The bridge's CPU per command over XMPP, end to end: `cargo bench --bench xmpp [-- SECONDS]
//! [--people=N]`.
//!
//! N people (1, then 32) each chat directly with the bot through a real prosody on loopback,
//! in a closed loop of `!st2 run echo …`: the next command goes once the previous one's
//! result is back. Every command crosses the whole bridge and XMPP both ways — the person's
//! stanza through prosody, the bridge's XML parsing, matching, the access gate, `POST
//! /api/v1/aliasexecution`, the stream, the ledger, the acknowledgement and the result as two
//! stanzas back through prosody. Four processes share the machine: the bridge (this binary
//! re-run with `--bridge-child`), the StackStorm emulator (`--emulator-child`, no execution
//! delay, a quiet bus), prosody, and the people (this process, with the bridge's own XMPP
//! client code). Printed per run: commands/s, command→result latency p50/p99, and CPU time per
//! command of each process.
//!
//! The bridge's pacing is opened up here (`flood_burst`, `send_interval_ms`): by default it
//! sends 50 a second after a burst of 50, which would make this a measure of the pace, not of
//! the CPU. prosody is plaintext on loopback, as the XMPP tests run it, with Nagle's
//! algorithm off (`network_settings = { nagle = false }`): prosody's default holds a second
//! stanza to a person (the result after the acknowledgement) until the person's client
//! acknowledges the first, which with delayed ACKs added about 33 ms to every command here.
//! That is prosody's and the people's clients' matter; the bridge's own connections set
//! `TCP_NODELAY`.
//!
//! Issue 14 target: ≤ 0.2 ms of the bridge's CPU per command (acknowledgement and result
//! included). Needs prosody (Debian package `prosody`).

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use stormbridge::{
    app::{self, AppOptions},
    backends::{
        registry::REGISTRY,
        xmpp::{
            client::{self, message_xml, Login, XmppStream},
            config::{Jid, TlsMode},
            wire::{Element, Frame},
        },
    },
    config,
};

#[path = "common/e2e.rs"]
mod e2e;
use e2e::{cpu_time, percentile, spawn_emulator, sys_time, ChildProcess, Urls};

/// The binary's allocator, so the figures are the shipped binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BOT: &str = "stormbot";
/// Longest wait for one result before the run is called broken.
const RESULT_WAIT: Duration = Duration::from_secs(30);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--emulator-child") {
        e2e::emulator_child();
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--bridge-child") {
        bridge_child(Path::new(&args[i + 1]));
        return;
    }
    let seconds: u64 = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10);
    let only: Option<usize> = args
        .iter()
        .find_map(|a| a.strip_prefix("--people=").and_then(|n| n.parse().ok()));
    let peoples = only.map_or(vec![1usize, 32], |n| vec![n]);
    let most = peoples.iter().copied().max().unwrap_or(1);
    let names: Vec<String> = (0..most).map(|i| format!("p{i}")).collect();
    let prosody = Prosody::start(&names);
    let (emulator, urls) = spawn_emulator();
    let config = prosody.dir.path().join("bridge.toml");
    std::fs::write(&config, bridge_toml(&urls, prosody.port)).expect("bridge config written");
    let mut bridge = ChildProcess::spawn(&["--bridge-child", &config.display().to_string()]);
    assert_eq!(bridge.read_lines(1), ["ready"], "the bridge child starts");
    let pids = Pids {
        bridge: bridge.pid(),
        emulator: emulator.pid(),
        prosody: prosody.process.id(),
    };
    for people in peoples {
        let run = run(
            prosody.port,
            &names[..people],
            Duration::from_secs(seconds),
            &pids,
        );
        println!("{run}");
    }
}

/// The bridge: the configuration at `path`, until standard input closes. Prints `ready`
/// once it answers `/ready`.
fn bridge_child(path: &Path) {
    let text = std::fs::read_to_string(path).expect("bridge config");
    let settings = config::load_from_str(&text, &REGISTRY).expect("bench configuration is valid");
    let system = actix_rt::System::new();
    system.block_on(async move {
        let app = app::start(settings, AppOptions::default())
            .await
            .expect("bridge starts");
        e2e::wait_ready(app.http_addr).await;
        println!("ready");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        e2e::until_stdin_closes().await;
        app.stop().await;
    });
}

fn bridge_toml(urls: &Urls, port: u16) -> String {
    e2e::st2_toml(urls)
        + &format!(
            "[[chat]]\nname = \"xmpp\"\nbackend = \"xmpp\"\njid = \"{BOT}@localhost\"\n\
             password = \"{BOT}-pw\"\nserver = \"127.0.0.1:{port}\"\ntls = \"plaintext\"\n\
             flood_burst = 100000\nsend_interval_ms = 1\n"
        )
}

/// The processes whose CPU time a run reports.
struct Pids {
    bridge: u32,
    emulator: u32,
    prosody: u32,
}

/// What one run measured.
struct Run {
    people: usize,
    commands: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// CPU time of each process over the run: bridge (and of it in the kernel), emulator,
    /// prosody, people.
    bridge: Duration,
    bridge_sys: Duration,
    emulator: Duration,
    prosody: Duration,
    people_cpu: Duration,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = self.latencies.clone();
        l.sort();
        let per = |d: Duration| d.as_secs_f64() * 1e3 / self.commands.max(1) as f64;
        write!(
            f,
            "xmpp, {:>2} people: {:>6} commands in {:.1} s = {:>6.0} commands/s; \
             latency p50 {:.2} ms, p99 {:.2} ms; CPU per command: bridge {:.3} ms \
             ({:.3} ms in the kernel), emulator {:.3} ms, prosody {:.3} ms, people {:.3} ms",
            self.people,
            self.commands,
            self.elapsed.as_secs_f64(),
            self.commands as f64 / self.elapsed.as_secs_f64(),
            percentile(&l, 0.50).as_secs_f64() * 1e3,
            percentile(&l, 0.99).as_secs_f64() * 1e3,
            per(self.bridge),
            per(self.bridge_sys),
            per(self.emulator),
            per(self.prosody),
            per(self.people_cpu),
        )
    }
}

fn run(port: u16, names: &[String], length: Duration, pids: &Pids) -> Run {
    let system = actix_rt::System::new();
    system.block_on(async move {
        let mut people = Vec::new();
        for name in names {
            people.push(Person::connect(port, name).await);
        }
        // One command each first, so the bot's link, the stream and every path are warm.
        for (i, p) in people.iter_mut().enumerate() {
            p.command(&format!("w{i}")).await;
        }
        let cpu = |pid: u32| cpu_time(&pid.to_string());
        let (bridge0, bridge_sys0) = (cpu(pids.bridge), sys_time(&pids.bridge.to_string()));
        let (emulator0, prosody0, people0) =
            (cpu(pids.emulator), cpu(pids.prosody), cpu_time("self"));
        let started = Instant::now();
        let deadline = started + length;
        let mut tasks = Vec::new();
        for (i, mut person) in people.into_iter().enumerate() {
            tasks.push(actix_rt::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0usize;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    person.command(&format!("p{i}x{n}")).await;
                    latencies.push(sent.elapsed());
                    n += 1;
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.expect("person's task"));
        }
        Run {
            people: names.len(),
            commands: latencies.len(),
            elapsed: started.elapsed(),
            latencies,
            bridge: cpu(pids.bridge).saturating_sub(bridge0),
            bridge_sys: sys_time(&pids.bridge.to_string()).saturating_sub(bridge_sys0),
            emulator: cpu(pids.emulator).saturating_sub(emulator0),
            prosody: cpu(pids.prosody).saturating_sub(prosody0),
            people_cpu: cpu_time("self").saturating_sub(people0),
        }
    })
}

/// One person: an XMPP account of their own, chatting directly with the bot.
struct Person {
    stream: XmppStream,
    said: u64,
}

impl Person {
    async fn connect(port: u16, name: &str) -> Self {
        let login = Login {
            host: "127.0.0.1".into(),
            port,
            jid: Jid::parse(&format!("{name}@localhost")).expect("jid"),
            password: format!("{name}-pw").into(),
            resource: "bench".into(),
            tls: TlsMode::Plaintext,
            tls_config: None,
            timeout: Duration::from_secs(10),
        };
        let session = client::connect(&login).await.expect("person logs in");
        let mut person = Self {
            stream: session.stream,
            said: 0,
        };
        person
            .stream
            .send("<presence/>".into())
            .await
            .expect("presence sent");
        person
    }

    /// Says `!st2 run echo WORD` to the bot and waits for its result.
    async fn command(&mut self, word: &str) {
        self.said += 1;
        let to = format!("{BOT}@localhost");
        let text = format!("!st2 run echo {word}");
        let stanza = message_xml(&to, "chat", &text, &format!("m{}", self.said));
        self.stream.send(stanza).await.expect("command sent");
        let result = format!("stdout : {word}");
        let deadline = tokio::time::Instant::now() + RESULT_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(Frame::Stanza(e)))) if is_body_with(&e, &result) => return,
                Ok(Some(Ok(_))) => {}
                other => panic!("no result for `{word}` within {RESULT_WAIT:?}: {other:?}"),
            }
        }
    }
}

fn is_body_with(e: &Element, needle: &str) -> bool {
    e.local_name() == "message" && e.child("body").is_some_and(|b| b.text().contains(needle))
}

/// prosody in the foreground on a random loopback port, plaintext, with a throw-away
/// configuration and the bot's and the people's accounts; killed on drop.
struct Prosody {
    port: u16,
    dir: tempfile::TempDir,
    process: std::process::Child,
}

impl Prosody {
    // The bench's own thread before any arbiter runs: a short poll bounds the wait.
    #[allow(clippy::disallowed_methods)]
    fn start(people: &[String]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("data")).expect("data dir");
        let port = free_port();
        let text = format!(
            "run_as_root = true\npidfile = \"{d}/prosody.pid\"\ndata_path = \"{d}/data\"\n\
             interfaces = {{ \"127.0.0.1\" }}\nc2s_ports = {{ {port} }}\ns2s_ports = {{ {s2s} }}\n\
             http_ports = {{}}\nhttps_ports = {{}}\nc2s_direct_tls_ports = {{}}\n\
             admin_socket = \"{d}/admin.sock\"\nlog = {{ error = \"{d}/prosody.log\" }}\n\
             modules_enabled = {{ \"roster\"; \"saslauth\"; \"disco\"; \"ping\"; \"posix\" }}\n\
             modules_disabled = {{ \"s2s\" }}\nnetwork_settings = {{ nagle = false }}\n\
             allow_unencrypted_plain_auth = true\nc2s_require_encryption = false\n\
             authentication = \"internal_plain\"\nstorage = \"internal\"\n\
             VirtualHost \"localhost\"\n",
            d = d.display(),
            s2s = free_port(),
        );
        let conf = d.join("prosody.cfg.lua");
        std::fs::write(&conf, text).expect("prosody config written");
        // Registered in parallel: each `prosodyctl` starts Lua afresh.
        let registrations: Vec<_> = std::iter::once(BOT.to_string())
            .chain(people.iter().cloned())
            .map(|user| {
                Command::new("prosodyctl")
                    .arg("--config")
                    .arg(&conf)
                    .args(["register", &user, "localhost", &format!("{user}-pw")])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("prosodyctl runs (Debian package `prosody`)")
            })
            .collect();
        for mut r in registrations {
            assert!(
                r.wait().is_ok_and(|s| s.success()),
                "prosodyctl register failed"
            );
        }
        let process = Command::new("prosody")
            .arg("--config")
            .arg(&conf)
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prosody starts (Debian package `prosody`)");
        let server = Self { port, dir, process };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "prosody never listened on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A free loopback port (the OS picks; released for the server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
