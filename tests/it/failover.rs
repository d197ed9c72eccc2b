//! Several bridge processes on one Redis store: each chat connection is run by the process
//! holding its lease, and another takes over when that one dies, resuming its websocket
//! where it stood (Mattermost replays what came meanwhile). Real `redis-server`
//! (Debian package, started here on a random loopback port), two bridge binaries, the
//! emulator and the fake Mattermost; the holder is killed (SIGKILL) with results on their
//! way, and every command must get its result exactly once.

use std::time::{Duration, Instant};

use crate::{
    bridge_process::{bridge_ready, scrape, BridgeProcess, RECONCILED},
    crowd::CrowdOptions,
    fake_mattermost::FakeMattermost,
    rocketchat::fake::{FakeRocketChat, ALICE, GENERAL, OPS},
    support::{free_port, Process},
    xmpp::{xmpp_chat, Prosody, User, ROOM},
};

/// A `redis-server` of this test's own, without persistence (as a restart without a
/// disk loses everything: the harshest case for the bridge).
struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    process: Process,
    /// Served over TLS only, with this certificate (for `localhost`).
    tls: Option<crate::support::TestCerts>,
}

impl RedisServer {
    /// A server on TLS only (`rediss://`), its certificate signed by a private CA.
    async fn start_with(tls: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let tls = tls.then(|| crate::support::TestCerts::make(dir.path(), "localhost"));
        let mut server = Self {
            port: free_port(),
            dir,
            process: Process::default(),
            tls,
        };
        server.run().await;
        server
    }

    /// Starts (or starts again) the server on its port.
    async fn run(&mut self) {
        let mut cmd = std::process::Command::new("redis-server");
        let port = self.port.to_string();
        match &self.tls {
            None => cmd.args(["--port", &port]),
            Some(certs) => cmd
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(&certs.cert)
                .arg("--tls-key-file")
                .arg(&certs.key)
                .arg("--tls-ca-cert-file")
                .arg(&certs.ca),
        };
        cmd.args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        self.process = Process::spawn(&mut cmd, "redis-server (.ci/test-deps installs it)");
        // Ready when it accepts connections (a TLS handshake is the bridge's to prove).
        let addr = format!("127.0.0.1:{}", self.port);
        assert!(
            eventually!(
                Duration::from_secs(10),
                std::net::TcpStream::connect(addr.as_str()).is_ok()
            ),
            "redis-server on port {} listens",
            self.port
        );
    }

    fn url(&self) -> String {
        match self.tls {
            None => format!("redis://127.0.0.1:{}/0", self.port),
            Some(_) => format!("rediss://localhost:{}/0", self.port),
        }
    }

    /// The `[store]` lines that reach it beyond `url`.
    fn extra_toml(&self) -> String {
        match &self.tls {
            None => String::new(),
            Some(certs) => format!("tls_ca_file = \"{}\"\n", certs.ca.display()),
        }
    }
}

/// Two bridge processes' shared setting: StackStorm, Mattermost and the Redis store.
struct Replicas {
    emulator: stormbridge::emulator::Emulator,
    mm: FakeMattermost,
    redis: RedisServer,
    dir: tempfile::TempDir,
    seen: std::sync::Arc<parking_lot::Mutex<Vec<String>>>,
    /// `[store] lease_ttl`.
    lease_ttl: u64,
    /// The `[[chat]]` table the replicas run: the fake Mattermost's unless a test says
    /// otherwise.
    chat: String,
}

/// How long a connection's lease lasts in these tests.
const LEASE_TTL_SECS: u64 = 3;

impl Replicas {
    async fn start(execution_delay: Duration) -> Self {
        Self::with_lease(execution_delay, LEASE_TTL_SECS).await
    }

    async fn with_lease(execution_delay: Duration, lease_ttl: u64) -> Self {
        Self::with(execution_delay, lease_ttl, false).await
    }

    async fn with(execution_delay: Duration, lease_ttl: u64, tls: bool) -> Self {
        Self::with_emulator(
            stormbridge::emulator::EmulatorConfig {
                execution_delay,
                ..CrowdOptions::default().emulator
            },
            lease_ttl,
            tls,
        )
        .await
    }

    async fn with_emulator(
        config: stormbridge::emulator::EmulatorConfig,
        lease_ttl: u64,
        tls: bool,
    ) -> Self {
        crate::support::init_test_log();
        let emulator = stormbridge::emulator::Emulator::start(config)
            .await
            .expect("emulator starts");
        let mm = FakeMattermost::start().await;
        let redis = RedisServer::start_with(tls).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let key_hex: String = (0..32)
            .map(|_| format!("{:02x}", fastrand::u8(..)))
            .collect();
        std::fs::write(dir.path().join("store.key"), format!("{key_hex}\n")).expect("key");
        let chat = mm.chat_toml("");
        Self {
            chat,
            emulator,
            mm,
            redis,
            dir,
            seen: Default::default(),
            lease_ttl,
        }
    }

    /// A bridge process on `port`: the emulator's StackStorm, the Mattermost connection
    /// and the shared Redis store, no console.
    fn replica(&self, port: u16) -> BridgeProcess {
        self.replica_with(port, "")
    }

    /// [`Replicas::replica`] with more `[store]` lines.
    fn replica_with(&self, port: u16, store_extra: &str) -> BridgeProcess {
        self.replica_with_tables(port, store_extra, "")
    }

