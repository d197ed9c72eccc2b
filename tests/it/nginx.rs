//! Real nginx in front of the StackStorm emulator, configured the way st2's stock nginx site
//! (`conf/nginx/st2.conf` in StackStorm's repository) proxies st2's services. The emulator
//! runs as those services reached directly ([`Framing::Direct`]: sized JSON, a chunked
//! stream, a service that is down closes its connections unanswered) and nginx does the rest,
//! as on an installed StackStorm: the close-delimited stream, the `@streamError` /
//! `@apiError` pages. The bridge is pointed at nginx.
//!
//! The tests prove that the bridge works through the real thing, and that the emulator's
//! default [`Framing::Nginx`] — its model of that nginx, which every other test relies on —
//! answers as real nginx does.
//!
//! nginx (Debian package `nginx-light`; `.ci/test-deps` installs it) runs in the foreground
//! as one process, one per test, on a random loopback port with a throw-away configuration:
//! pid file, error log and temp directories in the test's temp dir, killed on drop.

use std::{
    io::{Read, Write},
    net::SocketAddr,
    process::{Command, Stdio},
    time::Duration,
};
use stormbridge::backends::registry::REGISTRY;

use stormbridge::{
    app::RunningApp,
    backends::console::unescape_line,
    config,
    emulator::{Emulator, EmulatorConfig, Framing},
};
use tokio::io::{AsyncWriteExt, BufReader, DuplexStream, Lines};

use crate::support::{
    config_toml, free_port, init_test_log, start_with_console, with_test_aliases, Process, WAIT,
};

/// The nginx configuration: st2.conf's proxied locations, as plain HTTP on one loopback port.
/// `@DIR@` is the test's temp dir, `@PORT@` nginx's port, `@UPSTREAM@` the emulator's
/// `host:port`.
///
/// st2.conf's `rewrite ^/api/(.*) /$1 break;` (and its `/auth/`, `/stream/` twins) strip
/// the prefix because st2api, st2auth and st2stream serve `/v1/...` on ports 9101, 9100 and
/// 9102. The emulator serves all three on one port under their prefixes (`/api/v1/...`,
/// `/auth/v1/...`, `/stream/v1/...`), so here `proxy_pass` names no URI and the request path
/// passes through unchanged: the same requests reach the same handlers. st2.conf's TLS (and
/// its HTTP→HTTPS redirect), the web UI's `location /` and the `/api/stream` compatibility
/// rewrites are left out: the bridge uses none of them.
const SITE: &str = r#"# A throw-away configuration for one test: nothing outside @DIR@ is written.
daemon off;
master_process off;
worker_processes 1;
pid @DIR@/nginx.pid;
lock_file @DIR@/nginx.lock;
error_log stderr;

events {
    worker_connections 256;
}

