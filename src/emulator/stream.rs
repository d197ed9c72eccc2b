//! `GET /stream/v1/stream`: st2's server-sent event stream.
//!
//! Like st2 (`st2common/stream/listener.py`, `st2stream/controllers/v1/stream.py`):
//! a bare `\n` is written on connect and after every `heartbeat` without a message
//! (a message that is filtered out still restarts the wait, as st2's queue read
//! does); each event is `event: <name>\ndata: <compact json>\n\n`; `events=` is a
//! comma-separated list of `fnmatch` globs with st2's default list when absent;
//! `action_refs=` and `execution_ids=` drop events without a matching ref or id
//! (announcements included); `end_execution_id=` + `end_event=` close the stream
//! after that event for a completed execution. There are no `id:`/`retry:` lines.
//!
//! The `end_event` check runs before the filters, as in st2's listener: an end
//! event that the filters drop still ends the stream (without being sent), and an
//! `end_event` naming an event whose body has no `status` (an announcement, output,
//! an alias) makes st2's generator fail on `body.status` when such an event comes,
//! which drops the connection.
//!
//! Faults: [`super::Emulator::drop_streams`] ends the body normally,
//! [`super::Emulator::set_stream_service`] (down) drops connections as a dying
//! st2stream would, [`super::Emulator::cut_streams_mid_event`] writes part of the
//! next event and drops the connection. "Dropping" means the client sees the bytes
//! sent so far and then the connection closing: in [`super::Framing::Direct`] the
//! chunked body never gets its last chunk; in [`super::Framing::Nginx`] (a body
//! delimited by the close) nothing on the wire tells a drop from an end.

use std::sync::Arc;
use std::time::Duration;

use super::Framing;

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::stream;
use tokio::sync::mpsc::{self, UnboundedReceiver};

use super::proxy::service_down;
use super::routes::{authenticate, fault, query_pairs, Fault};
use super::state::{Event, Service, Shared, StreamMsg};

/// st2's `DEFAULT_EVENTS_WHITELIST`.
const DEFAULT_EVENTS: &[&str] = &[
    "st2.announcement__*",
    "st2.execution__create",
    "st2.execution__update",
    "st2.execution__delete",
    "st2.liveaction__create",
    "st2.liveaction__update",
    "st2.liveaction__delete",
];

const COMPLETED: &[&str] = &["succeeded", "failed", "timeout", "canceled", "abandoned"];

enum Tok {
    Any,
    One,
    Lit(char),
    Class(Vec<(char, char)>, bool),
}

fn compile_glob(pattern: &str) -> Vec<Tok> {
    let p: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '*' => toks.push(Tok::Any),
            '?' => toks.push(Tok::One),
            '[' => {
                let mut j = i + 1;
                let negate = j < p.len() && p[j] == '!';
                if negate {
                    j += 1;
                }
                let start = j;
                if j < p.len() && p[j] == ']' {
                    j += 1;
                }
                while j < p.len() && p[j] != ']' {
                    j += 1;
                }
                if j >= p.len() {
                    toks.push(Tok::Lit('['));
                } else {
                    let set = &p[start..j];
                    let mut ranges = Vec::new();
                    let mut k = 0;
                    while k < set.len() {
                        if k + 2 < set.len() && set[k + 1] == '-' {
                            ranges.push((set[k], set[k + 2]));
                            k += 3;
                        } else {
                            ranges.push((set[k], set[k]));
                            k += 1;
                        }
                    }
                    toks.push(Tok::Class(ranges, negate));
                    i = j;
                }
            }
            c => toks.push(Tok::Lit(c)),
        }
        i += 1;
    }
    toks
}

/// Python's `fnmatch.fnmatch` on POSIX (case-sensitive): `*`, `?`, `[seq]`, `[!seq]`.
/// Runs in O(len(name) × len(pattern)) whatever the pattern.
#[cfg(test)]
fn fnmatch(name: &str, pattern: &str) -> bool {
    Glob::new(pattern).matches(name)
}

/// A compiled `fnmatch` pattern. Python caches the translation of each pattern
/// (`fnmatch._compile_pattern` is an `lru_cache`); a stream connection compiles its `events`
/// once, not once per event.
pub(crate) struct Glob {
    toks: Vec<Tok>,
    /// The pattern is literal text (the common `st2.execution__create`).
    literal: Option<String>,
    /// The pattern is literal text then one `*` (the common `st2.announcement__*`).
    prefix: Option<String>,
}