    /// [`Replicas::replica_with`] and more tables (`tables`, after the others).
    fn replica_with_tables(&self, port: u16, store_extra: &str, tables: &str) -> BridgeProcess {
        let st2 = crate::crowd::crowd_toml(&self.emulator, &CrowdOptions::default());
        let st2 = st2.split("[[chat]]").next().unwrap_or_default().replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        );
        let toml = format!(
            "{st2}{chat}[store]\nbackend = \"redis\"\nurl = \"{url}\"\nkey_file = \"{key}\"\n\
             prefix = \"failover:\"\nlease_ttl = {lease_ttl}\n{redis_extra}{store_extra}[log]\nlevel = \"warn\"\n{tables}",
            chat = self.chat,
            url = self.redis.url(),
            key = self.dir.path().join("store.key").display(),
            lease_ttl = self.lease_ttl,
            redis_extra = self.redis.extra_toml(),
        );
        let config = self.dir.path().join(format!("replica-{port}.toml"));
        std::fs::write(&config, toml).expect("config");
        BridgeProcess::start(&config, &self.seen)
    }

    /// Alice runs `!st2 run echo <marker>` in the town square.
    fn command(&self, marker: &str) {
        let town = self.mm.town_square.clone();
        self.mm.post_as(
            &self.mm.alice_id,
            &town,
            &format!("!st2 run echo {marker}"),
            "",
        );
    }

    /// StackStorm's execution for the command with `marker`, once it ran.
    fn execution(&self, marker: &str) -> Option<String> {
        crate::support::runs_of(&self.emulator, marker)
            .into_iter()
            .next()
            .map(|e| e.id)
    }

    /// The bot's posts of `execution`'s result.
    fn results_of(&self, execution: &str) -> usize {
        self.mm
            .bot_posts_containing(&self.mm.town_square, &format!("execution: {execution}"))
            .into_iter()
            .filter(|p| !p.str("message").starts_with("Started"))
            .count()
    }
}

/// The entry of actor `name` in `/actors` of the bridge on `port`.
async fn actor(port: u16, name: &str) -> Option<serde_json::Value> {
    let url = format!("http://127.0.0.1:{port}/actors");
    let mut resp = awc::Client::default().get(url).send().await.ok()?;
    let actors: serde_json::Value = resp.json().limit(1 << 20).await.ok()?;
    actors
        .as_array()?
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
}

impl Replicas {
    /// Results the shared store still owes chat: not posted, or posted but not yet recorded
    /// as posted. (A holder killed between posting a result and recording it leaves it owed;
    /// on Mattermost the next holder finds the post by its key and posts nothing.)
    async fn owed_in_store(&self) -> Option<usize> {
        let options = stormbridge::store::RedisOptions {
            url: self.redis.url(),
            username: None,
            password: None,
            tls_ca_pem: match &self.redis.tls {
                Some(certs) => Some(std::fs::read(&certs.ca).ok()?),
                None => None,
            },
            prefix: "failover:".into(),
        };
        let key =
            stormbridge::store::StoreKey::from_file(&self.dir.path().join("store.key")).ok()?;
        tokio::task::spawn_blocking(move || {
            let store = stormbridge::store::SessionStore::open_redis(&options, &key).ok()?;
            let owed = store.results().load().ok()?;
            Some(owed.iter().filter(|r| r.delivered_at.is_none()).count())
        })
        .await
        .ok()?
    }
}

/// Waits until the bridge on `port` is ready and holds connection `name`.
async fn ready_and_holding(port: u16, name: &str) {
    assert!(bridge_ready(port).await, "bridge on {port} is ready");
    assert!(
        eventually!(
            Duration::from_secs(15),
            lease_state_of(port, name).await.as_deref() == Some("held")
        ),
        "bridge on {port} holds {name}"
    );
    assert!(
        eventually!(
            Duration::from_secs(5),
            lease_held_metric(port, name).await == Some(1.0)
                && scrape(port, STORE_REACHABLE).await == Some(1.0)
        ),
        "bridge on {port} says in /metrics that it holds {name} and reaches Redis"
    );
}

/// `stormbridge_store_reachable` for Redis.
const STORE_REACHABLE: &str = "stormbridge_store_reachable{store=\"redis\"}";

/// `stormbridge_connection_lease_held` of connection `name` on the bridge on `port`.
async fn lease_held_metric(port: u16, name: &str) -> Option<f64> {
    let series = format!("stormbridge_connection_lease_held{{connection=\"{name}\"}}");
    scrape(port, &series).await
}

/// Waits until the bridge on `port` is ready; it stands by for connection `name`.
async fn ready_standing_by(port: u16, name: &str) {
    assert!(bridge_ready(port).await, "bridge on {port} is ready");
    assert_eq!(
        lease_state_of(port, name).await.as_deref(),
        Some("standby"),
        "bridge on {port} stands by for {name}"
    );
    assert!(
        eventually!(
            Duration::from_secs(5),
            lease_held_metric(port, name).await == Some(0.0)
        ),
        "bridge on {port} says in /metrics that it does not hold {name}"
    );
}

/// Waits until the bridge on `port` reads, in the lease of `mm`, that the bridge on `holder`
/// holds it and where it is reached.
async fn sees_holder_at(port: u16, holder: u16) {
    sees_holder_at_for(port, holder, "mm").await
}

/// [`sees_holder_at`] for connection `name`.
async fn sees_holder_at_for(port: u16, holder: u16, name: &str) {
    assert!(
        eventually!(
            Duration::from_secs(LEASE_TTL_SECS * 2),
            actor(port, "leases").await.is_some_and(|l| l
                .pointer(&format!("/details/holders/{name}"))
                .and_then(|h| h.as_str())
                .is_some_and(|h| h.contains(&format!("@http://127.0.0.1:{holder}"))))
        ),
        "bridge on {port} never saw {holder}'s address in the lease"
    );
}

/// Where the connection `mm` stands on the bridge on `port` (`held`, `standby`).
async fn lease_state(port: u16) -> Option<String> {
    lease_state_of(port, "mm").await
}

