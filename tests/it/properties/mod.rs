//! Property tests of every parser that reads bytes from outside the bridge: StackStorm's
//! event stream (`sse`), alias formats, matching and help (`alias`), each chat platform's
//! inbound frames and events (`slack`, `mattermost`, `discord`, `matrix`, `irc`, `xmpp`,
//! `rocketchat`, `teams`, `webex`), the Slack, Teams and Webex request signatures, the login
//! form (`login`) and the configuration file (`config`).
//!
//! Each property runs a small number of cases by default, so that the whole group stays
//! within about 30 s of a debug `cargo test` on two cores; `PROPTEST_CASES=N` runs N cases
//! of every property instead (the long run documented in the README), and
//! `PROPTEST_RNG_SEED=S` repeats a run. Every property prints how many inputs it tried
//! (`--nocapture` shows it). Failures are reported with the shrunk input; no regression
//! files are written (inputs that once failed are kept as fixed cases in the tests).
//!
//! Inputs are mostly mutations of real ones (st2's own alias formats, real stream
//! transcripts, real event JSON from each platform's documentation), with fields deleted,
//! retyped and oversized, bytes inserted, cut and duplicated, and invalid UTF-8, rather
//! than uniform random bytes, which would rarely get past the first check of a parser.
//!
//! **Bounded time per input.** proptest runs here without `fork`/`timeout`, so time is
//! checked inside each case: [`timed`] measures the case's work and fails it when it took
//! longer than [`CASE_BUDGET`] (1 s in a debug build, 250 ms optimised: far above what any
//! input should cost, so a loaded CI machine does not make it flaky, far below a stall).
//! Where an input could make the code run for minutes (regular expressions from alias
//! formats and help filters), [`watched`] runs the work on another thread, holds it to
//! [`regex_budget`] (linear in the pattern's length), and fails the case [`HANG`] after that
//! budget instead of hanging the test run. Nothing here sleeps for a fixed time.

mod alias;
mod config;
mod discord;
mod irc;
mod login;
mod matrix;
mod mattermost;
mod rocketchat;
mod slack;
mod sse;
mod teams;
mod webex;
mod xmpp;