impl Glob {
    pub(crate) fn new(pattern: &str) -> Self {
        let toks = compile_glob(pattern);
        let text = |toks: &[Tok]| -> Option<String> {
            toks.iter()
                .map(|t| match t {
                    Tok::Lit(c) => Some(*c),
                    _ => None,
                })
                .collect()
        };
        let literal = text(&toks);
        let prefix = match toks.split_last() {
            Some((Tok::Any, head)) if literal.is_none() => text(head),
            _ => None,
        };
        Self {
            toks,
            literal,
            prefix,
        }
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        if let Some(literal) = &self.literal {
            return name == literal;
        }
        if let Some(prefix) = &self.prefix {
            return name.starts_with(prefix.as_str());
        }
        let toks = &self.toks;
        // dp[j]: the first i characters of name match the first j tokens.
        let mut dp = vec![false; toks.len() + 1];
        dp[0] = true;
        for (j, t) in toks.iter().enumerate() {
            dp[j + 1] = dp[j] && matches!(t, Tok::Any);
        }
        for c in name.chars() {
            let mut next = vec![false; toks.len() + 1];
            for (j, t) in toks.iter().enumerate() {
                next[j + 1] = match t {
                    Tok::Any => dp[j + 1] || next[j],
                    Tok::One => dp[j],
                    Tok::Lit(l) => dp[j] && *l == c,
                    Tok::Class(ranges, negate) => {
                        dp[j] && (ranges.iter().any(|(a, b)| *a <= c && c <= *b) != *negate)
                    }
                };
            }
            dp = next;
        }
        dp[toks.len()]
    }
}

/// The per-connection filters.
struct Filter {
    events: Arc<[Glob]>,
    action_refs: Option<Vec<String>>,
    execution_ids: Option<Vec<String>>,
    end_execution_id: Option<String>,
    end_event: Option<String>,
}

impl Filter {
    fn accepts(&self, ev: &Event) -> bool {
        if !self.events.iter().any(|g| g.matches(&ev.name)) {
            return false;
        }
        if let Some(refs) = &self.action_refs {
            match &ev.action_ref {
                Some(r) if refs.contains(r) => {}
                _ => return false,
            }
        }
        if let Some(ids) = &self.execution_ids {
            match &ev.execution_id {
                Some(i) if ids.contains(i) => {}
                _ => return false,
            }
        }
        true
    }

    /// st2's end check: `event_name == end_event and body.status in end_statuses
    /// and end_execution_id is not None and body.id == end_execution_id`.
    fn end_check(&self, ev: &Event) -> End {
        let Some(end_event) = &self.end_event else {
            return End::No;
        };
        if ev.name != *end_event {
            return End::No;
        }
        let Some(status) = ev.status.as_deref() else {
            // `body.status` raises AttributeError: the generator dies.
            return End::Crash;
        };
        match &self.end_execution_id {
            Some(end_id)
                if COMPLETED.contains(&status) && ev.body_id.as_deref() == Some(end_id) =>
            {
                End::Yes
            }
            _ => End::No,
        }
    }
}

/// What the end check decides for one event.
enum End {
    No,
    Yes,
    Crash,
}

/// Keeps the connection count right and unregisters the queue however the
/// connection ends.
struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.unsubscribe(self.id);
        tracing::debug!(subscriber = self.id, "st2 emulator: stream closed");
    }
}

/// A duplicate of a connection's socket, taken when the connection is accepted.
///
/// actix-web notices that a client went away only when it next writes to the
/// socket (actix/actix-web#1313), and a stream may write nothing for a long time
/// (heartbeat interval, stalled streams). Peeking at this duplicate lets the stream
/// end as soon as the client closes, so [`super::Emulator::stream_connections`] is
/// accurate.
pub(crate) struct PeerSocket(pub std::net::TcpStream);