/// Where connection `name` stands on the bridge on `port`.
async fn lease_state_of(port: u16, name: &str) -> Option<String> {
    actor(port, &format!("chat:{name}"))
        .await?
        .pointer("/details/lease")?
        .as_str()
        .map(str::to_owned)
}

#[actix_rt::test]
async fn killing_the_holder_of_a_connection_hands_it_over_and_loses_no_result() {
    // Executions take 3 s: the first batch's results are on their way when the holder dies.
    // (A result a posted and b posted again would count twice; one neither posted, zero.)
    let r = Replicas::start(Duration::from_secs(3)).await;
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = r.replica(port_a);
    ready_and_holding(port_a, "mm").await;
    let _b = r.replica(port_b);
    ready_standing_by(port_b, "mm").await;
    let connected = r.mm.ws_auths();

    // A first batch, acknowledged by a; its results come after a is gone.
    let first: Vec<String> = (0..8).map(|n| format!("fo-{n}")).collect();
    for marker in &first {
        r.command(marker);
        tokio::time::sleep(Duration::from_millis(fastrand::u64(20..120))).await;
    }
    assert!(
        eventually!(Duration::from_secs(15), {
            first.iter().all(|m| {
                r.execution(m).is_some_and(|id| {
                    !r.mm
                        .bot_posts_containing(&r.mm.town_square, &format!("execution {id}"))
                        .is_empty()
                })
            })
        }),
        "bridge a acknowledged the first batch"
    );
    // StackStorm's announcements of the first batch go nowhere (as while nobody listens):
    // only its API can tell b what a was owed.
    r.emulator.stall_streams(true);
    a.process.kill();
    let killed = Instant::now();
    // Commands while nobody holds the connection: the next holder resumes a's websocket
    // where it stood, and Mattermost replays them.
    let gap: Vec<String> = (14..17).map(|n| format!("fo-{n}")).collect();
    for marker in &gap {
        r.command(marker);
        tokio::time::sleep(Duration::from_millis(fastrand::u64(20..120))).await;
    }
    assert!(
        eventually!(
            Duration::from_secs(LEASE_TTL_SECS * 4),
            lease_state(port_b).await.as_deref() == Some("held") && r.mm.ws_auths() > connected
        ),
        "bridge b took the connection over"
    );
    let takeover = killed.elapsed();
    assert!(
        eventually!(
            Duration::from_secs(30),
            first
                .iter()
                .all(|m| r.execution(m).is_some_and(|id| r.results_of(&id) >= 1))
        ),
        "bridge b posted the results a was owed"
    );
    r.emulator.stall_streams(false);

    // A second batch, all bridge b's.
    let second: Vec<String> = (8..14).map(|n| format!("fo-{n}")).collect();
    for marker in &second {
        r.command(marker);
        tokio::time::sleep(Duration::from_millis(fastrand::u64(20..120))).await;
    }
    let all: Vec<&String> = first.iter().chain(&gap).chain(&second).collect();
    let answered = |r: &Replicas| {
        all.iter()
            .filter(|m| r.execution(m).is_some_and(|id| r.results_of(&id) >= 1))
            .count()
    };
    eventually!(Duration::from_secs(30), answered(&r) == all.len());
    // Nothing more is owed once b's pending count is zero: no late second copy can come.
    assert!(
        eventually!(
            Duration::from_secs(15),
            scrape(port_b, "stormbridge_results_pending").await == Some(0.0)
        ),
        "bridge b owes nothing"
    );
    let copies: Vec<(String, usize)> = all
        .iter()
        .map(|m| {
            let n = r.execution(m).map_or(0, |id| r.results_of(&id));
            ((*m).clone(), n)
        })
        .collect();
    eprintln!(
        "failover: holder killed; standby took over after {:.1} s (lease {LEASE_TTL_SECS} s); results per command: {copies:?}",
        takeover.as_secs_f64()
    );
    let lost: Vec<&String> = copies
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(m, _)| m)
        .collect();
    let repeated: Vec<&String> = copies
        .iter()
        .filter(|(_, n)| *n > 1)
        .map(|(m, _)| m)
        .collect();
    assert!(lost.is_empty(), "results lost: {lost:?}");
    assert!(repeated.is_empty(), "results posted twice: {repeated:?}");
    // Each command ran once: none was run again by the process that took over.
    let executions = r.emulator.executions();
    for marker in &all {
        let runs = executions
            .iter()
            .filter(|e| {
                e.parameters
                    .get("cmd")
                    .is_some_and(|c| c.split_whitespace().any(|w| w == marker.as_str()))
            })
            .count();
        assert_eq!(runs, 1, "{marker} ran {runs} times");
    }
    assert!(r.mm.resumes() >= 1, "b resumed a's websocket");
    assert!(
        scrape(port_b, RECONCILED).await.unwrap_or(0.0) >= 1.0,
        "b posted what a owed, from StackStorm's API"
    );
}

