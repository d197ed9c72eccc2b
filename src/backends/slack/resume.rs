//! Resuming a Slack Socket Mode link where the last one stood (another bridge process's,
//! after a takeover, or this process's own, after a lost link): which messages were posted
//! meanwhile. Pure functions, unit-tested without a server; the calls are in
//! [`super::api::history_since`].
//!
//! Socket Mode replays nothing to a new websocket: events sent while no connection was open
//! are not replayed to one opened later (https://api.slack.com/apis/connections/socket). So
//! the holder keeps a [`Position`]: since when its links have listened, and per channel the
//! `ts` (in milliseconds) of the newest message it handed on. A new link (this process's after a lost one, or the next
//! holder's, given the position by `resume_from`) asks each channel with a point no older
//! than `max_command_age_secs` (default [`MAX_CATCH_UP_MS`]) what was posted from that point on: `conversations.history`
//! with `channel`, `oldest` (the point), `inclusive`, `limit` and `cursor`
//! (https://api.slack.com/methods/conversations.history; Tier 3, newest first). What it
//! finds ([`missed`]) goes through the same mapping and filters as the live `message`
//! events, oldest first, before the live ones that came meanwhile, each with the id a live
//! event would have had (its `ts`), so the shared store's record of taken messages runs a
//! message delivered both ways once.
//!
//! Replies inside a thread are not in `conversations.history` (only the parents and replies
//! also sent to the channel, `thread_broadcast`). So the position also keeps a point per
//! thread the bridge handed a message on in — a reply's thread, and for a message said
//! outside a thread the thread that may grow under it (its own `ts`: people follow up on a
//! command in its thread, and `extra.slack.thread_response` answers there) — and the new link asks `conversations.replies` (`channel`, `ts` of the thread's root,
//! `oldest`, `inclusive`; https://api.slack.com/methods/conversations.replies, Tier 3) of
//! the [`THREADS_READ`] most recent, after the channels.
//!
//! A thread started while no link listened, under a message the bridge never saw, is found
//! from its parent in the channel's read-back, which lists the `ts` of its latest reply
//! ([`threads_answered`]), and is read back too (at most [`THREADS_READ`] such threads).
//!
//! Limits:
//! - A thread under a message older than the channel's point, that nothing was handed on
//!   in (or not among the most recent), is not caught up.
//! - A channel the bridge never handed a message on in has no point and is not caught up,
//!   nor one whose newest message handed on is older than `max_command_age_secs`: Slack has no
//!   cheap "which channels changed since" call to find them.
//! - Rate limits: `conversations.history` is Tier 3 (50+ calls a minute) for internal and
//!   Marketplace apps, one call a minute (and 15 messages a page) for apps distributed
//!   outside the Marketplace since 2025
//!   (https://docs.slack.dev/reference/methods/conversations.history); a 429 is waited out as `Retry-After` says, within
//!   the catch-up's time budget, and a channel not read by then is skipped with a warning.
//! - Points are milliseconds; `oldest` is asked inclusive, so the message at the point comes
//!   again and is skipped as already taken, and none posted in the same millisecond is lost.

use std::collections::BTreeMap;

use serde_json::{json, Value};

pub use crate::backends::connection::position::{Position, MAX_CATCH_UP_MS};

/// Messages asked for per `conversations.history` page (Slack's default; apps distributed
/// outside the Marketplace get at most 15, and the cursor is followed).
pub const HISTORY_PAGE: u32 = 100;

/// Threads caught up at most (the most recent points first): each costs a call, and a
/// catch-up must stay within its time budget and Slack's rate limits.
pub const THREADS_READ: usize = 16;

/// A thread's key in the position: its channel and the `ts` of its root. Channel ids never
/// hold a `/`.
pub fn thread_key(channel: &str, root: &str) -> String {
    format!("{channel}/{root}")
}

/// What a point of the position is for: a channel's history, or one thread's replies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    /// `conversations.history` of this channel.
    Channel(String),
    /// `conversations.replies` of the thread whose root has `ts` `root` in `channel`.
    Thread {
        /// The channel the thread is in.
        channel: String,
        /// The `ts` of its root message.
        root: String,
    },
}

impl Place {
    /// The place a position key names (see [`thread_key`]).
    pub fn of_key(key: &str) -> Self {
        match key.split_once('/') {
            Some((channel, root)) => Self::Thread {
                channel: channel.to_owned(),
                root: root.to_owned(),
            },
            None => Self::Channel(key.to_owned()),
        }
    }

    /// The channel it is in.
    pub fn channel(&self) -> &str {
        match self {
            Self::Channel(c) | Self::Thread { channel: c, .. } => c,
        }
    }
}

