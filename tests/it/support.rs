//! `TestBridge`: a StackStorm emulator plus a bridge whose console is driven by the test.

use std::time::{Duration, Instant};
use stormbridge::backends::registry::REGISTRY;

use serde_json::Value;
use stormbridge::{
    app::{self, AppOptions, RunningApp},
    backends::console::{unescape_line, ConsoleIo},
    config::{self, Settings},
    emulator::{Emulator, EmulatorConfig},
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};

/// Every wait in these tests is bounded by this unless a test says otherwise.
pub const WAIT: Duration = Duration::from_secs(10);

/// Options for [`TestBridge::start`].
pub struct Options {
    pub emulator: EmulatorConfig,
    /// Extra TOML appended to the generated configuration.
    pub extra_toml: String,
    /// Extra keys for the console's [[chat]] table.
    pub console_toml: String,
    /// Start the bridge with StackStorm already gone (the emulator stopped).
    pub st2_down_at_start: bool,
    /// The `[access]` section (and its tables).
    pub access_toml: String,
    /// The `[http]` section.
    pub http_toml: String,
    /// More `[st2]` keys.
    pub st2_toml: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            // StackStorm as deployed: behind nginx (close-delimited answers, the emulator's
            // default) on a busy message bus (an execution every 300 ms, heartbeat 1 s: a
            // filtered stream hears no heartbeats).
            emulator: EmulatorConfig {
                heartbeat: Duration::from_secs(1),
                background_interval: Some(Duration::from_millis(300)),
                web_url: Some("https://st2.test".into()),
                ..EmulatorConfig::default()
            },
            extra_toml: String::new(),
            console_toml: String::new(),
            st2_down_at_start: false,
            http_toml: "[http]\nlisten = \"127.0.0.1:0\"\n".into(),
            access_toml: "[access]\ndefault = \"allow\"\nadmins = [\"console:alice\"]\n".into(),
            st2_toml: String::new(),
        }
    }
}

/// A bridge and its StackStorm emulator.
pub struct TestBridge {
    pub emulator: Emulator,
    pub app: RunningApp,
    pub http: awc::Client,
    console_in: DuplexStream,
    console_out: Lines<BufReader<DuplexStream>>,
    /// Every console line seen so far, unescaped.
    pub seen: Vec<String>,
}

/// The bridge configuration used by the tests.
pub fn settings_for(emulator: &Emulator, opts: &Options) -> Settings {
    let toml = config_toml(emulator, opts);
    config::load_from_str(&toml, &REGISTRY).unwrap_or_else(|e| panic!("test config invalid: {e}"))
}

/// The TOML text of the tests' configuration.
pub fn config_toml(emulator: &Emulator, opts: &Options) -> String {
    format!(
        r#"
[st2]
api_url = "{api}"
auth_url = "{auth}"
stream_url = "{stream}"
stream_heartbeat = 1
stream_idle_refresh = 3
request_timeout = 5
{st2_extra}
[st2.credentials]
username = "st2admin"
password = "Ch@ngeMe"
{http}
{access}
[supervisor]
restart_backoff_initial_ms = 50
restart_backoff_max_ms = 400
[[chat]]
name = "console"
backend = "console"
user_id = "alice"
user_name = "Alice"
room = "ops"
{console}
{extra}
"#,
        api = emulator.api_url(),
        auth = emulator.auth_url(),
        stream = emulator.stream_url(),
        console = opts.console_toml,
        access = opts.access_toml,
        http = opts.http_toml,
        extra = opts.extra_toml,
        st2_extra = opts.st2_toml,
    )
}

impl TestBridge {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> Self {
        init_test_log();
        let emulator = Emulator::start(opts.emulator.clone())
            .await
            .expect("emulator starts");
        Self::start_with_emulator(emulator, opts).await
    }

    /// A bridge talking to an emulator that already runs (a restart of the bridge).
    pub async fn start_with_emulator(emulator: Emulator, opts: Options) -> Self {
        init_test_log();
        if opts.st2_down_at_start {
            emulator.stop().await;
        }
        let settings = settings_for(&emulator, &opts);
        Self::start_with_settings(emulator, settings).await
    }