#[actix_rt::test]
async fn a_redis_restart_pauses_the_connection_clearly_and_it_comes_back() {
    let mut r = Replicas::start(Duration::from_millis(200)).await;
    let port = free_port();
    let _bridge = r.replica(port);
    assert!(bridge_ready(port).await);
    assert!(eventually!(
        Duration::from_secs(15),
        lease_state(port).await.as_deref() == Some("held")
    ));
    r.command("before-0");
    let answered = |r: &Replicas, m: &str| r.execution(m).map_or(0, |id| r.results_of(&id));
    assert!(eventually!(
        Duration::from_secs(15),
        answered(&r, "before-0") == 1
    ));

    // Redis goes away (and comes back empty: no persistence).
    r.redis.process.kill();
    assert!(
        eventually!(Duration::from_secs(LEASE_TTL_SECS * 3), {
            let leases = actor(port, "leases").await.unwrap_or_default();
            leases["state"] == "degraded"
                && leases["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("Redis"))
                && lease_state(port).await.as_deref() == Some("standby")
        }),
        "the outage shows in /actors and the connection stops: {:?}",
        actor(port, "leases").await
    );
    assert!(
        eventually!(
            Duration::from_secs(5),
            scrape(port, STORE_REACHABLE).await == Some(0.0)
                && lease_held_metric(port, "mm").await == Some(0.0)
        ),
        "/metrics shows Redis unreachable and the connection held by nobody here"
    );
    r.redis.run().await;
    assert!(
        eventually!(
            Duration::from_secs(LEASE_TTL_SECS * 4),
            lease_state(port).await.as_deref() == Some("held")
                && actor(port, "leases")
                    .await
                    .is_some_and(|l| l["state"] == "up")
        ),
        "the connection is taken up again: {:?}",
        actor(port, "leases").await
    );
    assert!(
        eventually!(
            Duration::from_secs(5),
            scrape(port, STORE_REACHABLE).await == Some(1.0)
                && lease_held_metric(port, "mm").await == Some(1.0)
        ),
        "/metrics shows Redis back and the connection held"
    );
    r.command("after-0");
    assert!(
        eventually!(Duration::from_secs(15), answered(&r, "after-0") == 1),
        "a command after the outage is answered"
    );
    assert_eq!(answered(&r, "before-0"), 1, "nothing posted twice");
}

/// Kubernetes starts the bridge and the chart's bundled Redis together: a bridge that finds
/// no Redis yet waits for it (up to 30 s) instead of stopping.
#[actix_rt::test]
async fn a_bridge_started_before_its_redis_waits_for_it() {
    let mut r = Replicas::start(Duration::from_millis(200)).await;
    r.redis.process.kill();
    // On Redis's port meanwhile: a listener that closes every connection, counting them.
    let listener = std::net::TcpListener::bind(("127.0.0.1", r.redis.port))
        .expect("Redis's port is free again");
    listener.set_nonblocking(true).expect("non-blocking");
    let port = free_port();
    let mut bridge = r.replica(port);
    let mut tries = 0;
    let retried = eventually!(Duration::from_secs(10), {
        while let Ok((connection, _)) = listener.accept() {
            drop(connection);
            tries += 1;
        }
        tries >= 2
    });
    assert!(retried, "the bridge tried Redis again ({tries} tries)");
    assert!(!bridge.process.has_exited(), "the bridge waits for Redis");
    drop(listener);
    r.redis.run().await;
    ready_and_holding(port, "mm").await;
    r.command("after-waiting");
    assert!(
        eventually!(
            Duration::from_secs(15),
            r.execution("after-waiting")
                .is_some_and(|id| r.results_of(&id) == 1)
        ),
        "the bridge that waited answers"
    );
}

#[actix_rt::test]
async fn a_clean_stop_hands_the_connection_over_before_its_lease_runs_out() {
    // A 30 s lease: left to expire, b could not take the connection for 20 s at least
    // (a renews every 10 s); given up by a's clean stop, b takes it at its next try.
    let r = Replicas::with_lease(Duration::from_millis(200), 30).await;
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = r.replica(port_a);
    assert!(eventually!(
        Duration::from_secs(20),
        lease_state(port_a).await.as_deref() == Some("held")
    ));
    let _b = r.replica(port_b);
    assert!(bridge_ready(port_b).await);
    assert_eq!(lease_state(port_b).await.as_deref(), Some("standby"));
    a.process.terminate();
    let stopping = Instant::now();
    assert!(
        eventually!(Duration::from_secs(10), a.process.has_exited()),
        "bridge a stops on SIGTERM"
    );
    assert!(
        eventually!(
            Duration::from_secs(15),
            lease_state(port_b).await.as_deref() == Some("held")
        ),
        "bridge b took the connection over before a's lease ran out"
    );
    eprintln!(
        "clean stop: b held the connection {:.1} s after a's SIGTERM (lease 30 s)",
        stopping.elapsed().as_secs_f64()
    );
    r.command("after-stop");
    assert!(
        eventually!(
            Duration::from_secs(15),
            r.execution("after-stop")
                .is_some_and(|id| r.results_of(&id) == 1)
        ),
        "b answers"
    );
}

#[actix_rt::test]
async fn a_bridge_on_redis_over_tls_with_a_private_ca_runs_commands() {
    let r = Replicas::with(Duration::from_millis(200), LEASE_TTL_SECS, true).await;
    assert!(r.redis.url().starts_with("rediss://"));
    let port = free_port();
    let _bridge = r.replica(port);
    assert!(
        bridge_ready(port).await,
        "the bridge opened its store over TLS"
    );
    assert!(eventually!(
        Duration::from_secs(15),
        lease_state(port).await.as_deref() == Some("held")
    ));
    r.command("over-tls");
    assert!(
        eventually!(
            Duration::from_secs(15),
            r.execution("over-tls")
                .is_some_and(|id| r.results_of(&id) == 1)
        ),
        "a command is answered"
    );
}

/// `POST /api/v1/trigger` with `token` to the bridge on `port` (`relayed`: as if another
/// bridge process passed it on); the status and the JSON answer.
async fn call_trigger(port: u16, token: &str, relayed: bool) -> (u16, serde_json::Value) {
    let mut req = awc::Client::default()
        .post(format!("http://127.0.0.1:{port}/api/v1/trigger"))
        .timeout(Duration::from_secs(20))
        .insert_header(("Authorization", format!("Bearer {token}")));
    if relayed {
        req = req.insert_header((stormbridge::http::relay::RELAYED, "1"));
    }
    let mut resp = req.send().await.expect("the bridge answers");
    let body = resp.body().limit(1 << 20).await.expect("a body");
    (
        resp.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or_default(),
    )
}

#[actix_rt::test]
async fn a_trigger_call_that_reaches_a_standby_is_passed_on_to_the_holder_and_runs_once() {
    let r = Replicas::start(Duration::ZERO).await;
    let (port_a, port_b) = (free_port(), free_port());
    let advertise = |port: u16| format!("advertise_url = \"http://127.0.0.1:{port}/\"\n");
    let _a = r.replica_with(port_a, &advertise(port_a));
    ready_and_holding(port_a, "mm").await;
    let _b = r.replica_with(port_b, &advertise(port_b));
    ready_standing_by(port_b, "mm").await;

    // Alice makes a token in her direct chat with the bot (bridge a answers there).
    let dm = r.mm.direct_channel(&r.mm.alice_id, &r.mm.bot_id);
    r.mm.post_as(&r.mm.alice_id, &dm, "!st2token create run echo relayed", "");
    let mut token;
    assert!(
        eventually!(Duration::from_secs(15), {
            token =
                r.mm.bot_posts_containing(&dm, "Trigger token `")
                    .iter()
                    .find_map(|p| {
                        p.str("message")
                            .split_whitespace()
                            .find(|w| w.starts_with("sbt_"))
                            .map(|w| w.trim_matches('`').to_owned())
                    });
            token.is_some()
        }),
        "no token in the direct chat"
    );
    let token = token.expect("a token");

    // b learns where a runs the connection from a's lease, and passes the call on to it.
    sees_holder_at(port_b, port_a).await;
    let (status, body) = call_trigger(port_b, &token, false).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "accepted", "{body}");
    assert!(
        eventually!(
            Duration::from_secs(15),
            r.execution("relayed").is_some_and(|id| !r
                .mm
                .bot_posts_containing(&dm, &format!("execution: {id}"))
                .iter()
                .all(|p| p.str("message").starts_with("Started")))
        ),
        "the command's result reached the direct chat"
    );
    let runs = r
        .emulator
        .executions()
        .iter()
        .filter(|e| {
            e.parameters
                .get("cmd")
                .is_some_and(|c| c.contains("relayed"))
        })
        .count();
    assert_eq!(runs, 1, "ran once");

    // A call another process already passed on is not passed on again (the lease may have
    // moved meanwhile): 503, and the caller retries.
    let (status, _) = call_trigger(port_b, &token, true).await;
    assert_eq!(status, 503);
    assert_eq!(
        r.emulator
            .executions()
            .iter()
            .filter(|e| e
                .parameters
                .get("cmd")
                .is_some_and(|c| c.contains("relayed")))
            .count(),
        1
    );
}