/// Pages read per channel at most: of more than 1,000 messages posted in a channel while no
/// link listened, the newest 1,000 are caught up (pages go from the newest back).
pub const HISTORY_PAGES: usize = 10;

/// A Slack `ts` (`"1700000000.000100"`: seconds and microseconds) as its seconds and
/// microseconds, for exact ordering.
fn ts_parts(ts: &str) -> Option<(u64, u32)> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    let secs = secs.parse::<u64>().ok()?;
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let micros = format!("{frac:0<6}").parse::<u32>().ok()?;
    Some((secs, micros))
}

/// A Slack `ts` in milliseconds since the epoch (rounded down: never after the message).
pub fn ts_ms(ts: &str) -> Option<u64> {
    let (secs, micros) = ts_parts(ts)?;
    secs.checked_mul(1000)?
        .checked_add(u64::from(micros / 1000))
}

/// `ms` as the history methods' `oldest` (a `ts`): asked inclusive, it takes the message
/// whose `ts` was rounded down to `ms`.
pub fn oldest(ms: u64) -> String {
    format!("{}.{:03}000", ms / 1000, ms % 1000)
}

/// The channels and threads to catch up, each with the point it is caught up from: those
/// with a point of their own no older than `floor`, the channels first, then at most
/// [`THREADS_READ`] threads, each the most recent first (none without a position). The point
/// is never before the links started listening: what came earlier was not the bridge's to
/// run.
pub fn rooms_to_fetch(position: &Position, floor: u64) -> Vec<(Place, u64)> {
    if !position.is_known() {
        return Vec::new();
    }
    let listening = position.listening_since().unwrap_or(0);
    let newest_first = |points: &BTreeMap<String, u64>, place: fn(&str) -> Place| {
        let mut due: Vec<(Place, u64)> = points
            .iter()
            .filter(|(_, point)| **point >= floor)
            .map(|(key, point)| (place(key), (*point).max(listening)))
            .collect();
        due.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        due
    };
    let mut places = newest_first(position.rooms(), |id| Place::Channel(id.to_owned()));
    let mut threads = newest_first(position.threads(), Place::of_key);
    threads.truncate(THREADS_READ);
    places.append(&mut threads);
    places
}

/// The threads under `messages` (what `conversations.history` of `channel` listed from
/// `since` on) that were answered from `since` on, each to be read back from `since`: a
/// thread's replies are listed by `conversations.replies` only, and a parent lists its own
/// `ts` as `thread_ts` with `reply_count` and the `ts` of its `latest_reply`
/// (https://api.slack.com/messaging/retrieving#finding_threads). This finds the threads
/// started while no link listened, under messages the bridge never saw, where the points
/// of [`rooms_to_fetch`] cannot lead.
pub fn threads_answered(channel: &str, since: u64, messages: &[Value]) -> Vec<(Place, u64)> {
    messages
        .iter()
        .filter_map(|m| {
            let ts = m.get("ts")?.as_str()?;
            let parent = m.get("thread_ts").and_then(Value::as_str) == Some(ts);
            let replies = m.get("reply_count").and_then(Value::as_u64).unwrap_or(0);
            let latest = m
                .get("latest_reply")
                .and_then(Value::as_str)
                .and_then(ts_ms)?;
            (parent && replies > 0 && latest >= since).then(|| {
                (
                    Place::Thread {
                        channel: channel.to_owned(),
                        root: ts.to_owned(),
                    },
                    since,
                )
            })
        })
        .collect()
}

