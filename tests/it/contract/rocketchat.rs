//! Rocket.Chat against the contract: the fake Rocket.Chat (`fake_rocketchat.rs`).

use std::time::Duration;

use super::{
    cases,
    harness::{announce_room, wait_for, Contract, Posted, RateLimit, Support, Unit, Where},
};
use crate::{
    rocketchat::fake::{FakeRocketChat, ALICE, BOT, GENERAL, OTHER_BOT},
    support::{with_test_aliases, TestBridge},
};

pub struct RocketChatContract {
    fake: FakeRocketChat,
    b: TestBridge,
    /// The direct room of alice and the bot.
    dm: String,
    /// The direct room of the other bot and the bot.
    other_dm: String,
}

impl RocketChatContract {
    async fn start() -> Self {
        let fake = FakeRocketChat::start().await;
        let mut opts = with_test_aliases();
        opts.extra_toml = fake.chat_toml("max_message_length = 300");
        let b = TestBridge::start_with(opts).await;
        b.wait_ready(200).await;
        let dm = fake.direct_room(ALICE, BOT);
        let other_dm = fake.direct_room(OTHER_BOT, BOT);
        Self {
            fake,
            b,
            dm,
            other_dm,
        }
    }
}

impl Contract for RocketChatContract {
    const PLATFORM: &'static str = "rocketchat";

    fn bridge(&self) -> &TestBridge {
        &self.b
    }

    fn connection(&self) -> &str {
        "rc"
    }

    fn room(&self) -> String {
        GENERAL.into()
    }

    fn user_id(&self) -> String {
        ALICE.into()
    }

    fn mention(&self) -> String {
        "@stormbot".into()
    }

    fn limit(&self) -> (usize, Unit) {
        (300, Unit::Chars)
    }

    async fn say(&mut self, text: &str) -> Option<String> {
        Some(self.fake.post_as(ALICE, GENERAL, text, None))
    }

    async fn say_direct(&mut self, text: &str) {
        self.fake.post_as(ALICE, &self.dm, text, None);
    }

    fn threads(&self) -> Support {
        Support::Yes
    }

    async fn start_thread(&mut self) -> String {
        self.fake
            .post_as(ALICE, GENERAL, "a thread about the deploy", None)
    }

    async fn say_in_thread(&mut self, thread: &str, text: &str) {
        self.fake.post_as(ALICE, GENERAL, text, Some(thread));
    }

    fn other_bots(&self) -> Support {
        Support::Yes
    }

    /// An integration's account says it to the bot directly and in the room (the fake
    /// streams each message to the bot's socket at once, in order).
    async fn other_bot_says(&mut self, text: &str) {
        self.fake.post_as(OTHER_BOT, &self.other_dm, text, None);
        self.fake.post_as(OTHER_BOT, GENERAL, text, None);
    }

    /// The bridge posts it (the stream sends the bot's own message back, as Rocket.Chat
    /// does), and another client on the bot's account says it too.
    async fn own_account_says(&mut self, text: &str) {
        announce_room(self, text);
        wait_for(self, "the bot's own message", |m| {
            m.iter()
                .any(|p| p.place == Where::Room && p.text.contains(text))
        })
        .await;
        self.fake.post_as(BOT, GENERAL, text, None);
    }

    async fn bot_messages(&mut self) -> Vec<Posted> {
        self.fake
            .bot_messages()
            .into_iter()
            .map(|m| {
                let rid = m.str("rid");
                let place = if rid == GENERAL {
                    match m.str("tmid") {
                        "" => Where::Room,
                        tmid => Where::Thread(tmid.to_owned()),
                    }
                } else if rid == self.dm {
                    Where::Direct
                } else {
                    Where::Elsewhere(rid.to_owned())
                };
                Posted {
                    place,
                    text: m.str("msg").to_owned(),
                }
            })
            .collect()
    }

    fn outage(&self) -> Support {
        Support::Yes
    }

    async fn go_away(&mut self) {
        self.fake.refuse_websockets(true);
        self.fake.drop_websockets();
    }

    async fn come_back(&mut self) {
        self.fake.refuse_websockets(false);
    }

    fn rate_limit(&self) -> RateLimit {
        RateLimit::Window
    }

    async fn arm_rate_window(&mut self, window: Duration) {
        self.fake.rate_limit_window(window);
    }

    fn rate_limited(&self) -> usize {
        self.fake.rate_limited_at().len()
    }
}

#[actix_rt::test]
async fn rocketchat_keeps_the_contract() {
    let mut p = RocketChatContract::start().await;
    cases::run_all(&mut p).await;
}