#[actix_rt::test]
async fn a_login_finished_on_a_standby_is_confirmed_in_chat_by_the_holder() {
    let mut emulator = CrowdOptions::default().emulator;
    emulator
        .users
        .push(("alice-st2".into(), "st2-pass-9f".into()));
    let r = Replicas::with_emulator(emulator, LEASE_TTL_SECS, false).await;
    let (port_a, port_b) = (free_port(), free_port());
    let advertise = |port: u16| format!("advertise_url = \"http://127.0.0.1:{port}\"\n");
    let auth = "[auth]\nmode = \"clientside\"\npublic_url = \"https://bridge.test\"\n";
    let _a = r.replica_with_tables(port_a, &advertise(port_a), auth);
    assert!(bridge_ready(port_a).await, "bridge a is ready");
    assert!(
        eventually!(
            Duration::from_secs(15),
            lease_state(port_a).await.as_deref() == Some("held")
        ),
        "bridge a holds the connection"
    );
    let _b = r.replica_with_tables(port_b, &advertise(port_b), auth);
    assert!(bridge_ready(port_b).await, "bridge b is ready");

    // Alice asks bridge a (the holder) for a link in her direct chat with the bot …
    let dm = r.mm.direct_channel(&r.mm.alice_id, &r.mm.bot_id);
    r.mm.post_as(&r.mm.alice_id, &dm, "!st2session_start sesame", "");
    let mut link;
    assert!(
        eventually!(Duration::from_secs(15), {
            link =
                r.mm.bot_posts_containing(&dm, "https://bridge.test/login/")
                    .iter()
                    .find_map(|p| {
                        p.str("message")
                            .split("https://bridge.test/login/")
                            .nth(1)
                            .and_then(|rest| rest.split_whitespace().next())
                            .map(|id| id.trim_end_matches(['.', ')', '>']).to_owned())
                    });
            link.is_some()
        }),
        "no login link in the direct chat"
    );
    let link = link.expect("a link");
    // … and the load balancer sends her form to bridge b, which does not run Mattermost.
    sees_holder_at(port_b, port_a).await;
    let mut resp = awc::Client::default()
        .post(format!("http://127.0.0.1:{port_b}/login/{link}"))
        .insert_header(("Accept", "application/json"))
        .timeout(Duration::from_secs(20))
        .send_form(&[
            ("shared_word", "sesame"),
            ("method", "password"),
            ("username", "alice-st2"),
            ("password", "st2-pass-9f"),
        ])
        .await
        .expect("bridge b answers");
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(resp.status().as_u16(), 200, "{body}");
    // The confirmation reaches her chat (bridge a posts it), once.
    assert!(
        eventually!(
            Duration::from_secs(15),
            !r.mm.bot_posts_containing(&dm, "now linked").is_empty()
        ),
        "the login was never confirmed in chat"
    );
    // Her commands now run as her StackStorm user, whichever bridge runs them.
    r.mm.post_as(&r.mm.alice_id, &dm, "!st2 run echo as-alice", "");
    assert!(
        eventually!(
            Duration::from_secs(15),
            r.emulator
                .executions()
                .iter()
                .any(|e| e.st2_user == "alice-st2")
        ),
        "the command did not run as alice's StackStorm user"
    );
    assert_eq!(r.mm.bot_posts_containing(&dm, "now linked").len(), 1);
}

