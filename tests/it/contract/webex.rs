//! Webex against the contract: the fake Webex (`webex/fake.rs`), which delivers its webhooks
//! to the bridge, signed, at the `targetUrl` the bridge registered.
//!
//! In a group room Webex delivers a bot only the messages that mention it, so a person who
//! wants the bot there addresses it: [`Contract::say`] in the room is a message with a
//! mention of the bot first, as a Webex client makes it when one types `@StormBot`.

use std::time::Duration;

use super::{
    cases,
    harness::{announce_room, wait_for, Contract, Posted, RateLimit, Support, Unit, Where},
};
use crate::{
    support::{with_test_aliases, TestBridge},
    webex::{
        bridge,
        fake::{FakeWebex, BOT_NAME},
    },
};

/// The message-size limit the bridge is given here, in bytes.
const LIMIT: usize = 300;

pub struct WebexContract {
    fake: FakeWebex,
    b: TestBridge,
    /// The 1:1 room of alice and the bot.
    dm: String,
}

impl WebexContract {
    async fn start() -> Self {
        let fake = FakeWebex::start().await;
        let (b, _public) = bridge(
            &fake,
            with_test_aliases(),
            &format!("max_message_bytes = {LIMIT}"),
        )
        .await;
        b.wait_ready(200).await;
        let dm = fake.direct_room(&fake.alice_id);
        Self { fake, b, dm }
    }

    /// `text` without a leading mention of the bot, and whether it had one.
    fn unmentioned(text: &str) -> (&str, bool) {
        match text.strip_prefix(BOT_NAME) {
            Some(rest) => (rest.trim_start(), true),
            None => (text, false),
        }
    }
}

impl Contract for WebexContract {
    const PLATFORM: &'static str = "webex";

    fn bridge(&self) -> &TestBridge {
        &self.b
    }

    fn connection(&self) -> &str {
        "wx"
    }

    fn room(&self) -> String {
        self.fake.ops.clone()
    }

    fn user_id(&self) -> String {
        self.fake.alice_id.clone()
    }

    fn mention(&self) -> String {
        BOT_NAME.into()
    }

    fn limit(&self) -> (usize, Unit) {
        (LIMIT, Unit::Bytes)
    }

    async fn say(&mut self, text: &str) -> Option<String> {
        let (text, _) = Self::unmentioned(text);
        let f = &self.fake;
        Some(f.post(&f.alice_id, &f.ops, text, None, true).await)
    }

    async fn say_direct(&mut self, text: &str) {
        let (text, mention) = Self::unmentioned(text);
        let f = &self.fake;
        f.post(&f.alice_id, &self.dm, text, None, mention).await;
    }

    fn threads(&self) -> Support {
        Support::Yes
    }

    /// A message in the room that does not address the bot (Webex does not deliver it).
    async fn start_thread(&mut self) -> String {
        let f = &self.fake;
        f.post(
            &f.alice_id,
            &f.ops,
            "a thread about the deploy",
            None,
            false,
        )
        .await
    }

    async fn say_in_thread(&mut self, thread: &str, text: &str) {
        let (text, _) = Self::unmentioned(text);
        let f = &self.fake;
        f.post(&f.alice_id, &f.ops, text, Some(thread), true).await;
    }

    fn other_bots(&self) -> Support {
        Support::Yes
    }

    /// Another bot addresses the bot in the room and in its 1:1 room with it (each delivered
    /// before `post` returns).
    async fn other_bot_says(&mut self, text: &str) {
        let f = &self.fake;
        f.post(&f.other_bot_id, &f.ops, text, None, true).await;
        let other_dm = f.direct_room(&f.other_bot_id);
        f.post(&f.other_bot_id, &other_dm, text, None, false).await;
    }

    /// The bridge posts it, Webex tells the bot about its own message, and another client on
    /// the bot's account posts it addressed to the bot.
    async fn own_account_says(&mut self, text: &str) {
        announce_room(self, text);
        wait_for(self, "the bot's own message", |m| {
            m.iter()
                .any(|p| p.place == Where::Room && p.text.contains(text))
        })
        .await;
        let f = &self.fake;
        let own = f
            .bot_messages()
            .into_iter()
            .rev()
            .find(|m| m["text"].as_str().unwrap_or_default().contains(text))
            .and_then(|m| m["id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        f.redeliver_message(&own).await;
        f.post(&f.bot_id, &f.ops, text, None, true).await;
    }

    async fn bot_messages(&mut self) -> Vec<Posted> {
        let f = &self.fake;
        f.bot_messages()
            .into_iter()
            .map(|m| {
                let room = m["roomId"].as_str().unwrap_or_default();
                let place = if room == f.ops {
                    match m["parentId"].as_str() {
                        Some(parent) => Where::Thread(parent.to_owned()),
                        None => Where::Room,
                    }
                } else if room == self.dm {
                    Where::Direct
                } else {
                    Where::Elsewhere(room.to_owned())
                };
                Posted {
                    place,
                    text: m["text"].as_str().unwrap_or_default().to_owned(),
                }
            })
            .collect()
    }

    fn outage(&self) -> Support {
        Support::Yes
    }

    /// Webex answers every call with a 503.
    async fn go_away(&mut self) {
        self.fake.set_away(true);
    }

    async fn come_back(&mut self) {
        self.fake.set_away(false);
    }

    fn rate_limit(&self) -> RateLimit {
        RateLimit::Window
    }

    async fn arm_rate_window(&mut self, window: Duration) {
        self.fake.rate_limit_window(window);
    }

    fn rate_limited(&self) -> usize {
        self.fake.rate_limited()
    }
}

#[actix_rt::test]
async fn webex_keeps_the_contract() {
    let mut p = WebexContract::start().await;
    cases::run_all(&mut p).await;
}
