//! IRC against the contract: a real ngircd, the bridge connected to it through a [`Relay`]
//! (the outage), alice and another bot as raw IRC clients on the server itself.

use std::time::Duration;

use irc_proto::Command as IrcCommand;

use super::{
    cases,
    harness::{Contract, Posted, RateLimit, Support, Unit, Where},
    relay::Relay,
};
use crate::{
    irc::{Client, Ngircd},
    support::{with_test_aliases, TestBridge},
};

const BOT: &str = "stormbridge";

pub struct IrcContract {
    server: Ngircd,
    relay: Relay,
    alice: Client,
    b: TestBridge,
    seen: Vec<Posted>,
    /// `(from, target, text)` of every other message alice saw.
    others: Vec<(String, String, String)>,
    /// How many times alice saw the bot join `#ops`.
    bot_joins: usize,
}

impl IrcContract {
    async fn start() -> Self {
        let server = Ngircd::start(None).await;
        let relay = Relay::start(server.port).await;
        let mut alice = Client::connect(server.port, "alice", None).await;
        alice.join("#ops").await;
        let mut opts = with_test_aliases();
        opts.extra_toml = format!(
            "[[chat]]\nname = \"irc\"\nbackend = \"irc\"\nserver = \"127.0.0.1\"\nport = {}\n\
             nick = \"{BOT}\"\nchannels = [\"#ops\"]\nignore_nicks = [\"otherbot\"]\n",
            relay.port
        );
        let b = TestBridge::start_with(opts).await;
        b.wait_ready(200).await;
        alice.sees_join(BOT, "#ops").await;
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
        while let Some((_, msg)) = self.alice.next_within(Duration::from_millis(20)).await {
            let from = msg.source_nickname().unwrap_or_default().to_owned();
            let (target, text) = match msg.command {
                IrcCommand::PRIVMSG(t, text) | IrcCommand::NOTICE(t, text) => (t, text),
                IrcCommand::JOIN(channel, _, _) if from == BOT && channel == "#ops" => {
                    self.bot_joins += 1;
                    continue;
                }
                _ => continue,
            };
            if from != BOT {
                self.others.push((from, target, text));
                continue;
            }
            let place = match target.as_str() {
                "#ops" => Where::Room,
                "alice" => Where::Direct,
                _ => Where::Elsewhere(target),
            };
            self.seen.push(Posted { place, text });
        }
    }
}

impl Contract for IrcContract {
    const PLATFORM: &'static str = "irc";

    fn bridge(&self) -> &TestBridge {
        &self.b
    }

    fn connection(&self) -> &str {
        "irc"
    }

    fn room(&self) -> String {
        "#ops".into()
    }

    fn user_id(&self) -> String {
        "alice".into()
    }

    fn mention(&self) -> String {
        format!("{BOT}:")
    }

    /// IRC's limit is the 512-byte line the server relays; the bridge budgets the text of
    /// a `PRIVMSG #ops` from `stormbridge` (with the server's prefix) at 394 bytes.
    fn limit(&self) -> (usize, Unit) {
        (400, Unit::Bytes)
    }

    /// Long replies take a while: flood control sends a burst, then a line every 500 ms.
    fn patience(&self) -> Duration {
        Duration::from_secs(30)
    }

    async fn say(&mut self, text: &str) -> Option<String> {
        self.alice.say("#ops", text).await;
        None
    }

    async fn say_direct(&mut self, text: &str) {
        self.alice.say(BOT, text).await;
    }

    fn threads(&self) -> Support {
        Support::No("IRC has no threads")
    }

    fn other_bots(&self) -> Support {
        Support::Yes
    }

    /// `otherbot` (in `ignore_nicks`) says it to the bot privately, then in the channel;
    /// once alice sees the channel message, the bot has been sent both.
    async fn other_bot_says(&mut self, text: &str) {
        let mut otherbot = Client::connect(self.server.port, "otherbot", None).await;
        otherbot.join("#ops").await;
        otherbot.say(BOT, text).await;
        otherbot.say("#ops", text).await;
        let relayed = eventually!(self.patience(), {
            self.drain().await;
            self.others
                .iter()
                .any(|(from, to, t)| from == "otherbot" && to == "#ops" && t == text)
        });
        assert!(
            relayed,
            "alice never saw otherbot's message: {:#?}",
            self.others
        );
        otherbot.send("QUIT :done").await;
    }

    // `own_account_says`: the default (the bridge posts it). An IRC server does not echo a
    // client's own messages back to it, so on IRC this only shows that posting such a text
    // is harmless.

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

    /// The bot's JOIN of `#ops` after the reconnect (counted from `go_away`).
    async fn sees_bot_back(&mut self) {
        let back = eventually!(self.patience(), {
            self.drain().await;
            self.bot_joins > 0
        });
        assert!(back, "the bot never rejoined #ops");
    }

    fn rate_limit(&self) -> RateLimit {
        RateLimit::Pacing(
            "ngircd tells a client of no rate limit; it throttles or drops one that floods. \
             The bridge's own flood control (a burst, then one line per send_interval_ms) is \
             what keeps the bot on: checked is that a burst arrives whole, in order, once, \
             without the bot losing its connection",
        )
    }
}

#[actix_rt::test]
async fn irc_keeps_the_contract() {
    let mut p = IrcContract::start().await;
    cases::run_all(&mut p).await;
}
