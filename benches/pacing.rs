//! How fast replies get out under each platform's documented rate limits.
//!
//! 50 people in 10 channels run one command each at the same moment: 100 messages (an
//! acknowledgement and a result each), 10 per channel, all queued at once. Each platform's
//! connection queue — the real `Outbox` with the platform's real `queue_policy` for its
//! default settings — sends them to a model of the platform's server that enforces the
//! platform's documented limits (answering 429 with its retry delay, and with its
//! "window used up" headers where the platform sends them), on a simulated clock with a
//! fixed request latency. The figure is the time until the last message is delivered, next
//! to the least time those limits allow (every message sent the moment the limits permit,
//! with unlimited concurrency). Target (issue 14): within 1.5x of it.
//!
//! This measures the bridge's scheduling against the limits, not the network or a real
//! server: the limits are the platforms' documented ones, cited below.
//!
//! Run: `cargo bench --bench pacing`.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use stormbridge::{
    backends::{
        connection::outbox::{Next, Outbox, Outcome, QueuePolicy},
        registry::REGISTRY,
    },
    config::{load_from_str, PlatformSettings},
};

/// Request latency of an HTTP platform (one round trip to the API).
const LATENCY: Duration = Duration::from_millis(30);
const CHANNELS: usize = 10;
const PER_CHANNEL: usize = 10;

/// A token bucket on the simulated clock (seconds since the start).
#[derive(Clone)]
struct Bucket {
    burst: f64,
    per_sec: f64,
    tokens: f64,
    at: f64,
}

impl Bucket {
    fn new(burst: f64, per_sec: f64) -> Self {
        Self {
            burst,
            per_sec,
            tokens: burst,
            at: 0.0,
        }
    }

    fn refill(&mut self, t: f64) {
        self.tokens = (self.tokens + (t - self.at) * self.per_sec).min(self.burst);
        self.at = t;
    }

    /// Time until a token is there (0 when there is one now).
    fn wait(&mut self, t: f64) -> f64 {
        self.refill(t);
        if self.tokens >= 1.0 {
            0.0
        } else {
            (1.0 - self.tokens) / self.per_sec
        }
    }

    fn take(&mut self, t: f64) {
        self.refill(t);
        self.tokens -= 1.0;
    }
}

/// A fixed window of `limit` requests per `window` seconds (Discord's route buckets).
#[derive(Clone)]
struct Window {
    limit: u32,
    window: f64,
    used: u32,
    resets: f64,
}

impl Window {
    fn roll(&mut self, t: f64) {
        if t >= self.resets {
            self.used = 0;
            self.resets = t + self.window;
        }
    }
}

/// A platform's server, as its documentation describes its limits.
#[derive(Clone)]
enum Limits {
    /// Per channel and for the whole account, token buckets; `whole_seconds`: the 429's
    /// `Retry-After` is in whole seconds (rounded up).
    Buckets {
        channel: Option<Bucket>,
        account: Option<Bucket>,
        whole_seconds: bool,
        /// The answer says when the window is used up (`X-RateLimit-Remaining: 0`).
        tells_remaining: bool,
    },
    /// Per channel a fixed window, for the whole bot a token bucket (Discord).
    Discord { channel: Window, global: Bucket },
    /// The server delays reading instead of refusing (IRC, XMPP): delivery time is shaped.
    Shaped { bucket: Bucket },
}

struct Server {
    limits: Limits,
    /// Per-channel copies of the channel limit.
    channels: HashMap<usize, Limits>,
    refused: u32,
    shaped_until: f64,
}

/// What the server made of one request at time `t`: the outcome, and when the message is
/// delivered if it was.
fn request(server: &mut Server, channel: usize, t: f64) -> (Outcome, Option<f64>) {
    let per_channel = server
        .channels
        .entry(channel)
        .or_insert_with(|| server.limits.clone());
    match (&mut server.limits, per_channel) {
        (
            Limits::Buckets {
                account,
                whole_seconds,
                tells_remaining,
                ..
            },
            Limits::Buckets { channel: ch, .. },
        ) => {
            let wait_ch = ch.as_mut().map_or(0.0, |b| b.wait(t));
            let wait_acc = account.as_mut().map_or(0.0, |b| b.wait(t));
            let wait = wait_ch.max(wait_acc);
            if wait > 0.0 {
                server.refused += 1;
                let wait = if *whole_seconds { wait.ceil() } else { wait };
                return (Outcome::RateLimited(Duration::from_secs_f64(wait)), None);
            }
            if let Some(b) = ch.as_mut() {
                b.take(t);
            }
            if let Some(b) = account.as_mut() {
                b.take(t);
            }
            let pause = if *tells_remaining {
                let left = account.as_mut().map_or(f64::MAX, |b| b.tokens);
                (left < 1.0).then(|| {
                    let b = account.as_mut().expect("account bucket");
                    Duration::from_secs_f64((1.0 - b.tokens) / b.per_sec)
                })
            } else {
                None
            };
            (Outcome::Sent { pause }, Some(t))
        }
        (Limits::Discord { global, .. }, Limits::Discord { channel: win, .. }) => {
            win.roll(t);
            let g = global.wait(t);
            if win.used >= win.limit || g > 0.0 {
                server.refused += 1;
                let wait = (win.resets - t).max(g);
                return (Outcome::RateLimited(Duration::from_secs_f64(wait)), None);
            }
            win.used += 1;
            global.take(t);
            // `X-RateLimit-Remaining: 0` with `X-RateLimit-Reset-After`.
            let pause =
                (win.used == win.limit).then(|| Duration::from_secs_f64((win.resets - t).max(0.0)));
            (Outcome::Sent { pause }, Some(t))
        }
        (Limits::Shaped { bucket }, _) => {
            let start = t.max(server.shaped_until);
            let wait = bucket.wait(start);
            let at = start + wait;
            bucket.take(at);
            server.shaped_until = at;
            (Outcome::Sent { pause: None }, Some(at))
        }
        _ => unreachable!("one kind of limits per server"),
    }
}