http {
    # Debian's /etc/nginx/nginx.conf, which st2.conf is installed under (its `http` block):
    # a `return` body gets this type before st2.conf's `add_header Content-Type` adds its
    # own; `gzip on` compresses only text/html (no gzip_types), so no proxied st2 answer.
    default_type application/octet-stream;
    gzip on;
    sendfile on;
    tcp_nopush on;

    access_log off;
    client_body_temp_path @DIR@/client_body;
    proxy_temp_path @DIR@/proxy;
    fastcgi_temp_path @DIR@/fastcgi;
    uwsgi_temp_path @DIR@/uwsgi;
    scgi_temp_path @DIR@/scgi;

    server {
        # st2.conf: `listen *:443 ssl` (here plain HTTP on loopback).
        listen 127.0.0.1:@PORT@;
        # st2.conf: `server_tokens off` (`Server: nginx`, no version).
        server_tokens off;

        # st2.conf: the server block's add_headers, inherited by the proxied locations.
        add_header Front-End-Https on;
        add_header X-Content-Type-Options nosniff;
        add_header X-Frame-Options DENY always;
        add_header Strict-Transport-Security "max-age=3153600;includeSubDomains";
        add_header X-XSS-Protection "0";

        # st2.conf: `location @apiError`, st2api's connection refused (502).
        location @apiError {
            add_header Content-Type application/json always;
            return 503 '{ "faultstring": "Nginx is unable to reach st2api. Make sure service is running." }';
        }

        # st2.conf: `location /api/` (rewrite + `proxy_pass http://127.0.0.1:9101/` there;
        # the path passes through here, see above).
        location /api/ {
            error_page 502 = @apiError;
            proxy_pass            http://@UPSTREAM@;
            proxy_read_timeout    90;
            proxy_connect_timeout 90;
            proxy_redirect        off;
            proxy_set_header      Host $host;
            proxy_set_header      X-Real-IP $remote_addr;
            proxy_set_header      X-Forwarded-For $proxy_add_x_forwarded_for;
            # st2.conf: no keep-alive to st2api, no chunks to the client, nothing buffered.
            proxy_set_header Connection '';
            chunked_transfer_encoding off;
            proxy_buffering off;
            proxy_cache off;
            max_ranges 0;
        }

        # st2.conf: `location @streamError`, st2stream's connection refused (502).
        location @streamError {
            add_header Content-Type text/event-stream;
            return 200 "retry: 1000\n\n";
        }

        # st2.conf: `location /stream/` (rewrite + `proxy_pass http://127.0.0.1:9102/` there).
        location /stream/ {
            error_page 502 = @streamError;
            proxy_pass http://@UPSTREAM@;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            # st2.conf: 200 s without a byte from st2stream ends the stream.
            proxy_read_timeout 200;
            proxy_connect_timeout 200;
            sendfile on;
            tcp_nopush on;
            tcp_nodelay on;
            # st2.conf: "Disable buffering and chunked encoding" — the stream reaches the
            # client with no length and no chunks, ended by the connection's close.
            proxy_set_header Connection '';
            chunked_transfer_encoding off;
            proxy_buffering off;
            proxy_cache off;
            max_ranges 0;
        }

        # st2.conf: `location @authError`, st2auth's connection refused (502).
        location @authError {
            add_header Content-Type application/json always;
            return 503 '{ "faultstring": "Nginx is unable to reach st2auth. Make sure service is running." }';
        }

        # st2.conf: `location /auth/` (rewrite + `proxy_pass http://127.0.0.1:9100/` there).
        location /auth/ {
            error_page 502 = @authError;
            proxy_pass            http://@UPSTREAM@;
            proxy_read_timeout    90;
            proxy_connect_timeout 90;
            proxy_redirect        off;
            proxy_set_header      Host $host;
            proxy_set_header      X-Real-IP $remote_addr;
            proxy_set_header      X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header      X-Forwarded-User $remote_user;
            proxy_pass_header     Authorization;
            # st2.conf: as for /api/.
            proxy_set_header Connection '';
            chunked_transfer_encoding off;
            proxy_buffering off;
            proxy_cache off;
            max_ranges 0;
        }
    }
}
"#;

/// A real nginx proxying to `upstream` as st2.conf does; killed (and its temp dir removed)
/// on drop.
struct Nginx {
    port: u16,
    // Declared before `dir`: the process is killed before its directory goes.
    _process: Process,
    dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(upstream: SocketAddr) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let conf = dir.path().join("nginx.conf");
        let text = SITE
            .replace("@DIR@", &dir.path().display().to_string())
            .replace("@PORT@", &port.to_string())
            .replace("@UPSTREAM@", &upstream.to_string());
        std::fs::write(&conf, text).expect("nginx config written");
        let log = std::fs::File::create(dir.path().join("error.log")).expect("nginx log file");
        let process = Process::spawn(
            Command::new(crate::support::sbin_program("nginx"))
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg("stderr")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log),
            "nginx (Debian package `nginx-light`; .ci/test-deps installs it)",
        );
        let nginx = Self {
            port,
            _process: process,
            dir,
        };
        let up = eventually!(
            WAIT,
            tokio::net::TcpStream::connect(nginx.addr()).await.is_ok()
        );
        assert!(
            up,
            "nginx never listened on {port}; its log:\n{}",
            nginx.log()
        );
        nginx
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// nginx's error log so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// An emulator set up for these tests: `framing`, the tests' aliases, a 1 s heartbeat and a
/// busy bus (background executions every 200 ms: filtered streams get no heartbeats).
fn emulator_config(framing: Framing) -> EmulatorConfig {
    EmulatorConfig {
        framing,
        background_interval: Some(Duration::from_millis(200)),
        ..with_test_aliases().emulator
    }
}