    /// A bridge with exactly these settings, talking to `emulator`.
    pub async fn start_with_settings(emulator: Emulator, settings: Settings) -> Self {
        init_test_log();
        let (app, console_in, console_out) = start_with_console(settings).await;
        Self {
            emulator,
            app,
            http: awc::Client::default(),
            console_in,
            console_out,
            seen: Vec::new(),
        }
    }

    /// Types a line at the console.
    pub async fn say(&mut self, line: &str) {
        self.console_in
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("console input");
    }

    /// The next console line, unescaped; panics after `WAIT`.
    pub async fn next_line(&mut self) -> String {
        self.next_line_within(WAIT)
            .await
            .expect("a console line in time")
    }

    /// The next console line, or `None` if none comes within `limit`.
    pub async fn next_line_within(&mut self, limit: Duration) -> Option<String> {
        match tokio::time::timeout(limit, self.console_out.next_line()).await {
            Ok(Ok(Some(line))) => {
                let line = unescape_line(&line);
                self.seen.push(line.clone());
                Some(line)
            }
            Ok(Ok(None)) => panic!("console output closed"),
            Ok(Err(e)) => panic!("console output failed: {e}"),
            Err(_) => None,
        }
    }

    /// Reads lines until one contains `needle`; panics after `WAIT` with what was seen.
    pub async fn line_containing(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next_line_within(left).await {
                Some(line) if line.contains(needle) => return line,
                Some(_) => {}
                None => break,
            }
        }
        panic!(
            "no console line containing {needle:?}; seen: {:#?}",
            self.seen
        )
    }

    /// GET on the bridge's HTTP server: status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{path}", self.app.http_addr);
        let mut resp = self.http.get(url).send().await.expect("http request");
        let body = resp.body().await.expect("http body");
        (
            resp.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    /// Waits until `GET /ready` answers `status`.
    pub async fn wait_ready(&self, status: u16) {
        let mut last;
        let found = eventually!(WAIT, {
            last = self.get("/ready").await;
            last.0 == status
        });
        assert!(found, "/ready never answered {status}; last: {last:?}");
    }

    /// The bridge's entry for `name` in `/actors`.
    pub async fn actor(&self, name: &str) -> Value {
        let (_, body) = self.get("/actors").await;
        let actors: Value = serde_json::from_str(&body).expect("actors json");
        actors
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no actor {name} in {body}"))
    }

    /// The value of one metric line (exact name with labels), or 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, body) = self.get("/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

/// Starts a bridge with `settings`, its console on in-memory pipes: the running app, what
/// the test types into the console, and the console's output lines (escaped, as printed).
pub async fn start_with_console(
    settings: Settings,
) -> (RunningApp, DuplexStream, Lines<BufReader<DuplexStream>>) {
    start_with_console_on(settings, false).await
}

/// [`start_with_console`], with the console told whether its output is a terminal.
pub async fn start_with_console_on(
    settings: Settings,
    terminal: bool,
) -> (RunningApp, DuplexStream, Lines<BufReader<DuplexStream>>) {
    let (bot_in, console_in) = tokio::io::duplex(1 << 20);
    let (bot_out, test_out) = tokio::io::duplex(1 << 20);
    let app = app::start(
        settings,
        AppOptions {
            console_io: Some(ConsoleIo {
                input: Box::new(bot_in),
                output: Box::new(bot_out),
                terminal,
            }),
            ..AppOptions::default()
        },
    )
    .await
    .expect("bridge starts");
    (app, console_in, BufReader::new(test_out).lines())
}

/// Aliases the tests run against (a JSON array, as `GET /api/v1/actionalias` returns).
pub fn test_aliases() -> Vec<Value> {
    let alias = |pack: &str, name: &str, action: &str, formats: Value, extra: Value| {
        let mut a = serde_json::json!({
            "id": format!("{pack}{name}"), "name": name, "pack": pack, "ref": format!("{pack}.{name}"),
            "uid": format!("action_alias:{pack}:{name}"), "enabled": true, "action_ref": action,
            "description": format!("{name} description"), "formats": formats,
        });
        if let (Some(obj), Some(more)) = (a.as_object_mut(), extra.as_object()) {
            obj.extend(more.clone());
        }
        a
    };
    use serde_json::json;
    vec![
        alias(
            "core",
            "run_local",
            "core.local",
            json!(["run {{cmd}}"]),
            json!({}),
        ),
        alias(
            "core",
            "run_remote",
            "core.remote",
            json!(["run {{cmd}} on {{hosts}}"]),
            json!({}),
        ),
        alias(
            "ops",
            "deploy",
            "ops.deploy",
            json!([{"display": "deploy <app> [to <env>]", "representation": ["deploy {{app}} to {{env=staging}}"]}]),
            json!({"ack": {"format": "Deployment {{ execution.id }} queued", "append_url": false}}),
        ),
        alias(
            "ops",
            "quiet",
            "core.local",
            json!(["quiet {{cmd}}"]),
            json!({"ack": {"enabled": false}}),
        ),
        alias(
            "ops",
            "nolink",
            "core.local",
            json!(["nolink {{cmd}}"]),
            json!({"ack": {"append_url": false}}),
        ),
        alias(
            "ops",
            "fire",
            "core.local",
            json!(["fire {{cmd}}"]),
            json!({"result": {"enabled": false}}),
        ),
        alias(
            "a",
            "restart_a",
            "core.local",
            json!(["restart {{service}}"]),
            json!({}),
        ),
        alias(
            "b",
            "restart_b",
            "core.local",
            json!(["restart {{thing}}"]),
            json!({}),
        ),
    ]
}

/// Options with [`test_aliases`] loaded in the emulator.
pub fn with_test_aliases() -> Options {
    let mut o = Options::default();
    o.emulator.aliases = test_aliases();
    o
}

/// Every test's logs, captured at debug level (unless `TEST_LOG` prints them instead), so
/// tests can check that no secret was ever logged.
static CAPTURED: std::sync::OnceLock<std::sync::Arc<parking_lot::Mutex<Vec<u8>>>> =
    std::sync::OnceLock::new();

struct CaptureWriter(std::sync::Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged so far by every test in this process.
pub fn captured_logs() -> String {
    CAPTURED
        .get()
        .map(|buf| String::from_utf8_lossy(&buf.lock()).into_owned())
        .unwrap_or_default()
}

/// With `TEST_LOG=1` (or a filter such as `TEST_LOG=stormbridge=debug`), the bridge's logs
/// are printed; otherwise they are captured for [`captured_logs`]. Either way they are
/// formatted as the bridge's `pretty` log is ([`EscapingFields`]: control characters in
/// fields escaped), so tests see what operators see.
///
/// [`EscapingFields`]: stormbridge::telemetry::EscapingFields
pub fn init_test_log() {
    use stormbridge::telemetry::EscapingFields;
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let filter = if filter == "1" {
            "debug".to_owned()
        } else {
            filter
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .fmt_fields(EscapingFields)
            .with_test_writer()
            .try_init();
        return;
    }
    let buf = CAPTURED.get_or_init(Default::default).clone();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "debug,actix_server=info,actix_http=info,h2=info",
        ))
        .with_ansi(false)
        .fmt_fields(EscapingFields)
        .with_writer(move || CaptureWriter(buf.clone()))
        .try_init();
}

