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
//! server: the limits are the platforms' documented ones, cited below. Where a platform
//! publishes none (Webex; Rocket.Chat for a bot account, which bypasses its limiter), the
//! server refuses nothing and the row shows what the bridge's own pace costs. Teams also
//! runs with `send_interval_ms = 2100`, the single pace that was its default before the
//! conversation windows, for comparison.
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

/// How far apart two instants may be and still count as one: the queue keeps time in
/// nanosecond `Instant`s, the server models in `f64` seconds, and converting between the two
/// rounds. Far below any real server's resolution.
const EPS: f64 = 1e-6;

/// Sliding windows on the simulated clock, all at once: at most `count` requests in any
/// `period` seconds (Teams).
#[derive(Clone)]
struct Sliding {
    windows: Vec<(usize, f64)>,
    /// When each accepted request came, oldest first.
    sent: Vec<f64>,
}

impl Sliding {
    fn new(windows: &[(usize, f64)]) -> Self {
        Self {
            windows: windows.to_vec(),
            sent: Vec::new(),
        }
    }

    /// Time until every window has room (0 when they all have now): a window is full while
    /// its `count`-th latest request is less than `period` ago.
    fn wait(&self, t: f64) -> f64 {
        self.windows
            .iter()
            .map(|&(count, period)| {
                let inside: Vec<f64> = self
                    .sent
                    .iter()
                    .copied()
                    .filter(|s| t - s < period - EPS)
                    .collect();
                match inside.len().checked_sub(count) {
                    Some(i) => inside[i] + period - t,
                    None => 0.0,
                }
            })
            .fold(0.0, f64::max)
    }

    fn take(&mut self, t: f64) {
        self.sent.push(t);
    }
}

/// A fixed window of `limit` requests per `window` seconds (Discord's route buckets;
/// Rocket.Chat's REST limiter), started by the first request after the last one ended.
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
    /// Per channel and for the whole app, sliding windows (Teams); a request over them is
    /// answered 429 with `Retry-After` in whole seconds.
    Windows { channel: Sliding, app: Sliding },
    /// For the whole account a fixed window, told in `X-RateLimit-Remaining` and
    /// `X-RateLimit-Reset` (Rocket.Chat's REST limiter); over it, 429 naming the whole
    /// seconds to wait.
    AccountWindow { window: Window },
    /// No published limit to model: every request is accepted (Webex; Rocket.Chat for an
    /// account that bypasses the limiter).
    Unpublished,
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
        (Limits::Windows { app, .. }, Limits::Windows { channel: ch, .. }) => {
            let wait = ch.wait(t).max(app.wait(t));
            if wait > 0.0 {
                server.refused += 1;
                return (
                    Outcome::RateLimited(Duration::from_secs_f64(wait.ceil())),
                    None,
                );
            }
            ch.take(t);
            app.take(t);
            (Outcome::Sent { pause: None }, Some(t))
        }
        (Limits::AccountWindow { window }, _) => {
            window.roll(t);
            if window.used >= window.limit {
                server.refused += 1;
                let wait = (window.resets - t).ceil();
                return (Outcome::RateLimited(Duration::from_secs_f64(wait)), None);
            }
            window.used += 1;
            // `X-RateLimit-Remaining: 0`, with `X-RateLimit-Reset` in milliseconds.
            let pause = (window.used == window.limit)
                .then(|| Duration::from_secs_f64((window.resets - t).max(0.0)));
            (Outcome::Sent { pause }, Some(t))
        }
        (Limits::Unpublished, _) => (Outcome::Sent { pause: None }, Some(t)),
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

/// A Teams table with its required keys; everything else at its default.
const TEAMS: &str = "app_id = \"a\"\ntenant_id = \"t\"\napp_password = \"p\"";

/// Teams' queue policy for its required keys and `more`; everything else at its default.
fn teams_policy(more: &str) -> QueuePolicy {
    stormbridge::backends::teams::queue_policy(
        settings("teams", &format!("{TEAMS}{more}"))
            .as_any()
            .downcast_ref()
            .expect("teams"),
    )
}

