//! Byte-level tests of the emulator's framing and faults, over raw loopback TCP
//! (awc cannot read close-delimited bodies, actix/actix-web#2287, which is what
//! [`Framing::Nginx`] sends).

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::*;

const WAIT: Duration = Duration::from_secs(5);

/// A quiet emulator (no background traffic) with `framing`.
fn cfg(framing: Framing) -> EmulatorConfig {
    EmulatorConfig {
        framing,
        background_interval: None,
        ..EmulatorConfig::default()
    }
}

async fn start(cfg: EmulatorConfig) -> Emulator {
    match Emulator::start(cfg).await {
        Ok(e) => e,
        Err(e) => panic!("emulator did not start: {e}"),
    }
}

/// Wait (bounded) until `cond` holds.
async fn wait_until<F: FnMut() -> bool>(what: &str, mut cond: F) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("st2admin:Ch@ngeMe")
    )
}

/// An HTTP/1.1 request as a client writes it (no `Connection` header: closing is
/// the server's decision).
fn request(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> String {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: st2.example\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        r.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    r.push_str("\r\n");
    if let Some(b) = body {
        r.push_str(b);
    }
    r
}

#[derive(Debug, PartialEq)]
enum Read {
    Data(Vec<u8>),
    /// The peer closed (EOF) or reset the connection.
    Closed,
    Timeout,
}

#[derive(Debug)]
struct Head {
    status: u16,
    /// Lowercased names, in wire order.
    headers: Vec<(String, String)>,
}

impl Head {
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.all(name).first().copied()
    }

    /// Framed as nginx relays a body without a length: it ends with the connection.
    fn assert_close_delimited(&self) {
        assert!(self.get("content-length").is_none(), "{self:?}");
        assert!(self.get("transfer-encoding").is_none(), "{self:?}");
        assert_eq!(self.get("connection"), Some("close"), "{self:?}");
    }
}

/// One raw client connection.
struct Wire {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl Wire {
    async fn connect(em: &Emulator) -> Wire {
        match TcpStream::connect(em.addr()).await {
            Ok(sock) => Wire {
                sock,
                buf: Vec::new(),
            },
            Err(e) => panic!("connect: {e}"),
        }
    }

    async fn send(&mut self, req: &str) {
        if let Err(e) = self.sock.write_all(req.as_bytes()).await {
            panic!("write: {e}");
        }
    }

    /// Bytes from the socket (not from `buf`).
    async fn read_raw(&mut self, t: Duration) -> Read {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(t, self.sock.read(&mut chunk)).await {
            Err(_) => Read::Timeout,
            Ok(Ok(0) | Err(_)) => Read::Closed,
            Ok(Ok(n)) => Read::Data(chunk[..n].to_vec()),
        }
    }

    /// Buffered bytes first, then the socket.
    async fn read(&mut self, t: Duration) -> Read {
        if !self.buf.is_empty() {
            return Read::Data(std::mem::take(&mut self.buf));
        }
        self.read_raw(t).await
    }

    /// The response head; body bytes read with it stay buffered.
    async fn head(&mut self) -> Head {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                let text = String::from_utf8_lossy(&head).to_string();
                let mut lines = text.split("\r\n");
                let status = lines
                    .next()
                    .and_then(|l| l.split(' ').nth(1))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let headers = lines
                    .filter_map(|l| l.split_once(": "))
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                    .collect();
                return Head { status, headers };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_raw(left).await {
                Read::Data(d) => self.buf.extend_from_slice(&d),
                other => panic!("no response head ({other:?}): {:?}", self.buf),
            }
        }
    }

    /// Everything until the server closes the connection.
    async fn body_to_close(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        let mut out = std::mem::take(&mut self.buf);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_raw(left).await {
                Read::Data(d) => out.extend_from_slice(&d),
                Read::Closed => return out,
                Read::Timeout => panic!("connection not closed; got {out:?}"),
            }
        }
    }

    /// Exactly `n` body bytes.
    async fn body_exact(&mut self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        while self.buf.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_raw(left).await {
                Read::Data(d) => self.buf.extend_from_slice(&d),
                other => panic!("body cut short ({other:?}): {:?}", self.buf),
            }
        }
        self.buf.drain(..n).collect()
    }

    /// Bytes until `want` bytes have arrived (bounded).
    async fn at_least(&mut self, want: usize) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        while self.buf.len() < want {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_raw(left).await {
                Read::Data(d) => self.buf.extend_from_slice(&d),
                other => panic!("expected {want} bytes ({other:?}): {:?}", self.buf),
            }
        }
        std::mem::take(&mut self.buf)
    }
}

