//! Discord against the contract: the fake Discord (`fake_discord.rs`).

use std::time::Duration;

use super::{
    cases,
    harness::{announce_room, wait_for, Contract, Posted, RateLimit, Support, Unit, Where},
};
use crate::{
    fake_discord::{FakeDiscord, ALICE, BOT, GENERAL, OTHER_BOT},
    support::{with_test_aliases, TestBridge},
};

pub struct DiscordContract {
    fake: FakeDiscord,
    b: TestBridge,
    /// The DM channel between alice and the bot.
    dm: String,
}

impl DiscordContract {
    async fn start() -> Self {
        let fake = FakeDiscord::start().await;
        let mut opts = with_test_aliases();
        opts.extra_toml = fake.chat_toml("max_message_length = 300");
        let b = TestBridge::start_with(opts).await;
        b.wait_ready(200).await;
        let dm = fake.dm_channel(ALICE);
        Self { fake, b, dm }
    }
}

impl Contract for DiscordContract {
    const PLATFORM: &'static str = "discord";

    fn bridge(&self) -> &TestBridge {
        &self.b
    }

    fn connection(&self) -> &str {
        "dc"
    }

    fn room(&self) -> String {
        GENERAL.into()
    }

    fn user_id(&self) -> String {
        ALICE.into()
    }

    fn mention(&self) -> String {
        format!("<@{BOT}>")
    }

    fn limit(&self) -> (usize, Unit) {
        (300, Unit::Chars)
    }

    async fn say(&mut self, text: &str) -> Option<String> {
        Some(self.fake.post_as(ALICE, GENERAL, text))
    }

    async fn say_direct(&mut self, text: &str) {
        self.fake.post_as(ALICE, &self.dm, text);
    }

    /// In a channel the bridge answers a command with replies to it (`message_reference`).
    fn answer_place(&self, said: Option<&str>) -> Where {
        Where::Thread(said.unwrap_or_default().to_owned())
    }

    fn threads(&self) -> Support {
        Support::No(
            "the fake Discord has no thread channels (on Discord a thread is a channel of its \
             own); that answers in a channel reply to the command is checked instead",
        )
    }

    fn other_bots(&self) -> Support {
        Support::Yes
    }

    /// A bot account and a webhook say it in the channel (the fake dispatches each
    /// `MESSAGE_CREATE` on the bot's gateway at once, in order).
    async fn other_bot_says(&mut self, text: &str) {
        self.fake.post_as(OTHER_BOT, GENERAL, text);
        self.fake.post_as_webhook(GENERAL, text);
    }

    /// The bridge posts it (the fake dispatches the bot's own message to its gateway, as
    /// Discord does), and another client on the bot's token posts it too.
    async fn own_account_says(&mut self, text: &str) {
        announce_room(self, text);
        wait_for(self, "the bot's own message", |m| {
            m.iter()
                .any(|p| p.place == Where::Room && p.text.contains(text))
        })
        .await;
        self.fake.post_as(BOT, GENERAL, text);
    }

    async fn bot_messages(&mut self) -> Vec<Posted> {
        self.fake
            .messages_by(BOT)
            .into_iter()
            .map(|m| {
                let channel = m.msg["channel_id"].as_str().unwrap_or_default();
                let place = if channel == GENERAL {
                    match m.msg["message_reference"]["message_id"].as_str() {
                        Some(id) => Where::Thread(id.to_owned()),
                        None => Where::Room,
                    }
                } else if channel == self.dm {
                    Where::Direct
                } else {
                    Where::Elsewhere(channel.to_owned())
                };
                Posted {
                    place,
                    text: m.msg["content"].as_str().unwrap_or_default().to_owned(),
                }
            })
            .collect()
    }

    fn outage(&self) -> Support {
        Support::Yes
    }

    async fn go_away(&mut self) {
        self.fake.refuse_gateway(true);
        self.fake.drop_gateways();
    }

    async fn come_back(&mut self) {
        self.fake.refuse_gateway(false);
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
async fn discord_keeps_the_contract() {
    let mut p = DiscordContract::start().await;
    cases::run_all(&mut p).await;
}