/// The least time the limits allow: every message sent the moment they permit, channels
/// in parallel, each channel's messages one after another (a reply must not overtake the
/// one before it: the next is sent when the previous one's answer is back).
fn least_time(limits: &Limits, latency: f64) -> f64 {
    let mut server = Server {
        limits: limits.clone(),
        channels: HashMap::new(),
        refused: 0,
        shaped_until: 0.0,
    };
    let mut ready = [0.0_f64; CHANNELS];
    let mut left = [PER_CHANNEL; CHANNELS];
    let mut last: f64 = 0.0;
    while let Some(channel) = (0..CHANNELS)
        .filter(|c| left[*c] > 0)
        .min_by(|a, b| ready[*a].total_cmp(&ready[*b]))
    {
        // The earliest moment this message is accepted, found in 1 ms steps.
        let mut t = ready[channel];
        loop {
            let mut probe = Server {
                limits: server.limits.clone(),
                channels: server.channels.clone(),
                refused: 0,
                shaped_until: server.shaped_until,
            };
            if let (Outcome::Sent { .. }, Some(at)) = request(&mut probe, channel, t) {
                server = probe;
                last = last.max(at + latency);
                ready[channel] = t + latency;
                left[channel] -= 1;
                break;
            }
            t += 0.001;
        }
    }
    last
}

/// Our queue against the server, on a simulated clock.
fn ours(kind: &str, policy: QueuePolicy, limits: &Limits, latency: f64, lanes: bool) -> (f64, u32) {
    let mut server = Server {
        limits: limits.clone(),
        channels: HashMap::new(),
        refused: 0,
        shaped_until: 0.0,
    };
    let mut outbox: Outbox<usize> = Outbox::new("bench", "bench", policy);
    let t0 = Instant::now();
    let _ = kind;
    for _ in 0..PER_CHANNEL {
        for channel in 0..CHANNELS {
            let lane = if lanes {
                format!("room:{channel}")
            } else {
                String::new()
            };
            outbox.push(&lane, channel);
        }
    }
    let at = |t: f64| t0 + Duration::from_secs_f64(t);
    let mut t = 0.0_f64;
    let mut in_flight: Vec<(f64, String, usize, Outcome, Option<f64>)> = Vec::new();
    let mut delivered = 0;
    let mut last: f64 = 0.0;
    let total = CHANNELS * PER_CHANNEL;
    let mut guard = 0;
    while delivered < total {
        guard += 1;
        assert!(guard < 1_000_000, "{kind}: the simulation does not end");
        let mut wake = f64::MAX;
        loop {
            match outbox.next(at(t)) {
                Next::Send(lane, channel) => {
                    let (outcome, delivered_at) = request(&mut server, channel, t);
                    in_flight.push((t + latency, lane, channel, outcome, delivered_at));
                }
                Next::Wait(d) => {
                    wake = t + d.as_secs_f64();
                    break;
                }
                Next::Idle => break,
            }
        }
        let next_done = in_flight.iter().map(|f| f.0).fold(f64::MAX, f64::min);
        t = next_done.min(wake);
        assert!(t < f64::MAX, "{kind}: nothing to wait for");
        let (done, still): (Vec<_>, Vec<_>) = in_flight.into_iter().partition(|f| f.0 <= t);
        in_flight = still;
        for (_, lane, channel, outcome, delivered_at) in done {
            if let (Outcome::Sent { .. }, Some(when)) = (&outcome, delivered_at) {
                delivered += 1;
                last = last.max(when + latency);
            }
            outbox.finish(&lane, channel, outcome, at(t));
        }
    }
    (last, server.refused)
}