/// The emulator as st2's services (Direct), real nginx in front of it, and a bridge whose
/// `api_url`, `auth_url` and `stream_url` point at nginx.
struct Bridge {
    app: RunningApp,
    nginx: Nginx,
    emulator: Emulator,
    http: awc::Client,
    console_in: DuplexStream,
    console_out: Lines<BufReader<DuplexStream>>,
    /// Every console line seen so far, unescaped.
    seen: Vec<String>,
}

impl Bridge {
    async fn start() -> Self {
        init_test_log();
        let opts = with_test_aliases();
        let emulator = Emulator::start(emulator_config(Framing::Direct))
            .await
            .expect("emulator starts");
        let nginx = Nginx::start(emulator.addr()).await;
        // support's configuration, with every StackStorm URL on nginx instead.
        let toml = config_toml(&emulator, &opts).replace(&emulator.base_url(), &nginx.base_url());
        assert!(toml.contains(&format!("{}/stream/v1", nginx.base_url())));
        let settings = config::load_from_str(&toml, &REGISTRY).expect("test config valid");
        let (app, console_in, console_out) = start_with_console(settings).await;
        Self {
            app,
            nginx,
            emulator,
            http: awc::Client::default(),
            console_in,
            console_out,
            seen: Vec::new(),
        }
    }

    async fn say(&mut self, line: &str) {
        self.console_in
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("console input");
    }

