//! What a platform adapter gives the contract: a way to act as a user (and as another bot)
//! on the platform's server or fake, to read what the bot posted and where, to take the
//! server away and bring it back, and to trip its rate limit. The cases in `cases.rs` are
//! written against this trait only.
//!
//! Everything here runs on the test's single-threaded actix runtime: `async fn` in the
//! trait, no `Send` bounds.

use std::time::Duration;

use serde_json::json;

use crate::support::{TestBridge, WAIT};

/// Where a bot message landed, as the test user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Where {
    /// The test room, not in a thread.
    Room,
    /// The test room, in the thread (Slack `thread_ts`, Mattermost `root_id`, Matrix
    /// `m.thread`) or, on Discord, the reply to the message with this id.
    Thread(String),
    /// The direct chat between the test user and the bot.
    Direct,
    /// Anywhere else (another room, another user's direct chat): never expected.
    Elsewhere(String),
}

/// A message the bot posted.
#[derive(Debug, Clone)]
pub struct Posted {
    pub place: Where,
    /// The text as the user reads it (for Slack, with its attachments' text).
    pub text: String,
}

/// Whether a platform can do something the contract asks for; when it cannot, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Yes,
    No(&'static str),
}

/// How a platform limits the bot's sending rate, and so what the rate-limit case checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// The fake's next send opens a window in which every send is answered with a 429 that
    /// says how long is left ([`Contract::arm_rate_window`]): a bridge that waits as told is
    /// refused exactly once.
    Window,
    /// The real server limits the bot by itself (Synapse's `rc_message`): its 429s are
    /// counted on the way ([`Contract::rate_limited`]).
    Server,
    /// The platform's server has no rate limit the test can trip; what is left to check is
    /// the bridge's own pacing (why, in the text).
    Pacing(&'static str),
}

/// How a platform measures its message-size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Chars,
}

impl Unit {
    pub fn measure(self, text: &str) -> usize {
        match self {
            Unit::Bytes => text.len(),
            Unit::Chars => text.chars().count(),
        }
    }
}

/// One platform, with its server (or fake) and a bridge connected to it by one `[[chat]]`
/// connection, as the contract's cases drive it.
pub trait Contract {
    /// The platform's name in reports.
    const PLATFORM: &'static str;

    fn bridge(&self) -> &TestBridge;
    /// The `[[chat]] name` of the connection under test.
    fn connection(&self) -> &str;
    /// The test room's id, as an announcement's `channel` names it after `<connection>:`.
    fn room(&self) -> String;
    /// The test user's id, as StackStorm sees it (the `user` of a whisper).
    fn user_id(&self) -> String;
    /// How a user starts a message addressed to the bot (`stormbridge:`, `<@U0BOT>`).
    fn mention(&self) -> String;
    /// The message-size limit the bridge was configured with for this test, and its unit.
    fn limit(&self) -> (usize, Unit);
    /// How long to wait for something to happen (a real Synapse is slower than a fake).
    fn patience(&self) -> Duration {
        WAIT
    }

    /// The test user says `text` in the room; the message's id where the platform has one.
    async fn say(&mut self, text: &str) -> Option<String>;
    /// The test user says `text` in the direct chat with the bot.
    async fn say_direct(&mut self, text: &str);
    /// Where the bot answers a command said in the room, outside any thread: the room
    /// itself, or (Discord) a reply to the command.
    fn answer_place(&self, said: Option<&str>) -> Where {
        let _ = said;
        Where::Room
    }

    /// Whether the platform has threads.
    fn threads(&self) -> Support;
    /// The test user starts a thread in the room; its id.
    async fn start_thread(&mut self) -> String {
        unreachable!("{} has no threads", Self::PLATFORM)
    }
    /// The test user says `text` in the thread `thread`.
    async fn say_in_thread(&mut self, thread: &str, text: &str) {
        let _ = (thread, text);
        unreachable!("{} has no threads", Self::PLATFORM)
    }