/// A Rocket.Chat table with its required keys.
const ROCKETCHAT: &str =
    "server_url = \"https://chat.example.com\"\nuser_id = \"u\"\ntoken = \"t\"";

/// Teams' "per bot per thread" limits for sending to a conversation — 7 per second, 8 per
/// 2 s, 60 per 30 s, 1800 per hour, all at once — and 50 requests per second per app per
/// tenant (https://learn.microsoft.com/microsoftteams/platform/bots/how-to/rate-limit),
/// counted in sliding windows, the strictest reading; 429 with `Retry-After` beyond them.
fn teams_limits() -> Limits {
    Limits::Windows {
        channel: Sliding::new(&[(7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0)]),
        app: Sliding::new(&[(50, 1.0)]),
    }
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
        (
            "teams",
            teams_policy(""),
            teams_limits(),
            LATENCY.as_secs_f64(),
            true,
            "7/1 s, 8/2 s, 60/30 s, 1800/h per conversation, 50/s per app",
        ),
        (
            "teams (2100 ms)",
            teams_policy("\nsend_interval_ms = 2100"),
            teams_limits(),
            LATENCY.as_secs_f64(),
            true,
            "the same; the former default: 7, then one per 2.1 s",
        ),
        (
            "webex",
            webex::queue_policy(
                settings(
                    "webex",
                    "token = \"t\"\npublic_url = \"https://bridge.example.com\"\nwebhook_secret = \"s\"",
                )
                .as_any()
                .downcast_ref()
                .expect("webex"),
            ),
            // Webex publishes no figures: limits vary by resource and load, and a request
            // over them is answered 429 with `Retry-After` ("Rate Limiting" in
            // https://developer.webex.com/docs/basics, and the Webex developer blog's "Rate
            // Limiting and the Webex API"). Nothing to model but that: the server refuses
            // nothing, and the row shows what the bridge's own guess costs.
            Limits::Unpublished,
            LATENCY.as_secs_f64(),
            true,
            "none published (429 + Retry-After)",
        ),
        (
            "rocketchat",
            rocketchat::queue_policy(
                settings("rocketchat", ROCKETCHAT)
                    .as_any()
                    .downcast_ref()
                    .expect("rocketchat"),
            ),
            // The REST API's limiter: per endpoint (here chat.postMessage) and client, 10
            // calls per 60,000 ms by default ("Default number calls to the rate limiter",
            // "Default time limit for the rate limiter", https://docs.rocket.chat/docs/rate-limiter),
            // a fixed window that Meteor's RateLimiter restarts with the first call after it
            // ended (meteor/packages/rate-limit); X-RateLimit-Remaining and -Reset on every
            // answer, 429 naming the seconds to wait.
            Limits::AccountWindow {
                window: Window {
                    limit: 10,
                    window: 60.0,
                    used: 0,
                    resets: 0.0,
                },
            },
            LATENCY.as_secs_f64(),
            true,
            "REST limiter default: 10 per 60 s per endpoint",
        ),
        (
            "rocketchat (bot)",
            rocketchat::queue_policy(
                settings("rocketchat", ROCKETCHAT)
                    .as_any()
                    .downcast_ref()
                    .expect("rocketchat"),
            ),
            // An account with the `bot` role bypasses that limiter by default (the
            // `api-bypass-rate-limit` permission is granted to admin, bot and app).
            Limits::Unpublished,
            LATENCY.as_secs_f64(),
            true,
            "bot role: api-bypass-rate-limit, no limit",
        ),
    ];
    println!(
        "{:<17} {:>9} {:>10} {:>7} {:>6}  limits",
        "platform", "ours (s)", "least (s)", "ratio", "429s"
    );
    for (kind, policy, limits, latency, lanes, what) in rows {
        let (time, refused) = ours(kind, policy, &limits, latency, lanes);
        let least = least_time(&limits, latency);
        println!(
            "{kind:<17} {time:>9.2} {least:>10.2} {:>7.2} {refused:>6}  {what}",
            time / least.max(f64::EPSILON)
        );
    }
}