/// `HttpServer::on_connect` hook: keep a duplicate of the connection's socket.
pub(crate) fn capture_peer(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd as _;
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            if let Ok(fd) = tcp.as_fd().try_clone_to_owned() {
                ext.insert(PeerSocket(std::net::TcpStream::from(fd)));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (conn, ext);
}

/// How often a stream checks whether its client has gone, when it cannot wait for the
/// socket to say so (no duplicate of it, or the client sent bytes it will not read).
const PEER_PROBE: Duration = Duration::from_millis(100);

/// How long a cut stream waits, after the part of an event it writes, before it
/// drops the connection (time for actix to flush the part to the socket).
const CUT_FLUSH: Duration = Duration::from_millis(20);

/// The error a stream body ends with when the connection must be dropped and there
/// is no socket to shut down (actix then drops the connection as it is).
fn dropped() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "st2 emulator: stream connection dropped",
    )
}

struct Conn {
    rx: UnboundedReceiver<StreamMsg>,
    filter: Filter,
    shared: Arc<Shared>,
    first: bool,
    done: bool,
    /// The next event is to be cut short ([`StreamMsg::CutNext`]).
    cut_next: bool,
    /// Part of an event was written; drop the connection next.
    cut_written: bool,
    peer: Option<std::net::TcpStream>,
    /// The client's socket, watched for its end without a timer: it becomes readable when
    /// the client closes (or sends something, after which the stream probes instead).
    watch: Option<tokio::net::TcpStream>,
    probe: tokio::time::Interval,
    _reg: Registration,
}

type Chunk = Result<Bytes, std::io::Error>;

impl Conn {
    /// End the connection without ending the body: with a chunked body the last
    /// chunk is never written (the socket is shut down first, so actix's write of
    /// it fails); with a close-delimited one the close is all there is.
    fn hang_up(self) -> Option<(Chunk, Conn)> {
        if self.shared.settings.framing == Framing::Nginx {
            return None;
        }
        match &self.peer {
            Some(sock) => {
                let _ = sock.shutdown(std::net::Shutdown::Both);
                None
            }
            None => Some((Err(dropped()), self)),
        }
    }

    /// Whether the client closed (or reset) its end.
    fn peer_gone(&self) -> bool {
        let Some(sock) = &self.peer else {
            return false;
        };
        let mut byte = [0u8; 1];
        match sock.peek(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            ),
        }
    }
}

fn frame(ev: &Event) -> Bytes {
    Bytes::from(format!("event: {}\ndata: {}\n\n", ev.name, ev.data))
}

async fn next_chunk(mut c: Conn) -> Option<(Chunk, Conn)> {
    if c.done {
        return None;
    }
    if c.cut_written {
        tokio::time::sleep(CUT_FLUSH).await;
        c.done = true;
        return c.hang_up();
    }
    if c.first {
        c.first = false;
        if !c.shared.stalled() {
            return Some((Ok(Bytes::from_static(b"\n")), c));
        }
    }
    let heartbeat = c.shared.settings.heartbeat;
    // Like st2's `queue.get(timeout=heartbeat)`: any message restarts the wait.
    let mut deadline = tokio::time::Instant::now() + heartbeat;
    let mut byte = [0u8; 1];
    loop {
        tokio::select! {
            msg = c.rx.recv() => {
                match msg {
                    None | Some(StreamMsg::Close) => return None,
                    Some(StreamMsg::Abort) => {
                        c.done = true;
                        return c.hang_up();
                    }
                    Some(StreamMsg::CutNext) => c.cut_next = true,
                    Some(StreamMsg::Event(ev)) => {
                        // A bus event; the emulator's own fault messages are not.
                        deadline = tokio::time::Instant::now() + heartbeat;
                        if c.shared.stalled() {
                            continue;
                        }
                        let end = match c.filter.end_check(&ev) {
                            End::No => false,
                            End::Yes => true,
                            End::Crash => {
                                c.done = true;
                                return c.hang_up();
                            }
                        };
                        if !c.filter.accepts(&ev) {
                            if end {
                                return None;
                            }
                            continue;
                        }
                        let bytes = frame(&ev);
                        if c.cut_next {
                            // About half, never the whole frame (a frame is at
                            // least `event: \ndata: \n\n`, 16 bytes).
                            let part = bytes.slice(..bytes.len() / 2);
                            c.cut_written = true;
                            return Some((Ok(part), c));
                        }
                        c.done = end;
                        return Some((Ok(bytes), c));
                    }
                }
            },
            () = tokio::time::sleep_until(deadline) => {
                deadline = tokio::time::Instant::now() + heartbeat;
                if c.shared.stalled() {
                    continue;
                }
                return Some((Ok(Bytes::from_static(b"\n")), c));
            }
            seen = peek(c.watch.as_ref(), &mut byte), if c.watch.is_some() => {
                match seen {
                    Ok(0) | Err(_) => return None,
                    // The client sent bytes (nothing a stream reads): they stay, so the
                    // socket stays readable; probe from now on.
                    Ok(_) => c.watch = None,
                }
            }
            _ = c.probe.tick(), if c.peer.is_some() && c.watch.is_none() => {
                if c.peer_gone() {
                    return None;
                }
            }
        }
    }
}