/// Rocket.Chat replays nothing to a new subscription: the next holder asks its REST API
/// what was posted from the newest message the last holder handed on in each room (in a
/// room it handed nothing on from, since it listened), before the live messages.
/// `[store] advertise_url` for the replica on `port`.
fn advertise(port: u16) -> String {
    format!("advertise_url = \"http://127.0.0.1:{port}\"\n")
}

/// How many of the bot's messages `texts` are `execution`'s result (not its "Started").
fn results_among(texts: impl IntoIterator<Item = String>, execution: &str) -> usize {
    texts
        .into_iter()
        .filter(|t| t.contains(&format!("execution: {execution}")) && !t.starts_with("Started"))
        .count()
}

/// Waits until the command of each of `markers` was answered once (`results`: its result
/// messages), and checks that StackStorm ran each once.
async fn each_answered_and_ran_once(
    r: &Replicas,
    markers: &[&str],
    results: impl Fn(&Replicas, &str) -> usize,
) {
    for marker in markers {
        assert!(
            eventually!(Duration::from_secs(15), results(r, marker) == 1),
            "{marker} was answered once"
        );
        assert_eq!(
            crate::support::runs_of(&r.emulator, marker).len(),
            1,
            "{marker} ran once"
        );
    }
}

/// Webex delivers each webhook once and does not deliver a failed one again. A delivery
/// that reaches a standby while nobody holds the connection (the holder killed, the next
/// not there yet) is held in Redis, answered 200, and run once by the next holder.
#[actix_rt::test]
async fn a_webex_delivery_that_comes_while_nobody_holds_the_connection_runs_once_on_the_next() {
    let mut r = Replicas::start(Duration::from_millis(200)).await;
    let webex = crate::webex::fake::FakeWebex::start().await;
    let (port_a, port_b) = (free_port(), free_port());
    // The load balancer in front of the replicas sends Webex's deliveries to b.
    r.chat = webex.chat_toml(&format!("http://127.0.0.1:{port_b}"), "wx-secret", "");
    let say = |marker: &str| {
        let (webex, alice, ops) = (&webex, webex.alice_id.clone(), webex.ops.clone());
        let text = format!("!st2 run echo {marker}");
        async move { webex.post(&alice, &ops, &text, None, true).await }
    };
    let results = |r: &Replicas, marker: &str| {
        r.execution(marker).map_or(0, |id| {
            let texts = webex.bot_messages().into_iter();
            results_among(
                texts.map(|m| m["text"].as_str().unwrap_or_default().to_owned()),
                &id,
            )
        })
    };
    let mut a = r.replica_with(port_a, &advertise(port_a));
    ready_and_holding(port_a, "wx").await;
    let _b = r.replica_with(port_b, &advertise(port_b));
    ready_standing_by(port_b, "wx").await;
    sees_holder_at_for(port_b, port_a, "wx").await;

    // While a holds it: b passes the delivery on to a.
    say("wx-before").await;
    assert!(
        eventually!(Duration::from_secs(15), results(&r, "wx-before") == 1),
        "a answered the delivery b passed on"
    );
    a.process.kill();
    // Nobody holds it: b cannot pass this on, and keeps it.
    say("wx-gap").await;
    let answered = webex.delivered().last().map(|d| d.status);
    assert_eq!(
        answered,
        Some(200),
        "b took the delivery: {:?}",
        webex.delivered()
    );
    assert!(
        eventually!(
            Duration::from_secs(LEASE_TTL_SECS * 4),
            lease_state_of(port_b, "wx").await.as_deref() == Some("held")
        ),
        "b took the connection over"
    );
    say("wx-after").await;
    each_answered_and_ran_once(&r, &["wx-before", "wx-gap", "wx-after"], results).await;
    let held = |event: &str| {
        format!("stormbridge_webhooks_held_total{{connection=\"wx\",event=\"{event}\"}}")
    };
    // The gap's delivery, and wx-after's too if it came before b's connection was ready.
    let kept = scrape(port_b, &held("held")).await.unwrap_or(0.0);
    assert!(kept >= 1.0, "b counted the delivery it held");
    assert!(
        eventually!(
            Duration::from_secs(5),
            scrape(port_b, &held("handled")).await == Some(kept)
        ),
        "b counted each held delivery handled"
    );
    // Nothing more comes of it (a held request handled twice would post again).
    let settled = r.execution("wx-gap").expect("ran");
    assert!(
        !eventually!(Duration::from_secs(3), results(&r, "wx-gap") > 1),
        "{settled}'s result was posted again"
    );
}

/// The same for Teams: an activity that reaches the standby while nobody holds the
/// connection is held with its bearer token, which the next holder checks when it hands the
/// activity over, and runs once.
#[actix_rt::test]
async fn a_teams_activity_that_comes_while_nobody_holds_the_connection_runs_once_on_the_next() {
    use crate::teams::fake::{FakeTeams, Place};
    let mut r = Replicas::start(Duration::from_millis(200)).await;
    let teams = FakeTeams::start().await;
    r.chat = teams.chat_toml("");
    let (port_a, port_b) = (free_port(), free_port());
    let b_addr: std::net::SocketAddr = ([127, 0, 0, 1], port_b).into();
    let results = |r: &Replicas, marker: &str| {
        r.execution(marker).map_or(0, |id| {
            results_among(teams.sent().iter().map(|s| s.text()), &id)
        })
    };
    let mut a = r.replica_with(port_a, &advertise(port_a));
    ready_and_holding(port_a, "teams").await;
    let _b = r.replica_with(port_b, &advertise(port_b));
    ready_standing_by(port_b, "teams").await;
    sees_holder_at_for(port_b, port_a, "teams").await;

    // Teams' requests go to b (the load balancer's pick): passed on to a while a holds.
    let before = teams.alice(Place::Direct, "!st2 run echo tm-before");
    teams.deliver_ok(b_addr, before).await;
    assert!(
        eventually!(Duration::from_secs(15), results(&r, "tm-before") == 1),
        "a answered the activity b passed on"
    );
    a.process.kill();
    let gap = teams.alice(Place::Direct, "!st2 run echo tm-gap");
    teams.deliver_ok(b_addr, gap).await;
    assert!(
        eventually!(
            Duration::from_secs(LEASE_TTL_SECS * 4),
            lease_state_of(port_b, "teams").await.as_deref() == Some("held")
        ),
        "b took the connection over"
    );
    let after = teams.alice(Place::Direct, "!st2 run echo tm-after");
    teams.deliver_ok(b_addr, after).await;
    each_answered_and_ran_once(&r, &["tm-before", "tm-gap", "tm-after"], results).await;
}