use std::{
    fmt::Debug,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use proptest::{
    prelude::*,
    sample::Index,
    test_runner::{Config, TestCaseError, TestCaseResult, TestError, TestRunner},
};
use serde_json::{json, Value};
use stormbridge::domain::message::InboundMessage;

/// The longest one case may take (see the module docs).
pub const CASE_BUDGET: Duration = if cfg!(debug_assertions) {
    Duration::from_secs(1)
} else {
    Duration::from_millis(250)
};

/// What a case that builds regular expressions from its input (alias formats, help filters)
/// may take: a fixed part plus a part per character of the patterns. Building one regex is
/// bounded by the engine's size limits (the largest, `\w{99999}` or `.{99999}`, take about
/// 0.15 s optimised, 1 s unoptimised) and grows linearly with some constructs (a help filter
/// costs about 1 ms per character of `\b\b…` optimised, ten times that unoptimised): linear is
/// bounded; only worse than linear, or a hang, fails.
pub fn regex_budget(pattern_chars: usize) -> Duration {
    let (fixed, per_char) = if cfg!(debug_assertions) {
        (Duration::from_secs(3), Duration::from_millis(25))
    } else {
        (Duration::from_millis(750), Duration::from_micros(2500))
    };
    fixed + per_char * u32::try_from(pattern_chars).unwrap_or(u32::MAX)
}

/// How much longer than its budget [`watched`] waits for a case before declaring it hung.
pub const HANG: Duration = Duration::from_secs(20);

/// Cases per property: `PROPTEST_CASES` when set, else `ci`.
pub fn cases(ci: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(ci)
}

/// The runner configuration: [`cases`], no failure persistence, shrinking bounded in time
/// (a hung case costs [`HANG`] per shrink step).
pub fn config(ci: u32) -> Config {
    Config {
        cases: cases(ci),
        failure_persistence: None,
        max_shrink_time: 90_000,
        ..Config::default()
    }
}

/// Runs property `name` over `strategy`: `ci` cases unless `PROPTEST_CASES` says otherwise.
/// Prints how many inputs were tried; panics with the shrunk input on a failure.
pub fn check<S>(name: &str, ci: u32, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: Debug,
{
    run(name, config(ci), strategy, test)
}

/// [`check`] for properties that post to a running bridge (milliseconds a case, and every
/// case leaves state behind): a tenth of `PROPTEST_CASES` when it is set.
pub fn check_slow<S>(name: &str, ci: u32, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: Debug,
{
    let mut config = config(ci);
    if std::env::var_os("PROPTEST_CASES").is_some() {
        config.cases = (config.cases / 10).max(ci);
    }
    run(name, config, strategy, test)
}

fn run<S>(name: &str, config: Config, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: Debug,
{
    let mut runner = TestRunner::new(config);
    let tried = AtomicU64::new(0);
    let started = Instant::now();
    let result = runner.run(&strategy, |input| {
        tried.fetch_add(1, Ordering::Relaxed);
        test(input)
    });
    eprintln!(
        "property {name}: {} inputs in {:.1?}",
        tried.load(Ordering::Relaxed),
        started.elapsed()
    );
    match result {
        Ok(()) => {}
        Err(TestError::Abort(why)) => panic!("property {name} aborted: {why}"),
        Err(TestError::Fail(why, input)) => panic!(
            "property {name} failed: {}\nminimal failing input: {}",
            brief(&why.to_string()),
            brief(&format!("{input:#?}"))
        ),
    }
}

/// `text` with runs of one character longer than 12 written as `x…×N`, so that a failure
/// with a 9 KB line stays readable.
pub fn brief(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let mut n = 1;
        while chars.peek() == Some(&c) {
            chars.next();
            n += 1;
        }
        if n > 12 {
            out.push_str(&format!("{c}…×{n}"));
        } else {
            out.extend(std::iter::repeat_n(c, n));
        }
    }
    out
}

/// Runs `work` and fails the case when it took longer than [`CASE_BUDGET`].
pub fn timed<T>(what: &str, work: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    let started = Instant::now();
    let out = work();
    let took = started.elapsed();
    if took > CASE_BUDGET {
        return Err(TestCaseError::fail(format!(
            "{what} took {took:?} (budget {CASE_BUDGET:?})"
        )));
    }
    Ok(out)
}

/// Runs `work` on its own thread and fails the case when it took longer than `budget`, or,
/// when it has not finished [`HANG`] after that, fails it then (its thread is abandoned)
/// instead of hanging the test run. A panic in the work is a panic of the case.
pub fn watched<T: Send + 'static>(
    budget: Duration,
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, TestCaseError> {
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    match rx.recv_timeout(budget + HANG) {
        Ok(out) => {
            let _ = worker.join();
            let took = started.elapsed();
            if took > budget {
                return Err(TestCaseError::fail(format!(
                    "{what} took {took:?} (budget {budget:?})"
                )));
            }
            Ok(out)
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => Err(TestCaseError::fail(format!("{what}: no result"))),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => Err(TestCaseError::fail(format!(
            "{what} did not finish within {:?} (abandoned, still running)",
            budget + HANG
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Mutations of sequences (bytes or characters)
// ---------------------------------------------------------------------------------------

/// One edit of a sequence; positions are relative, so an edit applies to any length.
#[derive(Debug, Clone)]
pub enum Edit<T> {
    /// Insert items.
    Insert(Index, Vec<T>),
    /// Replace the item at a position with items.
    Replace(Index, Vec<T>),
    /// Delete up to `n` items.
    Delete(Index, usize),
    /// Repeat a run of up to `n` items `times` times.
    Repeat(Index, usize, usize),
    /// Cut everything from a position on.
    Truncate(Index),
}

/// Applies `edits` to `items`, in order.
pub fn apply<T: Clone>(mut items: Vec<T>, edits: &[Edit<T>]) -> Vec<T> {
    for edit in edits {
        let len = items.len();
        match edit {
            Edit::Insert(i, new) => {
                let p = i.index(len + 1);
                items.splice(p..p, new.iter().cloned());
            }
            Edit::Replace(i, new) if len > 0 => {
                let p = i.index(len);
                items.splice(p..p + 1, new.iter().cloned());
            }
            Edit::Delete(i, n) if len > 0 => {
                let p = i.index(len);
                items.drain(p..(p + n).min(len));
            }
            Edit::Repeat(i, n, times) if len > 0 => {
                let p = i.index(len);
                let end = (p + n.max(&1)).min(len);
                let run: Vec<T> = items[p..end].to_vec();
                let copies: Vec<T> = (0..*times).flat_map(|_| run.iter().cloned()).collect();
                items.splice(end..end, copies);
            }
            Edit::Truncate(i) if len > 0 => items.truncate(i.index(len)),
            _ => {}
        }
    }
    items
}

/// Edits whose inserted runs come from `insert` (tokens of the format, random items).
pub fn edits<T: Clone + Debug>(
    insert: BoxedStrategy<Vec<T>>,
    max: usize,
) -> impl Strategy<Value = Vec<Edit<T>>> {
    let one = prop_oneof![
        4 => (any::<Index>(), insert.clone()).prop_map(|(i, v)| Edit::Insert(i, v)),
        3 => (any::<Index>(), insert).prop_map(|(i, v)| Edit::Replace(i, v)),
        3 => (any::<Index>(), 1usize..8).prop_map(|(i, n)| Edit::Delete(i, n)),
        1 => (any::<Index>(), 1usize..16, 1usize..40).prop_map(|(i, n, t)| Edit::Repeat(i, n, t)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ];
    proptest::collection::vec(one, 0..=max)
}

/// A seed from `seeds` with up to `max` edits whose inserts are `tokens` or random text.
pub fn mutated_text(
    seeds: Vec<String>,
    tokens: Vec<&'static str>,
    max: usize,
) -> impl Strategy<Value = String> {
    let tokens: Vec<Vec<char>> = tokens.iter().map(|t| t.chars().collect()).collect();
    let insert = prop_oneof![
        3 => proptest::sample::select(tokens),
        2 => proptest::collection::vec(any::<char>(), 1..4),
        1 => proptest::collection::vec(proptest::char::range(' ', '~'), 1..6),
    ]
    .boxed();
    (proptest::sample::select(seeds), edits(insert, max))
        .prop_map(|(seed, edits)| apply(seed.chars().collect(), &edits).into_iter().collect())
}

/// A seed from `seeds` with up to `max` byte edits: `tokens`, random bytes, invalid UTF-8.
pub fn mutated_bytes(
    seeds: Vec<Vec<u8>>,
    tokens: Vec<Vec<u8>>,
    max: usize,
) -> impl Strategy<Value = Vec<u8>> {
    let insert = prop_oneof![
        3 => proptest::sample::select(tokens),
        2 => proptest::collection::vec(any::<u8>(), 1..4),
        1 => proptest::sample::select(vec![
            vec![0xff], vec![0xc3], vec![0xe2, 0x82], vec![0xed, 0xa0, 0x80], vec![0xf4, 0x90, 0x80, 0x80],
        ]),
    ]
    .boxed();
    (proptest::sample::select(seeds), edits(insert, max)).prop_map(|(seed, e)| apply(seed, &e))
}

/// Where to cut a byte stream into the chunks it arrives in: anywhere, or right before or
/// after a line end (where framing bugs live).
#[derive(Debug, Clone)]
pub enum Cut {
    /// Any position.
    Anywhere(Index),
    /// Before (`false`) or after (`true`) one of the CR or LF bytes.
    AtLineEnd(Index, bool),
}

/// Cut points, mostly anywhere.
pub fn cuts(max: usize) -> impl Strategy<Value = Vec<Cut>> {
    proptest::collection::vec(
        prop_oneof![
            2 => any::<Index>().prop_map(Cut::Anywhere),
            1 => (any::<Index>(), any::<bool>()).prop_map(|(i, after)| Cut::AtLineEnd(i, after)),
        ],
        0..=max,
    )
}

/// `bytes` cut at `cuts` (empty chunks left out).
pub fn chunks<'a>(bytes: &'a [u8], cuts: &[Cut]) -> Vec<&'a [u8]> {
    let ends: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n' || **b == b'\r')
        .map(|(i, _)| i)
        .collect();
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|c| match c {
            Cut::Anywhere(i) => i.index(bytes.len() + 1),
            Cut::AtLineEnd(_, _) if ends.is_empty() => 0,
            Cut::AtLineEnd(i, after) => ends[i.index(ends.len())] + usize::from(*after),
        })
        .collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

// ---------------------------------------------------------------------------------------
// Mutations of JSON documents
// ---------------------------------------------------------------------------------------

/// Strings that have broken chat parsers before: empty, blank, control characters, bidi
/// overrides, mentions, markup, huge.
pub fn odd_string() -> BoxedStrategy<String> {
    prop_oneof![
        3 => proptest::sample::select(vec![
            "", " ", "\t", "\n", "\r\n", "\u{0}", "\u{7f}", "\u{a0}", "\u{feff}", "\u{202e}",
            "\u{2028}", "\u{1f4a9}", "e\u{301}", "\u{fffd}", "<@U0BOT>", "<@!42>", "<@U0BOT|bot>",
            "@stormbridge", "stormbridge:", "!st2", "!st2 run date", "st2 run date",
            "&amp;&lt;&gt;", "<https://x|y>", "\u{201c}q\u{201d}", "> quoted\n\nreply",
            "\u{1}ACTION x\u{1}", "\u{2}bold\u{2}", "]]>", "&#0;", "null", "0", "-1", "1e999",
        ]).prop_map(str::to_owned),
        3 => any::<String>(),
        1 => (1usize..70_000, proptest::char::any()).prop_map(|(n, c)| c.to_string().repeat(n)),
    ]
    .boxed()
}

/// Any JSON value, of the kinds that replace a field: wrong types, odd strings, big numbers,
/// deep nesting.
pub fn odd_value() -> BoxedStrategy<Value> {
    prop_oneof![
        2 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => prop_oneof![
            Just(json!(0)), Just(json!(-1)), Just(json!(u64::MAX)), Just(json!(i64::MIN)),
            Just(json!(1.5)), Just(json!(-0.0)), Just(json!(1e300)),
        ],
        4 => odd_string().prop_map(Value::String),
        1 => Just(json!([])),
        1 => Just(json!({})),
        1 => (1usize..120).prop_map(|depth| {
            (0..depth).fold(json!("deep"), |v, _| json!([v]))
        }),
        1 => proptest::collection::vec(odd_string(), 0..4).prop_map(|v| json!(v)),
    ]
    .boxed()
}

/// One edit of a JSON document; the node is chosen by position among all nodes.
#[derive(Debug, Clone)]
pub enum JsonEdit {
    /// Remove a node (an object member or an array item).
    Delete(Index),
    /// Replace a node's value.
    Set(Index, Value),
    /// Add a member to an object node.
    Add(Index, String, Value),
}

/// Every node's JSON pointer, root first.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        _ => {}
    }
}

fn parent_and_key(pointer: &str) -> (&str, String) {
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    (parent, key.replace("~1", "/").replace("~0", "~"))
}

/// Applies `edits` to a copy of `doc`.
pub fn apply_json(doc: &Value, edits: &[JsonEdit]) -> Value {
    let mut doc = doc.clone();
    for edit in edits {
        let mut all = vec![String::new()];
        pointers(&doc, String::new(), &mut all);
        match edit {
            JsonEdit::Delete(i) if all.len() > 1 => {
                let target = &all[1 + i.index(all.len() - 1)];
                let (parent, key) = parent_and_key(target);
                match doc.pointer_mut(parent) {
                    Some(Value::Object(m)) => {
                        m.remove(&key);
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(n) = key.parse::<usize>() {
                            if n < a.len() {
                                a.remove(n);
                            }
                        }
                    }
                    _ => {}
                }
            }
            JsonEdit::Set(i, value) => {
                let target = all[i.index(all.len())].clone();
                if let Some(node) = doc.pointer_mut(&target) {
                    *node = value.clone();
                }
            }
            JsonEdit::Add(i, key, value) => {
                let objects: Vec<&String> = all
                    .iter()
                    .filter(|p| doc.pointer(p).is_some_and(Value::is_object))
                    .collect();
                if objects.is_empty() {
                    continue;
                }
                let target = objects[i.index(objects.len())].clone();
                if let Some(Value::Object(m)) = doc.pointer_mut(&target) {
                    m.insert(key.clone(), value.clone());
                }
            }
            _ => {}
        }
    }
    doc
}

/// A JSON edit; `keys` are member names worth adding (the format's own field names).
pub fn json_edit(keys: Vec<&'static str>) -> impl Strategy<Value = JsonEdit> {
    let key = prop_oneof![
        3 => proptest::sample::select(keys).prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    prop_oneof![
        2 => any::<Index>().prop_map(JsonEdit::Delete),
        4 => (any::<Index>(), odd_value()).prop_map(|(i, v)| JsonEdit::Set(i, v)),
        1 => (any::<Index>(), key, odd_value()).prop_map(|(i, k, v)| JsonEdit::Add(i, k, v)),
    ]
}

/// One of `seeds` with up to `max` JSON edits.
pub fn mutated_json(
    seeds: Vec<Value>,
    keys: Vec<&'static str>,
    max: usize,
) -> impl Strategy<Value = Value> {
    (
        proptest::sample::select(seeds),
        proptest::collection::vec(json_edit(keys), 0..=max),
    )
        .prop_map(|(seed, edits)| apply_json(&seed, &edits))
}

/// Values for identity fields (user and room ids): empty, blank, the wrong type.
pub fn identity_value() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => proptest::sample::select(vec!["", " ", "\t", "\u{a0}", "\n"]).prop_map(|s| json!(s)),
        1 => Just(Value::Null),
        1 => Just(json!(0)),
        1 => Just(json!(["U0ALICE"])),
        1 => odd_value(),
    ]
    .boxed()
}

/// `docs`, with one of `pointers` (when the document has it) often set to an
/// [`identity_value`]: the fields that say who is speaking deserve more than their share of
/// the damage.
pub fn with_identity_damage(
    docs: impl Strategy<Value = Value>,
    pointers: Vec<&'static str>,
) -> impl Strategy<Value = Value> {
    (
        docs,
        proptest::option::weighted(0.4, (proptest::sample::select(pointers), identity_value())),
    )
        .prop_map(|(mut doc, damage)| {
            if let Some((pointer, value)) = damage {
                if let Some(node) = doc.pointer_mut(pointer) {
                    *node = value;
                }
            }
            doc
        })
}

/// A JSON document as text, sometimes with byte-level damage on top (cut, spliced, doubled).
pub fn mutated_json_text(
    seeds: Vec<Value>,
    keys: Vec<&'static str>,
) -> impl Strategy<Value = String> {
    let tokens = vec![
        "{", "}", "[", "]", "\"", ",", ":", "\\", "\\u0000", "\\ud800", "null", "1e999",
    ];
    (
        mutated_json(seeds, keys, 4),
        prop_oneof![
            3 => Just(Vec::new()),
            1 => edits(
                proptest::sample::select(
                    tokens.iter().map(|t| t.chars().collect::<Vec<char>>()).collect::<Vec<_>>(),
                )
                .boxed(),
                3
            ),
        ],
    )
        .prop_map(|(doc, edits)| {
            apply(doc.to_string().chars().collect(), &edits)
                .into_iter()
                .collect()
        })
}

/// What every chat message must be: a user id that is not empty or blank, on the connection
/// it came from.
pub fn sane(msg: &InboundMessage, connection: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        !msg.user.id.trim().is_empty(),
        "a message with an empty user id: {msg:?}"
    );
    prop_assert_eq!(&msg.user.connection, connection);
    prop_assert_eq!(&msg.room.connection, connection);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// A plain HTTP/1.1 client on a blocking socket, for properties that post to a running
// bridge from proptest's (synchronous) runner: it sends exactly the bytes it is given.
// ---------------------------------------------------------------------------------------

/// An HTTP answer: status and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// Sends one request (`Connection: close`) and reads the whole answer.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.set_write_timeout(Some(Duration::from_secs(15)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        // One header per line, whatever the generated value holds.
        let value: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    // A server may answer (413) and close before taking a large body: read the answer anyway.
    let _ = stream.write_all(body);
    // Read the head, then exactly `Content-Length` bytes (a server may hold the connection
    // open a while after answering, e.g. while it drains a body it did not read).
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other(format!(
                "connection closed before an answer: {:?}",
                String::from_utf8_lossy(&answer)
            )));
        }
        answer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&answer[..head_end]).into_owned();
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {head:?}")))?;
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    let mut rest = answer[head_end..].to_vec();
    match length {
        Some(n) => {
            while rest.len() < n {
                let got = stream.read(&mut chunk)?;
                if got == 0 {
                    break;
                }
                rest.extend_from_slice(&chunk[..got]);
            }
        }
        None => {
            stream.read_to_end(&mut rest)?;
        }
    }
    let body = String::from_utf8_lossy(&rest).into_owned();
    Ok(Reply { status, body })
}