/// Waits until `socket` (always `Some` where called) has a byte to read or has ended, and
/// says how many it could peek at (0: the client closed its end).
async fn peek(socket: Option<&tokio::net::TcpStream>, byte: &mut [u8]) -> std::io::Result<usize> {
    match socket {
        Some(socket) => socket.peek(byte).await,
        None => std::future::pending().await,
    }
}

/// A duplicate of the client's socket the runtime can wait on.
fn watch(peer: &std::net::TcpStream) -> Option<tokio::net::TcpStream> {
    let socket = peer.try_clone().ok()?;
    socket.set_nonblocking(true).ok()?;
    tokio::net::TcpStream::from_std(socket).ok()
}

fn split_list(v: Option<&String>) -> Option<Vec<String>> {
    v.filter(|s| !s.is_empty())
        .map(|s| s.split(',').map(str::to_string).collect())
}

/// `GET /stream/v1/stream`.
pub(crate) async fn stream(
    req: HttpRequest,
    shared: web::Data<Arc<Shared>>,
) -> Result<HttpResponse, Fault> {
    let shared = shared.get_ref().clone();
    let principal = authenticate(&shared, &req)?;
    let query = query_pairs(&req).ok_or_else(|| fault(400, "Failed to parse the query string"))?;
    // st2's router keeps the last value of a repeated parameter.
    let get = |k: &str| {
        query
            .iter()
            .rev()
            .find(|(qk, _)| qk == k)
            .map(|(_, v)| v.clone())
    };
    let events_raw = get("events");
    let events = split_list(events_raw.as_ref())
        .unwrap_or_else(|| DEFAULT_EVENTS.iter().map(ToString::to_string).collect());
    let filter = Filter {
        events: events
            .iter()
            .map(|g| Glob::new(g))
            .collect::<Vec<_>>()
            .into(),
        action_refs: split_list(get("action_refs").as_ref()),
        execution_ids: split_list(get("execution_ids").as_ref()),
        end_execution_id: get("end_execution_id").filter(|s| !s.is_empty()),
        end_event: get("end_event").filter(|s| !s.is_empty()),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let Some(id) = shared.subscribe(tx, events_raw, filter.events.clone()) else {
        // st2stream went down between nginx's check and now.
        return Ok(service_down(&shared, &req, Service::Stream));
    };
    tracing::debug!(subscriber = id, user = %principal.user, "st2 emulator: stream opened");
    let peer = req
        .conn_data::<PeerSocket>()
        .and_then(|p| p.0.try_clone().ok());
    let conn = Conn {
        rx,
        filter,
        shared: shared.clone(),
        first: true,
        done: false,
        cut_next: false,
        cut_written: false,
        watch: peer.as_ref().and_then(watch),
        peer,
        probe: tokio::time::interval(PEER_PROBE),
        _reg: Registration {
            shared: shared.clone(),
            id,
        },
    };
    let body = stream::unfold(conn, next_chunk);
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream; charset=UTF-8"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .force_close()
        .streaming(body))
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn fnmatch_like_python() {
        assert!(fnmatch("st2.announcement__chatops", "st2.announcement__*"));
        assert!(fnmatch("st2.execution__create", "st2.execution__create"));
        assert!(!fnmatch("st2.execution.output__create", "st2.execution__*"));
        assert!(fnmatch("st2.actionalias__update", "st2.actionalias__*"));
        assert!(fnmatch("abc", "a?c"));
        assert!(fnmatch("abc", "a[a-c]c"));
        assert!(!fnmatch("abc", "a[!b]c"));
        assert!(fnmatch("a[c", "a[c"));
        assert!(!fnmatch("ST2.x", "st2.*"));
        assert!(fnmatch("", "*"));
    }
}