    /// Whether another bot (and the bridge's own account) can speak in the room.
    fn other_bots(&self) -> Support;
    /// Another bot says `text` in the room (and, where it can, to the bot directly); returns
    /// once the bridge has had it, as far as the test can tell.
    async fn other_bot_says(&mut self, text: &str) {
        let _ = text;
        unreachable!("{} has no other bots", Self::PLATFORM)
    }
    /// The bridge's own account says `text` in the room. By default the bridge itself posts
    /// it (an announcement), and it comes back to the bridge as the platform echoes the
    /// bot's own messages; returns once the test user sees it.
    async fn own_account_says(&mut self, text: &str) {
        announce_room(self, text);
        wait_for(self, &format!("the bot's own {text:?}"), |msgs| {
            msgs.iter()
                .any(|m| m.place == Where::Room && m.text.contains(text))
        })
        .await;
    }

    /// Everything the bot has posted that the test user can see, oldest first.
    async fn bot_messages(&mut self) -> Vec<Posted>;

    /// Whether the server can be taken away from the bridge.
    fn outage(&self) -> Support;
    /// The server becomes unavailable to the bridge (connections dropped, new ones refused).
    async fn go_away(&mut self) {
        unreachable!("{} has no server to take away", Self::PLATFORM)
    }
    /// The server is available again.
    async fn come_back(&mut self) {
        unreachable!("{} has no server to take away", Self::PLATFORM)
    }
    /// After [`Contract::come_back`], once the connection is up again: waits until the
    /// test user sees the bot back where it listens, on platforms where what is said before
    /// then never reaches it (IRC and XMPP rooms keep no backlog for a bot that was away:
    /// the bot is `up` when the server has registered it, and in the room a moment later).
    async fn sees_bot_back(&mut self) {}

    /// How the platform limits the bot's rate.
    fn rate_limit(&self) -> RateLimit;
    /// [`RateLimit::Window`]: the next send opens a window of `window` in which every send
    /// is refused with a 429 saying how long is left.
    async fn arm_rate_window(&mut self, window: Duration) {
        let _ = window;
        unreachable!("{} has no rate-limit window", Self::PLATFORM)
    }
    /// The 429s the server has answered the bot's sends with so far.
    fn rate_limited(&self) -> usize {
        0
    }
}

/// The announcement `channel` of the test room.
pub fn room_channel<P: Contract + ?Sized>(p: &P) -> String {
    format!("{}:{}", p.connection(), p.room())
}

/// StackStorm announces `text` for the test room.
pub fn announce_room<P: Contract + ?Sized>(p: &P, text: &str) {
    p.bridge().emulator.announce(
        "stormbridge",
        json!({"message": text, "channel": room_channel(p)}),
    );
}

/// StackStorm announces `text` as a whisper to the test user (said about the test room).
pub fn whisper<P: Contract + ?Sized>(p: &P, text: &str) {
    p.bridge().emulator.announce(
        "stormbridge",
        json!({"message": text, "channel": room_channel(p), "user": p.user_id(), "whisper": true}),
    );
}

/// Reads the bot's messages until `done` holds for them (bounded by the platform's
/// patience); panics with `what` and everything seen otherwise.
pub async fn wait_for<P: Contract + ?Sized>(
    p: &mut P,
    what: &str,
    done: impl Fn(&[Posted]) -> bool,
) -> Vec<Posted> {
    let mut msgs;
    let found = eventually!(p.patience(), {
        msgs = p.bot_messages().await;
        done(&msgs)
    });
    assert!(
        found,
        "{}: never saw {what}; the bot posted: {msgs:#?}",
        P::PLATFORM
    );
    msgs
}

/// The index of the first message in `place` containing every one of `needles`.
pub fn find(msgs: &[Posted], place: &Where, needles: &[&str]) -> Option<usize> {
    msgs.iter()
        .position(|m| &m.place == place && needles.iter().all(|n| m.text.contains(n)))
}

/// How many messages anywhere contain `needle`.
pub fn count(msgs: &[Posted], needle: &str) -> usize {
    msgs.iter().filter(|m| m.text.contains(needle)).count()
}
