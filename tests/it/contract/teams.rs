//! Teams against the contract: the fake of Microsoft's side (`teams/fake.rs`).
//!
//! In a Teams channel every post is the root of its own reply chain, and the bot answers a
//! command in the chain under it (`answer_place`); a "thread" here is such a chain.

use std::time::Duration;

use super::{
    cases,
    harness::{announce_room, wait_for, Contract, Posted, RateLimit, Support, Unit, Where},
};
use crate::{
    support::{with_test_aliases, TestBridge},
    teams::fake::{bot_id, FakeTeams, Place, ALICE_AAD, ALICE_DM, CHANNEL, OTHER_BOT},
};

pub struct TeamsContract {
    teams: FakeTeams,
    b: TestBridge,
}

impl TeamsContract {
    async fn start() -> Self {
        let teams = FakeTeams::start().await;
        let mut opts = with_test_aliases();
        opts.extra_toml = teams.chat_toml("max_message_length = 300");
        let b = TestBridge::start_with(opts).await;
        b.wait_ready(200).await;
        Self { teams, b }
    }

    async fn alice(&self, place: Place<'_>, text: &str) -> String {
        let activity = self.teams.alice(place, text);
        self.teams.deliver_ok(self.b.app.http_addr, activity).await
    }
}

impl Contract for TeamsContract {
    const PLATFORM: &'static str = "teams";

    fn bridge(&self) -> &TestBridge {
        &self.b
    }

    fn connection(&self) -> &str {
        "teams"
    }

    fn room(&self) -> String {
        CHANNEL.into()
    }

    fn user_id(&self) -> String {
        ALICE_AAD.into()
    }

    fn mention(&self) -> String {
        "<at>stormbridge</at>".into()
    }

    fn limit(&self) -> (usize, Unit) {
        (300, Unit::Chars)
    }

    async fn say(&mut self, text: &str) -> Option<String> {
        Some(self.alice(Place::Channel, text).await)
    }

    async fn say_direct(&mut self, text: &str) {
        self.alice(Place::Direct, text).await;
    }

    /// A command posted in the channel is answered in the reply chain under its post.
    fn answer_place(&self, said: Option<&str>) -> Where {
        match said {
            Some(id) => Where::Thread(id.to_owned()),
            None => Where::Room,
        }
    }

    fn threads(&self) -> Support {
        Support::Yes
    }

    async fn start_thread(&mut self) -> String {
        self.alice(Place::Channel, "a thread about the deploy")
            .await
    }

    async fn say_in_thread(&mut self, thread: &str, text: &str) {
        self.alice(Place::Thread(thread), text).await;
    }

    fn other_bots(&self) -> Support {
        Support::Yes
    }

    /// Another bot's message in the channel (a `28:` account with `role: bot`, as the
    /// Activity schema's ChannelAccount allows), sent the way the Bot Connector sends
    /// activities: signed, so only the bridge's own rule keeps it from running.
    async fn other_bot_says(&mut self, text: &str) {
        let t = &self.teams;
        let mut activity = t.message(CHANNEL, (OTHER_BOT, "", "other-bot"), text);
        activity["from"]["role"] = "bot".into();
        t.deliver_ok(self.b.app.http_addr, activity).await;
    }

    /// The bridge posts it; Teams does not send a bot its own messages, so the fake also
    /// delivers one from the bot's own account, as a client using the bot's identity would.
    async fn own_account_says(&mut self, text: &str) {
        announce_room(self, text);
        wait_for(self, "the bot's own post", |m| {
            m.iter()
                .any(|p| p.place == Where::Room && p.text.contains(text))
        })
        .await;
        let t = &self.teams;
        let own = t.message(CHANNEL, (&bot_id(), "", "stormbridge"), text);
        t.deliver_ok(self.b.app.http_addr, own).await;
    }

    async fn bot_messages(&mut self) -> Vec<Posted> {
        self.teams
            .sent()
            .iter()
            .map(|s| {
                let (room, chain) = match s.conversation.split_once(";messageid=") {
                    Some((room, root)) => (room, Some(root.to_owned())),
                    None => (s.conversation.as_str(), None),
                };
                let place = match (room, chain.or_else(|| s.reply_to.clone())) {
                    (CHANNEL, Some(root)) => Where::Thread(root),
                    (CHANNEL, None) => Where::Room,
                    (ALICE_DM, _) => Where::Direct,
                    (other, _) => Where::Elsewhere(other.to_owned()),
                };
                Posted {
                    place,
                    text: s.text(),
                }
            })
            .collect()
    }

    fn outage(&self) -> Support {
        Support::Yes
    }

    /// Microsoft's endpoints answer 503: the token endpoint, the OpenID metadata and the
    /// Bot Connector.
    async fn go_away(&mut self) {
        self.teams.set_away(true);
    }

    async fn come_back(&mut self) {
        self.teams.set_away(false);
    }

    fn rate_limit(&self) -> RateLimit {
        RateLimit::Window
    }

    async fn arm_rate_window(&mut self, window: Duration) {
        self.teams.rate_limit_window(window);
    }

    fn rate_limited(&self) -> usize {
        self.teams
            .calls()
            .iter()
            .filter(|c| c.status == 429)
            .count()
    }
}

#[actix_rt::test]
async fn teams_keeps_the_contract() {
    let mut p = TeamsContract::start().await;
    cases::run_all(&mut p).await;
}