/// The messages fetched for channels (`conversations.history`' `messages`, with the channel
/// and the point each was asked from) that were posted at or after their channel's point,
/// oldest first, each with its `ts` in milliseconds, shaped as the live `message` event
/// (https://api.slack.com/events/message) so that they are mapped as live ones are: history
/// items carry neither `channel` nor `channel_type`, so both come from the request (`im`
/// for a `D…` channel, else `channel`; the mapping only tells direct from group). A thread's
/// parent lists its own `ts` as `thread_ts` once answered; it was said outside a thread,
/// so that is dropped (a `thread_broadcast` keeps its parent's). Fetched twice, once.
pub fn missed(fetched: Vec<(String, u64, Value)>) -> Vec<(u64, Value)> {
    let mut out: Vec<((u64, u32), String, u64, Value)> = fetched
        .into_iter()
        .filter_map(|(channel, since, mut message)| {
            let ts = message.get("ts")?.as_str()?.to_owned();
            let exact = ts_parts(&ts)?;
            let ms = ts_ms(&ts)?;
            if ms < since {
                return None;
            }
            let fields = message.as_object_mut()?;
            let broadcast =
                fields.get("subtype").and_then(Value::as_str) == Some("thread_broadcast");
            if !broadcast && fields.get("thread_ts").and_then(Value::as_str) == Some(ts.as_str()) {
                fields.remove("thread_ts");
            }
            fields.entry("type").or_insert_with(|| json!("message"));
            let kind = if channel.starts_with('D') {
                "im"
            } else {
                "channel"
            };
            fields.insert("channel_type".into(), json!(kind));
            fields.insert("channel".into(), json!(channel));
            Some((exact, channel, ms, message))
        })
        .collect();
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    out.into_iter()
        .map(|(_, _, ms, event)| (ms, event))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_timestamps_read_as_milliseconds_and_back() {
        assert_eq!(ts_ms("1700000000.000100"), Some(1_700_000_000_000));
        assert_eq!(ts_ms("1700000000.123999"), Some(1_700_000_000_123));
        assert_eq!(ts_ms("1700000000.5"), Some(1_700_000_000_500));
        assert_eq!(ts_ms("1700000000"), Some(1_700_000_000_000));
        assert_eq!(ts_ms("x.1"), None);
        assert_eq!(ts_ms("1.1234567"), None);
        assert_eq!(ts_ms("1.-1"), None);
        // Rounded down, so `oldest` from the point (inclusive) takes the message again.
        let point = ts_ms("1700000000.123999").unwrap();
        assert_eq!(oldest(point), "1700000000.123000");
        assert!(oldest(point).as_str() <= "1700000000.123999");
        assert_eq!(oldest(5), "0.005000");
    }

    #[test]
    fn only_channels_with_a_recent_point_are_caught_up_newest_first() {
        assert!(rooms_to_fetch(&Position::default(), 0).is_empty());
        let mut p = Position::default();
        p.listening(1_000);
        assert!(rooms_to_fetch(&p, 0).is_empty(), "no channel has a point");
        p.note("C0OPS", 5_000);
        p.note("D0ALICE", 7_000);
        p.note("C0OLD", 1_500);
        let channel = |c: &str| Place::Channel(c.to_owned());
        assert_eq!(
            rooms_to_fetch(&p, 2_000),
            [(channel("D0ALICE"), 7_000), (channel("C0OPS"), 5_000)]
        );
        assert_eq!(rooms_to_fetch(&p, 0).len(), 3);
        // A point from before the links listened (a forgotten room moved the start back,
        // or a state from elsewhere) is lifted to the start.
        let q = Position::from_state(&json!({"listening_since": 3_000, "rooms": {"C1": 2_500}}));
        assert_eq!(rooms_to_fetch(&q, 0), [(channel("C1"), 3_000)]);
    }

    #[test]
    fn threads_are_caught_up_after_the_channels_the_most_recent_first_and_not_all() {
        let mut p = Position::default();
        p.listening(1_000);
        p.note("C0OPS", 2_000);
        let root = "1700000000.000100";
        p.note_thread(&thread_key("C0OPS", root), 9_000);
        for n in 0..(THREADS_READ as u64 + 4) {
            p.note_thread(&thread_key("C0DEV", &format!("17.{n}")), 3_000 + n);
        }
        let rooms = rooms_to_fetch(&p, 0);
        assert_eq!(
            rooms.len(),
            1 + THREADS_READ,
            "the channel and the most recent threads"
        );
        assert_eq!(rooms[0], (Place::Channel("C0OPS".to_owned()), 2_000));
        assert_eq!(
            rooms[1],
            (
                Place::Thread {
                    channel: "C0OPS".to_owned(),
                    root: root.to_owned()
                },
                9_000
            )
        );
        assert_eq!(rooms[1].0.channel(), "C0OPS");
        // The oldest threads are left out.
        let last = &rooms[THREADS_READ];
        assert_eq!(last.1, 3_000 + 4 + 1, "{last:?}");
        assert_eq!(Place::of_key("C0OPS"), Place::Channel("C0OPS".to_owned()));
    }

    #[test]
    fn threads_answered_since_the_point_are_found_from_their_parents() {
        let since = ts_ms("1700000005.000000").unwrap();
        let parent = |ts: &str, replies: u64, latest: &str| {
            json!({"type": "message", "user": "U0ALICE", "text": "x", "ts": ts,
                "thread_ts": ts, "reply_count": replies, "latest_reply": latest})
        };
        let messages = [
            parent("1700000006.000000", 2, "1700000007.000000"),
            // Answered before the point only (a parent at the point, read inclusive).
            parent("1700000005.000000", 1, "1700000004.000000"),
            // No replies.
            json!({"type": "message", "text": "y", "ts": "1700000008.000000"}),
            // A reply also sent to the channel: its `thread_ts` is its parent's.
            json!({"type": "message", "subtype": "thread_broadcast", "text": "z",
                "ts": "1700000009.000000", "thread_ts": "1700000001.000000",
                "reply_count": 1, "latest_reply": "1700000009.000000"}),
            parent("1700000010.000000", 0, "1700000010.000000"),
        ];
        assert_eq!(
            threads_answered("C0OPS", since, &messages),
            [(
                Place::Thread {
                    channel: "C0OPS".to_owned(),
                    root: "1700000006.000000".to_owned()
                },
                since
            )]
        );
    }

    #[test]
    fn a_thread_read_back_keeps_its_replies_in_the_thread_and_drops_its_older_root() {
        let point = ts_ms("1700000005.000000").unwrap();
        let root = json!({"type": "message", "user": "U0ALICE", "text": "root",
            "ts": "1700000001.000000", "thread_ts": "1700000001.000000", "reply_count": 1});
        let reply = json!({"type": "message", "user": "U0ALICE", "text": "!st2 run x",
            "ts": "1700000006.000000", "thread_ts": "1700000001.000000"});
        let got = missed(vec![
            ("C0OPS".to_owned(), point, root),
            ("C0OPS".to_owned(), point, reply),
        ]);
        assert_eq!(got.len(), 1, "the root is older than the point");
        assert_eq!(got[0].1["text"], "!st2 run x");
        assert_eq!(
            got[0].1["thread_ts"], "1700000001.000000",
            "answered in its thread"
        );
        assert_eq!(got[0].1["channel"], "C0OPS");
    }

    #[test]
    fn what_was_posted_from_the_point_on_comes_oldest_first_as_live_events() {
        let point = ts_ms("1700000001.000000").unwrap();
        let m = |ts: &str, text: &str| json!({"type": "message", "user": "U0ALICE", "text": text, "ts": ts, "team": "T1"});
        let mut parent = m("1700000002.000500", "a thread's parent");
        parent["thread_ts"] = json!("1700000002.000500");
        parent["reply_count"] = json!(2);
        let mut broadcast = m("1700000002.000900", "also to the channel");
        broadcast["subtype"] = json!("thread_broadcast");
        broadcast["thread_ts"] = json!("1700000000.000001");
        let fetched = vec![
            // conversations.history answers newest first.
            ("C0OPS".to_owned(), point, m("1700000003.000000", "third")),
            ("C0OPS".to_owned(), point, broadcast),
            ("C0OPS".to_owned(), point, parent),
            // Two in one millisecond: both, in their order.
            (
                "C0OPS".to_owned(),
                point,
                m("1700000001.000200", "at the point, later"),
            ),
            (
                "C0OPS".to_owned(),
                point,
                m("1700000001.000100", "at the point"),
            ),
            // Before the point (asked a little earlier): not new.
            ("C0OPS".to_owned(), point, m("1700000000.999000", "before")),
            (
                "D0ALICE".to_owned(),
                point - 500,
                m("1700000002.000000", "direct"),
            ),
            // Fetched twice: once.
            (
                "D0ALICE".to_owned(),
                point - 500,
                m("1700000002.000000", "direct"),
            ),
            ("C0OPS".to_owned(), 0, json!({"text": "no ts"})),
            ("C0OPS".to_owned(), 0, json!({"ts": "soon"})),
        ];
        let got = missed(fetched);
        let texts: Vec<&str> = got
            .iter()
            .map(|(_, e)| e["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            texts,
            [
                "at the point",
                "at the point, later",
                "direct",
                "a thread's parent",
                "also to the channel",
                "third"
            ]
        );
        assert_eq!(got[0].0, point);
        assert_eq!(got[0].1["channel"], "C0OPS");
        assert_eq!(got[0].1["channel_type"], "channel");
        assert_eq!(got[0].1["type"], "message");
        assert_eq!(got[2].1["channel"], "D0ALICE");
        assert_eq!(got[2].1["channel_type"], "im");
        assert!(got[3].1.get("thread_ts").is_none(), "{}", got[3].1);
        assert_eq!(got[4].1["thread_ts"], "1700000000.000001");
        // They read as the live events do.
        let event: super::super::wire::Event = serde_json::from_value(got[5].1.clone()).unwrap();
        assert_eq!(event.kind, "message");
        assert_eq!(event.channel.as_deref(), Some("C0OPS"));
        assert_eq!(event.ts.as_deref(), Some("1700000003.000000"));
        assert!(missed(Vec::new()).is_empty());
    }
}