    /// Reads lines until one contains `needle`; panics after `limit` with what was seen.
    async fn line_containing_within(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.console_out.next_line()).await {
                Ok(Ok(Some(line))) => {
                    let line = unescape_line(&line);
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Ok(Ok(None)) => panic!("console output closed"),
                Ok(Err(e)) => panic!("console output failed: {e}"),
                Err(_) => panic!(
                    "no console line containing {needle:?}; seen: {:#?}\nnginx's log:\n{}",
                    self.seen,
                    self.nginx.log()
                ),
            }
        }
    }

    async fn line_containing(&mut self, needle: &str) -> String {
        self.line_containing_within(needle, WAIT).await
    }

    /// Reads lines until every needle has been in one, in any order; panics after `WAIT`.
    async fn lines_containing_all(&mut self, needles: &[String]) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while let Some(missing) = needles
            .iter()
            .find(|n| !self.seen.iter().any(|l| l.contains(n.as_str())))
        {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            self.line_containing_within(&missing.clone(), left).await;
        }
    }

    /// GET on the bridge's HTTP server: status and body.
    async fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{path}", self.app.http_addr);
        let mut resp = self.http.get(url).send().await.expect("http request");
        let body = resp.body().await.expect("http body");
        (
            resp.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    async fn wait_ready(&self) {
        let mut last;
        let ready = eventually!(WAIT, {
            last = self.get("/ready").await;
            last.0 == 200
        });
        assert!(
            ready,
            "/ready never answered 200; last: {last:?}\nnginx's log:\n{}",
            self.nginx.log()
        );
    }

    /// The value of one metric line (exact name with labels), or 0 when absent.
    async fn metric(&self, series: &str) -> f64 {
        let (_, body) = self.get("/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

/// An HTTP/1.1 answer as it came off the wire.
#[derive(Debug)]
struct Raw {
    status: u16,
    reason: String,
    /// Every header line in order, names lowercased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    /// Every value of header `name`, in order.
    fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// How much of the body [`raw_get`] reads.
#[derive(Clone, Copy)]
enum Body {
    /// `Content-Length` bytes, or up to the connection's close when there is none.
    Whole,
    /// What has arrived once the headers are read (at least one byte): for the stream,
    /// whose body never ends.
    First,
}

/// `GET target` over a plain `std::net::TcpStream` (HTTP/1.1, nothing in between that could
/// hide the framing); every read bounded by [`WAIT`].
async fn raw_get(addr: SocketAddr, target: &str, body: Body) -> Raw {
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
        addr.port()
    );
    tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(addr).expect("connect");
        conn.set_read_timeout(Some(WAIT)).expect("read timeout");
        conn.write_all(request.as_bytes()).expect("request written");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = conn.read(&mut chunk).expect("response head");
            assert!(n > 0, "connection closed before a response: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut rest = buf[head_end + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let _version = parts.next();
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {status_line:?}"));
        let reason = parts.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        loop {
            let done = match (body, length) {
                (_, Some(len)) => rest.len() >= len,
                (Body::First, None) => !rest.is_empty(),
                (Body::Whole, None) => false,
            };
            if done {
                break;
            }
            let n = conn.read(&mut chunk).expect("response body");
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        Raw {
            status,
            reason,
            headers,
            body: rest,
        }
    })
    .await
    .expect("raw GET")
}

/// `GET` on st2's stream with a token, filtered to the bridge's route: on a busy bus no event
/// passes the filter, so the body is the greeting (a bare `\n`) and then silence.
fn stream_target(token: &str) -> String {
    format!("/stream/v1/stream?events=st2.announcement__stormbridge&x-auth-token={token}")
}

#[actix_rt::test]
async fn commands_and_results_flow_through_real_nginx_on_a_busy_bus() {
    let mut b = Bridge::start().await;
    b.wait_ready().await;
    b.say("!st2 run date").await;
    let ack = b.line_containing("Started `run date`").await;
    let id = b.emulator.executions()[0].id.clone();
    assert!(ack.contains(&id), "{ack}");
    let result = b.line_containing(&format!("execution: {id}")).await;
    assert!(result.starts_with("[stormbridge] #ops: "), "{result}");
    assert!(result.contains("succeeded"), "{result}");
    assert_eq!(
        b.metric("stormbridge_results_delivered_total{source=\"stream\"}")
            .await,
        1.0,
        "the result came from the stream, through nginx"
    );
    assert!(b.emulator.background_events_total() > 0, "the bus was busy");

    // What the bridge just read, on the wire: real nginx relays st2stream's chunked answer
    // with no length and no chunks, ended only by the connection's close.
    let token = b
        .emulator
        .issue_token("st2admin", "Ch@ngeMe")
        .expect("a token");
    let raw = raw_get(b.nginx.addr(), &stream_target(&token), Body::First).await;
    assert_eq!(raw.status, 200, "{raw:?}");
    assert_eq!(raw.values("content-length"), Vec::<&str>::new(), "{raw:?}");
    assert_eq!(
        raw.values("transfer-encoding"),
        Vec::<&str>::new(),
        "{raw:?}"
    );
    assert_eq!(raw.values("connection"), ["close"], "{raw:?}");
    assert_eq!(
        raw.values("content-type"),
        ["text/event-stream; charset=UTF-8"],
        "{raw:?}"
    );
    assert!(
        !raw.body.is_empty() && raw.body.iter().all(|&c| c == b'\n'),
        "the greeting as it is (`\\n`), not a chunk (`1\\r\\n\\n\\r\\n`): {raw:?}"
    );
    // The chunks were st2stream's (the emulator as the service itself): nginx took them off.
    let direct = raw_get(b.emulator.addr(), &stream_target(&token), Body::First).await;
    assert_eq!(
        direct.values("transfer-encoding"),
        ["chunked"],
        "{direct:?}"
    );
    b.wait_ready().await;
}

#[actix_rt::test]
async fn st2stream_down_behind_real_nginx_then_back_owes_each_result_once() {
    let mut b = Bridge::start().await;
    b.wait_ready().await;
    assert!(eventually!(WAIT, b.emulator.stream_connections() == 1));

    // st2stream stops: nginx's connection to it is closed unanswered (a 502 to nginx), so the
    // bridge's reconnects get `@streamError`'s `retry: 1000` page — a failed attempt each,
    // never a connection.
    b.emulator.set_stream_service(false);
    let refused = b.emulator.stream_error_pages();
    assert!(
        eventually!(WAIT, b.emulator.stream_error_pages() >= refused + 2),
        "the bridge did not retry the stream; nginx's log:\n{}",
        b.nginx.log()
    );
    assert!(
        b.nginx
            .log()
            .contains("upstream prematurely closed connection"),
        "nginx saw st2stream down: {}",
        b.nginx.log()
    );
    let mut last;
    assert!(
        eventually!(WAIT, {
            last = b.get("/ready").await;
            last.0 == 503
        }),
        "nginx's retry page counted as a stream: /ready {last:?}"
    );
    assert_eq!(b.emulator.stream_connections(), 0);

    // Commands are still run and acknowledged; their results are announced to nobody.
    let mut ids = Vec::new();
    for cmd in ["date", "uptime", "whoami"] {
        b.say(&format!("!st2 run {cmd}")).await;
        b.line_containing(&format!("Started `run {cmd}`")).await;
        ids.push(
            b.emulator
                .executions()
                .last()
                .expect("an execution")
                .id
                .clone(),
        );
    }
    assert!(
        eventually!(WAIT, b.emulator.announcements().len() >= ids.len()),
        "the executions finished while st2stream was down"
    );

    // st2stream is back: the bridge reconnects through nginx and fetches what it owes.
    b.emulator.set_stream_service(true);
    let owed: Vec<String> = ids.iter().map(|id| format!("execution: {id}")).collect();
    b.lines_containing_all(&owed).await;
    assert!(
        b.metric("stormbridge_results_delivered_total{source=\"reconciliation\"}")
            .await
            >= 1.0
    );
    b.wait_ready().await;
    assert!(eventually!(
        WAIT,
        b.metric("stormbridge_results_pending").await == 0.0
    ));

    // One more command over the restored stream, then no result may have come twice.
    b.say("!st2 run hostname").await;
    b.line_containing("Started `run hostname`").await;
    let last_id = b
        .emulator
        .executions()
        .last()
        .expect("an execution")
        .id
        .clone();
    b.line_containing(&format!("execution: {last_id}")).await;
    ids.push(last_id);
    for id in &ids {
        let needle = format!("execution: {id}");
        let posted = b.seen.iter().filter(|l| l.contains(&needle)).count();
        assert_eq!(posted, 1, "{id} posted {posted} times: {:#?}", b.seen);
    }
}

/// How an HTTP/1.1 answer leaves its connection: `close`, or `keep-alive` (HTTP/1.1's
/// default when there is no `Connection` header). nginx writes `Connection: keep-alive`;
/// actix-web, which the emulator is built on, never does on HTTP/1.1 (its encoder drops the
/// header) — the same meaning to every client, so that is what is compared.
fn persistence(raw: &Raw) -> &str {
    match raw.values("connection").as_slice() {
        [] => "keep-alive",
        [one] => one,
        many => panic!("several Connection headers: {many:?}"),
    }
}

/// Header names of an answer, sorted and deduplicated, without `leave_out`.
fn header_names(raw: &Raw, leave_out: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = raw
        .headers
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| !leave_out.contains(&n.as_str()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The model and real nginx answer alike: status line, body, the framing headers, every
/// `Content-Type` in order, `Server`, and the same header names otherwise.
fn assert_alike(what: &str, real: &Raw, model: &Raw) {
    let show = format!("{what}\nreal nginx: {real:#?}\nthe emulator: {model:#?}");
    assert_eq!(real.status, model.status, "{show}");
    assert_eq!(real.reason, model.reason, "{show}");
    assert_eq!(real.body, model.body, "{show}");
    for name in [
        "content-length",
        "transfer-encoding",
        "content-type",
        "server",
    ] {
        assert_eq!(real.values(name), model.values(name), "{name}: {show}");
    }
    assert_eq!(persistence(real), persistence(model), "connection: {show}");
    assert_eq!(
        header_names(real, &["connection"]),
        header_names(model, &["connection"]),
        "{show}"
    );
}

#[actix_rt::test]
async fn the_emulators_model_of_st2s_nginx_answers_as_real_nginx_does() {
    init_test_log();
    // st2's services with real nginx in front, and the emulator's model of the pair.
    let services = Emulator::start(emulator_config(Framing::Direct))
        .await
        .expect("emulator starts");
    let nginx = Nginx::start(services.addr()).await;
    let model = Emulator::start(emulator_config(Framing::Nginx))
        .await
        .expect("emulator starts");
    let real_token = services
        .issue_token("st2admin", "Ch@ngeMe")
        .expect("a token");
    let model_token = model.issue_token("st2admin", "Ch@ngeMe").expect("a token");
    let both = |target: fn(&str) -> String, body: Body| {
        let (real_target, model_target) = (target(&real_token), target(&model_token));
        let (real_addr, model_addr) = (nginx.addr(), model.addr());
        async move {
            (
                raw_get(real_addr, &real_target, body).await,
                raw_get(model_addr, &model_target, body).await,
            )
        }
    };
    let aliases = |token: &str| format!("/api/v1/actionalias?x-auth-token={token}");

    // The stream, served: close-delimited, st2.conf's add_headers, no X-Accel-Buffering.
    let (real, modelled) = both(stream_target, Body::First).await;
    assert_alike("the stream", &real, &modelled);
    assert_eq!(persistence(&real), "close", "{real:?}");
    assert_eq!(real.values("x-accel-buffering"), Vec::<&str>::new());

    // st2api's JSON, served. The one deliberate difference: real nginx keeps st2api's
    // Content-Length (and the connection), as it does unless `gzip on` with gzip_types
    // covering JSON compresses the answer; the model always strips it, the worst case every
    // client path must survive (`src/emulator/proxy.rs`). All else is alike.
    let (real, modelled) = both(aliases, Body::Whole).await;
    assert_eq!(real.status, 200, "{real:?}");
    assert_eq!(real.body, modelled.body);
    assert_eq!(real.values("content-length"), [real.body.len().to_string()]);
    assert_eq!(persistence(&real), "keep-alive", "{real:?}");
    assert_eq!(modelled.values("content-length"), Vec::<&str>::new());
    assert_eq!(persistence(&modelled), "close", "{modelled:?}");
    for name in [
        "transfer-encoding",
        "content-type",
        "server",
        "x-frame-options",
    ] {
        assert_eq!(real.values(name), modelled.values(name), "{name}");
    }
    assert_eq!(
        header_names(&real, &["connection", "content-length"]),
        header_names(&modelled, &["connection", "content-length"]),
        "real: {real:#?}\nmodel: {modelled:#?}"
    );

    // st2stream down: nginx's `@streamError` page.
    services.set_stream_service(false);
    model.set_stream_service(false);
    let (real, modelled) = both(stream_target, Body::Whole).await;
    assert_alike("st2stream down", &real, &modelled);
    assert_eq!(real.body, b"retry: 1000\n\n");
    assert_eq!(
        real.values("content-type"),
        ["application/octet-stream", "text/event-stream"]
    );

    // st2api down: nginx's `@apiError` page.
    services.set_api_service(false);
    model.set_api_service(false);
    let (real, modelled) = both(aliases, Body::Whole).await;
    assert_alike("st2api down", &real, &modelled);
    assert_eq!(real.status, 503);
    assert_eq!(
        real.values("content-type"),
        ["application/octet-stream", "application/json"]
    );
    assert_eq!(persistence(&real), "keep-alive", "{real:?}");
}