#[actix_rt::test]
async fn a_command_posted_on_rocketchat_during_a_takeover_runs_once_on_the_new_holder() {
    let mut r = Replicas::start(Duration::from_millis(200)).await;
    let rc = FakeRocketChat::start().await;
    r.chat = rc.chat_toml("");
    let runs = |r: &Replicas, marker: &str| crate::support::runs_of(&r.emulator, marker).len();
    let results = |r: &Replicas, rid: &str, marker: &str| {
        r.execution(marker).map_or(0, |id| {
            rc.bot_messages_containing(rid, &format!("execution: {id}"))
                .iter()
                .filter(|m| !m.str("msg").starts_with("Started"))
                .count()
        })
    };
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = r.replica(port_a);
    ready_and_holding(port_a, "rc").await;
    let _b = r.replica(port_b);
    ready_standing_by(port_b, "rc").await;

    // A command a runs and answers: where its link stands is now in Redis.
    rc.post_as(ALICE, GENERAL, "!st2 run echo rc-before", None);
    assert!(
        eventually!(
            Duration::from_secs(15),
            results(&r, GENERAL, "rc-before") == 1 && r.owed_in_store().await == Some(0)
        ),
        "bridge a answered, and recorded that it did"
    );
    let subscriptions = rc.handshakes().2;
    a.process.kill();
    // Posted while nobody holds the connection: in the room a heard last, and in a room a
    // handed nothing on from.
    rc.post_as(ALICE, GENERAL, "!st2 run echo rc-gap-1", None);
    rc.post_as(ALICE, OPS, "!st2 run echo rc-gap-2", None);
    assert!(
        eventually!(
            Duration::from_secs(LEASE_TTL_SECS * 4),
            lease_state_of(port_b, "rc").await.as_deref() == Some("held")
                && rc.handshakes().2 > subscriptions
        ),
        "bridge b took the connection over"
    );
    // And a live one once b is there.
    rc.post_as(ALICE, GENERAL, "!st2 run echo rc-after", None);
    let all = [
        (GENERAL, "rc-before"),
        (GENERAL, "rc-gap-1"),
        (OPS, "rc-gap-2"),
        (GENERAL, "rc-after"),
    ];
    assert!(
        eventually!(
            Duration::from_secs(30),
            all.iter().all(|(rid, m)| results(&r, rid, m) >= 1)
        ),
        "every command was answered: {:?}",
        all.map(|(rid, m)| (m, results(&r, rid, m)))
    );
    assert!(
        eventually!(
            Duration::from_secs(15),
            scrape(port_b, "stormbridge_results_pending").await == Some(0.0)
        ),
        "bridge b owes nothing"
    );
    for (rid, marker) in all {
        assert_eq!(runs(&r, marker), 1, "{marker} ran once");
        assert_eq!(
            results(&r, rid, marker),
            1,
            "{marker}'s result was posted once"
        );
    }
    assert!(
        rc.requests("GET /api/v1/chat.syncMessages") >= 1,
        "b fetched what was posted meanwhile"
    );
}