/// One complete exchange on a new connection whose answer ends with the close.
async fn exchange(em: &Emulator, req: &str) -> (Head, Vec<u8>) {
    let mut w = Wire::connect(em).await;
    w.send(req).await;
    let head = w.head().await;
    let body = w.body_to_close().await;
    (head, body)
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

async fn login(em: &Emulator) -> String {
    let auth = basic();
    let (head, body) = exchange(
        em,
        &request(
            "POST",
            "/auth/v1/tokens",
            &[("Authorization", &auth)],
            Some("{}"),
        ),
    )
    .await;
    assert_eq!(head.status, 201, "{head:?}");
    json_of(&body)["token"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `POST /api/v1/aliasexecution` of the demo `date` alias, notification route `r`.
async fn run_date(em: &Emulator, token: &str) -> (Head, Vec<u8>) {
    let exec = json!({"name": "date", "format": "date", "command": "date",
                      "source_channel": "C1", "notification_route": "r"})
    .to_string();
    exchange(
        em,
        &request(
            "POST",
            "/api/v1/aliasexecution",
            &[("X-Auth-Token", token)],
            Some(&exec),
        ),
    )
    .await
}

/// Open a stream; the head is read and checked to be a 200.
async fn open_stream(em: &Emulator, token: &str, query: &str) -> (Wire, Head) {
    let mut w = Wire::connect(em).await;
    w.send(&request(
        "GET",
        &format!("/stream/v1/stream{query}"),
        &[("X-Auth-Token", token), ("Accept", "text/event-stream")],
        None,
    ))
    .await;
    let head = w.head().await;
    assert_eq!(head.status, 200, "{head:?}");
    (w, head)
}

fn frame(event: &str, data: &Value) -> Vec<u8> {
    format!(
        "event: {event}\ndata: {}\n\n",
        serde_json::to_string(data).unwrap_or_default()
    )
    .into_bytes()
}

/// Decode a chunked body: `(data, saw the last chunk)`; a partial chunk at the end
/// contributes what arrived of it.
fn dechunk(mut raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size = usize::from_str_radix(&String::from_utf8_lossy(&raw[..eol]), 16).unwrap_or(0);
        raw = &raw[eol + 2..];
        if size == 0 {
            return (out, raw.starts_with(b"\r\n"));
        }
        let take = size.min(raw.len());
        out.extend_from_slice(&raw[..take]);
        if take < size {
            return (out, false);
        }
        raw = raw.get(size + 2..).unwrap_or_default();
    }
}

// ----- Framing::Nginx ------------------------------------------------------------

#[tokio::test]
async fn nginx_framing_of_token_alias_list_and_execution() {
    let em = start(cfg(Framing::Nginx)).await;
    // A token request.
    let auth = basic();
    let (head, body) = exchange(
        &em,
        &request(
            "POST",
            "/auth/v1/tokens",
            &[("Authorization", &auth)],
            Some(r#"{"ttl": 60}"#),
        ),
    )
    .await;
    assert_eq!(head.status, 201);
    head.assert_close_delimited();
    assert_eq!(head.get("server"), Some("nginx"));
    assert!(head.get("x-request-id").is_some());
    assert_eq!(head.get("front-end-https"), Some("on"));
    let token = json_of(&body)["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(token.len(), 32, "{:?}", String::from_utf8_lossy(&body));

    // The alias list.
    let (head, body) = exchange(
        &em,
        &request(
            "GET",
            "/api/v1/actionalias",
            &[("X-Auth-Token", &token)],
            None,
        ),
    )
    .await;
    assert_eq!(head.status, 200);
    head.assert_close_delimited();
    assert_eq!(head.get("content-type"), Some("application/json"));
    assert_eq!(head.get("x-total-count"), Some("7"));
    let items = json_of(&body);
    let demo = demo_aliases();
    assert_eq!(items.as_array().map(Vec::len), Some(demo.len()));
    assert!(items
        .as_array()
        .is_some_and(|a| a.iter().all(|v| demo.contains(v))));

    // An alias execution.
    let (head, body) = run_date(&em, &token).await;
    assert_eq!(head.status, 201);
    head.assert_close_delimited();
    assert_eq!(json_of(&body)["execution"]["status"], "requested");
    assert_eq!(em.executions().len(), 1);

    // st2's errors are proxied the same way; nginx adds only its `always` header.
    let (head, body) = exchange(&em, &request("GET", "/api/v1/actionalias", &[], None)).await;
    assert_eq!(head.status, 401);
    head.assert_close_delimited();
    assert_eq!(head.get("x-frame-options"), Some("DENY"));
    assert!(head.get("front-end-https").is_none());
    assert_eq!(
        json_of(&body),
        json!({"faultstring": "Unauthorized - One of Token or API key required."})
    );
}

#[tokio::test]
async fn nginx_stream_first_bytes_and_an_event() {
    let em = start(cfg(Framing::Nginx)).await;
    let token = login(&em).await;
    let (mut w, head) = open_stream(&em, &token, "").await;
    head.assert_close_delimited();
    assert_eq!(
        head.get("content-type"),
        Some("text/event-stream; charset=UTF-8")
    );
    assert_eq!(head.get("cache-control"), Some("no-cache"));
    // nginx consumes X-Accel-* headers.
    assert!(head.get("x-accel-buffering").is_none());
    assert_eq!(w.at_least(1).await, b"\n");
    let payload = json!({"message": "hi", "channel": "C1"});
    em.announce("chatops", payload.clone());
    let want = frame(
        "st2.announcement__chatops",
        &json!({"payload": payload, "trace_context": null}),
    );
    assert_eq!(w.at_least(want.len()).await, want);
    em.drop_streams();
    assert_eq!(w.body_to_close().await, b"");
    wait_until("stream closed", || em.stream_connections() == 0).await;
}

// ----- Framing::Direct -----------------------------------------------------------

#[tokio::test]
async fn direct_framing_is_actix_default() {
    let em = start(cfg(Framing::Direct)).await;
    let mut w = Wire::connect(&em).await;
    w.send(&request(
        "POST",
        "/auth/v1/tokens",
        &[("Authorization", &basic())],
        Some("{}"),
    ))
    .await;
    let head = w.head().await;
    assert_eq!(head.status, 201);
    let len: usize = head
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(len > 0, "{head:?}");
    assert!(head.get("connection").is_none(), "{head:?}");
    assert!(head.get("server").is_none());
    let token = json_of(&w.body_exact(len).await)["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Kept alive: a second request on the same connection.
    w.send(&request(
        "GET",
        "/api/v1/actionalias",
        &[("X-Auth-Token", &token)],
        None,
    ))
    .await;
    let head = w.head().await;
    assert_eq!(head.status, 200);
    assert!(head.get("content-length").is_some());

    let (mut s, head) = open_stream(&em, &token, "").await;
    assert_eq!(head.get("transfer-encoding"), Some("chunked"));
    assert!(head.get("content-length").is_none());
    assert_eq!(head.get("x-accel-buffering"), Some("no"));
    assert_eq!(s.at_least(6).await, b"1\r\n\n\r\n");
    em.announce("x", json!({"n": 1}));
    let want = frame(
        "st2.announcement__x",
        &json!({"payload": {"n": 1}, "trace_context": null}),
    );
    let got = s.at_least(want.len() + 6).await;
    assert_eq!(dechunk(&got), (want, false));
    // A normal end has the last chunk.
    em.drop_streams();
    let rest = s.body_to_close().await;
    assert_eq!(rest, b"0\r\n\r\n");
}

// ----- services down -------------------------------------------------------------

#[tokio::test]
async fn nginx_error_pages_when_services_are_down() {
    let em = start(EmulatorConfig {
        execution_delay: Duration::from_millis(50),
        ..cfg(Framing::Nginx)
    })
    .await;
    let token = login(&em).await;
    let (mut open, _) = open_stream(&em, &token, "").await;
    assert_eq!(open.at_least(1).await, b"\n");
    assert_eq!(em.stream_connects_total(), 1);

    em.set_stream_service(false);
    // The open stream is dropped.
    assert_eq!(open.body_to_close().await, b"");
    wait_until("stream closed", || em.stream_connections() == 0).await;

    // @streamError, byte for byte, as nginx 1.22 sends it: two Content-Types, a
    // length, and the connection kept alive.
    let mut w = Wire::connect(&em).await;
    w.send(&request(
        "GET",
        "/stream/v1/stream",
        &[("X-Auth-Token", &token)],
        None,
    ))
    .await;
    let head = w.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.all("content-type"),
        ["application/octet-stream", "text/event-stream"]
    );
    assert_eq!(head.get("content-length"), Some("13"));
    assert!(head.get("connection").is_none(), "{head:?}");
    assert!(head.get("transfer-encoding").is_none());
    assert!(head.get("x-request-id").is_none());
    assert_eq!(w.body_exact(13).await, b"retry: 1000\n\n");
    assert_eq!(em.stream_error_pages(), 1);
    assert_eq!(em.stream_connects_total(), 1);

    // Executions go on while st2stream is down; their events are lost.
    let exec = json!({"name": "date", "format": "date", "command": "date",
                      "source_channel": "C1", "notification_route": "r"})
    .to_string();
    w.send(&request(
        "POST",
        "/api/v1/aliasexecution",
        &[("X-Auth-Token", &token)],
        Some(&exec),
    ))
    .await;
    let head = w.head().await;
    assert_eq!(head.status, 201);
    let id = json_of(&w.body_to_close().await)["execution"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let deadline = Instant::now() + WAIT;
    loop {
        let (head, body) = exchange(
            &em,
            &request(
                "GET",
                &format!("/api/v1/executions/{id}"),
                &[("X-Auth-Token", &token)],
                None,
            ),
        )
        .await;
        assert_eq!(head.status, 200);
        if json_of(&body)["status"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "execution did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    em.set_stream_service(true);
    let (mut s, _) = open_stream(&em, &token, "?events=st2.announcement__*").await;
    assert_eq!(s.at_least(1).await, b"\n");
    em.announce("marker", json!({}));
    let want = frame(
        "st2.announcement__marker",
        &json!({"payload": {}, "trace_context": null}),
    );
    // No replay: the execution's announcement is not there, the marker is first.
    assert_eq!(s.at_least(want.len()).await, want);
    assert_eq!(em.stream_connects_total(), 2);

    // @apiError and @authError.
    em.set_api_service(false);
    em.set_auth_service(false);
    for (method, path, text) in [
        ("GET", "/api/v1/actionalias", proxy::API_DOWN),
        ("POST", "/api/v1/aliasexecution", proxy::API_DOWN),
        ("POST", "/auth/v1/tokens", proxy::AUTH_DOWN),
    ] {
        let mut w = Wire::connect(&em).await;
        w.send(&request(
            method,
            path,
            &[("X-Auth-Token", &token)],
            Some("{}"),
        ))
        .await;
        let head = w.head().await;
        assert_eq!(head.status, 503, "{path}");
        assert_eq!(
            head.all("content-type"),
            ["application/octet-stream", "application/json"]
        );
        let len = text.len().to_string();
        assert_eq!(head.get("content-length"), Some(len.as_str()));
        assert_eq!(w.body_exact(text.len()).await, text.as_bytes(), "{path}");
    }
    assert_eq!(
        proxy::API_DOWN,
        r#"{ "faultstring": "Nginx is unable to reach st2api. Make sure service is running." }"#
    );
    assert_eq!(
        proxy::AUTH_DOWN,
        r#"{ "faultstring": "Nginx is unable to reach st2auth. Make sure service is running." }"#
    );
    // The stream is unaffected by the API going down.
    em.announce("still", json!({}));
    let want = frame(
        "st2.announcement__still",
        &json!({"payload": {}, "trace_context": null}),
    );
    assert_eq!(s.at_least(want.len()).await, want);
    em.set_api_service(true);
    em.set_auth_service(true);
    assert_eq!(
        exchange(
            &em,
            &request(
                "GET",
                "/api/v1/actionalias",
                &[("X-Auth-Token", &token)],
                None
            )
        )
        .await
        .0
        .status,
        200
    );
}

#[tokio::test]
async fn direct_mode_closes_connections_to_a_service_that_is_down() {
    let em = start(cfg(Framing::Direct)).await;
    let mut w = Wire::connect(&em).await;
    w.send(&request(
        "POST",
        "/auth/v1/tokens",
        &[("Authorization", &basic())],
        Some("{}"),
    ))
    .await;
    let head = w.head().await;
    let len: usize = head
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let token = json_of(&w.body_exact(len).await)["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (mut s, _) = open_stream(&em, &token, "").await;
    assert_eq!(s.at_least(6).await, b"1\r\n\n\r\n");

    // st2stream dies: the chunked body never gets its last chunk.
    em.set_stream_service(false);
    assert_eq!(s.body_to_close().await, b"");
    // A new stream request, and API requests while st2api is down: no answer.
    let mut n = Wire::connect(&em).await;
    n.send(&request(
        "GET",
        "/stream/v1/stream",
        &[("X-Auth-Token", &token)],
        None,
    ))
    .await;
    assert_eq!(n.read(WAIT).await, Read::Closed);
    assert_eq!(em.stream_error_pages(), 1);
    assert_eq!(em.stream_connects_total(), 1);
    em.set_api_service(false);
    for body in [None, Some("{}")] {
        let mut n = Wire::connect(&em).await;
        n.send(&request(
            "GET",
            "/api/v1/actionalias",
            &[("X-Auth-Token", &token)],
            body,
        ))
        .await;
        assert_eq!(n.read(WAIT).await, Read::Closed);
    }
    // The connection kept alive since the token request is closed by its next
    // request to a service that is down.
    em.set_auth_service(false);
    w.send(&request(
        "POST",
        "/auth/v1/tokens",
        &[("Authorization", &basic())],
        None,
    ))
    .await;
    assert_eq!(w.read(WAIT).await, Read::Closed);
    em.set_api_service(true);
    em.set_auth_service(true);
    em.set_stream_service(true);
    let (mut s, _) = open_stream(&em, &token, "").await;
    assert_eq!(s.at_least(6).await, b"1\r\n\n\r\n");
}

// ----- slow st2 ----------------------------------------------------------------

#[tokio::test]
async fn response_delay_holds_api_and_auth_answers_but_not_streams() {
    let em = start(cfg(Framing::Nginx)).await;
    let token = login(&em).await;
    let delay = Duration::from_millis(1500);
    em.set_response_delay(delay);
    let started = Instant::now();
    let (head, _) = exchange(
        &em,
        &request(
            "GET",
            "/api/v1/actionalias",
            &[("X-Auth-Token", &token)],
            None,
        ),
    )
    .await;
    assert_eq!(head.status, 200);
    assert!(started.elapsed() >= delay);
    let started = Instant::now();
    let (head, _) = exchange(&em, &request("POST", "/auth/v1/tokens", &[], None)).await;
    assert_eq!(head.status, 401);
    assert!(started.elapsed() >= delay);
    // The stream answers at once.
    let started = Instant::now();
    let (mut s, _) = open_stream(&em, &token, "").await;
    assert_eq!(s.at_least(1).await, b"\n");
    assert!(started.elapsed() < Duration::from_millis(1000));
    em.set_response_delay(Duration::ZERO);
    let started = Instant::now();
    let _ = login(&em).await;
    assert!(started.elapsed() < Duration::from_millis(1000));
}

// ----- a busy bus ----------------------------------------------------------------

#[tokio::test]
async fn background_traffic_silences_filtered_connections() {
    let em = start(EmulatorConfig {
        heartbeat: Duration::from_millis(300),
        background_interval: Some(Duration::from_millis(50)),
        ..EmulatorConfig::default()
    })
    .await;
    let token = login(&em).await;
    let (mut filtered, _) = open_stream(&em, &token, "?events=st2.announcement__x").await;
    let (mut all, _) = open_stream(&em, &token, "").await;
    let (mut output, _) = open_stream(&em, &token, "?events=st2.execution.output__create").await;
    assert_eq!(filtered.read(WAIT).await, Read::Data(b"\n".to_vec()));
    let before = em.background_events_total();
    // Busy bus: not one byte for well over three heartbeats.
    assert_eq!(
        filtered.read(Duration::from_millis(1200)).await,
        Read::Timeout
    );
    assert!(em.background_events_total() >= before + 20);

    // The unfiltered connection (st2's default event list) gets the executions:
    // read until one that was created after the connection has finished.
    let parse = |text: &str| -> Vec<(String, Value)> {
        text.split("\n\n")
            .filter_map(|block| {
                let block = block.trim_start_matches('\n');
                let (name, data) = block.split_once('\n')?;
                Some((
                    name.strip_prefix("event: ")?.to_string(),
                    serde_json::from_str(data.strip_prefix("data: ")?).ok()?,
                ))
            })
            .collect()
    };
    let mut text = String::new();
    let deadline = Instant::now() + WAIT;
    let (events, created) = loop {
        assert!(Instant::now() < deadline, "no whole execution: {text}");
        if let Read::Data(d) = all.read(WAIT).await {
            text.push_str(&String::from_utf8_lossy(&d));
        }
        let events = parse(&text);
        let created = events
            .iter()
            .find(|(n, _)| n == "st2.execution__create")
            .map(|(_, v)| v.clone());
        if let Some(created) = created {
            let finished = events.iter().any(|(n, v)| {
                n == "st2.execution__update"
                    && v["id"] == created["id"]
                    && v["status"] == "succeeded"
            });
            if finished {
                break (events, created);
            }
        }
    };
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let statuses: Vec<&str> = events
        .iter()
        .filter(|(n, v)| n.starts_with("st2.execution__") && v["id"] == id.as_str())
        .filter_map(|(_, v)| v["status"].as_str())
        .collect();
    assert_eq!(statuses, ["requested", "scheduled", "running", "succeeded"]);
    assert_eq!(created["status"], "requested");
    assert_eq!(created["action"]["ref"], "core.local");
    assert_eq!(created["context"]["rule"]["name"], "sample_rule_with_timer");
    assert!(created["context"]["trigger_instance"]["id"].is_string());
    assert_eq!(created["rule"]["ref"], "examples.sample_rule_with_timer");
    assert_eq!(created["trigger_type"]["ref"], "core.st2.IntervalTimer");
    assert!(created.get("notify").is_none());
    assert!(events.iter().any(|(n, _)| n == "st2.liveaction__create"));
    assert!(events
        .iter()
        .all(|(n, _)| !n.starts_with("st2.announcement__")));
    // Output only to those who ask for it.
    assert!(events
        .iter()
        .all(|(n, _)| n != "st2.execution.output__create"));
    let out = String::from_utf8_lossy(&output.at_least(40).await).to_string();
    assert!(
        out.starts_with("\nevent: st2.execution.output__create\ndata: {\"id\":"),
        "{out}"
    );
    assert!(out.contains("\"output_type\":\"stdout\""), "{out}");
    // Background executions are neither recorded nor served.
    assert!(em.executions().is_empty());
    let (head, _) = exchange(
        &em,
        &request(
            "GET",
            &format!("/api/v1/executions/{id}"),
            &[("X-Auth-Token", &token)],
            None,
        ),
    )
    .await;
    assert_eq!(head.status, 404);

    // A quiet bus: heartbeats come back.
    em.set_background_traffic(None);
    let mut beats = 0;
    let deadline = Instant::now() + WAIT;
    while beats < 2 {
        assert!(Instant::now() < deadline, "no heartbeats");
        match filtered.read(WAIT).await {
            Read::Data(d) => {
                assert!(d.iter().all(|b| *b == b'\n'), "{d:?}");
                beats += d.len();
            }
            other => panic!("{other:?}"),
        }
    }
    // And the ticker is idle.
    let settled = em.background_events_total();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(em.background_events_total(), settled);
    em.set_background_traffic(Some(Duration::from_millis(20)));
    wait_until("traffic again", || em.background_events_total() > settled).await;
}

// ----- cut mid-event -------------------------------------------------------------

#[tokio::test]
async fn cut_mid_event_nginx() {
    let em = start(cfg(Framing::Nginx)).await;
    let token = login(&em).await;
    let (mut s, _) = open_stream(&em, &token, "").await;
    assert_eq!(s.at_least(1).await, b"\n");
    em.cut_streams_mid_event();
    let payload = json!({"message": "a result that is cut", "channel": "C1"});
    em.announce("chatops", payload.clone());
    let full = frame(
        "st2.announcement__chatops",
        &json!({"payload": payload, "trace_context": null}),
    );
    let got = s.body_to_close().await;
    assert!(!got.is_empty() && got.len() < full.len(), "{got:?}");
    assert!(full.starts_with(&got));
    assert_eq!(got.len(), full.len() / 2);
    wait_until("stream closed", || em.stream_connections() == 0).await;
    // Streams opened afterwards are whole.
    let (mut s, _) = open_stream(&em, &token, "").await;
    assert_eq!(s.at_least(1).await, b"\n");
    em.announce("chatops", payload.clone());
    assert_eq!(s.at_least(full.len()).await, full);
}

#[tokio::test]
async fn cut_mid_event_direct() {
    let em = start(cfg(Framing::Direct)).await;
    let mut w = Wire::connect(&em).await;
    w.send(&request(
        "POST",
        "/auth/v1/tokens",
        &[("Authorization", &basic())],
        None,
    ))
    .await;
    let head = w.head().await;
    let len: usize = head
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let token = json_of(&w.body_exact(len).await)["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (mut s, _) = open_stream(&em, &token, "?events=st2.announcement__*").await;
    assert_eq!(s.at_least(6).await, b"1\r\n\n\r\n");
    em.cut_streams_mid_event();
    em.announce("chatops", json!({"message": "m"}));
    let full = frame(
        "st2.announcement__chatops",
        &json!({"payload": {"message": "m"}, "trace_context": null}),
    );
    let raw = s.body_to_close().await;
    let (data, last_chunk) = dechunk(&raw);
    assert!(!last_chunk, "{raw:?}");
    assert!(!data.is_empty() && data.len() < full.len(), "{raw:?}");
    assert!(full.starts_with(&data));
    wait_until("stream closed", || em.stream_connections() == 0).await;
}

// ----- the stream's end_event ------------------------------------------------------

#[tokio::test]
async fn end_event_is_checked_before_the_filters() {
    let em = start(EmulatorConfig {
        execution_delay: Duration::from_secs(60),
        ..cfg(Framing::Nginx)
    })
    .await;
    let token = login(&em).await;
    let (_, body) = run_date(&em, &token).await;
    let id = json_of(&body)["execution"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // The end event is filtered out: the stream ends without sending it.
    let q = format!(
        "?events=st2.announcement__r&end_execution_id={id}&end_event=st2.execution__update"
    );
    let (mut s, _) = open_stream(&em, &token, &q).await;
    wait_until("stream open", || em.stream_connections() == 1).await;
    // Canceling completes it (`canceled`), with an `st2.execution__update`.
    let (head, _) = exchange(
        &em,
        &request(
            "DELETE",
            &format!("/api/v1/executions/{id}"),
            &[("X-Auth-Token", &token)],
            None,
        ),
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(s.body_to_close().await, b"\n");

    // An end_event whose body has no `status` (an announcement) kills st2's
    // generator at the first such event.
    let q = "?end_execution_id=x&end_event=st2.announcement__boom";
    let (mut s, _) = open_stream(&em, &token, q).await;
    assert_eq!(s.at_least(1).await, b"\n");
    em.announce("other", json!({}));
    let want = frame(
        "st2.announcement__other",
        &json!({"payload": {}, "trace_context": null}),
    );
    assert_eq!(s.at_least(want.len()).await, want);
    em.announce("boom", json!({}));
    assert_eq!(s.body_to_close().await, b"");
}

// ----- lifecycle -----------------------------------------------------------------

#[tokio::test]
async fn defaults_are_nginx_with_background_traffic() {
    let cfg = EmulatorConfig::default();
    assert_eq!(cfg.framing, Framing::Nginx);
    assert_eq!(cfg.background_interval, Some(Duration::from_secs(1)));
    assert_eq!(Framing::default(), Framing::Nginx);
    let em = start(EmulatorConfig {
        background_interval: Some(Duration::from_millis(10)),
        ..EmulatorConfig::default()
    })
    .await;
    wait_until("background events", || em.background_events_total() > 0).await;
    let token = login(&em).await;
    let (mut s, _) = open_stream(&em, &token, "").await;
    assert_eq!(s.at_least(1).await, b"\n");
    em.stop().await;
    let _ = s.body_to_close().await;
    assert!(em.restart().await.is_ok());
    let (mut s, _) = open_stream(&em, &token, "").await;
    assert!(!s.at_least(1).await.is_empty());
}