/// A free loopback port: bound, then released for the server under test to bind.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    // Below the kernel's ephemeral range (`net.ipv4.ip_local_port_range`): a port from that
    // range, free when checked, can be taken by any outbound connection or `:0` bind (other
    // tests make thousands) before the server binds it. Ports below it are only ever taken
    // by a bind that names them, and this process hands each out once (a counter from a
    // random start), so two servers of these tests only meet across test processes.
    const FIRST: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768)
        .min(u32::from(u16::MAX));
    if low > FIRST + 1_000 {
        let span = low - FIRST;
        let _ = NEXT.compare_exchange(
            0,
            (uuid::Uuid::new_v4().as_u128() % u128::from(span)) as u32 + 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        for _ in 0..span {
            let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % span) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A process a test started (a server, a driver, the bridge binary): killed and reaped when
/// dropped, so a failing test leaves nothing running.
#[derive(Default)]
pub struct Process(Option<std::process::Child>);

impl Process {
    /// Starts `cmd`; `what` says what is missing when it cannot start.
    pub fn spawn(cmd: &mut std::process::Command, what: &str) -> Self {
        Self(Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("{what} does not start: {e}")),
        ))
    }

    /// Takes charge of a child started elsewhere (killed and reaped like the others).
    pub fn adopt(&mut self, child: std::process::Child) {
        self.kill();
        self.0 = Some(child);
    }

    /// Asks the process to stop (SIGTERM), as `systemctl stop` and Kubernetes do; it is
    /// still killed and reaped when dropped.
    pub fn terminate(&self) {
        if let Some(child) = &self.0 {
            let sent = std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            assert!(sent.is_ok_and(|s| s.success()), "kill -TERM runs");
        }
    }

    /// Whether the process has ended by itself (reaped if so).
    pub fn has_exited(&mut self) -> bool {
        match self.0.as_mut().map(std::process::Child::try_wait) {
            None => true,
            Some(Ok(Some(_))) => {
                self.0 = None;
                true
            }
            Some(_) => false,
        }
    }

    /// Kills and reaps the process (nothing when it is not running).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private CA and a server certificate it signed, made with the `openssl` command.
pub struct TestCerts {
    /// The CA certificate (PEM): what a client's `tls_ca_file` names.
    pub ca: std::path::PathBuf,
    /// The server certificate (PEM), for `name` only (no IP address).
    pub cert: std::path::PathBuf,
    /// The server certificate's unencrypted private key (PEM).
    pub key: std::path::PathBuf,
}

impl TestCerts {
    /// Makes `ca.pem`, `cert.pem` (a DNS name `name`, signed by that CA: webpki refuses a
    /// self-signed leaf) and `key.pem` in `dir`.
    pub fn make(dir: &std::path::Path, name: &str) -> Self {
        std::fs::write(
            dir.join("leaf.ext"),
            format!("subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\n"),
        )
        .expect("extensions file");
        let openssl = |args: &[&str]| {
            let status = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("the openssl command runs (Debian package `openssl`)");
            assert!(status.success(), "openssl {args:?} failed");
        };
        let rsa = ["-newkey", "rsa:2048", "-nodes"];
        let subject = format!("/CN={name}");
        openssl(
            &[
                &["req", "-x509"][..],
                &rsa,
                &["-days", "2", "-subj", "/CN=stormbridge test CA"],
                &["-keyout", "ca.key", "-out", "ca.pem"],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"][..],
                &rsa,
                &["-subj", &subject, "-keyout", "key.pem", "-out", "leaf.csr"],
            ]
            .concat(),
        );
        openssl(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "cert.pem",
        ]);
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

/// The number after `job #` in a line (an acknowledgement, a job listing).
pub fn job_number(line: &str) -> u64 {
    let at = line
        .find("job #")
        .unwrap_or_else(|| panic!("no job # in {line}"));
    line[at + 5..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no job number in {line}"))
}

/// The code of a held command in the message that offers it: the word after `command `
/// (`!st2confirm`, `!st2approve`, …), as the offer tells people to type it.
pub fn held_code(text: &str, command: &str) -> String {
    let at = text
        .find(&format!("{command} "))
        .unwrap_or_else(|| panic!("no `{command}` in {text}"));
    text[at + command.len() + 1..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect()
}

/// The test aliases, everyone allowed, and `deploy … to prod…` held for its sender's
/// confirmation.
pub fn with_prod_confirmation() -> Options {
    let mut opts = with_test_aliases();
    opts.access_toml = "[access]\ndefault = \"allow\"\n[confirm]\n[[confirm.rules]]\n\
                        texts = [\"deploy * to prod*\"]\n"
        .to_owned();
    opts
}

/// The executions of `emulator` whose `cmd` parameter has the word `marker` (the tests'
/// `!st2 run echo <marker>`).
pub fn runs_of(emulator: &Emulator, marker: &str) -> Vec<stormbridge::emulator::ExecutionRecord> {
    emulator
        .executions()
        .into_iter()
        .filter(|e| {
            e.parameters
                .get("cmd")
                .is_some_and(|c| c.split_whitespace().any(|w| w == marker))
        })
        .collect()
}

/// A server program Debian installs in `/usr/sbin` (ngircd, InspIRCd, nginx), which is not
/// on an ordinary user's `PATH`; elsewhere, found on the `PATH`.
pub fn sbin_program(name: &str) -> std::path::PathBuf {
    let sbin = std::path::Path::new("/usr/sbin").join(name);
    if sbin.exists() {
        sbin
    } else {
        std::path::PathBuf::from(name)
    }
}
