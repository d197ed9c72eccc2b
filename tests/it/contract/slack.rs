//! Slack against the contract: the fake Slack (`slack/fake.rs`) in Socket Mode.

use std::time::Duration;

use super::{
    cases,
    harness::{announce_room, wait_for, Contract, Posted, RateLimit, Support, Unit, Where},
};
use crate::{
    slack::fake::{text_of, FakeSlack, BOT_ID, BOT_USER},
    support::{with_test_aliases, TestBridge},
};

const ALICE: &str = "U0ALICE";
const ROOM: &str = "C0OPS";
/// The direct conversation the fake opens for alice (`conversations.open`).
const DM: &str = "D0ALICE";

pub struct SlackContract {
    slack: FakeSlack,
    b: TestBridge,
}

impl SlackContract {
    async fn start() -> Self {
        let slack = FakeSlack::start().await;
        let mut opts = with_test_aliases();
        // `socket_toml` sets max_message_length = 300.
        opts.extra_toml = slack.socket_toml();
        let b = TestBridge::start_with(opts).await;
        b.wait_ready(200).await;
        Self { slack, b }
    }

    /// alice says `text` in `channel` (in `thread`); the message's `ts`.
    async fn alice_says(&self, channel: &str, text: &str, thread: Option<&str>) -> String {
        let event = self.slack.message_event(channel, ALICE, text, thread);
        let ts = event["event"]["ts"].as_str().unwrap_or_default().to_owned();
        self.slack.push(event).await;
        ts
    }
}

impl Contract for SlackContract {
    const PLATFORM: &'static str = "slack";

    fn bridge(&self) -> &TestBridge {
        &self.b
    }

    fn connection(&self) -> &str {
        "slack"
    }

    fn room(&self) -> String {
        ROOM.into()
    }

    fn user_id(&self) -> String {
        ALICE.into()
    }

    fn mention(&self) -> String {
        format!("<@{BOT_USER}>")
    }

    fn limit(&self) -> (usize, Unit) {
        (300, Unit::Chars)
    }

    async fn say(&mut self, text: &str) -> Option<String> {
        Some(self.alice_says(ROOM, text, None).await)
    }

    async fn say_direct(&mut self, text: &str) {
        self.alice_says(DM, text, None).await;
    }

    fn threads(&self) -> Support {
        Support::Yes
    }

    async fn start_thread(&mut self) -> String {
        self.alice_says(ROOM, "a thread about the deploy", None)
            .await
    }

    async fn say_in_thread(&mut self, thread: &str, text: &str) {
        self.alice_says(ROOM, text, Some(thread)).await;
    }

    fn other_bots(&self) -> Support {
        Support::Yes
    }

    /// Another app says it, as a `bot_message` and as an app's bot user (the fake sends
    /// each envelope on the bot's socket at once, in order).
    async fn other_bot_says(&mut self, text: &str) {
        let s = &self.slack;
        s.push(s.bot_event(ROOM, "B0OTHER", None, text)).await;
        s.push(s.bot_event(ROOM, "B0OTHER", Some("U0OTHERBOT"), text))
            .await;
    }

    /// The bridge posts it, and the bot's own messages arrive as events: as its bot user
    /// with its `bot_id`, and as its user without one. (The fake does not echo posts as
    /// events by itself; Slack does, so they are sent here.)
    async fn own_account_says(&mut self, text: &str) {
        announce_room(self, text);
        wait_for(self, "the bot's own post", |m| {
            m.iter()
                .any(|p| p.place == Where::Room && p.text.contains(text))
        })
        .await;
        let s = &self.slack;
        s.push(s.bot_event(ROOM, BOT_ID, Some(BOT_USER), text))
            .await;
        let mut own = s.message_event(ROOM, BOT_USER, text, None);
        if let Some(e) = own["event"].as_object_mut() {
            e.remove("bot_id");
        }
        s.push(own).await;
    }

    async fn bot_messages(&mut self) -> Vec<Posted> {
        self.slack
            .posts()
            .iter()
            .map(|p| {
                let channel = p["channel"].as_str().unwrap_or_default();
                let place = match (channel, p["thread_ts"].as_str()) {
                    (ROOM, Some(ts)) => Where::Thread(ts.to_owned()),
                    (ROOM, None) => Where::Room,
                    (DM, _) => Where::Direct,
                    (other, _) => Where::Elsewhere(other.to_owned()),
                };
                Posted {
                    place,
                    text: text_of(p),
                }
            })
            .collect()
    }

    fn outage(&self) -> Support {
        Support::Yes
    }

    async fn go_away(&mut self) {
        self.slack.refuse_sockets(true);
        self.slack.drop_connections().await;
    }

    async fn come_back(&mut self) {
        self.slack.refuse_sockets(false);
    }

    fn rate_limit(&self) -> RateLimit {
        RateLimit::Window
    }

    async fn arm_rate_window(&mut self, window: Duration) {
        self.slack.rate_limit_window(window);
    }

    fn rate_limited(&self) -> usize {
        self.slack
            .calls("chat.postMessage")
            .iter()
            .filter(|c| c.status == 429)
            .count()
    }
}

#[actix_rt::test]
async fn slack_keeps_the_contract() {
    let mut p = SlackContract::start().await;
    cases::run_all(&mut p).await;
}
