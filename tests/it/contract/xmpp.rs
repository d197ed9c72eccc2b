//! XMPP against the contract: a real prosody with a MUC room, the bridge connected to it
//! through a [`Relay`] (the outage), alice and another bot as XMPP clients on the server.

use std::time::Duration;

use stormbridge::backends::xmpp::wire::Element;

use super::{
    cases,
    harness::{Contract, Posted, RateLimit, Support, Unit, Where},
    relay::Relay,
};
use crate::{
    support::{with_test_aliases, TestBridge},
    xmpp::{Prosody, User, ROOM},
};

const BOT_JID: &str = "stormbot@localhost";

pub struct XmppContract {
    server: Prosody,
    relay: Relay,
    alice: User,
    b: TestBridge,
    seen: Vec<Posted>,
    /// `(from, body)` of every other message alice saw.
    others: Vec<(String, String)>,
    /// How many times alice saw the bot enter the room (since the last `go_away`).
    bot_joins: usize,
}

impl XmppContract {
    async fn start() -> Self {
        let server = Prosody::start(&["alice", "stormbot", "otherbot"]).await;
        let relay = Relay::start(server.port).await;
        let mut alice = User::connect(server.port, "alice").await;
        alice.join("alice").await;
        let mut opts = with_test_aliases();
        opts.extra_toml = format!(
            "[[chat]]\nname = \"xmpp\"\nbackend = \"xmpp\"\njid = \"{BOT_JID}\"\n\
             password = \"stormbot-pw\"\nserver = \"127.0.0.1:{}\"\ntls = \"plaintext\"\n\
             rooms = [\"{ROOM}\"]\nnick = \"stormbot\"\nmax_message_bytes = 300\n\
             ignore_jids = [\"otherbot@localhost\", \"otherbot\"]\n",
            relay.port
        );
        let b = TestBridge::start_with(opts).await;
        b.wait_ready(200).await;
        let bot = format!("{ROOM}/stormbot");
        alice
            .wait_for(|e| e.local_name() == "presence" && e.attr("from") == Some(bot.as_str()))
            .await;
        Self {
            server,
            relay,
            alice,
            b,
            seen: Vec::new(),
            others: Vec::new(),
            bot_joins: 0,
        }
    }

    /// Reads what alice has been sent, until a short silence.
    async fn drain(&mut self) {
        let bot_in_room = format!("{ROOM}/stormbot");
        while let Some(e) = self.alice.next_within(Duration::from_millis(20)).await {
            if e.local_name() == "presence"
                && e.attr("from") == Some(bot_in_room.as_str())
                && e.attr("type").is_none()
            {
                self.bot_joins += 1;
            }
            if let Some((from, posted)) = classify(&e) {
                match posted {
                    Some(p) => self.seen.push(p),
                    None => {
                        let body = e.child("body").map(Element::text).unwrap_or_default();
                        self.others.push((from, body));
                    }
                }
            }
        }
    }
}

/// A message stanza with a body: who sent it and, when it was the bot, where it landed.
fn classify(e: &Element) -> Option<(String, Option<Posted>)> {
    if e.local_name() != "message" || e.attr("type") == Some("error") {
        return None;
    }
    let text = e.child("body").map(Element::text)?;
    let from = e.attr("from").unwrap_or_default().to_owned();
    let place = if from == format!("{ROOM}/stormbot") {
        Where::Room
    } else if from == BOT_JID || from.starts_with(&format!("{BOT_JID}/")) {
        Where::Direct
    } else {
        return Some((from, None));
    };
    Some((from, Some(Posted { place, text })))
}

impl Contract for XmppContract {
    const PLATFORM: &'static str = "xmpp";

    fn bridge(&self) -> &TestBridge {
        &self.b
    }

    fn connection(&self) -> &str {
        "xmpp"
    }

    fn room(&self) -> String {
        ROOM.into()
    }

    /// The real JID: in the semi-anonymous room alice is `ops@conference.localhost/alice`,
    /// but a whisper goes to the person.
    fn user_id(&self) -> String {
        "alice@localhost".into()
    }

    fn mention(&self) -> String {
        "stormbot:".into()
    }

    fn limit(&self) -> (usize, Unit) {
        (300, Unit::Bytes)
    }

    async fn say(&mut self, text: &str) -> Option<String> {
        self.alice.say(ROOM, "groupchat", text).await;
        None
    }

    async fn say_direct(&mut self, text: &str) {
        self.alice.say(BOT_JID, "chat", text).await;
    }

    fn threads(&self) -> Support {
        Support::No("the bridge's XMPP has no threads (rooms and direct chats only)")
    }

    fn other_bots(&self) -> Support {
        Support::Yes
    }

    /// `otherbot` (in `ignore_jids`) says it to the bot directly, then in the room; once
    /// alice sees the room message, the bot has been sent both.
    async fn other_bot_says(&mut self, text: &str) {
        let mut otherbot = User::connect(self.server.port, "otherbot").await;
        otherbot.join("otherbot").await;
        otherbot.say(BOT_JID, "chat", text).await;
        otherbot.say(ROOM, "groupchat", text).await;
        let from = format!("{ROOM}/otherbot");
        let relayed = eventually!(self.patience(), {
            self.drain().await;
            self.others.iter().any(|(f, t)| *f == from && t == text)
        });
        assert!(
            relayed,
            "alice never saw otherbot's message: {:#?}",
            self.others
        );
    }

    // `own_account_says`: the default. A MUC room sends every message back to its sender,
    // so the bridge reads its own post as it reads anyone's.

    async fn bot_messages(&mut self) -> Vec<Posted> {
        self.drain().await;
        self.seen.clone()
    }

    fn outage(&self) -> Support {
        Support::Yes
    }

    async fn go_away(&mut self) {
        self.drain().await;
        self.bot_joins = 0;
        self.relay.go_down();
    }

    async fn come_back(&mut self) {
        self.relay.come_up();
    }

    /// The bot's presence in the room after the reconnect (counted from `go_away`).
    async fn sees_bot_back(&mut self) {
        let back = eventually!(self.patience(), {
            self.drain().await;
            self.bot_joins > 0
        });
        assert!(back, "the bot never came back into the room");
    }

    fn rate_limit(&self) -> RateLimit {
        RateLimit::Pacing(
            "prosody runs here without mod_limits, and XMPP has no rate-limit answer to honour; \
             the bridge paces by itself (flood_burst, send_interval_ms): checked is that a \
             burst arrives whole, in order, once, without the bot losing its connection",
        )
    }
}

#[actix_rt::test]
async fn xmpp_keeps_the_contract() {
    let mut p = XmppContract::start().await;
    cases::run_all(&mut p).await;
}