fn settings(kind: &str, table: &str) -> std::sync::Arc<dyn PlatformSettings> {
    let toml = format!(
        "[st2]\napi_url = \"https://st2.example.com/api/v1\"\n[st2.credentials]\napi_key = \"k\"\n[[chat]]\nname = \"c\"\nbackend = \"{kind}\"\n{table}\n"
    );
    let s = load_from_str(&toml, &REGISTRY).expect("a valid table");
    s.chat[0].backend.clone()
}

fn main() {
    use stormbridge::backends::*;
    let rows: Vec<(&str, QueuePolicy, Limits, f64, bool, &str)> = vec![
        (
            "slack",
            slack::queue_policy(
                settings("slack", "app_token = \"xapp-1\"\nbot_token = \"xoxb-1\"")
                    .as_any()
                    .downcast_ref()
                    .expect("slack"),
            ),
            // chat.postMessage: about 1 message per second per channel, short bursts allowed
            // (https://api.slack.com/methods/chat.postMessage#rate_limiting); Retry-After in
            // whole seconds.
            Limits::Buckets {
                channel: Some(Bucket::new(3.0, 1.0)),
                account: None,
                whole_seconds: true,
                tells_remaining: false,
            },
            LATENCY.as_secs_f64(),
            true,
            "1/s per channel, bursts of 3",
        ),
        (
            "discord",
            discord::queue_policy(
                settings("discord", "token = \"t\"")
                    .as_any()
                    .downcast_ref()
                    .expect("discord"),
            ),
            // Route buckets per channel (5 per 5 s for a channel's messages, told in
            // X-RateLimit-*), 50 requests per second for the bot
            // (https://discord.com/developers/docs/topics/rate-limits).
            Limits::Discord {
                channel: Window {
                    limit: 5,
                    window: 5.0,
                    used: 0,
                    resets: 0.0,
                },
                global: Bucket::new(50.0, 50.0),
            },
            LATENCY.as_secs_f64(),
            true,
            "5 per 5 s per channel, 50/s global",
        ),
        (
            "mattermost",
            mattermost::queue_policy(
                settings(
                    "mattermost",
                    "url = \"https://mm.example.com\"\ntoken = \"t\"",
                )
                .as_any()
                .downcast_ref()
                .expect("mattermost"),
            ),
            // RateLimitSettings defaults: 10 per second per user, bursts of 100
            // (https://docs.mattermost.com/configure/rate-limiting-configuration-settings.html).
            Limits::Buckets {
                channel: None,
                account: Some(Bucket::new(100.0, 10.0)),
                whole_seconds: true,
                tells_remaining: true,
            },
            LATENCY.as_secs_f64(),
            true,
            "10/s per user, bursts of 100",
        ),
        (
            "matrix",
            matrix::queue_policy(
                settings(
                    "matrix",
                    "homeserver = \"https://hs.example.org\"\naccess_token = \"t\"",
                )
                .as_any()
                .downcast_ref()
                .expect("matrix"),
            ),
            // Synapse's default `rc_message`: 0.2 per second, bursts of 10, per user
            // (https://element-hq.github.io/synapse/latest/usage/configuration/config_documentation.html#rc_message);
            // retry_after_ms exact.
            Limits::Buckets {
                channel: None,
                account: Some(Bucket::new(10.0, 0.2)),
                whole_seconds: false,
                tells_remaining: false,
            },
            LATENCY.as_secs_f64(),
            true,
            "Synapse default: 0.2/s per user, bursts of 10",
        ),
        (
            "irc",
            irc::queue_policy(
                settings("irc", "server = \"irc.example.net\"\nnick = \"bot\"")
                    .as_any()
                    .downcast_ref()
                    .expect("irc"),
            ),
            // RFC 1459 §8.10 flood control: the server reads 1 line per 2 s past a 10 s
            // allowance (5 lines).
            Limits::Shaped {
                bucket: Bucket::new(5.0, 0.5),
            },
            0.0,
            false,
            "RFC 1459: 1 line per 2 s after 5",
        ),
        (
            "xmpp",
            xmpp::queue_policy(
                settings("xmpp", "jid = \"bot@example.com\"\npassword = \"p\"")
                    .as_any()
                    .downcast_ref()
                    .expect("xmpp"),
            ),
            // prosody mod_limits c2s default: 10 kB/s; a reply stanza is about 300 bytes.
            Limits::Shaped {
                bucket: Bucket::new(33.0, 33.0),
            },
            0.0,
            false,
            "prosody: 10 kB/s (~33 stanzas/s)",
        ),
    ];
    println!(
        "{:<11} {:>9} {:>10} {:>7} {:>6}  limits",
        "platform", "ours (s)", "least (s)", "ratio", "429s"
    );
    for (kind, policy, limits, latency, lanes, what) in rows {
        let (time, refused) = ours(kind, policy, &limits, latency, lanes);
        let least = least_time(&limits, latency);
        println!(
            "{kind:<11} {time:>9.2} {least:>10.2} {:>7.2} {refused:>6}  {what}",
            time / least.max(f64::EPSILON)
        );
    }
}
