//! Mattermost against the contract: the fake Mattermost (`fake_mattermost.rs`).

use std::time::Duration;

use super::{
    cases,
    harness::{announce_room, wait_for, Contract, Posted, RateLimit, Support, Unit, Where},
};
use crate::{
    fake_mattermost::FakeMattermost,
    support::{with_test_aliases, TestBridge},
};

pub struct MattermostContract {
    fake: FakeMattermost,
    b: TestBridge,
    /// The direct channel between alice and the bot.
    dm: String,
    /// A direct channel between the other bot and the bot.
    other_dm: String,
}

impl MattermostContract {
    async fn start() -> Self {
        let fake = FakeMattermost::start().await;
        let mut opts = with_test_aliases();
        opts.extra_toml = fake.chat_toml("max_message_length = 300");
        let b = TestBridge::start_with(opts).await;
        b.wait_ready(200).await;
        let dm = fake.direct_channel(&fake.alice_id, &fake.bot_id);
        let other_dm = fake.direct_channel(&fake.other_bot_id, &fake.bot_id);
        Self {
            fake,
            b,
            dm,
            other_dm,
        }
    }
}

impl Contract for MattermostContract {
    const PLATFORM: &'static str = "mattermost";

    fn bridge(&self) -> &TestBridge {
        &self.b
    }

    fn connection(&self) -> &str {
        "mm"
    }

    fn room(&self) -> String {
        self.fake.town_square.clone()
    }

    fn user_id(&self) -> String {
        self.fake.alice_id.clone()
    }

    fn mention(&self) -> String {
        "@stormbot".into()
    }

    fn limit(&self) -> (usize, Unit) {
        (300, Unit::Chars)
    }

    async fn say(&mut self, text: &str) -> Option<String> {
        let f = &self.fake;
        Some(f.post_as(&f.alice_id, &f.town_square, text, ""))
    }

    async fn say_direct(&mut self, text: &str) {
        let f = &self.fake;
        f.post_as(&f.alice_id, &self.dm, text, "");
    }

    fn threads(&self) -> Support {
        Support::Yes
    }

    async fn start_thread(&mut self) -> String {
        let f = &self.fake;
        f.post_as(&f.alice_id, &f.town_square, "a thread about the deploy", "")
    }

    async fn say_in_thread(&mut self, thread: &str, text: &str) {
        let f = &self.fake;
        f.post_as(&f.alice_id, &f.town_square, text, thread);
    }

    fn other_bots(&self) -> Support {
        Support::Yes
    }

    /// A bot account says it in the channel and to the bot directly (the fake sends each
    /// `posted` event on the bot's websocket at once, in order).
    async fn other_bot_says(&mut self, text: &str) {
        let f = &self.fake;
        f.post_as(&f.other_bot_id, &self.other_dm, text, "");
        f.post_as(&f.other_bot_id, &f.town_square, text, "");
    }

    /// The bridge posts it (the fake sends the bot's own post back on its websocket, as
    /// Mattermost does), and another client on the bot's token posts it too.
    async fn own_account_says(&mut self, text: &str) {
        announce_room(self, text);
        wait_for(self, "the bot's own post", |m| {
            m.iter()
                .any(|p| p.place == Where::Room && p.text.contains(text))
        })
        .await;
        let f = &self.fake;
        f.post_as(&f.bot_id, &f.town_square, text, "");
    }

    async fn bot_messages(&mut self) -> Vec<Posted> {
        let f = &self.fake;
        f.bot_posts()
            .into_iter()
            .map(|p| {
                let channel = p.str("channel_id");
                let place = if channel == f.town_square {
                    match p.str("root_id") {
                        "" => Where::Room,
                        root => Where::Thread(root.to_owned()),
                    }
                } else if channel == self.dm {
                    Where::Direct
                } else {
                    Where::Elsewhere(channel.to_owned())
                };
                Posted {
                    place,
                    text: p.str("message").to_owned(),
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
async fn mattermost_keeps_the_contract() {
    let mut p = MattermostContract::start().await;
    cases::run_all(&mut p).await;
}