/// An XMPP room sends an occupant only what is said while it is there: the next holder's
/// join asks the room for its history since the newest message the last holder handed on
/// (XEP-0045 §7.2.15), and runs what was said meanwhile, once; what the last holder ran
/// already, and comes again in that history, does not run again. A direct message to the
/// bot meanwhile is kept by the server (offline storage) and handed to the next holder's
/// link, which runs it too.
#[actix_rt::test]
async fn commands_said_on_xmpp_during_a_takeover_in_a_room_or_directly_run_once_on_the_new_holder()
{
    let mut r = Replicas::start(Duration::from_millis(200)).await;
    let server = Prosody::start(&["alice", "stormbot"]).await;
    let mut alice = User::connect(server.port, "alice").await;
    alice.join("alice").await;
    r.chat = xmpp_chat("xmpp", server.port, "");
    let bot = format!("{ROOM}/stormbot");
    // Every body the bot said in the room or to alice directly, as alice got them.
    let mut heard: Vec<String> = Vec::new();
    async fn listen(alice: &mut User, bot: &str, heard: &mut Vec<String>) {
        while let Some(e) = alice.next_within(Duration::from_millis(20)).await {
            let from = e.attr("from").unwrap_or_default();
            if e.local_name() == "message"
                && (from == bot || from.starts_with("stormbot@localhost/"))
            {
                heard.extend(e.child("body").map(|b| b.text()));
            }
        }
    }
    let results = |r: &Replicas, heard: &[String], marker: &str| {
        r.execution(marker).map_or(0, |id| {
            let needle = format!("execution: {id}");
            heard.iter().filter(|b| b.contains(&needle)).count()
        })
    };
    let runs = |r: &Replicas, marker: &str| crate::support::runs_of(&r.emulator, marker).len();
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = r.replica(port_a);
    ready_and_holding(port_a, "xmpp").await;
    let _b = r.replica(port_b);
    ready_standing_by(port_b, "xmpp").await;

    // A command a runs and answers: where its link stands is now in Redis.
    alice.say(ROOM, "groupchat", "!st2 run echo x-before").await;
    assert!(
        eventually!(Duration::from_secs(15), {
            listen(&mut alice, &bot, &mut heard).await;
            results(&r, &heard, "x-before") == 1 && r.owed_in_store().await == Some(0)
        }),
        "bridge a answered, and recorded that it did: {heard:?}"
    );
    a.process.kill();
    // The room sees the bot leave (its stream is gone): nobody runs the connection.
    alice
        .wait_for(|e| {
            e.local_name() == "presence"
                && e.attr("from") == Some(bot.as_str())
                && e.attr("type") == Some("unavailable")
        })
        .await;
    alice.say(ROOM, "groupchat", "!st2 run echo x-gap").await;
    // A direct message to the bot, which has no resource online: the server keeps it
    // (offline storage, XEP-0160) and hands it on to the next holder's link.
    alice
        .say("stormbot@localhost", "chat", "!st2 run echo x-direct")
        .await;
    alice
        .wait_for(|e| {
            e.local_name() == "presence"
                && e.attr("from") == Some(bot.as_str())
                && e.attr("type").is_none()
        })
        .await;
    assert_eq!(
        lease_state_of(port_b, "xmpp").await.as_deref(),
        Some("held"),
        "bridge b took the connection over"
    );
    // And a live one once b is in the room.
    alice.say(ROOM, "groupchat", "!st2 run echo x-after").await;
    let all = ["x-before", "x-gap", "x-direct", "x-after"];
    assert!(
        eventually!(Duration::from_secs(30), {
            listen(&mut alice, &bot, &mut heard).await;
            all.iter().all(|m| results(&r, &heard, m) >= 1)
        }),
        "every command was answered: {:?}; heard {heard:?}",
        all.map(|m| (m, results(&r, &heard, m)))
    );
    assert!(
        eventually!(
            Duration::from_secs(15),
            scrape(port_b, "stormbridge_results_pending").await == Some(0.0)
        ),
        "bridge b owes nothing"
    );
    listen(&mut alice, &bot, &mut heard).await;
    for marker in all {
        assert_eq!(runs(&r, marker), 1, "{marker} ran once");
        assert_eq!(
            results(&r, &heard, marker),
            1,
            "{marker}'s result was posted once: {heard:?}"
        );
    }
}

/// An IRC server that replays a channel's history at a join (InspIRCd's `chanhistory`): the
/// next holder's join gets what was said while nobody held the connection, and runs what the
/// last holder had not heard, once (the last holder's point is handed on in Redis).
#[actix_rt::test]
async fn a_command_said_in_an_irc_channel_during_a_takeover_runs_once_on_the_new_holder() {
    let mut r = Replicas::start(Duration::from_millis(200)).await;
    let server = crate::irc::Inspircd::start().await;
    r.chat = format!(
        "[[chat]]\nname = \"irc\"\nbackend = \"irc\"\nserver = \"127.0.0.1\"\nport = {}\n\
         nick = \"stormbridge\"\nchannels = [\"#ops\"]\nreconnect_initial_ms = 200\n\
         reconnect_max_ms = 500\n",
        server.port
    );
    let mut alice = crate::irc::Client::connect(server.port, "alice", None).await;
    alice.join("#ops").await;
    let bot_says = |line: String| {
        move |m: &irc_proto::Message| {
            m.source_nickname()
                .is_some_and(|n| n.starts_with("stormbridge"))
                && matches!(&m.command, irc_proto::Command::PRIVMSG(t, said) if t == "#ops" && *said == line)
        }
    };
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = r.replica(port_a);
    ready_and_holding(port_a, "irc").await;
    let _b = r.replica(port_b);
    ready_standing_by(port_b, "irc").await;

    // A command a runs and answers: where its link stands is then in Redis.
    alice.say("#ops", "!st2 run echo irc-before").await;
    alice.wait_for(bot_says("stdout : irc-before".into())).await;
    assert!(
        eventually!(Duration::from_secs(15), r.owed_in_store().await == Some(0)),
        "bridge a recorded that it answered"
    );
    a.process.kill();
    alice
        .wait_for(|m| {
            m.source_nickname()
                .is_some_and(|n| n.starts_with("stormbridge"))
                && matches!(m.command, irc_proto::Command::QUIT(_))
        })
        .await;
    // Said while nobody holds the connection.
    alice.say("#ops", "!st2 run echo irc-gap").await;
    alice
        .wait_for(|m| {
            m.source_nickname()
                .is_some_and(|n| n.starts_with("stormbridge"))
                && matches!(&m.command, irc_proto::Command::JOIN(c, _, _) if c == "#ops")
        })
        .await;
    assert_eq!(lease_state_of(port_b, "irc").await.as_deref(), Some("held"));
    alice.wait_for(bot_says("stdout : irc-gap".into())).await;
    alice.say("#ops", "!st2 run echo irc-after").await;
    alice.wait_for(bot_says("stdout : irc-after".into())).await;

    for marker in ["irc-before", "irc-gap", "irc-after"] {
        let runs = crate::support::runs_of(&r.emulator, marker);
        assert_eq!(runs.len(), 1, "{marker} ran once");
        let posted = alice
            .seen_lines()
            .iter()
            .filter(|l| l.ends_with(&format!("PRIVMSG #ops :execution: {}", runs[0].id)))
            .count();
        assert_eq!(posted, 1, "{marker}'s result was posted once");
    }
}
